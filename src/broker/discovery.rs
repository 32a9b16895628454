//! Discovery: one task per enabled upstream keeps its tools, prompts and resources current, and
//! one aggregator turns their reports plus the config into the published [`Catalog`].
//!
//! A task initializes its own upstream session (with the server's `credential`), lists
//! everything, then waits for the check interval or a `list_changed` notification on the
//! server's GET stream (or, from a server that speaks 2026-07-28, on its `subscriptions/listen`
//! stream: `upstream_listen`). A failing upstream is retried with exponential backoff; its entries stay
//! offered for [`DROP_AFTER`] failed attempts in a row and are then dropped until it recovers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::auth::Gatekeeper;
use crate::catalog::{Catalog, Health, ServerLists};
use crate::config::{Config, Server};
use crate::mcp::{self, method};
use crate::telemetry::Metrics;
use crate::tool_validation::{self, InvalidToolPolicy};
use crate::upstream::{sse, Established, UpstreamClient, UpstreamError, Via};

/// Failed attempts in a row after which a server's entries are dropped.
pub const DROP_AFTER: u32 = 3;
/// Upper bound on pages read from one list (bounded work per refresh).
const MAX_PAGES: usize = 100;
/// Budget of one discovery round (initialize + all lists).
const ROUND_TIMEOUT: Duration = Duration::from_secs(30);

/// How discovery is paced.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// Refresh interval (`--mcp-check-interval`).
    pub interval: Duration,
    /// First retry delay after a failure; doubles up to `interval`.
    pub first_retry: Duration,
}

/// What the catalog offers besides the upstreams' lists as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct Offer {
    /// `--invalid-tool-policy`: judges every server's tool list as it arrives.
    pub invalid_tool_policy: InvalidToolPolicy,
    /// `--discovery-tools-enabled`: the broker's `discover_tools` and `select_tools`.
    pub discovery_tools: bool,
}

/// Starts the aggregator; it runs until `config` has no sender left.
pub fn spawn(
    config: watch::Receiver<Arc<Config>>,
    catalog: watch::Sender<Arc<Catalog>>,
    client: Arc<UpstreamClient>,
    gatekeeper: Arc<Gatekeeper>,
    metrics: Arc<Metrics>,
    pacing: Pacing,
    offer: Offer,
) -> JoinHandle<()> {
    tokio::spawn(aggregate(
        config, catalog, client, gatekeeper, metrics, pacing, offer,
    ))
}

/// The catalog of `config` and `lists`, with the broker's own tools.
fn build(config: &Config, lists: &HashMap<Arc<str>, ServerLists>, offer: Offer) -> Catalog {
    let mut c = Catalog::build(config, lists);
    c.broker_tools = super::meta_tools::offered(offer.discovery_tools, config);
    c
}

struct Running {
    server: Arc<Server>,
    task: JoinHandle<()>,
}

#[allow(clippy::too_many_arguments)]
async fn aggregate(
    mut config: watch::Receiver<Arc<Config>>,
    catalog: watch::Sender<Arc<Catalog>>,
    client: Arc<UpstreamClient>,
    gatekeeper: Arc<Gatekeeper>,
    metrics: Arc<Metrics>,
    pacing: Pacing,
    offer: Offer,
) {
    let (tx, mut rx) = mpsc::channel::<(Arc<str>, ServerLists)>(64);
    let mut running: HashMap<Arc<str>, Running> = HashMap::new();
    let mut lists: HashMap<Arc<str>, ServerLists> = HashMap::new();
    let mut current = config.borrow_and_update().clone();
    reconcile(
        &current,
        &mut running,
        &mut lists,
        &tx,
        &client,
        &gatekeeper,
        &metrics,
        pacing,
    );
    catalog.send_replace(Arc::new(build(&current, &lists, offer)));
    loop {
        tokio::select! {
            changed = config.changed() => {
                if changed.is_err() {
                    break;
                }
                current = config.borrow_and_update().clone();
                reconcile(&current, &mut running, &mut lists, &tx, &client, &gatekeeper, &metrics, pacing);
            }
            Some((name, l)) = rx.recv() => {
                // A report from a task that was since replaced is stale: ignore it.
                if !running.contains_key(&name) {
                    continue;
                }
                let l = judge_tools(offer.invalid_tool_policy, &name, l, lists.get(&name));
                metrics.discovery(&name, l.health == Health::Ready, l.tools.len());
                metrics.invalid_tools(&name, l.invalid_tools.len());
                lists.insert(name, l);
            }
        }
        let built = build(&current, &lists, offer);
        // Each refresh rebuilds the catalog: warn of a conflict when it appears, not every time.
        let before = catalog.borrow().conflicts.clone();
        for c in built.conflicts.iter().filter(|c| !before.contains(c)) {
            tracing::warn!(conflict = %c, "catalog conflict");
        }
        for c in before.iter().filter(|c| !built.conflicts.contains(c)) {
            tracing::info!(conflict = %c, "catalog conflict resolved");
        }
        catalog.send_replace(Arc::new(built));
    }
    for (_, r) in running {
        r.task.abort();
    }
}

