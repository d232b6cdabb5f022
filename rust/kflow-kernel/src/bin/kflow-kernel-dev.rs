//! Development entry point: `kflow-kernel-dev [--runner process] -f CONNECTION_FILE`.
//! Lets jupyter_client drive the kernel before the Python wheel's glue exists.

use std::path::PathBuf;
use std::sync::Arc;

use kflow_kernel::process_runner::ProcessRunner;
use kflow_kernel::{run_kernel, KernelConfig};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut conn: Option<PathBuf> = None;
    let mut runner = std::env::var("KFLOW_KERNEL_RUNNER").unwrap_or_else(|_| "process".into());
    while let Some(a) = args.next() {
        match a.as_str() {
            "-f" | "--connection-file" => conn = args.next().map(PathBuf::from),
            "--runner" => runner = args.next().unwrap_or_default(),
            other => {
                eprintln!("kflow-kernel-dev: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let Some(conn) = conn else {
        eprintln!("usage: kflow-kernel-dev [--runner process] -f CONNECTION_FILE");
        std::process::exit(2);
    };
    let python = PathBuf::from(std::env::var("KFLOW_PYTHON").unwrap_or_else(|_| "python3".into()));
    let runner: Arc<dyn kflow_kernel::CellRunner> = match runner.as_str() {
        "process" => Arc::new(ProcessRunner::new(python)),
        other => {
            eprintln!("kflow-kernel-dev: unknown runner {other}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run_kernel(&conn, runner, KernelConfig::default()) {
        eprintln!("kflow-kernel: {e}");
        std::process::exit(1);
    }
}
