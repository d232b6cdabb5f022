//! `kflow pipelines …` and `kflow models …`: Kubeflow Pipelines and the Model Registry as the
//! signed-in user, thin over kflow-core's `Pipelines` and `ModelRegistry`. Listings print a
//! table (or `--json`: the page with its `next` cursor) and say how to get the next page.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use kflow_core::{
    Client, Error, ModelRegistry, PageRequest, Pipelines, RegisterRequest, RunInfo, RunRequest,
    UploadRequest,
};
use serde_json::{Map, Value};

use crate::output::{or_dash, print_json, Printer};

/// Which page of a listing, and how to print it.
#[derive(Debug, Args)]
pub struct PageArgs {
    /// Items per page (the app's default when not given).
    #[arg(long)]
    pub limit: Option<u32>,
    /// The cursor a previous page printed, for the page after it.
    #[arg(long)]
    pub cursor: Option<String>,
    #[arg(long)]
    pub json: bool,
}

impl PageArgs {
    fn request(&self) -> PageRequest {
        PageRequest {
            limit: self.limit,
            cursor: self.cursor.clone(),
        }
    }
}

/// A listing in a namespace.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The namespace (default: `defaultNamespace` in config.toml, else your first Kubeflow
    /// profile namespace).
    #[arg(long, short = 'n', alias = "ns")]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub page: PageArgs,
}

#[derive(Debug, Subcommand)]
pub enum PipelinesAction {
    /// List the pipelines of the namespace and the shared ones.
    List {
        #[command(flatten)]
        list: ListArgs,
    },
    /// List a pipeline's versions (pipeline by name or id), newest first.
    Versions {
        pipeline: String,
        #[command(flatten)]
        list: ListArgs,
    },
    /// List the experiments of the namespace.
    Experiments {
        #[command(flatten)]
        list: ListArgs,
    },
    /// List runs and their state, newest first.
    Runs {
        /// Only the runs of this experiment (name or id).
        #[arg(long)]
        experiment: Option<String>,
        #[command(flatten)]
        list: ListArgs,
    },
    /// Start a run of a pipeline (by name or id) and follow it to the end.
    #[command(
        after_help = "Examples:\n  kflow pipelines run train --param epochs=3 --param lr=0.01\n  kflow pipelines run train --version v2 --experiment nightly -d"
    )]
    Run {
        pipeline: String,
        /// The pipeline version (name or id; default: the newest).
        #[arg(long)]
        version: Option<String>,
        /// The experiment (name or id; created when the name is new; default: Default).
        #[arg(long)]
        experiment: Option<String>,
        /// The run's name (default: the pipeline's name and the time).
        #[arg(long)]
        name: Option<String>,
        /// A run parameter, typed as the pipeline declares it; repeat for more.
        #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_pair)]
        params: Vec<(String, String)>,
        #[arg(long, short = 'n', alias = "ns")]
        namespace: Option<String>,
        /// Print the run's id and return at once instead of following it.
        #[arg(long, short = 'd')]
        detach: bool,
        /// Stop following after this many seconds (the run goes on).
        #[arg(long)]
        timeout: Option<f64>,
        #[arg(long)]
        json: bool,
    },
    /// Follow a run (by id) until it ends; the exit code says how it ended.
    Follow {
        run: String,
        /// Stop following after this many seconds (the run goes on).
        #[arg(long)]
        timeout: Option<f64>,
        #[arg(long)]
        json: bool,
    },
    /// Upload a compiled pipeline (the YAML the KFP compiler writes) as a new pipeline, or
    /// with --version as a new version of an existing one.
    Upload {
        file: PathBuf,
        /// The pipeline's name (default: the file's pipelineInfo.name).
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// Upload as this new version of the existing pipeline.
        #[arg(long)]
        version: Option<String>,
        #[arg(long, short = 'n', alias = "ns", conflicts_with = "shared")]
        namespace: Option<String>,
        /// A shared pipeline (no namespace), visible to every user.
        #[arg(long)]
        shared: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ModelsAction {
    /// List the registered models.
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    /// List a registered model's versions.
    Versions {
        model: String,
        #[command(flatten)]
        page: PageArgs,
    },
    /// List the artifacts of a model version.
    Artifacts {
        model: String,
        version: String,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Register a model version and its artifact (the model is created when missing).
    #[command(
        after_help = "Example:\n  kflow models register mnist --version v1 --uri s3://models/mnist/1 --format onnx --metadata accuracy=0.93\n\nA metadata value that reads as a JSON number or boolean is one; anything else (or a\nquoted JSON string) is a string."
    )]
    Register {
        model: String,
        #[arg(long)]
        version: String,
        /// Where the model's files are (s3://…, pvc://…, oci://…).
        #[arg(long)]
        uri: String,
        /// The model format, e.g. onnx, pytorch, tensorflow.
        #[arg(long = "format")]
        format_name: String,
        #[arg(long)]
        format_version: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// The version's author (default: you).
        #[arg(long)]
        author: Option<String>,
        /// A metadata entry; repeat for more.
        #[arg(long = "metadata", value_name = "KEY=VALUE", value_parser = parse_pair)]
        metadata: Vec<(String, String)>,
        #[arg(long)]
        json: bool,
    },
}

