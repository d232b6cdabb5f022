//! Kubeflow Pipelines and the Model Registry for `kflow.pipelines` and `kflow.models`: each
//! call works as the current session's user (`kflow.login` or `kflow login`); requests and
//! answers cross as JSON, network waits release the GIL, and a wait for a run checks for
//! Ctrl-C.

use std::time::Duration;

use kflow_core::{
    Context, Error, ModelRegistry, Pipelines, RegisterRequest, RunRequest, UploadRequest,
};
use pyo3::prelude::*;

use crate::{answer, page, to_json, to_py};

fn pipelines(py: Python<'_>) -> PyResult<Pipelines> {
    py.detach(|| Pipelines::connect(&Context::from_process()))
        .map_err(|e| to_py(py, e))
}

fn registry(py: Python<'_>) -> PyResult<ModelRegistry> {
    py.detach(|| ModelRegistry::connect(&Context::from_process()))
        .map_err(|e| to_py(py, e))
}

/// A request the Python layer built, read into its core type.
fn request<T: serde::de::DeserializeOwned>(
    py: Python<'_>,
    what: &'static str,
    json: &str,
) -> PyResult<T> {
    serde_json::from_str(json).map_err(|e| {
        to_py(
            py,
            Error::invalid(
                what,
                json.chars().take(200).collect::<String>(),
                e.to_string(),
                "pass values of the documented types",
            ),
        )
    })
}

#[pyfunction]
#[pyo3(signature = (namespace=None, limit=None, cursor=None))]
fn pipelines_list_json(
    py: Python<'_>,
    namespace: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
) -> PyResult<String> {
    let kfp = pipelines(py)?;
    answer(py, || {
        kfp.list_pipelines(namespace.as_deref(), &page(limit, cursor))
    })
}

#[pyfunction]
#[pyo3(signature = (pipeline, namespace=None, limit=None, cursor=None))]
fn pipelines_versions_json(
    py: Python<'_>,
    pipeline: String,
    namespace: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
) -> PyResult<String> {
    let kfp = pipelines(py)?;
    answer(py, || {
        kfp.list_versions(&pipeline, namespace.as_deref(), &page(limit, cursor))
    })
}

#[pyfunction]
#[pyo3(signature = (namespace=None, limit=None, cursor=None))]
fn pipelines_experiments_json(
    py: Python<'_>,
    namespace: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
) -> PyResult<String> {
    let kfp = pipelines(py)?;
    answer(py, || {
        kfp.list_experiments(namespace.as_deref(), &page(limit, cursor))
    })
}

#[pyfunction]
#[pyo3(signature = (namespace=None, experiment=None, limit=None, cursor=None))]
fn pipelines_runs_json(
    py: Python<'_>,
    namespace: Option<String>,
    experiment: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
) -> PyResult<String> {
    let kfp = pipelines(py)?;
    answer(py, || {
        kfp.list_runs(
            namespace.as_deref(),
            experiment.as_deref(),
            &page(limit, cursor),
        )
    })
}

/// Uploads a compiled pipeline; `request_json` is an `UploadRequest`.
#[pyfunction]
fn pipelines_upload_json(py: Python<'_>, request_json: &str) -> PyResult<String> {
    let req: UploadRequest = request(py, "pipeline upload", request_json)?;
    let kfp = pipelines(py)?;
    answer(py, || kfp.upload(&req))
}

/// Starts a run; `request_json` is a `RunRequest`.
#[pyfunction]
fn pipelines_run_json(py: Python<'_>, request_json: &str) -> PyResult<String> {
    let req: RunRequest = request(py, "pipeline run", request_json)?;
    let kfp = pipelines(py)?;
    answer(py, || kfp.start_run(&req))
}

#[pyfunction]
fn pipelines_get_run_json(py: Python<'_>, run_id: String) -> PyResult<String> {
    let kfp = pipelines(py)?;
    answer(py, || kfp.get_run(&run_id))
}

