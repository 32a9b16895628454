//! The fixture's custom headers (2026-07-28, SEP-2243): `test_param_headers` marks some of its
//! parameters with `x-mcp-header`, so a client mirrors their values in `Mcp-Param-{Name}`
//! headers; a call of it is refused (HTTP 400, `-32020` HeaderMismatch) when a marked
//! parameter's header is missing, not decodable, or says another value than the body. A value
//! in `=?base64?…?=` is Base64 (standard alphabet, padding required) of the UTF-8 value; any
//! other value is literal (surrounding spaces and tabs are not part of it). Listed to
//! 2026-07-28 requests only. Pure but for the answer.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine;
use serde_json::{json, Map, Value};

pub(super) const TOOL: &str = "test_param_headers";
const HEADER_MISMATCH: i64 = -32020;

pub(super) fn tools() -> Vec<Value> {
    vec![json!({
        "name": TOOL,
        "description": "Mirrors some parameters in Mcp-Param-* headers and checks them",
        "inputSchema": {"type": "object", "properties": {
            "region": {"type": "string", "description": "A region", "x-mcp-header": "Region"},
            "priority": {"type": "integer", "description": "A priority", "x-mcp-header": "Priority"},
            "verbose": {"type": "boolean", "description": "Verbose output", "x-mcp-header": "Verbose"},
            "query": {"type": "string", "description": "Not mirrored"},
        }, "required": ["region", "query"]},
    })]
}

/// The value a header carries, decoded; `None` when it says Base64 and is not.
fn decode(raw: &str) -> Option<String> {
    let v = raw.trim_matches([' ', '\t']);
    match v
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        Some(b64) => {
            let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
            String::from_utf8(bytes).ok()
        }
        None => Some(v.to_owned()),
    }
}

/// A body value as its header says it: strings as they are, numbers and booleans as JSON
/// writes them; `None` for null (no header then).
fn as_header(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Why the `Mcp-Param-*` headers of a call of `schema` disagree with its `arguments`; `None`
/// when they agree. `header(name)` gives a header's value (names case-insensitive).
fn mismatch<'a>(
    schema: &Value,
    arguments: &Map<String, Value>,
    header: impl Fn(&str) -> Option<&'a str>,
) -> Option<String> {
    let props = schema.get("properties")?.as_object()?;
    for (param, prop) in props {
        let Some(name) = prop.get("x-mcp-header").and_then(Value::as_str) else {
            continue;
        };
        let h = format!("Mcp-Param-{name}");
        let want = arguments.get(param).and_then(as_header);
        match (header(&h), want) {
            (None, None) => {}
            (None, Some(_)) => return Some(format!("{h} is missing; the body sets {param}")),
            (Some(_), None) => return Some(format!("{h} is sent; the body does not set {param}")),
            (Some(raw), Some(want)) => match decode(raw) {
                None => return Some(format!("{h} is not valid Base64")),
                Some(got) if got != want => {
                    return Some(format!("{h} does not match the body's {param}"))
                }
                Some(_) => {}
            },
        }
    }
    None
}

/// A `tools/call` of [`TOOL`]: the refusal when its headers disagree with the body, else the
/// result; `None` for any other tool.
pub(super) fn call(headers: &HeaderMap, id: &Value, params: &Value) -> Option<Response> {
    if params["name"] != TOOL {
        return None;
    }
    let tool = tools().into_iter().next().unwrap_or_default();
    let empty = Map::new();
    let args = params["arguments"].as_object().unwrap_or(&empty);
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    Some(match mismatch(&tool["inputSchema"], args, header) {
        Some(why) => super::rpc_error(StatusCode::BAD_REQUEST, id, HEADER_MISMATCH, &why),
        None => super::reply(
            id,
            json!({"resultType": "complete", "content": [{"type": "text", "text": format!(
                "region={}", args.get("region").and_then(Value::as_str).unwrap_or(""))}]}),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Arguments, headers sent, whether the call is accepted.
    type Case<'a> = (Value, Vec<(&'a str, String)>, bool);

    #[test]
    fn headers_are_checked_against_the_body() {
        let schema = tools()[0]["inputSchema"].clone();
        let b64 = |s: &str| {
            format!(
                "=?base64?{}?=",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        let cases: Vec<Case> = vec![
            (
                json!({"region": "eu", "query": "q"}),
                vec![("Mcp-Param-Region", "eu".into())],
                true,
            ),
            (
                json!({"region": "eu"}),
                vec![("Mcp-Param-Region", " eu\t".into())],
                true,
            ),
            (
                json!({"region": "Hello"}),
                vec![("Mcp-Param-Region", b64("Hello"))],
                true,
            ),
            (
                json!({"region": "héllo"}),
                vec![("Mcp-Param-Region", b64("héllo"))],
                true,
            ),
            // Bad padding, a character outside the alphabet.
            (
                json!({"region": "Hello"}),
                vec![("Mcp-Param-Region", "=?base64?SGVsbG8?=".into())],
                false,
            ),
            (
                json!({"region": "Hello"}),
                vec![("Mcp-Param-Region", "=?base64?SGVs!!!bG8=?=".into())],
                false,
            ),
            // Without the whole wrapper the value is literal.
            (
                json!({"region": "SGVsbG8="}),
                vec![("Mcp-Param-Region", "SGVsbG8=".into())],
                true,
            ),
            (
                json!({"region": "=?base64?SGVsbG8="}),
                vec![("Mcp-Param-Region", "=?base64?SGVsbG8=".into())],
                true,
            ),
            (json!({"region": "eu"}), vec![], false),
            (
                json!({"region": "eu"}),
                vec![("Mcp-Param-Region", "us".into())],
                false,
            ),
            (json!({}), vec![("Mcp-Param-Region", "us".into())], false),
            (json!({"region": null}), vec![], true),
            (
                json!({"region": "eu", "priority": 3, "verbose": false}),
                vec![
                    ("Mcp-Param-Region", "eu".into()),
                    ("Mcp-Param-Priority", "3".into()),
                    ("Mcp-Param-Verbose", "false".into()),
                ],
                true,
            ),
            (
                json!({"region": "eu", "priority": 3}),
                vec![
                    ("Mcp-Param-Region", "eu".into()),
                    ("Mcp-Param-Priority", "4".into()),
                ],
                false,
            ),
        ];
        for (args, hs, ok) in cases {
            let args = args.as_object().cloned().unwrap_or_default();
            let header = |n: &str| {
                hs.iter()
                    .find(|(h, _)| h.eq_ignore_ascii_case(n))
                    .map(|(_, v)| v.as_str())
            };
            let got = mismatch(&schema, &args, header);
            assert_eq!(got.is_none(), ok, "{args:?} {hs:?}: {got:?}");
        }
    }
}
