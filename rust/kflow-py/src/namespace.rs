//! `kflow.namespace()`'s native half: the namespace's listings, PVCs, Notebook servers and
//! port-forwards over kflow-core's `Namespace`. Rows cross as JSON; every call that talks to
//! the cluster releases the GIL.

use std::sync::Mutex;
use std::time::Duration;

use kflow_core::{
    Listed, Namespace, NotebookRequest, PortForward, PvcRequest, RowWatch, Workspace,
};
use pyo3::prelude::*;

use crate::{answer, client, page, to_json, to_py};

#[pyclass(module = "kflow._native", name = "NativeNamespace", frozen)]
pub struct NativeNamespace {
    namespace: Namespace,
}

/// The namespace `name` of the configured cluster (default: the connection's).
#[pyfunction]
#[pyo3(signature = (name=None))]
pub fn namespace(py: Python<'_>, name: Option<String>) -> PyResult<NativeNamespace> {
    let client = client(py)?;
    py.detach(|| client.namespace(name.as_deref()))
        .map(|namespace| NativeNamespace { namespace })
        .map_err(|e| to_py(py, e))
}

#[pymethods]
impl NativeNamespace {
    #[getter]
    fn name(&self) -> &str {
        self.namespace.name()
    }

    /// One page of a listing as JSON `{"items": [...], "next": cursor-or-null}`; `kind` is
    /// jobs, pvcs, configmaps, notebooks or storageclasses.
    #[pyo3(signature = (kind, limit=None, cursor=None))]
    fn page_json(
        &self,
        py: Python<'_>,
        kind: &str,
        limit: Option<u32>,
        cursor: Option<String>,
    ) -> PyResult<String> {
        let request = page(limit, cursor);
        let ns = &self.namespace;
        let listed = listed(kind).map_err(|e| to_py(py, e))?;
        py.detach(|| match listed {
            Listed::TrainingJobs => ns.training_jobs(&request).map(|p| to_json(&p)),
            Listed::Pvcs => ns.pvcs(&request).map(|p| to_json(&p)),
            Listed::ConfigMaps => ns.config_maps(&request).map(|p| to_json(&p)),
            Listed::Notebooks => ns.notebooks(&request).map(|p| to_json(&p)),
            Listed::StorageClasses => ns.storage_classes(&request).map(|p| to_json(&p)),
        })
        .map_err(|e| to_py(py, e))
    }

    #[pyo3(signature = (name, size=None, storage_class=None, access_mode=None))]
    fn create_pvc(
        &self,
        py: Python<'_>,
        name: String,
        size: Option<String>,
        storage_class: Option<String>,
        access_mode: Option<String>,
    ) -> PyResult<String> {
        let request = PvcRequest {
            name,
            size,
            storage_class,
            access_mode,
        };
        answer(py, || self.namespace.create_pvc(&request))
    }

    #[pyo3(signature = (name, force=false))]
    fn delete_pvc(&self, py: Python<'_>, name: &str, force: bool) -> PyResult<()> {
        py.detach(|| self.namespace.delete_pvc(name, force))
            .map_err(|e| to_py(py, e))
    }

    fn notebook_images_json(&self, py: Python<'_>) -> String {
        to_json(&py.detach(|| self.namespace.notebook_images()))
    }