/// Follows a run to its end; `None` timeout waits for ever. Ctrl-C raises KeyboardInterrupt
/// (the run goes on).
#[pyfunction]
#[pyo3(signature = (run_id, timeout=None))]
fn pipelines_wait_json(py: Python<'_>, run_id: String, timeout: Option<f64>) -> PyResult<String> {
    let limit = match timeout {
        Some(t) if !(t.is_finite() && t >= 0.0) => {
            return Err(to_py(
                py,
                Error::invalid(
                    "timeout",
                    t.to_string(),
                    "not a number of seconds",
                    "pass timeout= as seconds, e.g. 600, or None to wait until the run ends",
                ),
            ))
        }
        t => t.map(Duration::from_secs_f64),
    };
    let kfp = pipelines(py)?;
    let mut interrupt: Option<PyErr> = None;
    let followed = py.detach(|| {
        kfp.follow_run(
            &run_id,
            limit,
            &mut || {
                Python::attach(|py| match py.check_signals() {
                    Ok(()) => false,
                    Err(e) => {
                        interrupt = Some(e);
                        true
                    }
                })
            },
            &mut |_| {},
        )
    });
    if let Some(e) = interrupt {
        return Err(e);
    }
    match followed {
        Ok(Some(run)) => Ok(to_json(&run)),
        Ok(None) => Err(PyErr::new::<pyo3::exceptions::PyKeyboardInterrupt, _>(
            "stopped waiting; the run goes on",
        )),
        Err(e) => Err(to_py(py, e)),
    }
}

#[pyfunction]
#[pyo3(signature = (limit=None, cursor=None))]
fn models_list_json(
    py: Python<'_>,
    limit: Option<u32>,
    cursor: Option<String>,
) -> PyResult<String> {
    let registry = registry(py)?;
    answer(py, || registry.list_models(&page(limit, cursor)))
}

#[pyfunction]
#[pyo3(signature = (model, limit=None, cursor=None))]
fn models_versions_json(
    py: Python<'_>,
    model: String,
    limit: Option<u32>,
    cursor: Option<String>,
) -> PyResult<String> {
    let registry = registry(py)?;
    answer(py, || registry.list_versions(&model, &page(limit, cursor)))
}

#[pyfunction]
#[pyo3(signature = (model, version, limit=None, cursor=None))]
fn models_artifacts_json(
    py: Python<'_>,
    model: String,
    version: String,
    limit: Option<u32>,
    cursor: Option<String>,
) -> PyResult<String> {
    let registry = registry(py)?;
    answer(py, || {
        registry.list_artifacts(&model, &version, &page(limit, cursor))
    })
}

/// Registers a model version; `request_json` is a `RegisterRequest`.
#[pyfunction]
fn models_register_json(py: Python<'_>, request_json: &str) -> PyResult<String> {
    let req: RegisterRequest = request(py, "model registration", request_json)?;
    let registry = registry(py)?;
    answer(py, || registry.register(&req))
}

/// Adds this file's functions to `_native`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    for f in [
        wrap_pyfunction!(pipelines_list_json, m)?,
        wrap_pyfunction!(pipelines_versions_json, m)?,
        wrap_pyfunction!(pipelines_experiments_json, m)?,
        wrap_pyfunction!(pipelines_runs_json, m)?,
        wrap_pyfunction!(pipelines_upload_json, m)?,
        wrap_pyfunction!(pipelines_run_json, m)?,
        wrap_pyfunction!(pipelines_get_run_json, m)?,
        wrap_pyfunction!(pipelines_wait_json, m)?,
        wrap_pyfunction!(models_list_json, m)?,
        wrap_pyfunction!(models_versions_json, m)?,
        wrap_pyfunction!(models_artifacts_json, m)?,
        wrap_pyfunction!(models_register_json, m)?,
    ] {
        m.add_function(f)?;
    }
    Ok(())
}
