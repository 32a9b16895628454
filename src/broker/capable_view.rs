//! Tools a server lists only to clients that declare some capability.
//!
//! A server may register a tool only for a session whose client can take the requests the tool
//! sends: server-everything lists `get-roots-list` to a client that declares `roots`,
//! `trigger-sampling-request` to one with `sampling`, and so on. Discovery declares no client
//! capability, so the catalog never had those tools, though the gateway relays those requests
//! and routes the calls (by the server's prefix) to the caller's own upstream session, which
//! declares the client's capabilities. So discovery also asks each server, on a session of its
//! own that declares every capability the gateway relays ([`EVERY_RELAYED`]), for its tools: when
//! that list names a tool the usual one does not, the server's tools vary with the client
//! ([`ServerLists::tools_vary_by_capabilities`]), and a 2025 session that declared any of
//! those capabilities gets this server's list from its own upstream session, as the server
//! would list it to that client directly (`user_lists`). It asks on a server's first round, and
//! again when the server's usual list or its `tools/list_changed` count changes: not every
//! interval.

use std::collections::HashSet;

use serde_json::Value;

use crate::catalog::ServerLists;
use crate::config::Server;
use crate::mcp::{self, method};
use crate::upstream::{UpstreamClient, UpstreamError, Via};

/// Every client capability the gateway relays ([`mcp::RELAYED_CLIENT_CAPABILITIES`]), each with
/// all it can say (both elicitation modes, roots' list changes).
pub(super) const EVERY_RELAYED: &str =
    r#"{"sampling":{},"elicitation":{"form":{},"url":{}},"roots":{"listChanged":true}}"#;

/// The names in a tools list.
fn names(tools: &[Value]) -> HashSet<&str> {
    tools
        .iter()
        .filter_map(|t| t.get("name").and_then(Value::as_str))
        .collect()
}

/// Whether `capable` (the list a client with every relayed capability gets) names a tool that
/// `usual` (discovery's list) does not. Pure.
pub(super) fn varies(usual: &[Value], capable: &[Value]) -> bool {
    let usual = names(usual);
    names(capable).iter().any(|n| !usual.contains(n))
}

/// Whether to ask again after a round that read `fresh`, the round before having read `last`:
/// on the first round, or when the usual list's names or the server's count of
/// `tools/list_changed` changed. Pure.
pub(super) fn ask_again(last: &ServerLists, fresh: &ServerLists) -> bool {
    last.updated.is_none()
        || last.told.tools != fresh.told.tools
        || names(&last.tools) != names(&fresh.tools)
}

/// Asks `server` on a session of its own that declares [`EVERY_RELAYED`] (closed after) whether
/// it lists more tools than `usual` then.
pub(super) async fn ask(
    server: &Server,
    client: &UpstreamClient,
    credential: Option<&str>,
    usual: &[Value],
) -> Result<bool, UpstreamError> {
    let s = client
        .initialize_for(
            server,
            &Via::Direct,
            credential,
            mcp::LATEST_VERSION,
            None,
            Some(EVERY_RELAYED),
        )
        .await?;
    let listed =
        super::discovery::list_all(server, client, credential, &s, method::TOOLS_LIST, "tools")
            .await;
    if let Some(id) = &s.session_id {
        client.close(server, id, credential).await;
    }
    Ok(varies(usual, &listed?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tools(names: &[&str]) -> Vec<Value> {
        names.iter().map(|n| json!({"name": n})).collect()
    }

    #[test]
    fn every_relayed_capability_is_declared() {
        let v: Value = serde_json::from_str(EVERY_RELAYED).expect("json");
        let mut keys: Vec<&str> = v
            .as_object()
            .expect("object")
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort_unstable();
        let mut relayed = mcp::RELAYED_CLIENT_CAPABILITIES.to_vec();
        relayed.sort_unstable();
        assert_eq!(keys, relayed);
        // What an upstream session declares for a client is kept to the relayed ones: all of
        // this passes.
        assert_eq!(
            mcp::relayed_client_capabilities(&v)
                .as_deref()
                .map(|s| serde_json::from_str::<Value>(s).expect("json")),
            Some(v)
        );
    }

    #[test]
    fn a_server_varies_when_the_capable_list_names_a_tool_the_usual_one_does_not() {
        for (usual, capable, want) in [
            (&["a", "b"][..], &["a", "b"][..], false),
            (&["a", "b"], &["b", "a"], false),
            (&["a", "b"], &["a", "b", "get-roots-list"], true),
            (&["a", "b"], &["a"], false),
            (&[], &[], false),
            (&[], &["a"], true),
        ] {
            assert_eq!(
                varies(&tools(usual), &tools(capable)),
                want,
                "{usual:?} {capable:?}"
            );
        }
    }

    #[test]
    fn it_asks_again_on_the_first_round_and_when_the_tools_change() {
        let round = |names: &[&str], told: u64, seen: bool| ServerLists {
            tools: tools(names),
            told: crate::catalog::Told {
                tools: told,
                ..Default::default()
            },
            updated: seen.then(std::time::SystemTime::now),
            ..Default::default()
        };
        for (last, fresh, want) in [
            (round(&[], 0, false), round(&["a"], 0, true), true),
            (round(&["a"], 0, true), round(&["a"], 0, true), false),
            (round(&["a"], 0, true), round(&["a", "b"], 0, true), true),
            (round(&["a"], 0, true), round(&["a"], 1, true), true),
            (
                round(&["a", "b"], 1, true),
                round(&["b", "a"], 1, true),
                false,
            ),
        ] {
            assert_eq!(
                ask_again(&last, &fresh),
                want,
                "{:?} → {:?}",
                last.tools,
                fresh.tools
            );
        }
    }
}
