//! Upstream sessions shared between replicas, in Redis (`CACHE_CONNECTION_STRING=redis://…`, or
//! `rediss://…` over TLS: the public roots are trusted, or only `--cache-ca-cert` when given).
//!
//! Each gateway session is one Redis hash, `mcp-router:sessions:<jti>`, with a field per upstream
//! server (`{"id":…,"v":…}`) and the gateway session's expiry. A replica that misses in its own
//! cache looks here before initializing, so a session created through one replica is used through
//! every other with one upstream initialize in all. Redis is an optimisation, never a dependency:
//! when it is down, each operation gives up within [`OP_TIMEOUT`] and the replica carries on with
//! its local state (re-initializing where it must), counting the failures.
//!
//! Replicas also tell each other, by Redis pub/sub, of gateway sessions ended with DELETE and of
//! resource updates for a client whose GET stream is open on another replica than the one
//! listening to the upstream ([`Announcement`]).

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

/// Longest a Redis operation may hold up a request.
pub const OP_TIMEOUT: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    pub id: Option<String>,
    #[serde(rename = "v")]
    pub protocol_version: String,
}

/// The Redis-backed store; connects in the background and reconnects on its own.
pub struct SharedSessions {
    client: redis::Client,
    conn: OnceCell<redis::aio::ConnectionManager>,
    /// Failed operations (each one served from local state instead); exported as
    /// `mcp_router_shared_store_errors_total`.
    pub errors: Counter,
}

/// Where replicas announce gateway sessions ended with DELETE.
const TERMINATED_CHANNEL: &str = "mcp-router:terminated";
/// Where a replica hands on a resource update for a gateway session whose GET stream it does not
/// hold: `<jti>\n<notification>`.
const UPDATES_CHANNEL: &str = "mcp-router:updates";

/// What one replica tells the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announcement {
    /// A gateway session was ended (DELETE).
    Terminated(String),
    /// A notification for the GET stream of gateway session `jti`.
    Update { jti: String, message: bytes::Bytes },
}

impl Announcement {
    /// Reads a pub/sub message; `None` for a channel or payload it does not know.
    pub fn read(channel: &str, payload: &[u8]) -> Option<Announcement> {
        match channel {
            TERMINATED_CHANNEL => std::str::from_utf8(payload)
                .ok()
                .filter(|jti| !jti.is_empty())
                .map(|jti| Announcement::Terminated(jti.to_owned())),
            UPDATES_CHANNEL => {
                let split = memchr::memchr(b'\n', payload)?;
                let jti = std::str::from_utf8(&payload[..split]).ok()?;
                let message = &payload[split + 1..];
                if jti.is_empty() || message.is_empty() {
                    return None;
                }
                Some(Announcement::Update {
                    jti: jti.to_owned(),
                    message: bytes::Bytes::copy_from_slice(message),
                })
            }
            _ => None,
        }
    }
}

fn key(jti: &str) -> String {
    format!("mcp-router:sessions:{jti}")
}

/// The Redis client for `url` (`redis://` or `rediss://`); with `ca` (a checked PEM bundle, for
/// `rediss://` only) that bundle is the only trust for the server's certificate. Connects to
/// nothing. The error never repeats the URL, which may hold a password.
pub fn redis_client(url: &str, ca: Option<&str>) -> Result<redis::Client, String> {
    let client = match ca {
        None => redis::Client::open(url),
        Some(pem) => redis::Client::build_with_tls(
            url,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.as_bytes().to_vec()),
            },
        ),
    }
    .map_err(|e| e.to_string())?;
    if let redis::ConnectionAddr::TcpTls { insecure: true, .. } = client.get_connection_info().addr
    {
        return Err("rediss://…#insecure (no certificate check) is not supported: give the server's CA with --cache-ca-cert".into());
    }
    Ok(client)
}

