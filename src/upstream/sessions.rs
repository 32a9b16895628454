//! Upstream sessions per (gateway session, server), created on first use.
//!
//! Concurrent first calls for one key coalesce into one initialize (moka runs one init future per
//! key and hands its result to every waiter; failures are not cached). An entry lives until the
//! gateway session expires or it has been idle for the idle timeout, whichever comes first, and the
//! store is bounded in size. Each thread answers its recent lookups from slots of its own
//! ([`recent`]), asking the store again at least every second.

mod recent;

use std::future::Future;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::shared::{SharedSessions, Stored};
use super::{Established, UpstreamError};

/// Which upstream session: a gateway session's with one server.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionKey {
    /// The gateway session's `jti` (a stateless caller's stand-in for one).
    pub gateway: Arc<str>,
    /// The server's name.
    pub server: Arc<str>,
}

impl SessionKey {
    pub fn new(gateway: Arc<str>, server: Arc<str>) -> SessionKey {
        SessionKey { gateway, server }
    }
}

/// An upstream session that left the store and should be closed at its upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    pub server: Arc<str>,
    pub session_id: Arc<str>,
}

/// An upstream session as routing uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamSession {
    /// `None` for upstreams without sessions.
    pub id: Option<Arc<str>>,
    pub protocol_version: Arc<str>,
    /// When the gateway session ends.
    pub deadline: Instant,
}

struct Expiry {
    idle: Duration,
}

impl moka::Expiry<SessionKey, Arc<UpstreamSession>> for Expiry {
    fn expire_after_create(
        &self,
        _key: &SessionKey,
        value: &Arc<UpstreamSession>,
        now: Instant,
    ) -> Option<Duration> {
        Some(self.idle.min(value.deadline.saturating_duration_since(now)))
    }

    fn expire_after_read(
        &self,
        _key: &SessionKey,
        value: &Arc<UpstreamSession>,
        now: Instant,
        _current: Option<Duration>,
        _last_modified: Instant,
    ) -> Option<Duration> {
        Some(self.idle.min(value.deadline.saturating_duration_since(now)))
    }
}

/// Upstream sessions: an embedded bounded cache on every replica, backed by Redis when configured
/// so that every replica can use every session.
pub struct UpstreamSessions {
    /// Hashed with foldhash (randomly seeded), as every call looks its session up.
    cache: moka::future::Cache<SessionKey, Arc<UpstreamSession>, foldhash::fast::RandomState>,
    shared: Option<Arc<SharedSessions>>,
    /// In front of `cache`, each thread's recent answers ([`recent`]): which instance filled a
    /// slot, how many sessions had left the cache then (counted after each removal), how long a
    /// slot answers before the cache is read again, and the hash that picks the slot.
    id: u64,
    removals: Arc<AtomicU64>,
    refresh: Duration,
    hasher: foldhash::fast::RandomState,
}

/// Tells apart the stores whose sessions a thread remembers (tests make many per thread).
static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(1);

/// How long a thread's slot answers before the cache is read again (less, for an idle timeout
/// under two seconds): the cache's idle expiry then still sees every session in use.
const REFRESH: Duration = Duration::from_secs(1);

impl UpstreamSessions {
    /// At most `capacity` sessions; each closed after `idle` without use.
    pub fn new(capacity: u64, idle: Duration) -> UpstreamSessions {
        Self::build(capacity, idle, None)
    }

    /// Like [`UpstreamSessions::new`], and reports every session that leaves the store because it
    /// idled, outlived its gateway session or was pushed out by the size bound, so that it can be
    /// closed at the upstream (DELETE) instead of lingering there.
    pub fn with_close_reports(
        capacity: u64,
        idle: Duration,
    ) -> (
        UpstreamSessions,
        tokio::sync::mpsc::UnboundedReceiver<Closed>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (Self::build(capacity, idle, Some(tx)), rx)
    }

