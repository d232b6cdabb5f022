//! The command line, declared with clap: help, errors and completions come from one place.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use kflow_core::{BackendKind, CodeMode, JobKind, RunOptions};

#[derive(Debug, Parser)]
#[command(
    name = "kflow",
    version,
    about = "Run and watch Kubeflow training jobs from where you write code: no YAML, no kubectl.",
    after_help = "Examples:\n  kflow run train.py --gpu 1 --pip torchvision\n  kflow run train.py --workers 2 -- --epochs 3\n  kflow logs train-x7k2p -f\n  kflow yaml train.py --kind tf"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Package a script's folder and run it as a training job; streams its logs.
    Run {
        #[command(flatten)]
        run: RunArgs,
        /// Submit and return at once instead of streaming the logs.
        #[arg(long, short = 'd')]
        detach: bool,
    },
    /// Print the manifests a run would create, without creating anything.
    Yaml {
        #[command(flatten)]
        run: RunArgs,
        /// Put the packaged code in the ConfigMaps, so `kubectl apply -f -` of the output runs.
        #[arg(long)]
        with_code: bool,
    },
    /// Show a job's logs (all replicas).
    Logs {
        name: String,
        /// Keep following until the job ends.
        #[arg(long, short = 'f')]
        follow: bool,
        #[arg(long)]
        json: bool,
    },
    /// Show a job's status.
    Status {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Explain a job: spec, conditions, pods, events and the last log lines of each replica.
    Describe {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// List the jobs kflow knows.
    Jobs {
        #[arg(long)]
        json: bool,
    },
    /// Run a program in a running replica of a job (no shell: `-- python -c 'print(1)'`).
    Exec {
        name: String,
        /// The replica (default: the first, e.g. master-0).
        #[arg(long)]
        replica: Option<String>,
        /// The program and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Copy a folder of a running replica (relative to its working directory) to this machine.
    CopyFrom {
        name: String,
        /// The folder in the replica.
        path: String,
        /// The local folder to copy into (created if missing).
        dest: std::path::PathBuf,
        /// The replica (default: the first, e.g. master-0).
        #[arg(long)]
        replica: Option<String>,
    },
    /// Cancel a running job; its logs and record stay.
    Cancel { name: String },
    /// Cancel a job if it runs and delete everything kflow kept for it.
    Delete { name: String },
    /// Run a job again with its stored spec and code.
    Restart {
        name: String,
        #[arg(long, short = 'd')]
        detach: bool,
    },
    /// Show which cluster connection kflow uses, who as, and which Kubeflow kinds it serves.
    Doctor {
        #[arg(long)]
        json: bool,
    },
    /// Manage the Jupyter kernel's registration.
    Kernel {
        #[command(subcommand)]
        action: KernelAction,
    },
    /// List the job templates of this project and of the user.
    Templates {
        /// Project folder whose .kflow/templates to include (default: current folder).
        #[arg(long)]
        project_root: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Sign in to Kubeflow (Keycloak/Dex username + password); the session goes to the OS keyring.
    #[command(
        after_help = "Examples:\n  kflow login --url https://kubeflow.example.com --username me@example.com\n  printf %s \"$PW\" | kflow login --username me@example.com --password-stdin\n\nThe password is never accepted as an argument (other users can read process arguments)."
    )]
    Login {
        /// The Kubeflow URL (default: the configured `url` / KFLOW_URL, else the last one used).
        #[arg(long)]
        url: Option<String>,
        /// The username (asked for when not given).
        #[arg(long, short = 'u')]
        username: Option<String>,
        /// The Kubernetes API server, when it is not the Kubeflow URL (also `apiServer` in
        /// config.toml, KFLOW_API_SERVER).
        #[arg(long)]
        api_server: Option<String>,
        /// Read the password from standard input (for scripts) instead of asking.
        #[arg(long)]
        password_stdin: bool,
        /// Also keep the password in the OS keyring, to sign in again silently when the session ends.
        #[arg(long)]
        store_password: bool,
        #[arg(long)]
        json: bool,
    },
    /// Sign out: end the session and remove every secret kflow stored.
    Logout {
        #[arg(long)]
        json: bool,
    },
    /// Show who is signed in, where, until when, and which secret store holds the session.
    Whoami {
        #[arg(long)]
        json: bool,
    },
    /// Print a kubeconfig for the current session (holds a live token: only when you need one).
    Kubeconfig,
    /// Serve an editor (the VS Code extension) over JSON-RPC: one long-lived kflow per window.
    /// The protocol is docs/serve-protocol.md.
    Serve {
        /// Speak on standard input and output (LSP framing).
        #[arg(long, required = true)]
        stdio: bool,
    },
    /// List what is in the namespace: training jobs of every kind (anyone's), PVCs,
    /// ConfigMaps, Notebook servers, StorageClasses. Paged; --all for everything.
    #[command(
        after_help = "Examples:\n  kflow ls jobs\n  kflow ls pvcs --json\n  kflow ls configmaps --limit 50 --cursor NEXT"
    )]
    Ls {
        #[arg(value_enum)]
        what: crate::namespace::ListKind,
        #[command(flatten)]
        list: crate::namespace::ListArgs,
    },
    /// Create or delete a PVC.
    Pvc {
        #[command(subcommand)]
        action: crate::namespace::PvcAction,
    },
    /// Kubeflow Notebook servers: create, list, open (port-forward), stop, start, delete.
    #[command(
        after_help = "Examples:\n  kflow notebook create lab --image jupyter-scipy --cpu 1 --mem 2Gi\n  kflow notebook open lab\n  kflow notebook stop lab"
    )]
    Notebook {
        #[command(subcommand)]
        action: crate::namespace::NotebookAction,
    },
    /// Open Kubeflow's central dashboard for the namespace (prints the URL).
    Dashboard {
        #[arg(long, short = 'n', alias = "ns")]
        namespace: Option<String>,
        /// Print the URL without opening a browser.
        #[arg(long)]
        no_browser: bool,
    },
    /// Run a script on a cron schedule, as a CronJob on the cluster: create, list, show, set,
    /// pause, resume, trigger, collect the runs' outputs, delete.
    #[command(
        after_help = "Examples:\n  kflow schedule create report.py --cron '0 6 * * 1-5' --name report\n  kflow schedule trigger report\n  kflow schedule collect report --dest outputs/"
    )]
    Schedule {
        #[command(subcommand)]
        action: crate::schedules::ScheduleAction,
    },
    /// Kubeflow Pipelines: list pipelines, versions, experiments and runs; upload; run; follow.
    Pipelines {
        #[command(subcommand)]
        action: crate::apps::PipelinesAction,
    },
    /// The Kubeflow Model Registry: list models, versions and artifacts; register a version.
    Models {
        #[command(subcommand)]
        action: crate::apps::ModelsAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum KernelAction {
    /// Register the "Kubeflow (kflow)" kernel, and "Kubeflow session (kflow)" (cells in one
    /// long-lived remote Python) as `<name>-session`, with this Python's absolute path.
    Install {
        /// Into the user's Jupyter folder (the default).
        #[arg(long, conflicts_with_all = ["sys_prefix", "prefix"])]
        user: bool,
        /// Into this Python environment's share/jupyter (what VS Code scans per environment).
        #[arg(long, conflicts_with = "prefix")]
        sys_prefix: bool,
        /// Into PREFIX/share/jupyter/kernels.
        #[arg(long)]
        prefix: Option<PathBuf>,
        /// Folder name of the kernelspec.
        #[arg(long, default_value = "kflow")]
        name: String,
        #[arg(long, default_value = "Kubeflow (kflow)")]
        display_name: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KindArg {
    Pytorch,
    Tf,
    Mpi,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CodeModeArg {
    Targz,
    Configmap,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The Python script to run; its folder is the project that gets packaged.
    pub script: PathBuf,
    /// Arguments for the script, after `--`.
    #[arg(last = true)]
    pub args: Vec<String>,
    /// Job name (default: the script name and a short random suffix).
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
    /// Container image (cluster runs).
    #[arg(long)]
    pub image: Option<String>,
    /// GPUs per replica.
    #[arg(long, alias = "gpus")]
    pub gpu: Option<u32>,
    /// CPU per replica, e.g. 2 or 500m.
    #[arg(long, allow_hyphen_values = true)]
    pub cpu: Option<String>,
    /// Memory per replica, e.g. 16Gi.
    #[arg(long = "mem", alias = "memory", allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Replicas in all (PyTorchJob: one master plus workers-1 workers).
    #[arg(long)]
    pub workers: Option<u32>,
    /// A pip requirement; repeat for more.
    #[arg(long = "pip", value_name = "SPEC")]
    pub pip: Vec<String>,
    /// A requirements.txt; its requirements join --pip.
    #[arg(long, value_name = "FILE")]
    pub requirements: Option<PathBuf>,
    /// A Debian package; repeat for more.
    #[arg(long = "apt", value_name = "PACKAGE")]
    pub apt: Vec<String>,
    /// An environment variable for the job; repeat for more.
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    #[arg(long, short = 'n', alias = "ns")]
    pub namespace: Option<String>,
    /// A JSON template from .kflow/templates or the user's templates folder.
    #[arg(long, short = 't')]
    pub template: Option<String>,
    /// Folder to package (default: the script's folder).
    #[arg(long, alias = "project")]
    pub project_root: Option<PathBuf>,
    #[arg(long, value_enum)]
    pub code_mode: Option<CodeModeArg>,
    /// Do not mount the pip-cache PVC.
    #[arg(long)]
    pub no_pip_cache: bool,
    /// Size of the pip-cache PVC when kflow creates it.
    #[arg(long, allow_hyphen_values = true)]
    pub pip_cache_size: Option<String>,
    /// Run on this machine (the default while no cluster is configured).
    #[arg(long, conflicts_with = "cluster")]
    pub local: bool,
    /// Run on the configured Kubeflow cluster.
    #[arg(long)]
    pub cluster: bool,
    /// Where to run: local or cluster (the same as --local / --cluster).
    #[arg(long, value_enum, conflicts_with_all = ["local", "cluster"])]
    pub backend: Option<BackendArg>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BackendArg {
    Local,
    Cluster,
}

fn parse_env(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {raw:?}")),
    }
}

impl RunArgs {
    pub fn options(&self) -> RunOptions {
        let non_empty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
        RunOptions {
            script: Some(self.script.clone()),
            project_root: self.project_root.clone(),
            name: self.name.clone(),
            kind: self.kind.map(|k| match k {
                KindArg::Pytorch => JobKind::PyTorchJob,
                KindArg::Tf => JobKind::TFJob,
                KindArg::Mpi => JobKind::MPIJob,
            }),
            image: self.image.clone(),
            gpu: self.gpu,
            cpu: self.cpu.clone(),
            memory: self.memory.clone(),
            workers: self.workers,
            pip: non_empty(&self.pip),
            requirements: self.requirements.clone(),
            apt: non_empty(&self.apt),
            env: (!self.env.is_empty()).then(|| self.env.iter().cloned().collect()),
            args: non_empty(&self.args),
            namespace: self.namespace.clone(),
            code_mode: self.code_mode.map(|m| match m {
                CodeModeArg::Targz => CodeMode::Targz,
                CodeModeArg::Configmap => CodeMode::Configmap,
            }),
            pip_cache: self.no_pip_cache.then_some(false),
            pip_cache_size: self.pip_cache_size.clone(),
            template: self.template.clone(),
            backend: match (self.backend, self.local, self.cluster) {
                (Some(BackendArg::Local), ..) | (None, true, _) => Some(BackendKind::Local),
                (Some(BackendArg::Cluster), ..) | (None, _, true) => Some(BackendKind::Cluster),
                (None, false, false) => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// `kflow run` spells every run option as kflow-core's grammar does (name and aliases),
    /// as the kernel's `%kflow` and the IPython magic do.
    #[test]
    fn run_flags_follow_the_core_grammar() {
        let cli = Cli::command();
        let run = cli.find_subcommand("run").expect("run subcommand");
        let flags: Vec<String> = run
            .get_arguments()
            .flat_map(|a| {
                a.get_long()
                    .into_iter()
                    .chain(a.get_all_aliases().into_iter().flatten())
                    .map(str::to_string)
            })
            .collect();
        for option in kflow_core::RUN_OPTIONS {
            for spelling in std::iter::once(option.name).chain(option.aliases.iter().copied()) {
                let flag = spelling.replace('_', "-");
                assert!(flags.contains(&flag), "kflow run has no --{flag}");
            }
        }
    }
}
