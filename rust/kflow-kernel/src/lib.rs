//! kflow's Jupyter kernel. Layers, bottom up: `connection` (the connection file), `wire`
//! (framing + HMAC), `messages` (typed contents), `zmtp` (the ZeroMQ wire protocol, bounded), `sockets` (the five sockets' tasks), `kernel` (the
//! request loop), then kflow's semantics: `magics`/`options` (parsing), `cells` (what a cell
//! does), `assist` (completion, is_complete, inspect) and `runner` (the seam to jobs).

#![forbid(unsafe_code)]

pub mod assist;
pub mod cells;
pub mod connection;
pub mod core_runner;
pub mod error;
pub mod kernel;
pub mod magics;
pub mod messages;
pub mod options;
pub mod output;
pub mod remote;
pub mod runner;
pub mod sockets;
pub mod wire;
pub mod zmtp;

use std::path::Path;
use std::sync::Arc;

pub use error::{KernelError, Result};
pub use kernel::KernelConfig;
pub use runner::CellRunner;

/// Run a kernel for `connection_file` with the given runner until a shutdown_request.
/// Blocks the calling thread (it owns its own tokio runtime, so it works from Python too).
/// The production entry (what `python -m kflow.kernel` calls through kflow._native): cells run
/// through kflow-core; `launcher` starts the local backend's supervisor.
/// With `session`, the session kernelspec: cells run in one long-lived remote Python from the
/// first cell on (the plain kernel switches with `%kflow session on`).
pub fn kernel_main(
    connection_file: &Path,
    launcher: kflow_core::Launcher,
    session: bool,
) -> Result<()> {
    let info = connection::ConnectionInfo::from_file(connection_file)?;
    let client = kflow_core::Client::new(kflow_core::Context::from_process(), launcher);
    let remote = remote::Remote::new(client.clone(), &info.key, session);
    let runner = Arc::new(core_runner::KflowRunner::with_client(client));
    serve_kernel(info, runner, KernelConfig::default(), Some(remote))
}

pub fn run_kernel(
    connection_file: &Path,
    runner: Arc<dyn CellRunner>,
    config: KernelConfig,
) -> Result<()> {
    let info = connection::ConnectionInfo::from_file(connection_file)?;
    serve_kernel(info, runner, config, None)
}

fn serve_kernel(
    info: connection::ConnectionInfo,
    runner: Arc<dyn CellRunner>,
    config: KernelConfig,
    remote: Option<Arc<remote::Remote>>,
) -> Result<()> {
    let executor = Arc::new(cells::Executor::new(runner, config.project_root.clone()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("kflow-kernel")
        .build()?;
    let result = rt.block_on(kernel::serve(info, executor, config, remote));
    // Do not wait for a runner thread still following a job (its job was cancelled already).
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
    result
}
