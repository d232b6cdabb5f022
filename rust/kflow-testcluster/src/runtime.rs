//! How a container runs on this machine: the image table (image name -> local runtime) and the
//! bubblewrap sandbox that gives each container a read-only view of the host, a throwaway /tmp,
//! its volumes at their mountPaths and a generated /etc/hosts naming every pod and service.

use std::path::{Path, PathBuf};
use std::process::Stdio;

/// A local stand-in for an image.
#[derive(Debug, Clone, PartialEq)]
pub enum Runtime {
    /// The machine's Python (`python`, `python3`, `pip` on PATH), default command `python3`.
    Python(PathBuf),
    /// The machine's /bin/sh and coreutils, default command `sh`.
    Shell,
    /// A Jupyter image: Python, started as the image starts (`start-notebook.py`, see
    /// `NOTEBOOK_START`): a Jupyter Server on 8888 at `$NB_PREFIX`.
    Jupyter(PathBuf),
}

impl Runtime {
    /// The interpreter behind `python` in the container, if it has one.
    pub fn python(&self) -> Option<&Path> {
        match self {
            Runtime::Python(p) | Runtime::Jupyter(p) => Some(p),
            Runtime::Shell => None,
        }
    }
}

/// Ordered (substring, runtime) pairs; the first whose substring occurs in the image wins.
#[derive(Debug, Clone)]
pub struct ImageTable(pub Vec<(String, Runtime)>);

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("bad image mapping {0:?}: expected PATTERN=python[:INTERPRETER], PATTERN=jupyter[:INTERPRETER] or PATTERN=shell")]
    BadMapping(String),
}

/// The real interpreter behind `python3`: pyenv shims do not work inside the sandbox, and a
/// virtualenv's python (perhaps under /tmp, which pods do not see) is resolved to its base, so
/// pods get the machine's Python and never the test runner's environment.
pub fn host_python() -> PathBuf {
    std::process::Command::new("python3")
        .args(["-c", "import os, sys; print(os.path.realpath(getattr(sys, '_base_executable', None) or sys.executable))"])
        .stderr(Stdio::null())
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| PathBuf::from(s.trim()))
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| PathBuf::from("/usr/bin/python3"))
}

impl ImageTable {
    pub fn default_table(python: PathBuf) -> Self {
        let py = Runtime::Python(python.clone());
        ImageTable(vec![
            // First: Kubeflow's notebook images also name their framework (jupyter-pytorch-full).
            ("jupyter".into(), Runtime::Jupyter(python)),
            ("python".into(), py.clone()),
            ("pytorch".into(), py.clone()),
            ("torch".into(), py.clone()),
            ("tensorflow".into(), py.clone()),
            ("jupyter".into(), py.clone()),
            // Horovod's images are Python + Open MPI: what MPIJob clients default to.
            ("horovod".into(), py.clone()),
            ("kubeflow".into(), py),
            ("busybox".into(), Runtime::Shell),
            ("ubuntu".into(), Runtime::Shell),
            ("debian".into(), Runtime::Shell),
            ("alpine".into(), Runtime::Shell),
        ])
    }

    /// Adds `PATTERN=python[:INTERPRETER]`, `PATTERN=jupyter[:INTERPRETER]` or `PATTERN=shell`
    /// in front of the table.
    pub fn prepend(&mut self, spec: &str, python: &Path) -> Result<(), RuntimeError> {
        let (pattern, rt) = spec
            .split_once('=')
            .ok_or_else(|| RuntimeError::BadMapping(spec.into()))?;
        let rt = match rt.split_once(':') {
            Some(("python", interp)) => Runtime::Python(PathBuf::from(interp)),
            Some(("jupyter", interp)) => Runtime::Jupyter(PathBuf::from(interp)),
            None if rt == "python" => Runtime::Python(python.to_path_buf()),
            None if rt == "jupyter" => Runtime::Jupyter(python.to_path_buf()),
            None if rt == "shell" => Runtime::Shell,
            _ => return Err(RuntimeError::BadMapping(spec.into())),
        };
        self.0.insert(0, (pattern.to_string(), rt));
        Ok(())
    }

    pub fn resolve(&self, image: &str) -> Option<&Runtime> {
        self.0
            .iter()
            .find(|(p, _)| image.contains(p.as_str()))
            .map(|(_, r)| r)
    }
}

