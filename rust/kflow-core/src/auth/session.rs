//! A signed-in session: tokens, their expiry, the cookie jar, and refresh. Tokens are renewed
//! before they expire — `window = min(5 min, lifetime / 2)`, since Keycloak's default token lives
//! exactly 5 minutes — by a background task and on demand (`bearer_token`), with backoff on
//! network errors. When the refresh grant is gone, the session signs in again silently only if
//! the user chose to store the password; otherwise "session expired — run kflow login".
//! Secrets go to the `SecretStore` (keyring or memory), the non-secret profile (URL, user,
//! endpoints) to `<state>/auth.json` so other processes find the keyring entry.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::endpoints::Endpoints;
use super::http::{self, Jar};
use super::login::{self, Credentials, RefreshFailure};
use super::store::{SecretStore, StoreKind};
use super::token::{now_secs, refresh_window, TokenSet};
use crate::error::{AuthError, Error, Result};

/// The keyring blob: tokens and cookies (serialised only into the secret store).
#[derive(Serialize, Deserialize)]
struct Stored {
    id_token: String,
    access_token: String,
    refresh_token: Option<String>,
    expires_at: u64,
    lifetime: u64,
    refresh_expires_at: Option<u64>,
    cookies: String,
}

impl Stored {
    /// The token part (moved, not copied: no stray plain copy of a token); the cookies go to
    /// the client's jar separately.
    fn into_tokens(self) -> TokenSet {
        TokenSet {
            id_token: Zeroizing::new(self.id_token),
            access_token: Zeroizing::new(self.access_token),
            refresh_token: self.refresh_token.map(Zeroizing::new),
            expires_at: self.expires_at,
            lifetime: self.lifetime,
            refresh_expires_at: self.refresh_expires_at,
        }
    }
}

/// What is kept on disk: nothing secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    pub endpoints: Endpoints,
    pub username: String,
    pub password_stored: bool,
    pub web_session: bool,
}

/// Where the non-secret session profile lives in the state folder `state_dir`.
pub fn profile_path(state_dir: &Path) -> PathBuf {
    state_dir.join("auth.json")
}

fn account(ep: &Endpoints, username: &str, what: &str) -> String {
    format!("{what}:{username}@{}", ep.url)
}

/// The runtime sign-in's network work runs on, whatever the caller's context (a sync API, a
/// kernel thread, another runtime): one reqwest connection pool for the process's lifetime.
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kflow-auth")
            .enable_all()
            .build()
            .expect("starting kflow's sign-in runtime")
    })
}

/// Runs `fut` on the sign-in runtime and waits for it (callable from any thread).
pub(crate) fn run<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    runtime().spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().expect("kflow's sign-in runtime stopped")
}

struct Inner {
    endpoints: Endpoints,
    username: String,
    client: reqwest::Client,
    jar: Jar,
    store: SecretStore,
    state_dir: PathBuf,
    tokens: Mutex<TokenSet>,
    password: Option<Zeroizing<String>>,
    web_session: AtomicBool,
    refresh_gate: tokio::sync::Mutex<()>,
    refreshes: AtomicU64,
    relogins: AtomicU64,
    /// The current token's expiry, for surfaces that show the session state (VS Code's status).
    expiry: tokio::sync::watch::Sender<u64>,
}

