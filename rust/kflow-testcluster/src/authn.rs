//! Authentication: which caller a request's bearer token names.

use axum::http::HeaderMap;

use crate::idp::TokenUser;
use crate::state::Cluster;

/// Who is calling: the static token is cluster-admin; realm users and pods' service accounts
/// act in their namespaces.
#[derive(Debug, Clone)]
pub enum Identity {
    Admin,
    User(TokenUser),
}

/// None for a missing, revoked or unknown token.
pub fn authenticate(c: &Cluster, headers: &HeaderMap) -> Option<Identity> {
    let h = headers.get("authorization").and_then(|v| v.to_str().ok())?;
    let token = h.strip_prefix("Bearer ")?.trim();
    if c.faults.is_revoked(token) {
        return None;
    }
    if token == c.admin_token {
        return Some(Identity::Admin);
    }
    if let Some(sa) = c.sa_tokens.verify(token) {
        return Some(Identity::User(sa));
    }
    c.idp
        .as_ref()
        .and_then(|i| i.verify_bearer(token))
        .map(Identity::User)
}
