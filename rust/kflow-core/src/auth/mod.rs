//! Signing in to Kubeflow with a username and password: the two-stage Keycloak
//! (or Dex) login, a session that renews itself, secrets only in the OS keyring (or memory),
//! sign-out. Modules: `endpoints` (the adapter: URL, realm, client, issuer, API server), `form`
//! (reading identity-provider pages), `http` (client + cookie jar), `login` (the flows),
//! `session` (refresh, persistence), `store` (keyring / memory), `token` (the token set, its
//! renewal window, JWT claims), `kube_client` (a kube client whose requests carry the session's
//! current token).
//!
//! The process-wide functions below are what the CLI, Python and the kernel call; one session per
//! process is current, shared by every caller (the cluster backend gets it from `session`).

mod endpoints;
mod form;
mod http;
pub mod kube_client;
mod login;
mod session;
mod store;
mod token;

use std::sync::Mutex;

use serde::Serialize;

pub use endpoints::Endpoints;
pub(crate) use http::describe;
pub use login::Credentials;
pub(crate) use session::run;
pub use session::{profile_path, Session};
pub use store::{use_editor_store, EditorSecrets, SecretStore, StoreKind};
pub use token::{claims, now_secs};
pub use zeroize::Zeroizing;

use crate::error::{AuthError, Error, Result};
use crate::spec::Context;

static CURRENT: Mutex<Option<Session>> = Mutex::new(None);

fn current() -> std::sync::MutexGuard<'static, Option<Session>> {
    CURRENT.lock().unwrap_or_else(|p| p.into_inner())
}

/// What `login` is asked to do. `url: None` uses the configured URL (`KFLOW_URL`, config.toml),
/// else the one of the stored session.
pub struct LoginRequest {
    /// The Kubeflow URL to sign in to.
    pub url: Option<String>,
    /// The Kubernetes API server, when it is not the Kubeflow URL (`--api-server`).
    pub api_server: Option<String>,
    /// The identity provider's username.
    pub username: String,
    /// The password, wiped from memory when dropped.
    pub password: Zeroizing<String>,
    /// Whether to keep the password in the secret store so an expired session can sign in
    /// again silently.
    pub store_password: bool,
}

/// Who is signed in, where, and where the secrets are (no secret in here).
#[derive(Debug, Clone, Serialize)]
pub struct Identity {
    /// Whether a session exists; when false, only the store fields are set.
    pub signed_in: bool,
    /// The Kubeflow URL signed in to.
    pub url: Option<String>,
    /// The signed-in username.
    pub username: Option<String>,
    /// The identity provider's OIDC issuer URL.
    pub issuer: Option<String>,
    /// The Kubernetes API server the session's token is sent to.
    pub api_server: Option<String>,
    /// The OIDC client kflow signed in as.
    pub client_id: Option<String>,
    /// `keyring` or `memory`.
    pub store: String,
    /// In words, e.g. "OS keyring (Secret Service)".
    pub store_description: String,
    /// When the current token expires (RFC 3339); it is renewed before then.
    pub expires_at: Option<String>,
    /// Seconds until then (negative once past).
    pub expires_in_seconds: Option<i64>,
    /// Whether sign-in got Kubeflow's web-session cookies (false without a gateway).
    pub web_session: bool,
    /// Whether the password is kept for silent re-login.
    pub password_stored: bool,
    /// A one-time notice (memory-only store) the surface should show.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
}

