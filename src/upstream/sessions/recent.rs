//! Each thread's recently used upstream sessions, in front of the shared store
//! ([`crate::thread_slots`]).
//!
//! A routed call looks its upstream session up on every call. The shared store (moka's future
//! cache) answered a repeat in about 1.6k instructions, with about 110 first-level
//! instruction-cache and 50 data-cache misses per call (`CACHE=1 scripts/bench-calls.sh`).
//!
//! A slot holds what the shared store answered, keyed by the whole key, and answers a hit only:
//! - for the [`super::UpstreamSessions`] that filled it;
//! - while nothing has left that store since (its count of removals is unchanged: a forgotten,
//!   ended, expired or evicted session is never answered from a slot);
//! - before the gateway session's deadline;
//! - within `refresh` of the store's own answer. The store's idle expiry counts from its last
//!   read, so a session in use is read there at least every `refresh` (shorter than the idle
//!   timeout) and never idles out of the store while a slot still answers it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{SessionKey, UpstreamSession};
use crate::thread_slots::{self, Slots, Table};

struct Slot {
    /// The [`super::UpstreamSessions`] instance that answered.
    store: u64,
    /// Its count of removals when it was asked.
    removals: u64,
    gateway: Box<str>,
    server: Box<str>,
    /// This thread's own copy, so that handing out clones does not share reference counts with
    /// other threads.
    session: Arc<UpstreamSession>,
    /// When the store answered.
    read: Instant,
}

thread_local! {
    static RECENT: Table<Slot> = const { Table::new(Slots::new()) };
}

/// What the store asks about: which instance, its count of removals now, and the key.
#[derive(Clone, Copy)]
pub(super) struct Lookup<'a> {
    pub store: u64,
    pub removals: u64,
    pub hash: u64,
    pub key: &'a SessionKey,
}

/// The session the store answered for `key` on this thread, if the slot still holds (see the
/// module's comment). A slot that no longer holds is emptied.
pub(super) fn get(at: Lookup<'_>, now: Instant, refresh: Duration) -> Option<Arc<UpstreamSession>> {
    thread_slots::get(&RECENT, at.hash, |slot| {
        let held = slot.as_ref()?;
        if held.store != at.store
            || held.removals != at.removals
            || *held.gateway != *at.key.gateway
            || *held.server != *at.key.server
        {
            return None;
        }
        if !usable(held.read, held.session.deadline, now, refresh) {
            *slot = None;
            return None;
        }
        Some(held.session.clone())
    })
}

/// Remembers `session` as the store's answer for the key at `read`, with the removal count read
/// before the store was asked.
pub(super) fn put(at: Lookup<'_>, session: &UpstreamSession, read: Instant) {
    let slot = Slot {
        store: at.store,
        removals: at.removals,
        gateway: (*at.key.gateway).into(),
        server: (*at.key.server).into(),
        session: Arc::new(UpstreamSession {
            id: session.id.as_deref().map(Into::into),
            protocol_version: (*session.protocol_version).into(),
            deadline: session.deadline,
        }),
        read,
    };
    thread_slots::put(&RECENT, at.hash, slot);
}

/// Before the gateway session's deadline, and within `refresh` of the store's answer.
fn usable(read: Instant, deadline: Instant, now: Instant, refresh: Duration) -> bool {
    now < deadline && now.saturating_duration_since(read) < refresh
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::thread_slots::SLOTS;

    fn session(id: &str, deadline: Instant) -> UpstreamSession {
        UpstreamSession {
            id: Some(id.into()),
            protocol_version: "2025-11-25".into(),
            deadline,
        }
    }

    fn at(store: u64, removals: u64, hash: u64, key: &SessionKey) -> Lookup<'_> {
        Lookup {
            store,
            removals,
            hash,
            key,
        }
    }

    const REFRESH: Duration = Duration::from_secs(1);

    #[test]
    fn a_slot_answers_only_the_same_key_store_and_removal_count_while_usable() {
        std::thread::spawn(|| {
            let t0 = Instant::now();
            let key = SessionKey::new("g".into(), "s".into());
            let (other_gateway, other_server) = (
                SessionKey::new("h".into(), "s".into()),
                SessionKey::new("g".into(), "t".into()),
            );
            let deadline = t0 + Duration::from_secs(10);
            let ms = Duration::from_millis;
            // (lookup, now, answered); each case puts the slot back first.
            let cases: [(Lookup, Instant, bool); 9] = [
                (at(7, 3, 42, &key), t0, true),
                (at(7, 3, 42, &key), t0 + ms(999), true),
                (at(7, 3, 42, &key), t0 + REFRESH, false),
                (at(8, 3, 42, &key), t0, false),
                (at(7, 4, 42, &key), t0, false),
                (at(7, 3, 42, &other_gateway), t0, false),
                (at(7, 3, 42, &other_server), t0, false),
                (at(7, 3, 43, &key), t0, false),
                (at(7, 3, 42, &key), deadline, false),
            ];
            for (i, (lookup, now, answered)) in cases.into_iter().enumerate() {
                put(at(7, 3, 42, &key), &session("up", deadline), t0);
                let got = get(lookup, now, REFRESH);
                assert_eq!(got.is_some(), answered, "case {i}");
                if let Some(s) = got {
                    assert_eq!(*s, session("up", deadline));
                }
            }
            // A slot past its refresh was emptied: not answered even for an earlier now.
            put(at(7, 3, 42, &key), &session("up", deadline), t0);
            assert!(get(at(7, 3, 42, &key), t0 + REFRESH, REFRESH).is_none());
            assert!(get(at(7, 3, 42, &key), t0, REFRESH).is_none());
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn each_thread_has_its_own_slots_and_copies() {
        std::thread::spawn(|| {
            let now = Instant::now();
            let key = SessionKey::new("g".into(), "s".into());
            let other = SessionKey::new("g2".into(), "s".into());
            let shared = session("up", now + Duration::from_secs(10));
            put(at(1, 0, 5, &key), &shared, now);
            let got = get(at(1, 0, 5, &key), now, REFRESH).expect("held");
            assert!(!Arc::ptr_eq(
                got.id.as_ref().expect("id"),
                shared.id.as_ref().expect("id")
            ));
            put(at(1, 0, 5 + SLOTS as u64, &other), &shared, now);
            assert!(get(at(1, 0, 5, &key), now, REFRESH).is_none(), "replaced");
            std::thread::spawn(move || {
                assert!(get(at(1, 0, 5 + SLOTS as u64, &other), now, REFRESH).is_none());
            })
            .join()
            .expect("other thread");
        })
        .join()
        .expect("thread");
    }
}
