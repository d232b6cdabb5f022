//! Development entry point, so jupyter_client can drive the kernel before (and without) the
//! Python wheel:
//!   kflow-kernel-dev [--runner kflow|process] -f CONNECTION_FILE
//!   kflow-kernel-dev --supervise RUN_DIR     (the local backend's supervisor, launched by itself)
//! `kflow` runs cells through kflow-core's local backend; `process` is the plain runner.

mod process_runner;

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use kflow_kernel::core_runner::{self, KflowRunner};
use kflow_kernel::{run_kernel, CellRunner, KernelConfig};
use process_runner::ProcessRunner;

fn python() -> PathBuf {
    PathBuf::from(std::env::var("KFLOW_PYTHON").unwrap_or_else(|_| "python3".into()))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut conn: Option<PathBuf> = None;
    let mut runner = std::env::var("KFLOW_KERNEL_RUNNER").unwrap_or_else(|_| "kflow".into());
    while let Some(a) = args.next() {
        match a.as_str() {
            "-f" | "--connection-file" => conn = args.next().map(PathBuf::from),
            "--runner" => runner = args.next().unwrap_or_default(),
            "--supervise" => {
                let dir = PathBuf::from(args.next().unwrap_or_default());
                if let Err(e) = core_runner::supervise(&dir, &python()) {
                    eprintln!("kflow supervisor: {e}");
                    std::process::exit(1);
                }
                return;
            }
            other => {
                eprintln!("kflow-kernel-dev: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let Some(conn) = conn else {
        eprintln!("usage: kflow-kernel-dev [--runner kflow|process] -f CONNECTION_FILE");
        std::process::exit(2);
    };
    let runner: Arc<dyn CellRunner> = match runner.as_str() {
        "process" => Arc::new(ProcessRunner::new(python())),
        "kflow" => {
            let exe = std::env::current_exe()
                .map(OsString::from)
                .unwrap_or_else(|_| "kflow-kernel-dev".into());
            Arc::new(KflowRunner::new(kflow_core::Launcher {
                command: vec![exe, "--supervise".into()],
            }))
        }
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