/// Applies the invalid tool policy to a server's report, warning when what it leaves out
/// changes (not at every refresh). A report is the upstream's raw list each time (a failing
/// server's repeats its last good one), so judging it again gives the same result.
fn judge_tools(
    policy: InvalidToolPolicy,
    name: &str,
    mut l: ServerLists,
    before: Option<&ServerLists>,
) -> ServerLists {
    let verdict = tool_validation::judge(policy, &l.tools);
    let unchanged = before.is_some_and(|b| {
        b.invalid_tools == verdict.invalid && b.tools_rejected == verdict.rejected
    });
    if !unchanged {
        for t in &verdict.invalid {
            tracing::warn!(server = %name, tool = %t.name, errors = ?t.errors, "invalid tool");
        }
        if verdict.rejected {
            tracing::error!(
                server = %name,
                invalid = verdict.invalid.len(),
                "upstream rejected (--invalid-tool-policy=RejectServer): none of its tools are served"
            );
        } else if !verdict.invalid.is_empty() {
            tracing::warn!(server = %name, invalid = verdict.invalid.len(), valid = verdict.tools.len(), "invalid tools left out");
        }
    }
    l.tools = verdict.tools;
    l.invalid_tools = verdict.invalid;
    l.tools_rejected = verdict.rejected;
    // What the server lists to 2026-07-28 clients, when it differs, is judged the same way.
    if let Some(m) = l.modern.as_deref_mut() {
        let v = tool_validation::judge(policy, &m.tools);
        m.tools = v.tools;
        m.invalid_tools = v.invalid;
        m.tools_rejected = v.rejected;
    }
    l
}

#[allow(clippy::too_many_arguments)]
fn reconcile(
    config: &Config,
    running: &mut HashMap<Arc<str>, Running>,
    lists: &mut HashMap<Arc<str>, ServerLists>,
    tx: &mpsc::Sender<(Arc<str>, ServerLists)>,
    client: &Arc<UpstreamClient>,
    gatekeeper: &Arc<Gatekeeper>,
    metrics: &Arc<Metrics>,
    pacing: Pacing,
) {
    let wanted: HashMap<Arc<str>, &Arc<Server>> = config
        .enabled_servers()
        // Listed per user (user_lists.rs), never by the gateway.
        .filter(|s| !s.user_specific_list)
        .map(|s| (s.name.clone(), s))
        .collect();
    running.retain(|name, r| {
        // A change of prefix or hostname only re-labels what was discovered: the task and its
        // lists stay, and the catalog is rebuilt under the new names at once.
        let keep = wanted
            .get(name)
            .is_some_and(|s| same_upstream(s, &r.server));
        if !keep {
            r.task.abort();
            lists.remove(name);
        }
        keep
    });
    for (name, server) in wanted {
        if running.contains_key(&name) {
            continue;
        }
        let task = tokio::spawn(watch_server(
            (*server).clone(),
            client.clone(),
            gatekeeper.clone(),
            tx.clone(),
            pacing,
        ));
        metrics.discovery(&name, false, 0);
        running.insert(
            name,
            Running {
                server: (*server).clone(),
                task,
            },
        );
    }
}

/// Whether two configs of a server reach the same upstream the same way.
fn same_upstream(a: &Server, b: &Server) -> bool {
    a.url == b.url
        && a.credential == b.credential
        && a.ca_cert == b.ca_cert
        && a.gateway_ca_cert == b.gateway_ca_cert
        && a.token_exchange == b.token_exchange
}

