//! The two-stage browser-less login. Stage 1: from the Kubeflow URL follow the gateway's
//! redirects (oauth2-proxy / authservice -> Dex -> Keycloak, or Keycloak directly) to the login
//! form, post the credentials and follow the redirects back, collecting Kubeflow's session
//! cookies. Stage 2: an id_token for the Kubernetes API via authorization code + PKCE against
//! the realm, which reuses the identity provider's session from stage 1 (the password is posted
//! once) or shows the form when there was no gateway. Each hop is classified (`form::classify`)
//! and every failure names what happened, never the password.

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, CsrfToken, EndpointNotSet, EndpointSet, ExtraTokenFields,
    PkceCodeChallenge, RedirectUrl, RefreshToken, RequestTokenError, Scope, StandardRevocableToken,
    StandardTokenResponse, TokenResponse, TokenUrl,
};
use reqwest::header::LOCATION;
use serde::{Deserialize, Serialize};
use url::Url;
use zeroize::Zeroizing;

use super::endpoints::Endpoints;
use super::form::{self, Page};
use super::http;
use super::token::{self, TokenSet};
use crate::error::{AuthError, Error, Result};

/// A username and password for the identity provider; `Debug` never shows the password.
pub struct Credentials {
    /// The username.
    pub username: String,
    /// The password, wiped from memory when dropped.
    pub password: Zeroizing<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The OIDC fields Keycloak adds to an OAuth2 token response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OidcFields {
    #[serde(default)]
    pub id_token: Option<String>,
    #[serde(default)]
    pub refresh_expires_in: Option<u64>,
}

impl ExtraTokenFields for OidcFields {}

type TokenResp = StandardTokenResponse<OidcFields, BasicTokenType>;
type BaseClient = oauth2::Client<
    BasicErrorResponse,
    TokenResp,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
>;
type OidcClient = oauth2::Client<
    BasicErrorResponse,
    TokenResp,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

fn bad_endpoint(ep: &Endpoints, what: &str, e: impl std::fmt::Display) -> Error {
    Error::Auth(AuthError::LoginFailed {
        url: ep.url.clone(),
        problem: format!("the {what} is not a valid URL ({e})"),
        fix: "check KFLOW_AUTH_ISSUER / KFLOW_AUTH_REDIRECT_URI".into(),
    })
}

fn oidc_client(ep: &Endpoints) -> Result<OidcClient> {
    Ok(BaseClient::new(ClientId::new(ep.client_id.clone()))
        .set_auth_uri(
            AuthUrl::new(ep.authorize_url())
                .map_err(|e| bad_endpoint(ep, "authorization endpoint", e))?,
        )
        .set_token_uri(
            TokenUrl::new(ep.token_url()).map_err(|e| bad_endpoint(ep, "token endpoint", e))?,
        )
        .set_redirect_uri(
            RedirectUrl::new(ep.redirect_uri.clone())
                .map_err(|e| bad_endpoint(ep, "redirect URI", e))?,
        ))
}

fn unreachable(ep: &Endpoints, target: &Url, e: reqwest::Error) -> Error {
    let host = target.host_str().unwrap_or("?").to_string();
    Error::Auth(AuthError::LoginFailed {
        url: ep.url.clone(),
        problem: format!("cannot reach {}://{host}: {}", target.scheme(), http::describe(e)),
        fix: "check the URL, the network/VPN, and for a self-signed cluster set KFLOW_CA_FILE to its CA (or verifySSL=false)".into(),
    })
}

/// Where a walk through the identity provider's pages ended.
#[derive(Debug)]
enum Stop {
    /// A page that is not the identity provider's (the dashboard, an API answer, a 404).
    Landed {
        status: u16,
        title: String,
        submitted: bool,
        at: Url,
    },
    /// The redirect back to `redirect_uri` with its query parameters.
    Redirected { params: Vec<(String, String)> },
}

fn without_query(u: &Url) -> String {
    let mut u = u.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

fn scrub(text: &str, creds: &Credentials) -> String {
    if creds.password.is_empty() {
        text.to_string()
    } else {
        text.replace(creds.password.as_str(), "***")
    }
}

/// The login form came back after the credentials were posted: no redirect and the form still
/// there means they were refused; the page's message tells a disabled account apart.
fn rejected(ep: &Endpoints, creds: &Credentials, page_error: Option<&str>) -> Error {
    let msg = scrub(page_error.unwrap_or(""), creds);
    if msg.to_ascii_lowercase().contains("disabled") {
        return Error::Auth(AuthError::AccountDisabled {
            url: ep.url.clone(),
            username: creds.username.clone(),
            message: msg,
        });
    }
    let message = if msg.is_empty() {
        String::new()
    } else {
        format!(" (it said: {msg:?})")
    };
    Error::Auth(AuthError::WrongCredentials {
        url: ep.url.clone(),
        username: creds.username.clone(),
        message,
    })
}

/// Follows redirects by hand from `start`, posting the credentials once into a login form.
/// `seen` collects every URL visited (for learning the issuer).
async fn walk(
    ep: &Endpoints,
    client: &reqwest::Client,
    start: Url,
    creds: &Credentials,
    back_to: Option<&str>,
    seen: &mut Vec<Url>,
) -> Result<Stop> {
    let mut url = start;
    let mut req = client.get(url.clone());
    let mut submitted = false;
    for _ in 0..25 {
        seen.push(url.clone());
        let resp = req.send().await.map_err(|e| unreachable(ep, &url, e))?;
        let status = resp.status();
        if status.is_redirection() {
            let next = resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|loc| url.join(loc).ok())
                .ok_or_else(|| {
                    Error::Auth(AuthError::LoginFailed {
                        url: ep.url.clone(),
                        problem: format!(
                            "{} answered HTTP {status} without a usable Location",
                            without_query(&url)
                        ),
                        fix: "check the Kubeflow URL".into(),
                    })
                })?;
            if let Some(prefix) = back_to {
                if next.as_str().starts_with(prefix) {
                    return Ok(Stop::Redirected {
                        params: next
                            .query_pairs()
                            .map(|(k, v)| (k.into_owned(), v.into_owned()))
                            .collect(),
                    });
                }
            }
            if !ep.may_follow(&next) {
                return Err(Error::Auth(AuthError::LoginFailed {
                    url: ep.url.clone(),
                    problem: format!("the sign-in redirected to the cluster-internal address {}", without_query(&next)),
                    fix: "the gateway's public URL is misconfigured; set KFLOW_AUTH_ISSUER to the identity provider's public realm URL".into(),
                }));
            }
            url = next;
            req = client.get(url.clone());
            continue;
        }
        let body = resp.text().await.map_err(|e| unreachable(ep, &url, e))?;
        match form::classify(&body, &url) {
            Page::Login(f) => {
                if submitted {
                    return Err(rejected(ep, creds, f.error.as_deref()));
                }
                let mut fields: Vec<(String, String)> = f.extra.clone();
                fields.push((f.username_field.clone(), creds.username.clone()));
                fields.push((f.password_field.clone(), creds.password.to_string()));
                submitted = true;
                url = f.action.clone();
                req = client.post(f.action).form(&fields);
            }
            Page::Connectors(links) => {
                let target = pick_connector(ep, &links).ok_or_else(|| Error::Auth(AuthError::LoginFailed {
                    url: ep.url.clone(),
                    problem: format!("Dex offers no connector matching KFLOW_AUTH_CONNECTOR={:?} (it offers: {})", ep.connector.as_deref().unwrap_or(""),
                        links.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")),
                    fix: "set KFLOW_AUTH_CONNECTOR to one of the offered connectors".into(),
                }))?;
                url = target;
                req = client.get(url.clone());
            }
            Page::DexApproval { action, fields } => {
                url = action.clone();
                req = client.post(action).form(&fields);
            }
            Page::RequiredAction { action } => {
                return Err(Error::Auth(AuthError::LoginActionRequired {
                    url: ep.url.clone(),
                    username: creds.username.clone(),
                    action,
                }));
            }
            Page::ProviderError { message } => {
                let message = scrub(&message, creds);
                if message.to_ascii_lowercase().contains("disabled") {
                    return Err(Error::Auth(AuthError::AccountDisabled {
                        url: ep.url.clone(),
                        username: creds.username.clone(),
                        message,
                    }));
                }
                return Err(Error::Auth(AuthError::LoginFailed {
                    url: ep.url.clone(),
                    problem: format!("the identity provider answered HTTP {status}: {message:?} (at {})", without_query(&url)),
                    fix: format!(
                        "check the realm ({}) and the client id ({}) with your Kubeflow administrator; set KFLOW_KEYCLOAK_REALM / KFLOW_AUTH_CLIENT_ID / KFLOW_AUTH_REDIRECT_URI to match",
                        ep.realm, ep.client_id
                    ),
                }));
            }
            Page::Other { title } => {
                return Ok(Stop::Landed {
                    status: status.as_u16(),
                    title,
                    submitted,
                    at: url,
                })
            }
        }
    }
    Err(Error::Auth(AuthError::LoginFailed {
        url: ep.url.clone(),
        problem: "more than 25 redirects".into(),
        fix: "check the Kubeflow URL".into(),
    }))
}

/// The Dex connector to follow: the configured one (id or name), else the only one, else the
/// first that is not Dex's own password database (Keycloak behind Dex is the usual setup).
fn pick_connector(ep: &Endpoints, links: &[(String, Url)]) -> Option<Url> {
    let id = |u: &Url| u.path().rsplit('/').next().unwrap_or("").to_string();
    if let Some(want) = ep.connector.as_deref().map(str::to_ascii_lowercase) {
        return links
            .iter()
            .find(|(n, u)| {
                id(u).to_ascii_lowercase() == want || n.to_ascii_lowercase().ends_with(&want)
            })
            .map(|(_, u)| u.clone());
    }
    match links {
        [(_, only)] => Some(only.clone()),
        _ => links
            .iter()
            .find(|(_, u)| id(u) != "local")
            .or(links.first())
            .map(|(_, u)| u.clone()),
    }
}

/// Reads the issuer's OIDC discovery document for its endpoints (Keycloak and Dex both serve
/// one); without one, the Keycloak paths under the issuer stay.
pub async fn discover(ep: &mut Endpoints, client: &reqwest::Client) {
    #[derive(Deserialize)]
    struct Discovery {
        authorization_endpoint: String,
        token_endpoint: String,
        #[serde(default)]
        end_session_endpoint: Option<String>,
    }
    let Ok(resp) = client.get(ep.discovery_url()).send().await else {
        return;
    };
    if !resp.status().is_success() {
        return;
    }
    if let Ok(d) = resp.json::<Discovery>().await {
        ep.authorization_endpoint = Some(d.authorization_endpoint);
        ep.token_endpoint = Some(d.token_endpoint);
        ep.end_session_endpoint = d.end_session_endpoint;
    }
}

/// Stage 1. Returns whether a web session (gateway cookies) was established; learns the issuer
/// from the login page's address.
pub async fn web_login(
    ep: &mut Endpoints,
    client: &reqwest::Client,
    creds: &Credentials,
) -> Result<bool> {
    let bad_url = |e: url::ParseError| {
        Error::invalid(
            "Kubeflow URL",
            ep.url.clone(),
            e.to_string(),
            "pass an https:// address",
        )
    };
    let root = Url::parse(&format!("{}/", ep.url)).map_err(bad_url)?;
    let mut seen = Vec::new();
    let mut stop = walk(ep, client, root.clone(), creds, None, &mut seen).await?;
    // Kubeflow >= 1.9 answers some paths 401/403 instead of redirecting: ask oauth2-proxy.
    if let Stop::Landed {
        status: 401 | 403,
        submitted: false,
        ..
    } = stop
    {
        if let Ok(start) = root.join("oauth2/start?rd=%2F") {
            stop = walk(ep, client, start, creds, None, &mut seen).await?;
        }
    }
    for u in &seen {
        ep.learn_issuer(u);
    }
    Ok(matches!(stop, Stop::Landed { submitted: true, status, .. } if status < 400))
}

/// Stage 2: code + PKCE for the id_token the API server validates.
pub async fn token_login(
    ep: &Endpoints,
    client: &reqwest::Client,
    creds: &Credentials,
) -> Result<TokenSet> {
    let oidc = oidc_client(ep)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let nonce = CsrfToken::new_random();
    let (auth_url, state) = oidc
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("openid".into()))
        .add_extra_param("nonce", nonce.secret())
        .set_pkce_challenge(challenge)
        .url();
    let mut seen = Vec::new();
    let params = match walk(ep, client, auth_url, creds, Some(&ep.redirect_uri), &mut seen).await? {
        Stop::Redirected { params } => params,
        Stop::Landed { status, title, at, .. } => {
            return Err(Error::Auth(AuthError::LoginFailed {
                url: ep.url.clone(),
                problem: format!("the identity provider did not send back an authorization code (the sign-in ended at {} with HTTP {status} {title:?})", without_query(&at)),
                fix: format!(
                    "check that the realm issuer is {} (KFLOW_AUTH_ISSUER / KFLOW_KEYCLOAK_REALM) and that client {:?} allows the redirect URI {}",
                    ep.issuer, ep.client_id, ep.redirect_uri
                ),
            }))
        }
    };
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if let Some(err) = get("error") {
        return Err(Error::Auth(AuthError::LoginFailed {
            url: ep.url.clone(),
            problem: format!("the identity provider refused: {err} ({})", get("error_description").unwrap_or_default()),
            fix: format!("ask your administrator to allow client {:?} with redirect URI {} (standard flow, PKCE)", ep.client_id, ep.redirect_uri),
        }));
    }
    if get("state").as_deref() != Some(state.secret().as_str()) {
        return Err(Error::Auth(AuthError::LoginFailed {
            url: ep.url.clone(),
            problem: "the identity provider's answer carried the wrong state".into(),
            fix: "try again; if it repeats, report it".into(),
        }));
    }
    let code = get("code").ok_or_else(|| {
        Error::Auth(AuthError::LoginFailed {
            url: ep.url.clone(),
            problem: "the redirect back carried no authorization code".into(),
            fix: "check KFLOW_AUTH_REDIRECT_URI".into(),
        })
    })?;
    let resp = oidc
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(client)
        .await
        .map_err(|e| token_error(ep, "exchange the authorization code", e))?;
    TokenSet::from_response(ep, &resp, None)
}

fn token_error<RE: std::error::Error + 'static>(
    ep: &Endpoints,
    action: &str,
    e: RequestTokenError<RE, BasicErrorResponse>,
) -> Error {
    let problem = match e {
        RequestTokenError::ServerResponse(r) => {
            format!(
                "the token endpoint refused to {action}: {} {}",
                r.error(),
                r.error_description().map(String::as_str).unwrap_or("")
            )
        }
        RequestTokenError::Request(e) => {
            format!("cannot reach the token endpoint to {action}: {e}")
        }
        RequestTokenError::Parse(e, _) => {
            format!("the token endpoint's answer is not a token response: {e}")
        }
        RequestTokenError::Other(e) => e,
    };
    Error::Auth(AuthError::LoginFailed {
        url: ep.url.clone(),
        problem,
        fix: format!(
            "check the realm issuer {} and client id {:?}",
            ep.issuer, ep.client_id
        ),
    })
}

