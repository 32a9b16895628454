//! The `/tokens` page of URL elicitation (with `--enable-url-elicitation`): where a user gives
//! their own credential for a server with `tokenURLElicitation`, and `DELETE /tokens/<server>`,
//! where they take it back.
//!
//! - `GET /tokens?elicitation_id=…`: a form for a pending elicitation, with a CSRF token in a
//!   `SameSite=Strict`, `HttpOnly` cookie scoped to `/tokens` and in the form (double submit).
//! - `POST /tokens` (form: `elicitation_id`, `token`, `csrf_token`): the cookie and field must
//!   match; the caller's verified subject must be the one the elicitation was made for; the
//!   elicitation is then claimed (once) and the credential stored, encrypted, until the gateway
//!   session ends.
//! - `DELETE /tokens/<server>`: forgets every credential the verified caller gave for that server.
//!
//! The verified subject: with native auth, the validated bearer token's (its binding to issuer
//! and subject); without, the `sub` of a validly signed `x-mcp-authorized` header. Neither: 403.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::Broker;
use crate::auth::elicitation;
use crate::mcp::header;

const CSRF_COOKIE: &str = "csrf";
/// Largest form accepted (the seed's bound).
pub(super) const MAX_FORM: usize = 4096;

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The caller's verified subject, as the router names it (see module docs); `Ok(None)` when
/// there is none, `Err` when the bearer token was refused.
async fn verified_subject(b: &Broker, headers: &HeaderMap) -> Result<Option<String>, Response> {
    let config = b.config.borrow().clone();
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if config.auth.is_some() {
        return match b
            .gatekeeper
            .authenticate(
                config.auth.as_ref(),
                h(header::AUTHORIZATION),
                crate::deadline::Deadline::NONE,
            )
            .await
        {
            Ok(c) => Ok(c.identity.map(|id| id.binding.to_string())),
            Err(e) => Err(error(
                StatusCode::UNAUTHORIZED,
                &format!("Unauthorized: {e}"),
            )),
        };
    }
    Ok(match (&b.gatekeeper.trusted, h(header::X_MCP_AUTHORIZED)) {
        (Some(t), Some(v)) => t.subject(v),
        _ => None,
    })
}

// The error is the reply itself, built once on a cold path.
#[allow(clippy::result_large_err)]
fn store(b: &Broker) -> Result<&Arc<crate::auth::user_tokens::UserTokens>, Response> {
    b.user_tokens
        .as_ref()
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "URL elicitation is not enabled"))
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(serde::Deserialize)]
pub(super) struct FormQuery {
    elicitation_id: Option<String>,
}

