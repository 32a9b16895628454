//! Every refusal the gateway answers itself, router and broker alike: one [`Reject`] (HTTP
//! status, JSON-RPC error, the request's id, extra headers such as `WWW-Authenticate`) and one
//! mapping of it to the wire ([`Reject::body`] and [`Reject::headers`]; the router sends them as
//! an Envoy immediate response, `router::respond::reject`, the broker as an HTTP response,
//! [`Reject::into_response`]). The refusals both sides give are built here once. Pure.

use crate::auth::oidc::AuthError;
use crate::auth::session::SessionError;
use crate::jsonrpc::{self, OwnedId};
use crate::mcp::{code, header};

/// A request the gateway answers itself, with an HTTP status and a JSON-RPC error.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    pub status: u16,
    pub code: i64,
    pub message: String,
    pub id: Option<OwnedId>,
    /// The error's `data`, when it has one.
    pub data: Option<serde_json::Value>,
    /// Headers the reply carries besides `Content-Type` (a `WWW-Authenticate` challenge).
    pub headers: Vec<(&'static str, Vec<u8>)>,
}

impl Reject {
    pub fn new(status: u16, code: i64, message: impl Into<String>, id: Option<OwnedId>) -> Reject {
        Reject {
            status,
            code,
            message: message.into(),
            id,
            data: None,
            headers: Vec::new(),
        }
    }

    pub fn with_data(mut self, data: serde_json::Value) -> Reject {
        self.data = Some(data);
        self
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<Vec<u8>>) -> Reject {
        self.headers.push((name, value.into()));
        self
    }

    /// The same refusal, answering the request `id`.
    pub fn for_id(mut self, id: Option<OwnedId>) -> Reject {
        self.id = id;
        self
    }

    /// The JSON-RPC error body.
    pub fn body(&self) -> Vec<u8> {
        jsonrpc::error_body(
            self.id.as_deref(),
            self.code,
            &self.message,
            self.data.as_ref(),
        )
    }

    /// The broker's reply: the status, `Content-Type: application/json`, the extra headers and
    /// the body.
    pub fn into_response(self) -> axum::response::Response {
        let body = self.body();
        let mut r = axum::response::Response::new(axum::body::Body::from(body));
        *r.status_mut() = http::StatusCode::from_u16(self.status)
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        let h = r.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        for (name, value) in self.headers {
            if let (Ok(k), Ok(v)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_bytes(&value),
            ) {
                h.insert(k, v);
            }
        }
        r
    }
}

impl axum::response::IntoResponse for Reject {
    fn into_response(self) -> axum::response::Response {
        Reject::into_response(self)
    }
}

/// 400 with -32022 and the versions the gateway speaks (what 2026-07-28 clients re-probe with).
pub fn unsupported_version(requested: &str, id: Option<OwnedId>) -> Reject {
    Reject::new(
        400,
        code::UNSUPPORTED_PROTOCOL_VERSION,
        format!("Unsupported protocol version {requested:?}"),
        id,
    )
    .with_data(serde_json::json!({
        "supported": crate::mcp::all_versions(),
        "requested": requested,
    }))
}

/// 400: a session-era request without `Mcp-Session-Id`.
pub fn session_required(id: Option<OwnedId>) -> Reject {
    Reject::new(
        400,
        code::INVALID_REQUEST,
        "Mcp-Session-Id header is required: call initialize first",
        id,
    )
}

/// 404: the session named is unknown, expired, ended or another caller's (the client starts over).
pub fn session_not_found(e: &SessionError, id: Option<OwnedId>) -> Reject {
    Reject::new(404, code::SESSION_NOT_FOUND, e.client_message(), id)
}

/// 415: a POST whose body is not JSON.
pub fn not_json() -> Reject {
    Reject::new(
        415,
        code::INVALID_REQUEST,
        "Content-Type must be application/json",
        None,
    )
}

/// 413: a body larger than `--max-request-body-size`.
pub fn too_large(max: usize) -> Reject {
    Reject::new(
        413,
        code::REQUEST_TOO_LARGE,
        format!("request body exceeds {max} bytes"),
        None,
    )
}

/// The reply to a body that is not one valid JSON-RPC message: with its id when one can be read.
pub fn parse_error(e: &jsonrpc::ParseError, body: &[u8]) -> Reject {
    Reject::new(400, e.code(), e.to_string(), jsonrpc::readable_id(body))
}

/// A bearer token refused: 401 with the RFC 9728 challenge that points clients to the protected
/// resource metadata of `resource` (asked only then); or, when the identity provider could not
/// be asked, 503 (504 when it did not answer in time).
pub fn unauthenticated(
    e: &AuthError,
    resource: impl FnOnce() -> String,
    id: Option<OwnedId>,
) -> Reject {
    if e.is_provider() {
        let (status, code) = match e {
            AuthError::ProviderTimeout(_) => (504, code::UPSTREAM_TIMEOUT),
            _ => (503, code::UNAUTHORIZED),
        };
        return Reject::new(status, code, e.to_string(), id);
    }
    let detail = (*e != AuthError::Missing).then(|| e.to_string());
    let challenge = crate::auth::metadata::challenge(&resource(), detail.as_deref());
    Reject::new(401, code::UNAUTHORIZED, format!("Unauthorized: {e}"), id)
        .with_header(header::WWW_AUTHENTICATE, challenge)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> OwnedId {
        jsonrpc::parse(br#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#)
            .expect("parse")
            .owned_id()
            .expect("id")
    }

    #[test]
    fn auth_refusals_by_cause() {
        let missing = unauthenticated(&AuthError::Missing, || "https://gw/mcp".into(), None);
        assert_eq!((missing.status, missing.code), (401, code::UNAUTHORIZED));
        let (name, value) = &missing.headers[0];
        assert_eq!(*name, header::WWW_AUTHENTICATE);
        let value = String::from_utf8_lossy(value);
        assert!(value.starts_with("Bearer resource_metadata="), "{value}");
        assert!(!value.contains("invalid_token"), "{value}");
        let provider = unauthenticated(
            &AuthError::Provider("down".into()),
            || unreachable!("no challenge when the provider is down"),
            Some(id()),
        );
        assert_eq!((provider.status, provider.code), (503, code::UNAUTHORIZED));
        assert!(provider.headers.is_empty());
        assert_eq!(provider.id, Some(id()));
    }

    #[tokio::test]
    async fn the_broker_reply_is_the_same_reject() {
        let r = unsupported_version("1999-01-01", Some(id()));
        let body = r.body();
        let with_header = r.clone().with_header(header::WWW_AUTHENTICATE, "Bearer x");
        let response = with_header.into_response();
        assert_eq!(response.status(), 400);
        assert_eq!(
            response.headers().get("content-type").map(|v| v.as_bytes()),
            Some(&b"application/json"[..])
        );
        assert_eq!(
            response
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .map(|v| v.as_bytes()),
            Some(&b"Bearer x"[..])
        );
        let got = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        assert_eq!(&got[..], &body[..]);
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["id"], 7);
        assert_eq!(v["error"]["code"], code::UNSUPPORTED_PROTOCOL_VERSION);
        assert_eq!(v["error"]["data"]["requested"], "1999-01-01");
    }
}
