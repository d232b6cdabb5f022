//! Checks on single values, each failing with the fix in the message. Kubernetes' own rules are
//! reproduced where a value becomes an object name, so a bad name fails here and not half-way
//! through a submission.

use crate::error::{Error, Result, SpecError};

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
    } else {
        name.chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
            .map(|bad| format!("{bad:?} is not allowed (only lowercase letters, digits and '-')"))
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(Error::invalid(
            "job name",
            name,
            problem,
            format!(
                "use a name like {:?}, or leave the name out to get one made from the script name",
                suggest_name(name)
            ),
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
        && ns
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
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

/// The value of a Kubernetes quantity in its base unit (cores, bytes), in every form the API
/// server accepts: `<sign><digits>[.<digits>]` then a binary suffix (Ki…Ei), a decimal one
/// (n, u, m, "", k, M…E) or an exponent (`e3`, `E-2`). None when it is not a quantity.
pub fn parse_quantity(text: &str) -> Option<f64> {
    let (sign, rest) = match text.as_bytes().first() {
        Some(b'+') => (1.0, &text[1..]),
        Some(b'-') => (-1.0, &text[1..]),
        _ => (1.0, text),
    };
    let number_len = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_len);
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    let digits_ok = |d: &str| d.chars().all(|c| c.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits_ok(whole) || !digits_ok(frac) {
        return None;
    }
    // Rust reads "5.", ".5" and "1.5" as Kubernetes does; the digits were checked above.
    let value: f64 = number.parse().ok()?;
    let multiplier = match suffix {
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        exponent if exponent.starts_with(['e', 'E']) => {
            let exp = &exponent[1..];
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits_ok(digits) {
                return None;
            }
            10f64.powi(exp.parse::<i32>().ok()?)
        }
        _ => return None,
    };
    Some(sign * value * multiplier)
}

/// No node has more cores or memory than this; a request beyond it is a typo.
const MAX_NODE_CORES: f64 = 1024.0;
const MAX_NODE_MEMORY: f64 = 64.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0;
const MIB: f64 = 1024.0 * 1024.0;

/// A CPU request: a Kubernetes quantity of at least 1m and at most what a node can have.
pub fn cpu(value: &str) -> Result<()> {
    let fix = "use cores like \"2\" or \"0.5\", or millicores like \"500m\"";
    let problem = match parse_quantity(value) {
        None => "not a CPU quantity".to_string(),
        Some(cores) if cores <= 0.0 => "a CPU request must be more than 0".to_string(),
        Some(cores) if cores < 1e-3 => {
            "less than 1m, the smallest CPU unit Kubernetes has".to_string()
        }
        Some(cores) if cores > MAX_NODE_CORES => {
            format!("{cores:.0} cores is more than any node has")
        }
        Some(_) => return Ok(()),
    };
    Err(Error::invalid("cpu", value, problem, fix))
}

/// A memory quantity (memory limit, PVC size): at least 1 Mi and at most what any node or
/// volume holds. A bare number is bytes to Kubernetes, so "16" is caught as the typo it is.
pub fn memory(field: &'static str, value: &str) -> Result<()> {
    let parsed = parse_quantity(value);
    let problem = match parsed {
        None => "not a memory quantity".to_string(),
        Some(bytes) if bytes <= 0.0 => "must be more than 0".to_string(),
        Some(bytes) if bytes < MIB => {
            format!("{bytes} bytes is less than 1Mi, too little for any process")
        }
        Some(bytes) if bytes > MAX_NODE_MEMORY => {
            "more than any node or volume holds (64Ti)".to_string()
        }
        Some(_) => return Ok(()),
    };
    let hint = value.to_ascii_lowercase();
    let fix = if let Some(n) = hint.strip_suffix("gb").or_else(|| hint.strip_suffix('g')) {
        format!("write {n}Gi (Kubernetes spells gibibytes Gi)")
    } else if let Some(n) = hint.strip_suffix("mb").or_else(|| hint.strip_suffix('m')) {
        format!("write {n}Mi (Kubernetes spells mebibytes Mi)")
    } else if parsed.is_some() && value.chars().all(|c| c.is_ascii_digit()) {
        format!("a number without a suffix is bytes to Kubernetes: write {value}Gi or {value}Mi")
    } else {
        "use a quantity like \"16Gi\" or \"512Mi\"".to_string()
    };
    Err(Error::invalid(field, value, problem, fix))
}

/// A pip requirement, parsed as PEP 508 (uv's parser): a name with optional extras, version
/// specifiers, a URL and environment markers. It reaches pip as one quoted argument; options
/// are refused because `--index-url` and friends would change where every package comes from.
pub fn pip_requirement(spec: &str) -> Result<()> {
    if spec.trim().is_empty() {
        return Err(Error::invalid(
            "pip package",
            spec,
            "it is empty",
            "remove the empty entry",
        ));
    }
    if spec.starts_with('-') {
        return Err(Error::invalid(
            "pip package",
            spec,
            "pip options are not accepted as packages",
            "list requirement specifiers only (\"torch>=2.1\"); set PIP_INDEX_URL / PIP_EXTRA_INDEX_URL with --env for another index",
        ));
    }
    no_control_chars("pip package", spec)?;
    spec.parse::<pep508_rs::Requirement>().map(drop).map_err(|e| {
        // The parser's message ends with a caret line under the offending spot.
        let problem = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
        Error::invalid(
            "pip package",
            spec,
            format!("not a PEP 508 requirement ({problem})"),
            "write one requirement per entry, like \"numpy>=1.26\", \"torch[cuda]==2.5.1\" or \"pkg @ https://host/pkg.whl\"",
        )
    })
}

/// The requirements of a requirements.txt, each checked as PEP 508. Comments and blank lines
/// are skipped; pip options (`-r`, `--index-url`, `-e`) are refused with where they are.
pub fn requirements_file(path: &std::path::Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::invalid(
            "requirements file",
            path.display().to_string(),
            format!("cannot be read: {e}"),
            "pass the path of an existing requirements.txt",
        )
    })?;
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split(" #").next().unwrap_or("").trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        pip_requirement(line).map_err(|e| match e {
            Error::Spec(SpecError::InvalidParameter { problem, fix, .. }) => Error::invalid(
                "requirements file",
                format!("{}:{}: {line}", path.display(), i + 1),
                problem,
                fix,
            ),
            other => other,
        })?;
        out.push(line.to_string());
    }
    Ok(out)
}