fn identity(session: Option<&Session>, store: SecretStore) -> Identity {
    let notice = store.take_memory_notice();
    match session {
        Some(s) => {
            let exp = s.expires_at();
            let stamp = humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(exp),
            )
            .to_string();
            let ep = s.endpoints();
            Identity {
                signed_in: true,
                url: Some(ep.url.clone()),
                username: Some(s.username().to_string()),
                issuer: Some(ep.issuer.clone()),
                api_server: Some(ep.api_server.clone()),
                client_id: Some(ep.client_id.clone()),
                store: s.store_kind().short().into(),
                store_description: s.store_kind().describe(),
                expires_at: Some(stamp),
                expires_in_seconds: Some(exp as i64 - token::now_secs() as i64),
                web_session: s.has_web_session(),
                password_stored: s.password_stored(),
                notice,
            }
        }
        None => Identity {
            signed_in: false,
            url: None,
            username: None,
            issuer: None,
            api_server: None,
            client_id: None,
            store: store.kind().short().into(),
            store_description: store.kind().describe(),
            expires_at: None,
            expires_in_seconds: None,
            web_session: false,
            password_stored: false,
            notice,
        },
    }
}

/// The URL `login` uses when none is given: settings first, then the stored session's.
pub fn default_url(ctx: &Context) -> Option<String> {
    if let Ok(Some(url)) = ctx.settings().map(|s| s.url) {
        return Some(url);
    }
    if let Some(s) = current().as_ref() {
        return Some(s.endpoints().url.clone());
    }
    let text = std::fs::read_to_string(session::profile_path(&ctx.dirs.state)).ok()?;
    serde_json::from_str::<session::Profile>(&text)
        .ok()
        .map(|p| p.endpoints.url)
}

/// Signs in and makes the session current (replacing any other).
pub fn login(ctx: &Context, req: LoginRequest) -> Result<Identity> {
    let url = req
        .url
        .filter(|u| !u.trim().is_empty())
        .or_else(|| default_url(ctx))
        .ok_or_else(|| {
            Error::invalid(
                "Kubeflow URL",
                "",
                "no URL given and none configured",
                "pass --url https://kubeflow.example.com (or set KFLOW_URL / `url` in config.toml)",
            )
        })?;
    if req.username.trim().is_empty() {
        return Err(Error::invalid(
            "username",
            "",
            "empty",
            "pass the username you sign in to Kubeflow with",
        ));
    }
    if req.password.is_empty() {
        return Err(Error::invalid(
            "password",
            "",
            "empty",
            "type the password when asked, or pipe it to --password-stdin",
        ));
    }
    let mut endpoints = Endpoints::from_context(ctx, &url)?;
    if let Some(server) = req.api_server.filter(|s| !s.trim().is_empty()) {
        endpoints.set_api_server(&server)?;
    }
    let store = SecretStore::detect();
    let creds = Credentials {
        username: req.username.trim().to_string(),
        password: req.password,
    };
    let session = Session::login(endpoints, creds, req.store_password, store, &ctx.dirs.state)?;
    let mut cur = current();
    if let Some(old) = cur.take() {
        if old.endpoints().url != session.endpoints().url || old.username() != session.username() {
            let _ = old.logout();
        }
    }
    *cur = Some(session.clone());
    drop(cur);
    Ok(identity(Some(&session), store))
}

/// The current session: this process's, else the one stored by another process.
pub fn session(ctx: &Context) -> Result<Session> {
    let mut cur = current();
    if let Some(s) = cur.as_ref() {
        return Ok(s.clone());
    }
    let store = SecretStore::detect();
    let loaded =
        Session::load(&ctx.dirs.state, store)?.ok_or(Error::Auth(AuthError::NotLoggedIn))?;
    *cur = Some(loaded.clone());
    Ok(loaded)
}

/// Who is signed in (no network).
pub fn whoami(ctx: &Context) -> Result<Identity> {
    let store = SecretStore::detect();
    match session(ctx) {
        Ok(s) => Ok(identity(Some(&s), store)),
        Err(Error::Auth(AuthError::NotLoggedIn)) => Ok(identity(None, store)),
        Err(e) => Err(e),
    }
}

/// Signs out: ends the IdP session, clears the keyring entries, the profile and this process's
/// session. Returns the identity that was signed in (`signed_in: false` when none was).
pub fn logout(ctx: &Context) -> Result<Identity> {
    let store = SecretStore::detect();
    let taken = current().take();
    let session = match taken {
        Some(s) => Some(s),
        None => Session::load(&ctx.dirs.state, store)?,
    };
    let who = identity(session.as_ref(), store);
    if let Some(s) = session {
        s.logout()?;
    }
    let _ = std::fs::remove_file(session::profile_path(&ctx.dirs.state));
    Ok(who)
}

