//! Bridging a stateless (2026-07-28) client to an upstream that speaks the session generation:
//! the client's request goes over the upstream session as it is (its `_meta` envelope is
//! harmless there), and the upstream's results, which lack the `resultType` member 2026-07-28
//! requires, get `"resultType":"complete"` inserted. Only that member is added; every other byte
//! of the response stays as the upstream sent it. Pure.

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
    let member: &[u8] = if members.is_empty() {
        br#""resultType":"complete""#
    } else {
        br#""resultType":"complete","#
    };
    let mut out = Vec::with_capacity(body.len() + member.len());
    out.extend_from_slice(&body[..=start]);
    out.extend_from_slice(member);
    out.extend_from_slice(&body[start + 1..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            (r#"{"jsonrpc":"2.0","id":1,"result":[]}"#, None),
            ("not json", None),
        ] {
            let got = mark_complete(input.as_bytes()).map(|b| String::from_utf8(b).expect("utf8"));
            assert_eq!(got.as_deref(), want, "{input}");
        }
    }
}
