//! What the CLI prints: log lines (highlighted on a terminal, plain otherwise), notes and errors
//! on stderr, tables. Colour only when the stream is a terminal and NO_COLOR is unset.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use kflow_core::{
    events, Client, Description, Doctor, Error, Job, JobStatus, JobSummary, LogLine, Page, Phase,
    Severity,
};
use serde::Serialize;

pub struct Printer {
    color_out: bool,
    color_err: bool,
}

const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const GREEN: &str = "\x1b[32m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

impl Printer {
    pub fn new() -> Printer {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Printer {
            color_out: !no_color && std::io::stdout().is_terminal(),
            color_err: !no_color && std::io::stderr().is_terminal(),
        }
    }

    fn paint(&self, on: bool, color: &str, text: &str) -> String {
        if on {
            format!("{color}{text}{RESET}")
        } else {
            text.to_string()
        }
    }

    /// Prints a batch of log lines with one write: a fast log is not a syscall per line.
    pub fn log_lines(&self, lines: &[LogLine], prefixed: bool, json: bool) {
        use std::io::Write;
        let mut buf = String::with_capacity(lines.len() * 64);
        for line in lines {
            if json {
                buf.push_str(&serde_json::json!({ "replica": line.replica, "text": line.text, "severity": line.severity() }).to_string());
            } else {
                let text = line.render(prefixed);
                match line.severity() {
                    Severity::Error => buf.push_str(&self.paint(self.color_out, RED, &text)),
                    Severity::Warning => buf.push_str(&self.paint(self.color_out, YELLOW, &text)),
                    Severity::Normal => buf.push_str(&text),
                }
            }
            buf.push('\n');
        }
        let mut stdout = std::io::stdout().lock();
        let _ = stdout
            .write_all(buf.as_bytes())
            .and_then(|()| stdout.flush());
    }

    pub fn note(&self, text: &str) {
        eprintln!("{} {text}", self.paint(self.color_err, BOLD, "kflow:"));
    }

    pub fn warn(&self, text: &str) {
        eprintln!(
            "{} {text}",
            self.paint(self.color_err, YELLOW, "kflow: warning:")
        );
    }

    /// Prints the error with its fix and an event ID, and records both in the local log.
    pub fn error(&self, client: &Client, err: &Error) {
        let report = events::Report::record(err, &client.context().dirs.event_log());
        eprintln!(
            "{} {}",
            self.paint(self.color_err, RED, &format!("error[{}]:", report.event_id)),
            report.message
        );
    }

