//! The two-stage login as Kubeflow deployments wire it, against kflow-testcluster's
//! oauth2-proxy-style gateway (on `localhost`, the realm and API server on `127.0.0.1`):
//! Kubeflow URL -> gateway -> (Dex ->) Keycloak form -> back with the gateway's session cookie,
//! then an id_token via code + PKCE reusing the realm's SSO session. Also Dex as the issuer the
//! API server trusts, Dex's connector choice and approval pages, and Dex's own password form.

use std::path::{Path, PathBuf};

use kflow_core::auth::{Credentials, Endpoints, SecretStore, Session};
use kflow_core::{AuthError, Error};
use kflow_testcluster::cluster::{self, Options, Running};
use kflow_testcluster::idp::{DexConfig, IdpConfig, IdpUser};
use zeroize::Zeroizing;

const PASSWORD: &str = "kflow-sentinel-Pa55-gateway";
const NS: &str = "kubeflow-user-example-com";

struct Deployment {
    rt: tokio::runtime::Runtime,
    running: Option<Running>,
    ca: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Deployment {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            self.rt.block_on(r.stop());
        }
    }
}

fn deployment(dex: Option<DexConfig>) -> Deployment {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = Options::new(dir.path().join("cluster"));
    opts.gateway_port = Some(0);
    opts.idp = Some(IdpConfig {
        users: vec![IdpUser {
            username: "user@example.com".into(),
            password: PASSWORD.into(),
            email: "user@example.com".into(),
            namespaces: vec![NS.into()],
            ..IdpUser::default()
        }],
        dex,
        ..IdpConfig::default()
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let running = rt
        .block_on(cluster::start(opts))
        .expect("test cluster starts");
    let ca = dir.path().join("ca.crt");
    std::fs::write(&ca, running.ca_pem.as_deref().unwrap()).unwrap();
    Deployment {
        rt,
        running: Some(running),
        ca,
        _dir: dir,
    }
}

impl Deployment {
    fn gateway(&self) -> String {
        self.running
            .as_ref()
            .unwrap()
            .gateway_url
            .clone()
            .expect("gateway started")
    }

    fn api(&self) -> String {
        self.running.as_ref().unwrap().base_url()
    }

    /// Endpoints as a user configures them: the Kubeflow URL, plus where the API server is.
    fn endpoints(&self) -> Endpoints {
        let mut ep = Endpoints::new(&self.gateway()).unwrap();
        ep.ca_file = Some(self.ca.clone());
        ep.api_server = self.api();
        ep
    }

    fn login(&self, ep: Endpoints, password: &str, state: &Path) -> kflow_core::Result<Session> {
        let creds = Credentials {
            username: "user@example.com".into(),
            password: Zeroizing::new(password.into()),
        };
        Session::login(ep, creds, false, SecretStore::memory(), state)
    }

    /// The gateway's env-info with the session's cookies only (no bearer token).
    fn env_info_with_cookies(&self, s: &Session) -> (u16, String) {
        let ca =
            reqwest::Certificate::from_pem(std::fs::read(&self.ca).unwrap().as_slice()).unwrap();
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(ca)
            .cookie_provider(s.cookie_jar())
            .build()
            .unwrap();
        let url = format!("{}/api/workgroup/env-info", self.gateway());
        self.rt.block_on(async {
            let r = http.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    }

    fn list_pods(&self, s: &Session) -> Result<usize, String> {
        self.rt.block_on(async {
            let client = kflow_core::auth::kube_client::client(s, NS).map_err(|e| e.to_string())?;
            let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
                kube::Api::namespaced(client, NS);
            pods.list(&Default::default())
                .await
                .map(|l| l.items.len())
                .map_err(|e| e.to_string())
        })
    }
}

#[test]
fn keycloak_behind_the_gateway_gives_web_cookies_and_an_api_token() {
    let d = deployment(None);
    let state = tempfile::tempdir().unwrap();
    let s = d
        .login(d.endpoints(), PASSWORD, state.path())
        .expect("login");
    assert!(
        s.has_web_session(),
        "stage 1 ends on the dashboard with the gateway's cookie"
    );
    assert_eq!(
        s.endpoints().issuer,
        format!("{}/realms/kubeflow", d.api()),
        "issuer learned from the login page"
    );
    let (status, body) = d.env_info_with_cookies(&s);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"user\":\"user@example.com\""), "{body}");
    assert_eq!(d.list_pods(&s), Ok(0));
    assert_eq!(s.kubeflow_namespaces().unwrap(), vec![NS.to_string()]);
    let err = d
        .login(d.endpoints(), "wrong-Pa55", state.path())
        .unwrap_err();
    assert!(
        matches!(err, Error::Auth(AuthError::WrongCredentials { .. })),
        "{err:?}"
    );
}

#[test]
fn keycloak_behind_dex_with_connector_choice_and_approval() {
    let d = deployment(Some(DexConfig {
        connectors: vec!["local".into(), "keycloak".into()],
        approval: true,
    }));
    let state = tempfile::tempdir().unwrap();
    let s = d
        .login(d.endpoints(), PASSWORD, state.path())
        .expect("login through Dex");
    assert!(s.has_web_session());
    assert_eq!(d.env_info_with_cookies(&s).0, 200);
    assert_eq!(d.list_pods(&s), Ok(0));
}

#[test]
fn dex_as_the_issuer_the_api_server_trusts() {
    let d = deployment(Some(DexConfig {
        connectors: vec!["keycloak".into()],
        approval: true,
    }));
    let state = tempfile::tempdir().unwrap();
    let mut ep = d.endpoints();
    ep.issuer = format!("{}/dex", d.api());
    ep.issuer_fixed = true;
    let s = d
        .login(ep, PASSWORD, state.path())
        .expect("login with Dex as issuer");
    assert_eq!(
        s.endpoints().token_endpoint.as_deref(),
        Some(format!("{}/dex/token", d.api()).as_str())
    );
    let claims = kflow_core::auth::claims(&s.bearer_token().unwrap()).unwrap();
    assert_eq!(claims["iss"], format!("{}/dex", d.api()));
    assert_eq!(d.list_pods(&s), Ok(0));
    s.refresh_now().expect("refresh at Dex's token endpoint");
    assert_eq!(d.list_pods(&s), Ok(0));
}

#[test]
fn dex_local_password_form() {
    let d = deployment(Some(DexConfig {
        connectors: vec!["local".into(), "keycloak".into()],
        approval: false,
    }));
    let state = tempfile::tempdir().unwrap();
    let mut ep = d.endpoints();
    ep.connector = Some("local".into());
    ep.issuer = format!("{}/dex", d.api());
    ep.issuer_fixed = true;
    let s = d
        .login(ep.clone(), PASSWORD, state.path())
        .expect("login with Dex's password form");
    assert!(s.has_web_session());
    assert_eq!(d.list_pods(&s), Ok(0));
    let err = d.login(ep, "wrong-Pa55", state.path()).unwrap_err();
    assert!(
        matches!(err, Error::Auth(AuthError::WrongCredentials { .. })),
        "{err:?}"
    );
    assert!(!err.to_string().contains("wrong-Pa55"));
}
