//! `kflow`, the command line. Parses with clap, calls kflow-core, prints. Every error a user sees
//! carries an event ID that is also in kflow's local log, and never a stack trace.

mod apps;
mod args;
mod kernelspec;
mod namespace;
mod output;
mod schedules;
mod serve;

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use kflow_core::{Client, Context, Error, Job, Launcher, Phase, Progress};

use args::{Cli, Command, KernelAction};
use output::Printer;

/// Exit codes: 0 the job (or command) succeeded, 1 the job failed, 2 the input was wrong,
/// 130 interrupted and detached.
const EXIT_FAILED: i32 = 1;
const EXIT_USAGE: i32 = 2;

/// What the CLI needs to know about the Python it runs in.
#[derive(Debug, Clone)]
pub struct Host {
    /// Starts local-run supervisors.
    pub launcher: Launcher,
    /// `sys.executable`, for kernelspecs.
    pub python: PathBuf,
    /// `sys.prefix`, for `kernel install --sys-prefix`.
    pub prefix: PathBuf,
}

pub fn main(argv: Vec<String>, host: Host) -> i32 {
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_USAGE } else { 0 };
        }
    };
    let client = Client::new(Context::from_process(), host.launcher.clone());
    let printer = Printer::new();
    match dispatch(cli.command, &client, &host, &printer) {
        Ok(code) => code,
        Err(e) => {
            printer.error(&client, &e);
            match e.kind() {
                kflow_core::ErrorKind::Backend
                | kflow_core::ErrorKind::Timeout
                | kflow_core::ErrorKind::NotInstalled => EXIT_FAILED,
                _ => EXIT_USAGE,
            }
        }
    }
}

