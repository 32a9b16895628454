//! The authorization-code flow of the test identity provider, its pure parts: dynamic client
//! registration (RFC 7591) checks, the `/authorize` request checks (PKCE with S256 only, the
//! redirect URI exactly one the client registered), the login page, the redirect back, and the
//! single-use, short-lived codes redeemed at the token endpoint. The HTTP handlers in `idp.rs`
//! do the I/O around these.

use std::collections::HashMap;

use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// How long a code may wait before it is redeemed, and a login page before it is submitted.
pub const CODE_TTL_SECS: u64 = 60;
pub const LOGIN_TTL_SECS: u64 = 600;
/// Bounds on what a test provider keeps in memory.
pub const MAX_CLIENTS: usize = 1000;
pub const MAX_PENDING: usize = 1000;

/// A client registered at `/register`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub redirect_uris: Vec<String>,
    /// `None`: a public client (`token_endpoint_auth_method` `none`), which proves itself with
    /// PKCE only.
    pub secret: Option<String>,
}

/// A registration request, checked: the redirect URIs and whether the client wants a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub redirect_uris: Vec<String>,
    pub confidential: bool,
    pub auth_method: String,
}

/// Checks an RFC 7591 registration request. The error is the `error_description` of an
/// `invalid_redirect_uri` or `invalid_client_metadata` answer.
pub fn check_registration(body: &Value) -> Result<Registration, (&'static str, String)> {
    let bad_meta = |d: &str| ("invalid_client_metadata", d.to_owned());
    let Some(uris) = body.get("redirect_uris").and_then(Value::as_array) else {
        return Err(bad_meta("redirect_uris (an array of URLs) is required"));
    };
    if uris.is_empty() || uris.len() > 10 {
        return Err(bad_meta("redirect_uris: 1 to 10 URLs"));
    }
    let mut redirect_uris = Vec::new();
    for u in uris {
        let Some(s) = u.as_str() else {
            return Err(("invalid_redirect_uri", "redirect_uris: strings".into()));
        };
        check_redirect_uri(s).map_err(|e| ("invalid_redirect_uri", e))?;
        redirect_uris.push(s.to_owned());
    }
    let auth_method = body
        .get("token_endpoint_auth_method")
        .and_then(Value::as_str)
        .unwrap_or("client_secret_basic")
        .to_owned();
    let confidential = match auth_method.as_str() {
        "none" => false,
        "client_secret_basic" | "client_secret_post" => true,
        other => {
            return Err(bad_meta(&format!(
                "token_endpoint_auth_method {other} is not supported"
            )))
        }
    };
    if let Some(types) = body.get("response_types").and_then(Value::as_array) {
        if types.iter().any(|t| t.as_str() != Some("code")) {
            return Err(bad_meta("response_types: only code"));
        }
    }
    Ok(Registration {
        redirect_uris,
        confidential,
        auth_method,
    })
}

/// A redirect URI a client may register: absolute http(s), no fragment; plain http only to a
/// loopback host (RFC 8252).
pub fn check_redirect_uri(s: &str) -> Result<(), String> {
    let u = url::Url::parse(s).map_err(|e| format!("{s}: {e}"))?;
    if u.fragment().is_some() {
        return Err(format!("{s}: a fragment is not allowed"));
    }
    match u.scheme() {
        "https" => Ok(()),
        "http" => match u.host_str() {
            Some("127.0.0.1" | "localhost" | "[::1]") => Ok(()),
            _ => Err(format!("{s}: plain http only to a loopback address")),
        },
        other => Err(format!("{s}: scheme {other} is not allowed")),
    }
}

/// A checked `/authorize` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub state: Option<String>,
    pub scope: String,
}

/// Why an `/authorize` request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeError {
    /// The client or its redirect URI is not known: the provider shows the error itself and must
    /// not redirect (the redirect URI cannot be trusted).
    Show(String),
    /// Anything else: sent back to the (checked) redirect URI as `error=...`.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: &'static str,
        description: String,
    },
}

