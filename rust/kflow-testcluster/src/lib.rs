//! kflow-testcluster: a test double of a Kubeflow cluster on a loopback port that the real
//! `kubectl` and the official `kubernetes` Python client accept unchanged.
//!
//! Modules, one concept each: `store` (objects, resourceVersions, history), `watch`,
//! `discovery`, `routing`, `server` (verbs), `validation`, `patch`, `selectors`, `table`,
//! `operator` (training operator), `kubelet` with `runtime` and `volumes`, `logs`, `faults`.
pub mod cluster;
pub mod discovery;
pub mod error;
pub mod events;
pub mod faults;
pub mod kubelet;
pub mod logs;
pub mod operator;
pub mod patch;
pub mod resources;
pub mod routing;
pub mod runtime;
pub mod selectors;
pub mod server;
pub mod store;
pub mod table;
pub mod validation;
pub mod volumes;
pub mod watch;

pub use cluster::{Options, TestCluster};
pub mod dex;
pub mod exec;
pub mod gateway;
pub mod idp;
pub mod jwt;
pub mod protobuf;
pub mod tls;
pub mod webapps;
