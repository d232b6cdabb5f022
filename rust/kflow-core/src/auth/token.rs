//! Tokens: the set a sign-in or refresh yields, when to renew it, and what a JWT says about
//! itself. Claims are read, not verified: the API server verifies them.

use zeroize::Zeroizing;

/// Unix seconds now, the clock token expiries are in.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub use crate::jwt::{claims, expiry};

/// How long before expiry a token is renewed.
pub fn refresh_window(lifetime: u64) -> u64 {
    (lifetime / 2).min(300)
}

/// The tokens one sign-in or refresh yields; every token is wiped from memory when dropped.
#[derive(Clone)]
pub struct TokenSet {
    /// What the API server validates (`--oidc-client-id` audience).
    pub id_token: Zeroizing<String>,
    /// The OAuth access token.
    pub access_token: Zeroizing<String>,
    /// The refresh grant, when the identity provider gave one.
    pub refresh_token: Option<Zeroizing<String>>,
    /// Unix seconds when the id_token expires.
    pub expires_at: u64,
    /// Seconds the id_token was valid for when issued.
    pub lifetime: u64,
    /// Unix seconds when the refresh grant expires, when the identity provider says.
    pub refresh_expires_at: Option<u64>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("expires_at", &self.expires_at)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl TokenSet {
    pub(super) fn needs_refresh(&self, now: u64) -> bool {
        now + refresh_window(self.lifetime) >= self.expires_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_five_minutes_or_half_the_lifetime() {
        assert_eq!(refresh_window(300), 150);
        assert_eq!(refresh_window(3600), 300);
        assert_eq!(refresh_window(20), 10);
        let t = TokenSet {
            id_token: Zeroizing::new(String::new()),
            access_token: Zeroizing::new(String::new()),
            refresh_token: None,
            expires_at: 1000,
            lifetime: 20,
            refresh_expires_at: None,
        };
        assert!(!t.needs_refresh(989));
        assert!(t.needs_refresh(990));
        assert!(!format!("{t:?}").contains("id_token"));
    }
}
