//! `kflow.schedule()`'s native half: schedules (CronJobs) over kflow-core's `Schedule`. Values
//! cross as JSON; every call that talks to the cluster releases the GIL.

use std::sync::Mutex;

use kflow_core::{Schedule, ScheduleRequest, ScheduleUpdate};
use pyo3::prelude::*;

use crate::{answer, client, options, to_json, to_py};

#[pyclass(module = "kflow._native", name = "NativeSchedule", frozen)]
pub struct NativeSchedule {
    schedule: Mutex<Schedule>,
}

impl NativeSchedule {
    fn new(schedule: Schedule) -> NativeSchedule {
        NativeSchedule {
            schedule: Mutex::new(schedule),
        }
    }

    fn with<T: Send>(
        &self,
        py: Python<'_>,
        work: impl FnOnce(&mut Schedule) -> kflow_core::Result<T> + Send,
    ) -> PyResult<T> {
        py.detach(|| {
            let mut schedule = self
                .schedule
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            work(&mut schedule)
        })
        .map_err(|e| to_py(py, e))
    }
}

/// Creates a schedule of the run `options_json` describes.
#[pyfunction]
#[pyo3(signature = (options_json, cron, timezone=None, suspend=false, outputs_size=None, timeout_seconds=None))]
pub fn schedule(
    py: Python<'_>,
    options_json: &str,
    cron: String,
    timezone: Option<String>,
    suspend: bool,
    outputs_size: Option<String>,
    timeout_seconds: Option<u64>,
) -> PyResult<NativeSchedule> {
    let opts = options(py, options_json)?;
    let client = client(py)?;
    let request = ScheduleRequest {
        cron,
        timezone,
        suspend,
        outputs_size,
        timeout_seconds,
    };
    py.detach(|| client.schedule(opts, request))
        .map(NativeSchedule::new)
        .map_err(|e| to_py(py, e))
}

#[pyfunction]
#[pyo3(signature = (name, namespace=None))]
pub fn get_schedule(
    py: Python<'_>,
    name: &str,
    namespace: Option<String>,
) -> PyResult<NativeSchedule> {
    let client = client(py)?;
    py.detach(|| client.get_schedule(name, namespace.as_deref()))
        .map(NativeSchedule::new)
        .map_err(|e| to_py(py, e))
}

#[pyfunction]
#[pyo3(signature = (namespace=None))]
pub fn schedules_json(py: Python<'_>, namespace: Option<String>) -> PyResult<String> {
    let client = client(py)?;
    answer(py, || client.schedules(namespace.as_deref()))
}

#[pymethods]
impl NativeSchedule {
    fn info_json(&self, py: Python<'_>) -> PyResult<String> {
        self.with(py, |s| Ok(to_json(s.info())))
    }

    fn refresh_json(&self, py: Python<'_>) -> PyResult<String> {
        self.with(py, |s| s.refresh().map(to_json))
    }

    /// `clear_timezone` goes back to the cluster's time zone.
    #[pyo3(signature = (cron=None, timezone=None, clear_timezone=false, suspend=None))]
    fn update_json(
        &self,
        py: Python<'_>,
        cron: Option<String>,
        timezone: Option<String>,
        clear_timezone: bool,
        suspend: Option<bool>,
    ) -> PyResult<String> {
        let update = ScheduleUpdate {
            cron,
            timezone: if clear_timezone {
                Some(None)
            } else {
                timezone.map(Some)
            },
            suspend,
        };
        self.with(py, |s| s.update(update).map(to_json))
    }

    fn warnings(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        self.with(py, |s| Ok(s.warnings().to_vec()))
    }

    fn trigger(&self, py: Python<'_>) -> PyResult<String> {
        self.with(py, |s| s.trigger())
    }

    fn runs_json(&self, py: Python<'_>) -> PyResult<String> {
        self.with(py, |s| s.runs().map(|r| to_json(&r)))
    }

    fn collect_json(
        &self,
        py: Python<'_>,
        runs: Vec<String>,
        dest: std::path::PathBuf,
    ) -> PyResult<String> {
        self.with(py, |s| s.collect(&runs, &dest).map(|c| to_json(&c)))
    }

    fn delete_run(&self, py: Python<'_>, run: &str) -> PyResult<()> {
        self.with(py, |s| s.delete_run(run))
    }

    #[pyo3(signature = (wait=false))]
    fn delete(&self, py: Python<'_>, wait: bool) -> PyResult<()> {
        self.with(py, |s| s.clone().delete(wait))
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeSchedule>()?;
    m.add_function(wrap_pyfunction!(schedule, m)?)?;
    m.add_function(wrap_pyfunction!(get_schedule, m)?)?;
    m.add_function(wrap_pyfunction!(schedules_json, m)?)?;
    Ok(())
}
