//! `kflow kernel install`: writes a kernelspec with an absolute interpreter path, for setups
//! where the one shipped in the wheel's data folder is not on Jupyter's search path (a venv
//! that VS Code or JupyterLab does not scan, a system Jupyter beside a user install).

use std::path::{Path, PathBuf};

use kflow_core::Error;
use serde_json::json;

const LOGO_32: &[u8] = include_bytes!("../../../kernel-spec/kflow/logo-32x32.png");
const LOGO_64: &[u8] = include_bytes!("../../../kernel-spec/kflow/logo-64x64.png");

/// Where Jupyter looks for a user's kernels (jupyter_core's `jupyter_data_dir()/kernels`).
pub fn user_kernels_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("JUPYTER_DATA_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("kernels");
    }
    let home = dirs::home_dir().unwrap_or_else(std::env::temp_dir);
    if cfg!(target_os = "macos") {
        home.join("Library/Jupyter/kernels")
    } else if cfg!(windows) {
        dirs::data_dir().unwrap_or(home).join("jupyter/kernels")
    } else {
        dirs::data_dir()
            .unwrap_or_else(|| home.join(".local/share"))
            .join("jupyter/kernels")
    }
}

/// Writes the kernelspec `name` and, beside it, `<name>-session` (the same kernel in session
/// mode: cells run in one long-lived remote Python). Returns both folders.
pub fn install(
    kernels_dir: &Path,
    name: &str,
    display_name: &str,
    python: &Path,
) -> Result<Vec<PathBuf>, Error> {
    let session_name = format!("{name}-session");
    let session_display = match display_name.strip_suffix(" (kflow)") {
        Some(base) => format!("{base} session (kflow)"),
        None => format!("{display_name} (session)"),
    };
    Ok(vec![
        install_one(kernels_dir, name, display_name, python, false)?,
        install_one(kernels_dir, &session_name, &session_display, python, true)?,
    ])
}

fn install_one(
    kernels_dir: &Path,
    name: &str,
    display_name: &str,
    python: &Path,
    session: bool,
) -> Result<PathBuf, Error> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
    {
        return Err(Error::invalid(
            "kernel name",
            name,
            "Jupyter kernel names use ASCII letters, digits, '-', '.' and '_'",
            "pass e.g. --name kflow-gpu",
        ));
    }
    let dir = kernels_dir.join(name);
    std::fs::create_dir_all(&dir).map_err(Error::io("creating", &dir))?;
    let mut argv = vec![
        python.display().to_string(),
        "-m".into(),
        "kflow.kernel".into(),
    ];
    if session {
        argv.push("--session".into());
    }
    argv.extend(["-f".to_string(), "{connection_file}".to_string()]);
    let spec = json!({
        "argv": argv,
        "display_name": display_name,
        "language": "python",
        "interrupt_mode": "message",
        "metadata": { "debugger": false },
    });
    let path = dir.join("kernel.json");
    let text = serde_json::to_string_pretty(&spec).unwrap_or_default() + "\n";
    std::fs::write(&path, text).map_err(Error::io("writing", &path))?;
    for (file, bytes) in [("logo-32x32.png", LOGO_32), ("logo-64x64.png", LOGO_64)] {
        std::fs::write(dir.join(file), bytes).map_err(Error::io("writing", dir.join(file)))?;
    }
    Ok(dir)
}
