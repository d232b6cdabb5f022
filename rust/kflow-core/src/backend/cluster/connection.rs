//! Where the cluster connection comes from: an in-memory `kube::Config` (the sign-in session's
//! seam), a kubeconfig file (KUBECONFIG, else ~/.kube/config; optional context), or the
//! service account of the pod kflow runs in (a Kubeflow notebook). Every failure says which
//! source was tried and what to do.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::error::{ClusterError, Error, Result};

/// The service-account folder Kubernetes mounts into every pod.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// How to connect. `Auto` is what users get: kubeconfig when there is one, else in-cluster.
#[derive(Clone, Default)]
pub enum Source {
    #[default]
    Auto,
    /// A client made by the caller (say one whose auth layer refreshes a session's token),
    /// built inside the backend's runtime so its background tasks live there.
    Client {
        make: MakeClient,
        namespace: String,
        label: String,
        server: String,
        /// Who the client acts as (a session's username), for `doctor`.
        user: Option<String>,
    },
    /// A service-account folder (token, ca.crt, namespace) and the API server's address: what
    /// `Auto` finds in a pod, at a folder of the test's choosing.
    #[cfg(test)]
    InCluster {
        dir: PathBuf,
        server: Option<String>,
    },
}

impl std::fmt::Debug for Source {
    // Never print a config: it may hold a token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Auto => f.write_str("Auto"),
            Source::Client { label, .. } => {
                write!(f, "Config({label})")
            }
            #[cfg(test)]
            Source::InCluster { dir, .. } => write!(f, "InCluster({})", dir.display()),
        }
    }
}

pub type MakeClient = std::sync::Arc<dyn Fn() -> Result<kube::Client> + Send + Sync>;

/// A resolved config plus a human description of where it came from (for `doctor` and errors).
pub struct Resolved {
    pub config: kube::Config,
    pub description: String,
    pub identity: Identity,
}

/// Who a connection acts as and through what, for `kflow doctor`. Holds names only: never a
/// token, password or certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Identity {
    /// "session" (signed in with `kflow login`), "kubeconfig", "in-cluster" or "config".
    pub via: String,
    /// The session's username, the kubeconfig context's user entry, or the service account.
    pub user: Option<String>,
    /// The kubeconfig context in use.
    pub context: Option<String>,
    /// The kubeconfig file(s) read.
    pub files: Vec<String>,
}

/// Turns a source into a kube config. `env` is the caller's environment (KUBECONFIG, HOME,
/// KUBERNETES_SERVICE_HOST/PORT, KFLOW_CONTEXT), passed in so tests never read the machine's own.
pub async fn resolve(source: &Source, env: &BTreeMap<String, String>) -> Result<Resolved> {
    match source {
        // ClusterBackend::connect uses such a client as it is; there is no config to give.
        Source::Client { label, .. } => Err(Error::Cluster(ClusterError::Config {
            problem: format!("connection {label:?} is a ready-made client, not a config"),
            fix: "connect through ClusterBackend::connect, which uses the client as it is".into(),
        })),
        #[cfg(test)]
        Source::InCluster { dir, server } => in_cluster(dir, server.clone(), env),
        Source::Auto => {
            let files = kubeconfig_paths(env);
            if files.iter().any(|p| p.is_file()) {
                from_kubeconfig(env_context(env), env).await
            } else if Path::new(SERVICE_ACCOUNT_DIR).join("token").is_file() {
                in_cluster(Path::new(SERVICE_ACCOUNT_DIR), None, env)
            } else {
                Err(Error::Cluster(ClusterError::Config {
                    problem: format!(
                        "no kubeconfig found (looked at {}) and not running inside a Kubernetes pod",
                        files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                    ),
                    fix: "sign in (`kflow login`), point KUBECONFIG at your cluster's kubeconfig, or run with backend=\"local\"".into(),
                }))
            }
        }
    }
}

/// Whether `Source::Auto` finds a connection: a kubeconfig file, or a pod's service account.
pub fn auto_available(env: &BTreeMap<String, String>) -> bool {
    kubeconfig_paths(env).iter().any(|p| p.is_file())
        || Path::new(SERVICE_ACCOUNT_DIR).join("token").is_file()
}

fn env_context(env: &BTreeMap<String, String>) -> Option<String> {
    env.get("KFLOW_CONTEXT").filter(|c| !c.is_empty()).cloned()
}