fn parse_pair(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {raw:?}")),
    }
}

/// A metadata value from the command line: a JSON number, boolean or string when it reads as
/// one, else the text itself.
fn metadata_value(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ (Value::Number(_) | Value::Bool(_) | Value::String(_))) => v,
        _ => Value::String(text.to_string()),
    }
}

pub fn pipelines(action: PipelinesAction, client: &Client, out: &Printer) -> Result<i32, Error> {
    let kfp = Pipelines::connect(client.context())?;
    match action {
        PipelinesAction::List { list } => {
            let page = kfp.list_pipelines(list.namespace.as_deref(), &list.page.request())?;
            out.page(
                &page,
                list.page.json,
                &["NAME", "NAMESPACE", "CREATED", "ID"],
                |p| {
                    vec![
                        p.name.clone(),
                        p.namespace.clone().unwrap_or_else(|| "(shared)".into()),
                        or_dash(&p.created_at),
                        p.id.clone(),
                    ]
                },
            );
        }
        PipelinesAction::Versions { pipeline, list } => {
            let page =
                kfp.list_versions(&pipeline, list.namespace.as_deref(), &list.page.request())?;
            out.page(&page, list.page.json, &["NAME", "CREATED", "ID"], |v| {
                vec![v.name.clone(), or_dash(&v.created_at), v.id.clone()]
            });
        }
        PipelinesAction::Experiments { list } => {
            let page = kfp.list_experiments(list.namespace.as_deref(), &list.page.request())?;
            out.page(&page, list.page.json, &["NAME", "CREATED", "ID"], |e| {
                vec![e.name.clone(), or_dash(&e.created_at), e.id.clone()]
            });
        }
        PipelinesAction::Runs { experiment, list } => {
            let page = kfp.list_runs(
                list.namespace.as_deref(),
                experiment.as_deref(),
                &list.page.request(),
            )?;
            out.page(
                &page,
                list.page.json,
                &["NAME", "STATE", "CREATED", "ID"],
                |r| {
                    vec![
                        r.name.clone(),
                        r.state.as_str().to_string(),
                        or_dash(&r.created_at),
                        r.id.clone(),
                    ]
                },
            );
        }
        PipelinesAction::Run {
            pipeline,
            version,
            experiment,
            name,
            params,
            namespace,
            detach,
            timeout,
            json,
        } => {
            let parameters: Map<String, Value> = params
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            let run = out.spinner("starting the run", || {
                kfp.start_run(&RunRequest {
                    pipeline,
                    version,
                    experiment,
                    name,
                    parameters,
                    namespace,
                })
            })?;
            if detach {
                if json {
                    print_json(&run);
                } else {
                    out.note(&format!(
                        "started run {:?} ({})",
                        run.name,
                        run.state.as_str()
                    ));
                    println!("{}", run.id);
                }
                return Ok(0);
            }
            out.note(&format!("started run {:?} ({})", run.name, run.id));
            return follow(&kfp, &run.id, timeout, json, out);
        }
        PipelinesAction::Follow { run, timeout, json } => {
            return follow(&kfp, &run, timeout, json, out)
        }
        PipelinesAction::Upload {
            file,
            name,
            description,
            version,
            namespace,
            shared,
            json,
        } => {
            let uploaded = out.spinner("uploading", || {
                kfp.upload(&UploadRequest {
                    path: file,
                    name,
                    description,
                    version,
                    namespace,
                    shared,
                })
            })?;
            if json {
                print_json(&uploaded);
            } else {
                out.note(&format!(
                    "uploaded pipeline {:?} version {:?} ({}); run it with `kflow pipelines run {}`",
                    uploaded.pipeline.name,
                    uploaded.version.name,
                    uploaded
                        .pipeline
                        .namespace
                        .as_deref()
                        .map(|n| format!("namespace {n}"))
                        .unwrap_or_else(|| "shared".into()),
                    uploaded.pipeline.name
                ));
                println!("{}", uploaded.version.id);
            }
        }
    }
    Ok(0)
}

