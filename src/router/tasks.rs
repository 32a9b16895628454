//! Task ids on the way to the client: the id a server gives a task (in a create result, a
//! `tasks/get` answer, a `notifications/tasks/*` notification) gets the server's tag
//! (`mcpgw.<server>.<id>`, [`super::relay::tag`]), so that the client's later `tasks/*` requests
//! name their server and any replica routes them ([`super::decide`]'s `decide_task` reads the tag
//! and sends the server its own id back, in the body and in `Mcp-Name`). Every other byte stays
//! as the server sent it. Pure.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::jsonrpc;

#[derive(Deserialize)]
struct Reply<'a> {
    #[serde(borrow)]
    result: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Notification<'a> {
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
}

/// `body` with the string member `taskId` of `object` (a part of `body`) tagged with `prefix`;
/// `None` when there is none or it is tagged already.
fn tag_member(body: &str, object: &str, prefix: &str) -> Option<Vec<u8>> {
    if !object.starts_with('{') {
        return None;
    }
    let members: HashMap<Cow<'_, str>, &RawValue> = serde_json::from_str(object).ok()?;
    let raw = members.get("taskId")?.get();
    let id: Cow<'_, str> = serde_json::from_str(raw).ok()?;
    if id.starts_with(super::relay::TAG) {
        return None;
    }
    // `raw` borrows from `body`: its offset is the distance between the two.
    let start = (raw.as_ptr() as usize).checked_sub(body.as_ptr() as usize)?;
    let span = start..start + raw.len();
    Some(jsonrpc::splice_string(
        body.as_bytes(),
        span,
        &format!("{prefix}{id}"),
    ))
}

/// A JSON-RPC response whose `result.taskId` (a create result, a `tasks/get` answer) gets the
/// server's tag; `None` when it has none.
pub(super) fn tag_result(body: &[u8], prefix: &str) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(body).ok()?;
    let reply: Reply<'_> = serde_json::from_str(text).ok()?;
    tag_member(text, reply.result?.get(), prefix)
}

/// A `notifications/tasks/*` notification whose `params.taskId` gets the server's tag; `None`
/// for any other message.
pub(super) fn tag_notification(body: &[u8], prefix: &str) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(body).ok()?;
    let n: Notification<'_> = serde_json::from_str(text).ok()?;
    if !n.method?.starts_with("notifications/tasks") {
        return None;
    }
    tag_member(text, n.params?.get(), prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_get_the_server_tag() {
        let p = super::super::relay::tag_prefix("ns/a");
        let t = |id: &str| super::super::relay::tag("ns/a", id);
        let results: &[(&str, Option<String>)] = &[
            (
                r#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"task","taskId":"t-1","status":"working"}}"#,
                Some(format!(
                    r#"{{"jsonrpc":"2.0","id":1,"result":{{"resultType":"task","taskId":"{}","status":"working"}}}}"#,
                    t("t-1")
                )),
            ),
            // An id with characters JSON escapes keeps them escaped.
            (
                r#"{"jsonrpc":"2.0","id":1,"result":{"taskId":"a\"b"}}"#,
                Some(format!(
                    r#"{{"jsonrpc":"2.0","id":1,"result":{{"taskId":"{}a\"b"}}}}"#,
                    p
                )),
            ),
            // Tagged already, not a string, none, an error, not JSON: unchanged.
            (
                &*format!(
                    r#"{{"jsonrpc":"2.0","id":1,"result":{{"taskId":"{}"}}}}"#,
                    t("x")
                ),
                None,
            ),
            (r#"{"jsonrpc":"2.0","id":1,"result":{"taskId":5}}"#, None),
            (
                r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"taskId":"inner"}]}}"#,
                None,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"no"}}"#,
                None,
            ),
            ("not json", None),
        ];
        for (body, want) in results {
            let got = tag_result(body.as_bytes(), &p).map(|b| String::from_utf8(b).expect("utf8"));
            assert_eq!(&got, want, "{body}");
        }
        let n = r#"{"jsonrpc":"2.0","method":"notifications/tasks/status","params":{"taskId":"t-2","status":"completed"}}"#;
        assert_eq!(
            tag_notification(n.as_bytes(), &p).map(|b| String::from_utf8(b).expect("utf8")),
            Some(n.replace("t-2", &t("t-2")))
        );
        let other =
            r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"taskId":"t-2"}}"#;
        assert_eq!(tag_notification(other.as_bytes(), &p), None);
    }
}
