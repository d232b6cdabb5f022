//! The kubelet: runs each pod's containers as local processes (under bubblewrap when the
//! machine allows it), turns their stdout/stderr into timestamped logs, and reports phases,
//! container states, restarts (Always/OnFailure/Never with back-off), OOMKilled and events.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{broadcast::error::RecvError, mpsc, watch};

use crate::events;
use crate::injected::Injector;
use crate::logs::log_file;
use crate::resources;
use crate::runtime::{self, ImageTable, Runtime, SandboxSpec};
use crate::scheduler::{Decision, Scheduler};
use crate::store::{now_rfc3339, now_rfc3339_nanos, EventType, Store};
use crate::volumes;

pub const NODE_NAME: &str = "kflow-node";

pub struct KubeletConfig {
    pub state_dir: PathBuf,
    pub images: ImageTable,
    /// Run containers under bubblewrap; false runs them as plain child processes (no mounts).
    pub sandbox: bool,
    pub api_port: u16,
    /// First restart back-off; doubles per restart up to 10x. The real kubelet uses 10s.
    pub backoff: Duration,
    /// A folder of wheels pods may `pip install` from (PIP_FIND_LINKS); pip never uses an index.
    pub wheel_dir: Option<PathBuf>,
    /// Service-account files and MPI launchers' kubectl.
    pub injector: Injector,
}

pub struct Kubelet {
    store: Arc<Store>,
    cfg: KubeletConfig,
    /// Pods being run, by uid; sending `true` stops them (the pod was deleted).
    running: Mutex<HashMap<String, watch::Sender<bool>>>,
    hosts_lock: Mutex<()>,
    /// (pod uid, container) -> how its current instance runs, for pods/exec.
    exec_contexts: Mutex<HashMap<(String, String), Arc<ExecContext>>>,
    scheduler: Scheduler,
}

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
        cmd
    }
}

#[derive(Debug)]
struct Exit {
    code: i64,
    oom: bool,
    started_at: String,
    finished_at: String,
}

/// Ways a container fails to start, reported as a waiting state.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("{0}")]
    Config(String),
    #[error("failed to start container: {0}")]
    Spawn(String),
}

enum Outcome {
    Exited(Exit),
    Cancelled,
}

impl Kubelet {
    pub fn new(store: Arc<Store>, cfg: KubeletConfig) -> Arc<Kubelet> {
        Arc::new(Kubelet {
            store,
            cfg,
            running: Mutex::new(HashMap::new()),
            hosts_lock: Mutex::new(()),
            exec_contexts: Mutex::new(HashMap::new()),
            scheduler: Scheduler::default(),
        })
    }

