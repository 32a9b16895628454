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
//! ([`ServerLists::tools_vary_by_capabilities`]). It asks on a server's first round, again when
//! the server's usual list or its `tools/list_changed` count changes, and after an ask that
//! failed: not every interval.
//!
//! A 2025 session whose client declared any of those capabilities (or a stateless 2026-07-28
//! request that declares them in its `_meta`) then gets, in its `tools/list`, the tools such a
//! server lists to its client that discovery did not see ([`add`]): fetched on an upstream
//! session of its own that declares the client's capabilities (closed after; the session its
//! calls use is the router's, made at its first call), with what the router's calls carry.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::Value;

use super::user_lists::Asker;
use super::Broker;
use crate::auth::access::{self, Permissions};
use crate::auth::session::GatewaySession;
use crate::auth::Caller;
use crate::catalog::{Catalog, ServerLists};
use crate::config::{Server, VirtualServer};
use crate::deadline::Deadline;
use crate::upstream::{UpstreamClient, UpstreamError};

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

/// Rounds in a row that ask again after [`discovered`]'s ask failed; then only a change of the
/// server's tools does.
pub(super) const TRIES: u32 = 3;

/// For discovery: whether the server's tools vary with the client's capabilities, asked when `asked_ok` is false (the first round, or the last ask failed, a few times) or
/// [`ask_again`] says so, else as the round before found; `None` when the
/// ask failed (the round before's answer stands, and the next round asks again). A server
/// without sessions (whose lists cannot depend on a session's client) is not asked.
pub(super) async fn discovered(
    server: &Arc<Server>,
    client: &Arc<UpstreamClient>,
    gatekeeper: &crate::auth::Gatekeeper,
    session: Option<&crate::upstream::Established>,
    asked_ok: bool,
    last: &ServerLists,
    fresh: &ServerLists,
) -> Option<bool> {
    if session.is_none_or(|s| s.session_id.is_none()) {
        return Some(false);
    }
    if asked_ok && !ask_again(last, fresh) {
        return Some(last.tools_vary_by_capabilities);
    }
    // A server that lists no tools has none that vary.
    let lists_tools = session.is_some_and(|s| {
        s.result
            .get("capabilities")
            .and_then(|c| c.get("tools"))
            .is_some_and(|t| !t.is_null())
    });
    if !lists_tools {
        return Some(false);
    }
    let credential = super::discovery::credential(server, gatekeeper)
        .await
        .ok()
        .flatten();
    match ask(server, client, credential, &fresh.tools).await {
        Ok(varies) => {
            if varies && !last.tools_vary_by_capabilities {
                tracing::info!(server = %server.name, "the server lists more tools to clients with more capabilities: their sessions get its list as it lists it to them");
            }
            Some(varies)
        }
        Err(e) => {
            tracing::debug!(server = %server.name, error = %e, "asking for the tools a capable client is listed failed");
            None
        }
    }
}

/// Asks `server`, on a session of its own that declares [`EVERY_RELAYED`] (closed after),
/// whether it lists more tools than `usual` then.
pub(super) async fn ask(
    server: &Arc<Server>,
    client: &Arc<UpstreamClient>,
    credential: Option<String>,
    usual: &[Value],
) -> Result<bool, UpstreamError> {
    let capable =
        super::one_off::tools(server, client, credential, Some(EVERY_RELAYED), None).await?;
    Ok(varies(usual, &capable))
}

/// How long a session's list of one server may take (its steps are bounded inside it, so that
/// an upstream session it opened is closed all the same).
const FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);
/// How long the token exchange for that list may take.
const EXCHANGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether a session's `tools/list` gets `server`'s own list for its client: the session
/// `declared` capabilities; the server's tools vary with them, and it is ready and not refused;
/// it has a prefix (calls of tools the catalog does not have are routed by it); its calls carry
/// no per-user credential (`tokenURLElicitation` and `userSpecificList` servers are listed per
/// user apart, `user_lists`); and the caller may use some tool of it, in the virtual server
/// chosen. Pure.
pub(super) fn listed_per_session(
    server: &Server,
    declared: bool,
    catalog: &Catalog,
    permissions: &Permissions,
    virtual_server: Option<&VirtualServer>,
) -> bool {
    declared
        && !server.prefix.is_empty()
        && server.token_url_elicitation.is_none()
        && !server.user_specific_list
        && catalog.tools_vary_by_capabilities(&server.name)
        && (permissions.unrestricted() || permissions.allows_any(access::Kind::Tool, &server.name))
        && virtual_server.is_none_or(|v| {
            v.tools.iter().any(|t| {
                catalog
                    .find_tool(t)
                    .is_some_and(|r| r.server.name == server.name)
            })
        })
}