/// A Debian package, optionally `=version` or `:arch`. Strict, since apt-get runs as root.
pub fn apt_package(spec: &str) -> Result<()> {
    let (name, rest) = match spec.find(['=', ':']) {
        Some(i) => (&spec[..i], &spec[i + 1..]),
        None => (spec, ""),
    };
    let name_ok = name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
    let rest_ok = rest
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "+-.:~_".contains(c));
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
        Err(Error::invalid(
            "env variable name",
            name,
            "not a valid variable name",
            "use letters, digits and '_', not starting with a digit",
        ))
    }
}

pub fn image(image: &str) -> Result<()> {
    if image.is_empty() || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err(Error::invalid(
            "image",
            image,
            "not a container image reference",
            "use a reference like \"pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime\"",
        ))
    } else {
        Ok(())
    }
}

/// Arguments and env values may hold anything printable; NUL and other control characters
/// cannot survive an argv or a manifest intact.
pub fn no_control_chars(field: &'static str, value: &str) -> Result<()> {
    match value.chars().find(|c| c.is_control() && *c != '\t') {
        None => Ok(()),
        Some(c) => Err(Error::invalid(
            field,
            value,
            format!("it contains the control character {c:?}"),
            "remove it",
        )),
    }
}

/// A CronJob schedule as the CronJob controller reads it (robfig/cron's standard parser): five
/// fields, or `@yearly`/`@annually`, `@monthly`, `@weekly`, `@daily`/`@midnight`, `@hourly`.
pub fn cron_schedule(expr: &str) -> Result<()> {
    let fix = "use five fields, minute hour day-of-month month day-of-week (`0 6 * * 1-5`: 06:00 on weekdays; `*/15 * * * *`: every 15 minutes), or @hourly, @daily, @weekly, @monthly, @yearly";
    let invalid = |problem: String| Error::invalid("schedule", expr, problem, fix);
    let expanded = match expr.trim() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        other if other.starts_with('@') => {
            return Err(invalid(format!(
                "{other} is not a descriptor Kubernetes knows"
            )))
        }
        other if other.contains("TZ=") => {
            return Err(Error::invalid(
                "schedule",
                expr,
                "Kubernetes refuses a time zone inside the schedule",
                "give the time zone separately (timezone=\"Europe/Berlin\")",
            ))
        }
        other => other,
    };
    let fields = expanded.split_whitespace().count();
    if fields != 5 {
        return Err(invalid(format!("it has {fields} fields, not 5")));
    }
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .year(croner::parser::Year::Disallowed)
        .build()
        .parse(expanded)
        .map(|_| ())
        .map_err(|e| invalid(e.to_string()))
}

