//! Resource update notifications from upstreams to the client's GET stream.
//!
//! An upstream tells of a changed resource (`notifications/resources/updated`) on its own GET
//! stream of the upstream session the client subscribed through. Once a `resources/subscribe`
//! routed to an upstream succeeds, this replica listens on that upstream session's GET stream
//! (one listener per upstream session) and hands each update to the gateway session's GET stream
//! here. Bounded: a slow client stream drops updates rather than buffering without end (they
//! are level triggers; the client reads the resource again anyway). With replicas sharing
//! sessions through Redis, an update for a GET stream this replica does not hold is handed on by
//! pub/sub to the replica that does ([`super::shared::Announcement::Update`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::broadcast;

use super::client::UpstreamClient;
use super::shared::SharedSessions;
use super::{sse, Established, SessionKey};
use crate::config::Server;
use crate::mcp::method;

/// Updates buffered per gateway session stream before the oldest are dropped.
const PER_SESSION: usize = 64;
/// Upstream GET streams one replica keeps open for updates.
const MAX_LISTENERS: usize = 10_000;
/// Of those, at most this many for stateless (2026-07-28) callers, so that they cannot take the
/// places of 2025 sessions (whose streams relay requests, updates and task statuses).
const MAX_STATELESS_LISTENERS: usize = 1_000;
/// How long a stateless caller's listener answers its upstream session's requests at most: its
/// session is not ended by a client, only left to expire, and its stream must not outlive it
/// (such a session lives no longer than this either: `router::gather::session`).
pub const STATELESS_LISTEN_FOR: std::time::Duration = std::time::Duration::from_secs(3600);
/// How long a server request waits for its client's GET stream to open: 200 × 25 ms.
const REQUEST_WAIT_STEPS: u32 = 200;
const REQUEST_WAIT_STEP: std::time::Duration = std::time::Duration::from_millis(25);

/// Whether gateway session `jti` is a stateless (2026-07-28) caller's (the router keeps its
/// upstream sessions under `caller:…`): it has no GET stream anywhere.
fn is_stateless_caller(jti: &str) -> bool {
    jti.starts_with("caller:")
}

/// What a listener does with a message of an upstream GET stream.
enum Out {
    /// Hand it to the client's GET stream.
    Client(Bytes),
    /// Send it to the upstream (the answer to its request).
    Upstream(Vec<u8>),
}

/// A listener's place in [`Updates::listening`], given back when it is dropped.
struct Listed {
    hub: Arc<Updates>,
    listened: (SessionKey, Option<String>),
}

impl Drop for Listed {
    fn drop(&mut self) {
        lock(&self.hub.listening).remove(&self.listened);
    }
}

/// Whether a relayed message is a request (rather than a notification).
fn is_request(message: &[u8]) -> bool {
    crate::jsonrpc::parse(message).is_ok_and(|m| m.kind == crate::jsonrpc::Kind::Request)
}

