//! Reading identity-provider pages with a real HTML parser (scraper/html5ever): what page is
//! this, and if it is a login form, where does it post and which fields does it have. Nothing
//! assumes field order or fixed URLs: the form is found by id (`kc-form-login`) or by its
//! password field, the action is resolved against the page URL.

use scraper::{ElementRef, Html, Selector};
use url::Url;

/// What an identity-provider page is, as far as a browser-less client cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// A username + password form (Keycloak `kc-form-login`, Dex's local login, …).
    Login(LoginForm),
    /// Dex's "grant access" page: approved by posting `approval=approve`.
    DexApproval {
        action: Url,
        fields: Vec<(String, String)>,
    },
    /// Dex's connector choice ("Log in with …" links): (link text, target).
    Connectors(Vec<(String, Url)>),
    /// A page asking for something kflow never fills in (OTP, new password, terms, …).
    RequiredAction { action: String },
    /// The identity provider's error page.
    ProviderError { message: String },
    /// Anything else (a dashboard, an unknown theme): the title, for the error message.
    Other { title: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginForm {
    pub action: Url,
    pub username_field: String,
    pub password_field: String,
    /// Hidden inputs and the submit button's name, posted back as they are.
    pub extra: Vec<(String, String)>,
    /// The error the page shows ("Invalid username or password."), when it shows one.
    pub error: Option<String>,
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).expect("static selector")
}

fn text(e: ElementRef<'_>) -> String {
    e.text()
        .collect::<Vec<_>>()
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Keycloak's required-action and secondary pages, by form id, with what to tell the user.
const ACTION_FORMS: [(&str, &str); 8] = [
    ("kc-otp-login-form", "a one-time code (OTP)"),
    (
        "kc-totp-settings-form",
        "setting up an authenticator app (OTP)",
    ),
    ("kc-passwd-update-form", "a new password (update-password)"),
    ("kc-update-profile-form", "updating the account profile"),
    ("kc-update-email-form", "updating the e-mail address"),
    ("kc-register-form", "registration"),
    ("kc-terms-text", "accepting the terms and conditions"),
    ("kc-oauth", "granting consent to the client"),
];

/// The error text a login page shows, across Keycloak themes and Dex.
fn page_error(doc: &Html) -> Option<String> {
    for s in [
        "#input-error",
        "#input-error-username",
        "#login-error",
        ".alert-error .kc-feedback-text",
        ".alert-error",
        ".kc-feedback-text",
        ".pf-c-alert__title",
    ] {
        if let Some(t) = doc.select(&sel(s)).map(text).find(|t| !t.is_empty()) {
            return Some(t);
        }
    }
    None
}

fn form_action(form: ElementRef<'_>, base: &Url) -> Option<Url> {
    let action = form.value().attr("action").unwrap_or("");
    base.join(action).ok()
}

fn read_login_form(form: ElementRef<'_>, base: &Url, doc: &Html) -> Option<LoginForm> {
    let inputs: Vec<ElementRef<'_>> = form.select(&sel("input")).collect();
    let kind = |e: &ElementRef<'_>| {
        e.value()
            .attr("type")
            .unwrap_or("text")
            .to_ascii_lowercase()
    };
    let name = |e: &ElementRef<'_>| e.value().attr("name").unwrap_or("").to_string();
    let passwords: Vec<&ElementRef<'_>> = inputs
        .iter()
        .filter(|e| kind(e) == "password" && !name(e).is_empty())
        .collect();
    if passwords.len() != 1 {
        return None;
    }
    let password_field = name(passwords[0]);
    let text_inputs: Vec<&ElementRef<'_>> = inputs
        .iter()
        .filter(|e| matches!(kind(e).as_str(), "text" | "email") && !name(e).is_empty())
        .collect();
    let username_field = text_inputs
        .iter()
        .find(|e| matches!(name(e).as_str(), "username" | "login" | "email" | "user"))
        .or_else(|| text_inputs.first())
        .map(|e| name(e))?;
    let mut extra: Vec<(String, String)> = inputs
        .iter()
        .filter(|e| kind(e) == "hidden" && !name(e).is_empty())
        .map(|e| (name(e), e.value().attr("value").unwrap_or("").to_string()))
        .collect();
    let submit = form
        .select(&sel(
            "input[type=submit], button[type=submit], button:not([type])",
        ))
        .find(|e| e.value().attr("name").is_some_and(|n| !n.is_empty()));
    if let Some(b) = submit {
        extra.push((
            b.value().attr("name").unwrap_or("").to_string(),
            b.value().attr("value").unwrap_or("").to_string(),
        ));
    }
    Some(LoginForm {
        action: form_action(form, base)?,
        username_field,
        password_field,
        extra,
        error: page_error(doc),
    })
}

