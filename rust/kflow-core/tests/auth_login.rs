//! Sign-in against kflow-testcluster's Keycloak-style realm: login, wrong password, required
//! actions, refresh across several 20-second token lifetimes with the API server accepting every
//! token, expiry with and without a stored password, logout, and a sentinel password that must
//! never show up in errors or files. Secrets go to the memory store here (no keyring needed);
//! tests/auth/ covers the Secret Service.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kflow_core::auth::{self, Credentials, Endpoints, SecretStore, Session};
use kflow_core::{AuthError, Error};
use kflow_testcluster::idp::{IdpConfig, IdpUser};
use kflow_testcluster::{Options, TestCluster};
use zeroize::Zeroizing;

const SENTINEL: &str = "kflow-sentinel-Pa55-rust";
const NS: &str = "kubeflow-user-example-com";

struct Realm {
    cluster: TestCluster,
    ca: PathBuf,
    _dir: tempfile::TempDir,
}

fn user(name: &str, password: &str, action: Option<&str>, ns: &[&str]) -> IdpUser {
    IdpUser {
        username: name.into(),
        password: password.into(),
        email: if name.contains('@') {
            name.into()
        } else {
            String::new()
        },
        namespaces: ns.iter().map(|s| s.to_string()).collect(),
        required_action: action.map(String::from),
        ..IdpUser::default()
    }
}

fn realm(access_seconds: i64, refresh_seconds: i64) -> Realm {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = Options::new(dir.path().join("cluster"));
    opts.idp = Some(IdpConfig {
        realm: "kubeflow".into(),
        clients: vec!["kflow".into()],
        users: vec![
            user("user@example.com", SENTINEL, None, &[NS]),
            user("other@example.com", SENTINEL, None, &[NS]),
            user("otp-user", "pw-otp", Some("otp"), &["otp-ns"]),
            user("new-user", "pw-new", Some("update-password"), &[]),
        ],
        access_token_seconds: access_seconds,
        refresh_token_seconds: refresh_seconds,
        direct_access_grants: false,
        ..IdpConfig::default()
    });
    let cluster = TestCluster::start(Some(opts)).expect("test cluster starts");
    let ca = dir.path().join("ca.crt");
    std::fs::write(&ca, cluster.ca_pem.as_deref().expect("https test cluster")).unwrap();
    Realm {
        cluster,
        ca,
        _dir: dir,
    }
}

impl Realm {
    fn endpoints(&self) -> Endpoints {
        let mut ep = Endpoints::new(&self.cluster.base_url).unwrap();
        ep.ca_file = Some(self.ca.clone());
        ep
    }

    fn login(
        &self,
        username: &str,
        password: &str,
        store_password: bool,
        state: &Path,
    ) -> kflow_core::Result<Session> {
        let creds = Credentials {
            username: username.into(),
            password: Zeroizing::new(password.into()),
        };
        Session::login(
            self.endpoints(),
            creds,
            store_password,
            SecretStore::memory(),
            state,
        )
    }
}

/// Lists pods in the user's namespace through a kube client fed by the session.
fn list_pods(session: &Session) -> Result<usize, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = auth::kube_client::client(session, NS).map_err(|e| e.to_string())?;
        let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(client, NS);
        pods.list(&Default::default())
            .await
            .map(|l| l.items.len())
            .map_err(|e| e.to_string())
    })
}

fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return hits;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            hits.extend(files_containing(&p, needle));
        } else if std::fs::read(&p)
            .is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
        {
            hits.push(p);
        }
    }
    hits
}

#[test]
fn login_gives_a_token_the_api_server_accepts_and_logout_clears_it() {
    let r = realm(300, 1800);
    let state = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let s = r
        .login("user@example.com", SENTINEL, false, state.path())
        .expect("login");
    eprintln!("login took {:?}", t0.elapsed());
    assert_eq!(s.username(), "user@example.com");
    assert_eq!(
        s.endpoints().issuer,
        format!("{}/realms/kubeflow", r.cluster.base_url)
    );
    assert!(
        !s.has_web_session(),
        "the test cluster has no gateway in front"
    );
    let ttl = s.expires_at() as i64 - auth::now_secs() as i64;
    assert!((290..=300).contains(&ttl), "id_token lifetime {ttl}");
    assert_eq!(list_pods(&s), Ok(0));
    // The token is a realm id_token for this user.
    let claims = auth::claims(&s.bearer_token().unwrap()).unwrap();
    assert_eq!(claims["preferred_username"], "user@example.com");
    assert_eq!(claims["aud"], "kflow");
    // Outside its namespaces the API server says 403: the token is the user's, not an admin's.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let other = rt.block_on(async {
        let client = auth::kube_client::client(&s, "default").unwrap();
        let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
            kube::Api::namespaced(client, "default");
        pods.list(&Default::default()).await.map(|l| l.items.len())
    });
    assert!(other.unwrap_err().to_string().contains("403"));

    s.logout().unwrap();
    assert!(!auth::profile_path(state.path()).exists());
    // The realm ended the SSO session: the old refresh token no longer works.
    assert!(s.refresh_now().is_err());
    assert!(files_containing(state.path(), SENTINEL).is_empty());
}