    fn build(
        capacity: u64,
        idle: Duration,
        closed: Option<tokio::sync::mpsc::UnboundedSender<Closed>>,
    ) -> UpstreamSessions {
        let removals = Arc::new(AtomicU64::new(0));
        let counted = removals.clone();
        let cache = moka::future::Cache::builder()
            .max_capacity(capacity)
            .expire_after(Expiry { idle })
            .eviction_listener(
                move |key: Arc<SessionKey>, value: Arc<UpstreamSession>, cause| {
                    use moka::notification::RemovalCause;
                    // Whatever the cause, no thread's slot answers it from now on.
                    counted.fetch_add(1, Ordering::Release);
                    // Explicit removals are the upstream's 404 (nothing left to close) or a DELETE
                    // that closes its sessions itself; replacements keep the session.
                    if let (Some(tx), RemovalCause::Expired | RemovalCause::Size) = (&closed, cause)
                    {
                        if let Some(id) = &value.id {
                            let _ = tx.send(Closed {
                                server: key.server.clone(),
                                session_id: id.clone(),
                            });
                        }
                    }
                },
            )
            .build_with_hasher(foldhash::fast::RandomState::default());
        UpstreamSessions {
            cache,
            shared: None,
            id: NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed),
            removals,
            refresh: REFRESH.min(idle / 2),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    /// Counts a removal that the cache's listener may not have counted yet: no thread's slot
    /// answers what was removed before this.
    fn count_removal(&self) {
        self.removals.fetch_add(1, Ordering::Release);
    }

    /// Runs the store's pending maintenance (expiry, eviction reports); called periodically so
    /// that idle sessions are closed even when no traffic touches the store.
    pub async fn maintain(&self) {
        self.cache.run_pending_tasks().await;
    }

    /// Shares sessions with other replicas through `shared`.
    pub fn with_shared(mut self, shared: Arc<SharedSessions>) -> UpstreamSessions {
        self.shared = Some(shared);
        self
    }

    /// Tells the other replicas (through the shared store) that a gateway session ended.
    pub async fn announce_terminated(&self, jti: &str) {
        if let Some(shared) = &self.shared {
            shared.announce_terminated(jti).await;
        }
    }

    /// The shared store, when there is one.
    pub fn shared(&self) -> Option<&Arc<SharedSessions>> {
        self.shared.as_ref()
    }

    /// Failed operations on the shared store so far.
    pub fn shared_errors(&self) -> u64 {
        self.shared.as_ref().map_or(0, |s| s.errors.get())
    }

    /// The session for `key`, initializing it with `init` if there is none. Concurrent callers
    /// with the same key share one `init`.
    pub async fn get_or_create<F>(
        &self,
        key: SessionKey,
        lifetime: Duration,
        init: F,
    ) -> Result<Arc<UpstreamSession>, Arc<UpstreamError>>
    where
        F: Future<Output = Result<Established, UpstreamError>>,
    {
        use futures_util::FutureExt;
        let shared = self.shared.clone();
        let (jti, server) = (key.gateway.clone(), key.server.clone());
        let coalesced = self.cache.try_get_with(key, async move {
            if let Some(shared) = &shared {
                if let Some(s) = shared.get(&jti, &server).await {
                    return Ok(Arc::new(UpstreamSession {
                        id: s.id.map(Into::into),
                        protocol_version: s.protocol_version.into(),
                        deadline: Instant::now() + lifetime,
                    }));
                }
            }
            let e = init.await?;
            if let Some(shared) = &shared {
                let stored = Stored {
                    id: e.session_id.clone(),
                    protocol_version: e.protocol_version.clone(),
                };
                shared.put(&jti, &server, &stored, lifetime).await;
            }
            Ok(Arc::new(UpstreamSession {
                id: e.session_id.map(Into::into),
                protocol_version: e.protocol_version.into(),
                deadline: Instant::now() + lifetime,
            }))
        });
        // moka panics in a waiter that saw 200 initializes of its key abandoned in a row (their
        // callers gone, each before the next began), and passes on a panic of the init future:
        // this call gets an error, the connection's other streams live on.
        std::panic::AssertUnwindSafe(coalesced)
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(Arc::new(UpstreamError::Abandoned)))
    }