/// Classifies an HTML page fetched from `base`.
pub fn classify(html: &str, base: &Url) -> Page {
    let doc = Html::parse_document(html);
    for (id, what) in ACTION_FORMS {
        if doc.select(&sel(&format!("#{id}"))).next().is_some() {
            return Page::RequiredAction {
                action: what.to_string(),
            };
        }
    }
    if let Some(form) = doc.select(&sel("form#kc-form-login")).next() {
        if let Some(login) = read_login_form(form, base, &doc) {
            return Page::Login(login);
        }
    }
    for form in doc.select(&sel("form")) {
        if let Some(login) = read_login_form(form, base, &doc) {
            return Page::Login(login);
        }
    }
    let approval_forms: Vec<ElementRef<'_>> = doc
        .select(&sel("form"))
        .filter(|f| f.select(&sel("[name=approval]")).next().is_some())
        .collect();
    let approve = approval_forms
        .iter()
        .find(|f| {
            f.select(&sel("[name=approval][value=approve]"))
                .next()
                .is_some()
        })
        .or_else(|| approval_forms.first());
    if let Some(form) = approve {
        if let Some(action) = form_action(*form, base) {
            let fields = form
                .select(&sel("input[type=hidden]"))
                .filter_map(|e| {
                    Some((
                        e.value().attr("name")?.to_string(),
                        e.value().attr("value").unwrap_or("").to_string(),
                    ))
                })
                .filter(|(n, _)| n != "approval")
                .chain([("approval".to_string(), "approve".to_string())])
                .collect();
            return Page::DexApproval { action, fields };
        }
    }
    let connectors: Vec<(String, Url)> = doc
        .select(&sel("a[href]"))
        .filter(|a| {
            a.value().attr("href").is_some_and(|h| h.contains("/auth/"))
                && text(*a).starts_with("Log in with")
        })
        .filter_map(|a| Some((text(a), base.join(a.value().attr("href")?).ok()?)))
        .collect();
    if !connectors.is_empty() {
        return Page::Connectors(connectors);
    }
    if let Some(e) = doc.select(&sel("#kc-error-message")).next() {
        return Page::ProviderError { message: text(e) };
    }
    // Keycloak's v2 theme names every page: `login-<template>`; any login-* page left here is a
    // step kflow does not know (webauthn, verify-email, …).
    if let Some(id) = doc
        .select(&sel("body[data-page-id]"))
        .next()
        .and_then(|b| b.value().attr("data-page-id"))
    {
        if let Some(template) = id.strip_prefix("login-") {
            if template != "login" {
                return Page::RequiredAction {
                    action: format!("the step {template:?}"),
                };
            }
        }
    }
    let title = doc
        .select(&sel("title"))
        .next()
        .map(text)
        .unwrap_or_default();
    Page::Other { title }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse(
            "https://kc.example.com/realms/kubeflow/protocol/openid-connect/auth?client_id=kflow",
        )
        .unwrap()
    }

    #[test]
    fn keycloak_form_with_fields_in_any_order() {
        let html = r#"<html><body data-page-id="login-login"><div class="alert-error"><span class="kc-feedback-text">Invalid username or password.</span></div>
        <form id="kc-form-login" action="/realms/kubeflow/login-actions/authenticate?session_code=a&amp;execution=b&amp;client_id=kflow&amp;tab_id=t" method="post">
        <input type="hidden" id="id-hidden-input" name="credentialId" value=""/>
        <input type="password" name="password"/>
        <input type="text" name="username" value="me"/>
        <input type="checkbox" name="rememberMe"/>
        <input type="submit" name="login" value="Sign In"/></form></body></html>"#;
        let Page::Login(f) = classify(html, &base()) else {
            panic!("not a login page")
        };
        assert_eq!(f.action.as_str(), "https://kc.example.com/realms/kubeflow/login-actions/authenticate?session_code=a&execution=b&client_id=kflow&tab_id=t");
        assert_eq!(
            (f.username_field.as_str(), f.password_field.as_str()),
            ("username", "password")
        );
        assert_eq!(
            f.extra,
            vec![
                ("credentialId".to_string(), String::new()),
                ("login".to_string(), "Sign In".to_string())
            ]
        );
        assert_eq!(f.error.as_deref(), Some("Invalid username or password."));
    }

    #[test]
    fn dex_local_login_and_approval() {
        let html = r#"<form method="post" action="/dex/auth/local/login?back=&amp;state=xyz"><input type="text" id="login" name="login"/>
            <input type="password" name="password"/><button type="submit" id="submit-login">Login</button></form>"#;
        let Page::Login(f) = classify(
            html,
            &Url::parse("https://kf.example.com/dex/auth/local/login?state=xyz").unwrap(),
        ) else {
            panic!()
        };
        assert_eq!(f.username_field, "login");
        assert_eq!(
            f.action.as_str(),
            "https://kf.example.com/dex/auth/local/login?back=&state=xyz"
        );
        assert!(f.error.is_none());
        let approval = r#"<form method="post"><input type="hidden" name="req" value="r1"/><button type="submit" name="approval" value="approve">Grant</button></form>
            <form method="post"><input type="hidden" name="req" value="r1"/><input type="hidden" name="approval" value="rejected"><button>Cancel</button></form>"#;
        let Page::DexApproval { fields, .. } = classify(
            approval,
            &Url::parse("https://kf.example.com/dex/approval?req=r1").unwrap(),
        ) else {
            panic!()
        };
        assert_eq!(
            fields,
            vec![
                ("req".into(), "r1".into()),
                ("approval".into(), "approve".into())
            ]
        );
        let dex2 = r#"<form method="post"><input type="hidden" name="req" value="r2"/><input type="hidden" name="approval" value="approve"><button type="submit">Grant Access</button></form>
            <form method="post"><input type="hidden" name="req" value="r2"/><input type="hidden" name="approval" value="rejected"><button type="submit">Cancel</button></form>"#;
        let Page::DexApproval { fields, .. } = classify(
            dex2,
            &Url::parse("https://kf.example.com/dex/approval?req=r2").unwrap(),
        ) else {
            panic!()
        };
        assert_eq!(
            fields,
            vec![
                ("req".into(), "r2".into()),
                ("approval".into(), "approve".into())
            ]
        );
        let choice = r#"<div><a href="/dex/auth/local?req=q"><button><span>Log in with Email</span></button></a></div>
            <div><a href="/dex/auth/keycloak?req=q"><button><span>Log in with Keycloak</span></button></a></div>"#;
        let Page::Connectors(links) = classify(
            choice,
            &Url::parse("https://kf.example.com/dex/auth?client_id=x").unwrap(),
        ) else {
            panic!()
        };
        assert_eq!(links.len(), 2);
        assert_eq!(links[1].0, "Log in with Keycloak");
        assert_eq!(
            links[1].1.as_str(),
            "https://kf.example.com/dex/auth/keycloak?req=q"
        );
    }

    #[test]
    fn required_actions_and_errors() {
        let otp = r#"<form id="kc-otp-login-form" action="x"><input name="otp"/></form>"#;
        assert_eq!(
            classify(otp, &base()),
            Page::RequiredAction {
                action: "a one-time code (OTP)".into()
            }
        );
        let upd = r#"<form id="kc-passwd-update-form" action="x"><input type="password" name="password-new"/><input type="password" name="password-confirm"/></form>"#;
        assert!(
            matches!(classify(upd, &base()), Page::RequiredAction { action } if action.contains("update-password"))
        );
        let webauthn = r#"<html><body data-page-id="login-webauthn-authenticate"><p>use your key</p></body></html>"#;
        assert!(
            matches!(classify(webauthn, &base()), Page::RequiredAction { action } if action.contains("webauthn"))
        );
        let err =
            r#"<div id="kc-error-message"><p class="instruction">Client not found.</p></div>"#;
        assert_eq!(
            classify(err, &base()),
            Page::ProviderError {
                message: "Client not found.".into()
            }
        );
        let other =
            "<html><head><title>Kubeflow Central Dashboard</title></head><body>hi</body></html>";
        assert_eq!(
            classify(other, &base()),
            Page::Other {
                title: "Kubeflow Central Dashboard".into()
            }
        );
    }
}