impl SharedSessions {
    /// Checks the URL now (see [`redis_client`]); the connection itself is made on first use
    /// (and retried after). Failures are counted in `errors`.
    pub fn new(
        url: &str,
        ca: Option<&str>,
        errors: Counter,
    ) -> Result<Arc<SharedSessions>, String> {
        Ok(Arc::new(SharedSessions {
            client: redis_client(url, ca)?,
            conn: OnceCell::new(),
            errors,
        }))
    }

    async fn conn(&self) -> Option<redis::aio::ConnectionManager> {
        let made = tokio::time::timeout(
            OP_TIMEOUT,
            self.conn.get_or_try_init(|| {
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(OP_TIMEOUT)
                    .set_response_timeout(OP_TIMEOUT)
                    .set_number_of_retries(1);
                redis::aio::ConnectionManager::new_with_config(self.client.clone(), config)
            }),
        )
        .await;
        match made {
            Ok(Ok(c)) => Some(c.clone()),
            Ok(Err(e)) => {
                self.failed("connect", &e.to_string());
                None
            }
            Err(_) => {
                self.failed("connect", "timed out");
                None
            }
        }
    }

    fn failed(&self, op: &str, why: &str) {
        let n = self.errors.inc();
        // The first failure and then every hundredth: a Redis outage must not flood the log.
        if n.is_multiple_of(100) {
            tracing::warn!(
                op,
                error = why,
                failures = n + 1,
                "shared session store unavailable; serving from local state"
            );
        }
    }