    /// The session for `key`, if one is live: this thread's slot, else the cache (boxed: the
    /// cache's future is larger than every caller's own state).
    pub async fn get(&self, key: &SessionKey) -> Option<Arc<UpstreamSession>> {
        // The count of removals is read before the cache is asked: a slot filled with its answer
        // holds only while nothing is removed after that.
        let at = recent::Lookup {
            store: self.id,
            removals: self.removals.load(Ordering::Acquire),
            hash: self.hasher.hash_one(key),
            key,
        };
        let now = Instant::now();
        if let Some(session) = recent::get(at, now, self.refresh) {
            return Some(session);
        }
        let session = Box::pin(self.cache.get(key)).await?;
        recent::put(at, &session, now);
        Some(session)
    }

    /// Forgets a session the upstream no longer knows (it answered 404).
    pub async fn forget(&self, key: &SessionKey) {
        self.cache.invalidate(key).await;
        self.count_removal();
        if let Some(shared) = &self.shared {
            shared.remove(&key.gateway, &key.server).await;
        }
    }

    /// The live upstream sessions of a gateway session on this replica, by server.
    pub fn of_gateway_session(&self, jti: &str) -> Vec<(Arc<str>, Arc<UpstreamSession>)> {
        self.cache
            .iter()
            .filter(|(key, _)| &*key.gateway == jti)
            .map(|(key, value)| (key.server.clone(), value))
            .collect()
    }

    /// Forgets every upstream session of a gateway session; returns them so they can be closed.
    pub async fn forget_gateway_session(&self, jti: &str) -> Vec<(Arc<str>, Arc<UpstreamSession>)> {
        let mut gone = Vec::new();
        for (key, value) in self.cache.iter() {
            if &*key.gateway == jti {
                self.cache.invalidate(&*key).await;
                gone.push((key.server.clone(), value));
            }
        }
        self.count_removal();
        if let Some(shared) = &self.shared {
            // Sessions other replicas created are closed too.
            for (server, s) in shared.remove_all(jti).await {
                if gone.iter().all(|(g, _)| **g != *server) {
                    gone.push((
                        server.into(),
                        Arc::new(UpstreamSession {
                            id: s.id.map(Into::into),
                            protocol_version: s.protocol_version.into(),
                            deadline: Instant::now(),
                        }),
                    ));
                }
            }
        }
        gone
    }