/// KUBECONFIG may list several files (':'-separated), merged first-wins as kubectl does.
pub(crate) fn kubeconfig_paths(env: &BTreeMap<String, String>) -> Vec<PathBuf> {
    if let Some(list) = env.get("KUBECONFIG").filter(|v| !v.is_empty()) {
        return std::env::split_paths(list)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
    }
    let home = env
        .get("HOME")
        .map(PathBuf::from)
        .or_else(dirs::home_dir)
        .unwrap_or_default();
    vec![home.join(".kube").join("config")]
}

async fn from_kubeconfig(
    context: Option<String>,
    env: &BTreeMap<String, String>,
) -> Result<Resolved> {
    let paths: Vec<PathBuf> = kubeconfig_paths(env)
        .into_iter()
        .filter(|p| p.is_file())
        .collect();
    let fix_file = "check the file with `kubectl config view`, or sign in again (`kflow login`)";
    let mut merged: Option<Kubeconfig> = None;
    for path in &paths {
        let one = Kubeconfig::read_from(path).map_err(|e| {
            Error::Cluster(ClusterError::Config {
                problem: format!("kubeconfig {} is unreadable: {e}", path.display()),
                fix: fix_file.into(),
            })
        })?;
        merged = Some(match merged {
            Some(m) => m.merge(one).map_err(|e| {
                Error::Cluster(ClusterError::Config {
                    problem: format!("merging kubeconfigs: {e}"),
                    fix: fix_file.into(),
                })
            })?,
            None => one,
        });
    }
    let Some(kubeconfig) = merged else {
        return Err(Error::Cluster(ClusterError::Config {
            problem: format!(
                "kubeconfig {} does not exist",
                kubeconfig_paths(env)
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":")
            ),
            fix: "point KUBECONFIG at your cluster's kubeconfig, or sign in (`kflow login`)".into(),
        }));
    };
    if let Some(ctx) = &context {
        if !kubeconfig.contexts.iter().any(|c| &c.name == ctx) {
            let known: Vec<&str> = kubeconfig
                .contexts
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            return Err(Error::Cluster(ClusterError::Config {
                problem: format!("context {ctx:?} is not in the kubeconfig (it has: {})", known.join(", ")),
                fix: "pass one of those contexts (KFLOW_CONTEXT), or leave it out to use the current context".into(),
            }));
        }
    }
    let chosen = context
        .clone()
        .or_else(|| kubeconfig.current_context.clone())
        .unwrap_or_default();
    // The user entry's name (not its credentials) says who kflow acts as.
    let context_user = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == chosen)
        .and_then(|c| c.context.as_ref())
        .and_then(|c| c.user.clone());
    let options = KubeConfigOptions {
        context,
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| {
            Error::Cluster(ClusterError::Config {
                problem: format!("kubeconfig context {chosen:?}: {e}"),
                fix: fix_file.into(),
            })
        })?;
    let files: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let identity = Identity {
        via: "kubeconfig".into(),
        user: context_user.filter(|u| !u.is_empty()),
        context: Some(chosen.clone()),
        files: files.clone(),
    };
    Ok(Resolved {
        config,
        description: format!("kubeconfig {}, context {chosen:?}", files.join(":")),
        identity,
    })
}

/// The pod's service account: token (re-read by kube as it rotates), CA and namespace files.
pub fn in_cluster(
    dir: &Path,
    server: Option<String>,
    env: &BTreeMap<String, String>,
) -> Result<Resolved> {
    let fix =
        "run kflow inside a pod with a service account (a Kubeflow notebook), or use a kubeconfig";
    let server = match server {
        Some(s) => s,
        None => {
            let host = env.get("KUBERNETES_SERVICE_HOST").filter(|h| !h.is_empty()).ok_or_else(|| Error::Cluster(ClusterError::Config {
                problem: "KUBERNETES_SERVICE_HOST is not set, so the in-cluster API server is unknown".into(),
                fix: fix.into(),
            }))?;
            let port = env
                .get("KUBERNETES_SERVICE_PORT")
                .cloned()
                .unwrap_or_else(|| "443".into());
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host.clone()
            };
            format!("https://{host}:{port}")
        }
    };
    let url: http::Uri = server.parse().map_err(|e| {
        Error::Cluster(ClusterError::Config {
            problem: format!("API server address {server:?}: {e}"),
            fix: fix.into(),
        })
    })?;
    let token = dir.join("token");
    if !token.is_file() {
        return Err(Error::Cluster(ClusterError::Config {
            problem: format!("no service-account token at {}", token.display()),
            fix: fix.into(),
        }));
    }
    let mut config = kube::Config::new(url);
    config.auth_info.token_file = Some(token.display().to_string());
    let ca = dir.join("ca.crt");
    if ca.is_file() {
        let pem = std::fs::read_to_string(&ca).map_err(Error::io("reading", &ca))?;
        config.root_cert = Some(crate::pem::certificates(&pem));
    }
    if let Ok(ns) = std::fs::read_to_string(dir.join("namespace")) {
        if !ns.trim().is_empty() {
            config.default_namespace = ns.trim().to_string();
        }
    }
    let identity = Identity {
        via: "in-cluster".into(),
        user: Some(service_account(&token)),
        ..Default::default()
    };
    Ok(Resolved {
        config,
        description: format!("in-cluster service account ({})", dir.display()),
        identity,
    })
}