/// Checks the query of `/authorize` against the registered clients.
pub fn check_authorize(
    q: &HashMap<String, String>,
    clients: &HashMap<String, Client>,
) -> Result<AuthRequest, AuthorizeError> {
    let get = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
    let Some(client_id) = get("client_id") else {
        return Err(AuthorizeError::Show("client_id is missing".into()));
    };
    let Some(client) = clients.get(&client_id) else {
        return Err(AuthorizeError::Show(format!(
            "unknown client {client_id}: register it first (POST /register)"
        )));
    };
    // Without redirect_uri: the only one the client registered, if it registered one.
    let redirect_uri = match get("redirect_uri") {
        Some(r) if client.redirect_uris.contains(&r) => r,
        Some(r) => {
            return Err(AuthorizeError::Show(format!(
                "redirect_uri {r} is not registered for client {client_id}"
            )))
        }
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => return Err(AuthorizeError::Show("redirect_uri is missing".into())),
    };
    let state = get("state");
    let refuse = |error: &'static str, description: &str| AuthorizeError::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: state.clone(),
        error,
        description: description.to_owned(),
    };
    if get("response_type").as_deref() != Some("code") {
        return Err(refuse(
            "unsupported_response_type",
            "response_type must be code",
        ));
    }
    let Some(code_challenge) = get("code_challenge") else {
        return Err(refuse(
            "invalid_request",
            "code_challenge is required (PKCE)",
        ));
    };
    if get("code_challenge_method").as_deref() != Some("S256") {
        return Err(refuse(
            "invalid_request",
            "code_challenge_method must be S256",
        ));
    }
    if code_challenge.len() != 43 || !is_base64url(&code_challenge) {
        return Err(refuse(
            "invalid_request",
            "code_challenge: 43 base64url characters",
        ));
    }
    Ok(AuthRequest {
        client_id,
        redirect_uri: redirect_uri.clone(),
        code_challenge,
        state: state.clone(),
        scope: get("scope").unwrap_or_default(),
    })
}

fn is_base64url(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// RFC 7636 S256: the challenge is base64url(SHA-256(verifier)), the verifier 43 to 128
/// unreserved characters.
pub fn pkce_s256_matches(verifier: &str, challenge: &str) -> bool {
    let ok_chars = verifier
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if !(43..=128).contains(&verifier.len()) || !ok_chars {
        return false;
    }
    let digest = Sha256::digest(verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest) == challenge
}

/// `redirect_uri` with `params` added to its query.
pub fn redirect_to(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    match url::Url::parse(redirect_uri) {
        Ok(mut u) => {
            u.query_pairs_mut().extend_pairs(params);
            u.into()
        }
        Err(_) => redirect_uri.to_owned(),
    }
}

/// Where a refused `/authorize` request is sent back to.
pub fn error_redirect(e: &AuthorizeError) -> Option<String> {
    match e {
        AuthorizeError::Show(_) => None,
        AuthorizeError::Redirect {
            redirect_uri,
            state,
            error,
            description,
        } => {
            let mut p = vec![
                ("error", *error),
                ("error_description", description.as_str()),
            ];
            if let Some(s) = state {
                p.push(("state", s));
            }
            Some(redirect_to(redirect_uri, &p))
        }
    }
}

/// A code issued after a login, until it is redeemed or expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub request: AuthRequest,
    pub username: String,
    pub expires_at: u64,
}

/// Why a code is not accepted at the token endpoint (all `invalid_grant`).
pub fn redeem(
    grant: Option<Grant>,
    now: u64,
    client_id: &str,
    redirect_uri: Option<&str>,
    verifier: Option<&str>,
) -> Result<Grant, &'static str> {
    let g = grant.ok_or("unknown or already used code")?;
    if now >= g.expires_at {
        return Err("the code has expired");
    }
    if g.request.client_id != client_id {
        return Err("the code was issued to another client");
    }
    // RFC 6749 4.1.3: required when the authorization request had one (ours always has).
    if redirect_uri != Some(g.request.redirect_uri.as_str()) {
        return Err("redirect_uri does not match the authorization request");
    }
    let Some(v) = verifier else {
        return Err("code_verifier is required");
    };
    if !pkce_s256_matches(v, &g.request.code_challenge) {
        return Err("code_verifier does not match the code_challenge");
    }
    Ok(g)
}

/// Drops the expired entries of a map keyed by random ids (codes, login pages).
pub fn prune<T>(map: &mut HashMap<String, T>, now: u64, expires_at: impl Fn(&T) -> u64) {
    map.retain(|_, v| expires_at(v) > now);
}

/// HTML-escapes text for an element or a quoted attribute.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The login page of a pending authorization (`login` is its id), with an optional error.
pub fn login_page(issuer: &str, login: &str, client_id: &str, error: Option<&str>) -> String {
    let err = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Log in to {iss}</title>\
<style>body{{font-family:sans-serif;max-width:24em;margin:4em auto}}label{{display:block;margin:.6em 0}}\
input{{width:100%}}.error{{color:#b00}}</style></head><body>\
<h1>Log in</h1><p>Test identity provider {iss}, for client <code>{client}</code>.</p>{err}\
<form method=\"post\" action=\"/authorize\">\
<input type=\"hidden\" name=\"login\" value=\"{login}\">\
<label>Username <input name=\"username\" autocomplete=\"username\" required autofocus></label>\
<label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
<button type=\"submit\">Log in</button></form></body></html>\n",
        iss = escape(issuer),
        client = escape(client_id),
        login = escape(login),
    )
}

/// A page that says what is wrong (for errors that must not redirect).
pub fn error_page(message: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Authorization error</title></head>\
<body><h1>Authorization error</h1><p role=\"alert\">{}</p></body></html>\n",
        escape(message)
    )
}

