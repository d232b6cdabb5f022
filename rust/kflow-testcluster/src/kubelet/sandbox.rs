//! The container's process: started under bubblewrap (or as a plain child process without
//! it) over the pod's mounts, with a fresh /tmp and bin dir per start and the env a kubelet
//! gives every container. `ExecContext` keeps what is needed to start more processes there.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use serde_json::Value;

use super::container::StartError;
use super::network::PodNetwork;
use super::{expand_vars, name_of, uid_of, Kubelet};
use crate::runtime::{self, Runtime, SandboxSpec};
use crate::volumes;

/// Everything needed to start a process inside a container's sandbox: its mounts, /tmp, PATH
/// and env. Exec'd commands get a sandbox of their own over the same folders (they do not see
/// the container's processes).
pub struct ExecContext {
    pub sandbox: bool,
    hostname: String,
    tmp_dir: PathBuf,
    bin_dir: PathBuf,
    hosts_file: PathBuf,
    mounts: Vec<runtime::Mount>,
    working_dir: Option<String>,
    env: Vec<(String, String)>,
    /// The pod's own network, which the process joins; None: the node's.
    network: Option<Arc<PodNetwork>>,
}

impl ExecContext {
    /// A command running `argv` in this container's sandbox (env cleared and set).
    pub fn command(&self, argv: &[String]) -> tokio::process::Command {
        let mut cmd = if self.sandbox {
            let spec = SandboxSpec {
                hostname: &self.hostname,
                tmp_dir: &self.tmp_dir,
                bin_dir: &self.bin_dir,
                hosts_file: &self.hosts_file,
                mounts: &self.mounts,
                working_dir: self.working_dir.as_deref(),
                argv,
            };
            let full = runtime::bwrap_argv(&spec);
            let mut cmd = tokio::process::Command::new(&full[0]);
            cmd.args(&full[1..]);
            cmd
        } else {
            let mut cmd =
                tokio::process::Command::new(argv.first().map(String::as_str).unwrap_or("true"));
            cmd.args(argv.iter().skip(1));
            let wd = self
                .working_dir
                .as_deref()
                .filter(|w| Path::new(w).is_dir())
                .map(PathBuf::from);
            cmd.current_dir(wd.unwrap_or_else(|| self.tmp_dir.clone()));
            cmd
        };
        cmd.env_clear();
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(net) = &self.network {
            net.enter_on_spawn(&mut cmd);
        }
        cmd
    }
}

impl Kubelet {
    /// Starts one instance of the container: argv from command/args (or the runtime's
    /// default), its own /tmp and bin dir, volume and service-account mounts, and the env.
    pub(super) fn start_process(
        &self,
        pod: &Value,
        c: &Value,
        rt: &Runtime,
        attempt: i64,
        volumes: &[(String, PathBuf)],
        pod_dir: &Path,
    ) -> Result<tokio::process::Child, StartError> {
        let cname = c["name"].as_str().unwrap_or("");
        let env = self.container_env(pod, c)?;
        let expand = |s: &str| expand_vars(s, &env);
        let words = |key: &str| -> Vec<String> {
            c[key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str())
                .map(expand)
                .collect()
        };
        let (command, args) = (words("command"), words("args"));
        let argv: Vec<String> = match (command.is_empty(), args.is_empty()) {
            (false, _) => command.into_iter().chain(args).collect(),
            (true, false) => args,
            (true, true) => runtime::default_command(rt),
        };
        // A fresh writable /tmp per container start: restarts do not see the old one's files.
        let inst_dir = pod_dir
            .join("containers")
            .join(format!("{cname}-{attempt}"));
        let tmp_dir = inst_dir.join("tmp");
        let bin_dir = inst_dir.join("bin");
        std::fs::create_dir_all(&tmp_dir).map_err(|e| StartError::Spawn(e.to_string()))?;
        runtime::write_bin_dir(&bin_dir, rt).map_err(|e| StartError::Spawn(e.to_string()))?;
        let mut mounts =
            volumes::mounts_for(c, volumes).map_err(|e| StartError::Config(e.to_string()))?;
        mounts.extend(
            self.cfg
                .injector
                .mounts(&self.store, pod, pod_dir)
                .map_err(|e| StartError::Spawn(format!("writing service-account files: {e}")))?,
        );
        // Pods get a private /tmp; a wheel folder under the host's /tmp (a checkout there, say)
        // would vanish behind it, so it is bound back in, read-only, at the same path.
        if let Some(w) = self
            .cfg
            .wheel_dir
            .as_ref()
            .filter(|w| w.starts_with("/tmp"))
        {
            mounts.push(runtime::Mount {
                source: w.clone(),
                target: w.to_string_lossy().into_owned(),
                read_only: true,
            });
        }
        // So would a Python environment there that an image is mapped to (a virtualenv whose
        // jupyter_server a notebook image runs): its root is bound back in the same way.
        if let Some(root) = rt
            .python()
            .filter(|p| p.starts_with("/tmp"))
            .and_then(|p| p.parent()?.parent())
        {
            mounts.push(runtime::Mount {
                source: root.to_path_buf(),
                target: root.to_string_lossy().into_owned(),
                read_only: true,
            });
        }
        let hostname = pod["spec"]["hostname"]
            .as_str()
            .unwrap_or(name_of(pod).as_str())
            .to_string();
        let working_dir = c["workingDir"]
            .as_str()
            .filter(|w| !w.is_empty())
            .map(str::to_string);
        let (bin, home) = if self.cfg.sandbox {
            (runtime::SANDBOX_BIN.to_string(), "/tmp".to_string())
        } else {
            (
                bin_dir.to_string_lossy().into_owned(),
                tmp_dir.to_string_lossy().into_owned(),
            )
        };
        let mut full_env: Vec<(String, String)> = vec![
            (
                "PATH".into(),
                format!("{bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
            ),
            ("HOME".into(), home.clone()),
            ("TMPDIR".into(), home),
            ("HOSTNAME".into(), hostname.clone()),
            ("LANG".into(), "C.UTF-8".into()),
            ("KUBERNETES_SERVICE_HOST".into(), "127.0.0.1".into()),
            (
                "KUBERNETES_SERVICE_PORT".into(),
                self.cfg.api_port.to_string(),
            ),
            // pip inside a pod never reaches the network, and installs land in the container's
            // writable HOME (site-packages is read-only), never in the machine's Python.
            ("PIP_NO_INDEX".into(), "1".into()),
            ("PIP_DISABLE_PIP_VERSION_CHECK".into(), "1".into()),
        ];
        if let Some(w) = &self.cfg.wheel_dir {
            full_env.push(("PIP_FIND_LINKS".into(), w.to_string_lossy().into_owned()));
        }
        full_env.extend(env);
        let ctx = Arc::new(ExecContext {
            sandbox: self.cfg.sandbox,
            hostname,
            tmp_dir,
            bin_dir,
            hosts_file: self.hosts_path(),
            mounts,
            working_dir,
            env: full_env,
            network: self.network(&uid_of(pod)),
        });
        if let Ok(mut m) = self.exec_contexts.lock() {
            m.insert((uid_of(pod), cname.to_string()), ctx.clone());
        }
        let mut cmd = ctx.command(&argv);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.process_group(0);
        cmd.kill_on_drop(true);
        cmd.spawn()
            .map_err(|e| StartError::Spawn(format!("{}: {e}", argv[0])))
    }
}
