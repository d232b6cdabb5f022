//! A Keycloak-style identity provider: one realm with users from a config file, Keycloak's
//! login page structure (form `kc-form-login`, `login-actions/authenticate` with session_code /
//! execution / client_id / tab_id, `username`/`password`, Keycloak's error markup), optional
//! OTP and update-password required actions, and the OIDC endpoints (discovery, auth, token
//! with authorization_code + PKCE S256 and refresh_token, JWKS, userinfo, logout). Tokens are
//! ES256 JWTs that the API server also accepts as bearer tokens.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::jwt::{now_secs, Signer};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct IdpUser {
    pub username: String,
    pub password: String,
    pub email: String,
    pub groups: Vec<String>,
    /// Namespaces this user may act in through the API server (403 elsewhere).
    pub namespaces: Vec<String>,
    /// "otp" (asks for `otp` after the password) or "update-password".
    pub required_action: Option<String>,
    /// The one-time code the OTP page accepts.
    pub otp: String,
}

impl Default for IdpUser {
    fn default() -> Self {
        IdpUser {
            username: String::new(),
            password: String::new(),
            email: String::new(),
            groups: Vec::new(),
            namespaces: Vec::new(),
            required_action: None,
            otp: "123456".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct IdpConfig {
    pub realm: String,
    /// Public clients allowed to log in.
    pub clients: Vec<String>,
    pub users: Vec<IdpUser>,
    pub access_token_seconds: i64,
    pub refresh_token_seconds: i64,
    /// Whether `grant_type=password` is allowed (Keycloak: "Direct access grants").
    pub direct_access_grants: bool,
    /// A Dex front at `/dex` (as Kubeflow's manifests wire Keycloak: behind Dex).
    pub dex: Option<DexConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct DexConfig {
    /// Connector ids in order: "keycloak" (OIDC to this realm) and/or "local" (Dex's own
    /// password form against the realm's users). One connector skips the choice page.
    pub connectors: Vec<String>,
    /// Show Dex's approval page after login (skipApprovalScreen: false).
    pub approval: bool,
}

impl Default for DexConfig {
    fn default() -> Self {
        DexConfig {
            connectors: vec!["keycloak".into()],
            approval: false,
        }
    }
}

impl Default for IdpConfig {
    fn default() -> Self {
        IdpConfig {
            realm: "kubeflow".into(),
            clients: vec!["kflow".into(), "kubeflow-oidc-authservice".into()],
            users: vec![IdpUser {
                username: "user@example.com".into(),
                password: "12341234".into(),
                email: "user@example.com".into(),
                namespaces: vec!["kubeflow-user-example-com".into()],
                ..IdpUser::default()
            }],
            access_token_seconds: 300,
            refresh_token_seconds: 1800,
            direct_access_grants: false,
            dex: None,
        }
    }
}

#[derive(Debug, Clone)]
enum Stage {
    Password,
    Otp(String),
    UpdatePassword(String),
}

#[derive(Debug, Clone)]
struct AuthSession {
    id: String,
    tab_id: String,
    session_code: String,
    execution: String,
    client_id: String,
    params: HashMap<String, String>,
    stage: Stage,
}

#[derive(Debug, Clone)]
struct CodeGrant {
    username: String,
    client_id: String,
    redirect_uri: String,
    challenge: Option<(String, String)>,
    nonce: Option<String>,
    sso: String,
    expires: i64,
}

#[derive(Default)]
struct IdpState {
    /// by tab_id
    auth: HashMap<String, AuthSession>,
    codes: HashMap<String, CodeGrant>,
    /// KEYCLOAK_IDENTITY value -> username
    sso: HashMap<String, String>,
    /// users' passwords changed through update-password
    passwords: HashMap<String, String>,
}

pub struct Idp {
    pub config: IdpConfig,
    pub signer: Signer,
    /// `scheme://host:port` of this server; the issuer is `<base>/realms/<realm>`.
    pub base_url: String,
    pub secure_cookies: bool,
    state: Mutex<IdpState>,
}

/// Who a verified bearer token belongs to.
#[derive(Debug, Clone)]
pub struct TokenUser {
    pub username: String,
    pub namespaces: Vec<String>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn qs(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

impl Idp {
    pub fn new(config: IdpConfig, signer: Signer, base_url: String) -> Idp {
        let secure_cookies = base_url.starts_with("https://");
        Idp {
            config,
            signer,
            base_url,
            secure_cookies,
            state: Mutex::new(IdpState::default()),
        }
    }

    pub fn issuer(&self) -> String {
        format!("{}/realms/{}", self.base_url, self.config.realm)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, IdpState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn user(&self, username: &str) -> Option<&IdpUser> {
        self.config
            .users
            .iter()
            .find(|u| u.username == username || (!u.email.is_empty() && u.email == username))
    }

    /// The API server's view of a bearer token: a realm token that verifies and has not expired.
    pub fn verify_bearer(&self, token: &str) -> Option<TokenUser> {
        let claims = self.signer.verify(token).ok()?;
        let iss = claims["iss"].as_str().unwrap_or("");
        let dex_issuer = format!("{}/dex", self.base_url);
        if (iss != self.issuer() && iss != dex_issuer) || claims["typ"] == json!("Refresh") {
            return None;
        }
        let username = claims["preferred_username"].as_str()?.to_string();
        let namespaces = self
            .user(&username)
            .map(|u| u.namespaces.clone())
            .unwrap_or_default();
        Some(TokenUser {
            username,
            namespaces,
        })
    }

    fn cookie(&self, name: &str, value: &str, max_age: Option<i64>) -> String {
        let mut c = format!(
            "{name}={value}; Path=/realms/{}/; HttpOnly; SameSite=None",
            self.config.realm
        );
        if self.secure_cookies {
            c.push_str("; Secure");
        }
        if let Some(age) = max_age {
            c.push_str(&format!("; Max-Age={age}"));
        }
        c
    }

    fn action_url(&self, s: &AuthSession) -> String {
        format!(
            "{}/login-actions/authenticate?{}",
            self.issuer(),
            qs(&[
                ("session_code", &s.session_code),
                ("execution", &s.execution),
                ("client_id", &s.client_id),
                ("tab_id", &s.tab_id)
            ])
        )
    }

    fn page(&self, page_id: &str, title: &str, body: &str) -> String {
        format!(
            "<!DOCTYPE html>\n<html class=\"login-pf\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
<body class=\"login-pf\" data-page-id=\"{page_id}\">\n<div class=\"login-pf-page\">\n<div id=\"kc-header\" class=\"login-pf-page-header\"><div id=\"kc-header-wrapper\">{realm}</div></div>\n\
<div class=\"card-pf\"><header class=\"login-pf-header\"><h1 id=\"kc-page-title\">{title}</h1></header>\n<div id=\"kc-content\"><div id=\"kc-content-wrapper\">\n{body}\n</div></div></div></div>\n</body></html>\n",
            realm = esc(&self.config.realm)
        )
    }

    fn login_page(&self, s: &AuthSession, username: &str, error: Option<&str>) -> String {
        let alert = error
            .map(|e| format!("<div class=\"alert-error pf-c-alert pf-m-inline pf-m-danger\"><span class=\"pf-c-alert__title kc-feedback-text\">{}</span></div>\n", esc(e)))
            .unwrap_or_default();
        let field_error = error
            .map(|e| format!("<span id=\"input-error\" class=\"pf-c-form__helper-text pf-m-error required kc-feedback-text\" aria-live=\"polite\">{}</span>\n", esc(e)))
            .unwrap_or_default();
        let body = format!(
            "{alert}<form id=\"kc-form-login\" onsubmit=\"login.disabled = true; return true;\" action=\"{action}\" method=\"post\">\n\
<div class=\"form-group\"><label for=\"username\" class=\"pf-c-form__label pf-c-form__label-text\">Username or email</label>\n\
<input tabindex=\"1\" id=\"username\" class=\"pf-c-form-control\" name=\"username\" value=\"{user}\" type=\"text\" autofocus autocomplete=\"off\" aria-invalid=\"{invalid}\"/>\n{field_error}</div>\n\
<div class=\"form-group\"><label for=\"password\" class=\"pf-c-form__label pf-c-form__label-text\">Password</label>\n\
<input tabindex=\"2\" id=\"password\" class=\"pf-c-form-control\" name=\"password\" type=\"password\" autocomplete=\"off\" aria-invalid=\"{invalid}\"/></div>\n\
<div id=\"kc-form-buttons\" class=\"form-group\"><input type=\"hidden\" id=\"id-hidden-input\" name=\"credentialId\"/>\n\
<input tabindex=\"4\" class=\"pf-c-button pf-m-primary pf-m-block btn-lg\" name=\"login\" id=\"kc-login\" type=\"submit\" value=\"Sign In\"/></div>\n</form>",
            action = esc(&self.action_url(s)),
            user = esc(username),
            invalid = error.is_some(),
        );
        self.page("login-login", "Sign in to your account", &body)
    }

    fn otp_page(&self, s: &AuthSession, error: Option<&str>) -> String {
        let err = error
            .map(|e| format!("<span id=\"input-error-otp-code\" class=\"pf-c-form__helper-text pf-m-error required kc-feedback-text\" aria-live=\"polite\">{}</span>\n", esc(e)))
            .unwrap_or_default();
        let body = format!(
            "<form id=\"kc-otp-login-form\" class=\"pf-c-form\" action=\"{}\" method=\"post\">\n\
<label for=\"otp\" class=\"pf-c-form__label\">One-time code</label>\n<input id=\"otp\" name=\"otp\" autocomplete=\"off\" type=\"text\" class=\"pf-c-form-control\" autofocus/>\n{err}\
<input class=\"pf-c-button pf-m-primary pf-m-block btn-lg\" name=\"login\" id=\"kc-login\" type=\"submit\" value=\"Sign In\"/>\n</form>",
            esc(&self.action_url(s))
        );
        self.page("login-login-otp", "Sign in to your account", &body)
    }

    fn update_password_page(&self, s: &AuthSession, error: Option<&str>) -> String {
        let err = error
            .map(|e| format!("<span id=\"input-error-password\" class=\"pf-c-form__helper-text pf-m-error required kc-feedback-text\">{}</span>\n", esc(e)))
            .unwrap_or_default();
        let body = format!(
            "<div class=\"alert-warning pf-c-alert\"><span class=\"kc-feedback-text\">You need to change your password to activate your account.</span></div>\n\
<form id=\"kc-passwd-update-form\" class=\"pf-c-form\" action=\"{}\" method=\"post\">\n\
<input type=\"password\" id=\"password-new\" name=\"password-new\" class=\"pf-c-form-control\" autofocus autocomplete=\"new-password\"/>\n\
<input type=\"password\" id=\"password-confirm\" name=\"password-confirm\" class=\"pf-c-form-control\" autocomplete=\"new-password\"/>\n{err}\
<input class=\"pf-c-button pf-m-primary btn-lg\" type=\"submit\" value=\"Submit\"/>\n</form>",
            esc(&self.action_url(s))
        );
        self.page("login-login-update-password", "Update password", &body)
    }

    fn error_page(&self, status: StatusCode, message: &str) -> Response {
        let body = format!(
            "<div id=\"kc-error-message\"><p class=\"instruction\">{}</p></div>",
            esc(message)
        );
        html(
            status,
            self.page("login-error", "We are sorry...", &body),
            vec![],
        )
    }

    /// Tokens for a user: access, id and refresh (all signed JWTs).
    fn tokens(&self, username: &str, client_id: &str, sso: &str, nonce: Option<&str>) -> Value {
        self.tokens_from(&self.issuer(), username, client_id, sso, nonce)
    }

    /// Tokens as issued by `issuer` (the realm, or the Dex front signing with the same key).
    pub fn tokens_from(
        &self,
        issuer: &str,
        username: &str,
        client_id: &str,
        sso: &str,
        nonce: Option<&str>,
    ) -> Value {
        let user = self.user(username).cloned().unwrap_or_default();
        let now = now_secs();
        let sub = format!(
            "user-{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(username)
        );
        let common = json!({"iss": issuer, "sub": sub, "azp": client_id, "sid": sso, "session_state": sso,
            "preferred_username": user.username, "email": user.email, "email_verified": true, "groups": user.groups,
            "iat": now, "auth_time": now, "jti": self.signer.random_id()});
        let mut access = common.clone();
        access["typ"] = json!("Bearer");
        access["aud"] = json!(["account", client_id]);
        access["exp"] = json!(now + self.config.access_token_seconds);
        access["scope"] = json!("openid email profile");
        let mut id = common.clone();
        id["typ"] = json!("ID");
        id["aud"] = json!(client_id);
        id["exp"] = json!(now + self.config.access_token_seconds);
        if let Some(n) = nonce {
            id["nonce"] = json!(n);
        }
        let mut refresh = common;
        refresh["typ"] = json!("Refresh");
        refresh["aud"] = json!(issuer);
        refresh["exp"] = json!(now + self.config.refresh_token_seconds);
        let sign = |c: &Value| self.signer.sign(c).unwrap_or_default();
        json!({"access_token": sign(&access), "expires_in": self.config.access_token_seconds,
               "refresh_expires_in": self.config.refresh_token_seconds, "refresh_token": sign(&refresh),
               "token_type": "Bearer", "id_token": sign(&id), "not-before-policy": 0,
               "session_state": sso, "scope": "openid email profile"})
    }

    /// The current password of a user (update-password may have changed it).
    pub fn password_ok(&self, username: &str, password: &str) -> Option<String> {
        let u = self.user(username)?;
        let current = self
            .lock()
            .passwords
            .get(&u.username)
            .cloned()
            .unwrap_or_else(|| u.password.clone());
        (!password.is_empty() && current == password).then(|| u.username.clone())
    }

    /// Exchanges an authorization code (single use, 60 s) for tokens, checking client,
    /// redirect_uri and the PKCE verifier. Err carries Keycloak's error_description.
    pub fn redeem_code(
        &self,
        code: &str,
        client_id: &str,
        redirect_uri: &str,
        verifier: Option<&String>,
    ) -> Result<Value, &'static str> {
        let grant = self.lock().codes.remove(code).ok_or("Code not valid")?;
        if grant.expires < now_secs() {
            return Err("Code not valid");
        }
        if grant.client_id != client_id {
            return Err("Auth error");
        }
        if grant.redirect_uri != redirect_uri {
            return Err("Incorrect redirect_uri");
        }
        if !pkce_ok(&grant.challenge, verifier) {
            return Err("PKCE verification failed: Invalid code verifier");
        }
        Ok(self.tokens(
            &grant.username,
            client_id,
            &grant.sso,
            grant.nonce.as_deref(),
        ))
    }

    /// Finishes a login: SSO session cookie, a code, and the redirect back to the client.
    fn complete(&self, s: &AuthSession, username: &str) -> Response {
        let sso = self.signer.random_id();
        let code = format!("{}.{}", self.signer.random_id(), sso);
        let challenge = s.params.get("code_challenge").map(|c| {
            (
                c.clone(),
                s.params
                    .get("code_challenge_method")
                    .cloned()
                    .unwrap_or_else(|| "plain".into()),
            )
        });
        let redirect_uri = s.params.get("redirect_uri").cloned().unwrap_or_default();
        {
            let mut st = self.lock();
            st.sso.insert(sso.clone(), username.to_string());
            st.auth.remove(&s.tab_id);
            st.codes.insert(
                code.clone(),
                CodeGrant {
                    username: username.to_string(),
                    client_id: s.client_id.clone(),
                    redirect_uri: redirect_uri.clone(),
                    challenge,
                    nonce: s.params.get("nonce").cloned(),
                    sso: sso.clone(),
                    expires: now_secs() + 60,
                },
            );
        }
        let state = s.params.get("state").cloned().unwrap_or_default();
        let sep = if redirect_uri.contains('?') { '&' } else { '?' };
        let location = format!(
            "{redirect_uri}{sep}{}",
            qs(&[
                ("state", &state),
                ("session_state", &sso),
                ("iss", &self.issuer()),
                ("code", &code)
            ])
        );
        let cookies = vec![
            self.cookie("KEYCLOAK_IDENTITY", &sso, None),
            self.cookie(
                "KEYCLOAK_SESSION",
                &format!("{}/{username}/{sso}", self.config.realm),
                None,
            ),
            self.cookie("KC_RESTART", "", Some(0)),
        ];
        redirect(&location, cookies)
    }
}

fn html(status: StatusCode, body: String, cookies: Vec<String>) -> Response {
    let mut resp = (status, [("content-type", "text/html;charset=utf-8")], body).into_response();
    for c in cookies {
        if let Ok(v) = c.parse() {
            resp.headers_mut().append("set-cookie", v);
        }
    }
    resp
}

fn redirect(location: &str, cookies: Vec<String>) -> Response {
    let mut resp = html(StatusCode::FOUND, String::new(), cookies);
    if let Ok(v) = location.parse() {
        resp.headers_mut().insert("location", v);
    }
    resp
}

/// The request's cookies by name (the gateway reads its session cookie the same way).
pub(crate) fn cookies(headers: &HeaderMap) -> HashMap<String, String> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| {
            kv.trim()
                .split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

pub(crate) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

fn realm_idp(served: Option<Arc<Idp>>, realm: &str) -> Option<Arc<Idp>> {
    served.filter(|i| i.config.realm == realm)
}

pub async fn discovery(
    State(served): State<Option<Arc<Idp>>>,
    Path(realm): Path<String>,
) -> Response {
    let Some(idp) = realm_idp(served, &realm) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "Realm does not exist"})),
        )
            .into_response();
    };
    let iss = idp.issuer();
    Json(json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/protocol/openid-connect/auth"),
        "token_endpoint": format!("{iss}/protocol/openid-connect/token"),
        "userinfo_endpoint": format!("{iss}/protocol/openid-connect/userinfo"),
        "end_session_endpoint": format!("{iss}/protocol/openid-connect/logout"),
        "jwks_uri": format!("{iss}/protocol/openid-connect/certs"),
        "grant_types_supported": ["authorization_code", "refresh_token", "password"],
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "code_challenge_methods_supported": ["plain", "S256"],
        "scopes_supported": ["openid", "email", "profile", "offline_access"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
    }))
    .into_response()
}

pub async fn certs(State(served): State<Option<Arc<Idp>>>, Path(realm): Path<String>) -> Response {
    match realm_idp(served, &realm) {
        Some(idp) => Json(idp.signer.jwks()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

pub async fn auth(
    State(served): State<Option<Arc<Idp>>>,
    Path(realm): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(idp) = realm_idp(served, &realm) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let client_id = q.get("client_id").cloned().unwrap_or_default();
    if !idp.config.clients.contains(&client_id) {
        return idp.error_page(StatusCode::BAD_REQUEST, "Client not found.");
    }
    if q.get("redirect_uri").is_none_or(|r| r.is_empty()) {
        return idp.error_page(StatusCode::BAD_REQUEST, "Invalid parameter: redirect_uri");
    }
    if q.get("response_type").map(String::as_str) != Some("code") {
        return idp.error_page(StatusCode::BAD_REQUEST, "Invalid parameter: response_type");
    }
    let session = AuthSession {
        id: idp.signer.random_id(),
        tab_id: idp.signer.random_id()[..11].to_string(),
        session_code: idp.signer.random_id(),
        execution: "b6e2bcd8-7a1c-4c3e-9f2a-0c7f3d9a1e11".into(),
        client_id,
        params: q.clone(),
        stage: Stage::Password,
    };
    // A live SSO session logs in silently, unless the client asks for the login page.
    let sso_user = cookies(&headers)
        .get("KEYCLOAK_IDENTITY")
        .and_then(|sso| idp.lock().sso.get(sso).cloned());
    if let Some(user) = sso_user.filter(|_| q.get("prompt").map(String::as_str) != Some("login")) {
        return idp.complete(&session, &user);
    }
    let page = idp.login_page(&session, "", None);
    let cookies = vec![
        idp.cookie("AUTH_SESSION_ID", &session.id, None),
        idp.cookie("KC_RESTART", &idp.signer.random_id(), None),
    ];
    idp.lock().auth.insert(session.tab_id.clone(), session);
    html(StatusCode::OK, page, cookies)
}

pub async fn authenticate(
    State(served): State<Option<Arc<Idp>>>,
    Path(realm): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(idp) = realm_idp(served, &realm) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let tab_id = q.get("tab_id").cloned().unwrap_or_default();
    let Some(mut session) = idp.lock().auth.get(&tab_id).cloned() else {
        return idp.error_page(
            StatusCode::BAD_REQUEST,
            "Your login attempt timed out. Login will start from the beginning.",
        );
    };
    if cookies(&headers).get("AUTH_SESSION_ID") != Some(&session.id) {
        return idp.error_page(
            StatusCode::BAD_REQUEST,
            "Cookie not found. Please make sure cookies are enabled in your browser.",
        );
    }
    if q.get("session_code") != Some(&session.session_code)
        || q.get("execution") != Some(&session.execution)
    {
        // A stale form (back button, double submit): Keycloak shows the current step again.
        return html(
            StatusCode::OK,
            idp.login_page(&session, "", Some("Page has expired. Please try again.")),
            vec![],
        );
    }
    session.session_code = idp.signer.random_id();
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    let outcome = match session.stage.clone() {
        Stage::Password => {
            let username = field("username");
            let password = field("password");
            let known = idp.user(&username).cloned();
            let current_pw = known.as_ref().map(|u| {
                idp.lock()
                    .passwords
                    .get(&u.username)
                    .cloned()
                    .unwrap_or_else(|| u.password.clone())
            });
            match (known, current_pw) {
                (Some(u), Some(pw)) if pw == password && !password.is_empty() => match u
                    .required_action
                    .as_deref()
                {
                    Some("otp") => {
                        session.stage = Stage::Otp(u.username.clone());
                        session.execution = "3f9c1b7e-5d2a-4e8b-a6c4-7b1d2e9f0a22".into();
                        Err(html(StatusCode::OK, idp.otp_page(&session, None), vec![]))
                    }
                    Some("update-password") if !idp.lock().passwords.contains_key(&u.username) => {
                        session.stage = Stage::UpdatePassword(u.username.clone());
                        session.execution = "UPDATE_PASSWORD".into();
                        Err(html(
                            StatusCode::OK,
                            idp.update_password_page(&session, None),
                            vec![],
                        ))
                    }
                    _ => Ok(u.username),
                },
                _ => Err(html(
                    StatusCode::OK,
                    idp.login_page(&session, &username, Some("Invalid username or password.")),
                    vec![],
                )),
            }
        }
        Stage::Otp(user) => {
            let expected = idp.user(&user).map(|u| u.otp.clone()).unwrap_or_default();
            if field("otp") == expected {
                Ok(user)
            } else {
                Err(html(
                    StatusCode::OK,
                    idp.otp_page(&session, Some("Invalid authenticator code.")),
                    vec![],
                ))
            }
        }
        Stage::UpdatePassword(user) => {
            let (new, confirm) = (field("password-new"), field("password-confirm"));
            if new.is_empty() {
                Err(html(
                    StatusCode::OK,
                    idp.update_password_page(&session, Some("Please specify password.")),
                    vec![],
                ))
            } else if new != confirm {
                Err(html(
                    StatusCode::OK,
                    idp.update_password_page(&session, Some("Passwords don't match.")),
                    vec![],
                ))
            } else {
                idp.lock().passwords.insert(user.clone(), new);
                Ok(user)
            }
        }
    };
    match outcome {
        Ok(user) => idp.complete(&session, &user),
        Err(page) => {
            idp.lock().auth.insert(session.tab_id.clone(), session);
            page
        }
    }
}

pub fn pkce_ok(challenge: &Option<(String, String)>, verifier: Option<&String>) -> bool {
    match (challenge, verifier) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some((c, method)), Some(v)) => {
            let computed = if method == "S256" {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(ring::digest::digest(&ring::digest::SHA256, v.as_bytes()))
            } else {
                v.clone()
            };
            &computed == c
        }
    }
}

pub async fn token(
    State(served): State<Option<Arc<Idp>>>,
    Path(realm): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(idp) = realm_idp(served, &realm) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let client_id = form.get("client_id").cloned().unwrap_or_default();
    if !idp.config.clients.contains(&client_id) {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized_client",
            "Invalid client or Invalid client credentials",
        );
    }
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let code = form.get("code").cloned().unwrap_or_default();
            let redirect_uri = form.get("redirect_uri").cloned().unwrap_or_default();
            match idp.redeem_code(&code, &client_id, &redirect_uri, form.get("code_verifier")) {
                Ok(tokens) => Json(tokens).into_response(),
                Err(why) => oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", why),
            }
        }
        Some("refresh_token") => {
            let rt = form.get("refresh_token").cloned().unwrap_or_default();
            let claims = match idp.signer.verify(&rt) {
                Ok(c) if c["typ"] == json!("Refresh") => c,
                _ => {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "Invalid refresh token",
                    )
                }
            };
            let sso = claims["sid"].as_str().unwrap_or("").to_string();
            let user = idp.lock().sso.get(&sso).cloned();
            match user {
                Some(u) => Json(idp.tokens(&u, &client_id, &sso, None)).into_response(),
                None => oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "Session not active",
                ),
            }
        }
        Some("password") => {
            if !idp.config.direct_access_grants {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "unauthorized_client",
                    "Client not allowed for direct access grants",
                );
            }
            let (username, password) = (
                form.get("username").cloned().unwrap_or_default(),
                form.get("password").cloned().unwrap_or_default(),
            );
            match idp.user(&username).cloned() {
                Some(u) if u.password == password && u.required_action.is_none() => {
                    let sso = idp.signer.random_id();
                    idp.lock().sso.insert(sso.clone(), u.username.clone());
                    Json(idp.tokens(&u.username, &client_id, &sso, None)).into_response()
                }
                _ => oauth_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_grant",
                    "Invalid user credentials",
                ),
            }
        }
        _ => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Unsupported grant_type",
        ),
    }
}

