//! Task status notifications (the Tasks extension, SEP-2663) on a 2026-07-28 client's
//! `subscriptions/listen` stream (SEP-2575).
//!
//! A client asks for them by task id: `params.notifications.taskIds`, the ids it got (tagged
//! with their server, `mcpgw.<server>.<id>`, [`crate::mcp::tag`]). For each server those ids
//! name, the broker opens a `subscriptions/listen` stream of that caller's own to the server,
//! asking for the server's ids and declaring the extension, with the credential that caller's
//! calls to that server carry ([`credential`]: a token exchanged for the server, else its static
//! credential where [`crate::auth::credential_applies`], else the caller's own `Authorization`),
//! never another caller's or the gateway's. So the server decides, as on `tasks/get`, which of
//! its tasks that caller may hear about. The gateway acknowledges the ids the servers
//! acknowledged (waiting up to [`ACK_WAIT`] for them); then each `notifications/tasks` a server
//! sends for one of them reaches the client with its `taskId` tagged and the client's own
//! subscription id in `_meta`. Nothing else of a server's stream is relayed. The upstream
//! streams live as long as the client's: dropping [`Relay`] (with the client's stream) ends them;
//! one that ends before (a server restarted, a connection cut) is opened again, waiting
//! [`REOPEN_FIRST`] doubling up to [`REOPEN_MAX`], for the ids the server had acknowledged.
//! No shared state: any replica serves any listen. A client that asks for no task ids opens
//! nothing.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Map, Value};
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

use super::Broker;
use crate::auth::Caller;
use crate::config::Server;
use crate::mcp::{tag, tasks};

/// The method of a task status notification (SEP-2663); the 2025-11-25 one is relayed too.
pub(super) const NOTIFICATION: &str = "notifications/tasks";
const NOTIFICATION_2025: &str = "notifications/tasks/status";
const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
/// How long the gateway's acknowledgement waits for the servers'.
const ACK_WAIT: Duration = Duration::from_secs(5);
/// Notifications buffered for a slow client before the oldest are dropped.
const BUFFERED: usize = 64;
/// The first wait before a task listen that ended is opened again, and the longest.
const REOPEN_FIRST: Duration = Duration::from_secs(1);
const REOPEN_MAX: Duration = Duration::from_secs(30);
/// The most task ids one listen may ask for.
pub(super) const MAX_TASK_IDS: usize = 1000;

