//! Starting and stopping a whole cluster: API server, training operator, kubelet, state
//! snapshots; plus the kubeconfig that points real clients at it and `TestCluster` for tests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::components::Component;
use crate::faults::{FaultConfig, Faults};
use crate::kubelet::{Kubelet, KubeletConfig};
use crate::resources;
use crate::runtime::{self, ImageTable};
use crate::server;
use crate::state::Cluster;
use crate::store::{Store, StoreError};
use crate::validation::{CrdError, CrdSchemas};

#[derive(Debug, Clone)]
pub struct Options {
    /// 0 picks a free port.
    pub port: u16,
    pub state_dir: PathBuf,
    /// The static bearer token; generated when None.
    pub token: Option<String>,
    /// CRD files whose openAPIV3Schema validates custom resources (`KFLOW_CRD_DIR`).
    pub crd_dir: Option<PathBuf>,
    /// Events kept for watch resumption; older resourceVersions get 410 Gone.
    pub watch_history: usize,
    /// Extra `PATTERN=python[:INTERP]` / `PATTERN=shell` image mappings, tried first.
    pub image_map: Vec<String>,
    /// Force the bubblewrap sandbox on or off; None detects it.
    pub sandbox: Option<bool>,
    pub restart_backoff: Duration,
    pub wheel_dir: Option<PathBuf>,
    pub faults: FaultConfig,
    /// Serve HTTPS (kubectl only sends bearer tokens over TLS); plain HTTP when false.
    pub tls: bool,
    /// Run the Keycloak-style realm at `/realms/<realm>/` (its tokens work on the API).
    pub idp: Option<crate::idp::IdpConfig>,
    /// With `idp`: also run the oauth2-proxy-style gateway on this port (0 = any free port).
    pub gateway_port: Option<u16>,
    /// Seed data for the web APIs behind the gateway (Pipelines, model registry).
    pub web_fixture: Option<serde_json::Value>,
    /// Serve mpi-operator's `kubeflow.org/v2beta1` MPIJob instead of the training operator's v1.
    pub mpi_v2beta1: bool,
    /// The node's capacity (what the scheduler fits pods into).
    pub node: crate::node::NodeConfig,
    /// The kubectl binary MPI launchers get at /opt/kube/kubectl; None searches PATH.
    pub kubectl: Option<PathBuf>,
    /// Kubeflow components this deployment does not have (`--without`): their APIs answer
    /// 404, their CRDs are not served, their controllers do not run.
    pub without: Vec<Component>,
    /// Images containing one of these cannot be pulled (ErrImagePull, ImagePullBackOff), as an
    /// image no registry has; images with no local runtime cannot either.
    pub unpullable_images: Vec<String>,
}