    pub async fn run(self: Arc<Self>) {
        let mut rx = self.store.subscribe();
        self.resync();
        loop {
            match rx.recv().await {
                Ok(c) if c.resource.plural == "pods" => match c.kind {
                    EventType::Deleted => {
                        self.stop(c.object["metadata"]["uid"].as_str().unwrap_or(""));
                        self.scheduler.capacity_freed();
                        // Logs are per pod: a new pod of the same name (an MPIJob or
                        // PyTorchJob run again) must not show the old one's.
                        let any = log_file(&self.cfg.state_dir, c.namespace(), c.name(), "c", 0);
                        if let (Some(dir), false) =
                            (any.parent().and_then(Path::parent), c.name().is_empty())
                        {
                            let _ = std::fs::remove_dir_all(dir);
                        }
                    }
                    _ => {
                        if matches!(
                            c.object["status"]["phase"].as_str(),
                            Some("Succeeded" | "Failed")
                        ) {
                            self.scheduler.capacity_freed();
                        }
                        self.ensure(&c.object)
                    }
                },
                Ok(c) if c.resource.plural == "nodes" => self.scheduler.capacity_freed(),
                Ok(c) if c.resource.plural == "services" => self.write_hosts(),
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => self.resync(),
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// Stops every pod process (server shutdown).
    pub fn shutdown(&self) {
        let senders: Vec<_> = self
            .running
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        for s in senders {
            let _ = s.send(true);
        }
    }

    fn resync(self: &Arc<Self>) {
        let live = self
            .store
            .list(resources::pods(), None, None, None, &|_| true)
            .items;
        let uids: Vec<String> = live
            .iter()
            .filter_map(|p| p["metadata"]["uid"].as_str().map(str::to_string))
            .collect();
        let gone: Vec<String> = self
            .running
            .lock()
            .map(|m| m.keys().filter(|u| !uids.contains(u)).cloned().collect())
            .unwrap_or_default();
        for uid in gone {
            self.stop(&uid);
        }
        for p in live {
            self.ensure(&p);
        }
    }

    fn stop(&self, uid: &str) {
        if let Ok(mut m) = self.exec_contexts.lock() {
            m.retain(|(u, _), _| u != uid);
        }
        if let Some(tx) = self.running.lock().ok().and_then(|mut m| m.remove(uid)) {
            let _ = tx.send(true);
        }
    }

    fn ensure(self: &Arc<Self>, pod: &Value) {
        let uid = pod["metadata"]["uid"].as_str().unwrap_or("").to_string();
        if matches!(
            pod["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed")
        ) {
            return;
        }
        let rx = {
            let Ok(mut m) = self.running.lock() else {
                return;
            };
            if m.contains_key(&uid) {
                return;
            }
            let (tx, rx) = watch::channel(false);
            m.insert(uid.clone(), tx);
            rx
        };
        let me = self.clone();
        let pod = pod.clone();
        tokio::spawn(async move {
            me.clone().run_pod(pod, rx).await;
            if let Ok(mut m) = me.running.lock() {
                m.remove(&uid);
            }
        });
    }

    /// Rewrites the shared /etc/hosts in place (bind mounts follow the inode): every pod and
    /// service resolves to 127.0.0.1 under its short and cluster names.
    fn write_hosts(&self) {
        let _guard = self.hosts_lock.lock();
        let mut text =
            String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        for p in self
            .store
            .list(resources::pods(), None, None, None, &|_| true)
            .items
        {
            let ns = p["metadata"]["namespace"].as_str().unwrap_or("");
            let name = p["metadata"]["name"].as_str().unwrap_or("");
            let mut names = vec![name.to_string()];
            if let (Some(h), Some(sub)) = (
                p["spec"]["hostname"].as_str(),
                p["spec"]["subdomain"].as_str(),
            ) {
                names.push(format!("{h}.{sub}.{ns}.svc.cluster.local"));
                names.push(format!("{h}.{sub}.{ns}.svc"));
                names.push(format!("{h}.{sub}"));
            }
            text.push_str(&format!("127.0.0.1\t{}\n", names.join(" ")));
        }
        let svc = resources::find("", "v1", "services").expect("served");
        for s in self.store.list(svc, None, None, None, &|_| true).items {
            let ns = s["metadata"]["namespace"].as_str().unwrap_or("");
            let n = s["metadata"]["name"].as_str().unwrap_or("");
            text.push_str(&format!(
                "127.0.0.1\t{n} {n}.{ns} {n}.{ns}.svc {n}.{ns}.svc.cluster.local\n"
            ));
        }
        let path = self.hosts_path();
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&path)?;
            f.write_all(text.as_bytes())
        };
        let _ = write();
    }

    fn hosts_path(&self) -> PathBuf {
        self.cfg.state_dir.join("hosts")
    }

    /// Read-modify-write of the pod's status; false when the pod is gone or was replaced.
    fn update_pod(&self, ns: &str, name: &str, uid: &str, f: impl FnOnce(&mut Value)) -> bool {
        self.store
            .update_with(resources::pods(), ns, name, false, |old| {
                if old["metadata"]["uid"].as_str() != Some(uid) {
                    return Err(crate::error::ApiError::conflict(
                        "pods",
                        "",
                        name,
                        "pod was replaced",
                    ));
                }
                let mut new = old.clone();
                f(&mut new);
                recompute_phase(&mut new);
                Ok(new)
            })
            .is_ok()
    }

    fn event(&self, ns: &str, name: &str, t: &str, reason: &str, msg: &str) {
        if let Some(pod) = self.store.get(resources::pods(), ns, name) {
            events::record(&self.store, &pod, t, reason, msg, "kubelet");
        }
    }

    async fn run_pod(self: Arc<Self>, pod: Value, mut cancel: watch::Receiver<bool>) {
        let ns = pod["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let name = pod["metadata"]["name"].as_str().unwrap_or("").to_string();
        let uid = pod["metadata"]["uid"].as_str().unwrap_or("").to_string();
        let init: Vec<Value> = pod["spec"]["initContainers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let main: Vec<Value> = pod["spec"]["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let waiting = |c: &Value, reason: &str| -> Value {
            json!({"name": c["name"], "image": c["image"], "imageID": "", "ready": false, "started": false,
                   "restartCount": 0, "state": {"waiting": {"reason": reason}}, "lastState": {}})
        };
        if !self.wait_until_bound(&ns, &name, &uid, &mut cancel).await {
            return;
        }
        let scheduled = self.update_pod(&ns, &name, &uid, |p| {
            let now = now_rfc3339();
            p["status"] = json!({
                "phase": "Pending", "hostIP": "127.0.0.1", "podIP": "127.0.0.1",
                "podIPs": [{"ip": "127.0.0.1"}], "startTime": now, "qosClass": "BestEffort",
                "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now, "lastProbeTime": null}],
                "containerStatuses": main.iter().map(|c| waiting(c, "ContainerCreating")).collect::<Vec<_>>(),
            });
            if !init.is_empty() {
                p["status"]["initContainerStatuses"] = json!(init.iter().map(|c| waiting(c, "PodInitializing")).collect::<Vec<_>>());
            }
        });
        if !scheduled {
            return;
        }
        if let Some(p) = self.store.get(resources::pods(), &ns, &name) {
            events::record(
                &self.store,
                &p,
                "Normal",
                "Scheduled",
                &format!("Successfully assigned {ns}/{name} to {NODE_NAME}"),
                "default-scheduler",
            );
        }

        // Images: an image with no local runtime cannot be pulled.
        let mut runtimes: HashMap<String, Runtime> = HashMap::new();
        for (c, is_init) in init
            .iter()
            .map(|c| (c, true))
            .chain(main.iter().map(|c| (c, false)))
        {
            let cname = c["name"].as_str().unwrap_or("").to_string();
            let image = c["image"].as_str().unwrap_or("").to_string();
            match self.cfg.images.resolve(&image) {
                Some(rt) => {
                    runtimes.insert(cname, rt.clone());
                }
                None => {
                    self.event(
                        &ns,
                        &name,
                        "Normal",
                        "Pulling",
                        &format!("Pulling image \"{image}\""),
                    );
                    self.event(&ns, &name, "Warning", "Failed", &format!("Failed to pull image \"{image}\": rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": not found"));
                    self.event(&ns, &name, "Warning", "Failed", "Error: ErrImagePull");
                    self.event(
                        &ns,
                        &name,
                        "Normal",
                        "BackOff",
                        &format!("Back-off pulling image \"{image}\""),
                    );
                    self.event(&ns, &name, "Warning", "Failed", "Error: ImagePullBackOff");
                    self.update_pod(&ns, &name, &uid, |p| {
                        with_status(p, is_init, &cname, |s| {
                            s["state"] = json!({"waiting": {"reason": "ImagePullBackOff", "message": format!("Back-off pulling image \"{image}\"")}});
                        });
                    });
                    // Stays Pending, as a real pod with a bad image does, until deleted.
                    let _ = cancel.changed().await;
                    return;
                }
            }
        }
        for c in init.iter().chain(main.iter()) {
            let image = c["image"].as_str().unwrap_or("");
            self.event(
                &ns,
                &name,
                "Normal",
                "Pulled",
                &format!("Container image \"{image}\" already present on machine"),
            );
        }
        if !self.cfg.sandbox {
            self.event(&ns, &name, "Warning", "SandboxUnavailable", "bubblewrap cannot create namespaces here: containers run as plain processes and volumeMounts are not applied");
        }

        let pod_dir = self.cfg.state_dir.join("pods").join(&uid);
        let mut reported = false;
        let volumes = loop {
            let current = self
                .store
                .get(resources::pods(), &ns, &name)
                .unwrap_or(pod.clone());
            match volumes::prepare(&self.store, &self.cfg.state_dir, &pod_dir, &current) {
                Ok(v) => break v,
                Err(e) => {
                    if !reported {
                        self.event(&ns, &name, "Warning", "FailedMount", &e.to_string());
                        reported = true;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = cancel.changed() => return,
                    }
                }
            }
        };
        self.write_hosts();
        let restart_policy = pod["spec"]["restartPolicy"]
            .as_str()
            .unwrap_or("Always")
            .to_string();

        for c in &init {
            let cname = c["name"].as_str().unwrap_or("").to_string();
            let mut attempt = 0;
            loop {
                let rt = runtimes
                    .get(&cname)
                    .cloned()
                    .unwrap_or(runtime::Runtime::Shell);
                let policy = if restart_policy == "Never" {
                    "Never"
                } else {
                    "OnFailure"
                };
                let outcome = self
                    .run_container(
                        &pod,
                        c,
                        &rt,
                        true,
                        attempt,
                        policy,
                        &volumes,
                        &pod_dir,
                        &mut cancel,
                    )
                    .await;
                let Outcome::Exited(exit) = outcome else {
                    return;
                };
                if exit.code == 0 {
                    break;
                }
                if restart_policy == "Never" {
                    self.update_pod(&ns, &name, &uid, |p| {
                        // A failed init container fails the pod; main containers never start.
                        for s in p["status"]["containerStatuses"].as_array_mut().into_iter().flatten() {
                            s["state"] = json!({"terminated": {"exitCode": 1, "reason": "Error", "message": "init container failed"}});
                        }
                    });
                    return;
                }
                attempt += 1;
                if !self
                    .back_off(&ns, &name, &uid, &cname, true, attempt, &mut cancel)
                    .await
                {
                    return;
                }
            }
        }

        let mut handles = Vec::new();
        for c in main.clone() {
            let me = self.clone();
            let pod = pod.clone();
            let volumes = volumes.clone();
            let pod_dir = pod_dir.clone();
            let mut cancel = cancel.clone();
            let rt = runtimes
                .get(c["name"].as_str().unwrap_or(""))
                .cloned()
                .unwrap_or(Runtime::Shell);
            let policy = restart_policy.clone();
            handles.push(tokio::spawn(async move {
                let (ns, name, uid) = (ns_of(&pod), name_of(&pod), uid_of(&pod));
                let cname = c["name"].as_str().unwrap_or("").to_string();
                let mut attempt = 0;
                loop {
                    let Outcome::Exited(exit) = me
                        .run_container(
                            &pod,
                            &c,
                            &rt,
                            false,
                            attempt,
                            &policy,
                            &volumes,
                            &pod_dir,
                            &mut cancel,
                        )
                        .await
                    else {
                        return;
                    };
                    if !restarts(&policy, exit.code) {
                        return;
                    }
                    attempt += 1;
                    if !me
                        .back_off(&ns, &name, &uid, &cname, false, attempt, &mut cancel)
                        .await
                    {
                        return;
                    }
                }
            }));
        }
        for h in handles {
            let _ = h.await;
        }
    }

    /// The scheduler's loop for one pod: bind when it fits, else stay Pending (Unschedulable)
    /// and try again when capacity frees. False when the pod went away.
    async fn wait_until_bound(
        &self,
        ns: &str,
        name: &str,
        uid: &str,
        cancel: &mut watch::Receiver<bool>,
    ) -> bool {
        loop {
            let mut freed = self.scheduler.subscribe();
            match self.scheduler.try_bind(&self.store, ns, name, uid) {
                Decision::Bound => return true,
                Decision::Gone => return false,
                Decision::Unschedulable(_) => {}
            }
            // The timer is a backstop, as the real scheduler's periodic flush of unschedulable pods.
            tokio::select! {
                _ = freed.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                _ = cancel.changed() => return false,
            }
        }
    }

    fn backoff_delay(&self, attempt: i64) -> Duration {
        self.cfg.backoff * 2u32.saturating_pow((attempt - 1).clamp(0, 3) as u32)
    }

    /// Waits the restart back-off (the CrashLoopBackOff state was written when the container
    /// exited). False when the pod was deleted meanwhile.
    #[allow(clippy::too_many_arguments)]
    async fn back_off(
        &self,
        ns: &str,
        name: &str,
        _uid: &str,
        _cname: &str,
        _init: bool,
        attempt: i64,
        cancel: &mut watch::Receiver<bool>,
    ) -> bool {
        let delay = self.backoff_delay(attempt);
        self.event(
            ns,
            name,
            "Warning",
            "BackOff",
            "Back-off restarting failed container",
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = cancel.changed() => false,
        }
    }

    /// Runs one instance of a container to its end (or until the pod is deleted).
    #[allow(clippy::too_many_arguments)]
    async fn run_container(
        &self,
        pod: &Value,
        c: &Value,
        rt: &Runtime,
        init: bool,
        attempt: i64,
        policy: &str,
        volumes: &[(String, PathBuf)],
        pod_dir: &Path,
        cancel: &mut watch::Receiver<bool>,
    ) -> Outcome {
        let (ns, name, uid) = (ns_of(pod), name_of(pod), uid_of(pod));
        let cname = c["name"].as_str().unwrap_or("").to_string();
        let mut child = loop {
            match self.start_process(pod, c, rt, attempt, volumes, pod_dir) {
                Ok(child) => break child,
                Err(e) => {
                    let reason = match e {
                        StartError::Config(_) => "CreateContainerConfigError",
                        StartError::Spawn(_) => "CreateContainerError",
                    };
                    self.event(&ns, &name, "Warning", "Failed", &format!("Error: {e}"));
                    self.update_pod(&ns, &name, &uid, |p| {
                        with_status(p, init, &cname, |s| {
                            s["state"] =
                                json!({"waiting": {"reason": reason, "message": e.to_string()}})
                        });
                    });
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        _ = cancel.changed() => return Outcome::Cancelled,
                    }
                }
            }
        };
        let started_at = now_rfc3339();
        let pid = child.id().unwrap_or(0);
        let container_id = format!("kflow://{uid}-{cname}-{attempt}");
        self.event(
            &ns,
            &name,
            "Normal",
            "Created",
            &format!("Created container {cname}"),
        );
        self.event(
            &ns,
            &name,
            "Normal",
            "Started",
            &format!("Started container {cname}"),
        );
        self.update_pod(&ns, &name, &uid, |p| {
            with_status(p, init, &cname, |s| {
                s["state"] = json!({"running": {"startedAt": started_at}});
                s["ready"] = json!(!init);
                s["started"] = json!(true);
                s["restartCount"] = json!(attempt);
                s["containerID"] = json!(container_id);
                s["imageID"] = json!(format!("kflow://{}", c["image"].as_str().unwrap_or("")));
            });
        });

        // stdout and stderr, line by line, into the log file with the kubelet's timestamps.
        let path = log_file(&self.cfg.state_dir, &ns, &name, &cname, attempt);
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(1024);
        let writer = tokio::spawn(async move {
            if let Some(parent) = path.parent() {
                let _ = tokio::fs::create_dir_all(parent).await;
            }
            let Ok(mut f) = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .await
            else {
                return;
            };
            while let Some(line) = rx.recv().await {
                let mut out = format!("{} ", now_rfc3339_nanos()).into_bytes();
                out.extend_from_slice(&line);
                out.push(b'\n');
                let _ = f.write_all(&out).await;
                let _ = f.flush().await;
            }
        });
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(tokio::spawn(pump(BufReader::new(out), tx.clone())));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(tokio::spawn(pump(BufReader::new(err), tx.clone())));
        }
        drop(tx);

        let limit = c["resources"]["limits"]["memory"]
            .as_str()
            .and_then(runtime::parse_quantity)
            .or_else(|| c["resources"]["limits"]["memory"].as_u64());
        let mut oom = false;
        let mut mem_tick = tokio::time::interval(Duration::from_millis(50));
        let status = loop {
            tokio::select! {
                st = child.wait() => break st.ok(),
                _ = cancel.changed() => {
                    kill_group(pid);
                    let _ = child.wait().await;
                    return Outcome::Cancelled;
                }
                _ = mem_tick.tick(), if limit.is_some() => {
                    if runtime::tree_rss(pid) > limit.unwrap_or(u64::MAX) {
                        oom = true;
                        kill_group(pid);
                    }
                }
            }
        };
        // Orphans of the container (background jobs) die with it, as with a container's pid 1.
        kill_group(pid);
        for r in readers {
            let _ = r.await;
        }
        let _ = writer.await;
        let code = match status {
            Some(s) => s.code().map(i64::from).unwrap_or_else(|| {
                use std::os::unix::process::ExitStatusExt;
                128 + i64::from(s.signal().unwrap_or(9))
            }),
            None => 255,
        };
        let code = if oom { 137 } else { code };
        let exit = Exit {
            code,
            oom,
            started_at,
            finished_at: now_rfc3339(),
        };
        let reason = if exit.oom {
            "OOMKilled"
        } else if code == 0 {
            "Completed"
        } else {
            "Error"
        };
        // One write for the exit and the restart decision, so no observer ever sees a pod that
        // will restart as Failed or Succeeded.
        let restart = restarts(policy, code);
        let delay = self.backoff_delay(attempt + 1);
        self.update_pod(&ns, &name, &uid, |p| {
            with_status(p, init, &cname, |s| {
                let terminated = json!({"exitCode": exit.code, "reason": reason,
                    "startedAt": exit.started_at, "finishedAt": exit.finished_at, "containerID": s["containerID"].clone()});
                if restart {
                    s["lastState"] = json!({"terminated": terminated});
                    let msg = format!("back-off {}s restarting failed container={cname} pod={name}_{ns}({uid})", delay.as_secs().max(1));
                    s["state"] = json!({"waiting": {"reason": "CrashLoopBackOff", "message": msg}});
                    s["restartCount"] = json!(attempt + 1);
                } else {
                    s["state"] = json!({"terminated": terminated});
                }
                s["ready"] = json!(false);
                s["started"] = json!(false);
            });
        });
        if code != 0 {
            self.event(
                &ns,
                &name,
                "Warning",
                "Failed",
                &format!("Container {cname} terminated: {reason} (exit code {code})"),
            );
        }
        Outcome::Exited(exit)
    }

    fn start_process(
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
        let command: Vec<String> = c["command"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .map(expand)
            .collect();
        let args: Vec<String> = c["args"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .map(expand)
            .collect();
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

    /// How to run more commands in a running container (pods/exec).
    pub fn exec_context(&self, uid: &str, container: &str) -> Option<Arc<ExecContext>> {
        self.exec_contexts
            .lock()
            .ok()?
            .get(&(uid.to_string(), container.to_string()))
            .cloned()
    }

    /// The container's environment: envFrom, then env (value with $(VAR) expansion, or
    /// valueFrom fieldRef / configMapKeyRef / secretKeyRef).
    fn container_env(&self, pod: &Value, c: &Value) -> Result<Vec<(String, String)>, StartError> {
        let ns = ns_of(pod);
        let cms = resources::find("", "v1", "configmaps").expect("served");
        let secrets = resources::find("", "v1", "secrets").expect("served");
        let b64 = base64::engine::general_purpose::STANDARD;
        let decode =
            |s: &str| String::from_utf8_lossy(&b64.decode(s).unwrap_or_default()).into_owned();
        let mut env: Vec<(String, String)> = Vec::new();
        let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
            env.retain(|(x, _)| *x != k);
            env.push((k, v));
        };
        for from in c["envFrom"].as_array().into_iter().flatten() {
            let prefix = from["prefix"].as_str().unwrap_or("");
            let (res, r, secret) = if from["secretRef"].is_object() {
                (secrets, &from["secretRef"], true)
            } else {
                (cms, &from["configMapRef"], false)
            };
            let n = r["name"].as_str().unwrap_or("");
            match self.store.get(res, &ns, n) {
                Some(obj) => {
                    for (k, v) in obj["data"].as_object().into_iter().flatten() {
                        let s = v.as_str().unwrap_or("");
                        set(
                            &mut env,
                            format!("{prefix}{k}"),
                            if secret { decode(s) } else { s.to_string() },
                        );
                    }
                }
                None if r["optional"] == json!(true) => {}
                None => {
                    return Err(StartError::Config(format!(
                        "{} \"{n}\" not found",
                        if secret { "secret" } else { "configmap" }
                    )))
                }
            }
        }
        for e in c["env"].as_array().into_iter().flatten() {
            let k = e["name"].as_str().unwrap_or("").to_string();
            let vf = &e["valueFrom"];
            let v = if let Some(path) = vf["fieldRef"]["fieldPath"].as_str() {
                field_ref(pod, path)
            } else if vf["configMapKeyRef"].is_object() || vf["secretKeyRef"].is_object() {
                let secret = vf["secretKeyRef"].is_object();
                let r = if secret {
                    &vf["secretKeyRef"]
                } else {
                    &vf["configMapKeyRef"]
                };
                let (n, key) = (
                    r["name"].as_str().unwrap_or(""),
                    r["key"].as_str().unwrap_or(""),
                );
                let obj = self.store.get(if secret { secrets } else { cms }, &ns, n);
                let raw = obj
                    .as_ref()
                    .and_then(|o| o["data"][key].as_str().map(str::to_string));
                match raw {
                    Some(s) => {
                        if secret {
                            decode(&s)
                        } else {
                            s
                        }
                    }
                    None if r["optional"] == json!(true) => continue,
                    None if obj.is_none() => {
                        return Err(StartError::Config(format!(
                            "{} \"{n}\" not found",
                            if secret { "secret" } else { "configmap" }
                        )))
                    }
                    None => {
                        return Err(StartError::Config(format!(
                            "couldn't find key {key} in {} {ns}/{n}",
                            if secret { "Secret" } else { "ConfigMap" }
                        )))
                    }
                }
            } else if vf["resourceFieldRef"].is_object() {
                let res = vf["resourceFieldRef"]["resource"].as_str().unwrap_or("");
                let (kind, what) = res.split_once('.').unwrap_or(("limits", "cpu"));
                c["resources"][kind][what]
                    .as_str()
                    .and_then(runtime::parse_quantity)
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "0".into())
            } else {
                expand_vars(e["value"].as_str().unwrap_or(""), &env)
            };
            set(&mut env, k, v);
        }
        Ok(env)
    }
}

/// Whether a container that exited with `code` is started again under the pod restartPolicy.
fn restarts(policy: &str, code: i64) -> bool {
    policy == "Always" || (policy == "OnFailure" && code != 0)
}

async fn pump<R: tokio::io::AsyncRead + Unpin>(mut r: BufReader<R>, tx: mpsc::Sender<Vec<u8>>) {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                while buf.last() == Some(&b'\n') || buf.last() == Some(&b'\r') {
                    buf.pop();
                }
                if tx.send(buf.clone()).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn kill_group(pid: u32) {
    if pid > 0 {
        // SAFETY: kill(2) with a negative pid signals the process group we created for the child.
        unsafe {
            libc::kill(-(pid as i32), libc::SIGKILL);
        }
    }
}

fn ns_of(p: &Value) -> String {
    p["metadata"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_string()
}
fn name_of(p: &Value) -> String {
    p["metadata"]["name"].as_str().unwrap_or("").to_string()
}
fn uid_of(p: &Value) -> String {
    p["metadata"]["uid"].as_str().unwrap_or("").to_string()
}

fn field_ref(pod: &Value, path: &str) -> String {
    if let Some(rest) = path
        .strip_prefix("metadata.labels['")
        .and_then(|r| r.strip_suffix("']"))
    {
        return pod["metadata"]["labels"][rest]
            .as_str()
            .unwrap_or("")
            .to_string();
    }
    if let Some(rest) = path
        .strip_prefix("metadata.annotations['")
        .and_then(|r| r.strip_suffix("']"))
    {
        return pod["metadata"]["annotations"][rest]
            .as_str()
            .unwrap_or("")
            .to_string();
    }
    match path {
        "status.podIP" | "status.hostIP" => "127.0.0.1".into(),
        "spec.nodeName" => NODE_NAME.into(),
        _ => {
            let mut cur = pod;
            for p in path.split('.') {
                cur = &cur[p];
            }
            cur.as_str().map(str::to_string).unwrap_or_default()
        }
    }
}

/// Kubernetes `$(VAR)` expansion: known vars are replaced, `$$` escapes, unknown stay as is.
pub fn expand_vars(s: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(a) = after.strip_prefix('$') {
            out.push('$');
            rest = a;
        } else if let Some(inner) = after
            .strip_prefix('(')
            .and_then(|a| a.find(')').map(|j| (&a[..j], &a[j + 1..])))
        {
            match env.iter().rev().find(|(k, _)| k == inner.0) {
                Some((_, v)) => out.push_str(v),
                None => {
                    out.push_str("$(");
                    out.push_str(inner.0);
                    out.push(')');
                }
            }
            rest = inner.1;
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn with_status(pod: &mut Value, init: bool, cname: &str, f: impl FnOnce(&mut Value)) {
    let key = if init {
        "initContainerStatuses"
    } else {
        "containerStatuses"
    };
    if let Some(s) = pod["status"][key]
        .as_array_mut()
        .and_then(|a| a.iter_mut().find(|s| s["name"].as_str() == Some(cname)))
    {
        f(s);
    }
}

/// Pod phase and conditions from the container states, as the kubelet computes them.
fn recompute_phase(pod: &mut Value) {
    let statuses = pod["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let inits = pod["status"]["initContainerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let started = |s: &Value| {
        !s["state"]["running"].is_null()
            || !s["state"]["terminated"].is_null()
            || !s["lastState"]["terminated"].is_null()
    };
    let init_failed = inits.iter().any(|s| {
        s["state"]["terminated"]["exitCode"]
            .as_i64()
            .is_some_and(|c| c != 0)
    }) && pod["spec"]["restartPolicy"] == json!("Never");
    let all_terminated =
        !statuses.is_empty() && statuses.iter().all(|s| !s["state"]["terminated"].is_null());
    let phase = if init_failed {
        "Failed"
    } else if all_terminated {
        if statuses
            .iter()
            .all(|s| s["state"]["terminated"]["exitCode"] == json!(0))
        {
            "Succeeded"
        } else {
            "Failed"
        }
    } else if !statuses.is_empty() && statuses.iter().all(started) {
        "Running"
    } else {
        "Pending"
    };
    pod["status"]["phase"] = json!(phase);
    let ready = !statuses.is_empty() && statuses.iter().all(|s| !s["state"]["running"].is_null());
    let initialized = inits
        .iter()
        .all(|s| s["state"]["terminated"]["exitCode"] == json!(0));
    let now = now_rfc3339();
    let mut conds = pod["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut set = |t: &str, ok: bool, reason: Option<&str>| {
        let status = if ok { "True" } else { "False" };
        match conds.iter_mut().find(|c| c["type"] == json!(t)) {
            Some(c) if c["status"] == json!(status) => {}
            Some(c) => {
                c["status"] = json!(status);
                c["lastTransitionTime"] = json!(now);
                c["reason"] = reason.map(|r| json!(r)).unwrap_or(Value::Null);
            }
            None => {
                let mut c = json!({"type": t, "status": status, "lastTransitionTime": now, "lastProbeTime": null});
                if let Some(r) = reason {
                    c["reason"] = json!(r);
                }
                conds.push(c);
            }
        }
    };
    let done = matches!(phase, "Succeeded" | "Failed");
    let why = if done {
        Some("PodCompleted")
    } else if ready {
        None
    } else {
        Some("ContainersNotReady")
    };
    set(
        "Initialized",
        initialized || done,
        if initialized {
            None
        } else {
            Some("ContainersNotInitialized")
        },
    );
    set("ContainersReady", ready, why);
    set("Ready", ready, why);
    pod["status"]["conditions"] = json!(conds);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn var_expansion() {
        let env = vec![("A".to_string(), "1".to_string())];
        assert_eq!(expand_vars("x$(A)y $(B) $$(A) $", &env), "x1y $(B) $(A) $");
    }

    #[test]
    fn phases() {
        let mut p = json!({"spec": {"restartPolicy": "Never"}, "status": {"containerStatuses": [
            {"name": "a", "state": {"terminated": {"exitCode": 0}}},
            {"name": "b", "state": {"running": {}}}]}});
        recompute_phase(&mut p);
        assert_eq!(p["status"]["phase"], "Running");
        p["status"]["containerStatuses"][1]["state"] = json!({"terminated": {"exitCode": 2}});
        recompute_phase(&mut p);
        assert_eq!(p["status"]["phase"], "Failed");
        p["status"]["containerStatuses"][1]["state"] =
            json!({"waiting": {"reason": "ContainerCreating"}});
        recompute_phase(&mut p);
        assert_eq!(p["status"]["phase"], "Pending");
    }
}
