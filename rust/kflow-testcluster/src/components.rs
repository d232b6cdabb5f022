//! The Kubeflow components a test cluster can leave out (`--without pipelines,model-registry`),
//! so clients meet a deployment where one is not installed: its routes behind the gateway
//! answer 404, as Istio does for a path no service is bound to.

/// A component that `--without` removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Component {
    /// Kubeflow Pipelines (`/pipeline/apis/v2beta1/…`).
    Pipelines,
    /// The Kubeflow Model Registry (`/api/model_registry/…`).
    ModelRegistry,
}