/// Whether bubblewrap can create its namespaces here (it cannot in some containers). Set
/// `KFLOW_TESTCLUSTER_NO_BWRAP=1` to force the unsandboxed fallback.
pub fn bwrap_available() -> bool {
    if std::env::var("KFLOW_TESTCLUSTER_NO_BWRAP").is_ok_and(|v| v == "1") {
        return false;
    }
    std::process::Command::new("bwrap")
        .args([
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--unshare-pid",
            "--",
            "true",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub const SANDBOX_BIN: &str = "/.kflow/bin";

/// Writes the per-container bin dir that puts the runtime's `python`/`pip` (and a Jupyter
/// image's start command) on PATH.
pub fn write_bin_dir(dir: &Path, rt: &Runtime) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    if let Runtime::Jupyter(interp) = rt {
        use std::os::unix::fs::PermissionsExt;
        let start = dir.join(NOTEBOOK_START);
        // The interpreter by its own path, not a link to it: a virtualenv's python only
        // finds the virtualenv (and its jupyter_server) when started as itself.
        std::fs::write(
            &start,
            format!("#!{}\n{NOTEBOOK_START_SCRIPT}", interp.display()),
        )?;
        std::fs::set_permissions(&start, std::fs::Permissions::from_mode(0o755))?;
    }
    if let Some(interp) = rt.python() {
        use std::os::unix::fs::PermissionsExt;
        // A virtualenv's python finds its virtualenv only when started by its own path (it
        // looks for pyvenv.cfg beside the path it was started as), so it gets a wrapper; the
        // machine's Python a plain link.
        let venv = interp
            .parent()
            .and_then(Path::parent)
            .is_some_and(|root| root.join("pyvenv.cfg").exists());
        for name in ["python", "python3"] {
            let link = dir.join(name);
            let _ = std::fs::remove_file(&link);
            if venv {
                std::fs::write(
                    &link,
                    format!("#!/bin/sh\nexec {} \"$@\"\n", interp.display()),
                )?;
                std::fs::set_permissions(&link, std::fs::Permissions::from_mode(0o755))?;
            } else {
                std::os::unix::fs::symlink(interp, &link)?;
            }
        }
        let pip = dir.join("pip");
        std::fs::write(
            &pip,
            format!("#!/bin/sh\nexec {} -m pip \"$@\"\n", interp.display()),
        )?;
        std::fs::set_permissions(&pip, std::fs::Permissions::from_mode(0o755))?;
        let pip3 = dir.join("pip3");
        let _ = std::fs::remove_file(&pip3);
        std::os::unix::fs::symlink("pip", &pip3)?;
        let torchrun = dir.join("torchrun");
        let _ = std::fs::remove_file(&torchrun);
        match interp
            .parent()
            .map(|d| d.join("torchrun"))
            .filter(|t| t.exists())
        {
            Some(real) => std::os::unix::fs::symlink(real, &torchrun)?,
            None => {
                std::fs::write(
                    &torchrun,
                    format!("#!{}\n{TORCHRUN_STANDIN}", interp.display()),
                )?;
                std::fs::set_permissions(&torchrun, std::fs::Permissions::from_mode(0o755))?;
            }
        }
        // Always the stand-in: a host's real Open MPI would need its libraries and orted in
        // every pod, which the test cluster does not provide.
        let mpirun = dir.join("mpirun");
        let _ = std::fs::remove_file(&mpirun);
        std::fs::write(
            &mpirun,
            format!(
                "#!{}
{MPIRUN_STANDIN}",
                interp.display()
            ),
        )?;
        std::fs::set_permissions(&mpirun, std::fs::Permissions::from_mode(0o755))?;
        for alias in ["mpiexec", "orterun"] {
            let link = dir.join(alias);
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink("mpirun", &link)?;
        }
    }
    Ok(())
}

/// A Jupyter image's start command, as jupyter/docker-stacks images name it.
pub const NOTEBOOK_START: &str = "start-notebook.py";
const NOTEBOOK_START_SCRIPT: &str = include_str!("notebook_start.py");

/// `mpirun` for MPIJob launchers: ranks on the hostfile's slots, started through the rsh agent
/// (see the script's docstring).
const MPIRUN_STANDIN: &str = include_str!("mpirun_standin.py");

/// `torchrun` where the runtime has no torch (the Kubeflow SDKs launch multi-node jobs with it):
/// skips torchrun's own options and runs the script once in this process, i.e. one process per
/// pod with the RANK/WORLD_SIZE the operator set.
const TORCHRUN_STANDIN: &str = r#"import os, runpy, sys
args = sys.argv[1:]
no_value = {"--standalone", "--no-python", "--no_python", "--run-path", "--run_path"}
module = False
i = 0
while i < len(args) and args[i].startswith("-"):
    a = args[i]
    if a in ("-m", "--module"):
        module = True
        i += 1
    elif "=" in a or a in no_value:
        i += 1
    else:
        i += 2
if i >= len(args):
    sys.exit("torchrun (kflow-testcluster stand-in): no training script given")
sys.argv = args[i:]
os.environ.setdefault("LOCAL_RANK", "0")
os.environ.setdefault("LOCAL_WORLD_SIZE", "1")
os.environ.setdefault("GROUP_RANK", os.environ.get("PET_NODE_RANK", "0"))
if module:
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
else:
    sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[0])))
    runpy.run_path(sys.argv[0], run_name="__main__")
