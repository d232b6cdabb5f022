//! What the CLI prints: log lines (highlighted on a terminal, plain otherwise), notes and errors
//! on stderr, tables. Colour only when the stream is a terminal and NO_COLOR is unset.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use kflow_core::{events, Client, Error, Job, JobStatus, JobSummary, LogLine, Phase, Severity};

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
        Printer { color_out: !no_color && std::io::stdout().is_terminal(), color_err: !no_color && std::io::stderr().is_terminal() }
    }

    fn paint(&self, on: bool, color: &str, text: &str) -> String {
        if on {
            format!("{color}{text}{RESET}")
        } else {
            text.to_string()
        }
    }

    pub fn log_line(&self, line: &LogLine, prefixed: bool) {
        let text = line.render(prefixed);
        let text = match line.severity() {
            Severity::Error => self.paint(self.color_out, RED, &text),
            Severity::Warning => self.paint(self.color_out, YELLOW, &text),
            Severity::Normal => text,
        };
        println!("{text}");
    }

    pub fn note(&self, text: &str) {
        eprintln!("{} {text}", self.paint(self.color_err, BOLD, "kflow:"));
    }

    /// Prints the error with its fix and an event ID, and records both in the local log.
    pub fn error(&self, client: &Client, err: &Error) {
        let id = events::record(&client.context().dirs.event_log(), "error", &err.to_string());
        eprintln!("{} {err}", self.paint(self.color_err, RED, &format!("error[{id}]:")));
    }

    pub fn spinner<T>(&self, message: &str, work: impl FnOnce() -> T) -> T {
        let bar = ProgressBar::new_spinner();
        bar.set_style(ProgressStyle::with_template("{spinner} {msg} ({elapsed})").unwrap_or_else(|_| ProgressStyle::default_spinner()));
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(100));
        let out = work();
        bar.finish_and_clear();
        out
    }

    /// A spinner for the time a job is pending (installing dependencies, starting).
    pub fn pending_spinner(&self) -> ProgressBar {
        let bar = ProgressBar::new_spinner();
        bar.set_style(ProgressStyle::with_template("{spinner} {msg} ({elapsed})").unwrap_or_else(|_| ProgressStyle::default_spinner()));
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
            self.note(&format!("logs: kflow logs {}   restart: kflow restart {}", job.name(), job.name()));
        }
    }

    pub fn status(&self, job: &Job, status: &JobStatus) {
        let spec = job.spec();
        println!("name:     {}", job.name());
        println!("kind:     {}  ({} backend)", spec.kind, spec.backend.as_str());
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
            let code = replica.exit_code.map(|c| format!(" (exit code {c})")).unwrap_or_default();
            println!("  {:<10} {}{code}", replica.name, replica.phase.as_str());
        }
    }

    pub fn jobs(&self, jobs: &[JobSummary]) {
        if jobs.is_empty() {
            self.note("no jobs yet; start one with `kflow run train.py`");
            return;
        }
        println!("{:<28} {:<11} {:<8} {:<10} {:<24} SCRIPT", "NAME", "KIND", "BACKEND", "PHASE", "CREATED");
        for j in jobs {
            println!("{:<28} {:<11} {:<8} {:<10} {:<24} {}", j.name, j.kind, j.backend, j.phase, &j.created_at[..j.created_at.len().min(23)], j.script);
        }
    }
}
