//! `kflow schedule …`: a script on a cron schedule as a CronJob on the cluster, over
//! kflow-core's `Schedule`.

use std::path::PathBuf;

use clap::Subcommand;
use kflow_core::{Client, Error, ScheduleInfo, ScheduleRequest, ScheduleUpdate};

use crate::args::RunArgs;
use crate::output::{or_dash, print_json, table, Printer};

#[derive(Debug, Subcommand)]
pub enum ScheduleAction {
    /// Package a script's folder and run it on the cluster at each time CRON names.
    #[command(
        after_help = "Examples:\n  kflow schedule create report.py --cron '0 6 * * 1-5' --name report\n  kflow schedule create train.py --cron @daily --timezone Europe/Berlin --gpu 1\n\nEach run writes what it wants to keep to $KFLOW_OUTPUT_DIR; `kflow schedule collect` brings it here."
    )]
    Create {
        #[command(flatten)]
        run: Box<RunArgs>,
        /// Five cron fields (minute hour day-of-month month day-of-week) or @hourly, @daily, …
        #[arg(long)]
        cron: String,
        /// The IANA time zone CRON is read in (default: the cluster's, UTC).
        #[arg(long)]
        timezone: Option<String>,
        /// Create it paused.
        #[arg(long)]
        paused: bool,
        /// Size of the claim the runs write their outputs to (default 1Gi).
        #[arg(long)]
        outputs_size: Option<String>,
        /// End a run after this many seconds.
        #[arg(long, value_name = "SECONDS")]
        timeout: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// List the schedules kflow made.
    List {
        #[arg(long, short = 'n', alias = "ns")]
        namespace: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show a schedule and the runs the cluster keeps.
    Show {
        name: String,
        #[arg(long, short = 'n', alias = "ns")]
        namespace: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Change when a schedule runs.
    Set {
        name: String,
        #[arg(long)]
        cron: Option<String>,
        #[arg(long, conflicts_with = "utc")]
        timezone: Option<String>,
        /// Go back to the cluster's time zone.
        #[arg(long)]
        utc: bool,
        #[arg(long, short = 'n', alias = "ns")]
        namespace: Option<String>,
    },
    /// Pause a schedule: no new runs until it is resumed.
    Pause {
        name: String,
        #[arg(long, short = 'n', alias = "ns")]
        namespace: Option<String>,
    },
    /// Resume a paused schedule.
    Resume {
        name: String,
        #[arg(long, short = 'n', alias = "ns")]
        namespace: Option<String>,
    },
    /// Start a run now; prints its name.
    Trigger {
        name: String,
        #[arg(long, short = 'n', alias = "ns")]
        namespace: Option<String>,
    },
    /// Move the outputs of finished runs (default: all of them) into DEST/<run>/ and remove
    /// those runs from the cluster.
    Collect {
        name: String,
        /// The runs (default: every finished one).
        runs: Vec<String>,
        #[arg(long, default_value = ".")]
        dest: PathBuf,
        #[arg(long, short = 'n', alias = "ns")]
        namespace: Option<String>,
    },
    /// Delete a schedule with its runs, code and uncollected outputs.
    Delete {
        name: String,
        #[arg(long, short = 'n', alias = "ns")]
        namespace: Option<String>,
    },
}

fn summary(info: &ScheduleInfo) -> String {
    let tz = info.timezone.as_deref().unwrap_or("UTC");
    let state = if info.suspended { "paused" } else { "active" };
    format!(
        "{} runs {} at '{}' ({tz}), {state}",
        info.name, info.script, info.cron
    )
}

pub fn schedule(client: &Client, action: ScheduleAction, out: &Printer) -> Result<i32, Error> {
    match action {
        ScheduleAction::Create {
            run,
            cron,
            timezone,
            paused,
            outputs_size,
            timeout,
            json,
        } => {
            let request = ScheduleRequest {
                cron,
                timezone,
                suspend: paused,
                outputs_size,
                timeout_seconds: timeout,
            };
            let schedule = out.spinner("packaging the project", || {
                client.schedule(run.options(), request)
            })?;
            for warning in schedule.warnings() {
                out.warn(warning);
            }
            if json {
                print_json(schedule.info());
            } else {
                out.note(&format!("created the CronJob {}", summary(schedule.info())));
            }
            Ok(0)
        }
        ScheduleAction::List { namespace, json } => {
            let schedules = client.schedules(namespace.as_deref())?;
            if json {
                print_json(&schedules);
            } else if schedules.is_empty() {
                out.note("no schedules");
            } else {
                let rows = schedules
                    .iter()
                    .map(|s| {
                        vec![
                            s.name.clone(),
                            s.cron.clone(),
                            s.timezone.clone().unwrap_or_else(|| "UTC".into()),
                            if s.suspended { "paused" } else { "active" }.into(),
                            or_dash(&s.last_schedule_time),
                            s.script.clone(),
                        ]
                    })
                    .collect();
                table(
                    &["NAME", "CRON", "TIME ZONE", "STATE", "LAST RUN", "SCRIPT"],
                    rows,
                );
            }
            Ok(0)
        }
        ScheduleAction::Show {
            name,
            namespace,
            json,
        } => {
            let schedule = client.get_schedule(&name, namespace.as_deref())?;
            let runs = schedule.runs()?;
            if json {
                print_json(&serde_json::json!({"schedule": schedule.info(), "runs": runs}));
                return Ok(0);
            }
            out.note(&summary(schedule.info()));
            let rows = runs
                .iter()
                .map(|r| {
                    vec![
                        r.name.clone(),
                        format!("{:?}", r.phase),
                        or_dash(&r.reason),
                        or_dash(&r.started_at),
                        or_dash(&r.finished_at),
                    ]
                })
                .collect();
            table(&["RUN", "PHASE", "REASON", "STARTED", "FINISHED"], rows);
            Ok(0)
        }
        ScheduleAction::Set {
            name,
            cron,
            timezone,
            utc,
            namespace,
        } => {
            let mut schedule = client.get_schedule(&name, namespace.as_deref())?;
            let update = ScheduleUpdate {
                cron,
                timezone: if utc { Some(None) } else { timezone.map(Some) },
                suspend: None,
            };
            out.note(&summary(schedule.update(update)?));
            Ok(0)
        }
        ScheduleAction::Pause { name, namespace } => {
            set_suspend(client, &name, namespace, true, out)
        }
        ScheduleAction::Resume { name, namespace } => {
            set_suspend(client, &name, namespace, false, out)
        }
        ScheduleAction::Trigger { name, namespace } => {
            println!(
                "{}",
                client
                    .get_schedule(&name, namespace.as_deref())?
                    .trigger()?
            );
            Ok(0)
        }
        ScheduleAction::Collect {
            name,
            runs,
            dest,
            namespace,
        } => {
            let schedule = client.get_schedule(&name, namespace.as_deref())?;
            let runs = if runs.is_empty() {
                schedule
                    .runs()?
                    .into_iter()
                    .filter(|r| r.phase.is_terminal())
                    .map(|r| r.name)
                    .collect()
            } else {
                runs
            };
            for collected in schedule.collect(&runs, &dest)? {
                out.note(&format!(
                    "{}: {} files, {} bytes into {}",
                    collected.run,
                    collected.copied.files.len(),
                    collected.copied.bytes,
                    dest.join(&collected.run).display()
                ));
                schedule.delete_run(&collected.run)?;
            }
            Ok(0)
        }
        ScheduleAction::Delete { name, namespace } => {
            client
                .get_schedule(&name, namespace.as_deref())?
                .delete(false)?;
            out.note(&format!(
                "deleted the schedule {name} and everything it owned"
            ));
            Ok(0)
        }
    }
}

fn set_suspend(
    client: &Client,
    name: &str,
    namespace: Option<String>,
    suspend: bool,
    out: &Printer,
) -> Result<i32, Error> {
    let mut schedule = client.get_schedule(name, namespace.as_deref())?;
    let update = ScheduleUpdate {
        suspend: Some(suspend),
        ..Default::default()
    };
    out.note(&summary(schedule.update(update)?));
    Ok(0)
}
