//! The crate's one error type. Protocol faults caused by a peer (bad signature, bad JSON) are
//! values of this type too: the socket loops log them and carry on, they never end the kernel.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("cannot read connection file {path}: {source}")]
    ConnectionFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid connection file {path}: {reason}")]
    InvalidConnection { path: PathBuf, reason: String },
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("message signature does not match")]
    BadSignature,
    #[error("message signature was seen before (a replayed message)")]
    Replayed,
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    Oversized { size: usize, limit: usize },
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = KernelError> = std::result::Result<T, E>;