fn dispatch(command: Command, client: &Client, host: &Host, out: &Printer) -> Result<i32, Error> {
    match command {
        Command::Run { run, detach } => {
            let spec = client.resolve(run.options())?;
            if spec.backend == kflow_core::BackendKind::Local && run.options().backend.is_none() {
                out.note("no cluster configured: running on the local backend (this machine)");
            }
            let job = out.spinner("packaging the project", || client.submit_spec(spec))?;
            let record = job.record();
            for warning in job.warnings() {
                out.warn(&warning);
            }
            out.note(&format!(
                "submitted {} {} (code sha256 {})",
                record.spec.kind,
                job.name(),
                &record.code_sha256[..12]
            ));
            if detach {
                println!("{}", job.name());
                return Ok(0);
            }
            follow(&job, out)
        }
        Command::Yaml { run, with_code } => {
            print!("{}", client.preview(run.options(), with_code)?.to_yaml());
            Ok(0)
        }
        Command::Logs {
            name,
            follow: keep,
            json,
        } => {
            let job = client.get(&name)?;
            let prefixed = job.replica_names().len() > 1;
            let mut logs = job.logs(keep);
            while let Some(lines) = logs.poll_wait(LOG_WAIT)? {
                out.log_lines(&lines, prefixed, json);
            }
            Ok(0)
        }
        Command::Status { name, json } => {
            let job = client.get(&name)?;
            let status = job.status()?;
            if json {
                let mut value = serde_json::to_value(&status).unwrap_or_default();
                value["name"] = serde_json::json!(job.name());
                value["kind"] = serde_json::json!(job.spec().kind.as_str());
                println!(
                    "{}",
                    serde_json::to_string_pretty(&value).unwrap_or_default()
                );
            } else {
                out.status(&job, &status);
            }
            Ok(0)
        }
        Command::Describe { name, json } => {
            let description = client.get(&name)?.describe()?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&description).unwrap_or_default()
                );
            } else {
                out.describe(&description);
            }
            Ok(0)
        }
        Command::Jobs { json } => {
            let listing = client.list();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&listing.jobs).unwrap_or_default()
                );
            } else {
                out.jobs(&listing.jobs);
            }
            match &listing.cluster_problem {
                // The listing is this command's whole point: an incomplete one must not pass as
                // complete in a script either.
                Some(problem) => {
                    out.warn(&format!("{problem}. Cluster jobs show their last known phase (stale in --json) and jobs submitted from elsewhere are missing"));
                    Ok(1)
                }
                None => Ok(0),
            }
        }
        Command::Exec {
            name,
            replica,
            command,
        } => {
            let output = client.get(&name)?.exec(replica.as_deref(), &command)?;
            // The command's bytes as they are (no newline added), flushed: the exit code is
            // returned through process::exit, which flushes nothing.
            use std::io::Write;
            let _ = std::io::stdout().write_all(output.stdout.as_bytes());
            let _ = std::io::stdout().flush();
            let _ = std::io::stderr().write_all(output.stderr.as_bytes());
            Ok(output.exit_code)
        }
        Command::CopyFrom {
            name,
            path,
            dest,
            replica,
        } => {
            let copied = client
                .get(&name)?
                .copy_from(replica.as_deref(), &path, &dest)?;
            for skipped in &copied.skipped {
                out.note(&format!("skipped {skipped}"));
            }
            out.note(&format!(
                "copied {} files ({} bytes) into {}",
                copied.files.len(),
                copied.bytes,
                dest.display()
            ));
            Ok(0)
        }
        Command::Cancel { name } => {
            let status = client.get(&name)?.cancel()?;
            out.note(&format!("{name}: {}", status.phase.as_str()));
            Ok(0)
        }
        Command::Delete { name } => {
            client.get(&name)?.delete()?;
            out.note(&format!("deleted {name}"));
            Ok(0)
        }
        Command::Restart { name, detach } => {
            let job = client.get(&name)?.restart()?;
            out.note(&format!(
                "restarted {} (attempt {})",
                job.name(),
                job.record().attempt
            ));
            if detach {
                return Ok(0);
            }
            follow(&job, out)
        }
        Command::Doctor { json } => {
            let doctor = client.doctor();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&doctor).unwrap_or_default()
                );
            } else {
                out.doctor(&doctor);
            }
            Ok(doctor.exit_code())
        }
        Command::Kernel {
            action:
                KernelAction::Install {
                    user: _,
                    sys_prefix,
                    prefix,
                    name,
                    display_name,
                },
        } => {
            let kernels = match (sys_prefix, prefix) {
                (true, _) => host.prefix.join("share/jupyter/kernels"),
                (_, Some(prefix)) => prefix.join("share/jupyter/kernels"),
                _ => kernelspec::user_kernels_dir(),
            };
            for dir in kernelspec::install(&kernels, &name, &display_name, &host.python)? {
                out.note(&format!("installed kernelspec in {}", dir.display()));
            }
            Ok(0)
        }
        Command::Templates { project_root, json } => {
            let root = project_root.unwrap_or_else(|| client.context().cwd.clone());
            let templates = client.templates(Some(&root))?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&templates).unwrap_or_default()
                );
            } else if templates.is_empty() {
                out.note(&format!(
                    "no templates; add JSON files to {} or {}",
                    root.join(".kflow/templates").display(),
                    client.context().dirs.user_templates().display()
                ));
            } else {
                for t in templates {
                    println!("{:<20} {:<8} {}", t.name, t.scope, t.path.display());
                }
            }
            Ok(0)
        }
        Command::Login {
            url,
            username,
            api_server,
            password_stdin,
            store_password,
            json,
        } => {
            let ctx = client.context();
            let interactive = std::io::stdin().is_terminal();
            let url = match url.or_else(|| kflow_core::auth::default_url(ctx)) {
                Some(u) => Some(u),
                None if interactive && !password_stdin => {
                    Some(kflow_core::auth::prompt_line("Kubeflow URL: ")?)
                }
                None => None,
            };
            let username = match username {
                Some(u) => u,
                None if interactive && !password_stdin => {
                    kflow_core::auth::prompt_line("Username: ")?
                }
                None => {
                    return Err(Error::invalid(
                        "username",
                        "",
                        "not given",
                        "pass --username NAME",
                    ))
                }
            };
            let password = if password_stdin {
                kflow_core::auth::read_password_stdin()?
            } else if interactive {
                kflow_core::auth::prompt_password("Password: ")?
            } else {
                return Err(Error::invalid(
                    "password",
                    "",
                    "stdin is not a terminal",
                    "pipe the password into `kflow login --password-stdin`",
                ));
            };
            let req = kflow_core::auth::LoginRequest {
                url,
                api_server,
                username,
                password,
                store_password,
            };
            let who = out.spinner("signing in", || kflow_core::auth::login(ctx, req))?;
            if let Some(n) = &who.notice {
                out.note(n);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&who).unwrap_or_default());
            } else {
                out.note(&format!(
                    "signed in to {} as {} (session in {}{})",
                    who.url.as_deref().unwrap_or(""),
                    who.username.as_deref().unwrap_or(""),
                    who.store_description,
                    if who.password_stored {
                        "; password stored for silent sign-in"
                    } else {
                        ""
                    }
                ));
            }
            Ok(0)
        }
        Command::Logout { json } => {
            let who = kflow_core::auth::logout(client.context())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&who).unwrap_or_default());
            } else if who.signed_in {
                out.note(&format!(
                    "signed out {} from {}; its secrets were removed from {}",
                    who.username.as_deref().unwrap_or(""),
                    who.url.as_deref().unwrap_or(""),
                    who.store_description
                ));
            } else {
                out.note("not signed in; nothing to remove");
            }
            Ok(0)
        }
        Command::Whoami { json } => {
            let who = kflow_core::auth::whoami(client.context())?;
            if let Some(n) = &who.notice {
                out.note(n);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&who).unwrap_or_default());
            } else if who.signed_in {
                println!(
                    "{} at {}",
                    who.username.as_deref().unwrap_or(""),
                    who.url.as_deref().unwrap_or("")
                );
                println!(
                    "token valid until {} ({} s; renewed automatically)",
                    who.expires_at.as_deref().unwrap_or("?"),
                    who.expires_in_seconds.unwrap_or(0)
                );
                println!("secret store: {}", who.store_description);
            } else {
                println!(
                    "not signed in (secret store: {}). Run `kflow login`.",
                    who.store_description
                );
            }
            Ok(if who.signed_in { 0 } else { EXIT_FAILED })
        }
        Command::Ls { what, list } => namespace::list(client, what, &list, out),
        Command::Pvc { action } => namespace::pvc(client, action, out),
        Command::Notebook { action } => namespace::notebook(client, action, out),
        Command::Dashboard {
            namespace,
            no_browser,
        } => namespace::dashboard(client, namespace, no_browser, out),
        Command::Schedule { action } => schedules::schedule(client, action, out),
        Command::Pipelines { action } => apps::pipelines(action, client, out),
        Command::Models { action } => apps::models(action, client, out),
        Command::Serve { stdio: _ } => Ok(serve::stdio(host.clone())),
        Command::Kubeconfig => {
            let yaml = kflow_core::auth::kubeconfig(client.context())?;
            out.note("warning: this kubeconfig holds a live token of your session: anyone who reads it can act as you until it expires. kflow keeps it in memory only; do not save it to a file you share");
            print!("{}", yaml.as_str());
            Ok(0)
        }
    }
}