/// Why a refresh failed: the grant is gone (sign in again) or the network hiccuped (retry).
#[derive(Debug)]
pub enum RefreshFailure {
    Gone(String),
    Transient(String),
}

pub async fn refresh(
    ep: &Endpoints,
    client: &reqwest::Client,
    refresh_token: &str,
    previous: &TokenSet,
) -> Result<TokenSet, RefreshFailure> {
    let oidc = oidc_client(ep).map_err(|e| RefreshFailure::Gone(e.to_string()))?;
    let resp = oidc
        .exchange_refresh_token(&RefreshToken::new(refresh_token.to_string()))
        .request_async(client)
        .await
        .map_err(|e| match e {
            RequestTokenError::ServerResponse(r) => {
                let text = format!(
                    "{} {}",
                    r.error(),
                    r.error_description().map(String::as_str).unwrap_or("")
                );
                match r.error() {
                    oauth2::basic::BasicErrorResponseType::InvalidGrant
                    | oauth2::basic::BasicErrorResponseType::InvalidClient
                    | oauth2::basic::BasicErrorResponseType::UnauthorizedClient => {
                        RefreshFailure::Gone(text)
                    }
                    _ => RefreshFailure::Transient(text),
                }
            }
            other => RefreshFailure::Transient(other.to_string()),
        })?;
    TokenSet::from_response(ep, &resp, Some(previous))
        .map_err(|e| RefreshFailure::Gone(e.to_string()))
}

