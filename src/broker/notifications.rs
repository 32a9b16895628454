//! The GET stream of a gateway session (Streamable HTTP, 2025 generation): the gateway's own
//! server-to-client channel. It tells the client when the aggregated lists change, because an
//! upstream's lists changed (discovery) or the config did, and keeps the connection alive.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::{broadcast, watch};

use crate::catalog::{Catalog, Entry};
use crate::mcp::method;

/// A comment line every this often keeps proxies from closing an idle stream.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// What a client's lists are, to tell a real change from a refresh with the same content.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListsView {
    tools: BTreeSet<(String, String)>,
    prompts: BTreeSet<(String, String)>,
    resources: BTreeSet<(String, String)>,
    /// What the upstreams said changed, whether or not the lists read after it differ.
    told: crate::catalog::Told,
}

fn view(entries: &[Entry]) -> BTreeSet<(String, String)> {
    // The key and the whole entry: a changed description or schema is a change too.
    entries
        .iter()
        .map(|e| (e.key.to_string(), e.value.to_string()))
        .collect()
}

impl ListsView {
    pub fn of(c: &Catalog) -> ListsView {
        ListsView {
            tools: {
                let mut t = view(&c.tool_list);
                // The broker's own tools come and go with the config (tags): a change too.
                t.extend(
                    c.broker_tools
                        .iter()
                        .map(|n| ((*n).to_owned(), String::new())),
                );
                t
            },
            prompts: view(&c.prompt_list),
            resources: {
                let mut r = view(&c.resource_list);
                r.extend(view(&c.resource_template_list));
                r
            },
            told: c.told,
        }
    }

    /// The `list_changed` notifications that lead from `self` to `next`.
    pub fn changes(&self, next: &ListsView) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.tools != next.tools || self.told.tools != next.told.tools {
            out.push(method::TOOLS_LIST_CHANGED);
        }
        if self.prompts != next.prompts || self.told.prompts != next.told.prompts {
            out.push(method::PROMPTS_LIST_CHANGED);
        }
        if self.resources != next.resources || self.told.resources != next.told.resources {
            out.push(method::RESOURCES_LIST_CHANGED);
        }
        out
    }
}

fn event(id: u64, notification: &str) -> Bytes {
    Bytes::from(format!(
        "id: {id}\nevent: message\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"{notification}\"}}\n\n"
    ))
}

/// The SSE body for one client: a priming event, then notifications as the catalog changes,
/// with keep-alive comments in between. It ends when the catalog's publisher goes away.
///
/// A client that resumes (`Last-Event-ID: N` of this stream) may have missed changes while it
/// was away; list changes are level triggers, so the resumed stream starts by telling it that
/// every list may have changed (ids continue after N), which is all a replay could say.
pub fn stream(
    catalog: watch::Receiver<Arc<Catalog>>,
    resume_after: Option<u64>,
    updates: Option<broadcast::Receiver<Bytes>>,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    let (first, next_id) = match resume_after {
        None => (Bytes::from_static(b"id: 0\ndata: \n\n"), 1),
        Some(n) => {
            let all = [
                method::TOOLS_LIST_CHANGED,
                method::PROMPTS_LIST_CHANGED,
                method::RESOURCES_LIST_CHANGED,
            ];
            let mut b = Vec::new();
            for (i, m) in all.iter().enumerate() {
                b.extend_from_slice(&event(n + 1 + i as u64, m));
            }
            (Bytes::from(b), n + 1 + all.len() as u64)
        }
    };
    changes(catalog, first, next_id, updates, |id, n| Some(event(id, n)))
}

/// The event number a `Last-Event-ID` names on the gateway's own stream (not an upstream's
/// tagged id, which the router sends to that upstream).
pub fn own_event_id(last_event_id: Option<&str>) -> Option<u64> {
    last_event_id?.trim().parse().ok()
}

/// What a `subscriptions/listen` stream (2026-07-28) carries: the list changes the client opted
/// in to and the gateway honors (per-resource updates are not relayed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Honored {
    pub tools: bool,
    pub prompts: bool,
    pub resources: bool,
}

impl Honored {
    /// The subset of a requested `notifications` filter the gateway honors.
    pub fn of(requested: &serde_json::Value) -> Honored {
        let on = |k: &str| requested.get(k).and_then(serde_json::Value::as_bool) == Some(true);
        Honored {
            tools: on("toolsListChanged"),
            prompts: on("promptsListChanged"),
            resources: on("resourcesListChanged"),
        }
    }

    fn filter_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        for (on, k) in [
            (self.tools, "toolsListChanged"),
            (self.prompts, "promptsListChanged"),
            (self.resources, "resourcesListChanged"),
        ] {
            if on {
                m.insert(k.into(), serde_json::Value::Bool(true));
            }
        }
        serde_json::Value::Object(m)
    }

    fn wants(&self, notification: &str) -> bool {
        match notification {
            method::TOOLS_LIST_CHANGED => self.tools,
            method::PROMPTS_LIST_CHANGED => self.prompts,
            method::RESOURCES_LIST_CHANGED => self.resources,
            _ => false,
        }
    }
}

