//! The Kubeflow components a test cluster can leave out (`--without
//! notebooks,pipelines,model-registry`), so clients meet a deployment where one is not
//! installed: a web app's routes behind the gateway answer 404, as Istio does for a path no
//! service is bound to; a controller's CRD is not served and the controller does not run.

/// A component that `--without` removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Component {
    /// The notebook-controller and the Notebook CRD.
    Notebooks,
    /// Kubeflow Pipelines (`/pipeline/apis/v2beta1/…`).
    Pipelines,
    /// The Kubeflow Model Registry (`/api/model_registry/…`).
    ModelRegistry,
}
