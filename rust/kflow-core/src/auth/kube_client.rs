//! A kube client whose every request carries the session's current id_token. kube's own
//! `AuthInfo { token }` is a static bearer layer that never refreshes, so the config built here
//! has no credentials at all; an outer tower layer asks the session for a token per request
//! (renewing it when it is inside the refresh window) and marks the header sensitive. Long
//! watches and log streams keep the token they were opened with; each new request gets the
//! current one, so they survive any number of refreshes.

use std::future::Future;
use std::pin::Pin;

use http::header::{HeaderValue, AUTHORIZATION};
use kube::client::{Body, ClientBuilder};
use tower::buffer::BufferLayer;
use tower::filter::{AsyncFilterLayer, AsyncPredicate};
use tower::BoxError;

use super::session::Session;
use crate::error::{ClusterError, Error, Result};

/// The API server's address and trust roots for a session, without credentials.
pub fn config(session: &Session, namespace: &str) -> Result<kube::Config> {
    let ep = session.endpoints();
    let bad = |problem: String| {
        Error::Cluster(ClusterError::Config {
        problem,
        fix: "set KFLOW_API_SERVER to the Kubernetes API server's https:// address and run `kflow login` again".into(),
    })
    };
    let url: http::Uri = ep.api_server.parse().map_err(|e| {
        bad(format!(
            "the API server address {:?} is invalid: {e}",
            ep.api_server
        ))
    })?;
    let mut config = kube::Config::new(url);
    config.default_namespace = namespace.to_string();
    if let Some(ca) = &ep.ca_file {
        let pem = std::fs::read(ca).map_err(Error::io("reading the CA file", ca))?;
        let ders = crate::pem::certificates(&String::from_utf8_lossy(&pem));
        if ders.is_empty() {
            return Err(bad(format!(
                "the CA file {} holds no PEM certificate",
                ca.display()
            )));
        }
        config.root_cert = Some(ders);
    }
    config.accept_invalid_certs = !ep.verify_tls;
    Ok(config)
}

/// Sets `Authorization: Bearer <current id_token>` on each request.
#[derive(Clone)]
pub struct SessionAuth(pub Session);

impl AsyncPredicate<http::Request<Body>> for SessionAuth {
    type Future = Pin<Box<dyn Future<Output = Result<http::Request<Body>, BoxError>> + Send>>;
    type Request = http::Request<Body>;

    fn check(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let session = self.0.clone();
        Box::pin(async move {
            let token = session.bearer_token_async().await?;
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.as_str()))?;
            value.set_sensitive(true);
            request.headers_mut().insert(AUTHORIZATION, value);
            Ok(request)
        })
    }
}

/// A kube client for `session` (call inside a tokio runtime: kube spawns its buffer there).
pub fn client(session: &Session, namespace: &str) -> Result<kube::Client> {
    let config = config(session, namespace)?;
    let server = config.cluster_url.to_string();
    let builder = ClientBuilder::try_from(config).map_err(|e| {
        Error::Cluster(ClusterError::Unreachable {
            server,
            problem: e.to_string(),
        })
    })?;
    Ok(builder
        .with_layer(&BufferLayer::new(1024))
        .with_layer(&AsyncFilterLayer::new(SessionAuth(session.clone())))
        .build())
}
