//! What of an upstream session's own GET stream reaches the client's GET stream, pure:
//! `notifications/resources/updated` as it is, and the requests a server may send a client
//! outside any call (`sampling/createMessage`, `elicitation/create`, `roots/list`, `ping`: the
//! TypeScript SDK 1.x sends `server.request()` made outside a request's context there) with
//! their ids tagged with the server, as on a call's SSE stream (`router::relay`), so that the
//! client's answer, POSTed to the gateway, goes back to that upstream session; task status
//! notifications (2025-11-25) with their task ids tagged ([`super::task_status`]). Anything else
//! (the upstream's `list_changed`, its log messages) is not relayed: the gateway sends its own.

use bytes::Bytes;

use crate::jsonrpc::{self, Kind};
use crate::mcp::method;

/// Whether an upstream session's GET stream is worth opening: the client declared a capability
/// that lets servers send it requests (`relayed_capabilities`, what its gateway session keeps of
/// them), and the session is one of the session generation (a stateless upstream has no GET
/// stream). Pure.
pub fn wanted(relayed_capabilities: Option<&str>, has_session: bool, version: &str) -> bool {
    relayed_capabilities.is_some() && has_session && !crate::mcp::is_modern(Some(version))
}

/// Server-to-client requests relayed from an upstream's GET stream.
pub const RELAYED_REQUESTS: &[&str] = &[
    "sampling/createMessage",
    "elicitation/create",
    "roots/list",
    method::PING,
];

/// The message to hand to the client's GET stream, tagged with `tag_prefix` (the server's,
/// `router::relay::tag_prefix`) where it is a request; `None` for what is not relayed.
pub fn relayed(data: &str, tag_prefix: &str) -> Option<Bytes> {
    let msg = jsonrpc::parse(data.as_bytes()).ok()?;
    let m = msg.method.as_deref()?;
    match msg.kind {
        Kind::Notification if m == method::RESOURCES_UPDATED => {
            Some(Bytes::from(data.as_bytes().to_vec()))
        }
        Kind::Notification if m == super::task_status::STATUS => {
            super::task_status::tagged(data, tag_prefix)
        }
        Kind::Request if RELAYED_REQUESTS.contains(&m) => {
            let span = msg.id_span()?;
            let raw = &data[span.clone()];
            // Ids are strings or integers (JSON-RPC as MCP uses it); the tag keeps the raw text
            // so that the upstream's own id goes back unchanged.
            let is_id = raw.starts_with('"')
                || raw.starts_with('-')
                || raw.starts_with(|c: char| c.is_ascii_digit());
            if !is_id {
                return None;
            }
            let tagged = format!("{tag_prefix}{raw}");
            Some(Bytes::from(jsonrpc::splice_string(
                data.as_bytes(),
                span,
                &tagged,
            )))
        }
        _ => None,
    }
}

/// What the upstream gets for a request on the GET stream of a stateless (2026-07-28) caller's
/// upstream session: such a client has no stream anywhere to take a request made outside a call
/// (it is asked only within its calls, by input-required results), so it is answered at once,
/// rather than leaving the server to wait for its own timeout (the TypeScript SDK's 60 s): a
/// `ping` with an empty result, anything else with an error. `None` for what is not a request
/// with an id. Pure.
pub fn answer_for_stateless_caller(data: &str) -> Option<Vec<u8>> {
    let msg = jsonrpc::parse(data.as_bytes()).ok()?;
    if msg.kind != Kind::Request {
        return None;
    }
    let method = msg.method.as_deref()?;
    let id = msg.id?;
    Some(crate::mcp::input_required::outside_a_call(method).to(id))
}