impl TokenSet {
    fn from_response(
        ep: &Endpoints,
        resp: &TokenResp,
        previous: Option<&TokenSet>,
    ) -> Result<TokenSet> {
        let now = token::now_secs();
        let id_token = match (&resp.extra_fields().id_token, previous) {
            (Some(t), _) => t.clone(),
            (None, Some(p)) => p.id_token.to_string(),
            (None, None) => {
                return Err(Error::Auth(AuthError::LoginFailed {
                    url: ep.url.clone(),
                    problem: "the token response has no id_token".into(),
                    fix: format!("client {:?} must be an OpenID Connect client that returns id_tokens for scope openid", ep.client_id),
                }))
            }
        };
        let expires_in = resp.expires_in().map(|d| d.as_secs()).unwrap_or(300);
        let expires_at = token::expiry(&id_token).unwrap_or(now + expires_in);
        Ok(TokenSet {
            id_token: Zeroizing::new(id_token),
            access_token: Zeroizing::new(resp.access_token().secret().clone()),
            refresh_token: resp
                .refresh_token()
                .map(|r| Zeroizing::new(r.secret().clone()))
                .or_else(|| previous.and_then(|p| p.refresh_token.clone())),
            expires_at,
            lifetime: expires_at.saturating_sub(now).max(1),
            refresh_expires_at: resp
                .extra_fields()
                .refresh_expires_in
                .filter(|s| *s > 0)
                .map(|s| now + s),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_login_is_wrong_credentials_or_disabled_and_never_echoes_the_password() {
        let ep = Endpoints::new("https://kf.example.com").unwrap();
        let creds = Credentials {
            username: "me".into(),
            password: Zeroizing::new("s3cret-Pa55".into()),
        };
        let e = rejected(
            &ep,
            &creds,
            Some("Account is disabled, contact your administrator."),
        );
        assert!(
            matches!(e, Error::Auth(AuthError::AccountDisabled { .. }))
                && e.to_string().contains("is disabled"),
            "{e}"
        );
        let e = rejected(&ep, &creds, Some("Invalid password s3cret-Pa55 for me"));
        assert!(matches!(e, Error::Auth(AuthError::WrongCredentials { .. })));
        assert!(
            !e.to_string().contains("s3cret-Pa55") && e.to_string().contains("***"),
            "{e}"
        );
        assert!(!format!("{creds:?}").contains("s3cret"));
        let e = rejected(&ep, &creds, None);
        assert!(
            e.to_string()
                .contains("rejected the username or password for \"me\". Fix"),
            "{e}"
        );
    }

    #[test]
    fn connector_choice() {
        let mut ep = Endpoints::new("https://kf.example.com").unwrap();
        let u =
            |p: &str| Url::parse(&format!("https://kf.example.com/dex/auth/{p}?req=1")).unwrap();
        let links = vec![
            ("Log in with Email".to_string(), u("local")),
            ("Log in with Keycloak".to_string(), u("keycloak")),
        ];
        assert_eq!(pick_connector(&ep, &links), Some(u("keycloak")));
        ep.connector = Some("local".into());
        assert_eq!(pick_connector(&ep, &links), Some(u("local")));
        ep.connector = Some("ldap".into());
        assert_eq!(pick_connector(&ep, &links), None);
    }
}
