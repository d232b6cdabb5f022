//! kflow-testcluster: a test double of a Kubeflow cluster on a loopback port that the real
//! `kubectl`, the official `kubernetes` Python client and `kubeflow-training` accept unchanged.
//! See README.md for what it serves and its limits.
//!
//! Modules, one concept each:
//! - API server: `store` (objects, resourceVersions, history, snapshots), `watch`, `discovery`,
//!   `routing`, `server` (verbs, auth), `validation` (names, CRD schemas, operator webhook),
//!   `patch`, `selectors`, `table`, `protobuf` (typed client bodies), `error` (Status), `tls`.
//! - Controllers: `operator` (training operator), `kubelet` with `runtime` (image table,
//!   bubblewrap) and `volumes`, `logs`, `exec`, `events`.
//! - Identity: `idp` (Keycloak-style realm), `dex`, `gateway` (oauth2-proxy) with `webapps`,
//!   `jwt`.
//! - Test support: `faults`, `cluster` (start/stop, kubeconfig, `TestCluster`).
pub mod cluster;
pub mod dex;
pub mod discovery;
pub mod error;
pub mod events;
pub mod exec;
pub mod faults;
pub mod gateway;
pub mod idp;
pub mod jwt;
pub mod kubelet;
pub mod logs;
pub mod operator;
pub mod patch;
pub mod protobuf;
pub mod resources;
pub mod routing;
pub mod runtime;
pub mod selectors;
pub mod server;
pub mod store;
pub mod table;
pub mod tls;
pub mod validation;
pub mod volumes;
pub mod watch;
pub mod webapps;

pub use cluster::{Options, TestCluster};
