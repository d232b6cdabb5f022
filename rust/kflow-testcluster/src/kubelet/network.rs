//! Pod networks. A StatefulSet's pod (a Notebook's) gets a network namespace of its own, as
//! every pod has on a real node: a private loopback, so two notebooks both listen on 8888.
//! Other pods (training jobs) stay on the node's network, where every pod and service name
//! resolves to 127.0.0.1 and replicas reach each other, as before.
//!
//! A pause process (bubblewrap with `--unshare-net`, which brings up loopback; the pause
//! container's part) holds the namespace for the pod's life. Containers and exec'd commands
//! join it before bubblewrap starts (`setns` between fork and exec); port-forward dials inside
//! it from a thread that joins it; a relay listening inside it on the API server's port
//! forwards to the API server, so the pod still reaches it at 127.0.0.1.
//!
//! Joining needs the namespace to belong to this process's user namespace: true when the
//! cluster runs as root; bubblewrap without privileges makes a user namespace of its own. The
//! kubelet tries it once at start (`supported`); where it fails, every pod stays on the node's
//! network and pods that listen on one port collide, as they always did here.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

/// The pause process's bubblewrap: the host read-only, its own network and pids.
const PAUSE: &[&str] = &[
    "bwrap",
    "--die-with-parent",
    "--unshare-net",
    "--unshare-pid",
    "--ro-bind",
    "/",
    "/",
    "--dev",
    "/dev",
    "--proc",
    "/proc",
    "--",
    "sleep",
    "infinity",
];

/// A pod's network namespace, held open (and by the pause process) until dropped.
pub struct PodNetwork {
    netns: File,
    _pause: tokio::process::Child,
    relay: tokio::task::JoinHandle<()>,
}

impl Drop for PodNetwork {
    fn drop(&mut self) {
        self.relay.abort();
    }
}

/// Whether a pod gets a network of its own (see the module doc).
pub fn wants_own(pod: &Value) -> bool {
    pod["spec"]["hostNetwork"] != json!(true)
        && pod["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|o| o["kind"] == json!("StatefulSet"))
}

/// Runs `f` on a thread of its own that has joined `netns`: sockets it makes stay there.
fn in_netns<T: Send>(
    netns: &File,
    f: impl FnOnce() -> std::io::Result<T> + Send,
) -> std::io::Result<T> {
    let fd = netns.as_raw_fd();
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns on a valid namespace fd changes only this (short-lived) thread.
            if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("network namespace thread panicked")))
    })
}

/// The network namespace of the pause process `pid` (bubblewrap's child, once it is there).
fn netns_of_child(pid: u32) -> std::io::Result<File> {
    let own = std::fs::read_link("/proc/self/ns/net")?;
    for _ in 0..200 {
        for e in std::fs::read_dir("/proc")?.flatten() {
            let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|x| x.parse::<u32>().ok());
            let ns = format!("/proc/{p}/ns/net");
            if ppid == Some(pid) && std::fs::read_link(&ns).is_ok_and(|l| l != own) {
                return File::open(ns);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(std::io::Error::other(
        "the pause process made no network namespace",
    ))
}

/// Whether pods can have networks of their own here: a pause process started and joined.
pub fn supported() -> bool {
    let Ok(mut pause) = std::process::Command::new(PAUSE[0])
        .args(&PAUSE[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let joined = netns_of_child(pause.id()).and_then(|ns| in_netns(&ns, || Ok(())));
    let _ = pause.kill();
    let _ = pause.wait();
    joined.is_ok()
}

impl PodNetwork {
    /// A new namespace with the API server's port relayed into it.
    pub async fn create(api_port: u16) -> std::io::Result<Arc<PodNetwork>> {
        let mut pause = tokio::process::Command::new(PAUSE[0])
            .args(&PAUSE[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let pid = pause.id().unwrap_or(0);
        let netns = match tokio::task::spawn_blocking(move || netns_of_child(pid)).await {
            Ok(Ok(ns)) => ns,
            Ok(Err(e)) => {
                let _ = pause.kill().await;
                return Err(e);
            }
            Err(e) => return Err(std::io::Error::other(e)),
        };
        let listener = in_netns(&netns, || {
            let l = std::net::TcpListener::bind(("127.0.0.1", api_port))?;
            l.set_nonblocking(true)?;
            Ok(l)
        })?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let relay = tokio::spawn(async move {
            while let Ok((mut inside, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Ok(mut api) =
                        tokio::net::TcpStream::connect(("127.0.0.1", api_port)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inside, &mut api).await;
                    }
                });
            }
        });
        Ok(Arc::new(PodNetwork {
            netns,
            _pause: pause,
            relay,
        }))
    }

    /// A connection to `port` inside the namespace.
    pub async fn dial(self: &Arc<Self>, port: u16) -> std::io::Result<tokio::net::TcpStream> {
        let me = self.clone();
        let stream = tokio::task::spawn_blocking(move || {
            in_netns(&me.netns, || {
                let s = std::net::TcpStream::connect(("127.0.0.1", port))?;
                s.set_nonblocking(true)?;
                Ok(s)
            })
        })
        .await
        .map_err(std::io::Error::other)??;
        tokio::net::TcpStream::from_std(stream)
    }

    /// Makes `cmd` start inside the namespace.
    pub fn enter_on_spawn(self: &Arc<Self>, cmd: &mut tokio::process::Command) {
        let fd = self.netns.as_raw_fd();
        // SAFETY: between fork and exec only the async-signal-safe setns runs; the fd stays
        // open as long as the command's ExecContext holds this network.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}