/// The SSE body of a `subscriptions/listen` request with JSON-RPC id `id` (raw JSON): the
/// acknowledgement first, then each honored change, stamped with the subscription id. `tasks`:
/// the task ids acknowledged and their status notifications, ready to relay
/// ([`super::task_listen`]).
pub fn listen(
    catalog: watch::Receiver<Arc<Catalog>>,
    id: &str,
    honored: Honored,
    tasks: Option<(Vec<String>, broadcast::Receiver<Bytes>)>,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    let meta = format!("{{\"io.modelcontextprotocol/subscriptionId\":{id}}}");
    let mut filter = honored.filter_json();
    let updates = tasks.map(|(ids, updates)| {
        if let Some(f) = filter.as_object_mut() {
            f.insert("taskIds".into(), serde_json::json!(ids));
        }
        updates
    });
    let ack = format!(
        "event: message\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/subscriptions/acknowledged\",\"params\":{{\"notifications\":{filter},\"_meta\":{meta}}}}}\n\n"
    );
    changes(catalog, Bytes::from(ack), 1, updates, move |_, n| {
        honored.wants(n).then(|| {
            Bytes::from(format!(
                "event: message\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"{n}\",\"params\":{{\"_meta\":{meta}}}}}\n\n"
            ))
        })
    })
}

/// One SSE event carrying a relayed message: each of its lines a `data:` line, so that a line
/// break in it cannot end the event early or start another.
fn relayed_event(id: u64, data: &[u8]) -> Bytes {
    let mut b = format!("id: {id}\nevent: message\n").into_bytes();
    for line in data.split(|c| *c == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        b.extend_from_slice(b"data: ");
        b.extend_from_slice(line);
        b.push(b'\n');
    }
    b.push(b'\n');
    Bytes::from(b)
}

/// The next relayed update; pending forever when there are none to wait for. A receiver that
/// lagged skips what it missed (updates are level triggers).
async fn next_update(updates: &mut Option<broadcast::Receiver<Bytes>>) -> Option<Bytes> {
    let Some(rx) = updates else {
        return std::future::pending().await;
    };
    loop {
        match rx.recv().await {
            Ok(b) => return Some(b),
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => {
                *updates = None;
                return None;
            }
        }
    }
}

/// `first`, then one event per list change (rendered by `render`, which may skip it), with
/// keep-alive comments, until the catalog's publisher goes away.
fn changes(
    catalog: watch::Receiver<Arc<Catalog>>,
    first: Bytes,
    next_id: u64,
    updates: Option<broadcast::Receiver<Bytes>>,
    render: impl Fn(u64, &'static str) -> Option<Bytes> + Send + 'static,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    struct State<R> {
        catalog: watch::Receiver<Arc<Catalog>>,
        seen: ListsView,
        pending: Vec<Bytes>,
        next_id: u64,
        updates: Option<broadcast::Receiver<Bytes>>,
        render: R,
    }
    let seen = ListsView::of(&catalog.borrow());
    let start = State {
        catalog,
        seen,
        pending: vec![first],
        next_id,
        updates,
        render,
    };
    futures_util::stream::unfold(start, |mut s| async move {
        loop {
            if let Some(b) = s.pending.pop() {
                return Some((Ok(b), s));
            }
            tokio::select! {
                changed = s.catalog.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                    let next = ListsView::of(&s.catalog.borrow_and_update());
                    for n in s.seen.changes(&next).into_iter().rev() {
                        if let Some(b) = (s.render)(s.next_id, n) {
                            s.pending.push(b);
                            s.next_id += 1;
                        }
                    }
                    s.seen = next;
                }
                update = next_update(&mut s.updates) => {
                    // An upstream's message, relayed as it is (see upstream::updates).
                    if let Some(data) = update {
                        s.pending.push(relayed_event(s.next_id, &data));
                        s.next_id += 1;
                    }
                }
                _ = tokio::time::sleep(KEEPALIVE) => {
                    s.pending.push(Bytes::from_static(b": keep-alive\n\n"));
                }
            }
        }
    })
}