/// Which of `fetched` (a server's list for the session's client, unprefixed) the session's list
/// gains: valid tools that discovery did not list (the catalog has the rest, shaped by the
/// meta-tools), routed to `server` by its prefix (not left out by `--invalid-tool-policy`), in
/// the virtual server and allowed to the caller. Prefixed. Pure.
pub(super) fn gained(
    server: &Server,
    fetched: Vec<Value>,
    catalog: &Catalog,
    permissions: &Permissions,
    virtual_server: Option<&VirtualServer>,
) -> Vec<Value> {
    fetched
        .into_iter()
        .filter(|t| crate::tool_validation::tool_errors(t).is_empty())
        .filter_map(|mut t| {
            let name = t.get("name").and_then(Value::as_str)?.to_owned();
            let prefixed = format!("{}{name}", server.prefix);
            let routed_here = catalog
                .find_tool(&prefixed)
                .is_some_and(|r| r.server.name == server.name);
            let listed = !catalog.has_tool(&prefixed)
                && routed_here
                && virtual_server.is_none_or(|v| v.tools.contains(&prefixed))
                && permissions.allows(access::Kind::Tool, &server.name, &name);
            if !listed {
                return None;
            }
            t.as_object_mut()?
                .insert("name".into(), Value::from(prefixed));
            Some(t)
        })
        .collect()
}