/// The hub between upstream listeners and gateway GET streams.
#[derive(Default)]
pub struct Updates {
    streams: Mutex<HashMap<Arc<str>, broadcast::Sender<Bytes>>>,
    /// The upstream sessions listened to: (key, the upstream's session id), so that a new
    /// session under a key is listened to even while its predecessor's stream has not ended.
    listening: Mutex<HashSet<(SessionKey, Option<String>)>>,
    /// The other replicas, when sessions are shared.
    shared: Option<Arc<SharedSessions>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Updates {
    /// A hub that hands updates it cannot deliver itself to the other replicas through `shared`.
    pub fn new(shared: Option<Arc<SharedSessions>>) -> Updates {
        Updates {
            shared,
            ..Updates::default()
        }
    }

    /// The updates for gateway session `jti` (its GET stream calls this).
    pub fn subscribe(&self, jti: &Arc<str>) -> broadcast::Receiver<Bytes> {
        let mut streams = lock(&self.streams);
        streams.retain(|_, tx| tx.receiver_count() > 0);
        streams
            .entry(jti.clone())
            .or_insert_with(|| broadcast::channel(PER_SESSION).0)
            .subscribe()
    }

    /// Hands one notification (a JSON-RPC message) to gateway session `jti`'s stream, if it is
    /// open on this replica; whether it was.
    pub fn publish(&self, jti: &str, message: Bytes) -> bool {
        lock(&self.streams)
            .get(jti)
            .is_some_and(|tx| tx.send(message).is_ok())
    }

    /// Hands one notification to gateway session `jti`'s stream, here or on another replica.
    pub async fn deliver(&self, jti: &str, message: Bytes) {
        // A stateless (2026-07-28) caller has no GET stream anywhere (it listens with
        // subscriptions/listen): nothing to hand on.
        if !self.publish(jti, message.clone()) && !is_stateless_caller(jti) {
            if let Some(shared) = &self.shared {
                shared.announce_update(jti, &message).await;
            }
        }
    }

    /// Hands a server request to gateway session `jti`'s stream. A client opens its GET stream
    /// right after `initialize` and may call a tool before it is there: the upstream's request,
    /// which that call waits on, would be lost. So, without other replicas, it waits (bounded)
    /// for the stream to open here; with them, it goes to the replica holding it.
    async fn deliver_request(&self, jti: &str, message: Bytes) {
        if self.shared.is_some() {
            return self.deliver(jti, message).await;
        }
        for _ in 0..REQUEST_WAIT_STEPS {
            if self.publish(jti, message.clone()) {
                return;
            }
            tokio::time::sleep(REQUEST_WAIT_STEP).await;
        }
        tracing::debug!("a server request found no GET stream of its gateway session");
    }

    /// Starts listening on an upstream session's GET stream for resource updates and server
    /// requests ([`super::get_stream`]; requests get `tag_prefix`, the server's tag), unless
    /// this replica already does. The receiver fires (or is dropped) once the stream is open or
    /// could not be opened, so that a call can wait for it before it reaches the upstream.
    pub fn listen(
        self: &Arc<Self>,
        key: SessionKey,
        server: Arc<Server>,
        session: Established,
        authorization: Option<String>,
        client: Arc<UpstreamClient>,
        tag_prefix: String,
    ) -> tokio::sync::oneshot::Receiver<()> {
        let (opened, ready) = tokio::sync::oneshot::channel();
        let stateless = is_stateless_caller(&key.gateway);
        let listened = (key.clone(), session.session_id.clone());
        {
            let mut listening = lock(&self.listening);
            let stateless_count = || {
                listening
                    .iter()
                    .filter(|(k, _)| is_stateless_caller(&k.gateway))
                    .count()
            };
            if listening.len() >= MAX_LISTENERS
                || (stateless && stateless_count() >= MAX_STATELESS_LISTENERS)
            {
                tracing::debug!(server = %server.name, stateless, "too many upstream GET streams: this session's is not opened");
                return ready;
            }
            if !listening.insert(listened.clone()) {
                return ready;
            }
        }
        let hub = self.clone();
        tokio::spawn(async move {
            // Its place is given back however the listener ends (a panic included).
            let _listed = Listed {
                hub: hub.clone(),
                listened,
            };
            let relay = hub.relay(
                &key,
                &server,
                &session,
                authorization.as_deref(),
                &client,
                &tag_prefix,
                opened,
            );
            if stateless {
                let _ = tokio::time::timeout(STATELESS_LISTEN_FOR, relay).await;
            } else {
                relay.await;
            }
        });
        ready
    }

    #[allow(clippy::too_many_arguments)]
    async fn relay(
        &self,
        key: &SessionKey,
        server: &Server,
        session: &Established,
        authorization: Option<&str>,
        client: &UpstreamClient,
        tag_prefix: &str,
        opened: tokio::sync::oneshot::Sender<()>,
    ) {
        let resp = match client.open_stream(server, session, authorization).await {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(server = %server.name, error = %e, "no upstream stream for resource updates");
                return;
            }
        };
        let _ = opened.send(());
        let stateless = is_stateless_caller(&key.gateway);
        // Updates to hand on, in order, without holding up the upstream stream's reader.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Out>(PER_SESSION);
        // The reader owns `tx`: when the upstream stream ends, the writer drains and ends too.
        let reader = sse::each_event(resp, move |data| {
            let out = if stateless {
                super::get_stream::answer_for_stateless_caller(&data).map(Out::Upstream)
            } else {
                super::get_stream::relayed(&data, tag_prefix).map(Out::Client)
            };
            if let Some(out) = out {
                // Full: the client is that far behind; drop (level triggers, see above).
                let _ = tx.try_send(out);
            }
            true
        });
        let writer = async {
            while let Some(out) = rx.recv().await {
                match out {
                    Out::Client(message) if is_request(&message) => {
                        self.deliver_request(&key.gateway, message).await;
                    }
                    Out::Client(message) => self.deliver(&key.gateway, message).await,
                    Out::Upstream(answer) => {
                        if let Err(e) = client.send_in(server, session, authorization, answer).await
                        {
                            tracing::debug!(server = %server.name, error = %e, "answering the server's request failed");
                        }
                    }
                }
            }
        };
        tokio::join!(reader, writer);
    }
}