impl Options {
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Options {
            port: 0,
            state_dir: state_dir.into(),
            token: None,
            crd_dir: std::env::var_os("KFLOW_CRD_DIR").map(PathBuf::from),
            watch_history: 10_000,
            image_map: Vec::new(),
            sandbox: None,
            restart_backoff: Duration::from_millis(500),
            wheel_dir: None,
            faults: FaultConfig::default(),
            tls: true,
            idp: None,
            gateway_port: None,
            web_fixture: None,
            mpi_v2beta1: false,
            node: crate::node::NodeConfig::default(),
            kubectl: None,
            without: Vec::new(),
            unpullable_images: vec!["does-not-exist".into()],
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("creating state dir {path}: {source}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Crd(#[from] CrdError),
    #[error(transparent)]
    Image(#[from] runtime::RuntimeError),
    #[error("binding 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Jwt(#[from] crate::jwt::JwtError),
    #[error(transparent)]
    Kubectl(#[from] crate::kubectl_bin::KubectlError),
    #[error("test cluster thread: {0}")]
    Thread(String),
}

/// A running cluster inside a tokio runtime.
pub struct Running {
    pub addr: SocketAddr,
    pub token: String,
    pub cluster: Arc<Cluster>,
    pub kubelet: Arc<Kubelet>,
    pub sandboxed: bool,
    /// PEM of the CA that signed the serving certificate (None for plain HTTP).
    pub ca_pem: Option<String>,
    /// The oauth2-proxy-style gateway (`https://localhost:<port>`), when started.
    pub gateway_url: Option<String>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub fn base_url(&self) -> String {
        let scheme = if self.ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    pub fn kubeconfig(&self) -> String {
        kubeconfig(&self.base_url(), &self.token, self.ca_pem.as_deref())
    }

    /// Stops serving, kills pod processes and writes the final state snapshot.
    pub async fn stop(mut self) {
        self.kubelet.shutdown();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), h).await;
        }
        let _ = self.cluster.store.flush();
    }
}

fn make_token() -> String {
    let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0) as u64;
    let mixed = nanos.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (u64::from(std::process::id()) << 32);
    format!("kflow-{mixed:016x}")
}

/// Binds, starts every component and returns once the server accepts connections.
pub async fn start(opts: Options) -> Result<Running, StartError> {
    std::fs::create_dir_all(&opts.state_dir).map_err(|source| StartError::StateDir {
        path: opts.state_dir.clone(),
        source,
    })?;
    let store = Store::new(Some(opts.state_dir.clone()), opts.watch_history.max(1))?;
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        if store.get(resources::namespaces(), "", ns).is_none() {
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns},
                             "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
            let _ = store.create(resources::namespaces(), obj, false);
        }
    }
    let crds = match &opts.crd_dir {
        Some(d) => CrdSchemas::load(d)?,
        None => CrdSchemas::default(),
    };
    let unserved_mpi = if opts.mpi_v2beta1 { "v1" } else { "v2beta1" };
    let notebooks = !opts.without.contains(&Component::Notebooks);
    let hidden: Vec<&'static crate::resources::ResourceType> = resources::RESOURCES
        .iter()
        .filter(|r| {
            (r.plural == "mpijobs" && r.version == unserved_mpi)
                || (r.plural == "notebooks" && !notebooks)
        })
        .collect();
    register_crds(&store, &crds, &hidden);
    crate::node::register(&store, &opts.node);
    crate::storage::seed(&store);
    let kubectl = crate::kubectl_bin::find(opts.kubectl.as_deref())?;
    let python = runtime::host_python();
    let mut images = ImageTable::default_table(python.clone());
    for m in opts.image_map.iter().rev() {
        images.prepend(m, &python)?;
    }
    let sandboxed = opts.sandbox.unwrap_or_else(runtime::bwrap_available);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.port))
        .await
        .map_err(|source| StartError::Bind {
            port: opts.port,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        port: opts.port,
        source,
    })?;
    // The token is kept in the state dir so a restarted server accepts the old kubeconfig.
    let token_file = opts.state_dir.join("token");
    let token = match (&opts.token, std::fs::read_to_string(&token_file)) {
        (Some(t), _) => t.clone(),
        (None, Ok(t)) if !t.trim().is_empty() => t.trim().to_string(),
        _ => make_token(),
    };
    std::fs::write(&token_file, &token).map_err(|source| StartError::StateDir {
        path: token_file.clone(),
        source,
    })?;
    let tls = if opts.tls {
        Some(crate::tls::load_or_create(&opts.state_dir)?)
    } else {
        None
    };
    let base_url = format!("{}://{addr}", if tls.is_some() { "https" } else { "http" });
    let idp = match &opts.idp {
        Some(cfg) => {
            // Users' namespaces exist from the start, as Kubeflow's profile controller makes them.
            for ns in cfg.users.iter().flat_map(|u| u.namespaces.iter()) {
                if store.get(resources::namespaces(), "", ns).is_none() {
                    let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns},
                                     "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
                    let _ = store.create(resources::namespaces(), obj, false);
                }
            }
            let signer = crate::jwt::Signer::load_or_create(&opts.state_dir)?;
            let mut cfg = cfg.clone();
            if opts.gateway_port.is_some()
                && !cfg.clients.iter().any(|c| c == crate::gateway::CLIENT_ID)
            {
                cfg.clients.push(crate::gateway::CLIENT_ID.into());
            }
            if cfg.dex.is_some() && !cfg.clients.iter().any(|c| c == crate::dex::REALM_CLIENT) {
                cfg.clients.push(crate::dex::REALM_CLIENT.into());
            }
            Some(Arc::new(crate::idp::Idp::new(
                cfg,
                signer,
                base_url.clone(),
            )))
        }
        None => None,
    };
    let sa_tokens = Arc::new(crate::serviceaccount::TokenIssuer::new(&token));
    let kubelet = Kubelet::new(
        store.clone(),
        KubeletConfig {
            state_dir: opts.state_dir.clone(),
            images,
            sandbox: sandboxed,
            api_port: addr.port(),
            backoff: opts.restart_backoff,
            unpullable_images: opts.unpullable_images.clone(),
            wheel_dir: opts.wheel_dir.clone(),
            injector: crate::injected::Injector {
                tokens: sa_tokens.clone(),
                ca_pem: tls.as_ref().map(|t| t.ca_pem.clone()),
                kubectl,
            },
        },
    );
    let cluster = Arc::new(Cluster {
        store: store.clone(),
        state_dir: opts.state_dir.clone(),
        admin_token: token.clone(),
        sa_tokens,
        crds,
        server_addr: addr.to_string(),
        faults: Faults::new(opts.faults.clone()),
        kubelet: kubelet.clone(),
        hidden,
        dex: idp.as_ref().and_then(|i| {
            i.config
                .dex
                .clone()
                .map(|d| Arc::new(crate::dex::Dex::new(i.clone(), d)))
        }),
        idp,
    });
    tokio::spawn(crate::operator::run(store.clone()));
    tokio::spawn(crate::storage::run(store.clone(), opts.state_dir.clone()));
    tokio::spawn(crate::statefulset::run(store.clone()));
    tokio::spawn(crate::batch::run(store.clone()));
    if notebooks {
        tokio::spawn(crate::notebook::run(store.clone()));
    }
    tokio::spawn(kubelet.clone().run());
    let flusher = store.clone();
    // A thread of its own: serialising a large store must not hold up the runtime that
    // serves the API. It holds the store weakly and ends with it.
    let flusher = Arc::downgrade(&flusher);
    std::thread::Builder::new()
        .name("store-flush".into())
        .spawn(move || {
            while let Some(store) = flusher.upgrade() {
                // Every 200 ms, or less often when a large store takes long to write:
                // persistence gets at most a tenth of the time, however many objects there are.
                let started = std::time::Instant::now();
                if let Err(e) = store.flush() {
                    eprintln!("kflow-testcluster: {e}");
                }
                drop(store);
                std::thread::sleep(Duration::from_millis(200).max(started.elapsed() * 10));
            }
        })
        .map_err(|e| StartError::Thread(format!("the store's flush thread: {e}")))?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = server::router(cluster.clone());
    let ca_pem = tls.as_ref().map(|t| t.ca_pem.clone());
    let mut gateway_url = None;
    if let (Some(idp), Some(port), Some(t)) = (&cluster.idp, opts.gateway_port, &tls) {
        let tcp = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|source| StartError::Bind { port, source })?;
        let gaddr = tcp
            .local_addr()
            .map_err(|source| StartError::Bind { port, source })?;
        let url = format!("https://localhost:{}", gaddr.port());
        let mut gw = crate::gateway::Gateway::new(
            idp.clone(),
            cluster.dex.clone(),
            store.clone(),
            url.clone(),
        );
        gw.web = crate::webapps::WebApps::new(
            opts.web_fixture
                .as_ref()
                .unwrap_or(&serde_json::Value::Null),
            &opts.without,
        );
        let gw = Arc::new(gw);
        let listener = crate::tls::TlsListener::new(tcp, t.acceptor.clone())
            .map_err(|source| StartError::Bind { port, source })?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, crate::gateway::router(gw)).await;
        });
        gateway_url = Some(url);
    }
    let server = match tls {
        Some(t) => {
            let listener =
                crate::tls::TlsListener::new(listener, t.acceptor).map_err(|source| {
                    StartError::Bind {
                        port: opts.port,
                        source,
                    }
                })?;
            tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
            })
        }
        None => tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        }),
    };
    Ok(Running {
        addr,
        token,
        cluster,
        kubelet,
        sandboxed,
        ca_pem,
        gateway_url,
        shutdown: Some(tx),
        server: Some(server),
    })
}

