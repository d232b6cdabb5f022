//! The cluster's shared state: what every request handler reads, built once at start.

use std::path::PathBuf;
use std::sync::Arc;

use crate::dex::Dex;
use crate::faults::Faults;
use crate::idp::Idp;
use crate::kubelet::Kubelet;
use crate::resources::ResourceType;
use crate::serviceaccount::TokenIssuer;
use crate::store::Store;
use crate::validation::CrdSchemas;

pub struct Cluster {
    pub store: Arc<Store>,
    pub state_dir: PathBuf,
    /// The static bearer token, cluster-admin.
    pub admin_token: String,
    /// Pods' service-account tokens.
    pub sa_tokens: Arc<TokenIssuer>,
    pub crds: CrdSchemas,
    /// `host:port` the server listens on, for discovery's serverAddressByClientCIDRs.
    pub server_addr: String,
    pub faults: Faults,
    /// The Keycloak-style realm whose tokens the API server also accepts.
    pub idp: Option<Arc<Idp>>,
    /// The Dex front at `/dex`, when configured in the realm config.
    pub dex: Option<Arc<Dex>>,
    /// The kubelet, for pods/exec.
    pub kubelet: Arc<Kubelet>,
    /// Types in the table this cluster does not serve (one of the two MPIJob versions).
    pub hidden: Vec<&'static ResourceType>,
}