    pub(crate) async fn run<T, F>(
        &self,
        op: &str,
        f: impl FnOnce(redis::aio::ConnectionManager) -> F,
    ) -> Option<T>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.conn().await?;
        match tokio::time::timeout(OP_TIMEOUT, f(conn)).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                self.failed(op, &e.to_string());
                None
            }
            Err(_) => {
                self.failed(op, "timed out");
                None
            }
        }
    }

    /// The session another replica (or this one) stored for (gateway session, server).
    pub async fn get(&self, jti: &str, server: &str) -> Option<Stored> {
        let raw: Option<String> = self
            .run("get", |mut c| async move { c.hget(key(jti), server).await })
            .await?;
        serde_json::from_str(&raw?).ok()
    }

    /// Stores a session until the gateway session ends.
    pub async fn put(&self, jti: &str, server: &str, s: &Stored, lifetime: Duration) {
        let Ok(value) = serde_json::to_string(s) else {
            return;
        };
        let secs = i64::try_from(lifetime.as_secs().max(1)).unwrap_or(i64::MAX);
        self.run("put", |mut c| async move {
            redis::pipe()
                .hset(key(jti), server, value)
                .ignore()
                .expire(key(jti), secs)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await;
    }

    /// Forgets one upstream session (the upstream lost it).
    pub async fn remove(&self, jti: &str, server: &str) {
        self.run("remove", |mut c| async move {
            c.hdel::<_, _, ()>(key(jti), server).await
        })
        .await;
    }

    /// Forgets every upstream session of a gateway session; returns what was stored.
    pub async fn remove_all(&self, jti: &str) -> Vec<(String, Stored)> {
        let all: Option<Vec<(String, String)>> = self
            .run("remove_all", |mut c| async move {
                let (all,): (Vec<(String, String)>,) = redis::pipe()
                    .hgetall(key(jti))
                    .del(key(jti))
                    .ignore()
                    .query_async(&mut c)
                    .await?;
                Ok(all)
            })
            .await;
        all.unwrap_or_default()
            .into_iter()
            .filter_map(|(server, v)| Some((server, serde_json::from_str(&v).ok()?)))
            .collect()
    }
}

impl SharedSessions {
    /// Tells every replica that a gateway session was ended.
    pub async fn announce_terminated(&self, jti: &str) {
        self.run("publish", |mut c| async move {
            c.publish::<_, _, ()>(TERMINATED_CHANNEL, jti).await
        })
        .await;
    }

    /// Hands a notification for gateway session `jti` to whichever replica holds its GET stream.
    pub async fn announce_update(&self, jti: &str, message: &[u8]) {
        let mut payload = Vec::with_capacity(jti.len() + 1 + message.len());
        payload.extend_from_slice(jti.as_bytes());
        payload.push(b'\n');
        payload.extend_from_slice(message);
        self.run("publish", |mut c| async move {
            c.publish::<_, _, ()>(UPDATES_CHANNEL, payload).await
        })
        .await;
    }

    /// Calls `heard` with each announcement of the replicas (this one's too), forever:
    /// reconnects with a pause when Redis goes away.
    pub async fn watch(self: Arc<Self>, heard: impl Fn(Announcement) + Send + 'static) {
        use futures_util::StreamExt;
        loop {
            match self.client.get_async_pubsub().await {
                Ok(mut pubsub) => {
                    if let Err(e) = pubsub
                        .subscribe(&[TERMINATED_CHANNEL, UPDATES_CHANNEL])
                        .await
                    {
                        self.failed("subscribe", &e.to_string());
                    } else {
                        let mut messages = pubsub.on_message();
                        while let Some(m) = messages.next().await {
                            if let Some(a) =
                                Announcement::read(m.get_channel_name(), m.get_payload_bytes())
                            {
                                heard(a);
                            }
                        }
                    }
                }
                Err(e) => self.failed("subscribe", &e.to_string()),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls_plain_and_tls_with_or_without_a_ca() {
        let ca = crate::tls::tests::test_ca_pem();
        for (url, with_ca, want) in [
            ("redis://127.0.0.1:6379/0", false, Ok(false)),
            ("redis://:secret@redis.example:6379/2", false, Ok(false)),
            ("rediss://redis.example:6380/0", false, Ok(true)),
            ("rediss://:secret@redis.example:6380/0", true, Ok(true)),
            (
                "rediss://redis.example:6380/#insecure",
                false,
                Err("not supported"),
            ),
            ("redis://redis.example:6379/0", true, Err("rediss://")),
            ("http://redis.example/", false, Err("")),
            ("not a url", false, Err("")),
        ] {
            let got = redis_client(url, with_ca.then_some(ca.as_str()));
            match (got, want) {
                (Ok(c), Ok(tls)) => assert_eq!(
                    matches!(
                        c.get_connection_info().addr,
                        redis::ConnectionAddr::TcpTls { .. }
                    ),
                    tls,
                    "{url}"
                ),
                (Err(e), Err(why)) => {
                    assert!(e.contains(why), "{url}: {e}");
                    assert!(!e.contains("secret"), "{url}: {e}");
                }
                (got, want) => panic!("{url}: got {:?}, want {want:?}", got.map(|_| ())),
            }
        }
    }

    #[test]
    fn announcements_are_read_by_channel() {
        let update = |jti: &str, m: &'static [u8]| {
            Some(Announcement::Update {
                jti: jti.into(),
                message: bytes::Bytes::from_static(m),
            })
        };
        let cases: [(&str, &[u8], Option<Announcement>); 9] = [
            (
                TERMINATED_CHANNEL,
                b"abc",
                Some(Announcement::Terminated("abc".into())),
            ),
            (TERMINATED_CHANNEL, b"", None),
            (TERMINATED_CHANNEL, b"\xff", None),
            (
                UPDATES_CHANNEL,
                b"abc\n{\"m\":1}",
                update("abc", b"{\"m\":1}"),
            ),
            // Only the first newline splits: the message keeps its own.
            (UPDATES_CHANNEL, b"abc\n{\n}", update("abc", b"{\n}")),
            (UPDATES_CHANNEL, b"abc", None),
            (UPDATES_CHANNEL, b"\n{}", None),
            (UPDATES_CHANNEL, b"abc\n", None),
            ("mcp-router:other", b"abc", None),
        ];
        for (channel, payload, expected) in cases {
            assert_eq!(
                Announcement::read(channel, payload),
                expected,
                "{channel} {payload:?}"
            );
        }
    }
}
