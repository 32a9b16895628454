//! Servers with `userSpecificList: true` (the seed's key): what they list depends on who asks, so
//! the gateway does not discover them; each user's `tools/list` fetches theirs, with the user's
//! own credential, in the upstream session of (gateway session, server) that the user's calls
//! then use too, and merges them under the server's prefix. Calls are routed by that prefix (the
//! catalog's prefix lookup) like any other.
//!
//! A stateless (2026-07-28) client's list is fetched the same way on an upstream session of its
//! own, closed after (its calls go through the router's per-caller sessions).
//!
//! The user's credential: the one they gave by URL elicitation when the server has
//! `tokenURLElicitation`, else their own `Authorization`. Nothing else of the client's request
//! goes upstream: no cookies, no `Proxy-Authorization`, no `x-mcp-*` (gateway-scoped headers).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::Broker;
use crate::auth::access::{self, Permissions};
use crate::auth::session::GatewaySession;
use crate::auth::Caller;
use crate::config::Server;
use crate::upstream::{Established, UpstreamError, Via};

/// How long one server's list may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a list waits for a new upstream session's GET stream to open.
const STREAM_OPEN_WAIT: Duration = Duration::from_secs(2);

/// What a user's list request brings.
pub(super) struct Asker<'a> {
    /// `None` for a stateless (2026-07-28) client: each list is fetched on an upstream session of
    /// its own, closed after.
    pub session: Option<&'a GatewaySession>,
    pub caller: &'a Caller,
    pub authorization: Option<&'a str>,
    pub permissions: &'a Permissions,
    pub virtual_server: Option<&'a str>,
}

/// The rest of a 2025 session's `tools/list` after the catalog's list (`listed`): shaped by the
/// discovery meta-tools (a session's scope or threshold), then the per-user tools; then, for a
/// client that declared relayed capabilities and a list the meta-tools did not shape, the
/// tools its capabilities add (`capable_view`: with a threshold or a scope, the client finds
/// tools through the meta-tools, and calls by name reach those too).
pub(super) async fn session_tools_list(
    b: &Broker,
    asker: &Asker<'_>,
    jti: &str,
    listed: Value,
) -> Value {
    let relayed = asker.session.and_then(super::capable_view::relayed);
    let catalog = b.catalog.borrow().clone();
    let before = relayed
        .as_ref()
        .map(|_| super::capable_view::upstream_tools(&listed, &catalog));
    let (vs, permissions) = (asker.virtual_server, asker.permissions);
    let mut result = super::meta_tools::tools_list(b, listed, jti, vs, permissions);
    let shaped = before.is_some_and(|n| super::capable_view::upstream_tools(&result, &catalog) < n);
    merge(b, asker, &mut result).await;
    if let (Some(capabilities), false) = (relayed.as_deref(), shaped) {
        super::capable_view::add(b, asker, capabilities, &mut result).await;
    }
    result
}

/// The rest of a stateless (2026-07-28) client's `tools/list` after the catalog's list: the
/// per-user tools, then the tools the capabilities the request declared (`declared`) add
/// (`capable_view`). True when the list now depends on the caller or on what it declared
/// (`cacheScope: private`).
pub(super) async fn stateless_tools_list(
    b: &Broker,
    asker: &Asker<'_>,
    config: &crate::config::Config,
    declared: Option<&str>,
    result: &mut Value,
) -> bool {
    let mut private = false;
    if config.enabled_servers().any(|s| s.user_specific_list) {
        merge(b, asker, result).await;
        private = true;
    }
    if let Some(capabilities) = declared {
        private |= super::capable_view::add(b, asker, capabilities, result).await > 0;
    }
    private
}

