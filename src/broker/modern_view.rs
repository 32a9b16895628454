//! Servers that speak both protocol generations may say different things to each: the suite's
//! reference server lists 25 tools to a 2026-07-28 request and 14 in a 2025 session. Discovery
//! asks such a server again as a 2026-07-28 client (`server/discover`, then the lists) and keeps
//! that view when it differs ([`crate::catalog::ServerLists::modern`]); the catalog then shows
//! 2026-07-28 clients that view, and their calls to that server go to it natively.

use serde_json::Value;

use crate::catalog::ServerLists;
use crate::config::Server;
use crate::mcp;
use crate::upstream::UpstreamClient;

/// What `server` says to a 2026-07-28 client, when it speaks that revision too and says
/// something else there than in the session generation (`session`, this round's lists).
pub(super) async fn modern_view(
    server: &Server,
    client: &UpstreamClient,
    credential: Option<&str>,
    session: &ServerLists,
) -> Option<Box<ServerLists>> {
    if mcp::is_modern(session.protocol_version.as_deref()) {
        // A server of that revision only: the session view is already its own.
        return None;
    }
    let s = client
        .discover_modern(server, credential, None)
        .await
        .inspect_err(|e| tracing::debug!(server = %server.name, error = %e, "no 2026-07-28 view"))
        .ok()?;
    if !speaks_modern(&s.result) {
        return None;
    }
    let lists = super::discovery::read_lists(server, client, credential, &s)
        .await
        .inspect_err(|e| tracing::debug!(server = %server.name, error = %e, "2026-07-28 lists"))
        .ok()?;
    differs(session, &lists).then(|| Box::new(lists))
}

/// Whether a `server/discover` result names a stateless version among those it supports.
fn speaks_modern(result: &Value) -> bool {
    result
        .get("supportedVersions")
        .and_then(Value::as_array)
        .is_some_and(|v| v.iter().any(|v| mcp::is_modern(v.as_str())))
}

/// Whether the two views name different tools, prompts, resources or templates (the entries'
/// other members, such as caching hints, do not count).
fn differs(a: &ServerLists, b: &ServerLists) -> bool {
    let names = |items: &[Value], field: &str| -> Vec<String> {
        let mut v: Vec<String> = items
            .iter()
            .filter_map(|i| i.get(field).and_then(Value::as_str).map(str::to_owned))
            .collect();
        v.sort();
        v
    };
    names(&a.tools, "name") != names(&b.tools, "name")
        || names(&a.prompts, "name") != names(&b.prompts, "name")
        || names(&a.resources, "uri") != names(&b.resources, "uri")
        || names(&a.resource_templates, "uriTemplate")
            != names(&b.resource_templates, "uriTemplate")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lists(tools: &[&str], prompts: &[&str]) -> ServerLists {
        ServerLists {
            tools: tools.iter().map(|t| json!({"name": t})).collect(),
            prompts: prompts.iter().map(|p| json!({"name": p})).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn only_a_different_offer_makes_a_view() {
        for (a, b, differ) in [
            (lists(&["a", "b"], &[]), lists(&["b", "a"], &[]), false),
            (lists(&["a"], &[]), lists(&["a", "mrtr"], &[]), true),
            (lists(&["a"], &["p"]), lists(&["a"], &[]), true),
            (lists(&[], &[]), lists(&[], &[]), false),
        ] {
            assert_eq!(differs(&a, &b), differ);
        }
        let mut with_hint = lists(&["a"], &[]);
        with_hint.tools[0]["ttlMs"] = json!(5);
        assert!(!differs(&lists(&["a"], &[]), &with_hint));
    }

    #[test]
    fn a_discover_result_says_whether_the_server_speaks_2026() {
        for (result, modern) in [
            (
                json!({"supportedVersions": ["2026-07-28", "2025-11-25"]}),
                true,
            ),
            (json!({"supportedVersions": ["2025-11-25"]}), false),
            (json!({"supportedVersions": "2026-07-28"}), false),
            (json!({}), false),
        ] {
            assert_eq!(speaks_modern(&result), modern, "{result}");
        }
    }
}