/// Keeps one server's lists current, forever (until aborted).
async fn watch_server(
    server: Arc<Server>,
    client: Arc<UpstreamClient>,
    gatekeeper: Arc<Gatekeeper>,
    tx: mpsc::Sender<(Arc<str>, ServerLists)>,
    pacing: Pacing,
) {
    let mut last = ServerLists::default();
    let mut failures: u32 = 0;
    let mut session: Option<Established> = None;
    let changed = Arc::new(Notify::new());
    let heard = Arc::new(super::upstream_listen::Heard::default());
    let mut stream_task: Option<JoinHandle<()>> = None;
    let mut listening: Option<super::upstream_listen::Listening> = None;
    // Whether the last ask of `capable_view` got an answer, and how many failed in a row.
    let mut capable_asked = false;
    let mut capable_failures: u32 = 0;
    loop {
        // Each round is a trace of its own (exported with OTLP when that is on).
        let span = tracing::debug_span!(
            parent: None,
            "discovery",
            otel.kind = "client",
            mcp.server = %server.name,
            result = tracing::field::Empty,
        );
        let round = tokio::time::timeout(
            ROUND_TIMEOUT,
            discover(&server, &client, &gatekeeper, &mut session),
        )
        .instrument(span.clone())
        .await;
        let outcome = round.unwrap_or(Err(UpstreamError::Timeout));
        span.record("result", if outcome.is_ok() { "ok" } else { "error" });
        match outcome {
            Ok(mut fresh) => {
                if failures > 0 {
                    tracing::info!(server = %server.name, "upstream recovered");
                }
                failures = 0;
                fresh.told = heard.told();
                let varies = super::capable_view::discovered(
                    &server,
                    &client,
                    &gatekeeper,
                    session.as_ref(),
                    capable_asked || capable_failures >= super::capable_view::TRIES,
                    &last,
                    &fresh,
                )
                .await;
                capable_asked = varies.is_some();
                capable_failures = if capable_asked {
                    0
                } else {
                    capable_failures.saturating_add(1)
                };
                fresh.tools_vary_by_capabilities =
                    varies.unwrap_or(last.tools_vary_by_capabilities);
                fresh.updated = Some(SystemTime::now());
                tracing::debug!(server = %server.name, tools = fresh.tools.len(), "discovered");
                last = fresh;
                let _ = tx.send((server.name.clone(), last.clone())).await;
                if stream_task.as_ref().is_none_or(|t| t.is_finished()) {
                    if let Some(s) = &session {
                        let credential = credential(&server, &gatekeeper).await.ok().flatten();
                        stream_task = Some(tokio::spawn(listen(
                            server.clone(),
                            client.clone(),
                            credential,
                            s.clone(),
                            heard.clone(),
                            changed.clone(),
                        )));
                    }
                }
                if super::upstream_listen::wanted(&last)
                    && listening.as_ref().is_none_or(|l| l.is_finished())
                {
                    let credential = credential(&server, &gatekeeper).await.ok().flatten();
                    listening = Some(super::upstream_listen::start(
                        server.clone(),
                        client.clone(),
                        credential,
                        heard.clone(),
                        changed.clone(),
                    ));
                }
                tokio::select! {
                    _ = tokio::time::sleep(pacing.interval) => {}
                    _ = changed.notified() => {
                        tracing::info!(server = %server.name, "upstream lists changed");
                    }
                }
            }
            Err(e) => {
                failures += 1;
                session = None;
                if let Some(t) = stream_task.take() {
                    t.abort();
                }
                listening = None;
                let last_error = e.to_string();
                tracing::warn!(server = %server.name, attempts = failures, error = %last_error, "discovery failed");
                last.health = if failures >= DROP_AFTER {
                    Health::Dropped {
                        attempts: failures,
                        last_error,
                    }
                } else {
                    Health::Failing {
                        attempts: failures,
                        last_error,
                    }
                };
                let _ = tx.send((server.name.clone(), last.clone())).await;
                let backoff = pacing
                    .first_retry
                    .saturating_mul(1 << failures.min(10).saturating_sub(1))
                    .min(pacing.interval);
                tokio::time::sleep(backoff).await;
            }
        }
    }
}

/// The `Authorization` of the gateway's own calls to a server: its static `credential`, else,
/// for a server behind token exchange, a client-credentials token for its audience.
pub(super) async fn credential(
    server: &Server,
    gatekeeper: &Gatekeeper,
) -> Result<Option<String>, UpstreamError> {
    if let Some(c) = &server.credential {
        return Ok(Some(c.clone()));
    }
    let Some(te) = &server.token_exchange else {
        return Ok(None);
    };
    let token = gatekeeper
        .exchanger
        .service_token(te)
        .await
        .map_err(|e| UpstreamError::Token(e.to_string()))?;
    Ok(Some(format!("Bearer {token}")))
}