/// Makes the CustomResourceDefinitions of the served kubeflow.org kinds visible, as installed
/// on a Kubeflow cluster: the CRD files' documents when loaded, else minimal ones; one CRD per
/// kind, listing the versions served here. A kind not served at all has no CRD.
fn register_crds(store: &Store, crds: &CrdSchemas, hidden: &[&crate::resources::ResourceType]) {
    let kubeflow = || {
        resources::RESOURCES
            .iter()
            .filter(|r| r.group == "kubeflow.org")
    };
    let mut plurals: Vec<&str> = Vec::new();
    for r in kubeflow() {
        if !plurals.contains(&r.plural) {
            plurals.push(r.plural);
        }
    }
    let served_names = |d: &serde_json::Value| -> Vec<String> {
        d["spec"]["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| v["served"] != json!(false))
            .filter_map(|v| v["name"].as_str().map(str::to_string))
            .collect()
    };
    for plural in plurals {
        let versions: Vec<&'static crate::resources::ResourceType> = kubeflow()
            .filter(|r| r.plural == plural && !hidden.contains(r))
            .collect();
        let name = format!("{plural}.kubeflow.org");
        let existing = store.get(resources::crds(), "", &name);
        let Some(first) = versions.first() else {
            if existing.is_some() {
                let _ = store.delete(resources::crds(), "", &name, false, false);
            }
            continue;
        };
        let wanted: Vec<String> = versions.iter().map(|r| r.version.to_string()).collect();
        let same = |d: &serde_json::Value| {
            let mut have = served_names(d);
            have.sort();
            let mut want = wanted.clone();
            want.sort();
            have == want
        };
        match existing {
            Some(e) if same(&e) => continue,
            // State from a run that served other versions.
            Some(_) => {
                let _ = store.delete(resources::crds(), "", &name, false, false);
            }
            None => {}
        }
        let storage = first.storage().version;
        // A CRD file only counts when it defines every version served here.
        let from_file = crds
            .documents()
            .iter()
            .find(|d| {
                d["metadata"]["name"] == json!(name)
                    && wanted.iter().all(|v| {
                        d["spec"]["versions"]
                            .as_array()
                            .is_some_and(|vs| vs.iter().any(|x| x["name"] == json!(v)))
                    })
            })
            .cloned();
        let mut crd = from_file.unwrap_or_else(|| {
            let vs: Vec<serde_json::Value> = wanted.iter().map(|v| json!({"name": v,
                "served": true, "storage": v == storage, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}})).collect();
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": name},
                "spec": {"group": first.group, "scope": "Namespaced",
                    "names": {"kind": first.kind, "listKind": format!("{}List", first.kind), "plural": plural, "singular": first.singular},
                    "versions": vs}})
        });
        // The file's other versions (Notebook v1alpha1) are not served by this cluster.
        for v in crd["spec"]["versions"].as_array_mut().into_iter().flatten() {
            let version = v["name"].as_str().unwrap_or("").to_string();
            v["served"] = json!(wanted.contains(&version));
            v["storage"] = json!(version == storage);
        }
        crd["status"] = json!({"conditions": [{"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
            "message": "the initial names have been accepted"}], "acceptedNames": crd["spec"]["names"].clone(),
            "storedVersions": [storage]});
        if let Some(m) = crd["metadata"].as_object_mut() {
            m.remove("creationTimestamp");
            m.remove("annotations");
        }
        let _ = store.create(resources::crds(), crd, false);
    }
}