/// `events` until the listeners close on shutdown ([`super::Broker::closing`]). A long-lived
/// event stream never ends by itself, so the drain would wait for it to its end; ended, its
/// client reconnects (with `Last-Event-ID` on a GET stream) through Envoy to a replica that
/// stays.
pub(super) fn until_closing<S: futures_util::Stream>(
    b: &super::Broker,
    events: S,
) -> impl futures_util::Stream<Item = S::Item> {
    let mut closing = b.closing.clone();
    futures_util::StreamExt::take_until(events, async move {
        let _ = closing.wait_for(|closed| *closed).await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relayed_message_is_one_event_whatever_its_line_breaks() {
        for (data, event) in [
            (
                &b"{\"a\":1}"[..],
                "id: 3\nevent: message\ndata: {\"a\":1}\n\n",
            ),
            (
                b"{\n\"a\":1\n}",
                "id: 3\nevent: message\ndata: {\ndata: \"a\":1\ndata: }\n\n",
            ),
            (
                b"{}\n\nid: 99\ndata: x",
                "id: 3\nevent: message\ndata: {}\ndata: \ndata: id: 99\ndata: data: x\n\n",
            ),
            (b"{}\r\n", "id: 3\nevent: message\ndata: {}\ndata: \n\n"),
        ] {
            assert_eq!(relayed_event(3, data), event.as_bytes(), "{data:?}");
        }
    }
    use crate::catalog::{Health, ServerLists};
    use crate::config::Config;
    use std::collections::HashMap;

    fn catalog(tools: &[&str], prompts: &[&str]) -> Catalog {
        let config = Config::from_yaml("servers: [{name: s, url: 'http://s/mcp', prefix: p_}]")
            .expect("config");
        let mut d = HashMap::new();
        d.insert(
            "s".into(),
            ServerLists {
                tools: tools
                    .iter()
                    .map(|t| serde_json::json!({"name": t}))
                    .collect(),
                prompts: prompts
                    .iter()
                    .map(|t| serde_json::json!({"name": t}))
                    .collect(),
                health: Health::Ready,
                ..Default::default()
            },
        );
        Catalog::build(&config, &d)
    }

    #[test]
    fn only_real_changes_are_notified() {
        let a = ListsView::of(&catalog(&["x", "y"], &["p"]));
        for (tools, prompts, expected) in [
            (&["x", "y"][..], &["p"][..], vec![]),
            (&["y", "x"], &["p"], vec![]),
            (&["x"], &["p"], vec![method::TOOLS_LIST_CHANGED]),
            (&["x", "y"], &[], vec![method::PROMPTS_LIST_CHANGED]),
            (
                &["z"],
                &["q"],
                vec![method::TOOLS_LIST_CHANGED, method::PROMPTS_LIST_CHANGED],
            ),
        ] {
            assert_eq!(
                a.changes(&ListsView::of(&catalog(tools, prompts))),
                expected,
                "{tools:?} {prompts:?}"
            );
        }
    }

    #[test]
    fn a_change_an_upstream_told_of_is_told_even_when_the_lists_look_the_same() {
        let a = ListsView::of(&catalog(&["x"], &["p"]));
        let mut told = catalog(&["x"], &["p"]);
        told.told.prompts = 1;
        assert_eq!(
            a.changes(&ListsView::of(&told)),
            [method::PROMPTS_LIST_CHANGED]
        );
    }

    #[tokio::test]
    async fn a_catalog_change_reaches_the_stream() {
        use futures_util::StreamExt;
        let (tx, rx) = watch::channel(Arc::new(catalog(&["x"], &[])));
        let mut s = Box::pin(stream(rx, None, None));
        assert_eq!(
            s.next().await.expect("prime").expect("ok"),
            Bytes::from_static(b"id: 0\ndata: \n\n")
        );
        tx.send_replace(Arc::new(catalog(&["x"], &[])));
        tx.send_replace(Arc::new(catalog(&["x", "new"], &[])));
        let ev = s.next().await.expect("event").expect("ok");
        let text = String::from_utf8(ev.to_vec()).expect("utf8");
        assert!(text.contains("notifications/tools/list_changed"), "{text}");
        assert!(text.starts_with("id: 1\n"), "{text}");
    }

    #[tokio::test]
    async fn a_resumed_stream_says_every_list_may_have_changed_and_continues_the_ids() {
        use futures_util::StreamExt;
        let (_tx, rx) = watch::channel(Arc::new(catalog(&["x"], &[])));
        let mut s = Box::pin(stream(rx, own_event_id(Some("7")), None));
        let first = s.next().await.expect("first").expect("ok");
        let text = String::from_utf8(first.to_vec()).expect("utf8");
        assert!(text.starts_with("id: 8\n"), "{text}");
        for (id, m) in [
            (8, method::TOOLS_LIST_CHANGED),
            (9, method::PROMPTS_LIST_CHANGED),
            (10, method::RESOURCES_LIST_CHANGED),
        ] {
            assert!(
                text.contains(&format!(
                    "id: {id}\nevent: message\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"{m}\"}}"
                )),
                "{text}"
            );
        }
        assert_eq!(
            own_event_id(Some("mcpgw.abc.5")),
            None,
            "an upstream's id is not ours"
        );
    }
}
