//! A local port into a pod, through the API server's `pods/portforward` (no kubectl). Each
//! local connection gets its own forward stream, opened when the connection arrives, so a
//! stream the network or the API server drops ends only that connection: the next one (a
//! browser retries) gets a fresh stream, to the pod that serves the name then.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use tokio::net::{TcpListener, TcpStream};

use crate::backend::cluster::api_errors::api_error;
use crate::backend::cluster::ClusterBackend;
use crate::error::{Error, ResourceError, Result, SystemError};

use super::notebooks::NOTEBOOK_PORT;
use super::rows::NotebookState;
use super::Namespace;

/// A running forward from `127.0.0.1:<local_port>` to a pod's port. It stops when dropped
/// (or on [`PortForward::stop`]).
#[derive(Debug)]
pub struct PortForward {
    local_port: u16,
    url: String,
    counts: Arc<Counts>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    // Keeps the runtime the forward runs on alive as long as the forward.
    _backend: Arc<ClusterBackend>,
}

#[derive(Debug, Default)]
struct Counts {
    connections: AtomicU64,
    failed: AtomicU64,
}

impl PortForward {
    /// The local port.
    pub fn local_port(&self) -> u16 {
        self.local_port
    }

    /// The address to open: the notebook's URL on the local port.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Local connections forwarded so far.
    pub fn connections(&self) -> u64 {
        self.counts.connections.load(Ordering::Relaxed)
    }

    /// Connections whose forward stream could not be opened (pod gone, stream refused).
    pub fn failed_connections(&self) -> u64 {
        self.counts.failed.load(Ordering::Relaxed)
    }

    /// Stops listening; connections already forwarded end with their streams.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Namespace {
    /// Forwards a local port (`local_port`, or any free one) to a Ready Notebook server, and
    /// gives its URL there (`http://127.0.0.1:<port>/notebook/<namespace>/<name>/`). One
    /// stream is opened at once, so a refusal (RBAC, no pod) is an error here, not a dead
    /// link later.
    pub fn forward_notebook(&self, name: &str, local_port: Option<u16>) -> Result<PortForward> {
        let row = self.notebook(name)?;
        if row.state != NotebookState::Ready {
            return Err(Error::Resource(ResourceError::Stuck {
                    what: "Notebook server",
                name: name.to_string(),
                reason: format!(
                    "it is {}{}",
                    row.state.as_str(),
                    row.reason.map(|r| format!(" ({r})")).unwrap_or_default()
                ),
                fix: format!(
                    "wait until it is Ready (`kflow notebook create` waits; `kflow notebook start {name}` starts a stopped one)"
                ),
            }));
        }
        // The notebook controller's StatefulSet has one replica: its pod is `<name>-0`.
        let pod = format!("{name}-0");
        let mut forward = self.forward_pod(&pod, NOTEBOOK_PORT, local_port)?;
        forward.url = format!("http://127.0.0.1:{}{}", forward.local_port, row.url_path);
        Ok(forward)
    }

    /// Forwards a local port to `port` of pod `pod`.
    pub fn forward_pod(
        &self,
        pod: &str,
        port: u16,
        local_port: Option<u16>,
    ) -> Result<PortForward> {
        let pods: Api<Pod> = Api::namespaced(self.client().clone(), &self.name);
        let ns = self.name.clone();
        let listener = self.backend.block_on(async {
            // A first stream proves the pod can be reached before any URL is handed out.
            let probe = pods
                .portforward(pod, &[port])
                .await
                .map_err(|e| api_error(e, "create", "pods/portforward", &ns))?;
            probe.abort();
            TcpListener::bind(("127.0.0.1", local_port.unwrap_or(0)))
                .await
                .map_err(|source| {
                    Error::System(SystemError::Spawn {
                        what: format!("a listener on 127.0.0.1:{}", local_port.unwrap_or(0)),
                        fix: "pick another local port, or leave the port out to get a free one"
                            .into(),
                        source,
                    })
                })
        })?;
        let local_port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let counts = Arc::new(Counts::default());
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let (task_counts, pod) = (counts.clone(), pod.to_string());
        self.backend.runtime().spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => return,
                    accepted = listener.accept() => {
                        let Ok((conn, _)) = accepted else { continue };
                        task_counts.connections.fetch_add(1, Ordering::Relaxed);
                        let (pods, pod, counts) = (pods.clone(), pod.clone(), task_counts.clone());
                        tokio::spawn(async move {
                            if forward_one(&pods, &pod, port, conn).await.is_err() {
                                counts.failed.fetch_add(1, Ordering::Relaxed);
                            }
                        });
                    }
                }
            }
        });
        Ok(PortForward {
            local_port,
            url: format!("http://127.0.0.1:{local_port}/"),
            counts,
            stop: Some(stop),
            _backend: self.backend.clone(),
        })
    }
}

/// One local connection over its own forward stream, until either side closes.
async fn forward_one(
    pods: &Api<Pod>,
    pod: &str,
    port: u16,
    mut conn: TcpStream,
) -> std::result::Result<(), ()> {
    let mut forwarder = pods.portforward(pod, &[port]).await.map_err(|_| ())?;
    let mut stream = forwarder.take_stream(port).ok_or(())?;
    let _ = tokio::io::copy_bidirectional(&mut conn, &mut stream).await;
    drop(stream);
    forwarder.abort();
    Ok(())
}
