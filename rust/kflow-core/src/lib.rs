//! kflow's domain: what to run (spec), what it becomes on a cluster (manifest), how the code
//! travels (artifacts), where it runs (backend) and the job handle over it all (jobs). It knows
//! nothing of Python, Jupyter or VS Code; each of those is a thin adapter over `Client`.

pub mod artifacts;
pub mod auth;
pub mod backend;
pub mod error;
pub mod events;
pub mod jobs;
pub mod manifest;
pub mod paths;
pub mod records;
pub mod spec;

pub use backend::cluster::describe::Description;
pub use backend::cluster::doctor::Doctor;
pub use backend::local::Launcher;
pub use backend::{JobStatus, LogLine, Phase, ReplicaStatus, Severity};
pub use error::{Error, ErrorKind, Result};
pub use jobs::{Client, Job, JobSummary, Listing, LogStream, Preview};
pub use spec::{BackendKind, CodeMode, Context, JobKind, RunOptions, RunSpec};