#[test]
fn wrong_password_and_unknown_user_are_clear_and_never_echo_the_password() {
    let r = realm(300, 1800);
    let state = tempfile::tempdir().unwrap();
    let wrong = "kflow-sentinel-WRONG-77";
    for who in ["user@example.com", "nobody"] {
        let err = r.login(who, wrong, false, state.path()).unwrap_err();
        assert!(
            matches!(err, Error::Auth(AuthError::WrongCredentials { .. })),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("rejected the username or password") && msg.contains(who),
            "{msg}"
        );
        assert!(msg.contains("Invalid username or password."), "{msg}");
        assert!(
            !msg.contains(wrong) && !format!("{err:?}").contains(wrong),
            "{msg}"
        );
    }
    assert!(files_containing(state.path(), wrong).is_empty());
}

#[test]
fn required_action_pages_stop_with_what_is_asked() {
    let r = realm(300, 1800);
    let state = tempfile::tempdir().unwrap();
    let err = r
        .login("otp-user", "pw-otp", false, state.path())
        .unwrap_err();
    assert!(
        matches!(&err, Error::Auth(AuthError::LoginActionRequired { action, .. }) if action.contains("one-time code")),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("sign in once in a browser"),
        "{err}"
    );
    let err = r
        .login("new-user", "pw-new", false, state.path())
        .unwrap_err();
    assert!(
        matches!(&err, Error::Auth(AuthError::LoginActionRequired { action, .. }) if action.contains("update-password")),
        "{err:?}"
    );
    assert!(!err.to_string().contains("pw-new"));
}

#[test]
fn unreachable_or_wrong_realm_names_the_fix() {
    let r = realm(300, 1800);
    let state = tempfile::tempdir().unwrap();
    let mut ep = r.endpoints();
    ep.client_id = "not-a-client".into();
    let creds = Credentials {
        username: "user@example.com".into(),
        password: Zeroizing::new(SENTINEL.into()),
    };
    let err = Session::login(ep, creds, false, SecretStore::memory(), state.path()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("Client not found") && msg.contains("KFLOW_AUTH_CLIENT_ID"),
        "{msg}"
    );
    assert!(!msg.contains(SENTINEL));
    // Without the CA the TLS handshake fails with a hint about KFLOW_CA_FILE.
    let mut ep = r.endpoints();
    ep.ca_file = None;
    let creds = Credentials {
        username: "user@example.com".into(),
        password: Zeroizing::new(SENTINEL.into()),
    };
    let msg = Session::login(ep, creds, false, SecretStore::memory(), state.path())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("KFLOW_CA_FILE") && !msg.contains(SENTINEL),
        "{msg}"
    );
}

/// 20-second tokens: the session renews itself every ~10 s (window = lifetime / 2) and the API
/// server accepts every request made in between, across three refreshes.
#[test]
fn twenty_second_tokens_are_renewed_in_place() {
    let r = realm(20, 600);
    let state = tempfile::tempdir().unwrap();
    let s = r
        .login("user@example.com", SENTINEL, false, state.path())
        .expect("login");
    let mut expiry = s.watch_expiry();
    let first_expiry = *expiry.borrow_and_update();
    let start = Instant::now();
    let mut calls = 0;
    let mut tokens = std::collections::BTreeSet::new();
    while s.refresh_count() < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(45),
            "only {} refreshes in 45 s",
            s.refresh_count()
        );
        assert_eq!(
            list_pods(&s),
            Ok(0),
            "call {calls} at {:?}",
            start.elapsed()
        );
        tokens.insert(s.bearer_token().unwrap().to_string());
        calls += 1;
        std::thread::sleep(Duration::from_millis(1500));
    }
    assert_eq!(list_pods(&s), Ok(0));
    eprintln!(
        "{} refreshes, {calls} API calls, {} distinct tokens in {:?}",
        s.refresh_count(),
        tokens.len(),
        start.elapsed()
    );
    assert!(tokens.len() >= 3);
    assert_eq!(s.relogin_count(), 0);
    assert!(
        expiry.has_changed().unwrap() && *expiry.borrow() > first_expiry,
        "watchers saw the renewal"
    );
    let ttl = s.expires_at() as i64 - auth::now_secs() as i64;
    assert!(ttl > 0, "the current token is valid ({ttl} s left)");
}