/// An IANA time zone name as a CronJob takes it (`Europe/Berlin`, `UTC`); the API server checks
/// it against its time zone database.
pub fn timezone(tz: &str) -> Result<()> {
    let ok = !tz.is_empty()
        && tz.len() <= 64
        && !tz.starts_with(['/', '.'])
        && !tz.contains("..")
        && tz
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c));
    if ok {
        return Ok(());
    }
    Err(Error::invalid(
        "time zone",
        tz,
        "not an IANA time zone name",
        "use a name like \"UTC\", \"Europe/Berlin\" or \"America/New_York\"",
    ))
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
        for ok in ["1", "0.5", "500m", "16", "1.5m", "1e3", "+2", ".5"] {
            cpu(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in ["", "-1", "two", "0", "1e29", "0.1m", "1.2.3", "5 m", "1x"] {
            assert!(cpu(bad).is_err(), "{bad}");
        }
        let err = cpu("1e29").unwrap_err().to_string();
        assert!(err.contains("more than any node"), "{err}");
        for ok in [
            "16Gi", "512Mi", "1G", "1000Mi", "1e9", "2E9", "1.5Gi", "64Ti",
        ] {
            memory("memory", ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        let err = memory("memory", "16GB").unwrap_err().to_string();
        assert!(err.contains("16Gi"), "{err}");
        let err = memory("memory", "16").unwrap_err().to_string();
        assert!(
            err.contains("less than 1Mi") && err.contains("write 16Gi"),
            "{err}"
        );
        let err = memory("memory", "99999999999Ei").unwrap_err().to_string();
        assert!(err.contains("more than any node"), "{err}");
        assert_eq!(parse_quantity("1Ki"), Some(1024.0));
        assert_eq!(parse_quantity("500m"), Some(0.5));
        assert_eq!(parse_quantity("1e-3"), Some(0.001));
        assert_eq!(parse_quantity("Gi"), None);
        assert_eq!(parse_quantity("1e"), None);
    }

    #[test]
    fn pip_requirements_are_pep_508() {
        for ok in [
            "numpy",
            "torch[cuda]==2.5.1",
            "numpy>=1.26,<3",
            "pkg @ https://example.com/pkg-1.0-py3-none-any.whl",
            "rich; python_version >= '3.9'",
        ] {
            pip_requirement(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        let err = pip_requirement("numpy; rm -rf /").unwrap_err().to_string();
        assert!(
            err.contains("not a PEP 508 requirement") && err.contains("Fix:"),
            "{err}"
        );
        assert!(pip_requirement("numpy==").is_err());
        assert!(pip_requirement("$(id)").is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("requirements.txt");
        std::fs::write(&path, "# deps\nnumpy>=1.26  # arrays\n\nrich\n").unwrap();
        assert_eq!(requirements_file(&path).unwrap(), ["numpy>=1.26", "rich"]);
        std::fs::write(&path, "numpy\n-r other.txt\n").unwrap();
        let err = requirements_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("requirements.txt:2") && err.contains("pip options"),
            "{err}"
        );
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

    #[test]
    fn cron_schedules_as_the_cronjob_controller_reads_them() {
        for ok in [
            "0 3 * * *",
            "*/15 * * * *",
            "0 6 * * 1-5",
            "@daily",
            "@hourly",
            " 5 4 1 1 * ",
        ] {
            cron_schedule(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "",
            "* * * *",
            "0 0 3 * * *",
            "61 * * * *",
            "@every 5m",
            "CRON_TZ=UTC 0 3 * * *",
            "a b c d e",
        ] {
            let err = cron_schedule(bad).unwrap_err();
            assert!(err.fix().is_some(), "{bad}");
        }
        for ok in [
            "UTC",
            "Etc/UTC",
            "Europe/Berlin",
            "America/Argentina/Buenos_Aires",
            "Etc/GMT+5",
        ] {
            timezone(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in ["", "../etc/passwd", "/UTC", "Europe Berlin", "UTC\n"] {
            assert!(timezone(bad).is_err(), "{bad}");
        }
    }
}
