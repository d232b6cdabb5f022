//! ES256 JSON Web Tokens for the identity provider: a P-256 key kept in the state dir (tokens
//! stay valid across restarts), signing, verification and the JWKS document.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};
use serde_json::{json, Value};

#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("signing key {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("signing key is not usable")]
    Key,
    #[error("token is malformed")]
    Malformed,
    #[error("token signature is invalid")]
    Signature,
    #[error("token has expired")]
    Expired,
}

pub struct Signer {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    pub kid: String,
}

pub fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Signer {
    pub fn load_or_create(dir: &Path) -> Result<Signer, JwtError> {
        let rng = SystemRandom::new();
        let path = dir.join("idp-signing-key.p8");
        let io = |source| JwtError::Io {
            path: path.display().to_string(),
            source,
        };
        let pkcs8 = if path.exists() {
            std::fs::read(&path).map_err(io)?
        } else {
            let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| JwtError::Key)?;
            std::fs::write(&path, doc.as_ref()).map_err(io)?;
            doc.as_ref().to_vec()
        };
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng)
            .map_err(|_| JwtError::Key)?;
        let digest = ring::digest::digest(&ring::digest::SHA256, key.public_key().as_ref());
        let kid = B64.encode(&digest.as_ref()[..12]);
        Ok(Signer { key, rng, kid })
    }

    pub fn sign(&self, claims: &Value) -> Result<String, JwtError> {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let sig = self
            .key
            .sign(&self.rng, input.as_bytes())
            .map_err(|_| JwtError::Key)?;
        Ok(format!("{input}.{}", B64.encode(sig.as_ref())))
    }

    /// The claims of a token this signer issued and that has not expired.
    pub fn verify(&self, token: &str) -> Result<Value, JwtError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let sig = B64.decode(s).map_err(|_| JwtError::Malformed)?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.key.public_key().as_ref())
            .verify(format!("{h}.{p}").as_bytes(), &sig)
            .map_err(|_| JwtError::Signature)?;
        let claims: Value =
            serde_json::from_slice(&B64.decode(p).map_err(|_| JwtError::Malformed)?)
                .map_err(|_| JwtError::Malformed)?;
        if claims["exp"].as_i64().is_none_or(|exp| exp <= now_secs()) {
            return Err(JwtError::Expired);
        }
        Ok(claims)
    }

    pub fn jwks(&self) -> Value {
        // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
        let public = self.key.public_key().as_ref();
        json!({"keys": [{"kid": self.kid, "kty": "EC", "alg": "ES256", "use": "sig", "crv": "P-256",
                         "x": B64.encode(&public[1..33]), "y": B64.encode(&public[33..65])}]})
    }

    /// A random URL-safe string (session ids, codes).
    pub fn random_id(&self) -> String {
        let mut bytes = [0u8; 18];
        let _ = ring::rand::SecureRandom::fill(&self.rng, &mut bytes);
        B64.encode(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_reject() {
        let dir = tempfile::tempdir().unwrap();
        let s = Signer::load_or_create(dir.path()).unwrap();
        let t = s
            .sign(&json!({"sub": "u", "exp": now_secs() + 60}))
            .unwrap();
        assert_eq!(s.verify(&t).unwrap()["sub"], "u");
        let mut tampered = t.clone();
        tampered.insert(t.find('.').unwrap() + 2, 'x');
        assert!(s.verify(&tampered).is_err());
        let old = s.sign(&json!({"sub": "u", "exp": now_secs() - 1})).unwrap();
        assert!(matches!(s.verify(&old), Err(JwtError::Expired)));
        // the key is kept: a second signer from the same dir verifies the first one's tokens
        assert!(Signer::load_or_create(dir.path())
            .unwrap()
            .verify(&t)
            .is_ok());
    }
}