/// How many of a `tools/list` result's tools are upstream tools (not the broker's meta-tools).
pub(super) fn upstream_tools(result: &Value, catalog: &Catalog) -> usize {
    result
        .get("tools")
        .and_then(Value::as_array)
        .map_or(0, |tools| {
            tools
                .iter()
                .filter(|t| {
                    t.get("name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| !catalog.is_broker_tool(n))
                })
                .count()
        })
}

/// The relayed part of the capabilities a gateway session's client declared, as JSON; `None`
/// when it declared none of them (a `tasks`-only client, say).
pub(super) fn relayed(session: &GatewaySession) -> Option<String> {
    let declared: Value = serde_json::from_str(session.client_capabilities.as_deref()?).ok()?;
    crate::mcp::relayed_client_capabilities(&declared)
}

/// Adds to a `tools/list` result the tools the servers [`listed_per_session`] list to a client
/// declaring `capabilities` (a 2025 session's [`relayed`] ones, or those a 2026-07-28 request
/// declares in its `_meta`) and discovery did not see, each server's read on an upstream session
/// of its own that declares them (closed after), with what the router's calls to it carry. A
/// server that fails or takes over 20 s adds nothing. Returns how many tools it added.
pub(super) async fn add(
    b: &Broker,
    asker: &Asker<'_>,
    capabilities: &str,
    result: &mut Value,
) -> usize {
    let (caller, authorization, permissions) =
        (asker.caller, asker.authorization, asker.permissions);
    let config = b.config.borrow().clone();
    let catalog = b.catalog.borrow().clone();
    let vs = asker.virtual_server.and_then(|n| config.virtual_server(n));
    let servers: Vec<&Arc<Server>> = config
        .enabled_servers()
        .filter(|s| listed_per_session(s, true, &catalog, permissions, vs))
        .collect();
    if servers.is_empty() {
        return 0;
    }
    let fetched = futures_util::future::join_all(servers.iter().map(|server| {
        let catalog = &catalog;
        async move {
            let work = async {
                let credential = routed_credential(b, caller, authorization, server).await?;
                let key = super::capable_lists::ListKey::new(
                    server,
                    capabilities,
                    credential.as_deref(),
                    catalog.tools_generation(&server.name),
                );
                let read = super::one_off::tools(
                    server,
                    &b.client,
                    credential,
                    Some(capabilities),
                    Some(&b.init_limits),
                );
                b.capable_lists.get_or_read(key, read).await
            };
            super::one_off::or_nothing(server, "a session's own tools/list", FETCH_TIMEOUT, work)
                .await
        }
    }))
    .await;
    let Some(tools) = result.get_mut("tools").and_then(Value::as_array_mut) else {
        return 0;
    };
    let before = tools.len();
    for (server, list) in servers.iter().zip(fetched) {
        for tool in gained(server, list, &catalog, permissions, vs) {
            let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
            if !tools
                .iter()
                .any(|t| t.get("name").and_then(Value::as_str) == Some(name))
            {
                tools.push(tool);
            }
        }
    }
    tools.len() - before
}

/// What the router's calls to `server` carry as `Authorization` ([`crate::auth::upstream_auth`]);
/// an error when the exchange it needs cannot be made (nothing is fetched then).
async fn routed_credential(
    b: &Broker,
    caller: &Caller,
    authorization: Option<&str>,
    server: &Server,
) -> Result<Option<String>, String> {
    match crate::auth::upstream_auth(server, caller.identity.is_some()) {
        crate::auth::UpstreamAuth::Exchange(te) => {
            let subject = caller
                .token
                .as_deref()
                .ok_or("no bearer token to exchange")?;
            let exchanged =
                b.gatekeeper
                    .exchanger
                    .exchange(te, subject, Deadline::after(EXCHANGE_TIMEOUT));
            let token = Box::pin(exchanged).await.map_err(|e| e.to_string())?;
            Ok(Some(format!("Bearer {token}")))
        }
        crate::auth::UpstreamAuth::Credential(c) => Ok(Some(c.to_owned())),
        crate::auth::UpstreamAuth::Callers => Ok(authorization.map(str::to_owned)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::access::Capabilities;
    use crate::catalog::Health;
    use serde_json::json;
    use std::collections::HashMap;

    /// Servers: `ns/v` (prefix `v_`, its tools vary, lists `listed` and the invalid `bad name`),
    /// `ns/plain` (does not vary), `ns/down` (varies, failing), `ns/bare` (varies, no prefix),
    /// `ns/elicit` (varies, `tokenURLElicitation`), `ns/user` (`userSpecificList`); virtual
    /// server `vs` has `v_extra` only, `none` has `plain_t` only.
    fn catalog() -> (crate::config::Config, Catalog) {
        let config = crate::config::Config::from_yaml(
            "servers:\n\
             - {name: ns/v, url: 'http://v/mcp', prefix: v_}\n\
             - {name: ns/plain, url: 'http://p/mcp', prefix: plain_}\n\
             - {name: ns/down, url: 'http://d/mcp', prefix: d_}\n\
             - {name: ns/bare, url: 'http://b/mcp'}\n\
             - {name: ns/elicit, url: 'http://e/mcp', prefix: e_, tokenURLElicitation: {}}\n\
             - {name: ns/user, url: 'http://u/mcp', prefix: u_, userSpecificList: true}\n\
             virtualServers:\n\
             - {name: vs, tools: [v_extra]}\n\
             - {name: none, tools: [plain_t]}\n",
        )
        .expect("config");
        let lists = |varies: bool, health: Health, tools: Value| ServerLists {
            tools_vary_by_capabilities: varies,
            health,
            tools: serde_json::from_value(tools).expect("tools"),
            ..Default::default()
        };
        let failing = Health::Failing {
            attempts: 1,
            last_error: "down".into(),
        };
        let discovered: HashMap<Arc<str>, ServerLists> = [
            (
                "ns/v",
                lists(
                    true,
                    Health::Ready,
                    json!([{"name": "listed", "inputSchema": {"type": "object"}}]),
                ),
            ),
            ("ns/plain", lists(false, Health::Ready, json!([]))),
            ("ns/down", lists(true, failing, json!([]))),
            ("ns/bare", lists(true, Health::Ready, json!([]))),
            ("ns/elicit", lists(true, Health::Ready, json!([]))),
            ("ns/user", lists(true, Health::Ready, json!([]))),
        ]
        .into_iter()
        .map(|(n, l)| (Arc::from(n), l))
        .collect();
        let catalog = Catalog::build(&config, &discovered);
        (config, catalog)
    }

    fn limited(text: &str) -> Permissions {
        Permissions {
            roles: None,
            capabilities: Some(Arc::new(Capabilities::parse(text).expect("caps"))),
        }
    }

    #[test]
    fn which_servers_a_sessions_list_is_asked_of() {
        let (config, catalog) = catalog();
        let all = Permissions::default();
        let only_plain = limited(r#"{"tools": {"ns/plain": ["t"]}}"#);
        // Allowed only a tool discovery does not list: still asked.
        let only_extra = limited(r#"{"tools": {"ns/v": ["extra"]}}"#);
        for (server, declared, permissions, vs, want) in [
            ("ns/v", true, &all, None, true),
            ("ns/v", false, &all, None, false),
            ("ns/plain", true, &all, None, false),
            ("ns/down", true, &all, None, false),
            ("ns/bare", true, &all, None, false),
            ("ns/elicit", true, &all, None, false),
            ("ns/user", true, &all, None, false),
            // A caller allowed nothing of it, or a virtual server with none of its tools: the
            // server is not even asked.
            ("ns/v", true, &only_plain, None, false),
            ("ns/v", true, &only_extra, None, true),
            ("ns/v", true, &all, Some("vs"), true),
            ("ns/v", true, &all, Some("none"), false),
        ] {
            let s = config
                .servers
                .iter()
                .find(|s| &*s.name == server)
                .expect("server");
            let vs = vs.and_then(|n| config.virtual_server(n));
            assert_eq!(
                listed_per_session(s, declared, &catalog, permissions, vs),
                want,
                "{server}, declared {declared}, vs {:?}",
                vs.map(|v| &v.name)
            );
        }
    }

    #[test]
    fn the_meta_tools_are_not_counted_as_upstream_tools() {
        let (_, mut catalog) = catalog();
        catalog.broker_tools = vec!["discover_tools", "select_tools"];
        for (tools, want) in [
            (json!({"tools": []}), 0),
            (
                json!({"tools": [{"name": "v_listed"}, {"name": "discover_tools"}]}),
                1,
            ),
            (json!({"tools": [{"name": "select_tools"}]}), 0),
            (json!({}), 0),
        ] {
            assert_eq!(upstream_tools(&tools, &catalog), want, "{tools}");
        }
    }

    #[test]
    fn a_session_gains_the_valid_allowed_tools_discovery_did_not_list() {
        let (config, catalog) = catalog();
        let server = config
            .servers
            .iter()
            .find(|s| &*s.name == "ns/v")
            .expect("server");
        let fetched = || {
            vec![
                json!({"name": "listed", "inputSchema": {"type": "object"}}),
                json!({"name": "extra", "inputSchema": {"type": "object"}}),
                json!({"name": "other", "inputSchema": {"type": "object"}}),
                json!({"name": "bad name", "inputSchema": {"type": "object"}}),
                json!({"name": "no-schema"}),
            ]
        };
        let names = |v: Vec<Value>| -> Vec<String> {
            v.iter()
                .map(|t| t["name"].as_str().expect("name").to_owned())
                .collect()
        };
        let all = Permissions::default();
        assert_eq!(
            names(gained(server, fetched(), &catalog, &all, None)),
            ["v_extra", "v_other"]
        );
        let vs = config.virtual_server("vs");
        assert_eq!(
            names(gained(server, fetched(), &catalog, &all, vs)),
            ["v_extra"]
        );
        let only_other = limited(r#"{"tools": {"ns/v": ["other"]}}"#);
        assert_eq!(
            names(gained(server, fetched(), &catalog, &only_other, None)),
            ["v_other"]
        );
    }

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
        let mut relayed = crate::mcp::RELAYED_CLIENT_CAPABILITIES.to_vec();
        relayed.sort_unstable();
        assert_eq!(keys, relayed);
        // What an upstream session declares for a client is kept to the relayed ones: all of
        // this passes.
        assert_eq!(
            crate::mcp::relayed_client_capabilities(&v)
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