/// A signed-in session; clones share the same tokens (a refresh is seen by every clone).
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("url", &self.inner.endpoints.url)
            .field("username", &self.inner.username)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Signs in (both stages) and persists the session to `store`. The password is kept (in
    /// the store, for silent re-login) only when `store_password` is set.
    pub fn login(
        mut endpoints: Endpoints,
        creds: Credentials,
        store_password: bool,
        store: SecretStore,
        state_dir: &Path,
    ) -> Result<Session> {
        let state_dir = state_dir.to_path_buf();
        run(async move {
            let jar = http::new_jar();
            let client = http::client(&endpoints, jar.clone())?;
            let web_session = login::web_login(&mut endpoints, &client, &creds).await?;
            login::discover(&mut endpoints, &client).await;
            let tokens = login::token_login(&endpoints, &client, &creds).await?;
            let session = Session::new(
                endpoints,
                creds.username.clone(),
                client,
                jar,
                store,
                state_dir,
                tokens,
                store_password.then(|| creds.password.clone()),
                web_session,
            );
            session.persist()?;
            session.spawn_refresher();
            Ok(session)
        })
    }

    /// The session another process stored (profile on disk, secrets in the keyring); None when
    /// there is none.
    pub fn load(state_dir: &Path, store: SecretStore) -> Result<Option<Session>> {
        let path = profile_path(state_dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("reading", &path)(e)),
        };
        let profile: Profile = match serde_json::from_str(&text) {
            Ok(p) => p,
            Err(_) => return Ok(None),
        };
        let ep = profile.endpoints.clone();
        let Some(blob) = store.load(&account(&ep, &profile.username, "session"))? else {
            return Ok(None);
        };
        let Ok(stored) = serde_json::from_str::<Stored>(&blob) else {
            return Ok(None);
        };
        let password = if profile.password_stored {
            store.load(&account(&ep, &profile.username, "password"))?
        } else {
            None
        };
        let jar = http::jar_from_json(&stored.cookies);
        let client = http::client(&ep, jar.clone())?;
        let session = Session::new(
            ep,
            profile.username,
            client,
            jar,
            store,
            state_dir.to_path_buf(),
            stored.into_tokens(),
            password,
            profile.web_session,
        );
        session.spawn_refresher();
        Ok(Some(session))
    }

    // Each argument has a type of its own, so the compiler catches any two swapped.
    #[allow(clippy::too_many_arguments)]
    fn new(
        endpoints: Endpoints,
        username: String,
        client: reqwest::Client,
        jar: Jar,
        store: SecretStore,
        state_dir: PathBuf,
        tokens: TokenSet,
        password: Option<Zeroizing<String>>,
        web_session: bool,
    ) -> Session {
        let expires_at = tokens.expires_at;
        Session {
            inner: Arc::new(Inner {
                endpoints,
                username,
                client,
                jar,
                store,
                state_dir,
                tokens: Mutex::new(tokens),
                password,
                web_session: AtomicBool::new(web_session),
                refresh_gate: tokio::sync::Mutex::new(()),
                refreshes: AtomicU64::new(0),
                relogins: AtomicU64::new(0),
                expiry: tokio::sync::watch::channel(expires_at).0,
            }),
        }
    }

    /// The tokens as the secret store has them now (None with nothing stored or unreadable).
    fn stored_tokens(&self) -> Option<TokenSet> {
        let i = &self.inner;
        let blob = i
            .store
            .load(&account(&i.endpoints, &i.username, "session"))
            .ok()??;
        let stored: Stored = serde_json::from_str(&blob).ok()?;
        Some(stored.into_tokens())
    }

    fn tokens(&self) -> TokenSet {
        self.inner
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Writes the secrets to the store and the profile (nothing secret) to the state dir. With
    /// the memory store nothing is written to disk at all.
    fn persist(&self) -> Result<()> {
        let i = &self.inner;
        let t = self.tokens();
        let blob = Zeroizing::new(
            serde_json::to_string(&Stored {
                id_token: t.id_token.to_string(),
                access_token: t.access_token.to_string(),
                refresh_token: t.refresh_token.as_ref().map(|r| r.to_string()),
                expires_at: t.expires_at,
                lifetime: t.lifetime,
                refresh_expires_at: t.refresh_expires_at,
                cookies: http::jar_to_json(&i.jar),
            })
            .unwrap_or_default(),
        );
        i.store
            .save(&account(&i.endpoints, &i.username, "session"), &blob)?;
        match &i.password {
            Some(p) => i
                .store
                .save(&account(&i.endpoints, &i.username, "password"), p)?,
            None => i
                .store
                .delete(&account(&i.endpoints, &i.username, "password"))?,
        }
        if i.store.kind() != StoreKind::Memory {
            let profile = Profile {
                endpoints: i.endpoints.clone(),
                username: i.username.clone(),
                password_stored: i.password.is_some(),
                web_session: i.web_session.load(Ordering::Relaxed),
            };
            crate::records::write_atomic(
                &profile_path(&i.state_dir),
                &serde_json::to_vec_pretty(&profile).unwrap_or_default(),
            )?;
        }
        Ok(())
    }

    /// Ends the session: the identity provider's SSO session (best effort), every secret in the
    /// store and the profile file.
    pub fn logout(&self) -> Result<()> {
        let i = &self.inner;
        let s = self.clone();
        let _ = run(async move {
            let t = s.tokens();
            let Some(url) = s.inner.endpoints.logout_url() else {
                return Ok(Err(()));
            };
            let mut form = vec![("client_id".to_string(), s.inner.endpoints.client_id.clone())];
            if let Some(r) = &t.refresh_token {
                form.push(("refresh_token".into(), r.to_string()));
            }
            let req = s
                .inner
                .client
                .post(url)
                .query(&[("id_token_hint", t.id_token.as_str())])
                .form(&form);
            tokio::time::timeout(Duration::from_secs(10), req.send())
                .await
                .map(|r| r.map(|_| ()).map_err(|_| ()))
        });
        if let Ok(mut store) = i.jar.lock() {
            store.clear();
        }
        i.store
            .delete(&account(&i.endpoints, &i.username, "session"))?;
        i.store
            .delete(&account(&i.endpoints, &i.username, "password"))?;
        let path = profile_path(&i.state_dir);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("removing", &path)(e)),
        }
    }

    /// Where the session signs in and which API server it talks to.
    pub fn endpoints(&self) -> &Endpoints {
        &self.inner.endpoints
    }

    /// The signed-in username.
    pub fn username(&self) -> &str {
        &self.inner.username
    }

    /// Where the session's secrets are kept.
    pub fn store_kind(&self) -> StoreKind {
        self.inner.store.kind()
    }

    /// Unix seconds when the current id_token expires.
    pub fn expires_at(&self) -> u64 {
        self.tokens().expires_at
    }

    /// Changes whenever the tokens are renewed (value: the new expiry, Unix seconds).
    pub fn watch_expiry(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.expiry.subscribe()
    }

    /// How many times this process renewed the tokens with the refresh grant.
    pub fn refresh_count(&self) -> u64 {
        self.inner.refreshes.load(Ordering::Relaxed)
    }

    /// How many times this process signed in again silently with the stored password.
    pub fn relogin_count(&self) -> u64 {
        self.inner.relogins.load(Ordering::Relaxed)
    }

    /// Whether the password is kept for silent re-login.
    pub fn password_stored(&self) -> bool {
        self.inner.password.is_some()
    }

    /// Whether stage 1 got Kubeflow's web-session cookies (no gateway: false).
    pub fn has_web_session(&self) -> bool {
        self.inner.web_session.load(Ordering::Relaxed)
    }

    /// The jar with Kubeflow's session cookies, for clients of Kubeflow's web APIs.
    pub fn cookie_jar(&self) -> Jar {
        self.inner.jar.clone()
    }

    /// A valid id_token for `Authorization: Bearer`, renewed first when it is inside the
    /// refresh window. Blocking; callable from any thread.
    pub fn bearer_token(&self) -> Result<Zeroizing<String>> {
        let s = self.clone();
        run(async move { s.bearer_token_async().await })
    }

    /// The async form, for an auth layer in a kube client's tower stack.
    pub async fn bearer_token_async(&self) -> Result<Zeroizing<String>> {
        let t = self.tokens();
        if !t.needs_refresh(now_secs()) {
            return Ok(t.id_token);
        }
        let s = self.clone();
        // On the sign-in runtime, so a caller's runtime shutting down never cuts a refresh.
        match runtime().spawn(async move { s.refresh(false).await }).await {
            Ok(r) => r,
            Err(e) => Err(Error::Auth(AuthError::SessionExpired {
                url: self.inner.endpoints.url.clone(),
                username: self.inner.username.clone(),
                reason: e.to_string(),
            })),
        }
    }

    /// The user's Kubeflow profile namespaces, from the central dashboard's
    /// `/api/workgroup/env-info` (with the gateway's cookies, or the bearer token when stage 1
    /// found no gateway). The cluster backend's default namespace when none is configured.
    pub fn kubeflow_namespaces(&self) -> Result<Vec<String>> {
        let s = self.clone();
        run(async move {
            let req = s
                .gateway_request(reqwest::Method::GET, "/api/workgroup/env-info", false)
                .await?;
            let fail = |problem: String| {
                Error::Auth(AuthError::LoginFailed {
                    url: s.inner.endpoints.url.clone(),
                    problem: format!("cannot read the Kubeflow profile namespaces: {problem}"),
                    fix: "pass a namespace explicitly (namespace=... / --namespace)".into(),
                })
            };
            let resp = req.send().await.map_err(|e| fail(http::describe(e)))?;
            if !resp.status().is_success() {
                return Err(fail(format!(
                    "the dashboard answered HTTP {}",
                    resp.status().as_u16()
                )));
            }
            let info: serde_json::Value = resp.json().await.map_err(|e| fail(http::describe(e)))?;
            Ok(info["namespaces"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|n| n["namespace"].as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default())
        })
    }

    /// A request to one of Kubeflow's web APIs behind the gateway (`path` below the Kubeflow
    /// URL): with the gateway's session cookies, or the bearer token when stage 1 found no
    /// gateway or `token` asks for it (a web session the gateway no longer accepts). Send it on
    /// the sign-in runtime ([`run`]), where the session's connection pool lives.
    pub(crate) async fn gateway_request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: bool,
    ) -> Result<reqwest::RequestBuilder> {
        let url = format!("{}{path}", self.inner.endpoints.url.trim_end_matches('/'));
        let req = self.inner.client.request(method, url);
        if token || !self.has_web_session() {
            return Ok(req.bearer_auth(self.bearer_token_async().await?.as_str()));
        }
        Ok(req)
    }

    /// Renews now (blocking), even outside the window.
    pub fn refresh_now(&self) -> Result<()> {
        let s = self.clone();
        run(async move { s.refresh(true).await.map(|_| ()) })
    }

    fn expired(&self, reason: impl Into<String>) -> Error {
        Error::Auth(AuthError::SessionExpired {
            url: self.inner.endpoints.url.clone(),
            username: self.inner.username.clone(),
            reason: reason.into(),
        })
    }

    async fn refresh(&self, force: bool) -> Result<Zeroizing<String>> {
        let _gate = self.inner.refresh_gate.lock().await;
        let before = self.tokens();
        if !force && !before.needs_refresh(now_secs()) {
            return Ok(before.id_token); // another caller renewed it while we waited
        }
        let mut last = String::from("no refresh token");
        if let Some(rt) = before.refresh_token.clone() {
            let mut delay = Duration::from_millis(500);
            for attempt in 0..4 {
                match login::refresh(&self.inner.endpoints, &self.inner.client, &rt, &before).await
                {
                    Ok(new) => return self.install(new, false),
                    Err(RefreshFailure::Gone(why)) => {
                        last = why;
                        break;
                    }
                    Err(RefreshFailure::Transient(why)) => {
                        last = why;
                        if attempt < 3 {
                            tokio::time::sleep(delay).await;
                            delay *= 2;
                        }
                    }
                }
            }
        }
        // Another kflow process (VS Code's backend, a kernel) may have renewed the session and
        // stored a newer refresh token (Keycloak revokes used ones when rotation is on).
        if let Some(stored) = self
            .stored_tokens()
            .filter(|t| t.refresh_token != before.refresh_token)
        {
            if !stored.needs_refresh(now_secs()) {
                *self.inner.tokens.lock().unwrap_or_else(|p| p.into_inner()) = stored.clone();
                self.inner.expiry.send_replace(stored.expires_at);
                return Ok(stored.id_token);
            }
            if let Some(rt) = stored.refresh_token.clone() {
                if let Ok(new) =
                    login::refresh(&self.inner.endpoints, &self.inner.client, &rt, &stored).await
                {
                    return self.install(new, false);
                }
            }
        }
        if let Some(password) = self.inner.password.clone() {
            let creds = Credentials {
                username: self.inner.username.clone(),
                password,
            };
            let new = login::token_login(&self.inner.endpoints, &self.inner.client, &creds).await?;
            return self.install(new, true);
        }
        // A still-valid token outlives a failed early refresh: the next call tries again.
        if before.expires_at > now_secs() + 5 && !force {
            return Ok(before.id_token);
        }
        Err(self.expired(last))
    }

    fn install(&self, new: TokenSet, relogin: bool) -> Result<Zeroizing<String>> {
        let token = new.id_token.clone();
        let expires_at = new.expires_at;
        *self.inner.tokens.lock().unwrap_or_else(|p| p.into_inner()) = new;
        self.inner.expiry.send_replace(expires_at);
        let counter = if relogin {
            &self.inner.relogins
        } else {
            &self.inner.refreshes
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.persist()?;
        Ok(token)
    }

    /// Renews the tokens in the background ahead of expiry for as long as the session lives.
    fn spawn_refresher(&self) {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        runtime().spawn(async move {
            loop {
                let wait = {
                    let Some(inner) = weak.upgrade() else { return };
                    let t = inner
                        .tokens
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone();
                    t.expires_at
                        .saturating_sub(refresh_window(t.lifetime))
                        .saturating_sub(now_secs())
                };
                tokio::time::sleep(Duration::from_secs(wait.max(1))).await;
                let Some(inner) = weak.upgrade() else { return };
                let s = Session { inner };
                if s.refresh(false).await.is_err() {
                    // Expired and no stored password: callers get the clear error; stop here.
                    if s.tokens().expires_at <= now_secs() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
        });
    }
}