/// The task ids a `notifications` filter asks for: empty when it asks for none; `Err` (the
/// message of a -32602) when `taskIds` is not an array of strings or is too long. Pure.
pub(super) fn requested(filter: &Value) -> Result<Vec<String>, String> {
    let Some(ids) = filter.get("taskIds") else {
        return Ok(Vec::new());
    };
    let ids = ids
        .as_array()
        .ok_or("notifications.taskIds must be an array of task ids")?;
    if ids.len() > MAX_TASK_IDS {
        return Err(format!(
            "notifications.taskIds names {} tasks; at most {MAX_TASK_IDS}",
            ids.len()
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(ids.len());
    for id in ids {
        let id = id
            .as_str()
            .ok_or("notifications.taskIds must be an array of strings")?;
        if !out.iter().any(|o| o == id) {
            out.push(id.to_owned());
        }
    }
    Ok(out)
}

/// The ids asked of each server: server name → its own ids. An id with no tag of a server that
/// `allowed` lets the caller reach is left out (the gateway does not acknowledge it). Pure.
pub(super) fn by_server(
    ids: &[String],
    allowed: impl Fn(&str) -> bool,
) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for id in ids {
        if let Some((server, own)) = tag::untag(id) {
            if allowed(&server) {
                out.entry(server).or_default().push(own.to_owned());
            }
        }
    }
    out
}

/// The task ids a server's `notifications/subscriptions/acknowledged` agrees to (of those asked);
/// `None` when `data` is not an acknowledgement. Pure.
pub(super) fn acknowledged(data: &str, asked: &[String]) -> Option<HashSet<String>> {
    let msg: Value = serde_json::from_str(data).ok()?;
    if msg.get("method")?.as_str()? != "notifications/subscriptions/acknowledged" {
        return None;
    }
    let ids = msg
        .pointer("/params/notifications/taskIds")
        .and_then(Value::as_array);
    Some(
        ids.into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|id| asked.iter().any(|a| a == id))
            .map(str::to_owned)
            .collect(),
    )
}

/// What the client gets of a server's message: a task status notification about one of `acked`
/// (the server's own ids), its `taskId` tagged with `prefix` (the server's) and its `_meta`
/// subscription id the client's (`subscription`); `None` for anything else. Pure.
pub(super) fn relayed(
    data: &str,
    prefix: &str,
    acked: &HashSet<String>,
    subscription: &Value,
) -> Option<Bytes> {
    let mut msg: Value = serde_json::from_str(data).ok()?;
    let m = msg.get("method")?.as_str()?;
    if (m != NOTIFICATION && m != NOTIFICATION_2025) || msg.get("id").is_some() {
        return None;
    }
    let params = msg.get_mut("params")?.as_object_mut()?;
    let id = params.get("taskId")?.as_str()?;
    if !acked.contains(id) {
        return None;
    }
    let tagged = format!("{prefix}{id}");
    params.insert("taskId".into(), Value::String(tagged));
    let meta = params
        .entry("_meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    if let Some(meta) = meta.as_object_mut() {
        meta.insert(SUBSCRIPTION_ID.into(), subscription.clone());
    }
    serde_json::to_vec(&msg).ok().map(Bytes::from)
}

/// The upstream listen streams of one client listen: the acknowledged (tagged) task ids, the
/// notifications to relay, and the readers, ended when `readers` is dropped.
pub(super) struct Relay {
    pub(super) acked: Vec<String>,
    pub(super) updates: broadcast::Receiver<Bytes>,
    pub(super) readers: Readers,
}

/// The reader tasks of a [`Relay`]; aborted when dropped.
pub(super) struct Readers(Vec<JoinHandle<()>>);

impl Drop for Readers {
    fn drop(&mut self) {
        for r in &self.0 {
            r.abort();
        }
    }
}

/// The credential the caller's calls to `server` carry, as the router picks it; `None` when
/// there is none to use here (an exchange that failed or has no token to exchange, or a server
/// whose per-user credential lives with the caller's upstream sessions), and then the server
/// is not listened to.
async fn credential(
    b: &Broker,
    server: &Server,
    caller: &Caller,
    authorization: Option<&str>,
) -> Option<Option<String>> {
    if b.user_tokens.is_some() && server.token_url_elicitation.is_some() {
        return None;
    }
    match (&server.token_exchange, &server.credential) {
        (Some(te), _) => {
            let subject = caller.token.as_deref()?;
            match b
                .gatekeeper
                .exchanger
                .exchange(te, subject, crate::deadline::Deadline::NONE)
                .await
            {
                Ok(t) => Some(Some(format!("Bearer {t}"))),
                Err(e) => {
                    tracing::debug!(server = %server.name, error = %e, "task listen: no token");
                    None
                }
            }
        }
        (None, Some(c)) if crate::auth::credential_applies(caller.identity.is_some()) => {
            Some(Some(c.clone()))
        }
        (None, _) => Some(authorization.map(str::to_owned)),
    }
}

/// Whether `caller` may hear of the tasks of server `name`, as it may send them `tasks/*`: the
/// server is enabled; with native auth, the caller's roles name some tool of it; for a caller of
/// virtual server `vs`, it offers some tool of that server.
fn reachable(b: &Broker, caller: &Caller, vs: Option<&str>, name: &str) -> bool {
    let config = b.config.borrow().clone();
    if !config.server(name).is_some_and(|s| s.enabled) {
        return false;
    }
    if !may_use(config.auth.as_deref(), caller, name) {
        return false;
    }
    let Some(vs) = vs else {
        return true;
    };
    let catalog = b.catalog.borrow().clone();
    config.virtual_server(vs).is_some_and(|v| {
        v.tools.iter().any(|t| {
            catalog
                .find_tool(t)
                .is_some_and(|r| &*r.server.name == name)
        })
    })
}

/// With native auth (`auth`), whether the caller's verified roles name some tool of `server`;
/// without it, always. Pure.
fn may_use(auth: Option<&crate::config::auth::Auth>, caller: &Caller, server: &str) -> bool {
    let Some(auth) = auth else {
        return true;
    };
    caller
        .identity
        .as_ref()
        .is_some_and(|id| !auth.roles_claim.names(&id.claims, server).is_empty())
}

/// Opens the upstream listen streams for the task ids `ids` (tagged) a caller asked for on its
/// listen with JSON-RPC id `subscription`, and waits (up to [`ACK_WAIT`]) for their
/// acknowledgements.
pub(super) async fn open(
    b: &Broker,
    caller: &Caller,
    authorization: Option<&str>,
    vs: Option<&str>,
    ids: &[String],
    subscription: Value,
) -> Relay {
    let (tx, updates) = broadcast::channel(BUFFERED);
    let config = b.config.borrow().clone();
    let mut readers = Vec::new();
    let mut acks = Vec::new();
    for (name, own) in by_server(ids, |s| reachable(b, caller, vs, s)) {
        let Some(server) = config.server(&name).cloned() else {
            continue;
        };
        let Some(auth) = credential(b, &server, caller, authorization).await else {
            continue;
        };
        let (ack_tx, ack_rx) = oneshot::channel::<HashSet<String>>();
        acks.push((tag::tag_prefix(&server.name), ack_rx));
        let (client, tx, subscription) = (b.client.clone(), tx.clone(), subscription.clone());
        readers.push(tokio::spawn(async move {
            let prefix = tag::tag_prefix(&server.name);
            let mut ack_tx = Some(ack_tx);
            // The ids the server agreed to on its stream now (`None` before its first ack).
            let mut acked: Option<HashSet<String>> = None;
            let mut backoff = REOPEN_FIRST;
            loop {
                // After the first stream, only what the server had agreed to.
                let asking: Vec<String> = match &acked {
                    None => own.clone(),
                    Some(ids) => own.iter().filter(|i| ids.contains(*i)).cloned().collect(),
                };
                let filter = json!({ "taskIds": asking });
                let capabilities = json!({"extensions": {tasks::EXTENSION: {}}});
                let opened = client
                    .listen_for(&server, auth.as_deref(), filter, capabilities)
                    .await;
                match opened {
                    Ok(Some(resp)) => {
                        if acked.is_some() {
                            tracing::debug!(server = %server.name, "task listen reopened");
                            backoff = REOPEN_FIRST;
                        }
                        let mut fresh = true;
                        super::upstream_listen::each_message(resp, |data| {
                            if fresh {
                                // The acknowledgement opens each stream.
                                if let Some(ids) = acknowledged(&data, &asking) {
                                    if let Some(t) = ack_tx.take() {
                                        let _ = t.send(ids.clone());
                                    }
                                    acked = Some(ids);
                                    fresh = false;
                                }
                                return true;
                            }
                            if let Some(ids) = &acked {
                                if let Some(m) = relayed(&data, &prefix, ids, &subscription) {
                                    let _ = tx.send(m);
                                }
                            }
                            // The client's stream is gone: so is the reason to listen.
                            tx.receiver_count() > 0
                        })
                        .await;
                    }
                    Ok(None) => {
                        tracing::debug!(server = %server.name, "task listen not offered");
                    }
                    Err(e) => {
                        tracing::debug!(server = %server.name, error = %e, "task listen refused");
                    }
                }
                // Never acknowledged: nothing to keep listening for. Else the server (restarted,
                // or the connection cut) is listened to again, the client's stream untouched;
                // a status change in between is not heard (the client can still `tasks/get`).
                if acked.as_ref().is_none_or(HashSet::is_empty) || tx.receiver_count() == 0 {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(REOPEN_MAX);
            }
        }));
    }
    let until = tokio::time::Instant::now() + ACK_WAIT;
    let mut agreed: HashSet<String> = HashSet::new();
    for (prefix, rx) in acks {
        if let Ok(Ok(ids)) = tokio::time::timeout_at(until, rx).await {
            agreed.extend(ids.into_iter().map(|id| format!("{prefix}{id}")));
        }
    }
    Relay {
        acked: ids
            .iter()
            .filter(|i| agreed.contains(*i))
            .cloned()
            .collect(),
        updates,
        readers: Readers(readers),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_task_ids_a_filter_asks_for() {
        let too_many: Vec<String> = (0..=MAX_TASK_IDS).map(|i| i.to_string()).collect();
        let cases: &[(Value, Result<Vec<&str>, ()>)] = &[
            (json!({}), Ok(vec![])),
            (json!({"toolsListChanged": true}), Ok(vec![])),
            (json!({"taskIds": []}), Ok(vec![])),
            (json!({"taskIds": ["a", "b", "a"]}), Ok(vec!["a", "b"])),
            (json!({"taskIds": "a"}), Err(())),
            (json!({"taskIds": ["a", 1]}), Err(())),
            (json!({ "taskIds": too_many }), Err(())),
        ];
        for (filter, want) in cases {
            let got = requested(filter).map_err(|_| ());
            let want = want
                .clone()
                .map(|v| v.into_iter().map(str::to_owned).collect::<Vec<_>>());
            assert_eq!(got, want, "{filter}");
        }
    }

    #[test]
    fn with_native_auth_a_caller_hears_of_the_tasks_of_servers_its_roles_name() {
        use crate::auth::oidc::Identity;
        use std::sync::Arc;
        let config = crate::config::Config::from_yaml(
            "auth: {issuer: 'http://issuer.example'}\nservers: [{name: ns/kube, url: 'http://kube/mcp', prefix: kube_}]",
        )
        .expect("config");
        let caller = |roles: Option<Value>| Caller {
            identity: roles.map(|r| Identity {
                sub: "u".into(),
                binding: "b".into(),
                claims: Arc::new(json!({ "resource_access": r })),
                exp: 4_000_000_000,
            }),
            token: None,
        };
        let alice = caller(Some(json!({"ns/kube": {"roles": ["pods_list"]}})));
        let bob = caller(Some(json!({"ns/other": {"roles": ["pods_list"]}})));
        // (auth on, caller, may)
        for (auth, who, may) in [
            (true, &alice, true),
            (true, &bob, false),
            (true, &caller(None), false),
            (false, &caller(None), true),
        ] {
            let auth = if auth { config.auth.as_deref() } else { None };
            assert_eq!(may_use(auth, who, "ns/kube"), may, "{auth:?}");
        }
    }

    #[test]
    fn ids_go_to_the_servers_their_tags_name() {
        let ids: Vec<String> = vec![
            tag::tag("a", "t1"),
            tag::tag("b", "t2"),
            tag::tag("a", "t3"),
            tag::tag("hidden", "t4"),
            "untagged".into(),
            "mcpgw.!!.x".into(),
        ];
        let got = by_server(&ids, |s| s != "hidden");
        let want: BTreeMap<String, Vec<String>> = [
            ("a".to_owned(), vec!["t1".to_owned(), "t3".to_owned()]),
            ("b".to_owned(), vec!["t2".to_owned()]),
        ]
        .into_iter()
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn only_asked_ids_a_server_acknowledges_count() {
        let asked = vec!["t1".to_owned(), "t2".to_owned()];
        let ack = |ids: Value| {
            json!({"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged",
                "params": {"notifications": {"taskIds": ids}, "_meta": {SUBSCRIPTION_ID: 9}}})
            .to_string()
        };
        let set = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<HashSet<_>>();
        let cases: &[(String, Option<HashSet<String>>)] = &[
            (ack(json!(["t1", "t2"])), Some(set(&["t1", "t2"]))),
            (ack(json!(["t2", "other", 5])), Some(set(&["t2"]))),
            (ack(json!(null)), Some(set(&[]))),
            (
                r#"{"jsonrpc":"2.0","method":"notifications/subscriptions/acknowledged","params":{"notifications":{}}}"#.into(),
                Some(set(&[])),
            ),
            (
                r#"{"jsonrpc":"2.0","method":"notifications/tasks","params":{"taskId":"t1"}}"#
                    .into(),
                None,
            ),
            ("not json".into(), None),
        ];
        for (data, want) in cases {
            assert_eq!(&acknowledged(data, &asked), want, "{data}");
        }
    }

    #[test]
    fn a_status_notification_of_an_acknowledged_task_is_tagged_and_stamped() {
        let prefix = tag::tag_prefix("srv");
        let acked: HashSet<String> = ["t1".to_owned()].into_iter().collect();
        let sub = json!("client-7");
        let cases: &[(Value, Option<Value>)] = &[
            (
                json!({"jsonrpc": "2.0", "method": "notifications/tasks", "params": {
                    "taskId": "t1", "status": "completed", "result": {"content": []},
                    "_meta": {SUBSCRIPTION_ID: 3, "other": true}}}),
                Some(
                    json!({"jsonrpc": "2.0", "method": "notifications/tasks", "params": {
                    "taskId": format!("{prefix}t1"), "status": "completed",
                    "result": {"content": []},
                    "_meta": {SUBSCRIPTION_ID: "client-7", "other": true}}}),
                ),
            ),
            (
                json!({"jsonrpc": "2.0", "method": "notifications/tasks/status",
                    "params": {"taskId": "t1", "status": "working"}}),
                Some(
                    json!({"jsonrpc": "2.0", "method": "notifications/tasks/status",
                    "params": {"taskId": format!("{prefix}t1"), "status": "working",
                        "_meta": {SUBSCRIPTION_ID: "client-7"}}}),
                ),
            ),
            // Another task, another method, a request, no task id: not relayed.
            (
                json!({"jsonrpc": "2.0", "method": "notifications/tasks",
                    "params": {"taskId": "t2", "status": "completed"}}),
                None,
            ),
            (
                json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed",
                    "params": {"taskId": "t1"}}),
                None,
            ),
            (
                json!({"jsonrpc": "2.0", "id": 1, "method": "notifications/tasks",
                    "params": {"taskId": "t1"}}),
                None,
            ),
            (
                json!({"jsonrpc": "2.0", "method": "notifications/tasks", "params": {}}),
                None,
            ),
        ];
        for (msg, want) in cases {
            let got = relayed(&msg.to_string(), &prefix, &acked, &sub)
                .map(|b| serde_json::from_slice::<Value>(&b).expect("json"));
            assert_eq!(&got, want, "{msg}");
        }
    }
}