pub async fn userinfo(
    State(served): State<Option<Arc<Idp>>>,
    Path(realm): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(idp) = realm_idp(served, &realm) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or("");
    match idp.signer.verify(token) {
        Ok(claims) if claims["typ"] == json!("Bearer") => Json(
            json!({"sub": claims["sub"], "preferred_username": claims["preferred_username"],
            "email": claims["email"], "email_verified": true, "groups": claims["groups"]}),
        )
        .into_response(),
        _ => oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "Token verification failed",
        ),
    }
}

/// Ends the SSO session (refresh tokens of it stop working) and redirects if asked to.
pub async fn logout(
    State(served): State<Option<Arc<Idp>>>,
    Path(realm): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(idp) = realm_idp(served, &realm) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut ended = Vec::new();
    if let Some(sso) = cookies(&headers).get("KEYCLOAK_IDENTITY") {
        ended.push(sso.clone());
    }
    if let Some(claims) = q
        .get("id_token_hint")
        .and_then(|t| idp.signer.verify(t).ok())
    {
        ended.push(claims["sid"].as_str().unwrap_or("").to_string());
    }
    {
        let mut st = idp.lock();
        for s in &ended {
            st.sso.remove(s);
        }
    }
    let cookies = vec![
        idp.cookie("KEYCLOAK_IDENTITY", "", Some(0)),
        idp.cookie("KEYCLOAK_SESSION", "", Some(0)),
    ];
    match q.get("post_logout_redirect_uri") {
        Some(uri) => redirect(uri, cookies),
        None => html(
            StatusCode::OK,
            idp.page(
                "logout-confirm",
                "Logging out",
                "<p class=\"instruction\">You are logged out</p>",
            ),
            cookies,
        ),
    }
}
