//! `kflow ls`, `kflow pvc`, `kflow notebook` and `kflow dashboard`: the namespace beyond
//! kflow's own runs, as thin calls into kflow-core's `Namespace`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use kflow_core::{
    Client, Error, Listed, Namespace, NotebookRequest, Page, PageRequest, PvcRequest, Row,
    RowChange, Workspace,
};
use serde::Serialize;

use crate::output::{or_dash, print_json, Printer};

/// What `kflow ls` lists.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ListKind {
    /// Training jobs of every served kind, whoever made them.
    #[value(alias = "training-jobs")]
    Jobs,
    #[value(alias = "pvc", alias = "volumes")]
    Pvcs,
    #[value(alias = "configmap", alias = "cm")]
    Configmaps,
    #[value(alias = "notebook", alias = "nb")]
    Notebooks,
    #[value(alias = "storageclass", alias = "sc")]
    Storageclasses,
}

/// Paging and output flags every listing takes.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long, short = 'n', alias = "ns")]
    pub namespace: Option<String>,
    /// Rows per page.
    #[arg(long)]
    pub limit: Option<u32>,
    /// Go on from the `next` cursor a page printed.
    #[arg(long)]
    pub cursor: Option<String>,
    /// Page through everything instead of one page.
    #[arg(long, conflicts_with = "cursor")]
    pub all: bool,
    /// Keep the listing live: every row now, then a line per change, until Ctrl-C.
    #[arg(long, conflicts_with_all = ["cursor", "all", "limit"])]
    pub watch: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum PvcAction {
    /// Create a PVC (size defaults to `defaultPVCsize`, the class to the cluster's default).
    Create {
        name: String,
        #[arg(long)]
        size: Option<String>,
        #[arg(long)]
        storage_class: Option<String>,
        /// ReadWriteOnce (RWO), ReadOnlyMany (ROX), ReadWriteMany (RWX), ReadWriteOncePod.
        #[arg(long)]
        access_mode: Option<String>,
        #[arg(long, short = 'n', alias = "ns")]
        namespace: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Delete a PVC; refused while running pods mount it, unless --force.
    Delete {
        name: String,
        #[arg(long)]
        force: bool,
        #[arg(long, short = 'n', alias = "ns")]
        namespace: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum NotebookAction {
    /// Create a Notebook server and wait until it is ready.
    Create {
        name: String,
        /// An image the deployment offers (full or short name, see `kflow notebook images`).
        #[arg(long)]
        image: Option<String>,
        /// Use --image even though the deployment does not offer it.
        #[arg(long)]
        custom_image: bool,
        #[arg(long, allow_hyphen_values = true)]
        cpu: Option<String>,
        #[arg(long = "mem", alias = "memory", allow_hyphen_values = true)]
        memory: Option<String>,
        #[arg(long, alias = "gpus", default_value_t = 0)]
        gpu: u32,
        /// nvidia.com/gpu (default), amd.com/gpu or gpu.intel.com/i915.
        #[arg(long)]
        gpu_vendor: Option<String>,
        /// An existing PVC for the home folder (default: a new `<name>-workspace`).
        #[arg(long, conflicts_with_all = ["workspace_size", "no_workspace"])]
        workspace: Option<String>,
        /// Size of the new workspace PVC.
        #[arg(long)]
        workspace_size: Option<String>,
        /// No workspace volume: the home folder goes when the server stops.
        #[arg(long)]
        no_workspace: bool,
        /// An existing PVC mounted at /home/jovyan/<name>; repeat for more.
        #[arg(long = "data", value_name = "PVC")]
        data: Vec<String>,
        /// Return once created, without waiting until it is ready.
        #[arg(long)]
        no_wait: bool,
        /// How long to wait until it is ready, in seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        #[arg(long, short = 'n', alias = "ns")]
        namespace: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List the Notebook servers.
    List {
        #[command(flatten)]
        list: ListArgs,
    },
    /// Forward a local port to the server and open it in the browser; runs until Ctrl-C.
    Open {
        name: String,
        /// Local port (default: a free one).
        #[arg(long)]
        port: Option<u16>,
        /// Print the URL without opening a browser.
        #[arg(long)]
        no_browser: bool,
        #[arg(long, short = 'n', alias = "ns")]
        namespace: Option<String>,
    },
    /// Stop the server (its volumes stay).
    Stop {
        name: String,
        #[arg(long, short = 'n', alias = "ns")]
        namespace: Option<String>,
    },
    /// Start a stopped server and wait until it is ready.
    Start {
        name: String,
        #[arg(long)]
        no_wait: bool,
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        #[arg(long, short = 'n', alias = "ns")]
        namespace: Option<String>,
    },
    /// Delete the server (its PVCs stay: `kflow pvc delete` removes them).
    Delete {
        name: String,
        #[arg(long, short = 'n', alias = "ns")]
        namespace: Option<String>,
    },
    /// The images a Notebook server can be made from.
    Images {
        #[arg(long, short = 'n', alias = "ns")]
        namespace: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// Reads one page, or every page with `all`; prints the rows as a table of `header` with
/// `cells` per row, or as JSON.
fn listing<T: Serialize>(
    args: &ListArgs,
    out: &Printer,
    header: &[&str],
    read: impl Fn(&PageRequest) -> Result<Page<T>, Error>,
    cells: impl Fn(&T) -> Vec<String>,
) -> Result<i32, Error> {
    // Every page: fewer, larger requests (kubectl reads in chunks of 500 too).
    let limit = args.limit.or(args.all.then_some(500));
    let mut request = PageRequest {
        limit,
        cursor: args.cursor.clone(),
    };
    let mut page = read(&request)?;
    if args.all {
        while let Some(next) = page.next.take() {
            request.cursor = Some(next);
            let more = read(&request)?;
            page.items.extend(more.items);
            page.next = more.next;
        }
    }
    out.page(&page, args.json, header, cells);
    Ok(0)
}

fn joined_or_dash(values: &[String]) -> String {
    if values.is_empty() {
        "-".into()
    } else {
        values.join(",")
    }
}

/// `--watch`: a line per change (JSON lines with --json) until Ctrl-C.
fn watch(ns: &Namespace, kind: ListKind, json: bool) -> Result<i32, Error> {
    let listed = match kind {
        ListKind::Jobs => Listed::TrainingJobs,
        ListKind::Pvcs => Listed::Pvcs,
        ListKind::Configmaps => Listed::ConfigMaps,
        ListKind::Notebooks => Listed::Notebooks,
        ListKind::Storageclasses => Listed::StorageClasses,
    };
    let watch = ns.watch(listed)?;
    let interrupted = Arc::new(AtomicBool::new(false));
    let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, interrupted.clone());
    let _ = signal_hook::flag::register(signal_hook::consts::SIGTERM, interrupted.clone());
    while !interrupted.load(Ordering::SeqCst) {
        for change in watch.next_changes(Duration::from_millis(200)) {
            if json {
                println!("{}", serde_json::to_string(&change).unwrap_or_default());
                continue;
            }
            match change {
                RowChange::Upsert { row, .. } => {
                    let state = match &row {
                        Row::TrainingJob(j) => j.phase.clone(),
                        Row::Pvc(p) => p.phase.clone(),
                        Row::Notebook(n) => n.state.as_str().to_string(),
                        Row::ConfigMap(_) | Row::StorageClass(_) => String::new(),
                    };
                    println!("{:<8} {} {state}", "upsert", row.name());
                }
                RowChange::Delete { name, .. } => println!("{:<8} {name}", "delete"),
            }
        }
    }
    Ok(0)
}

pub fn list(client: &Client, kind: ListKind, args: &ListArgs, out: &Printer) -> Result<i32, Error> {
    let ns = client.namespace(args.namespace.as_deref())?;
    if args.watch {
        return watch(&ns, kind, args.json);
    }
    match kind {
        ListKind::Jobs => listing(
            args,
            out,
            &[
                "NAME", "KIND", "PHASE", "REPLICAS", "BY KFLOW", "CREATED", "REASON",
            ],
            |p| ns.training_jobs(p),
            |j| {
                let replicas: Vec<String> =
                    j.replicas.iter().map(|(t, n)| format!("{t}:{n}")).collect();
                vec![
                    j.name.clone(),
                    j.kind.clone(),
                    j.phase.clone(),
                    joined_or_dash(&replicas),
                    if j.made_by_kflow { "yes" } else { "no" }.into(),
                    or_dash(&j.created_at),
                    or_dash(&j.reason),
                ]
            },
        ),
        ListKind::Pvcs => listing(
            args,
            out,
            &["NAME", "PHASE", "SIZE", "CLASS", "ACCESS", "MOUNTED BY"],
            |p| ns.pvcs(p),
            |p| {
                vec![
                    p.name.clone(),
                    p.phase.clone(),
                    or_dash(&p.size),
                    or_dash(&p.storage_class),
                    p.access_modes.join(","),
                    joined_or_dash(&p.mounted_by),
                ]
            },
        ),
        ListKind::Configmaps => listing(
            args,
            out,
            &["NAME", "KEYS", "BYTES", "KFLOW CODE OF"],
            |p| ns.config_maps(p),
            |c| {
                vec![
                    c.name.clone(),
                    c.keys.len().to_string(),
                    c.keys.iter().map(|k| k.bytes).sum::<u64>().to_string(),
                    or_dash(&c.code_of),
                ]
            },
        ),
        ListKind::Notebooks => notebooks_table(&ns, args, out),
        ListKind::Storageclasses => listing(
            args,
            out,
            &["NAME", "PROVISIONER", "DEFAULT", "RECLAIM", "BINDING"],
            |p| ns.storage_classes(p),
            |s| {
                vec![
                    s.name.clone(),
                    s.provisioner.clone(),
                    if s.default { "yes" } else { "" }.into(),
                    or_dash(&s.reclaim_policy),
                    or_dash(&s.volume_binding_mode),
                ]
            },
        ),
    }
}

fn notebooks_table(ns: &Namespace, args: &ListArgs, out: &Printer) -> Result<i32, Error> {
    listing(
        args,
        out,
        &[
            "NAME", "STATE", "IMAGE", "CPU", "MEMORY", "GPUS", "VOLUMES", "REASON",
        ],
        |p| ns.notebooks(p),
        |n| {
            vec![
                n.name.clone(),
                n.state.as_str().into(),
                n.image.rsplit('/').next().unwrap_or_default().to_string(),
                or_dash(&n.cpu),
                or_dash(&n.memory),
                n.gpus.to_string(),
                joined_or_dash(&n.volumes),
                or_dash(&n.reason),
            ]
        },
    )
}

pub fn pvc(client: &Client, action: PvcAction, out: &Printer) -> Result<i32, Error> {
    match action {
        PvcAction::Create {
            name,
            size,
            storage_class,
            access_mode,
            namespace,
            json,
        } => {
            let ns = client.namespace(namespace.as_deref())?;
            let row = ns.create_pvc(&PvcRequest {
                name,
                size,
                storage_class,
                access_mode,
            })?;
            if json {
                print_json(&row);
            } else {
                out.note(&format!(
                    "created PVC {} ({}, {}, {}) in {}",
                    row.name,
                    row.size.as_deref().unwrap_or("?"),
                    row.storage_class.as_deref().unwrap_or("the default class"),
                    row.access_modes.join(","),
                    ns.name()
                ));
            }
            Ok(0)
        }
        PvcAction::Delete {
            name,
            force,
            namespace,
        } => {
            let ns = client.namespace(namespace.as_deref())?;
            ns.delete_pvc(&name, force)?;
            out.note(&format!("deleted PVC {name} in {}", ns.name()));
            Ok(0)
        }
    }
}

/// Waits for a server with its state changes on stderr.
fn wait_ready(ns: &Namespace, name: &str, timeout: u64, out: &Printer) -> Result<(), Error> {
    let spinner = out.pending_spinner();
    let result = ns.wait_notebook(name, Duration::from_secs(timeout), &mut |row| {
        spinner.set_message(format!(
            "{name}: {}{}",
            row.state.as_str(),
            row.reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ));
    });
    spinner.finish_and_clear();
    result.map(|_| ())
}

pub fn notebook(client: &Client, action: NotebookAction, out: &Printer) -> Result<i32, Error> {
    match action {
        NotebookAction::Create {
            name,
            image,
            custom_image,
            cpu,
            memory,
            gpu,
            gpu_vendor,
            workspace,
            workspace_size,
            no_workspace,
            data,
            no_wait,
            timeout,
            namespace,
            json,
        } => {
            let ns = client.namespace(namespace.as_deref())?;
            let request = NotebookRequest {
                name: name.clone(),
                image,
                custom_image,
                cpu,
                memory,
                gpus: gpu,
                gpu_vendor,
                workspace: match (workspace, no_workspace) {
                    (Some(existing), _) => Workspace::Existing(existing),
                    (None, true) => Workspace::None,
                    (None, false) => Workspace::New {
                        size: workspace_size,
                    },
                },
                data_volumes: data,
            };
            let row = ns.create_notebook(&request)?;
            out.note(&format!("created Notebook server {name} ({})", row.image));
            if !no_wait {
                wait_ready(&ns, &name, timeout, out)?;
                out.note(&format!(
                    "{name} is ready: `kflow notebook open {name}` forwards a port and opens it"
                ));
            }
            if json {
                print_json(&ns.notebook(&name)?);
            }
            Ok(0)
        }
        NotebookAction::List { list } => {
            let ns = client.namespace(list.namespace.as_deref())?;
            notebooks_table(&ns, &list, out)
        }
        NotebookAction::Open {
            name,
            port,
            no_browser,
            namespace,
        } => {
            let ns = client.namespace(namespace.as_deref())?;
            let forward = ns.forward_notebook(&name, port)?;
            println!("{}", forward.url());
            out.note(&format!(
                "forwarding 127.0.0.1:{} to Notebook server {name}; Ctrl-C stops",
                forward.local_port()
            ));
            if !no_browser {
                open_browser(forward.url(), out);
            }
            let interrupted = Arc::new(AtomicBool::new(false));
            let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, interrupted.clone());
            let _ = signal_hook::flag::register(signal_hook::consts::SIGTERM, interrupted.clone());
            while !interrupted.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
            }
            out.note(&format!(
                "stopped forwarding ({} connections)",
                forward.connections()
            ));
            Ok(0)
        }
        NotebookAction::Stop { name, namespace } => {
            let ns = client.namespace(namespace.as_deref())?;
            ns.stop_notebook(&name)?;
            out.note(&format!(
                "stopped Notebook server {name} (its volumes stay)"
            ));
            Ok(0)
        }
        NotebookAction::Start {
            name,
            no_wait,
            timeout,
            namespace,
        } => {
            let ns = client.namespace(namespace.as_deref())?;
            ns.start_notebook(&name)?;
            if !no_wait {
                wait_ready(&ns, &name, timeout, out)?;
            }
            out.note(&format!("started Notebook server {name}"));
            Ok(0)
        }
        NotebookAction::Delete { name, namespace } => {
            let ns = client.namespace(namespace.as_deref())?;
            ns.delete_notebook(&name)?;
            out.note(&format!(
                "deleted Notebook server {name}; its PVCs stay (`kflow ls pvcs`)"
            ));
            Ok(0)
        }
        NotebookAction::Images { namespace, json } => {
            let ns = client.namespace(namespace.as_deref())?;
            let images = ns.notebook_images();
            if json {
                print_json(&images);
            } else {
                for image in &images.options {
                    let mark = if *image == images.default {
                        " (default)"
                    } else {
                        ""
                    };
                    println!("{image}{mark}");
                }
                if !images.from_deployment {
                    out.note("Kubeflow's default images: sign in (`kflow login`) to see the ones this deployment offers");
                }
            }
            Ok(0)
        }
    }
}

pub fn dashboard(
    client: &Client,
    namespace: Option<String>,
    no_browser: bool,
    out: &Printer,
) -> Result<i32, Error> {
    let ns = client.namespace(namespace.as_deref())?;
    let url = ns.dashboard_url()?;
    println!("{url}");
    if !no_browser {
        open_browser(&url, out);
    }
    Ok(0)
}

/// Opens `url` in the desktop's browser when there is a desktop; the URL is an argument, never
/// part of a shell line.
fn open_browser(url: &str, out: &Printer) {
    let has_display = cfg!(any(target_os = "macos", windows))
        || std::env::var_os("DISPLAY").is_some()
        || std::env::var_os("WAYLAND_DISPLAY").is_some();
    if !has_display || !std::io::stdout().is_terminal() {
        return;
    }
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    if std::process::Command::new(opener)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_err()
    {
        out.note(&format!("open {url} in your browser"));
    }
}