    /// `workspace`: None for a new `<name>-workspace`, "" for none, else an existing PVC.
    #[pyo3(signature = (name, image=None, custom_image=false, cpu=None, memory=None, gpus=0,
        gpu_vendor=None, workspace=None, workspace_size=None, data_volumes=Vec::new()))]
    #[allow(clippy::too_many_arguments)]
    fn create_notebook(
        &self,
        py: Python<'_>,
        name: String,
        image: Option<String>,
        custom_image: bool,
        cpu: Option<String>,
        memory: Option<String>,
        gpus: u32,
        gpu_vendor: Option<String>,
        workspace: Option<String>,
        workspace_size: Option<String>,
        data_volumes: Vec<String>,
    ) -> PyResult<String> {
        let request = NotebookRequest {
            name,
            image,
            custom_image,
            cpu,
            memory,
            gpus,
            gpu_vendor,
            workspace: match workspace {
                None => Workspace::New {
                    size: workspace_size,
                },
                Some(existing) if existing.is_empty() => Workspace::None,
                Some(existing) => Workspace::Existing(existing),
            },
            data_volumes,
        };
        answer(py, || self.namespace.create_notebook(&request))
    }

    fn notebook_json(&self, py: Python<'_>, name: &str) -> PyResult<String> {
        answer(py, || self.namespace.notebook(name))
    }

    /// Waits until Ready; Ctrl-C in Python interrupts between looks.
    fn wait_notebook_json(&self, py: Python<'_>, name: &str, timeout: f64) -> PyResult<String> {
        let start = std::time::Instant::now();
        loop {
            let slice = Duration::from_millis(500);
            match py.detach(|| self.namespace.wait_notebook(name, slice, &mut |_| {})) {
                Ok(row) => return Ok(to_json(&row)),
                Err(kflow_core::Error::Resource(kflow_core::ResourceError::NotReady {
                    state,
                    ..
                })) if start.elapsed().as_secs_f64() >= timeout => {
                    let late = kflow_core::ResourceError::NotReady {
                        name: name.to_string(),
                        seconds: timeout as u64,
                        state,
                    };
                    return Err(to_py(py, late.into()));
                }
                Err(kflow_core::Error::Resource(kflow_core::ResourceError::NotReady {
                    ..
                })) => {
                    py.check_signals()?;
                }
                Err(e) => return Err(to_py(py, e)),
            }
        }
    }

    fn stop_notebook(&self, py: Python<'_>, name: &str) -> PyResult<String> {
        answer(py, || self.namespace.stop_notebook(name))
    }

    fn start_notebook(&self, py: Python<'_>, name: &str) -> PyResult<String> {
        answer(py, || self.namespace.start_notebook(name))
    }

    fn delete_notebook(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        py.detach(|| self.namespace.delete_notebook(name))
            .map_err(|e| to_py(py, e))
    }

    #[pyo3(signature = (name, port=None))]
    fn forward_notebook(
        &self,
        py: Python<'_>,
        name: &str,
        port: Option<u16>,
    ) -> PyResult<NativeForward> {
        py.detach(|| self.namespace.forward_notebook(name, port))
            .map(|forward| NativeForward {
                url: forward.url().to_string(),
                local_port: forward.local_port(),
                forward: Mutex::new(Some(forward)),
            })
            .map_err(|e| to_py(py, e))
    }

    /// Watches a listing: its rows now, then each change.
    fn watch(&self, py: Python<'_>, kind: &str) -> PyResult<NativeWatch> {
        let listed = listed(kind).map_err(|e| to_py(py, e))?;
        py.detach(|| self.namespace.watch(listed))
            .map(|watch| NativeWatch { watch })
            .map_err(|e| to_py(py, e))
    }

    fn dashboard_url(&self, py: Python<'_>) -> PyResult<String> {
        self.namespace.dashboard_url().map_err(|e| to_py(py, e))
    }
}

fn listed(kind: &str) -> kflow_core::Result<Listed> {
    Listed::named(kind).ok_or_else(|| {
        kflow_core::Error::invalid(
            "listing",
            kind,
            "not something a namespace lists",
            "use jobs, pvcs, configmaps, notebooks or storageclasses",
        )
    })
}

#[pyclass(module = "kflow._native", name = "NativeWatch", frozen)]
pub struct NativeWatch {
    watch: RowWatch,
}

#[pymethods]
impl NativeWatch {
    /// The changes within `timeout` seconds, as a JSON list (empty when none came).
    fn next_json(&self, py: Python<'_>, timeout: f64) -> String {
        let wait = Duration::from_secs_f64(timeout.clamp(0.0, 3600.0));
        to_json(&py.detach(|| self.watch.next_changes(wait)))
    }
}

#[pyclass(module = "kflow._native", name = "NativeForward", frozen)]
pub struct NativeForward {
    url: String,
    local_port: u16,
    forward: Mutex<Option<PortForward>>,
}

#[pymethods]
impl NativeForward {
    #[getter]
    fn url(&self) -> &str {
        &self.url
    }

    #[getter]
    fn local_port(&self) -> u16 {
        self.local_port
    }

    /// (connections forwarded, connections whose stream could not be opened).
    fn counts(&self) -> (u64, u64) {
        let guard = self.forward.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .as_ref()
            .map(|f| (f.connections(), f.failed_connections()))
            .unwrap_or((0, 0))
    }

    fn close(&self) {
        let taken = self
            .forward
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        drop(taken);
    }
}
