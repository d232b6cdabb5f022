//! A Dex front at `/dex`, switchable in front of the realm as Kubeflow's manifests wire it:
//! `/dex/auth` (connector choice page with "Log in with …" links when there are several),
//! the OIDC connector that sends the browser through the realm's login and back to
//! `/dex/callback`, the password connector's `login`/`password` form (`id="login-error"` on bad
//! credentials), the optional approval page, and Dex's token endpoint (code + PKCE, refresh).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use serde_json::{json, Value};

use crate::idp::{pkce_ok, DexConfig, Idp};
use crate::jwt::now_secs;

/// Dex's client at the realm for its OIDC connector.
pub const REALM_CLIENT: &str = "kubeflow-dex";

#[derive(Clone)]
struct DexRequest {
    client_id: String,
    redirect_uri: String,
    state: String,
    nonce: Option<String>,
    challenge: Option<(String, String)>,
    user: Option<String>,
}

#[derive(Clone)]
struct DexCode {
    req: DexRequest,
    user: String,
    expires: i64,
}

pub struct Dex {
    pub idp: Arc<Idp>,
    pub config: DexConfig,
    requests: Mutex<HashMap<String, DexRequest>>,
    codes: Mutex<HashMap<String, DexCode>>,
    sessions: Mutex<HashMap<String, String>>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(title: &str, body: &str) -> String {
    format!("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>dex</title></head>\n<body class=\"theme-body\">\n<div class=\"theme-navbar\"><div class=\"theme-navbar__logo-wrap\">dex</div></div>\n<div class=\"dex-container\"><div class=\"theme-panel\">\n<h2 class=\"theme-heading\">{title}</h2>\n{body}\n</div></div></body></html>\n")
}

fn html(status: StatusCode, body: String) -> Response {
    (status, [("content-type", "text/html; charset=utf-8")], body).into_response()
}

fn see_other(location: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = location.parse() {
        r.headers_mut().insert("location", v);
    }
    r
}

fn found(location: &str) -> Response {
    let mut r = StatusCode::FOUND.into_response();
    if let Ok(v) = location.parse() {
        r.headers_mut().insert("location", v);
    }
    r
}

fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    let q = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("{base}{}{q}", if base.contains('?') { '&' } else { '?' })
}

impl Dex {
    pub fn new(idp: Arc<Idp>, config: DexConfig) -> Dex {
        Dex {
            idp,
            config,
            requests: Mutex::default(),
            codes: Mutex::default(),
            sessions: Mutex::default(),
        }
    }

    pub fn issuer(&self) -> String {
        format!("{}/dex", self.idp.base_url)
    }