/// Whether an upstream's message is a resource update (the one kind relayed).
pub fn is_resource_update(data: &str) -> bool {
    crate::jsonrpc::parse(data.as_bytes()).is_ok_and(|m| {
        m.kind == crate::jsonrpc::Kind::Notification
            && m.method.as_deref() == Some(method::RESOURCES_UPDATED)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_resource_updates_are_relayed() {
        for (data, relayed) in [
            (
                r#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"x://a"}}"#,
                true,
            ),
            (
                r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#,
                false,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"notifications/resources/updated"}"#,
                false,
            ),
            ("not json", false),
        ] {
            assert_eq!(is_resource_update(data), relayed, "{data}");
        }
    }

    #[tokio::test]
    async fn a_server_request_waits_for_the_get_stream_to_open() {
        let hub = Arc::new(Updates::default());
        let request = Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":"mcpgw.czE.1","method":"elicitation/create"}"#,
        );
        let (h, r) = (hub.clone(), request.clone());
        let delivery = tokio::spawn(async move { h.deliver_request("late", r).await });
        // The client's GET stream opens after the request came.
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
        let mut rx = hub.subscribe(&Arc::from("late"));
        delivery.await.expect("delivered");
        assert_eq!(rx.recv().await.expect("request"), request);
    }

    fn server_at(port: u16) -> Arc<Server> {
        let config = crate::config::Config::from_yaml(&format!(
            "servers:\n- {{name: ns/s, url: 'http://127.0.0.1:{port}/mcp', prefix: s_}}\n"
        ))
        .expect("config");
        config.servers[0].clone()
    }

    fn session(id: &str) -> Established {
        Established {
            session_id: Some(id.into()),
            protocol_version: "2025-11-25".into(),
            result: serde_json::Value::Null,
        }
    }

    #[tokio::test]
    async fn a_listeners_place_is_given_back_and_stateless_ones_are_capped() {
        let hub = Arc::new(Updates::default());
        let client = Arc::new(UpstreamClient::new());
        let listen = |gateway: &str, port: u16, id: &str| {
            hub.listen(
                SessionKey::new(gateway.into(), "ns/s".into()),
                server_at(port),
                session(id),
                None,
                client.clone(),
                "t.".into(),
            )
        };
        let places = || lock(&hub.listening).len();
        // Port 0 takes no connection: the stream cannot open, the listener ends and gives its
        // place back.
        assert!(listen("gw", 0, "s1").await.is_err(), "not opened");
        for _ in 0..1000 {
            if places() == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(places(), 0);

        // A server that takes the connection and never answers: its listeners stay.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = silent.local_addr().expect("addr").port();
        {
            let mut l = lock(&hub.listening);
            for i in 0..MAX_STATELESS_LISTENERS {
                l.insert((
                    SessionKey::new(format!("caller:{i}").into(), "ns/s".into()),
                    None,
                ));
            }
        }
        // One more stateless caller: refused at once.
        assert!(listen("caller:more", port, "s2").await.is_err());
        assert_eq!(places(), MAX_STATELESS_LISTENERS);
        // A 2025 session is still listened to, and a second upstream session under its key too.
        let _first = listen("gw", port, "s3");
        let _second = listen("gw", port, "s4");
        let _again = listen("gw", port, "s4");
        assert_eq!(places(), MAX_STATELESS_LISTENERS + 2);
    }

    #[tokio::test]
    async fn updates_reach_the_open_stream_of_their_session_only() {
        let hub = Updates::default();
        let a: Arc<str> = "a".into();
        let mut rx = hub.subscribe(&a);
        assert!(
            !hub.publish("b", Bytes::from_static(b"other")),
            "no stream here"
        );
        assert!(hub.publish("a", Bytes::from_static(b"mine")));
        assert_eq!(
            rx.recv().await.expect("update"),
            Bytes::from_static(b"mine")
        );
        assert!(rx.try_recv().is_err());
    }
}