/// Follows a run to its end, a line per state; Ctrl-C stops following (the run goes on).
fn follow(
    kfp: &Pipelines,
    run: &str,
    timeout: Option<f64>,
    json: bool,
    out: &Printer,
) -> Result<i32, Error> {
    let interrupted = Arc::new(AtomicBool::new(false));
    let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&interrupted));
    let timeout = match timeout {
        Some(t) if !(t.is_finite() && t > 0.0) => {
            return Err(Error::invalid(
                "timeout",
                t.to_string(),
                "not a positive number of seconds",
                "pass e.g. --timeout 600",
            ))
        }
        t => t.map(Duration::from_secs_f64),
    };
    let followed = kfp.follow_run(
        run,
        timeout,
        &mut || interrupted.load(Ordering::SeqCst),
        &mut |r: &RunInfo| {
            if !json {
                out.note(&format!("run {:?}: {}", r.name, r.state.as_str()));
            }
        },
    )?;
    let Some(done) = followed else {
        out.note(&format!(
            "stopped following; the run goes on. Follow it again with `kflow pipelines follow {run}`"
        ));
        return Ok(130);
    };
    if json {
        print_json(&done);
    } else if let Some(error) = &done.error {
        out.warn(&format!(
            "{} ended {}: {error}",
            done.name,
            done.state.as_str()
        ));
    }
    Ok(done.state.exit_code())
}

pub fn models(action: ModelsAction, client: &Client, out: &Printer) -> Result<i32, Error> {
    let registry = ModelRegistry::connect(client.context())?;
    match action {
        ModelsAction::List { page } => {
            let listed = registry.list_models(&page.request())?;
            out.page(
                &listed,
                page.json,
                &["NAME", "OWNER", "STATE", "CREATED", "ID"],
                |m| {
                    vec![
                        m.name.clone(),
                        or_dash(&m.owner),
                        or_dash(&m.state),
                        or_dash(&m.created_at),
                        m.id.clone(),
                    ]
                },
            );
        }
        ModelsAction::Versions { model, page } => {
            let listed = registry.list_versions(&model, &page.request())?;
            out.page(
                &listed,
                page.json,
                &["NAME", "AUTHOR", "STATE", "CREATED", "ID"],
                |v| {
                    vec![
                        v.name.clone(),
                        or_dash(&v.author),
                        or_dash(&v.state),
                        or_dash(&v.created_at),
                        v.id.clone(),
                    ]
                },
            );
        }
        ModelsAction::Artifacts {
            model,
            version,
            page,
        } => {
            let listed = registry.list_artifacts(&model, &version, &page.request())?;
            out.page(&listed, page.json, &["NAME", "FORMAT", "URI", "ID"], |a| {
                let format = match (&a.format_name, &a.format_version) {
                    (Some(n), Some(v)) => format!("{n} {v}"),
                    (n, _) => or_dash(n),
                };
                vec![or_dash(&a.name), format, or_dash(&a.uri), a.id.clone()]
            });
        }
        ModelsAction::Register {
            model,
            version,
            uri,
            format_name,
            format_version,
            description,
            author,
            metadata,
            json,
        } => {
            let registered = registry.register(&RegisterRequest {
                model,
                version,
                uri,
                format_name,
                format_version,
                description,
                author,
                metadata: metadata
                    .into_iter()
                    .map(|(k, v)| (k, metadata_value(&v)))
                    .collect(),
            })?;
            if json {
                print_json(&registered);
            } else {
                out.note(&format!(
                    "registered {} version {}{} (artifact {})",
                    registered.model.name,
                    registered.version.name,
                    if registered.model_created {
                        ", a new model"
                    } else {
                        ""
                    },
                    registered.artifact.uri.as_deref().unwrap_or("")
                ));
                println!("{}", registered.version.id);
            }
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_values_read_as_json_scalars_or_text() {
        assert_eq!(metadata_value("0.93"), serde_json::json!(0.93));
        assert_eq!(metadata_value("3"), serde_json::json!(3));
        assert_eq!(metadata_value("true"), serde_json::json!(true));
        assert_eq!(metadata_value("\"3\""), serde_json::json!("3"));
        assert_eq!(metadata_value("pytorch"), serde_json::json!("pytorch"));
        assert_eq!(metadata_value("[1]"), serde_json::json!("[1]"));
    }
}
