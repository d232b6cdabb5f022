//! Checks on single values, each failing with the fix in the message. Kubernetes' own rules are
//! reproduced where a value becomes an object name, so a bad name fails here and not half-way
//! through a submission.

use crate::error::{Error, Result};

/// Longest job name: the operator names pods and services `<job>-worker-<i>`, and a service name
/// is a DNS-1035 label of at most 63 characters.
pub const MAX_JOB_NAME: usize = 48;

pub fn job_name(name: &str) -> Result<()> {
    let problem = if name.is_empty() {
        Some("it is empty".to_string())
    } else if name.len() > MAX_JOB_NAME {
        Some(format!("it has {} characters, at most {MAX_JOB_NAME} fit in the pod names the operator derives from it", name.len()))
    } else if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        Some("it must start with a lowercase letter".to_string())
    } else if name.ends_with('-') {
        Some("it must end with a letter or digit".to_string())
    } else if let Some(bad) = name.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        Some(format!("{bad:?} is not allowed (only lowercase letters, digits and '-')"))
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(Error::invalid(
            "job name",
            name,
            problem,
            format!("use a name like {:?}, or leave the name out to get one made from the script name", suggest_name(name)),
        )),
    }
}

/// The closest valid name, used in error messages and to derive a name from a script.
pub fn suggest_name(raw: &str) -> String {
    let mut out = String::new();
    for c in raw.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let mut out = out.trim_matches('-').to_string();
    if !out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out.insert_str(0, "job-");
    }
    out.truncate(MAX_JOB_NAME);
    out.trim_end_matches('-').to_string()
}

pub fn namespace(ns: &str) -> Result<()> {
    let ok = !ns.is_empty()
        && ns.len() <= 63
        && ns.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && ns.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && ns.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "namespace",
            ns,
            "not a valid Kubernetes namespace (lowercase letters, digits and '-', at most 63)",
            "use your Kubeflow profile's namespace, e.g. \"kubeflow-user-example-com\"",
        ))
    }
}

/// A Kubernetes CPU quantity: whole or decimal cores, or millicores.
pub fn cpu(value: &str) -> Result<()> {
    let number = value.strip_suffix('m').unwrap_or(value);
    if is_decimal(number) && !(value.ends_with('m') && number.contains('.')) && parse_positive(number) {
        Ok(())
    } else {
        Err(Error::invalid("cpu", value, "not a CPU quantity", "use cores like \"2\" or \"0.5\", or millicores like \"500m\""))
    }
}

/// A Kubernetes memory quantity with a binary or decimal suffix.
pub fn memory(field: &'static str, value: &str) -> Result<()> {
    const SUFFIXES: [&str; 12] = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E"];
    let number = SUFFIXES.iter().find_map(|s| value.strip_suffix(s)).unwrap_or(value);
    if is_decimal(number) && parse_positive(number) {
        return Ok(());
    }
    let hint = value.to_ascii_lowercase();
    let fix = if let Some(n) = hint.strip_suffix("gb").or_else(|| hint.strip_suffix('g')) {
        format!("write {n}Gi (Kubernetes spells gibibytes Gi)")
    } else if let Some(n) = hint.strip_suffix("mb").or_else(|| hint.strip_suffix('m')) {
        format!("write {n}Mi (Kubernetes spells mebibytes Mi)")
    } else {
        "use a quantity like \"16Gi\" or \"512Mi\"".to_string()
    };
    Err(Error::invalid(field, value, "not a memory quantity", fix))
}

fn is_decimal(s: &str) -> bool {
    let mut parts = s.splitn(2, '.');
    let whole = parts.next().unwrap_or("");
    let frac = parts.next();
    !whole.is_empty()
        && whole.chars().all(|c| c.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_digit()))
}

fn parse_positive(s: &str) -> bool {
    s.parse::<f64>().is_ok_and(|v| v > 0.0)
}

