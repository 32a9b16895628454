//! Bridging the two protocol generations. Pure.
//!
//! - A stateless (2026-07-28) client on an upstream that speaks the session generation: the
//!   request goes over an upstream session as it is (its `_meta` envelope is harmless there), and
//!   the upstream's results, which lack the `resultType` member 2026-07-28 requires, get
//!   `"resultType":"complete"` inserted ([`mark_complete`]), and a resource's contents
//!   `"ttlMs":0,"cacheScope":"private"` (2026-07-28 requires them; the upstream said nothing).
//!   What the upstream asks the client during the call is asked through input-required
//!   results ([`super::asks`]).
//! - A session-era client on a stateless-only upstream: the request gets the `_meta` envelope
//!   2026-07-28 requires ([`add_envelope`]); the router adds the `Mcp-Method` / `Mcp-Name` headers.
//!
//! Only those members are added; every other byte stays as it was sent.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize)]
struct Reply<'a> {
    #[serde(borrow)]
    result: Option<&'a RawValue>,
}

/// The response with `"resultType":"complete"` added to its `result`, or `None` when it is not a
/// result object or already says its type.
pub fn mark_complete(body: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(body).ok()?;
    let reply: Reply<'_> = serde_json::from_str(text).ok()?;
    let result = reply.result?.get();
    if !result.starts_with('{') {
        return None;
    }
    let members: HashMap<Cow<'_, str>, &RawValue> = serde_json::from_str(result).ok()?;
    if members.contains_key("resultType") {
        return None;
    }
    // `result` borrows from `text`: its offset is the distance between the two.
    let start = (result.as_ptr() as usize).checked_sub(text.as_ptr() as usize)?;
    // A resource's contents (ReadResourceResult) must also say how long they may be cached:
    // the session-era upstream said nothing, so never, and for this caller only.
    let read = members.contains_key("contents") && !members.contains_key("ttlMs");
    let member: &[u8] = match (members.is_empty(), read) {
        (true, _) => br#""resultType":"complete""#,
        (false, false) => br#""resultType":"complete","#,
        (false, true) => br#""resultType":"complete","ttlMs":0,"cacheScope":"private","#,
    };
    let mut out = Vec::with_capacity(body.len() + member.len());
    out.extend_from_slice(&body[..=start]);
    out.extend_from_slice(member);
    out.extend_from_slice(&body[start + 1..]);
    Some(out)
}

/// A buffered JSON response as the client gets it: marked complete (`mark`), its task id tagged
/// with its server (`task_prefix`, `router::tasks`), and its MCP App's `ui://` URI given the
/// server's prefix (`ui_prefix`); `None` when none changes it.
pub fn rewrite_result(
    body: &[u8],
    mark: bool,
    ui_prefix: Option<&str>,
    task_prefix: Option<&str>,
) -> Option<Vec<u8>> {
    let marked = if mark { mark_complete(body) } else { None };
    let tagged = task_prefix
        .and_then(|p| super::tasks::tag_result(marked.as_deref().unwrap_or(body), p))
        .or(marked);
    let current = tagged.as_deref().unwrap_or(body);
    match ui_prefix.and_then(|p| crate::ui_resource::prefix_result_meta(current, p)) {
        Some(rewritten) => Some(rewritten),
        None => tagged,
    }
}

/// The request with the 2026-07-28 `_meta` envelope members (`envelope`, a JSON object's
/// members without braces) added to `params._meta`, creating `params` or `_meta` as needed;
/// `None` when the request already carries a protocol version in `_meta` or is not a request.
pub fn add_envelope(body: &[u8], envelope: &str) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(body).ok()?;
    let offset = |inner: &str| (inner.as_ptr() as usize).checked_sub(text.as_ptr() as usize);
    let insert_after = |at: usize, what: &str| {
        let mut out = Vec::with_capacity(body.len() + what.len());
        out.extend_from_slice(&body[..=at]);
        out.extend_from_slice(what.as_bytes());
        out.extend_from_slice(&body[at + 1..]);
        out
    };
    let top: HashMap<Cow<'_, str>, &RawValue> = serde_json::from_str(text).ok()?;
    top.get("method")?;
    let Some(params) = top.get("params").map(|p| p.get()) else {
        // `{` of the message itself.
        let at = text.find('{')?;
        return Some(insert_after(
            at,
            &format!(r#""params":{{"_meta":{{{envelope}}}}},"#),
        ));
    };
    if !params.starts_with('{') {
        return None;
    }
    let members: HashMap<Cow<'_, str>, &RawValue> = serde_json::from_str(params).ok()?;
    match members.get("_meta").map(|m| m.get()) {
        None => {
            let sep = if members.is_empty() { "" } else { "," };
            Some(insert_after(
                offset(params)?,
                &format!(r#""_meta":{{{envelope}}}{sep}"#),
            ))
        }
        Some(meta) if meta.starts_with('{') => {
            let inner: HashMap<Cow<'_, str>, &RawValue> = serde_json::from_str(meta).ok()?;
            if inner.contains_key("io.modelcontextprotocol/protocolVersion") {
                return None;
            }
            let sep = if inner.is_empty() { "" } else { "," };
            Some(insert_after(offset(meta)?, &format!("{envelope}{sep}")))
        }
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_get_the_envelope_and_nothing_else_changes() {
        let e = r#""v":1"#;
        for (input, want) in [
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"n":1.50}}}"#,
                Some(
                    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"v":1},"name":"x","arguments":{"n":1.50}}}"#,
                ),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#,
                Some(
                    r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"v":1}}}"#,
                ),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
                Some(
                    r#"{"params":{"_meta":{"v":1}},"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
                ),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","_meta":{"progressToken":7}}}"#,
                Some(
                    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","_meta":{"v":1,"progressToken":7}}}"#,
                ),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
                None,
            ),
            (r#"{"jsonrpc":"2.0","id":1,"result":{}}"#, None),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"x","params":[1]}"#,
                None,
            ),
        ] {
            let got =
                add_envelope(input.as_bytes(), e).map(|b| String::from_utf8(b).expect("utf8"));
            assert_eq!(got.as_deref(), want, "{input}");
        }
    }

    #[test]
    fn results_get_their_type_and_nothing_else_changes() {
        for (input, want) in [
            (
                r#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#,
                Some(r#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"complete","content":[]}}"#),
            ),
            (
                r#"{"result" : {} , "id":7,"jsonrpc":"2.0"}"#,
                Some(r#"{"result" : {"resultType":"complete"} , "id":7,"jsonrpc":"2.0"}"#),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"result":{"x":1.50,"big":123456789012345678901234567890}}"#,
                Some(
                    r#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"complete","x":1.50,"big":123456789012345678901234567890}}"#,
                ),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"input_required"}}"#,
                None,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"x"}}"#,
                None,
            ),
            (
                r#"{"jsonrpc":"2.0","method":"notifications/progress"}"#,
                None,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"result":{"contents":[]}}"#,
                Some(
                    r#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"complete","ttlMs":0,"cacheScope":"private","contents":[]}}"#,
                ),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"result":{"contents":[],"ttlMs":5,"cacheScope":"public"}}"#,
                Some(
                    r#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"complete","contents":[],"ttlMs":5,"cacheScope":"public"}}"#,
                ),
            ),
            (r#"{"jsonrpc":"2.0","id":1,"result":[]}"#, None),
            ("not json", None),
        ] {
            let got = mark_complete(input.as_bytes()).map(|b| String::from_utf8(b).expect("utf8"));
            assert_eq!(got.as_deref(), want, "{input}");
        }
    }
}
