//! `kflow._native`: the PyO3 layer over kflow-core. Structured values cross as JSON strings, the
//! typed Python API lives in `python/kflow/`. Long waits release the GIL and check for Ctrl-C.

mod apps;
mod namespace;
mod schedules;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use kflow_core::{events, Client, Context, Error, ErrorKind, Job, JobError, Launcher, RunOptions};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    _native,
    KflowError,
    PyException,
    "Base class of every error kflow raises; `event_id` is in kflow's local log."
);
create_exception!(
    _native,
    ValidationError,
    KflowError,
    "A run parameter is invalid."
);
create_exception!(
    _native,
    TemplateError,
    KflowError,
    "A job template is missing or invalid."
);
create_exception!(
    _native,
    PackagingError,
    KflowError,
    "The project folder cannot be packaged."
);
create_exception!(
    _native,
    JobNotFoundError,
    KflowError,
    "No job has that name."
);
create_exception!(
    _native,
    ConflictError,
    KflowError,
    "The job's state does not allow this."
);
create_exception!(
    _native,
    WaitTimeoutError,
    KflowError,
    "Waiting for a job took longer than the timeout."
);

create_exception!(
    _native,
    BackendError,
    KflowError,
    "The backend could not do what was asked."
);
create_exception!(
    _native,
    NotInstalledError,
    BackendError,
    "A Kubeflow component (Notebook controller, Pipelines, Model Registry) is not part of the deployment."
);

/// One client per process, so repeated calls reuse its cluster connection (connection pool,
/// token refresh, runtime), kept while `Client::is_current` says it still fits (the same
/// environment, no kubeconfig, config.toml or sign-in change); a changed working folder only
/// moves it. Sign-in and sign-out from Python drop it at once. A forked child (multiprocessing)
/// never uses its parent's: the runtime's threads did not come along.
static CLIENT: Mutex<Option<(u32, Client)>> = Mutex::new(None);

fn client(py: Python<'_>) -> PyResult<Client> {
    let ctx = Context::from_process();
    let pid = std::process::id();
    let mut cached = CLIENT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match cached.take() {
        Some((owner, client)) if owner == pid && client.is_current(&ctx) => {
            *cached = Some((owner, client.clone()));
            return Ok(client.in_folder(ctx.cwd));
        }
        // Dropping the parent's would shut down a runtime whose threads live in the parent.
        Some((owner, client)) if owner != pid => std::mem::forget(client),
        _ => {}
    }
    let client = Client::new(ctx, launcher(py)?);
    *cached = Some((pid, client.clone()));
    Ok(client)
}

fn forget_client() {
    *CLIENT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
}

/// The supervisor runs in the same interpreter as the caller, so the job sees the same packages.
fn launcher(py: Python<'_>) -> PyResult<Launcher> {
    let executable: String = py.import("sys")?.getattr("executable")?.extract()?;
    Ok(Launcher {
        command: vec![executable.into(), "-m".into(), "kflow._supervisor".into()],
    })
}

/// Turns a core error into the matching Python exception, with an event ID also in the log.
fn to_py(py: Python<'_>, err: Error) -> PyErr {
    let report = events::Report::record(&err, &Context::from_process().dirs.event_log());
    let message = format!("{} [event {}]", report.message, report.event_id);
    let exc = match report.kind {
        ErrorKind::Validation => ValidationError::new_err(message),
        ErrorKind::Template => TemplateError::new_err(message),
        ErrorKind::Packaging => PackagingError::new_err(message),
        ErrorKind::NotFound => JobNotFoundError::new_err(message),
        ErrorKind::Conflict => ConflictError::new_err(message),
        ErrorKind::Timeout => WaitTimeoutError::new_err(message),
        ErrorKind::Backend => BackendError::new_err(message),
        ErrorKind::NotInstalled => NotInstalledError::new_err(message),
    };
    let value = exc.value(py);
    let _ = value.setattr("event_id", report.event_id.as_str());
    let _ = value.setattr("problem", report.problem);
    let _ = value.setattr("fix", report.fix);
    exc
}