    /// Live entries (approximate, as moka counts).
    pub fn len(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Whether the store is empty (approximate).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn established(id: &str) -> Established {
        Established {
            session_id: Some(id.into()),
            protocol_version: "2025-11-25".into(),
            result: serde_json::json!({}),
        }
    }

    fn key(g: &str, s: &str) -> SessionKey {
        SessionKey::new(g.into(), s.into())
    }

    #[tokio::test]
    async fn an_initialize_that_panics_is_an_error_for_its_callers() {
        let store = UpstreamSessions::new(100, Duration::from_secs(60));
        let got = store
            .get_or_create(key("g1", "s"), Duration::from_secs(60), async {
                if std::hint::black_box(true) {
                    panic!("the init future panics");
                }
                Ok(established("never"))
            })
            .await;
        assert!(
            matches!(
                got.as_ref().map_err(|e| &**e),
                Err(UpstreamError::Abandoned)
            ),
            "{got:?}"
        );
        // Nothing was kept: the next call initializes.
        let got = store
            .get_or_create(key("g1", "s"), Duration::from_secs(60), async {
                Ok(established("up-1"))
            })
            .await;
        assert_eq!(got.expect("session").id.as_deref(), Some("up-1"));
    }

    #[tokio::test]
    async fn concurrent_first_calls_initialize_once() {
        let store = Arc::new(UpstreamSessions::new(100, Duration::from_secs(60)));
        let inits = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let store = store.clone();
            let inits = inits.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .get_or_create(key("g1", "s"), Duration::from_secs(60), async {
                        inits.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok(established("up-1"))
                    })
                    .await
            }));
        }
        for t in tasks {
            let s = t.await.expect("join").expect("session");
            assert_eq!(s.id.as_deref(), Some("up-1"));
        }
        assert_eq!(inits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn failures_are_not_cached_and_keys_are_separate() {
        let store = UpstreamSessions::new(100, Duration::from_secs(60));
        let r = store
            .get_or_create(key("g", "s"), Duration::from_secs(60), async {
                Err(UpstreamError::Timeout)
            })
            .await;
        assert_eq!(
            r.map(|_| ()).map_err(|e| (*e).clone()),
            Err(UpstreamError::Timeout)
        );
        let a = store
            .get_or_create(key("g", "s"), Duration::from_secs(60), async {
                Ok(established("a"))
            })
            .await
            .expect("a");
        let b = store
            .get_or_create(key("g", "t"), Duration::from_secs(60), async {
                Ok(established("b"))
            })
            .await
            .expect("b");
        assert_eq!((a.id.as_deref(), b.id.as_deref()), (Some("a"), Some("b")));
        store.forget(&key("g", "s")).await;
        assert!(store.get(&key("g", "s")).await.is_none());
        let gone = store.forget_gateway_session("g").await;
        assert_eq!(gone.len(), 1);
        assert!(store.get(&key("g", "t")).await.is_none());
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    /// Creates `key`'s session and reads it, so that this thread's slot holds it.
    fn remembered(store: &UpstreamSessions, key: &SessionKey, id: &str) {
        block_on(async {
            store
                .get_or_create(key.clone(), Duration::from_secs(60), async {
                    Ok(established(id))
                })
                .await
                .expect("created");
            assert_eq!(store.get(key).await.expect("held").id.as_deref(), Some(id));
        });
    }

    #[test]
    fn no_thread_answers_a_session_that_left_the_store() {
        let store = Arc::new(UpstreamSessions::new(100, Duration::from_secs(60)));
        let on_another_thread = |f: fn(&UpstreamSessions)| {
            let store = store.clone();
            std::thread::spawn(move || f(&store))
                .join()
                .expect("other thread");
        };
        // Forgotten (the upstream's 404) on another thread.
        let (a, b, c) = (key("g1", "a"), key("g1", "b"), key("g2", "c"));
        remembered(&store, &a, "up-a");
        remembered(&store, &b, "up-b");
        remembered(&store, &c, "up-c");
        on_another_thread(|s| block_on(s.forget(&key("g1", "a"))));
        block_on(async {
            assert!(store.get(&a).await.is_none());
            assert!(store.get(&b).await.is_some(), "other sessions stay");
        });
        // Every session of an ended gateway session.
        on_another_thread(|s| {
            block_on(s.forget_gateway_session("g1"));
        });
        block_on(async {
            assert!(store.get(&b).await.is_none());
            assert_eq!(store.get(&c).await.expect("c").id.as_deref(), Some("up-c"));
        });
        // A session created again after it was forgotten is the new one.
        remembered(&store, &a, "up-a2");
    }

    #[test]
    fn no_thread_answers_a_session_evicted_by_the_size_bound() {
        let store = UpstreamSessions::new(1, Duration::from_secs(60));
        let (a, b) = (key("g", "a"), key("g", "b"));
        remembered(&store, &a, "up-a");
        remembered(&store, &b, "up-b");
        block_on(async {
            store.maintain().await;
            // Whichever the bound pushed out is answered by no slot.
            for k in [&a, &b] {
                assert_eq!(
                    store.get(k).await.is_some(),
                    store.cache.contains_key(k),
                    "{k:?}"
                );
            }
            assert!(store.len() <= 1);
        });
    }

    #[test]
    fn a_slot_answers_for_at_most_half_the_idle_timeout() {
        // (idle, refresh)
        let cases = [(60, 1_000), (2, 1_000), (1, 500), (0, 0)];
        for (idle, refresh) in cases {
            let store = UpstreamSessions::new(1, Duration::from_secs(idle));
            assert_eq!(
                store.refresh,
                Duration::from_millis(refresh),
                "idle {idle} s"
            );
        }
    }

    #[tokio::test]
    async fn sessions_expire_with_their_gateway_session() {
        let store = UpstreamSessions::new(100, Duration::from_secs(60));
        store
            .get_or_create(key("g", "s"), Duration::from_millis(30), async {
                Ok(established("a"))
            })
            .await
            .expect("a");
        assert!(store.get(&key("g", "s")).await.is_some());
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(store.get(&key("g", "s")).await.is_none());
    }
}