/// A pip requirement. It reaches pip as one quoted argument whatever it holds; options are
/// refused because `--index-url` and friends would change where every package comes from.
pub fn pip_requirement(spec: &str) -> Result<()> {
    if spec.trim().is_empty() {
        return Err(Error::invalid("pip package", spec, "it is empty", "remove the empty entry"));
    }
    if spec.starts_with('-') {
        return Err(Error::invalid(
            "pip package",
            spec,
            "pip options are not accepted as packages",
            "list requirement specifiers only (\"torch>=2.1\"); set PIP_INDEX_URL / PIP_EXTRA_INDEX_URL with --env for another index",
        ));
    }
    no_control_chars("pip package", spec)
}

/// A Debian package, optionally `=version` or `:arch`. Strict, since apt-get runs as root.
pub fn apt_package(spec: &str) -> Result<()> {
    let (name, rest) = match spec.find(['=', ':']) {
        Some(i) => (&spec[..i], &spec[i + 1..]),
        None => (spec, ""),
    };
    let name_ok = name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
    let rest_ok = rest.chars().all(|c| c.is_ascii_alphanumeric() || "+-.:~_".contains(c));
    if name_ok && rest_ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "apt package",
            spec,
            "not a Debian package name",
            "use names like \"libgdal-dev\" or \"libgdal-dev=3.6.2+dfsg-1\"",
        ))
    }
}

pub fn env_name(name: &str) -> Result<()> {
    let ok = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid("env variable name", name, "not a valid variable name", "use letters, digits and '_', not starting with a digit"))
    }
}

pub fn image(image: &str) -> Result<()> {
    if image.is_empty() || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err(Error::invalid("image", image, "not a container image reference", "use a reference like \"pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime\""))
    } else {
        Ok(())
    }
}

/// Arguments and env values may hold anything printable; NUL and other control characters
/// cannot survive an argv or a manifest intact.
pub fn no_control_chars(field: &'static str, value: &str) -> Result<()> {
    match value.chars().find(|c| c.is_control() && *c != '\t') {
        None => Ok(()),
        Some(c) => Err(Error::invalid(field, value, format!("it contains the control character {c:?}"), "remove it")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_follow_dns_1035() {
        assert!(job_name("train-abc12").is_ok());
        for bad in ["", "Train", "1train", "train_x", "train-", &"a".repeat(49)] {
            let err = job_name(bad).unwrap_err().to_string();
            assert!(err.contains("Fix:"), "{err}");
        }
        let err = job_name("My_Job").unwrap_err().to_string();
        assert!(err.contains("\"my-job\""), "{err}");
    }

    #[test]
    fn suggested_names_are_valid() {
        for raw in ["Train Model.py", "123", "__x__", "ÄÖÜ", &"long-".repeat(30)] {
            let name = suggest_name(raw);
            job_name(&name).unwrap_or_else(|e| panic!("{raw:?} -> {name:?}: {e}"));
        }
    }

    #[test]
    fn quantities() {
        for ok in ["1", "0.5", "500m", "16"] {
            cpu(ok).unwrap();
        }
        for bad in ["", "-1", "two", "1.5m", "0"] {
            assert!(cpu(bad).is_err(), "{bad}");
        }
        for ok in ["16Gi", "512Mi", "1G", "1000"] {
            memory("memory", ok).unwrap();
        }
        let err = memory("memory", "16GB").unwrap_err().to_string();
        assert!(err.contains("16Gi"), "{err}");
    }

    #[test]
    fn packages() {
        pip_requirement("torch>=2.1; python_version > '3.8'").unwrap();
        assert!(pip_requirement("--index-url=http://x").is_err());
        assert!(pip_requirement("numpy\nrm -rf /").is_err());
        apt_package("libgdal-dev").unwrap();
        apt_package("g++=4:12.2.0-3").unwrap();
        assert!(apt_package("curl; rm -rf /").is_err());
        assert!(apt_package("$(id)").is_err());
    }
}
