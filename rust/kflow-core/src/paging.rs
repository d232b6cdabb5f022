//! Pages and cursors, one shape for every listing (the namespace's objects, Pipelines, the
//! Model Registry): the caller passes back the `next` it was given.

use serde::{Deserialize, Serialize};

/// Which page of a listing to read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageRequest {
    /// Rows per page; `None`: the listing's default ([`DEFAULT_PAGE_SIZE`] for the
    /// namespace's objects, the app's own for Kubeflow's web apps).
    pub limit: Option<u32>,
    /// The `next` of the page before; `None` for the first page.
    pub cursor: Option<String>,
}

/// Rows per page of a namespace listing when the caller does not say.
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// One page of a listing.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    /// The rows of this page.
    pub items: Vec<T>,
    /// The cursor of the next page (pass it back as [`PageRequest::cursor`]); `None` on the
    /// last page.
    pub next: Option<String>,
    /// How many rows the whole listing has, when the source says (Kubernetes listings say it
    /// on their first page, from the API server's `remainingItemCount`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}