"#;

pub fn default_command(rt: &Runtime) -> Vec<String> {
    match rt {
        Runtime::Python(_) => vec!["python3".into()],
        Runtime::Jupyter(_) => vec![NOTEBOOK_START.into()],
        Runtime::Shell => vec!["sh".into()],
    }
}

/// A bind of a host path into the sandbox.
#[derive(Debug, Clone)]
pub struct Mount {
    pub source: PathBuf,
    pub target: String,
    pub read_only: bool,
}

pub struct SandboxSpec<'a> {
    pub hostname: &'a str,
    pub tmp_dir: &'a Path,
    pub bin_dir: &'a Path,
    pub hosts_file: &'a Path,
    pub mounts: &'a [Mount],
    pub working_dir: Option<&'a str>,
    pub argv: &'a [String],
}

/// Host top-level entries the sandbox does not take from the host.
const PRIVATE_TOP: &[&str] = &["proc", "dev", "tmp", "run", "sys", "lost+found"];

/// The bwrap argv. The new root is bwrap's tmpfs; host top-level dirs are bound read-only into
/// it (so new mountPaths such as /workspace can be created) and symlinks (/bin -> usr/bin)
/// are recreated.
pub fn bwrap_argv(spec: &SandboxSpec) -> Vec<String> {
    let mut a: Vec<String> = [
        "bwrap",
        "--die-with-parent",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| s.to_string()));
    push(&["--hostname", spec.hostname]);
    if let Ok(entries) = std::fs::read_dir("/") {
        let mut names: Vec<_> = entries.flatten().collect();
        names.sort_by_key(|e| e.file_name());
        for e in names {
            let name = e.file_name().to_string_lossy().into_owned();
            if PRIVATE_TOP.contains(&name.as_str()) {
                continue;
            }
            let host = format!("/{name}");
            match std::fs::read_link(&host) {
                Ok(target) => push(&["--symlink", &target.to_string_lossy(), &host]),
                Err(_) if e.path().is_dir() => push(&["--ro-bind", &host, &host]),
                Err(_) => {}
            }
        }
    }
    push(&[
        "--ro-bind",
        "/sys",
        "/sys",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/run",
    ]);
    // A mountPath (or workingDir) that does not exist inside a read-only host dir (`/etc/mpi`)
    // cannot be created there: that dir becomes a tmpfs holding read-only binds of its entries.
    let mut wanted: Vec<&str> = spec.mounts.iter().map(|m| m.target.as_str()).collect();
    wanted.extend(spec.working_dir);
    let mut opened: Vec<PathBuf> = Vec::new();
    for target in wanted {
        let Some(dir) = existing_ancestor(Path::new(target)) else {
            continue;
        };
        let private = dir == Path::new("/")
            || dir.starts_with("/tmp")
            || dir.starts_with("/run")
            || dir.starts_with("/proc")
            || dir.starts_with("/dev");
        if private || opened.iter().any(|o| o == &dir) {
            continue;
        }
        push(&["--tmpfs", &dir.to_string_lossy()]);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let p = e.path();
                let p = p.to_string_lossy();
                match std::fs::read_link(e.path()) {
                    Ok(link) => push(&["--symlink", &link.to_string_lossy(), &p]),
                    Err(_) => push(&["--ro-bind-try", &p, &p]),
                }
            }
        }
        opened.push(dir);
    }
    push(&["--bind", &spec.tmp_dir.to_string_lossy(), "/tmp"]);
    push(&[
        "--ro-bind",
        &spec.hosts_file.to_string_lossy(),
        "/etc/hosts",
    ]);
    push(&["--ro-bind", &spec.bin_dir.to_string_lossy(), SANDBOX_BIN]);
    for m in spec.mounts {
        let flag = if m.read_only { "--ro-bind" } else { "--bind" };
        push(&[flag, &m.source.to_string_lossy(), &m.target]);
    }
    if let Some(wd) = spec.working_dir {
        // The kubelet creates a missing workingDir; bwrap can only create it outside host dirs.
        if !Path::new(wd).exists() {
            push(&["--dir", wd]);
        }
        push(&["--chdir", wd]);
    } else {
        push(&["--chdir", "/"]);
    }
    push(&["--"]);
    a.extend(spec.argv.iter().cloned());
    a
}