/// A kubeconfig with one cluster, one static-token user and a context selecting both.
pub fn kubeconfig(server: &str, token: &str, ca_pem: Option<&str>) -> String {
    use base64::Engine;
    let mut cluster = json!({"server": server});
    if let Some(ca) = ca_pem {
        cluster["certificate-authority-data"] =
            json!(base64::engine::general_purpose::STANDARD.encode(ca));
    }
    let doc = json!({
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "kflow-testcluster", "cluster": cluster}],
        "users": [{"name": "kflow-admin", "user": {"token": token}}],
        "contexts": [{"name": "kflow-testcluster",
                      "context": {"cluster": "kflow-testcluster", "user": "kflow-admin", "namespace": "default"}}],
        "current-context": "kflow-testcluster",
    });
    serde_yaml::to_string(&doc).unwrap_or_default()
}

/// A cluster on its own thread and runtime, for synchronous tests: stops on drop.
pub struct TestCluster {
    pub base_url: String,
    pub token: String,
    pub kubeconfig: String,
    /// The kubeconfig, also written to `<state_dir>/kubeconfig`.
    pub kubeconfig_path: PathBuf,
    pub state_dir: PathBuf,
    pub sandboxed: bool,
    /// PEM of the CA behind `base_url` when it is https.
    pub ca_pem: Option<String>,
    remove_state: bool,
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestCluster {
    /// Starts with `opts`; when `opts` is None, a fresh state dir under the temp dir that is
    /// removed again on drop.
    pub fn start(opts: Option<Options>) -> Result<TestCluster, StartError> {
        let remove_state = opts.is_none();
        let opts = opts.unwrap_or_else(|| {
            let n = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
            Options::new(
                std::env::temp_dir()
                    .join(format!("kflow-testcluster-{}-{n:x}", std::process::id())),
            )
        });
        let state_dir = opts.state_dir.clone();
        type Ready = Result<(String, String, bool, Option<String>), StartError>;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Ready>();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(StartError::Thread(e.to_string())));
                    return;
                }
            };
            rt.block_on(async move {
                match start(opts).await {
                    Ok(running) => {
                        let _ = ready_tx.send(Ok((
                            running.base_url(),
                            running.token.clone(),
                            running.sandboxed,
                            running.ca_pem.clone(),
                        )));
                        let _ = tokio::task::spawn_blocking(move || stop_rx.recv()).await;
                        running.stop().await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
            rt.shutdown_timeout(Duration::from_secs(1));
        });
        let (base_url, token, sandboxed, ca_pem) = ready_rx
            .recv()
            .map_err(|e| StartError::Thread(e.to_string()))??;
        let kubeconfig = kubeconfig(&base_url, &token, ca_pem.as_deref());
        let kubeconfig_path = state_dir.join("kubeconfig");
        std::fs::write(&kubeconfig_path, &kubeconfig).map_err(|source| StartError::StateDir {
            path: kubeconfig_path.clone(),
            source,
        })?;
        Ok(TestCluster {
            base_url,
            token,
            kubeconfig,
            kubeconfig_path,
            state_dir,
            sandboxed,
            ca_pem,
            remove_state,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Stops now (what drop does), keeping the state dir for a restart.
    pub fn stop(mut self) -> PathBuf {
        self.remove_state = false;
        self.shutdown();
        self.state_dir.clone()
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        self.shutdown();
        if self.remove_state {
            let _ = std::fs::remove_dir_all(&self.state_dir);
        }
    }
}
