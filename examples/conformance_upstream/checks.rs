//! What the fixture checks of a 2026-07-28 request before it serves it, as a 2026-07-28 server
//! must (SEP-2243, SEP-2575): a protocol version it does not speak (HTTP 400, -32022 with the
//! versions it does), and `Mcp-Method` / `Mcp-Name` headers that are missing or say other than
//! the body (HTTP 400, -32020; values compared without surrounding spaces and tabs; the task
//! requests' `Mcp-Name` is checked by [`super::tasks`]). Pure.

use serde_json::{json, Value};

const HEADER_MISMATCH: i64 = -32020;
const UNSUPPORTED_VERSION: i64 = -32022;

/// A refusal: HTTP 400 with this JSON-RPC error (code, message, data).
#[derive(Debug, PartialEq)]
pub(super) struct Refusal(pub i64, pub String, pub Option<Value>);

/// The refusal of a sessionless request whose `MCP-Protocol-Version` names a version the
/// fixture does not speak (`supported`).
pub(super) fn version(header: Option<&str>, supported: &[&str]) -> Option<Refusal> {
    let v = header?.trim();
    (!supported.contains(&v)).then(|| {
        Refusal(
            UNSUPPORTED_VERSION,
            format!("protocol version {v} is not supported"),
            Some(json!({"supported": supported, "requested": v})),
        )
    })
}

/// The refusal of a request whose `Mcp-Method` / `Mcp-Name` headers disagree with its body.
pub(super) fn headers(
    mcp_method: Option<&str>,
    mcp_name: Option<&str>,
    method: &str,
    params: &Value,
) -> Option<Refusal> {
    let mismatch = |m: String| Some(Refusal(HEADER_MISMATCH, m, None));
    if mcp_method.map(|m| m.trim_matches([' ', '\t'])) != Some(method) {
        return mismatch(format!("Mcp-Method must be the body's method {method}"));
    }
    let name = match method {
        "tools/call" | "prompts/get" => params.get("name"),
        "resources/read" => params.get("uri"),
        _ => None,
    };
    match name.and_then(Value::as_str) {
        Some(n) if mcp_name.map(|h| h.trim_matches([' ', '\t'])) != Some(n) => {
            mismatch(format!("Mcp-Name must be the body's {n}"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_headers_are_checked() {
        let speaks = ["2025-11-25", "2026-07-28"];
        assert_eq!(version(None, &speaks), None);
        assert_eq!(version(Some("2026-07-28"), &speaks), None);
        let r = version(Some("v999.0.0"), &speaks).map(|r| (r.0, r.2));
        assert_eq!(
            r,
            Some((
                -32022,
                Some(json!({"supported": speaks, "requested": "v999.0.0"}))
            ))
        );
        let call = json!({"name": "t", "arguments": {}});
        let read = json!({"uri": "test://x"});
        for (m, n, method, params, ok) in [
            (Some("tools/list"), None, "tools/list", json!({}), true),
            (Some(" tools/list\t"), None, "tools/list", json!({}), true),
            (None, None, "tools/list", json!({}), false),
            (Some("prompts/list"), None, "tools/list", json!({}), false),
            (Some("TOOLS/LIST"), None, "tools/list", json!({}), false),
            (
                Some("tools/call"),
                Some("t"),
                "tools/call",
                call.clone(),
                true,
            ),
            (
                Some("tools/call"),
                Some("  t  "),
                "tools/call",
                call.clone(),
                true,
            ),
            (Some("tools/call"), None, "tools/call", call.clone(), false),
            (
                Some("tools/call"),
                Some("u"),
                "tools/call",
                call.clone(),
                false,
            ),
            (
                Some("resources/read"),
                Some("test://x"),
                "resources/read",
                read.clone(),
                true,
            ),
            (
                Some("resources/read"),
                Some("test://y"),
                "resources/read",
                read,
                false,
            ),
        ] {
            assert_eq!(
                headers(m, n, method, &params).is_none(),
                ok,
                "{m:?} {n:?} {method}"
            );
        }
    }
}