/// Ends a session at the realm, the way an administrator or an idle timeout does.
fn end_sso_session(r: &Realm, s: &Session) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ca = reqwest::Certificate::from_pem(std::fs::read(&r.ca).unwrap().as_slice()).unwrap();
    let http = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let token = s.bearer_token().unwrap();
    let url = format!(
        "{}/realms/kubeflow/protocol/openid-connect/logout",
        r.cluster.base_url
    );
    let status = rt.block_on(async {
        http.get(url)
            .query(&[("id_token_hint", token.as_str())])
            .send()
            .await
            .unwrap()
            .status()
    });
    assert!(status.is_success(), "{status}");
}

/// When the refresh grant is gone: a clear "session expired" without a stored password, a
/// silent sign-in again with one.
#[test]
fn ended_session_needs_login_unless_the_password_is_stored() {
    let r = realm(300, 1800);
    let state = tempfile::tempdir().unwrap();
    let plain = r
        .login("user@example.com", SENTINEL, false, state.path())
        .unwrap();
    // Another user: sessions of one user at one URL share their secret-store entry.
    let stored = r
        .login("other@example.com", SENTINEL, true, state.path())
        .unwrap();
    assert!(stored.password_stored() && !plain.password_stored());
    end_sso_session(&r, &plain);
    end_sso_session(&r, &stored);
    let err = plain.refresh_now().unwrap_err();
    assert!(
        matches!(err, Error::Auth(AuthError::SessionExpired { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("run `kflow login`"), "{err}");
    stored
        .refresh_now()
        .expect("silent sign-in again with the stored password");
    assert_eq!(stored.relogin_count(), 1);
    assert_eq!(list_pods(&stored), Ok(0));
    assert!(!err.to_string().contains(SENTINEL) && !format!("{err:?}").contains(SENTINEL));
    assert!(files_containing(state.path(), SENTINEL).is_empty());
}

/// The done-when of the issue: a 3-minute log stream through the cluster backend, fed by a
/// session with 20-second tokens, runs across every refresh with no prompt and no error.
#[test]
fn job_log_stream_outlives_several_token_lifetimes() {
    let r = realm(20, 600);
    let state = tempfile::tempdir().unwrap();
    let s = r
        .login("user@example.com", SENTINEL, false, state.path())
        .expect("login");
    let root = tempfile::tempdir().unwrap();
    let project = root.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(
        project.join("slow.py"),
        "import time\nfor i in range(180):\n    print('tick', i, flush=True)\n    time.sleep(1)\n",
    )
    .unwrap();
    let ctx = kflow_core::Context {
        dirs: kflow_core::Dirs {
            config: root.path().join("config"),
            state: root.path().join("state"),
            cache: root.path().join("cache"),
        },
        cwd: project.clone(),
        env: Default::default(),
    };
    let client = kflow_core::Client::new(
        ctx,
        kflow_core::Launcher {
            command: Vec::new(),
        },
    )
    .with_session(&s, NS);
    let start = Instant::now();
    let job = client
        .submit(kflow_core::RunOptions {
            script: Some("slow.py".into()),
            name: Some("pt-long".into()),
            backend: Some(kflow_core::BackendKind::Cluster),
            namespace: Some(NS.into()),
            workers: Some(1),
            ..Default::default()
        })
        .expect("submitted with the session's token");
    let lines: Vec<String> = job.logs(true).map(|l| l.text).collect();
    let status = job
        .wait(Some(Duration::from_secs(120)), &mut || false)
        .unwrap();
    eprintln!(
        "{:?}: {} lines, {} refreshes",
        start.elapsed(),
        lines.len(),
        s.refresh_count()
    );
    assert_eq!(status.phase, kflow_core::Phase::Succeeded, "{status:?}");
    let ticks: Vec<&String> = lines.iter().filter(|l| l.starts_with("tick ")).collect();
    assert_eq!(ticks.len(), 180, "every line once: {lines:?}");
    assert!(
        s.refresh_count() >= 8,
        "only {} refreshes",
        s.refresh_count()
    );
    assert_eq!(s.relogin_count(), 0);
}

/// Two processes (here: two sessions) of one user share the secret-store entry: a session whose
/// refresh grant is gone adopts the newer tokens another one stored instead of giving up.
#[test]
fn a_stale_session_adopts_the_tokens_another_process_stored() {
    let r = realm(300, 1800);
    let state = tempfile::tempdir().unwrap();
    let old = r
        .login("user@example.com", SENTINEL, false, state.path())
        .unwrap();
    end_sso_session(&r, &old);
    let new = r
        .login("user@example.com", SENTINEL, false, state.path())
        .unwrap();
    old.refresh_now().expect("adopts the stored session");
    assert_eq!(old.bearer_token().unwrap(), new.bearer_token().unwrap());
    assert_eq!(list_pods(&old), Ok(0));
    new.logout().unwrap();
    let err = old.refresh_now().unwrap_err();
    assert!(
        matches!(err, Error::Auth(AuthError::SessionExpired { .. })),
        "{err:?}"
    );
}
