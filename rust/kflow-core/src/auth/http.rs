//! The HTTP client sign-in uses: rustls on ring (one crypto provider in the build), redirects
//! never followed automatically (each hop is classified and checked), cookies in a jar kflow can
//! serialise into the keyring.

use std::sync::Arc;
use std::time::Duration;

use reqwest_cookie_store::{CookieStore, CookieStoreMutex};

use super::endpoints::Endpoints;
use crate::error::{AuthError, Error, Result};

pub type Jar = Arc<CookieStoreMutex>;

pub fn new_jar() -> Jar {
    Arc::new(CookieStoreMutex::new(CookieStore::default()))
}

/// The jar as bytes for the keyring, session cookies included (`save` would drop them).
pub fn jar_to_json(jar: &Jar) -> String {
    let mut out = Vec::new();
    if let Ok(store) = jar.lock() {
        let _ = cookie_store::serde::json::save_incl_expired_and_nonpersistent(&store, &mut out);
    }
    String::from_utf8(out).unwrap_or_default()
}

pub fn jar_from_json(json: &str) -> Jar {
    let store = cookie_store::serde::json::load_all(json.as_bytes()).unwrap_or_default();
    Arc::new(CookieStoreMutex::new(store))
}

pub fn client(ep: &Endpoints, jar: Jar) -> Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_provider(jar)
        .connect_timeout(Duration::from_secs(15))
        .timeout(Duration::from_secs(60))
        .user_agent(concat!("kflow/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &ep.ca_file {
        let pem = std::fs::read(path).map_err(Error::io("reading the CA file", path))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            Error::Auth(AuthError::LoginFailed {
                url: ep.url.clone(),
                problem: format!("the CA file {} is not PEM: {e}", path.display()),
                fix: "point KFLOW_CA_FILE at the cluster's CA certificate (PEM)".into(),
            })
        })?;
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    if !ep.verify_tls {
        b = b.danger_accept_invalid_certs(true);
    }
    b.build().map_err(|e| {
        Error::Auth(AuthError::LoginFailed {
            url: ep.url.clone(),
            problem: format!("cannot set up HTTPS: {e}"),
            fix: "report this as a bug".into(),
        })
    })
}

/// A request error as a sentence without the URL (codes and states live in its query).
pub fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}
