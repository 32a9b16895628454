//! `notifications/tasks/status` (the 2025-11-25 tasks utility) on an upstream session's own GET
//! stream: a server tells the requestor of a task's new status there once the request that
//! created it has been answered. It reaches the client's GET stream with its `taskId` tagged with
//! the server (`mcpgw.<server>.<id>`, [`crate::mcp::tag`]), as the router tags it on a call's
//! stream, so that every id the client sees names its server. Pure.

use bytes::Bytes;
use serde_json::Value;

use crate::mcp::tag;

/// The 2025-11-25 task status notification.
pub const STATUS: &str = "notifications/tasks/status";

/// A task status notification with its `params.taskId` tagged with `tag_prefix`; `None` for any
/// other message (or one whose id is not a string, or is tagged already).
pub fn tagged(data: &str, tag_prefix: &str) -> Option<Bytes> {
    let mut msg: Value = serde_json::from_str(data).ok()?;
    if msg.get("method")?.as_str()? != STATUS || msg.get("id").is_some() {
        return None;
    }
    let params = msg.get_mut("params")?.as_object_mut()?;
    let id = params.get("taskId")?.as_str()?;
    if id.starts_with(tag::TAG) {
        return None;
    }
    let t = format!("{tag_prefix}{id}");
    params.insert("taskId".into(), Value::String(t));
    serde_json::to_vec(&msg).ok().map(Bytes::from)
}

/// Whether a message another replica announces is a task status notification as a replica
/// relays it (its task id tagged).
pub fn is_relayed(message: &[u8]) -> bool {
    serde_json::from_slice::<Value>(message).is_ok_and(|m| {
        m.get("method").and_then(Value::as_str) == Some(STATUS)
            && m.get("id").is_none()
            && m.pointer("/params/taskId")
                .and_then(Value::as_str)
                .is_some_and(|id| tag::untag(id).is_some())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_status_notification_gets_the_server_tag() {
        let p = tag::tag_prefix("s1");
        let cases: &[(Value, Option<Value>)] = &[
            (
                json!({"jsonrpc": "2.0", "method": STATUS,
                    "params": {"taskId": "t-1", "status": "completed", "ttl": 60000}}),
                Some(json!({"jsonrpc": "2.0", "method": STATUS,
                    "params": {"taskId": format!("{p}t-1"), "status": "completed", "ttl": 60000}})),
            ),
            (
                json!({"jsonrpc": "2.0", "method": STATUS,
                    "params": {"taskId": format!("{p}t-1")}}),
                None,
            ),
            (
                json!({"jsonrpc": "2.0", "method": STATUS, "params": {"taskId": 5}}),
                None,
            ),
            (
                json!({"jsonrpc": "2.0", "id": 1, "method": STATUS, "params": {"taskId": "t"}}),
                None,
            ),
            (
                json!({"jsonrpc": "2.0", "method": "notifications/progress",
                    "params": {"taskId": "t"}}),
                None,
            ),
        ];
        for (msg, want) in cases {
            let got = tagged(&msg.to_string(), &p)
                .map(|b| serde_json::from_slice::<Value>(&b).expect("json"));
            assert_eq!(&got, want, "{msg}");
            if let Some(w) = want {
                assert!(is_relayed(w.to_string().as_bytes()), "{w}");
            }
        }
        assert!(!is_relayed(msg_of("t-1").as_bytes()), "untagged");
        assert!(!is_relayed(b"not json"));
    }

    fn msg_of(id: &str) -> String {
        json!({"jsonrpc": "2.0", "method": STATUS, "params": {"taskId": id}}).to_string()
    }
}