/// Appends the user-specific tools of every enabled `userSpecificList` server to `result`'s
/// `tools` (a server that fails adds nothing; the rest of the list stands).
pub(super) async fn merge(b: &Broker, asker: &Asker<'_>, result: &mut Value) {
    let config = b.config.borrow().clone();
    let servers: Vec<&Arc<Server>> = config
        .enabled_servers()
        .filter(|s| s.user_specific_list)
        .collect();
    if servers.is_empty() {
        return;
    }
    let fetched = futures_util::future::join_all(servers.iter().map(|s| fetch(b, asker, s))).await;
    let vs = asker.virtual_server.and_then(|n| config.virtual_server(n));
    let Some(tools) = result.get_mut("tools").and_then(Value::as_array_mut) else {
        return;
    };
    let mut seen: std::collections::HashSet<String> = tools
        .iter()
        .filter_map(|t| t.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect();
    for (server, list) in servers.iter().zip(fetched) {
        for tool in prefixed(server, list) {
            let Some(name) = tool.get("name").and_then(Value::as_str).map(str::to_owned) else {
                continue;
            };
            let upstream_name = &name[server.prefix.len()..];
            let listed = vs.is_none_or(|v| v.tools.contains(&name))
                && (asker.permissions.unrestricted()
                    || asker
                        .permissions
                        .allows(access::Kind::Tool, &server.name, upstream_name));
            if listed && seen.insert(name) {
                tools.push(tool);
            }
        }
    }
}

/// A server's tools under its prefix. Pure.
fn prefixed(server: &Server, tools: Vec<Value>) -> Vec<Value> {
    tools
        .into_iter()
        .filter_map(|mut t| {
            let name = t.get("name").and_then(Value::as_str)?.to_owned();
            if name.is_empty() {
                return None;
            }
            t.as_object_mut()?
                .insert("name".into(), json!(format!("{}{name}", server.prefix)));
            Some(t)
        })
        .collect()
}

/// The user's credential for `server` (see module docs).
async fn credential(b: &Broker, asker: &Asker<'_>, server: &Server) -> Option<String> {
    if let (Some(store), Some(_)) = (&b.user_tokens, &server.token_url_elicitation) {
        let subject = match &asker.caller.identity {
            Some(id) => Some(id.binding.to_string()),
            None => crate::auth::elicitation::unverified_sub(asker.authorization),
        };
        if let (Some(subject), Some(session)) = (subject, asker.session) {
            if let Some(t) = store.get(&session.jti, &server.name, &subject).await {
                return Some(t);
            }
        }
    }
    asker.authorization.map(str::to_owned)
}

/// One list on an upstream session of its own, closed after (a stateless client's).
async fn fetch_once(
    b: &Broker,
    server: &Arc<Server>,
    authorization: Option<String>,
) -> Result<Vec<Value>, String> {
    super::one_off::tools(server, &b.client, authorization, None, Some(&b.init_limits))
        .await
        .map_err(|e| e.to_string())
}

async fn fetch(b: &Broker, asker: &Asker<'_>, server: &Arc<Server>) -> Vec<Value> {
    let work = async {
        let authorization = credential(b, asker, server).await;
        let Some(session) = asker.session else {
            return fetch_once(b, server, authorization.clone()).await;
        };
        let key = crate::upstream::SessionKey::new(session.jti.clone(), server.name.clone());
        for attempt in 0..2 {
            let auth = authorization.as_deref();
            let created_here = std::sync::atomic::AtomicBool::new(false);
            let initialize = async {
                created_here.store(true, std::sync::atomic::Ordering::Relaxed);
                b.client
                    .initialize_for(
                        server,
                        &Via::Direct,
                        auth,
                        crate::mcp::LATEST_VERSION,
                        None,
                        session.client_capabilities.as_deref(),
                    )
                    .await
            };
            let upstream = b
                .sessions
                .get_or_create(key.clone(), session.remaining(), initialize)
                .await
                .map_err(|e| e.to_string())?;
            let established = Established {
                session_id: upstream.id.as_deref().map(str::to_owned),
                protocol_version: upstream.protocol_version.to_string(),
                result: Value::Null,
            };
            // As when the router creates a session: what the server asks the client on the
            // session's own GET stream (roots, sampling, elicitation) is relayed to the client.
            // Only by the replica that created the session (a second GET stream is refused).
            if created_here.load(std::sync::atomic::Ordering::Relaxed)
                && crate::upstream::get_stream::wanted(
                    session.client_capabilities.as_deref(),
                    upstream.id.is_some(),
                    &upstream.protocol_version,
                )
            {
                let opened = b.updates.listen(
                    key.clone(),
                    server.clone(),
                    established.clone(),
                    authorization.clone(),
                    b.client.clone(),
                    crate::mcp::tag::tag_prefix(&server.name),
                );
                let _ = tokio::time::timeout(STREAM_OPEN_WAIT, opened).await;
            }
            // Every page, as discovery and the one-off lists read them.
            match super::discovery::list_all(
                server,
                &b.client,
                auth,
                &established,
                crate::mcp::method::TOOLS_LIST,
                "tools",
            )
            .await
            {
                Ok(tools) => return Ok(tools),
                // The upstream lost the session: a new one, once.
                Err(UpstreamError::SessionGone) if attempt == 0 => {
                    b.sessions.forget(&key).await;
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Err("the upstream lost its session twice".to_owned())
    };
    super::one_off::or_nothing(server, "user-specific tools/list", FETCH_TIMEOUT, work).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_get_the_servers_prefix_and_nameless_ones_are_dropped() {
        let config = crate::config::Config::from_yaml(
            "servers: [{name: ns/u, url: 'http://u/mcp', prefix: u_, userSpecificList: true}]",
        )
        .expect("config");
        let server = &config.servers[0];
        assert!(server.user_specific_list);
        let out = prefixed(
            server,
            vec![
                json!({"name": "mine", "inputSchema": {}}),
                json!({"name": ""}),
                json!({"title": "no name"}),
            ],
        );
        assert_eq!(out, vec![json!({"name": "u_mine", "inputSchema": {}})]);
    }
}
