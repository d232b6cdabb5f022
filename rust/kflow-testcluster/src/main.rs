//! `kflow-testcluster --port 0 --state-dir DIR --print-kubeconfig`: serves until SIGINT/SIGTERM.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use kflow_testcluster::cluster::{self, Options};
use kflow_testcluster::faults::FaultConfig;

#[derive(Parser, Debug)]
#[command(version, about = "A Kubeflow cluster test double on a loopback port")]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Folder for the state snapshot, logs, PVCs and pod scratch space; reused on restart.
    #[arg(long)]
    state_dir: PathBuf,
    /// Print a kubeconfig on stdout once the server listens.
    #[arg(long)]
    print_kubeconfig: bool,
    /// Also write the kubeconfig to this file.
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
    /// Static bearer token (default: generated).
    #[arg(long)]
    token: Option<String>,
    /// CRD folder for schema validation (default: $KFLOW_CRD_DIR).
    #[arg(long)]
    crd_dir: Option<PathBuf>,
    /// Watch events kept for resumption; older resourceVersions get 410 Gone.
    #[arg(long, default_value_t = 10_000)]
    watch_history: usize,
    /// Image mapping PATTERN=python[:INTERPRETER] or PATTERN=shell (repeatable, tried first).
    #[arg(long = "image-map")]
    image_map: Vec<String>,
    /// Run containers without bubblewrap (no mounts; for machines without user namespaces).
    #[arg(long)]
    no_sandbox: bool,
    /// First restart back-off in milliseconds (doubles per restart).
    #[arg(long, default_value_t = 500)]
    restart_backoff_ms: u64,
    /// Folder of wheels pods may pip install from.
    #[arg(long)]
    wheel_dir: Option<PathBuf>,
    /// Serve plain HTTP instead of HTTPS (kubectl will not send the token then).
    #[arg(long)]
    insecure_http: bool,
    /// Serve the Keycloak-style realm (default users unless --idp-config is given).
    #[arg(long)]
    idp: bool,
    /// Realm config (JSON or YAML): realm, clients, users, token lifetimes.
    #[arg(long)]
    idp_config: Option<PathBuf>,
    /// With --idp/--idp-config: serve the oauth2-proxy-style gateway on this port (0 = free
    /// port); its URL is printed on stderr and written to <state-dir>/gateway-url.
    #[arg(long)]
    gateway_port: Option<u16>,
    /// Seed data (JSON or YAML) for the web APIs behind the gateway: pipelines,
    /// pipelineVersions, experiments, runs, registeredModels, modelVersions, modelArtifacts.
    #[arg(long)]
    web_fixture: Option<PathBuf>,
    /// Components the deployment lacks, comma-separated or repeated: notebooks (no Notebook
    /// CRD, no controller), pipelines, model-registry (their APIs answer 404).
    #[arg(long, value_enum, value_delimiter = ',')]
    without: Vec<kflow_testcluster::components::Component>,
    /// Serve mpi-operator's kubeflow.org/v2beta1 MPIJob instead of the training operator's v1.
    #[arg(long)]
    mpi_v2beta1: bool,
    /// The node's allocatable CPU (a quantity: "64", "7500m").
    #[arg(long, default_value = "64")]
    node_cpu: String,
    /// The node's allocatable memory (a quantity: "256Gi").
    #[arg(long, default_value = "256Gi")]
    node_memory: String,
    /// The node's `nvidia.com/gpu` count (pods asking for more stay Pending, Unschedulable).
    #[arg(long, default_value_t = 0)]
    node_gpus: u32,
    /// Pods the node holds at once.
    #[arg(long, default_value_t = 250)]
    node_pods: u32,
    /// kubectl binary for MPI launchers' /opt/kube/kubectl (default: the one on PATH; a pyenv
    /// shim or script wrapper is resolved to the binary behind it).
    #[arg(long)]
    kubectl: Option<PathBuf>,
    /// Fault injection config (JSON, as PUT /admin/faults takes).
    #[arg(long)]
    faults: Option<PathBuf>,
    /// Images containing this cannot be pulled (repeatable; besides "does-not-exist").
    #[arg(long = "unpullable-image")]
    unpullable_images: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting tokio")?;
    rt.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut opts = Options::new(&args.state_dir);
    opts.port = args.port;
    opts.token = args.token;
    if args.crd_dir.is_some() {
        opts.crd_dir = args.crd_dir;
    }
    opts.watch_history = args.watch_history;
    opts.image_map = args.image_map;
    if args.no_sandbox {
        opts.sandbox = Some(false);
    }
    opts.restart_backoff = Duration::from_millis(args.restart_backoff_ms);
    opts.wheel_dir = args.wheel_dir;
    opts.tls = !args.insecure_http;
    if let Some(f) = &args.idp_config {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        opts.idp =
            Some(serde_yaml::from_str(&text).with_context(|| format!("parsing {}", f.display()))?);
    } else if args.idp {
        opts.idp = Some(Default::default());
    }
    opts.gateway_port = args.gateway_port;
    opts.mpi_v2beta1 = args.mpi_v2beta1;
    for (flag, q) in [
        ("--node-cpu", &args.node_cpu),
        ("--node-memory", &args.node_memory),
    ] {
        if kflow_testcluster::scheduler::quantity_milli(&serde_json::json!(q)).is_none() {
            anyhow::bail!("{flag} {q:?} is not a Kubernetes quantity (e.g. 64, 7500m, 256Gi)");
        }
    }
    opts.node = kflow_testcluster::node::NodeConfig {
        cpu: args.node_cpu,
        memory: args.node_memory,
        pods: args.node_pods,
        gpus: args.node_gpus,
    };
    opts.kubectl = args.kubectl;
    opts.without = args.without;
    opts.unpullable_images.extend(args.unpullable_images);
    if let Some(f) = &args.web_fixture {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        opts.web_fixture =
            Some(serde_yaml::from_str(&text).with_context(|| format!("parsing {}", f.display()))?);
    }
    if let Some(f) = args.faults {
        let text =
            std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
        opts.faults = serde_json::from_str::<FaultConfig>(&text)
            .with_context(|| format!("parsing {}", f.display()))?;
    }
    let running = cluster::start(opts)
        .await
        .context("starting the test cluster")?;
    let kubeconfig = running.kubeconfig();
    if let Some(url) = &running.gateway_url {
        eprintln!("kflow-testcluster: gateway on {url}");
        std::fs::write(args.state_dir.join("gateway-url"), url).context("writing gateway-url")?;
    }
    if let Some(path) = &args.kubeconfig_out {
        // Written whole and renamed: callers wait for the file to appear, then read it.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &kubeconfig).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.print_kubeconfig {
        let mut out = std::io::stdout().lock();
        out.write_all(kubeconfig.as_bytes())?;
        out.flush()?;
    }
    eprintln!(
        "kflow-testcluster: listening on {} (sandbox: {}; notebook pods' network: {})",
        running.base_url(),
        if running.sandboxed {
            "bubblewrap"
        } else {
            "none"
        },
        if running.kubelet.own_networks() {
            "their own"
        } else {
            "the node's"
        }
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    running.stop().await;
    Ok(())
}
