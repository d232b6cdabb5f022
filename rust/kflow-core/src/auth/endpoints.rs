//! Where sign-in goes: the endpoint adapter. Every address a deployment may move —
//! realm, client id, issuer, redirect URI, API server — has a default derived from the Kubeflow
//! URL and an override (`KFLOW_AUTH_*` variables or the stored profile). Nothing here is secret.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::{Error, Result};
use crate::spec::Context;

/// Every address sign-in uses for one Kubeflow deployment, with its defaults and overrides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    /// The Kubeflow URL the user typed (no trailing slash).
    pub url: String,
    /// The Keycloak realm (default `kubeflow`).
    pub realm: String,
    /// The OIDC client id kflow signs in as (default `kflow`).
    pub client_id: String,
    /// `…/realms/{realm}`; discovered from the login page when the Kubeflow URL redirects there.
    pub issuer: String,
    /// Whether `issuer` was set explicitly (then discovery from redirects does not replace it).
    #[serde(default)]
    pub issuer_fixed: bool,
    /// The OAuth redirect URI registered for the client.
    pub redirect_uri: String,
    /// The Kubernetes API server (default: the Kubeflow URL).
    pub api_server: String,
    /// A CA bundle to trust besides the system's (`KFLOW_CA_FILE`).
    pub ca_file: Option<PathBuf>,
    /// Whether TLS certificates are checked.
    pub verify_tls: bool,
    /// From the issuer's OIDC discovery document when it has one (Dex's paths differ from
    /// Keycloak's); else the Keycloak paths under `issuer`.
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    #[serde(default)]
    /// The token endpoint from the discovery document, when there is one.
    pub token_endpoint: Option<String>,
    #[serde(default)]
    /// The logout endpoint from the discovery document, when there is one.
    pub end_session_endpoint: Option<String>,
    /// Which Dex connector to pick on Dex's "Log in with …" page (id or name; default: the
    /// only one, else the first that is not Dex's local password database).
    #[serde(default)]
    pub connector: Option<String>,
}

fn clean(url: &str) -> Result<String> {
    let trimmed = url.trim().trim_end_matches('/');
    let parsed = Url::parse(trimmed).map_err(|e| {
        Error::invalid(
            "Kubeflow URL",
            trimmed,
            e.to_string(),
            "pass the address you open Kubeflow's dashboard at, e.g. https://kubeflow.example.com",
        )
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::invalid(
            "Kubeflow URL",
            trimmed,
            "only http and https are supported",
            "pass an https:// address",
        ));
    }
    Ok(trimmed.to_string())
}

impl Endpoints {
    /// Defaults for a Kubeflow URL: realm `kubeflow`, client `kflow`, Keycloak on the same host.
    pub fn new(url: &str) -> Result<Endpoints> {
        let url = clean(url)?;
        let realm = "kubeflow".to_string();
        Ok(Endpoints {
            issuer: format!("{url}/realms/{realm}"),
            issuer_fixed: false,
            api_server: url.clone(),
            url,
            realm,
            client_id: "kflow".into(),
            redirect_uri: "http://localhost:8000/callback".into(),
            ca_file: None,
            verify_tls: true,
            authorization_endpoint: None,
            token_endpoint: None,
            end_session_endpoint: None,
            connector: None,
        })
    }

    /// The defaults for `url` with the overrides of the context's settings and `KFLOW_AUTH_*`.
    pub fn from_context(ctx: &Context, url: &str) -> Result<Endpoints> {
        let mut ep = Endpoints::new(url)?;
        let settings = ctx.settings()?;
        let var = |k: &str| {
            ctx.env
                .get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        if let Some(realm) = settings
            .keycloak_realm
            .or_else(|| var("KFLOW_KEYCLOAK_REALM"))
        {
            ep.issuer = format!("{}/realms/{realm}", ep.url);
            ep.realm = realm;
        }
        if let Some(v) = settings.verify_ssl {
            ep.verify_tls = v;
        }
        if let Some(v) = var("KFLOW_AUTH_CLIENT_ID") {
            ep.client_id = v;
        }
        if let Some(v) = var("KFLOW_AUTH_ISSUER") {
            ep.issuer = clean(&v)?;
            ep.issuer_fixed = true;
        }
        if let Some(v) = var("KFLOW_AUTH_REDIRECT_URI") {
            ep.redirect_uri = v;
        }
        if let Some(v) = settings.api_server.or_else(|| var("KFLOW_API_SERVER")) {
            ep.api_server = clean(&v)?;
        }
        if let Some(v) = var("KFLOW_CA_FILE") {
            ep.ca_file = Some(PathBuf::from(v));
        }
        if let Some(v) = var("KFLOW_AUTH_CONNECTOR") {
            ep.connector = Some(v);
        }
        Ok(ep)
    }

    /// Uses `server` as the Kubernetes API server (checked like the Kubeflow URL).
    pub fn set_api_server(&mut self, server: &str) -> Result<()> {
        self.api_server = clean(server).map_err(|_| {
            Error::invalid(
                "API server",
                server,
                "not an http(s) URL",
                "pass the Kubernetes API server's address, e.g. https://api.example.com:6443",
            )
        })?;
        Ok(())
    }

    /// The OIDC authorization endpoint: discovered, else Keycloak's under the issuer.
    pub fn authorize_url(&self) -> String {
        self.authorization_endpoint
            .clone()
            .unwrap_or_else(|| format!("{}/protocol/openid-connect/auth", self.issuer))
    }

    /// The OIDC token endpoint: discovered, else Keycloak's under the issuer.
    pub fn token_url(&self) -> String {
        self.token_endpoint
            .clone()
            .unwrap_or_else(|| format!("{}/protocol/openid-connect/token", self.issuer))
    }

    /// The realm's logout endpoint (None: the issuer has none, e.g. Dex).
    pub fn logout_url(&self) -> Option<String> {
        match (&self.end_session_endpoint, &self.token_endpoint) {
            (Some(e), _) => Some(e.clone()),
            (None, Some(_)) => None,
            (None, None) => Some(format!("{}/protocol/openid-connect/logout", self.issuer)),
        }
    }

    /// The issuer's OIDC discovery document.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer)
    }

