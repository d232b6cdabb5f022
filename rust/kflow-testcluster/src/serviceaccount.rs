//! Service-account credentials for pods, as a real kubelet mounts them at
//! /var/run/secrets/kubernetes.io/serviceaccount (`token`, `ca.crt`, `namespace`), so in-cluster
//! clients (kubectl in an MPI launcher, the Python client's `load_incluster_config`) reach the
//! API server. A token names its namespace and account and is signed with an HMAC keyed by the
//! server's admin token, so it survives restarts without being stored; it authenticates as
//! `system:serviceaccount:<ns>:<name>`, which the RBAC rule lets act in `<ns>` only.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::hmac;

use crate::idp::TokenUser;

pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
const PREFIX: &str = "kflow-sa.";

pub struct TokenIssuer {
    key: hmac::Key,
}

impl TokenIssuer {
    pub fn new(secret: &str) -> TokenIssuer {
        TokenIssuer {
            key: hmac::Key::new(
                hmac::HMAC_SHA256,
                format!("serviceaccount:{secret}").as_bytes(),
            ),
        }
    }

    pub fn issue(&self, namespace: &str, account: &str) -> String {
        let subject = format!("{namespace}/{account}");
        let tag = hmac::sign(&self.key, subject.as_bytes());
        format!(
            "{PREFIX}{}.{}",
            B64.encode(&subject),
            B64.encode(tag.as_ref())
        )
    }

    /// The account a token was issued for, when it is one of ours.
    pub fn verify(&self, token: &str) -> Option<TokenUser> {
        let (subject, tag) = token.strip_prefix(PREFIX)?.split_once('.')?;
        let subject = B64.decode(subject).ok()?;
        hmac::verify(&self.key, &subject, &B64.decode(tag).ok()?).ok()?;
        let subject = String::from_utf8(subject).ok()?;
        let (ns, account) = subject.split_once('/')?;
        Some(TokenUser {
            username: format!("system:serviceaccount:{ns}:{account}"),
            namespaces: vec![ns.to_string()],
        })
    }
}

/// Whether the pod gets credentials: `automountServiceAccountToken` on the pod wins, then the
/// ServiceAccount's own setting, else yes.
pub fn automount(pod: &serde_json::Value, account: Option<&serde_json::Value>) -> bool {
    pod["spec"]["automountServiceAccountToken"]
        .as_bool()
        .or_else(|| account.and_then(|a| a["automountServiceAccountToken"].as_bool()))
        .unwrap_or(true)
}

/// The account a pod runs as (`default` when unset, as the admission plugin defaults it).
pub fn account_name(pod: &serde_json::Value) -> String {
    pod["spec"]["serviceAccountName"]
        .as_str()
        .or(pod["spec"]["serviceAccount"].as_str())
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
        .to_string()
}

/// Writes the three files under `dir` (the source of the read-only mount).
pub fn write_files(
    dir: &Path,
    token: &str,
    ca_pem: Option<&str>,
    namespace: &str,
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("token"), token)?;
    std::fs::write(dir.join("ca.crt"), ca_pem.unwrap_or(""))?;
    std::fs::write(dir.join("namespace"), namespace)?;
    Ok(dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_with_the_same_secret() {
        let issuer = TokenIssuer::new("s1");
        let t = issuer.issue("team-a", "default");
        let u = issuer.verify(&t).unwrap();
        assert_eq!(u.username, "system:serviceaccount:team-a:default");
        assert_eq!(u.namespaces, vec!["team-a".to_string()]);
        assert!(TokenIssuer::new("s2").verify(&t).is_none());
        let forged = t.replacen(
            &B64.encode("team-a/default"),
            &B64.encode("team-b/default"),
            1,
        );
        assert!(issuer.verify(&forged).is_none());
        assert!(issuer.verify("kflow-admin-token").is_none());
    }
}