/// `GET /tokens?elicitation_id=…`
pub(super) async fn form(
    State(b): State<Arc<Broker>>,
    headers: HeaderMap,
    Query(q): Query<FormQuery>,
) -> Response {
    let store = match store(&b) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(id) = q.elicitation_id.filter(|i| !i.is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "missing elicitation_id parameter");
    };
    let pending = match store.peek(&id).await {
        Ok(Some(p)) => p,
        Ok(None) => return error(StatusCode::BAD_REQUEST, "invalid or expired elicitation_id"),
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let csrf = hex::encode(rand::random::<[u8; 32]>());
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes() == b"https");
    let set_cookie = format!(
        "{CSRF_COOKIE}={csrf}; Path=/tokens; Max-Age=120; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    );
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>MCP Gateway - Token Required</title></head>\
         <body><h1>Token Required</h1><p>The MCP server <strong>{server}</strong> requires a token to proceed.</p>\
         <form method=\"POST\" action=\"/tokens\">\
         <input type=\"hidden\" name=\"elicitation_id\" value=\"{id}\">\
         <input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\
         <label for=\"token\">Token or API Key</label> \
         <input type=\"password\" id=\"token\" name=\"token\" required autocomplete=\"off\">\
         <button type=\"submit\">Submit</button></form></body></html>",
        server = html_escape(&pending.server),
        id = html_escape(&id),
    );
    (
        [
            (http::header::SET_COOKIE, set_cookie),
            (http::header::REFERRER_POLICY, "no-referrer".to_owned()),
            (http::header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Html(page),
    )
        .into_response()
}

/// `POST /tokens`
pub(super) async fn submit(
    State(b): State<Arc<Broker>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let store = match store(&b) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if body.len() > MAX_FORM {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "form too large");
    }
    let mut id = None;
    let mut token = None;
    let mut csrf = None;
    for (k, v) in url::form_urlencoded::parse(&body) {
        match &*k {
            "elicitation_id" => id = Some(v.into_owned()),
            "token" => token = Some(v.into_owned()),
            "csrf_token" => csrf = Some(v.into_owned()),
            _ => {}
        }
    }
    let Some(cookie) = cookie(&headers, CSRF_COOKIE).filter(|c| !c.is_empty()) else {
        return error(StatusCode::FORBIDDEN, "missing CSRF token");
    };
    if !csrf.is_some_and(|f| !f.is_empty() && constant_time_eq(f.as_bytes(), cookie.as_bytes())) {
        return error(StatusCode::FORBIDDEN, "CSRF validation failed");
    }
    let Some(id) = id.filter(|i| !i.is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "missing elicitation_id");
    };
    let token = token.unwrap_or_default();
    if let Err(why) = elicitation::check_token(&token) {
        return error(StatusCode::BAD_REQUEST, why);
    }
    let subject = match verified_subject(&b, &headers).await {
        Ok(Some(s)) => store.subject_digest(&s),
        Ok(None) => return error(StatusCode::FORBIDDEN, "no identity found in request"),
        Err(r) => return r,
    };
    // Checked before the claim, so that someone else's attempt does not use up the user's
    // elicitation; checked on what was claimed too.
    match store.peek(&id).await {
        Ok(Some(p)) if p.subject != subject => {
            tracing::warn!("token page: the caller is not the one the elicitation was made for");
            return error(StatusCode::FORBIDDEN, "identity mismatch");
        }
        Ok(Some(_)) => {}
        Ok(None) => return error(StatusCode::BAD_REQUEST, "invalid or expired elicitation_id"),
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
    let pending = match store.claim(&id).await {
        Ok(Some(p)) if p.subject == subject => p,
        Ok(Some(_)) => return error(StatusCode::FORBIDDEN, "identity mismatch"),
        Ok(None) => return error(StatusCode::BAD_REQUEST, "invalid or expired elicitation_id"),
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let authorization = elicitation::as_authorization(&token);
    if let Err(e) = store
        .put(
            &pending.jti,
            &pending.server,
            &pending.subject,
            &authorization,
            pending.exp,
        )
        .await
    {
        return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
    }
    tracing::info!(server = %pending.server, "per-user credential stored");
    (
        [(http::header::CACHE_CONTROL, "no-store")],
        Html(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>MCP Gateway - Token Saved</title></head>\
             <body><h1>Token Saved</h1><p>Your token for <strong>{}</strong> has been saved. You can close this page and retry the tool call.</p></body></html>",
            html_escape(&pending.server)
        )),
    )
        .into_response()
}

/// `DELETE /tokens/<server>`
pub(super) async fn revoke(
    State(b): State<Arc<Broker>>,
    headers: HeaderMap,
    Path(server): Path<String>,
) -> Response {
    let store = match store(&b) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let known = b
        .config
        .borrow()
        .server(&server)
        .is_some_and(|s| s.token_url_elicitation.is_some());
    if !known {
        return error(
            StatusCode::NOT_FOUND,
            "no server with tokenURLElicitation has that name",
        );
    }
    let subject = match verified_subject(&b, &headers).await {
        Ok(Some(s)) => s,
        Ok(None) => return error(StatusCode::FORBIDDEN, "no identity found in request"),
        Err(r) => return r,
    };
    match store.revoke(&server, &subject).await {
        Ok(n) => {
            tracing::info!(server = %server, revoked = n, "per-user credentials revoked");
            Json(json!({"server": server, "revoked": n})).into_response()
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

/// Adds to `/status`, per server: `userSpecificList`, and for a server with
/// `tokenURLElicitation` how many users hold a credential (`usersWithCredential`, never who).
pub(super) async fn add_to_status(b: &Broker, doc: &mut Value) {
    let config = b.config.borrow().clone();
    let holders = match &b.user_tokens {
        Some(store) => store.holders().await.ok(),
        None => None,
    };
    let Some(servers) = doc.get_mut("servers").and_then(Value::as_array_mut) else {
        return;
    };
    for s in servers {
        let Some(name) = s.get("name").and_then(Value::as_str).map(str::to_owned) else {
            continue;
        };
        let Some(server) = config.server(&name) else {
            continue;
        };
        if server.user_specific_list {
            s["userSpecificList"] = json!(true);
        }
        if server.token_url_elicitation.is_some() {
            s["usersWithCredential"] = match &holders {
                Some(h) => json!(h.get(&name).copied().unwrap_or(0)),
                None => Value::Null,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_csrf_comparison() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::COOKIE,
            "a=1; csrf=abc; b=2".parse().expect("header"),
        );
        assert_eq!(cookie(&h, "csrf").as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "nope"), None);
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert_eq!(
            html_escape("<a href='x'>&"),
            "&lt;a href=&#39;x&#39;&gt;&amp;"
        );
    }
}