/// A kubeconfig (YAML) for the current session with a valid token, built in memory. Shown only
/// when a user asks (`kflow kubeconfig`); kflow itself never writes one.
pub fn kubeconfig(ctx: &Context) -> Result<Zeroizing<String>> {
    use base64::Engine;
    let s = session(ctx)?;
    let token = s.bearer_token()?;
    let ep = s.endpoints();
    let mut cluster = serde_json::json!({ "server": ep.api_server });
    if let Some(ca) = &ep.ca_file {
        let pem = std::fs::read(ca).map_err(Error::io("reading the CA file", ca))?;
        cluster["certificate-authority-data"] =
            base64::engine::general_purpose::STANDARD.encode(pem).into();
    }
    if !ep.verify_tls {
        cluster["insecure-skip-tls-verify"] = true.into();
    }
    let doc = serde_json::json!({
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "kflow", "cluster": cluster}],
        "users": [{"name": s.username(), "user": {"token": token.as_str()}}],
        "contexts": [{"name": "kflow", "context": {"cluster": "kflow", "user": s.username()}}],
        "current-context": "kflow",
    });
    Ok(Zeroizing::new(
        serde_yaml::to_string(&doc).unwrap_or_default(),
    ))
}

/// Asks for a line on the terminal (prompt on stderr).
pub fn prompt_line(prompt: &str) -> Result<String> {
    use std::io::{BufRead, Write};
    let mut err = std::io::stderr();
    let _ = write!(err, "{prompt}");
    let _ = err.flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(Error::io("reading", "standard input"))?;
    Ok(line.trim().to_string())
}

/// Asks for a password on the terminal without echo. Echo goes off before the prompt appears,
/// so a password typed (or pasted) right at the prompt is never shown.
#[cfg(unix)]
pub fn prompt_password(prompt: &str) -> Result<Zeroizing<String>> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    use std::io::{BufRead, Write};
    let io_err = Error::io("reading the password from", "/dev/tty");
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(io_err)?;
    let original = tcgetattr(&tty)
        .map_err(|e| Error::io("reading the password from", "/dev/tty")(e.into()))?;
    let mut quiet = original.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    tcsetattr(&tty, SetArg::TCSANOW, &quiet)
        .map_err(|e| Error::io("reading the password from", "/dev/tty")(e.into()))?;
    let read = (|| {
        let mut out = &tty;
        write!(out, "{prompt}")?;
        out.flush()?;
        let mut line = Zeroizing::new(String::new());
        std::io::BufReader::new(&tty).read_line(&mut line)?;
        Ok::<_, std::io::Error>(line)
    })();
    let _ = tcsetattr(&tty, SetArg::TCSANOW, &original);
    let line = read.map_err(Error::io("reading the password from", "/dev/tty"))?;
    Ok(Zeroizing::new(
        line.trim_end_matches(['\n', '\r']).to_string(),
    ))
}

/// Asks for a password on the terminal without echo.
#[cfg(not(unix))]
pub fn prompt_password(prompt: &str) -> Result<Zeroizing<String>> {
    rpassword::prompt_password(prompt)
        .map(Zeroizing::new)
        .map_err(Error::io("reading the password from", "the terminal"))
}

/// Reads a password from standard input (`--password-stdin`): the first line, without its end.
pub fn read_password_stdin() -> Result<Zeroizing<String>> {
    use std::io::Read;
    let mut buf = Zeroizing::new(String::new());
    std::io::stdin()
        .read_to_string(&mut buf)
        .map_err(Error::io("reading the password from", "standard input"))?;
    let first = buf.lines().next().unwrap_or("");
    Ok(Zeroizing::new(first.to_string()))
}