fn options(py: Python<'_>, json: &str) -> PyResult<RunOptions> {
    serde_json::from_str(json).map_err(|e| {
        to_py(
            py,
            Error::invalid(
                "run options",
                json.chars().take(200).collect::<String>(),
                e.to_string(),
                "pass values of the documented types",
            ),
        )
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// The page a Python listing asks for.
fn page(limit: Option<u32>, cursor: Option<String>) -> kflow_core::PageRequest {
    kflow_core::PageRequest { limit, cursor }
}

/// Runs `work` without the GIL and turns its result into JSON or the matching exception.
fn answer<T: serde::Serialize + Send>(
    py: Python<'_>,
    work: impl FnOnce() -> kflow_core::Result<T> + Send,
) -> PyResult<String> {
    py.detach(work)
        .map(|v| to_json(&v))
        .map_err(|e| to_py(py, e))
}

#[pyclass(module = "kflow._native", name = "NativeJob", frozen)]
struct NativeJob {
    job: Job,
}

#[pymethods]
impl NativeJob {
    #[getter]
    fn name(&self) -> &str {
        self.job.name()
    }

    #[getter]
    fn run_dir(&self) -> String {
        self.job.run_dir().display().to_string()
    }

    fn replicas(&self) -> Vec<String> {
        self.job.replica_names()
    }

    fn spec_json(&self) -> String {
        to_json(self.job.spec())
    }

    fn record_json(&self) -> String {
        to_json(self.job.record())
    }

    fn status_json(&self, py: Python<'_>) -> PyResult<String> {
        self.job
            .status()
            .map(|s| to_json(&s))
            .map_err(|e| to_py(py, e))
    }

    /// What the user should be told about this run (credentials left out of the upload…).
    fn warnings(&self) -> Vec<String> {
        self.job.warnings()
    }

    fn manifest_yaml(&self) -> String {
        self.job.manifest_yaml().to_string()
    }

    fn logs(&self, follow: bool) -> LogIter {
        LogIter {
            stream: Mutex::new(self.job.logs(follow)),
            pending: Mutex::new(Default::default()),
        }
    }

    /// Waits for the end; `None` timeout waits for ever. Ctrl-C raises KeyboardInterrupt.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<String> {
        let start = Instant::now();
        loop {
            let slice = Duration::from_millis(200);
            let result = py.detach(|| self.job.wait(Some(slice), &mut || false));
            match result {
                Ok(status) => return Ok(to_json(&status)),
                Err(Error::Job(JobError::WaitTimeout { .. })) => {}
                Err(e) => return Err(to_py(py, e)),
            }
            py.check_signals()?;
            if let Some(limit) = timeout {
                if start.elapsed().as_secs_f64() >= limit {
                    let phase = self
                        .job
                        .status()
                        .map(|s| s.phase.as_str().to_string())
                        .unwrap_or_default();
                    return Err(to_py(
                        py,
                        Error::Job(JobError::WaitTimeout {
                            name: self.job.name().to_string(),
                            seconds: limit,
                            phase,
                        }),
                    ));
                }
            }
        }
    }

    fn cancel(&self, py: Python<'_>) -> PyResult<String> {
        py.detach(|| self.job.cancel())
            .map(|s| to_json(&s))
            .map_err(|e| to_py(py, e))
    }

    fn delete(&self, py: Python<'_>) -> PyResult<()> {
        let job = self.job.clone();
        py.detach(move || job.delete()).map_err(|e| to_py(py, e))
    }

    #[pyo3(signature = (argv, replica=None))]
    fn exec(&self, py: Python<'_>, argv: Vec<String>, replica: Option<String>) -> PyResult<String> {
        answer(py, || self.job.exec(replica.as_deref(), &argv))
    }

    #[pyo3(signature = (path, dest, replica=None))]
    fn copy_from(
        &self,
        py: Python<'_>,
        path: String,
        dest: std::path::PathBuf,
        replica: Option<String>,
    ) -> PyResult<String> {
        answer(py, || self.job.copy_from(replica.as_deref(), &path, &dest))
    }

    fn restart(&self, py: Python<'_>) -> PyResult<NativeJob> {
        py.detach(|| self.job.restart())
            .map(|job| NativeJob { job })
            .map_err(|e| to_py(py, e))
    }
}

/// Log lines as `(replica, text)` tuples; a follow waits without the GIL.
#[pyclass(module = "kflow._native", name = "LogIter")]
struct LogIter {
    stream: Mutex<kflow_core::LogStream>,
    pending: Mutex<std::collections::VecDeque<kflow_core::LogLine>>,
}

#[pymethods]
impl LogIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<(String, String)>> {
        loop {
            if let Some(line) = self.pending.lock().expect("log lock").pop_front() {
                return Ok(Some((line.replica, line.text)));
            }
            // Wait up to 200 ms for lines, then come back to check for Ctrl-C.
            let polled = py.detach(|| {
                self.stream
                    .lock()
                    .expect("log lock")
                    .poll_wait(Duration::from_millis(200))
            });
            match polled.map_err(|e| to_py(py, e))? {
                None => return Ok(None),
                Some(lines) => self.pending.lock().expect("log lock").extend(lines),
            }
            py.check_signals()?;
        }
    }

    /// Whatever is available now, without waiting: a list of `(replica, text)`, or `None` at
    /// the end. Lets the kernel and magics batch output.
    fn poll(&self, py: Python<'_>) -> PyResult<Option<Vec<(String, String)>>> {
        let mut out: Vec<(String, String)> = self
            .pending
            .lock()
            .expect("log lock")
            .drain(..)
            .map(|l| (l.replica, l.text))
            .collect();
        let polled = self
            .stream
            .lock()
            .expect("log lock")
            .poll()
            .map_err(|e| to_py(py, e))?;
        match polled {
            Some(lines) => {
                out.extend(lines.into_iter().map(|l| (l.replica, l.text)));
                Ok(Some(out))
            }
            None if out.is_empty() => Ok(None),
            None => Ok(Some(out)),
        }
    }
}

#[pyfunction]
fn submit(py: Python<'_>, options_json: &str) -> PyResult<NativeJob> {
    let opts = options(py, options_json)?;
    let client = client(py)?;
    py.detach(|| client.submit(opts))
        .map(|job| NativeJob { job })
        .map_err(|e| to_py(py, e))
}

/// `(spec_json, manifests_yaml, manifests_json)` of a run, created nowhere.
#[pyfunction]
#[pyo3(signature = (options_json, with_code=false))]
fn preview(
    py: Python<'_>,
    options_json: &str,
    with_code: bool,
) -> PyResult<(String, String, String)> {
    let opts = options(py, options_json)?;
    let client = client(py)?;
    let preview = py
        .detach(|| client.preview(opts, with_code))
        .map_err(|e| to_py(py, e))?;
    Ok((
        to_json(&preview.spec),
        preview.to_yaml(),
        to_json(&preview.objects),
    ))
}

#[pyfunction]
fn get(py: Python<'_>, name: &str) -> PyResult<NativeJob> {
    client(py)?
        .get(name)
        .map(|job| NativeJob { job })
        .map_err(|e| to_py(py, e))
}

/// `kflow describe NAME --json`: spec, status, conditions, pods, events, last log lines.
#[pyfunction]
fn describe_json(py: Python<'_>, name: &str) -> PyResult<String> {
    let job = client(py)?.get(name).map_err(|e| to_py(py, e))?;
    py.detach(|| job.describe())
        .map(|d| to_json(&d))
        .map_err(|e| to_py(py, e))
}

#[pyfunction]
fn jobs_json(py: Python<'_>) -> PyResult<String> {
    Ok(to_json(&client(py)?.list()))
}

/// `kflow doctor` as JSON: connection, user, namespace, served kinds (never a token).
#[pyfunction]
fn doctor_json(py: Python<'_>) -> PyResult<String> {
    let client = client(py)?;
    Ok(to_json(&py.detach(|| client.doctor())))
}

#[pyfunction]
#[pyo3(signature = (project_root=None))]
fn templates_json(py: Python<'_>, project_root: Option<std::path::PathBuf>) -> PyResult<String> {
    let client = client(py)?;
    let root = project_root.unwrap_or_else(|| client.context().cwd.clone());
    client
        .templates(Some(&root))
        .map(|t| to_json(&t))
        .map_err(|e| to_py(py, e))
}

/// Packs a folder as a run would: `(sha256, tar.gz bytes, files)`. For benchmarks and tools.
#[pyfunction]
fn package(
    py: Python<'_>,
    root: std::path::PathBuf,
    out: std::path::PathBuf,
) -> PyResult<(String, u64, usize)> {
    py.detach(|| kflow_core::package(&root, &out, &Default::default()))
        .map(|a| (a.sha256, a.bytes, a.files))
        .map_err(|e| to_py(py, e))
}

/// kflow-core's run-option grammar (names, aliases, value kinds, help) as JSON, so the IPython
/// magic spells options as the CLI and the kflow kernel do.
#[pyfunction]
fn run_options_json() -> String {
    to_json(&kflow_core::RUN_OPTIONS)
}

/// Records an error raised by the Python layer itself, so it gets an event ID too.
#[pyfunction]
fn record_event(level: &str, message: &str) -> String {
    events::record(&Context::from_process().dirs.event_log(), level, message).to_string()
}

/// The `kflow` command; returns the exit code.
#[pyfunction]
fn cli_main(py: Python<'_>, argv: Vec<String>) -> PyResult<i32> {
    let sys = py.import("sys")?;
    let host = kflow_cli::Host {
        launcher: launcher(py)?,
        python: sys.getattr("executable")?.extract::<String>()?.into(),
        prefix: sys.getattr("prefix")?.extract::<String>()?.into(),
    };
    let code = py.detach(|| kflow_cli::main(argv, host));
    // The CLI handled Ctrl-C itself (cancel or detach); drop the KeyboardInterrupt Python's own
    // handler queued meanwhile, or it would surface as a traceback after the answer.
    let _ = py.check_signals();
    Ok(code)
}

/// Entry of `python -m kflow.kernel -f CONNECTION_FILE` (the kernelspec's argv): serves the
/// Jupyter kernel until a shutdown_request. The kernel never calls into Python, so the GIL is
/// released for its whole life; local jobs' supervisors run under this interpreter.
#[pyfunction]
#[pyo3(signature = (connection_file, session=false))]
fn kernel_main(py: Python<'_>, connection_file: std::path::PathBuf, session: bool) -> PyResult<()> {
    let launcher = launcher(py)?;
    py.detach(|| kflow_kernel::kernel_main(&connection_file, launcher, session))
        .map_err(|e| KflowError::new_err(format!("kflow kernel: {e}")))
}

/// Entry of `python -m kflow._supervisor RUN_DIR`.
#[pyfunction]
fn supervise(py: Python<'_>, run_dir: std::path::PathBuf) -> PyResult<i32> {
    let python: std::path::PathBuf = py
        .import("sys")?
        .getattr("executable")?
        .extract::<String>()?
        .into();
    let ctx = Context::from_process();
    match py.detach(|| kflow_core::supervise(&run_dir, &python, &ctx)) {
        Ok(()) => Ok(0),
        Err(e) => {
            eprintln!("kflow supervisor: {e}");
            Ok(1)
        }
    }
}

/// Signs in to Kubeflow; returns who is signed in as JSON (nothing secret in it).
#[pyfunction]
#[pyo3(signature = (username, password, url=None, store_password=false, api_server=None))]
fn auth_login(
    py: Python<'_>,
    username: String,
    password: String,
    url: Option<String>,
    store_password: bool,
    api_server: Option<String>,
) -> PyResult<String> {
    let ctx = Context::from_process();
    let req = kflow_core::auth::LoginRequest {
        url,
        api_server,
        username,
        password: kflow_core::auth::Zeroizing::new(password),
        store_password,
    };
    let signed_in = py.detach(|| kflow_core::auth::login(&ctx, req));
    forget_client();
    signed_in.map(|who| to_json(&who)).map_err(|e| to_py(py, e))
}

/// Signs out; returns who was signed in as JSON.
#[pyfunction]
fn auth_logout(py: Python<'_>) -> PyResult<String> {
    let ctx = Context::from_process();
    let signed_out = py.detach(|| kflow_core::auth::logout(&ctx));
    forget_client();
    signed_out
        .map(|who| to_json(&who))
        .map_err(|e| to_py(py, e))
}

/// Who is signed in, as JSON (no network).
#[pyfunction]
fn auth_whoami(py: Python<'_>) -> PyResult<String> {
    let ctx = Context::from_process();
    py.detach(|| kflow_core::auth::whoami(&ctx))
        .map(|who| to_json(&who))
        .map_err(|e| to_py(py, e))
}

/// The URL `login` would use when given none (settings, else the stored session's).
#[pyfunction]
fn auth_default_url() -> Option<String> {
    kflow_core::auth::default_url(&Context::from_process())
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<NativeJob>()?;
    m.add_class::<LogIter>()?;
    m.add_class::<namespace::NativeNamespace>()?;
    m.add_class::<namespace::NativeForward>()?;
    m.add_class::<namespace::NativeWatch>()?;
    for f in [
        wrap_pyfunction!(submit, m)?,
        wrap_pyfunction!(preview, m)?,
        wrap_pyfunction!(get, m)?,
        wrap_pyfunction!(jobs_json, m)?,
        wrap_pyfunction!(doctor_json, m)?,
        wrap_pyfunction!(describe_json, m)?,
        wrap_pyfunction!(templates_json, m)?,
        wrap_pyfunction!(record_event, m)?,
        wrap_pyfunction!(run_options_json, m)?,
        wrap_pyfunction!(package, m)?,
        wrap_pyfunction!(cli_main, m)?,
        wrap_pyfunction!(supervise, m)?,
        wrap_pyfunction!(kernel_main, m)?,
        wrap_pyfunction!(auth_login, m)?,
        wrap_pyfunction!(auth_logout, m)?,
        wrap_pyfunction!(auth_whoami, m)?,
        wrap_pyfunction!(auth_default_url, m)?,
        wrap_pyfunction!(namespace::namespace, m)?,
    ] {
        m.add_function(f)?;
    }
    apps::register(m)?;
    schedules::register(m)?;
    m.add("KflowError", py.get_type::<KflowError>())?;
    m.add("ValidationError", py.get_type::<ValidationError>())?;
    m.add("TemplateError", py.get_type::<TemplateError>())?;
    m.add("PackagingError", py.get_type::<PackagingError>())?;
    m.add("JobNotFoundError", py.get_type::<JobNotFoundError>())?;
    m.add("ConflictError", py.get_type::<ConflictError>())?;
    m.add("WaitTimeoutError", py.get_type::<WaitTimeoutError>())?;
    m.add("BackendError", py.get_type::<BackendError>())?;
    m.add("NotInstalledError", py.get_type::<NotInstalledError>())?;
    Ok(())
}
