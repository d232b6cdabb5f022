//! Event IDs: every error shown to a user carries a short ID that also appears, with the
//! full detail, in kflow's local log, so a support question can start from the ID alone.

use std::fmt;
use std::io::Write;
use std::path::Path;

use rand::Rng;

use crate::error::{Error, ErrorKind};

/// A short ID, `KF-` and six characters, naming one entry of kflow's local log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventId(String);

impl EventId {
    /// A fresh random ID.
    pub fn new() -> EventId {
        // Crockford-style alphabet: no I, L, O, U, so an ID read aloud or retyped stays exact.
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
        let mut rng = rand::rng();
        let id: String = (0..6)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        EventId(format!("KF-{id}"))
    }

    /// The ID as text, e.g. `KF-7Q2M9X`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for EventId {
    fn default() -> Self {
        EventId::new()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An error as a surface shows it: what went wrong, how to fix it, and the event ID under which
/// the whole message is in the local log.
#[derive(Debug, Clone)]
pub struct Report {
    /// The ID under which the error is in the local log.
    pub event_id: EventId,
    /// The error's category, for picking an exception class or exit code.
    pub kind: ErrorKind,
    /// What went wrong and where.
    pub problem: String,
    /// How to fix it, when kflow knows.
    pub fix: Option<String>,
    /// Problem and fix together, as `Display` of the error gives them.
    pub message: String,
}

impl Report {
    /// Logs `err` in `log` and returns what to show.
    pub fn record(err: &Error, log: &Path) -> Report {
        let message = err.to_string();
        Report {
            event_id: record(log, "error", &message),
            kind: err.kind(),
            problem: err.problem(),
            fix: err.fix(),
            message,
        }
    }
}

/// Appends one line to the event log and returns the new ID. Logging is best effort: a read-only
/// home must not turn a clear error into a confusing one.
pub fn record(log: &Path, level: &str, message: &str) -> EventId {
    let id = EventId::new();
    let stamp = humantime::format_rfc3339_millis(std::time::SystemTime::now());
    let line = format!("{stamp} {level} {id} {}\n", message.replace('\n', " | "));
    if let Some(dir) = log.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    {
        let _ = file.write_all(line.as_bytes());
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_event_is_in_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("state/kflow.log");
        let id = record(&log, "error", "bad thing\nsecond line");
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains(id.as_str()));
        assert!(text.contains("bad thing | second line"));
        assert_eq!(id.as_str().len(), 9);
    }
}