/// One discovery round: (re)initialize if needed, then read every list the server offers.
async fn discover(
    server: &Server,
    client: &UpstreamClient,
    gatekeeper: &Gatekeeper,
    session: &mut Option<Established>,
) -> Result<ServerLists, UpstreamError> {
    let credential = credential(server, gatekeeper).await?;
    let credential = credential.as_deref();
    // Each round is its own trace: the upstream can tie its spans to this round's log lines
    // (and, with OTLP export on, they join the round's exported span).
    let traceparent = crate::telemetry::trace_context::current_traceparent()
        .unwrap_or_else(crate::telemetry::new_traceparent);
    tracing::debug!(server = %server.name, traceparent = %traceparent, "discovery round");
    let initialize = || {
        client.initialize(
            server,
            &Via::Direct,
            credential,
            mcp::LATEST_VERSION,
            Some(&traceparent),
        )
    };
    let s = match session.take() {
        Some(s) => s,
        None => initialize().await?,
    };
    let result = read_lists(server, client, credential, &s).await;
    let result = match result {
        Ok(mut l) => {
            l.modern = super::modern_view::modern_view(server, client, credential, &l).await;
            Ok(l)
        }
        e => e,
    };
    match result {
        Ok(lists) => {
            *session = Some(s);
            Ok(lists)
        }
        Err(UpstreamError::SessionGone) => {
            // The upstream restarted: start over right away.
            let s = initialize().await?;
            let lists = read_lists(server, client, credential, &s).await?;
            *session = Some(s);
            Ok(lists)
        }
        Err(e) => Err(e),
    }
}

pub(super) async fn read_lists(
    server: &Server,
    client: &UpstreamClient,
    credential: Option<&str>,
    s: &Established,
) -> Result<ServerLists, UpstreamError> {
    let caps = s.result.get("capabilities").cloned().unwrap_or(Value::Null);
    let has = |k: &str| caps.get(k).is_some_and(|v| !v.is_null());
    let mut lists = ServerLists {
        protocol_version: Some(s.protocol_version.clone()),
        server_info: s.result.get("serverInfo").cloned(),
        health: Health::Ready,
        ..Default::default()
    };
    if has("tools") {
        lists.tools = list_all(server, client, credential, s, method::TOOLS_LIST, "tools").await?;
    }
    if has("prompts") {
        lists.prompts = list_all(
            server,
            client,
            credential,
            s,
            method::PROMPTS_LIST,
            "prompts",
        )
        .await?;
    }
    if has("resources") {
        lists.resources = list_all(
            server,
            client,
            credential,
            s,
            method::RESOURCES_LIST,
            "resources",
        )
        .await?;
        // Templates are optional even for servers with resources.
        lists.resource_templates = list_all(
            server,
            client,
            credential,
            s,
            method::RESOURCES_TEMPLATES_LIST,
            "resourceTemplates",
        )
        .await
        .unwrap_or_default();
    }
    Ok(lists)
}

pub(super) async fn list_all(
    server: &Server,
    client: &UpstreamClient,
    credential: Option<&str>,
    s: &Established,
    method: &str,
    field: &str,
) -> Result<Vec<Value>, UpstreamError> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let params = match &cursor {
            Some(c) => json!({"cursor": c}),
            None => json!({}),
        };
        let result = client
            .request(server, s, credential, method, params)
            .await?;
        if let Some(items) = result.get(field).and_then(Value::as_array) {
            out.extend(items.iter().cloned());
        }
        cursor = result
            .get("nextCursor")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    Ok(out)
}

/// Reads the server's GET stream and wakes discovery on `*/list_changed`.
async fn listen(
    server: Arc<Server>,
    client: Arc<UpstreamClient>,
    credential: Option<String>,
    s: Established,
    heard: Arc<super::upstream_listen::Heard>,
    changed: Arc<Notify>,
) {
    let resp = match client.open_stream(&server, &s, credential.as_deref()).await {
        Ok(Some(r)) => r,
        Ok(None) => return,
        Err(e) => {
            tracing::debug!(server = %server.name, error = %e, "no notification stream");
            return;
        }
    };
    sse::each_event(resp, |data| {
        if heard.hear(&data) {
            changed.notify_one();
        }
        true
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    #[test]
    fn the_invalid_tool_policy_judges_the_2026_view_too() {
        let tools = || {
            vec![
                json!({"name": "ok", "inputSchema": {"type": "object"}}),
                json!({"name": "bad name", "inputSchema": {"type": "object"}}),
            ]
        };
        let lists = || ServerLists {
            tools: tools(),
            modern: Some(Box::new(ServerLists {
                tools: tools(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let names = |l: &ServerLists| -> Vec<String> {
            l.tools
                .iter()
                .filter_map(|t| t["name"].as_str().map(str::to_owned))
                .collect()
        };
        let l = judge_tools(InvalidToolPolicy::FilterOut, "ns/a", lists(), None);
        let m = l.modern.as_deref().expect("the 2026 view");
        assert_eq!(names(&l), ["ok"]);
        assert_eq!(names(m), ["ok"]);
        assert_eq!(m.invalid_tools.len(), 1);
        let l = judge_tools(InvalidToolPolicy::RejectServer, "ns/a", lists(), None);
        let m = l.modern.as_deref().expect("the 2026 view");
        assert!(l.tools_rejected && m.tools_rejected);
        assert!(names(m).is_empty());
    }
}
