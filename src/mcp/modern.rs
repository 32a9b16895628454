//! Rules of the stateless generation (2026-07-28) that the gateway checks itself, pure:
//! - the methods that version removed (`initialize`, `ping`, `logging/setLevel`,
//!   `resources/subscribe`, `resources/unsubscribe`) are unknown methods: HTTP 404 + -32601;
//! - every request carries a `_meta` object naming its protocol version and the client's
//!   capabilities (`clientInfo` is optional): else HTTP 400 + -32602; a `_meta` protocol version
//!   that differs from the `MCP-Protocol-Version` header is HTTP 400 + -32020 (HeaderMismatch).

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{code, method};

/// Methods that exist in the session generation only.
pub const REMOVED_METHODS: &[&str] = &[
    method::INITIALIZE,
    method::PING,
    method::LOGGING_SET_LEVEL,
    method::RESOURCES_SUBSCRIBE,
    method::RESOURCES_UNSUBSCRIBE,
];

/// Whether a stateless request names a method of the session generation only.
pub fn is_removed(m: &str) -> bool {
    REMOVED_METHODS.contains(&m)
}

/// Why a stateless request's `_meta` is refused: the HTTP status and the JSON-RPC error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaError {
    pub status: u16,
    pub code: i64,
    pub message: String,
}

pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";

#[derive(Deserialize)]
struct Params<'a> {
    #[serde(rename = "_meta", borrow, default)]
    meta: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Meta<'a> {
    #[serde(rename = "io.modelcontextprotocol/protocolVersion", borrow, default)]
    protocol_version: Option<&'a RawValue>,
    #[serde(rename = "io.modelcontextprotocol/clientCapabilities", borrow, default)]
    client_capabilities: Option<&'a RawValue>,
}

fn invalid(message: String) -> MetaError {
    MetaError {
        status: 400,
        code: code::INVALID_PARAMS,
        message,
    }
}

/// Checks a stateless request's `params._meta` against its `MCP-Protocol-Version` header.
pub fn check_meta(header_version: &str, params: Option<&RawValue>) -> Result<(), MetaError> {
    let meta = params
        .and_then(|p| serde_json::from_str::<Params<'_>>(p.get()).ok())
        .and_then(|p| p.meta)
        .filter(|m| m.get().trim_start().starts_with('{'))
        .ok_or_else(|| invalid("params._meta is required (protocol version 2026-07-28)".into()))?;
    let meta: Meta<'_> = serde_json::from_str(meta.get())
        .map_err(|_| invalid("params._meta must be an object".into()))?;
    let version = meta
        .protocol_version
        .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
        .ok_or_else(|| {
            invalid(format!(
                "params._meta[{META_PROTOCOL_VERSION:?}] is required"
            ))
        })?;
    if !meta
        .client_capabilities
        .is_some_and(|c| c.get().trim_start().starts_with('{'))
    {
        return Err(invalid(format!(
            "params._meta[{META_CLIENT_CAPABILITIES:?}] (an object) is required"
        )));
    }
    if version != header_version {
        return Err(MetaError {
            status: 400,
            code: code::HEADER_MISMATCH,
            message: format!(
                "MCP-Protocol-Version header {header_version:?} does not match params._meta's {version:?}"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: &str = "2026-07-28";

    /// The HTTP status and JSON-RPC code of a refusal.
    type Outcome = Result<(), (u16, i64)>;

    fn check(params: Option<&str>) -> Outcome {
        let raw = params.map(|p| RawValue::from_string(p.to_owned()).unwrap());
        check_meta(V, raw.as_deref()).map_err(|e| (e.status, e.code))
    }

    #[test]
    fn meta_rules() {
        let ok = r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}"#;
        let cases: &[(Option<&str>, Outcome)] = &[
            (Some(ok), Ok(())),
            // clientInfo is optional; other members are ignored.
            (
                Some(
                    r#"{"name":"x","_meta":{"io.modelcontextprotocol/clientCapabilities":{"sampling":{}},"io.modelcontextprotocol/protocolVersion":"2026-07-28","other":1}}"#,
                ),
                Ok(()),
            ),
            (None, Err((400, -32602))),
            (Some("{}"), Err((400, -32602))),
            (Some(r#"{"_meta":null}"#), Err((400, -32602))),
            (Some(r#"{"_meta":[]}"#), Err((400, -32602))),
            (
                Some(r#"{"_meta":{"io.modelcontextprotocol/clientCapabilities":{}}}"#),
                Err((400, -32602)),
            ),
            (
                Some(r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}"#),
                Err((400, -32602)),
            ),
            (
                Some(
                    r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":[]}}"#,
                ),
                Err((400, -32602)),
            ),
            (
                Some(
                    r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":7,"io.modelcontextprotocol/clientCapabilities":{}}}"#,
                ),
                Err((400, -32602)),
            ),
            (
                Some(
                    r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"v999.0.0","io.modelcontextprotocol/clientCapabilities":{}}}"#,
                ),
                Err((400, -32020)),
            ),
        ];
        for (params, want) in cases {
            assert_eq!(&check(*params), want, "{params:?}");
        }
    }

    #[test]
    fn removed_methods() {
        for (m, removed) in [
            ("initialize", true),
            ("ping", true),
            ("logging/setLevel", true),
            ("resources/subscribe", true),
            ("resources/unsubscribe", true),
            ("tools/list", false),
            ("server/discover", false),
            ("tasks/get", false),
        ] {
            assert_eq!(is_removed(m), removed, "{m}");
        }
    }
}