    fn connector_name(id: &str) -> &'static str {
        if id == "local" {
            "Email"
        } else {
            "Keycloak"
        }
    }

    fn login_form(&self, req_id: &str, login: &str, error: bool) -> String {
        let err = if error {
            "<div id=\"login-error\" class=\"dex-error-box\">Invalid Email Address and password.</div>\n"
        } else {
            ""
        };
        page(
            "Log in to Your Account",
            &format!(
                "<form method=\"post\" action=\"/dex/auth/local/login?back=&amp;state={id}\">\n\
<div class=\"theme-form-row\"><div class=\"theme-form-label\"><label for=\"userid\">Email Address</label></div>\n\
<input tabindex=\"1\" required id=\"login\" name=\"login\" type=\"text\" class=\"theme-form-input\" placeholder=\"email address\" value=\"{login}\" autofocus/></div>\n\
<div class=\"theme-form-row\"><div class=\"theme-form-label\"><label for=\"password\">Password</label></div>\n\
<input tabindex=\"2\" required id=\"password\" name=\"password\" type=\"password\" class=\"theme-form-input\" placeholder=\"password\"/></div>\n\
{err}<button tabindex=\"3\" id=\"submit-login\" type=\"submit\" class=\"dex-btn theme-btn--primary\">Login</button>\n</form>",
                id = esc(req_id),
                login = esc(login)
            ),
        )
    }

    /// After the connector identified the user: approval page or a code for the client.
    fn finish(&self, req_id: &str, user: &str) -> Response {
        let Some(mut req) = self.requests.lock().ok().and_then(|mut m| {
            m.get_mut(req_id).map(|r| {
                r.user = Some(user.to_string());
                r.clone()
            })
        }) else {
            return html(
                StatusCode::BAD_REQUEST,
                page(
                    "Bad Request",
                    "<p>Invalid request: unknown or expired authorization request.</p>",
                ),
            );
        };
        if self.config.approval {
            return see_other(&format!("/dex/approval?req={req_id}"));
        }
        req.user = Some(user.to_string());
        self.issue_code(req_id, req)
    }

    fn issue_code(&self, req_id: &str, req: DexRequest) -> Response {
        let code = self.idp.signer.random_id();
        if let Ok(mut m) = self.requests.lock() {
            m.remove(req_id);
        }
        let user = req.user.clone().unwrap_or_default();
        let location = with_query(&req.redirect_uri, &[("code", &code), ("state", &req.state)]);
        if let Ok(mut c) = self.codes.lock() {
            c.insert(
                code,
                DexCode {
                    req,
                    user,
                    expires: now_secs() + 60,
                },
            );
        }
        see_other(&location)
    }

    /// Exchanges a Dex code for Dex-issued tokens (same checks as the realm).
    pub fn redeem_code(
        &self,
        code: &str,
        client_id: &str,
        redirect_uri: &str,
        verifier: Option<&String>,
    ) -> Result<Value, &'static str> {
        let grant = self
            .codes
            .lock()
            .ok()
            .and_then(|mut c| c.remove(code))
            .ok_or("Invalid or expired code parameter.")?;
        if grant.expires < now_secs() || grant.req.client_id != client_id {
            return Err("Invalid or expired code parameter.");
        }
        if grant.req.redirect_uri != redirect_uri {
            return Err("redirect_uri did not match URI from initial request.");
        }
        if !pkce_ok(&grant.req.challenge, verifier) {
            return Err("Invalid code_verifier.");
        }
        let sid = self.idp.signer.random_id();
        if let Ok(mut s) = self.sessions.lock() {
            s.insert(sid.clone(), grant.user.clone());
        }
        Ok(self.idp.tokens_from(
            &self.issuer(),
            &grant.user,
            client_id,
            &sid,
            grant.req.nonce.as_deref(),
        ))
    }
}

pub async fn discovery(State(dex): State<Option<Arc<Dex>>>) -> Response {
    let Some(d) = dex else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let iss = d.issuer();
    Json(json!({"issuer": iss, "authorization_endpoint": format!("{iss}/auth"), "token_endpoint": format!("{iss}/token"),
        "jwks_uri": format!("{iss}/keys"), "userinfo_endpoint": format!("{iss}/userinfo"),
        "response_types_supported": ["code"], "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"], "code_challenge_methods_supported": ["S256", "plain"],
        "scopes_supported": ["openid", "email", "groups", "profile", "offline_access"],
        "grant_types_supported": ["authorization_code", "refresh_token"]}))
    .into_response()
}

