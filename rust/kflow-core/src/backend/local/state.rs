//! `state.json` of a local run: written by the supervisor, read by everyone else.

use serde::{Deserialize, Serialize};

use crate::backend::{JobStatus, Phase, ReplicaStatus};
use crate::error::{Error, JobError, Result};
use crate::records::{write_atomic, RunDir};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalState {
    pub status: JobStatus,
    pub supervisor_pid: Option<u32>,
    /// Process group of each started replica, so a cancel can end them without the supervisor.
    pub replica_pgids: Vec<i32>,
}

pub fn read(dir: &RunDir) -> Result<LocalState> {
    let path = dir.state_file();
    let text = std::fs::read_to_string(&path).map_err(Error::io("reading", &path))?;
    serde_json::from_str(&text).map_err(|e| {
        Error::Job(JobError::CorruptRecord {
            path,
            problem: e.to_string(),
        })
    })
}

pub fn write(dir: &RunDir, state: &LocalState) -> Result<()> {
    write_atomic(
        &dir.state_file(),
        &serde_json::to_vec_pretty(state).expect("state serializes"),
    )
}

pub use crate::records::now;

pub fn pending(replicas: &[String], reason: &str) -> LocalState {
    LocalState {
        status: JobStatus {
            phase: Phase::Pending,
            reason: Some(reason.to_string()),
            message: None,
            replicas: replicas
                .iter()
                .map(|r| ReplicaStatus {
                    name: r.clone(),
                    phase: Phase::Pending,
                    exit_code: None,
                })
                .collect(),
            started_at: None,
            finished_at: None,
        },
        supervisor_pid: None,
        replica_pgids: Vec::new(),
    }
}

pub fn is_alive(pid: u32) -> bool {
    // Signal 0 checks existence. Whoever starts a supervisor reaps it in a thread, so a
    // finished supervisor does not linger as a zombie that would look alive here.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok()
}