/// The deepest ancestor of a missing `target` that exists on the host (None if `target` exists).
fn existing_ancestor(target: &Path) -> Option<PathBuf> {
    if target.exists() {
        return None;
    }
    let mut cur = target.parent();
    while let Some(p) = cur {
        if p.is_dir() {
            return Some(p.to_path_buf());
        }
        cur = p.parent();
    }
    None
}

/// Parses a Kubernetes quantity ("64Mi", "1G", "500m", "1e3") into bytes.
pub fn parse_quantity(q: &str) -> Option<u64> {
    let q = q.trim();
    let suffixes: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("k", 1e3),
        ("K", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("m", 1e-3),
    ];
    for (s, mult) in suffixes {
        if let Some(num) = q.strip_suffix(s) {
            return num.parse::<f64>().ok().map(|n| (n * mult) as u64);
        }
    }
    q.parse::<f64>().ok().map(|n| n as u64)
}

/// Resident memory (bytes) of `pid` and all its descendants, read from /proc.
pub fn tree_rss(pid: u32) -> u64 {
    let mut children: std::collections::HashMap<u32, Vec<u32>> = std::collections::HashMap::new();
    let mut rss: std::collections::HashMap<u32, u64> = std::collections::HashMap::new();
    let page = 4096u64;
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            // Fields after the parenthesised command: state ppid ... rss is field 24 overall.
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
                continue;
            };
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ppid = f.get(1).and_then(|x| x.parse::<u32>().ok()).unwrap_or(0);
            let pages = f.get(21).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
            children.entry(ppid).or_default().push(p);
            rss.insert(p, pages * page);
        }
    }
    let mut total = 0;
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        total += rss.get(&p).copied().unwrap_or(0);
        if let Some(c) = children.get(&p) {
            stack.extend(c);
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("64Mi"), Some(64 * 1024 * 1024));
        assert_eq!(parse_quantity("1G"), Some(1_000_000_000));
        assert_eq!(parse_quantity("1000"), Some(1000));
        assert_eq!(parse_quantity("junk"), None);
    }

    #[test]
    fn image_table() {
        let mut t = ImageTable::default_table(PathBuf::from("/usr/bin/python3"));
        assert!(matches!(
            t.resolve("docker.io/pytorch/pytorch:2.3"),
            Some(Runtime::Python(_))
        ));
        assert_eq!(t.resolve("busybox:1.36"), Some(&Runtime::Shell));
        assert_eq!(t.resolve("nosuch/image:1"), None);
        assert!(matches!(
            t.resolve("kubeflownotebookswg/jupyter-pytorch-full:v1.9.0"),
            Some(Runtime::Jupyter(_))
        ));
        t.prepend("myorg/=shell", Path::new("/x")).unwrap();
        assert_eq!(t.resolve("myorg/trainer-python"), Some(&Runtime::Shell));
        assert!(t.prepend("bad", Path::new("/x")).is_err());
    }
}
