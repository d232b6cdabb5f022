//! Run records: each run's spec, manifest and code digest, kept in the user's state
//! folder so `restart` needs nothing re-entered and `kflow jobs` works offline.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, JobError, Result};
use crate::spec::RunSpec;

/// What kflow keeps about one run on this machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// What the run runs and with what.
    pub spec: RunSpec,
    /// The run's Kubernetes manifests as YAML.
    pub manifest_yaml: String,
    /// The SHA-256 of the packaged code, hex.
    pub code_sha256: String,
    /// When this attempt was submitted (RFC 3339).
    pub created_at: String,
    /// 1 for the first run, +1 for each restart.
    pub attempt: u32,
    /// Credential files left out of the upload ("path (why)"), so every surface can say so.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub withheld: Vec<String>,
    /// Set for a training job kflow did not make (kubectl, TrainingClient, a pipeline step):
    /// its replicas as its spec names them (`master-0`, `worker-2`). Such a job can be
    /// watched, described and deleted, but kflow has no code or spec to restart it from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foreign_replicas: Option<Vec<String>>,
}

/// The folder of one run: `<state>/runs/<name>/`.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub root: PathBuf,
}

impl RunDir {
    pub fn new(runs: &std::path::Path, name: &str) -> RunDir {
        RunDir {
            root: runs.join(name),
        }
    }
    pub fn state_file(&self) -> PathBuf {
        self.root.join("state.json")
    }
    pub fn record_file(&self) -> PathBuf {
        self.root.join("record.json")
    }
    pub fn archive(&self) -> PathBuf {
        self.root.join("code.tar.gz")
    }
    pub fn workspace(&self) -> PathBuf {
        self.root.join("workspace")
    }
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn log_file(&self, replica: &str) -> PathBuf {
        self.logs().join(format!("{replica}.log"))
    }
    pub fn supervisor_log(&self) -> PathBuf {
        self.root.join("supervisor.log")
    }
    pub fn cancel_marker(&self) -> PathBuf {
        self.root.join("cancel-requested")
    }

    pub fn exists(&self) -> bool {
        self.record_file().is_file()
    }

    pub fn read_record(&self) -> Result<RunRecord> {
        let path = self.record_file();
        let text = std::fs::read_to_string(&path).map_err(Error::io("reading", &path))?;
        serde_json::from_str(&text).map_err(|e| {
            Error::Job(JobError::CorruptRecord {
                path,
                problem: e.to_string(),
            })
        })
    }

    pub fn write_record(&self, record: &RunRecord) -> Result<()> {
        write_atomic(
            &self.record_file(),
            &serde_json::to_vec_pretty(record).expect("record serializes"),
        )
    }
}

/// Now, as records and statuses write times: RFC 3339 with milliseconds.
pub fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// Writes through a temporary file and a rename, so a reader never sees half a file.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes).map_err(Error::io("writing", &tmp))?;
    std::fs::rename(&tmp, path).map_err(Error::io("writing", path))
}

/// Every recorded run, newest first. A folder with an unreadable record is skipped, not fatal:
/// one odd run must not hide the others.
pub fn list(runs: &std::path::Path) -> Vec<(RunDir, RunRecord)> {
    let Ok(entries) = std::fs::read_dir(runs) else {
        return Vec::new();
    };
    let mut out: Vec<(RunDir, RunRecord)> = entries
        .flatten()
        .filter_map(|e| {
            let dir = RunDir { root: e.path() };
            dir.read_record().ok().map(|r| (dir, r))
        })
        .collect();
    out.sort_by(|a, b| {
        b.1.created_at
            .cmp(&a.1.created_at)
            .then(a.1.spec.name.cmp(&b.1.spec.name))
    });
    out
}
