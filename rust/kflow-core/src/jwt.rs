//! What a JWT says about itself: its claims, read and not verified (the API server verifies
//! them). Sign-in reads a token's expiry; the in-cluster connection reads whose token it is.

use base64::Engine;

/// The payload of a JWT as JSON (None when it is not a JWT).
pub fn claims(jwt: &str) -> Option<serde_json::Value> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The `exp` claim of a JWT.
pub fn expiry(jwt: &str) -> Option<u64> {
    claims(jwt)?.get("exp")?.as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_reads_the_payload() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"exp":1234,"preferred_username":"u"}"#);
        assert_eq!(expiry(&format!("h.{payload}.s")), Some(1234));
        assert_eq!(expiry("garbage"), None);
    }
}