/// A random id for codes, login pages and clients: 128 bits, base64url.
pub fn random_id() -> String {
    let bytes: [u8; 16] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    // RFC 7636 appendix B.
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn pkce_s256() {
        let long = "a".repeat(129);
        let short = "a".repeat(42);
        let cases: &[(&str, &str, bool)] = &[
            (VERIFIER, CHALLENGE, true),
            (
                VERIFIER,
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN",
                false,
            ),
            (
                "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXl",
                CHALLENGE,
                false,
            ),
            (&long, CHALLENGE, false),
            (&short, CHALLENGE, false),
            (
                "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjX!",
                CHALLENGE,
                false,
            ),
            ("", "", false),
        ];
        for (v, c, want) in cases {
            assert_eq!(pkce_s256_matches(v, c), *want, "{v} {c}");
        }
    }

    #[test]
    fn redirect_uris() {
        let cases = [
            ("http://127.0.0.1:6274/oauth/callback", true),
            ("http://localhost/cb", true),
            ("http://[::1]:8/cb", true),
            ("https://app.example.com/cb", true),
            ("http://app.example.com/cb", false),
            ("https://app.example.com/cb#frag", false),
            ("javascript:alert(1)", false),
            ("/relative", false),
        ];
        for (u, ok) in cases {
            assert_eq!(check_redirect_uri(u).is_ok(), ok, "{u}");
        }
    }

    #[test]
    fn registrations() {
        let cb = "http://127.0.0.1:1/cb";
        let cases = [
            (
                json!({"redirect_uris": [cb], "token_endpoint_auth_method": "none"}),
                Ok(false),
            ),
            (json!({"redirect_uris": [cb]}), Ok(true)),
            (
                json!({"redirect_uris": [cb], "token_endpoint_auth_method": "client_secret_post"}),
                Ok(true),
            ),
            (
                json!({"redirect_uris": [cb], "token_endpoint_auth_method": "private_key_jwt"}),
                Err("invalid_client_metadata"),
            ),
            (json!({"redirect_uris": []}), Err("invalid_client_metadata")),
            (json!({}), Err("invalid_client_metadata")),
            (
                json!({"redirect_uris": ["http://evil.example/cb"]}),
                Err("invalid_redirect_uri"),
            ),
            (json!({"redirect_uris": [1]}), Err("invalid_redirect_uri")),
            (
                json!({"redirect_uris": [cb], "response_types": ["token"]}),
                Err("invalid_client_metadata"),
            ),
        ];
        for (body, want) in cases {
            let got = check_registration(&body)
                .map(|r| r.confidential)
                .map_err(|e| e.0);
            assert_eq!(got, want, "{body}");
        }
    }

    fn clients() -> HashMap<String, Client> {
        let mut m = HashMap::new();
        m.insert(
            "c1".to_owned(),
            Client {
                redirect_uris: vec!["http://127.0.0.1:1/cb".into()],
                secret: None,
            },
        );
        m.insert(
            "c2".to_owned(),
            Client {
                redirect_uris: vec!["http://127.0.0.1:1/a".into(), "http://127.0.0.1:1/b".into()],
                secret: None,
            },
        );
        m
    }

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        let mut q: HashMap<String, String> = [
            ("client_id", "c1"),
            ("redirect_uri", "http://127.0.0.1:1/cb"),
            ("response_type", "code"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
            ("state", "st"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        for (k, v) in pairs {
            if v.is_empty() {
                q.remove(*k);
            } else {
                q.insert((*k).to_owned(), (*v).to_owned());
            }
        }
        q
    }

    /// `Ok(())`, `Show`, or the `error` of a redirect.
    fn outcome(q: &HashMap<String, String>) -> Result<(), &'static str> {
        match check_authorize(q, &clients()) {
            Ok(_) => Ok(()),
            Err(AuthorizeError::Show(_)) => Err("show"),
            Err(AuthorizeError::Redirect { error, .. }) => Err(error),
        }
    }

    #[test]
    fn authorize_requests() {
        type Case<'a> = (&'a [(&'a str, &'a str)], Result<(), &'a str>);
        let cases: &[Case] = &[
            (&[], Ok(())),
            (&[("state", "")], Ok(())),
            (&[("redirect_uri", "")], Ok(())), // the only one registered
            (&[("client_id", "")], Err("show")),
            (&[("client_id", "nobody")], Err("show")),
            (&[("redirect_uri", "http://127.0.0.1:1/other")], Err("show")),
            (&[("client_id", "c2"), ("redirect_uri", "")], Err("show")),
            (
                &[
                    ("client_id", "c2"),
                    ("redirect_uri", "http://127.0.0.1:1/b"),
                ],
                Ok(()),
            ),
            (
                &[("response_type", "token")],
                Err("unsupported_response_type"),
            ),
            (&[("code_challenge", "")], Err("invalid_request")),
            (
                &[("code_challenge_method", "plain")],
                Err("invalid_request"),
            ),
            (&[("code_challenge_method", "")], Err("invalid_request")),
            (&[("code_challenge", "short")], Err("invalid_request")),
        ];
        for (changes, want) in cases {
            assert_eq!(outcome(&query(changes)), *want, "{changes:?}");
        }
    }

    #[test]
    fn refusals_go_back_with_the_state() {
        let e =
            check_authorize(&query(&[("code_challenge_method", "plain")]), &clients()).unwrap_err();
        let to = error_redirect(&e).unwrap();
        let u = url::Url::parse(&to).unwrap();
        let q: HashMap<_, _> = u.query_pairs().into_owned().collect();
        assert_eq!(q["error"], "invalid_request");
        assert_eq!(q["state"], "st");
        assert!(to.starts_with("http://127.0.0.1:1/cb?"), "{to}");
        assert_eq!(error_redirect(&AuthorizeError::Show("x".into())), None);
    }

    #[test]
    fn redirects_keep_the_query_of_the_redirect_uri() {
        let cases = [
            (
                "http://127.0.0.1:1/cb",
                "http://127.0.0.1:1/cb?code=a+b%26&state=s",
            ),
            (
                "http://127.0.0.1:1/cb?x=1",
                "http://127.0.0.1:1/cb?x=1&code=a+b%26&state=s",
            ),
        ];
        for (base, want) in cases {
            assert_eq!(redirect_to(base, &[("code", "a b&"), ("state", "s")]), want);
        }
    }

    #[test]
    fn codes_are_redeemed_once_within_their_time_by_their_client() {
        let request = check_authorize(&query(&[]), &clients()).unwrap();
        let g = Grant {
            request,
            username: "alice".into(),
            expires_at: 100,
        };
        let cb = Some("http://127.0.0.1:1/cb");
        // grant, now, client, redirect_uri, verifier, accepted
        type Case<'a> = (
            Option<Grant>,
            u64,
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            bool,
        );
        let cases: &[Case] = &[
            (Some(g.clone()), 99, "c1", cb, Some(VERIFIER), true),
            (None, 99, "c1", cb, Some(VERIFIER), false),
            (Some(g.clone()), 100, "c1", cb, Some(VERIFIER), false),
            (Some(g.clone()), 99, "c2", cb, Some(VERIFIER), false),
            (
                Some(g.clone()),
                99,
                "c1",
                Some("http://127.0.0.1:1/x"),
                Some(VERIFIER),
                false,
            ),
            (Some(g.clone()), 99, "c1", None, Some(VERIFIER), false),
            (Some(g.clone()), 99, "c1", cb, None, false),
            (Some(g.clone()), 99, "c1", cb, Some(&"b".repeat(43)), false),
        ];
        for (i, (grant, now, client, redirect, verifier, ok)) in cases.iter().enumerate() {
            let r = redeem(grant.clone(), *now, client, *redirect, *verifier);
            assert_eq!(r.is_ok(), *ok, "case {i}: {r:?}");
        }
    }

    #[test]
    fn expired_entries_are_pruned() {
        let mut m: HashMap<String, u64> = [("a".into(), 5), ("b".into(), 10)].into();
        prune(&mut m, 5, |v| *v);
        assert_eq!(m.keys().collect::<Vec<_>>(), ["b"]);
    }

    #[test]
    fn the_login_page_escapes_what_it_shows() {
        let p = login_page("http://i", "id\"><script>", "<c>", Some("bad & wrong"));
        assert!(p.contains("value=\"id&quot;&gt;&lt;script&gt;\""), "{p}");
        assert!(p.contains("<code>&lt;c&gt;</code>"), "{p}");
        assert!(p.contains("bad &amp; wrong"), "{p}");
        assert!(!p.contains("<script>"));
        assert!(!login_page("http://i", "x", "c", None).contains("alert"));
    }

    #[test]
    fn random_ids_differ() {
        let a = random_id();
        assert_eq!(a.len(), 22);
        assert_ne!(a, random_id());
    }
}
