//! Per-user upstream credentials asked for by URL elicitation (the seed gateway's
//! `--enable-url-elicitation` and server key `tokenURLElicitation`): the pure part. What a call to
//! such a server needs ([`decide`]), the -32042 error that sends the user to the page where they
//! give their credential, and the checks of what they give. The store is
//! [`super::user_tokens`]; the page is `broker::tokens_page`.

use serde_json::{json, Value};

/// JSON-RPC error code "URL elicitation required" (MCP 2025-11-25).
pub const URL_ELICITATION_REQUIRED: i64 = -32042;
/// Its message, as the seed sends it.
pub const URL_ELICITATION_MESSAGE: &str = "URL elicitation required";
/// What the user is told in the elicitation entry (the seed's words).
pub const ENTRY_MESSAGE: &str = "Authorization is required to access this service.";
/// Longest credential accepted (the seed's bound).
pub const MAX_TOKEN_LENGTH: usize = 2048;
/// How long an elicitation may wait for its form (the seed's two minutes).
pub const PENDING_TTL: std::time::Duration = std::time::Duration::from_secs(120);

/// Why a call to a per-user server cannot go on without the user giving a credential first.
pub const NO_SUBJECT: &str =
    "upstream server requires a per-user token but the caller has no verified subject (sub)";
pub const NO_CAPABILITY: &str =
    "upstream server requires a per-user token but client does not support elicitation";

/// What a call to a server with `tokenURLElicitation` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// Send the stored credential as the server's `Authorization`.
    Use(String),
    /// Answer -32042 with a new elicitation.
    Elicit,
    /// Answer with a tool error saying why (no subject, or a client that cannot elicit).
    Refuse(&'static str),
}

/// The decision, from what was gathered: the caller's subject, the credential stored for it (if
/// any) and whether the client declared the elicitation capability at initialize. Pure.
pub fn decide(subject: Option<&str>, stored: Option<String>, client_elicits: bool) -> Need {
    match (subject, stored) {
        (None, _) => Need::Refuse(NO_SUBJECT),
        (Some(_), Some(token)) => Need::Use(token),
        (Some(_), None) if client_elicits => Need::Elicit,
        (Some(_), None) => Need::Refuse(NO_CAPABILITY),
    }
}

/// Whether a client's declared capabilities (the JSON object kept in its gateway session)
/// include `elicitation` (any mode, as the seed checks).
pub fn client_elicits(capabilities: Option<&str>) -> bool {
    capabilities
        .and_then(|c| serde_json::from_str::<Value>(c).ok())
        .is_some_and(|v| v.get("elicitation").is_some())
}

/// Where the user goes: the server's configured page, else the gateway's `/tokens` on the public
/// host, with `elicitation_id`. `scheme` is the request's `x-forwarded-proto` (https when absent).
pub fn elicitation_url(
    configured: Option<&reqwest::Url>,
    scheme: Option<&str>,
    public_host: &str,
    id: &str,
) -> String {
    let mut url = match configured {
        Some(u) => u.clone(),
        None => {
            let scheme = match scheme {
                Some("http") => "http",
                _ => "https",
            };
            match reqwest::Url::parse(&format!("{scheme}://{public_host}/tokens")) {
                Ok(u) => u,
                Err(_) => return format!("/tokens?elicitation_id={id}"),
            }
        }
    };
    url.query_pairs_mut().append_pair("elicitation_id", id);
    url.to_string()
}

/// The `data` of the -32042 error.
pub fn required_data(id: &str, url: &str) -> Value {
    json!({"elicitations": [{
        "mode": "url",
        "elicitationId": id,
        "url": url,
        "message": ENTRY_MESSAGE,
    }]})
}