    /// Learns the issuer from a page of the realm (`…/realms/{realm}/…`) reached by following the
    /// Kubeflow URL's redirects, unless the issuer was set explicitly.
    pub fn learn_issuer(&mut self, page: &Url) {
        if self.issuer_fixed {
            return;
        }
        let marker = format!("/realms/{}/", self.realm);
        let full = page.as_str();
        if let Some(at) = full.find(&marker) {
            let issuer = &full[..at + marker.len() - 1];
            if let Ok(u) = Url::parse(issuer) {
                self.issuer = u.as_str().trim_end_matches('/').to_string();
            }
        }
    }

    /// Whether a redirect target is one kflow may follow: never cluster-internal service names
    /// (a misconfigured proxy leaking `*.svc.cluster.local` would otherwise hang the login).
    pub fn may_follow(&self, target: &Url) -> bool {
        let host = target.host_str().unwrap_or("");
        matches!(target.scheme(), "http" | "https")
            && !host.ends_with(".svc")
            && !host.ends_with(".cluster.local")
            && !host.ends_with(".svc.cluster.local")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_kubeflow_url() {
        let ep = Endpoints::new("https://kf.example.com/").unwrap();
        assert_eq!(ep.issuer, "https://kf.example.com/realms/kubeflow");
        assert_eq!(
            ep.token_url(),
            "https://kf.example.com/realms/kubeflow/protocol/openid-connect/token"
        );
        assert_eq!(ep.api_server, "https://kf.example.com");
        assert!(Endpoints::new("ftp://x").is_err());
        assert!(Endpoints::new("not a url").is_err());
    }

    #[test]
    fn issuer_is_learned_from_the_login_page_unless_fixed() {
        let mut ep = Endpoints::new("https://kf.example.com").unwrap();
        ep.learn_issuer(
            &Url::parse(
                "https://sso.example.com/auth/realms/kubeflow/protocol/openid-connect/auth?x=1",
            )
            .unwrap(),
        );
        assert_eq!(ep.issuer, "https://sso.example.com/auth/realms/kubeflow");
        ep.issuer_fixed = true;
        ep.learn_issuer(&Url::parse("https://other/realms/kubeflow/x").unwrap());
        assert_eq!(ep.issuer, "https://sso.example.com/auth/realms/kubeflow");
    }

    #[test]
    fn context_overrides() {
        let mut ctx = Context::from_process();
        let dir = tempfile::tempdir().unwrap();
        ctx.dirs.config = dir.path().to_path_buf();
        ctx.env.clear();
        ctx.env.insert("KFLOW_KEYCLOAK_REALM".into(), "corp".into());
        ctx.env.insert("KFLOW_AUTH_CLIENT_ID".into(), "kube".into());
        ctx.env.insert(
            "KFLOW_API_SERVER".into(),
            "https://api.example.com:6443".into(),
        );
        let ep = Endpoints::from_context(&ctx, "https://kf.example.com").unwrap();
        assert_eq!((ep.realm.as_str(), ep.client_id.as_str()), ("corp", "kube"));
        assert_eq!(ep.issuer, "https://kf.example.com/realms/corp");
        assert_eq!(ep.api_server, "https://api.example.com:6443");
        assert!(
            !ep.may_follow(&Url::parse("http://dex.auth.svc.cluster.local:5556/dex/auth").unwrap())
        );
    }
}
