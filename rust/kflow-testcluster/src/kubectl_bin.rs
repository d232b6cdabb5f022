//! Finding the real kubectl binary that MPI launcher pods get at /opt/kube/kubectl (what the
//! training operator's kubectl-delivery init container puts there). It must be the binary:
//! wrappers (pyenv shims, Python console scripts) depend on things pods do not see.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("--kubectl {path}: {why}")]
pub struct KubectlError {
    path: PathBuf,
    why: String,
}

/// `explicit` (an error when it is not, or does not lead to, an executable binary), else the
/// first `kubectl` on PATH that does; None when there is none.
pub fn find(explicit: Option<&Path>) -> Result<Option<PathBuf>, KubectlError> {
    if let Some(p) = explicit {
        return resolve(p).map(Some).ok_or_else(|| KubectlError {
            path: p.to_path_buf(),
            why: "not a kubectl binary (nor a pyenv shim or script wrapping one)".into(),
        });
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    Ok(std::env::split_paths(&path)
        .map(|d| d.join("kubectl"))
        .filter(|c| c.is_file())
        .find_map(|c| resolve(&c)))
}

fn is_binary(p: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(p)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|_| &magic == b"\x7fELF")
}

/// The binary behind `p`: itself, or what a pyenv shim or a script's interpreter dir holds.
fn resolve(p: &Path) -> Option<PathBuf> {
    let real = std::fs::canonicalize(p).ok()?;
    if is_binary(&real) {
        return Some(real);
    }
    let text = std::fs::read_to_string(&real).ok()?;
    if let Some(found) = pyenv_which(&text) {
        return Some(found);
    }
    // A console script: look next to its interpreter.
    let interp = text
        .lines()
        .next()?
        .strip_prefix("#!")?
        .split_whitespace()
        .next()?;
    let sibling = Path::new(interp).parent()?.join("kubectl");
    let sibling = std::fs::canonicalize(sibling).ok()?;
    (sibling != real && is_binary(&sibling)).then_some(sibling)
}

/// A pyenv shim ends in `exec "<root>/libexec/pyenv" exec "$program"`: ask that pyenv which
/// binary the active version runs.
fn pyenv_which(shim: &str) -> Option<PathBuf> {
    let line = shim.lines().find(|l| l.contains("libexec/pyenv"))?;
    let pyenv = line.split('"').nth(1)?;
    let root = shim
        .lines()
        .find_map(|l| l.trim().strip_prefix("export PYENV_ROOT="))
        .map(|r| r.trim_matches('"').to_string());
    let mut cmd = std::process::Command::new(pyenv);
    cmd.args(["which", "kubectl"])
        .stderr(std::process::Stdio::null());
    if let Some(r) = root {
        cmd.env("PYENV_ROOT", r);
    }
    let out = cmd.output().ok()?;
    let found = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    (out.status.success() && is_binary(&found)).then_some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_are_not_binaries() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("kubectl");
        std::fs::write(&script, "#!/nonexistent/python\nprint('hi')\n").unwrap();
        assert!(resolve(&script).is_none());
        assert!(find(Some(&script)).is_err());
    }
}