pub async fn keys(State(dex): State<Option<Arc<Dex>>>) -> Response {
    match dex {
        Some(d) => Json(d.idp.signer.jwks()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

pub async fn auth(
    State(dex): State<Option<Arc<Dex>>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(d) = dex else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let client_id = q.get("client_id").cloned().unwrap_or_default();
    if !d.idp.config.clients.contains(&client_id) {
        return html(
            StatusCode::BAD_REQUEST,
            page(
                "Bad Request",
                &format!("<p>Invalid client_id (\"{}\").</p>", esc(&client_id)),
            ),
        );
    }
    let Some(redirect_uri) = q.get("redirect_uri").cloned().filter(|r| !r.is_empty()) else {
        return html(
            StatusCode::BAD_REQUEST,
            page("Bad Request", "<p>No redirect_uri provided.</p>"),
        );
    };
    let req_id = d.idp.signer.random_id();
    let req = DexRequest {
        client_id,
        redirect_uri,
        state: q.get("state").cloned().unwrap_or_default(),
        nonce: q.get("nonce").cloned(),
        challenge: q.get("code_challenge").map(|ch| {
            (
                ch.clone(),
                q.get("code_challenge_method")
                    .cloned()
                    .unwrap_or_else(|| "plain".into()),
            )
        }),
        user: None,
    };
    if let Ok(mut m) = d.requests.lock() {
        m.insert(req_id.clone(), req);
    }
    let forced = q
        .get("connector_id")
        .filter(|id| d.config.connectors.contains(id));
    match (forced, d.config.connectors.as_slice()) {
        (Some(id), _) => found(&format!("/dex/auth/{id}?req={req_id}")),
        (None, [only]) => found(&format!("/dex/auth/{only}?req={req_id}")),
        (None, many) => {
            let links: String = many
                .iter()
                .map(|id| format!("<div class=\"theme-form-row\"><a href=\"/dex/auth/{id}?req={req_id}\" target=\"_self\"><button class=\"dex-btn theme-btn-provider\"><span class=\"dex-btn-icon dex-btn-icon--{kind}\"></span><span class=\"dex-btn-text\">Log in with {name}</span></button></a></div>\n",
                    kind = if id == "local" { "local" } else { "oidc" }, name = Dex::connector_name(id)))
                .collect();
            html(StatusCode::OK, page("Log in to dex", &links))
        }
    }
}

pub async fn connector(
    State(dex): State<Option<Arc<Dex>>>,
    Path(conn): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(d) = dex else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let req_id = q.get("req").cloned().unwrap_or_default();
    if !d.config.connectors.contains(&conn)
        || !d.requests.lock().is_ok_and(|m| m.contains_key(&req_id))
    {
        return html(
            StatusCode::BAD_REQUEST,
            page("Bad Request", "<p>Requested resource does not exist.</p>"),
        );
    }
    if conn == "local" {
        return found(&format!("/dex/auth/local/login?back=&state={req_id}"));
    }
    // The OIDC connector: Dex is a client of the realm and comes back to /dex/callback.
    let realm_auth = format!("{}/protocol/openid-connect/auth", d.idp.issuer());
    let callback = format!("{}/callback", d.issuer());
    found(&with_query(
        &realm_auth,
        &[
            ("client_id", REALM_CLIENT),
            ("redirect_uri", &callback),
            ("response_type", "code"),
            ("scope", "openid profile email groups"),
            ("state", &req_id),
        ],
    ))
}

pub async fn local_login_page(
    State(dex): State<Option<Arc<Dex>>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(d) = dex else {
        return StatusCode::NOT_FOUND.into_response();
    };
    html(
        StatusCode::OK,
        d.login_form(q.get("state").map(String::as_str).unwrap_or(""), "", false),
    )
}

pub async fn local_login(
    State(dex): State<Option<Arc<Dex>>>,
    Query(q): Query<HashMap<String, String>>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let Some(d) = dex else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let req_id = q.get("state").cloned().unwrap_or_default();
    let login = f.get("login").cloned().unwrap_or_default();
    let password = f.get("password").cloned().unwrap_or_default();
    match d.idp.password_ok(&login, &password) {
        Some(user) => d.finish(&req_id, &user),
        None => html(StatusCode::OK, d.login_form(&req_id, &login, true)),
    }
}

pub async fn callback(
    State(dex): State<Option<Arc<Dex>>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(d) = dex else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let req_id = q.get("state").cloned().unwrap_or_default();
    let code = q.get("code").cloned().unwrap_or_default();
    let callback = format!("{}/callback", d.issuer());
    let tokens = match d.idp.redeem_code(&code, REALM_CLIENT, &callback, None) {
        Ok(t) => t,
        Err(why) => {
            return html(
                StatusCode::INTERNAL_SERVER_ERROR,
                page(
                    "Internal Server Error",
                    &format!(
                        "<p>Failed to authenticate: oidc: failed to get token: {}</p>",
                        esc(why)
                    ),
                ),
            )
        }
    };
    match d
        .idp
        .verify_bearer(tokens["access_token"].as_str().unwrap_or(""))
    {
        Some(u) => d.finish(&req_id, &u.username),
        None => html(
            StatusCode::INTERNAL_SERVER_ERROR,
            page("Internal Server Error", "<p>Failed to verify ID token.</p>"),
        ),
    }
}

pub async fn approval_page(
    State(dex): State<Option<Arc<Dex>>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(d) = dex else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let req_id = q.get("req").cloned().unwrap_or_default();
    let Some(req) = d.requests.lock().ok().and_then(|m| m.get(&req_id).cloned()) else {
        return html(
            StatusCode::BAD_REQUEST,
            page("Bad Request", "<p>Invalid request.</p>"),
        );
    };
    html(StatusCode::OK, page("Grant Access", &format!(
        "<p><strong>{}</strong> would like to:</p><ul><li>View basic profile information</li></ul>\n\
<form method=\"post\"><input type=\"hidden\" name=\"req\" value=\"{id}\"/><input type=\"hidden\" name=\"approval\" value=\"approve\"><button type=\"submit\" class=\"dex-btn theme-btn--success\">Grant Access</button></form>\n\
<form method=\"post\"><input type=\"hidden\" name=\"req\" value=\"{id}\"/><input type=\"hidden\" name=\"approval\" value=\"rejected\"><button type=\"submit\" class=\"dex-btn theme-btn-provider\">Cancel</button></form>",
        esc(&req.client_id), id = esc(&req_id))))
}

pub async fn approval(
    State(dex): State<Option<Arc<Dex>>>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let Some(d) = dex else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let req_id = f.get("req").cloned().unwrap_or_default();
    let Some(req) = d
        .requests
        .lock()
        .ok()
        .and_then(|m| m.get(&req_id).cloned())
        .filter(|r| r.user.is_some())
    else {
        return html(
            StatusCode::BAD_REQUEST,
            page("Bad Request", "<p>Invalid request.</p>"),
        );
    };
    if f.get("approval").map(String::as_str) != Some("approve") {
        if let Ok(mut m) = d.requests.lock() {
            m.remove(&req_id);
        }
        return see_other(&with_query(
            &req.redirect_uri,
            &[("error", "access_denied"), ("state", &req.state)],
        ));
    }
    d.issue_code(&req_id, req)
}

pub async fn token(
    State(dex): State<Option<Arc<Dex>>>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let Some(d) = dex else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let client_id = f.get("client_id").cloned().unwrap_or_default();
    let err = crate::idp::oauth_error;
    match f.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let code = f.get("code").cloned().unwrap_or_default();
            let redirect_uri = f.get("redirect_uri").cloned().unwrap_or_default();
            match d.redeem_code(&code, &client_id, &redirect_uri, f.get("code_verifier")) {
                Ok(t) => Json(t).into_response(),
                Err(why) => err(StatusCode::BAD_REQUEST, "invalid_grant", why),
            }
        }
        Some("refresh_token") => {
            let claims = d
                .idp
                .signer
                .verify(f.get("refresh_token").map(String::as_str).unwrap_or(""));
            match claims {
                Ok(cl) if cl["typ"] == json!("Refresh") && cl["iss"] == json!(d.issuer()) => {
                    let sid = cl["sid"].as_str().unwrap_or("").to_string();
                    let user = d.sessions.lock().ok().and_then(|s| s.get(&sid).cloned());
                    match user {
                        Some(u) => Json(d.idp.tokens_from(&d.issuer(), &u, &client_id, &sid, None)).into_response(),
                        None => err(StatusCode::BAD_REQUEST, "invalid_request", "Refresh token is invalid or has already been claimed by another client."),
                    }
                }
                _ => err(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "Refresh token is invalid or has already been claimed by another client.",
                ),
            }
        }
        _ => err(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Unsupported grant type.",
        ),
    }
}