/// The `sub` claim of a bearer JWT, read without checking its signature: the seed's way to name
/// the caller when the gateway does not validate tokens itself (a policy after the router
/// does). Never trusted for storing a credential: the `/tokens` page checks a verified subject.
pub fn unverified_sub(authorization: Option<&str>) -> Option<String> {
    let claims = jwt_claims(super::oidc::bearer(authorization)?)?;
    claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn jwt_claims(token: &str) -> Option<Value> {
    use base64::Engine;
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Whether a stored credential is a JWT whose `exp` has passed (the seed then forgets it and asks
/// again). Anything else (an API key) never expires here.
pub fn expired(authorization: &str, now_secs: u64) -> bool {
    let token = super::oidc::bearer(Some(authorization)).unwrap_or(authorization);
    jwt_claims(token)
        .and_then(|c| c.get("exp").and_then(Value::as_f64))
        .is_some_and(|exp| exp < now_secs as f64)
}

/// What a user typed, checked: not empty, at most [`MAX_TOKEN_LENGTH`], no line breaks or control
/// characters (it becomes a header).
pub fn check_token(token: &str) -> Result<(), &'static str> {
    if token.trim().is_empty() {
        return Err("missing token");
    }
    if token.len() > MAX_TOKEN_LENGTH {
        return Err("token exceeds maximum length");
    }
    if token.chars().any(|c| c.is_control() && c != '\t') {
        return Err("token contains invalid characters");
    }
    Ok(())
}

/// The `Authorization` value for what a user typed: as typed when it names a scheme
/// (`Bearer …`, `Basic …`), else a bearer token.
pub fn as_authorization(token: &str) -> String {
    let t = token.trim();
    if t.contains(' ') {
        t.to_owned()
    } else {
        format!("Bearer {t}")
    }
}

/// The isError tool result a refused call gets (the seed answers so, with HTTP 200).
pub fn tool_error_result(message: &str) -> Value {
    json!({"content": [{"type": "text", "text": message}], "isError": true})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: Value) -> String {
        use base64::Engine;
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.sig",
            e.encode(br#"{"alg":"none"}"#),
            e.encode(claims.to_string())
        )
    }

    #[test]
    fn what_a_call_to_a_per_user_server_does() {
        // (subject, stored, client elicits) → need
        let cases = [
            (None, None, true, Need::Refuse(NO_SUBJECT)),
            (None, Some("Bearer t"), true, Need::Refuse(NO_SUBJECT)),
            (
                Some("u"),
                Some("Bearer t"),
                false,
                Need::Use("Bearer t".into()),
            ),
            (
                Some("u"),
                Some("Bearer t"),
                true,
                Need::Use("Bearer t".into()),
            ),
            (Some("u"), None, true, Need::Elicit),
            (Some("u"), None, false, Need::Refuse(NO_CAPABILITY)),
        ];
        for (sub, stored, elicits, want) in cases {
            assert_eq!(
                decide(sub, stored.map(str::to_owned), elicits),
                want,
                "{sub:?} {stored:?} {elicits}"
            );
        }
    }

    #[test]
    fn the_elicitation_capability_is_read_from_the_sessions_capabilities() {
        for (caps, want) in [
            (None, false),
            (Some("{}"), false),
            (Some(r#"{"sampling":{}}"#), false),
            (Some(r#"{"elicitation":{}}"#), true),
            (Some(r#"{"elicitation":{"url":{}}}"#), true),
            (Some("not json"), false),
        ] {
            assert_eq!(client_elicits(caps), want, "{caps:?}");
        }
    }

    #[test]
    fn the_url_is_the_servers_page_or_the_gateways() {
        let own = reqwest::Url::parse("https://vault.example/give?x=1").expect("url");
        for (configured, scheme, want) in [
            (
                None,
                None,
                "https://mcp.example.com/tokens?elicitation_id=a%2Bb",
            ),
            (
                None,
                Some("http"),
                "http://mcp.example.com/tokens?elicitation_id=a%2Bb",
            ),
            (
                None,
                Some("gopher"),
                "https://mcp.example.com/tokens?elicitation_id=a%2Bb",
            ),
            (
                Some(&own),
                None,
                "https://vault.example/give?x=1&elicitation_id=a%2Bb",
            ),
        ] {
            assert_eq!(
                elicitation_url(configured, scheme, "mcp.example.com", "a+b"),
                want
            );
        }
        let data = required_data("i", "u");
        assert_eq!(data["elicitations"][0]["mode"], "url");
        assert_eq!(data["elicitations"][0]["elicitationId"], "i");
    }

    #[test]
    fn subjects_expiry_and_typed_tokens() {
        let t = jwt(json!({"sub": "alice", "exp": 100}));
        assert_eq!(
            unverified_sub(Some(&format!("Bearer {t}"))).as_deref(),
            Some("alice")
        );
        assert_eq!(unverified_sub(Some("Bearer opaque")), None);
        assert_eq!(unverified_sub(None), None);
        assert_eq!(
            unverified_sub(Some(&format!("Bearer {}", jwt(json!({"sub": ""}))))),
            None
        );
        assert!(expired(&format!("Bearer {t}"), 101));
        assert!(!expired(&format!("Bearer {t}"), 99));
        assert!(!expired("Bearer api-key", 1_000_000));
        assert!(!expired(&jwt(json!({"sub": "x"})), 1_000_000));

        assert_eq!(as_authorization(" key123 "), "Bearer key123");
        assert_eq!(as_authorization("Basic abc"), "Basic abc");
        assert_eq!(check_token(""), Err("missing token"));
        assert_eq!(
            check_token("a\r\nX-Evil: 1"),
            Err("token contains invalid characters")
        );
        assert!(check_token(&"a".repeat(MAX_TOKEN_LENGTH + 1)).is_err());
        assert!(check_token("Bearer abc").is_ok());
        assert_eq!(tool_error_result("why")["isError"], true);
    }
}