/// How long one wait for log lines lasts before Ctrl-C and the pending spinner are looked at.
const LOG_WAIT: Duration = Duration::from_millis(100);

/// Streams the job's logs until it ends; Ctrl-C asks whether to cancel the job or detach.
fn follow(job: &Job, out: &Printer) -> Result<i32, Error> {
    let interrupted = Arc::new(AtomicBool::new(false));
    let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&interrupted));
    let prefixed = job.replica_names().len() > 1;
    let pending = out.pending_spinner();
    let followed = job.follow(
        LOG_WAIT,
        &mut || interrupted.load(Ordering::SeqCst),
        &mut |progress| match progress {
            Progress::Idle if !pending.is_finished() => {
                if let Ok(status) = job.status() {
                    if status.phase == Phase::Pending {
                        pending.set_message(format!(
                            "{} is pending ({})",
                            job.name(),
                            status.reason.unwrap_or_default()
                        ));
                    }
                }
            }
            Progress::Idle => {}
            Progress::Lines(lines) => {
                pending.finish_and_clear();
                out.log_lines(lines, prefixed, false);
            }
        },
    )?;
    pending.finish_and_clear();
    let Some(status) = followed else {
        interrupted.store(false, Ordering::SeqCst);
        if ask_cancel(job.name()) {
            let status = job.cancel()?;
            out.note(&format!("cancelled {}", job.name()));
            return Ok(status.phase.exit_code());
        }
        out.note(&format!(
            "detached; the job keeps running. Follow it again with `kflow logs {} -f`",
            job.name()
        ));
        return Ok(130);
    };
    out.outcome(job, &status);
    Ok(status.phase.exit_code())
}

fn ask_cancel(name: &str) -> bool {
    if !std::io::stdin().is_terminal() {
        return true;
    }
    eprint!("\nkflow: cancel job {name}? [Y]es, cancel / [n]o, detach and leave it running: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return true;
    }
    !answer.trim().to_ascii_lowercase().starts_with('n')
}
