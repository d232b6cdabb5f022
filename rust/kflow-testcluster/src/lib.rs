//! kflow-testcluster: a test double of a Kubeflow cluster on a loopback port that the real
//! `kubectl`, the official `kubernetes` Python client and `kubeflow-training` accept unchanged.
//! See README.md for what it serves and its limits.
//!
//! Modules, one concept each:
//! - API server: `state` (what every handler shares), `server` (route table, request pipeline),
//!   `request` (one request, body decoding), `verbs` (get, list, watch, create, update, patch,
//!   delete), `admission` (defaults and checks on writes), `store` (objects, resourceVersions,
//!   history, snapshots), `watch`, `discovery`, `routing`, `authn` (who is calling), `rbac`
//!   (the authorization rule) and `access_review` (`kubectl auth can-i`), `validation` (names,
//!   CRD schemas, operator webhook), `patch`, `selectors`, `table`, `protobuf` (typed client
//!   bodies), `error` (Status), `tls`.
//! - Controllers: `operator` (training operator), `node` (the one Node), `scheduler`,
//!   `kubelet` with `runtime` (image table, bubblewrap, torchrun/mpirun stand-ins), `volumes`,
//!   `injected` (service-account files, launchers' kubectl) with `serviceaccount` and
//!   `kubectl_bin`, `logs`, `exec`, `events`.
//! - Identity: `idp` (Keycloak-style realm), `dex`, `gateway` (oauth2-proxy) with `webapps`
//!   (`pipelines`: KFP v2beta1, `model_registry`; `components` leaves them out), `jwt`.
//! - Controllers: `operator` (training operator), `notebook` (notebook-controller) over
//!   `statefulset`, `batch` (Job and CronJob), `storage` (StorageClasses, PV binding), `node` (the one Node), `scheduler`,
//!   `kubelet` with `runtime` (image table, bubblewrap, torchrun/mpirun/Jupyter stand-ins),
//!   `volumes`, `injected` (service-account files, launchers' kubectl) with `serviceaccount`
//!   and `kubectl_bin`, `logs`, `exec`, `portforward` (over `spdy`), `events`.
//! - Identity: `idp` (Keycloak-style realm), `dex`, `gateway` (oauth2-proxy) with `webapps`,
//!   `jwt`.
//! - Test support: `faults`, `admin` (the `/admin` endpoints), `cluster` (start/stop,
//!   kubeconfig, `TestCluster`).
pub mod access_review;
pub mod admin;
pub mod admission;
pub mod authn;
pub mod batch;
pub mod cluster;
pub mod components;
pub mod dex;
pub mod discovery;
pub mod error;
pub mod events;
pub mod exec;
pub mod faults;
pub mod gateway;
pub mod idp;
pub mod injected;
pub mod jwt;
pub mod kubectl_bin;
pub mod kubelet;
pub mod logs;
pub mod model_registry;
pub mod node;
pub mod notebook;
pub mod operator;
pub mod owned;
pub mod patch;
pub mod pipelines;
pub mod portforward;
pub mod protobuf;
pub mod rbac;
pub mod request;
pub mod resources;
pub mod routing;
pub mod runtime;
pub mod scheduler;
pub mod selectors;
pub mod server;
pub mod serviceaccount;
pub mod spdy;
pub mod state;
pub mod statefulset;
pub mod storage;
pub mod store;
pub mod table;
pub mod tls;
pub mod validation;
pub mod verbs;
pub mod volumes;
pub mod watch;
pub mod webapps;

pub use cluster::{Options, TestCluster};