/// The service account a pod's token names (its `sub` claim, e.g.
/// "system:serviceaccount:kubeflow-user:default-editor"). Only that claim is read and kept;
/// the token itself never leaves this function.
fn service_account(token_file: &Path) -> String {
    let unknown = "the pod's service account".to_string();
    let Ok(token) = std::fs::read_to_string(token_file) else {
        return unknown;
    };
    crate::jwt::claims(&token)
        .and_then(|v| v["sub"].as_str().map(str::to_string))
        .unwrap_or(unknown)
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;

    #[tokio::test]
    async fn missing_kubeconfig_and_unknown_context_say_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let env: BTreeMap<String, String> = [(
            "KUBECONFIG".to_string(),
            dir.path().join("nope").display().to_string(),
        )]
        .into();
        let err = from_kubeconfig(None, &env).await.err().unwrap().to_string();
        assert!(
            err.contains("does not exist") && err.contains("Fix:"),
            "{err}"
        );

        let file = dir.path().join("config");
        std::fs::write(
            &file,
            "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: a, context: {cluster: c, user: u, namespace: team}}]\ncurrent-context: a\n",
        )
        .unwrap();
        let env: BTreeMap<String, String> =
            [("KUBECONFIG".to_string(), file.display().to_string())].into();
        let ok = resolve(&Source::Auto, &env).await.unwrap();
        assert_eq!(ok.config.default_namespace, "team");
        assert!(
            ok.description.contains("context \"a\""),
            "{}",
            ok.description
        );
        // doctor's identity: names only, never the token.
        assert_eq!(
            ok.identity,
            Identity {
                via: "kubeconfig".into(),
                user: Some("u".into()),
                context: Some("a".into()),
                files: vec![file.display().to_string()]
            }
        );
        assert!(auto_available(&env));
        let err = from_kubeconfig(Some("b".into()), &env)
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("context \"b\" is not in the kubeconfig (it has: a)"),
            "{err}"
        );
    }

    #[test]
    fn in_cluster_reads_namespace_ca_and_token_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "tok").unwrap();
        std::fs::write(dir.path().join("namespace"), "kubeflow-user\n").unwrap();
        std::fs::write(
            dir.path().join("ca.crt"),
            "-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let env: BTreeMap<String, String> = [(
            "KUBERNETES_SERVICE_HOST".to_string(),
            "10.0.0.1".to_string(),
        )]
        .into();
        let r = in_cluster(dir.path(), None, &env).unwrap();
        assert_eq!(r.config.cluster_url.to_string(), "https://10.0.0.1:443/");
        assert_eq!(r.config.default_namespace, "kubeflow-user");
        assert_eq!(r.config.root_cert, Some(vec![vec![0, 1, 2]]));
        assert!(r.config.auth_info.token_file.unwrap().ends_with("token"));
        // A non-JWT token gives no name; a JWT gives its `sub` claim and nothing else.
        assert_eq!(
            r.identity.user.as_deref(),
            Some("the pod's service account")
        );
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"sub":"system:serviceaccount:kubeflow-user:default-editor"}"#);
        std::fs::write(
            dir.path().join("token"),
            format!("eyJhbGciOiJSUzI1NiJ9.{claims}.c2ln"),
        )
        .unwrap();
        let r = in_cluster(dir.path(), None, &env).unwrap();
        assert_eq!(
            (r.identity.via.as_str(), r.identity.user.as_deref()),
            (
                "in-cluster",
                Some("system:serviceaccount:kubeflow-user:default-editor")
            )
        );
        let err = in_cluster(dir.path(), None, &BTreeMap::new())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("KUBERNETES_SERVICE_HOST"), "{err}");
    }
}