    pub fn spinner<T>(&self, message: &str, work: impl FnOnce() -> T) -> T {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(100));
        let out = work();
        bar.finish_and_clear();
        out
    }

    /// A spinner for the time a job is pending (installing dependencies, starting).
    pub fn pending_spinner(&self) -> ProgressBar {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message("starting");
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    }

    pub fn outcome(&self, job: &Job, status: &JobStatus) {
        let phase = status.phase.as_str();
        let phase = match status.phase {
            Phase::Succeeded => self.paint(self.color_err, GREEN, phase),
            Phase::Failed => self.paint(self.color_err, RED, phase),
            _ => phase.to_string(),
        };
        let detail = match (&status.phase, &status.message) {
            (Phase::Failed, Some(message)) => format!(": {message}"),
            _ => String::new(),
        };
        self.note(&format!("job {} {phase}{detail}", job.name()));
        if status.phase == Phase::Failed {
            self.note(&format!(
                "logs: kflow logs {}   restart: kflow restart {}",
                job.name(),
                job.name()
            ));
        }
    }

    pub fn status(&self, job: &Job, status: &JobStatus) {
        let spec = job.spec();
        println!("name:     {}", job.name());
        println!(
            "kind:     {}  ({} backend)",
            spec.kind,
            spec.backend.as_str()
        );
        println!("script:   {} {}", spec.script, spec.args.join(" "));
        println!("phase:    {}", status.phase.as_str());
        if let Some(reason) = &status.reason {
            println!("reason:   {reason}");
        }
        if let Some(message) = &status.message {
            println!("message:  {message}");
        }
        if let Some(t) = &status.started_at {
            println!("started:  {t}");
        }
        if let Some(t) = &status.finished_at {
            println!("finished: {t}");
        }
        for replica in &status.replicas {
            let code = replica
                .exit_code
                .map(|c| format!(" (exit code {c})"))
                .unwrap_or_default();
            println!("  {:<10} {}{code}", replica.name, replica.phase.as_str());
        }
    }

    pub fn jobs(&self, jobs: &[JobSummary]) {
        if jobs.is_empty() {
            self.note("no jobs yet; start one with `kflow run train.py`");
            return;
        }
        println!(
            "{:<28} {:<11} {:<8} {:<10} {:<24} SCRIPT",
            "NAME", "KIND", "BACKEND", "PHASE", "CREATED"
        );
        for j in jobs {
            println!(
                "{:<28} {:<11} {:<8} {:<10} {:<24} {}",
                j.name,
                j.kind,
                j.backend,
                j.phase,
                &j.created_at[..j.created_at.len().min(23)],
                j.script
            );
        }
    }

    pub fn doctor(&self, d: &Doctor) {
        println!(
            "backend:    {} (where runs go unless they choose)",
            d.backend
        );
        match &d.connection {
            None => println!(
                "cluster:    {}",
                if d.cluster_configured {
                    "configured, but the connection failed"
                } else {
                    "not configured"
                }
            ),
            Some(c) => {
                let via = match c.via.as_str() {
                    "session" => "signed-in Kubeflow session (`kflow login`)".to_string(),
                    "kubeconfig" => format!("kubeconfig {}", c.files.join(":")),
                    "in-cluster" => "in-cluster service account".to_string(),
                    other => other.to_string(),
                };
                println!("connection: {via}");
                if let Some(ctx) = &c.context {
                    println!("context:    {ctx}");
                }
                println!(
                    "server:     {}",
                    if c.server.is_empty() {
                        "(from the session)"
                    } else {
                        &c.server
                    }
                );
                println!("user:       {}", c.user.as_deref().unwrap_or("(unknown)"));
                println!("namespace:  {}", c.namespace);
                let kinds = if d.kinds.is_empty() {
                    "none".to_string()
                } else {
                    d.kinds.join(", ")
                };
                println!("kinds:      {kinds}");
                println!(
                    "notebooks:  {}",
                    d.notebook
                        .as_deref()
                        .map(|v| format!("Notebook ({v})"))
                        .unwrap_or_else(|| "not served".into())
                );
                if let Some(may) = d.can_submit {
                    println!(
                        "submit:     {}",
                        if may {
                            format!("allowed in {}", c.namespace)
                        } else {
                            format!("NOT allowed in {} (see problem)", c.namespace)
                        }
                    );
                }
            }
        }
        for n in &d.notes {
            self.note(n);
        }
        if let Some(p) = &d.problem {
            eprintln!("{} {p}", self.paint(self.color_err, RED, "problem:"));
        }
    }

    /// `kflow describe`, in the order a person reads to find out why: what, how it stands,
    /// the pods, what happened to them, what they printed last.
    pub fn describe(&self, d: &Description) {
        let spec = &d.spec;
        let field = |k: &str| spec[k].as_str().unwrap_or("").to_string();
        println!("name:      {}", d.name);
        println!(
            "kind:      {}  ({} backend{})",
            d.kind,
            d.backend,
            d.namespace
                .as_deref()
                .map(|n| format!(", namespace {n}"))
                .unwrap_or_default()
        );
        let args: Vec<String> = spec["args"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        println!("script:    {} {}", field("script"), args.join(" "));
        if !field("image").is_empty() {
            println!("image:     {}", field("image"));
        }
        println!(
            "phase:     {}{}",
            d.status.phase.as_str(),
            d.status
                .reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
        if let Some(m) = &d.status.message {
            println!("message:   {m}");
        }
        if !d.conditions.is_empty() {
            println!("\nConditions:");
            for c in &d.conditions {
                println!(
                    "  {:<10} {:<6} {:<24} {}",
                    c.type_,
                    c.status,
                    c.reason.as_deref().unwrap_or(""),
                    c.message.as_deref().unwrap_or("")
                );
            }
        }
        if !d.pods.is_empty() {
            println!("\nPods:");
            println!(
                "  {:<36} {:<10} {:<10} {:<22} {:<5} {:<8} NODE",
                "NAME", "PHASE", "STATE", "REASON", "EXIT", "RESTARTS"
            );
            for p in &d.pods {
                let exit = p.exit_code.map(|c| c.to_string()).unwrap_or_default();
                println!(
                    "  {:<36} {:<10} {:<10} {:<22} {:<5} {:<8} {}",
                    p.name,
                    p.phase,
                    p.state.as_deref().unwrap_or(""),
                    p.reason.as_deref().unwrap_or(""),
                    exit,
                    p.restarts,
                    p.node.as_deref().unwrap_or("")
                );
                if let Some(m) = p.message.as_deref().filter(|m| !m.is_empty()) {
                    println!("    {m}");
                }
            }
        }
        if !d.events.is_empty() {
            println!("\nEvents:");
            for e in &d.events {
                let line = format!(
                    "  {:<8} {:<22} {:<36} {}",
                    e.type_, e.reason, e.object, e.message
                );
                println!(
                    "{}",
                    if e.type_ == "Warning" {
                        self.paint(self.color_out, YELLOW, &line)
                    } else {
                        line
                    }
                );
            }
        }
        for (replica, lines) in &d.logs {
            println!("\nLast log lines of {replica}:");
            if lines.is_empty() {
                println!("  (none yet)");
            }
            for l in lines {
                println!("  {l}");
            }
        }
    }
}

/// A table cell for an optional value.
pub fn or_dash(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "-".into())
}

pub fn print_json<T: Serialize>(value: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// Prints `rows` as aligned columns under `header`.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row);
    }
}

impl Printer {
    /// A page as JSON, or as a table of `header` with `cells` per row, then where the next
    /// page starts.
    pub fn page<T: Serialize>(
        &self,
        page: &Page<T>,
        json: bool,
        header: &[&str],
        cells: impl Fn(&T) -> Vec<String>,
    ) {
        if json {
            print_json(page);
            return;
        }
        if page.items.is_empty() {
            self.note("none");
        } else {
            table(header, page.items.iter().map(cells).collect());
        }
        if let Some(next) = &page.next {
            self.note(&format!("more: --cursor {next}"));
        }
    }
}