/// Whether a message another replica announces for a client's GET stream is one a replica
/// relays itself (a resource update, or a relayed request already tagged): anyone who can
/// publish on the shared store must not be able to put other messages in a client's stream.
pub fn may_announce(message: &[u8]) -> bool {
    jsonrpc::parse(message).is_ok_and(|m| match (m.kind, m.method.as_deref()) {
        (Kind::Notification, Some(method::RESOURCES_UPDATED)) => true,
        (Kind::Notification, Some(super::task_status::STATUS)) => {
            super::task_status::is_relayed(message)
        }
        (Kind::Request, Some(r)) if RELAYED_REQUESTS.contains(&r) => {
            m.id.and_then(|id| serde_json::from_str::<String>(id.get()).ok())
                .is_some_and(|id| id.starts_with("mcpgw."))
        }
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stateless_callers_stream_requests_are_answered_at_once() {
        let refused = |id: &str, m: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32601,"message":"{m} outside a call is not relayed to a 2026-07-28 client"}}}}"#
            )
        };
        for (data, answer) in [
            (
                r#"{"jsonrpc":"2.0","id":7,"method":"roots/list"}"#,
                Some(refused("7", "roots/list")),
            ),
            (
                r#"{"jsonrpc":"2.0","id":"s-1","method":"sampling/createMessage","params":{}}"#,
                Some(refused(r#""s-1""#, "sampling/createMessage")),
            ),
            (
                r#"{"jsonrpc":"2.0","id":"x","method":"custom/ask"}"#,
                Some(refused(r#""x""#, "custom/ask")),
            ),
            (
                r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#,
                Some(r#"{"jsonrpc":"2.0","id":3,"result":{}}"#.to_owned()),
            ),
            // Not requests: nothing to answer.
            (
                r#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"x://a"}}"#,
                None,
            ),
            (r#"{"jsonrpc":"2.0","id":1,"result":{}}"#, None),
            ("not json", None),
        ] {
            let got =
                answer_for_stateless_caller(data).map(|b| String::from_utf8(b).expect("utf8"));
            let got: Option<serde_json::Value> =
                got.map(|t| serde_json::from_str(&t).expect("json"));
            let want: Option<serde_json::Value> =
                answer.map(|t| serde_json::from_str(&t).expect("json"));
            assert_eq!(got, want, "{data}");
        }
    }

    #[test]
    fn only_sessions_of_clients_that_can_be_asked_open_their_stream() {
        for (caps, session, version, open) in [
            (Some(r#"{"sampling":{}}"#), true, "2025-11-25", true),
            (Some(r#"{"tasks":{}}"#), true, "2025-11-25", true),
            (None, true, "2025-11-25", false),
            (Some(r#"{"elicitation":{}}"#), false, "2025-11-25", false),
            (Some(r#"{"roots":{}}"#), true, "2026-07-28", false),
        ] {
            assert_eq!(
                wanted(caps, session, version),
                open,
                "{caps:?} {session} {version}"
            );
        }
    }

    #[test]
    fn only_what_a_replica_relays_may_be_announced() {
        for (data, ok) in [
            (
                r#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"x://a"}}"#,
                true,
            ),
            (
                r#"{"jsonrpc":"2.0","id":"mcpgw.czE.7","method":"sampling/createMessage","params":{}}"#,
                true,
            ),
            (
                r#"{"jsonrpc":"2.0","id":7,"method":"sampling/createMessage","params":{}}"#,
                false,
            ),
            (
                r#"{"jsonrpc":"2.0","id":"mcpgw.czE.7","method":"tools/call","params":{}}"#,
                false,
            ),
            (
                r#"{"jsonrpc":"2.0","method":"notifications/message","params":{}}"#,
                false,
            ),
            ("not json", false),
        ] {
            assert_eq!(may_announce(data.as_bytes()), ok, "{data}");
        }
    }

    #[test]
    fn updates_as_they_are_and_requests_tagged() {
        let p = "mcpgw.czE.";
        for (data, want) in [
            (
                r#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"x://a"}}"#,
                Some(r#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"x://a"}}"#.to_owned()),
            ),
            (
                r#"{"jsonrpc":"2.0","id":7,"method":"sampling/createMessage","params":{}}"#,
                Some(r#"{"jsonrpc":"2.0","id":"mcpgw.czE.7","method":"sampling/createMessage","params":{}}"#.to_owned()),
            ),
            (
                r#"{"jsonrpc":"2.0","id":"a-1","method":"elicitation/create","params":{}}"#,
                Some(r#"{"jsonrpc":"2.0","id":"mcpgw.czE.\"a-1\"","method":"elicitation/create","params":{}}"#.to_owned()),
            ),
            (
                r#"{"jsonrpc":"2.0","id":3,"method":"roots/list"}"#,
                Some(r#"{"jsonrpc":"2.0","id":"mcpgw.czE.3","method":"roots/list"}"#.to_owned()),
            ),
            (r#"{"jsonrpc":"2.0","id":3,"method":"tools/call"}"#, None),
            (r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#, None),
            (r#"{"jsonrpc":"2.0","id":1,"method":"notifications/resources/updated"}"#, None),
            (r#"{"jsonrpc":"2.0","id":1,"result":{}}"#, None),
            ("not json", None),
        ] {
            let got = relayed(data, p).map(|b| String::from_utf8(b.to_vec()).expect("utf8"));
            assert_eq!(got, want, "{data}");
        }
    }
}
