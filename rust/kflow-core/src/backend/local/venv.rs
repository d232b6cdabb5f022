//! One Python environment per dependency set, cached by a hash of the set and reused. The venv
//! sees the caller's packages too (through a `.pth` file), the way a job's image already holds
//! torch before pip adds the job's own packages.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result, SystemError};

const COMPLETE_MARKER: &str = ".kflow-complete";

/// The interpreter to run the job with: `python` itself when there is nothing to install.
pub fn ensure(python: &Path, pip: &[String], cache: &Path, log: &mut File) -> Result<PathBuf> {
    if pip.is_empty() {
        return Ok(python.to_path_buf());
    }
    let dir = cache.join("venvs").join(key(python, pip));
    let venv_python = dir.join("bin").join("python");
    std::fs::create_dir_all(cache.join("venvs")).map_err(Error::io("creating", cache))?;
    // Two runs with the same dependencies wait for one install instead of racing it.
    let lock_path = dir.with_extension("lock");
    let lock = File::create(&lock_path).map_err(Error::io("creating", &lock_path))?;
    lock.lock().map_err(Error::io("locking", &lock_path))?;
    if dir.join(COMPLETE_MARKER).is_file() {
        let _ = writeln!(
            log,
            "kflow: reusing the environment for {} (cached in {})",
            pip.join(" "),
            dir.display()
        );
        return Ok(venv_python);
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(Error::io("removing half-made environment", &dir))?;
    }
    let _ = writeln!(
        log,
        "kflow: installing {} into a new environment ({})",
        pip.join(" "),
        dir.display()
    );
    run(
        Command::new(python)
            .args(["-m", "venv", "--without-pip", "--system-site-packages"])
            .arg(&dir),
        log,
        "creating a virtual environment",
    )?;
    let parent_paths = site_paths(python)?;
    let purelib = output(Command::new(&venv_python).args([
        "-c",
        "import sysconfig; print(sysconfig.get_paths()['purelib'])",
    ]))?;
    let pth = Path::new(purelib.trim()).join("_kflow_parent.pth");
    std::fs::write(&pth, parent_paths.join("\n") + "\n").map_err(Error::io("writing", &pth))?;
    // Each spec is one argv word: pip sees it literally, no shell in between.
    let mut install = Command::new(&venv_python);
    install
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
        ])
        .args(pip);
    run(&mut install, log, "pip install")?;
    File::create(dir.join(COMPLETE_MARKER)).map_err(Error::io("writing", &dir))?;
    Ok(venv_python)
}

fn key(python: &Path, pip: &[String]) -> String {
    let mut specs = pip.to_vec();
    specs.sort();
    let mut hasher = Sha256::new();
    hasher.update(python.as_os_str().as_encoded_bytes());
    for spec in &specs {
        hasher.update([0]);
        hasher.update(spec.as_bytes());
    }
    hex::encode(&hasher.finalize()[..8])
}

fn site_paths(python: &Path) -> Result<Vec<String>> {
    let code = "import sys; print('\\n'.join(p for p in sys.path if p.endswith(('site-packages', 'dist-packages'))))";
    Ok(output(Command::new(python).args(["-c", code]))?
        .lines()
        .map(str::to_string)
        .collect())
}

fn output(cmd: &mut Command) -> Result<String> {
    let what = format!("{:?}", cmd.get_program());
    let out = cmd.stdin(Stdio::null()).output().map_err(|source| {
        Error::System(SystemError::Spawn {
            what: what.clone(),
            fix: "check that the Python interpreter kflow was started with still exists".into(),
            source,
        })
    })?;
    if !out.status.success() {
        return Err(Error::System(SystemError::Spawn {
            what,
            fix: "check the Python installation".into(),
            source: std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        }));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a setup step with its output in the job's log, where the user looks for it.
fn run(cmd: &mut Command, log: &mut File, step: &str) -> Result<()> {
    let out = log.try_clone().map_err(Error::io("opening log", "log"))?;
    let err = log.try_clone().map_err(Error::io("opening log", "log"))?;
    let status = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(|source| {
            Error::System(SystemError::Spawn {
                what: step.to_string(),
                fix: "check that Python and pip are installed".into(),
                source,
            })
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::System(SystemError::Spawn {
            what: step.to_string(),
            fix: "check the package names and versions in the job's log above this line".into(),
            source: std::io::Error::other(format!("exited with {status}")),
        }))
    }
}
