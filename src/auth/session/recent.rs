//! Each thread's most recently verified session ids, in front of the shared `verified` cache
//! ([`crate::thread_slots`]).
//!
//! A session id is checked on every routed call. The shared cache (moka) answers a repeat in
//! about 2k instructions, but over code and data of its own that the call has no other use for:
//! measured with `CACHE=1 scripts/bench-calls.sh`, its hit took about 140 first-level data-cache
//! misses and 150 instruction-cache misses per call.
//!
//! Nothing is accepted here that was not verified in full: a slot holds an id that passed
//! signature, claims and termination checks, keyed by the whole id; a hit still checks expiry,
//! and holds only while no session was ended since the slot was filled (the owner's termination
//! count is unchanged), and only for the [`super::SessionKeys`] that filled it.

use super::GatewaySession;
use crate::thread_slots::{self, Slots, Table};

struct Slot {
    /// The [`super::SessionKeys`] instance that verified the id.
    keys: u64,
    /// Its count of ended sessions when the id was checked against them.
    terminations: u64,
    token: Box<str>,
    /// This thread's own copy, so that handing out clones does not share reference counts
    /// with other threads.
    session: GatewaySession,
}

thread_local! {
    static RECENT: Table<Slot> = const { Table::new(Slots::new()) };
}

/// What the owner asks about: which instance, its count of ended sessions now, and the id.
#[derive(Clone, Copy)]
pub(super) struct Lookup<'a> {
    pub keys: u64,
    pub terminations: u64,
    pub hash: u64,
    pub token: &'a str,
}

/// The session `token` was verified as on this thread, if it was verified by the same keys,
/// no session has been ended since, and it has not expired by `now` (with `leeway`). A slot
/// whose session expired is emptied.
pub(super) fn get(at: Lookup<'_>, now: u64, leeway: u64) -> Option<GatewaySession> {
    thread_slots::get(&RECENT, at.hash, |slot| {
        let held = slot.as_ref()?;
        if held.keys != at.keys || held.terminations != at.terminations || *held.token != *at.token
        {
            return None;
        }
        if !fresh(held.session.exp, now, leeway) {
            *slot = None;
            return None;
        }
        Some(held.session.clone())
    })
}

/// Remembers `session` as what `token` verified as, with the termination count read before it
/// was checked against ended sessions.
pub(super) fn put(at: Lookup<'_>, session: &GatewaySession) {
    let slot = Slot {
        keys: at.keys,
        terminations: at.terminations,
        token: at.token.into(),
        session: GatewaySession {
            jti: (*session.jti).into(),
            exp: session.exp,
            client_capabilities: session.client_capabilities.as_deref().map(Into::into),
            owner: session.owner.as_deref().map(Into::into),
        },
    };
    thread_slots::put(&RECENT, at.hash, slot);
}

/// Not yet expired: the same bound as the shared cache's and the JWT check's.
pub(super) fn fresh(exp: u64, now: u64, leeway: u64) -> bool {
    exp.saturating_add(leeway) >= now
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::thread_slots::SLOTS;

    fn session(jti: &str, exp: u64) -> GatewaySession {
        GatewaySession {
            jti: jti.into(),
            exp,
            client_capabilities: Some(r#"{"roots":{}}"#.into()),
            owner: None,
        }
    }

    fn at(keys: u64, terminations: u64, hash: u64, token: &str) -> Lookup<'_> {
        Lookup {
            keys,
            terminations,
            hash,
            token,
        }
    }

    #[test]
    fn a_slot_answers_only_the_same_id_keys_and_termination_count_before_expiry() {
        std::thread::spawn(|| {
            let held = at(7, 3, 42, "token-a");
            put(held, &session("a", 1_000));
            // (lookup, now, answered)
            let cases: [(Lookup, u64, bool); 7] = [
                (held, 900, true),
                (held, 1_005, true),
                (at(8, 3, 42, "token-a"), 900, false),
                (at(7, 4, 42, "token-a"), 900, false),
                (at(7, 3, 42, "token-b"), 900, false),
                (at(7, 3, 43, "token-a"), 900, false),
                (held, 1_006, false),
            ];
            for (i, (lookup, now, answered)) in cases.into_iter().enumerate() {
                let got = get(lookup, now, 5);
                assert_eq!(got.is_some(), answered, "case {i}");
                if let Some(s) = got {
                    assert_eq!(s, session("a", 1_000));
                }
            }
            // The expired session was dropped from its slot: not answered even for an earlier now.
            assert!(get(held, 900, 5).is_none());
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn each_thread_has_its_own_slots_and_a_later_id_replaces_its_slot() {
        std::thread::spawn(|| {
            put(at(1, 0, 5, "first"), &session("f", u64::MAX));
            put(
                at(1, 0, 5 + SLOTS as u64, "second"),
                &session("s", u64::MAX),
            );
            assert!(get(at(1, 0, 5, "first"), 0, 0).is_none(), "replaced");
            assert!(get(at(1, 0, 5 + SLOTS as u64, "second"), 0, 0).is_some());
            std::thread::spawn(|| {
                assert!(get(at(1, 0, 5 + SLOTS as u64, "second"), 0, 0).is_none());
            })
            .join()
            .expect("other thread");
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn the_copy_shares_no_reference_counts_with_the_verified_session() {
        std::thread::spawn(|| {
            let verified = session("shared", u64::MAX);
            put(at(2, 0, 9, "t"), &verified);
            let got = get(at(2, 0, 9, "t"), 0, 0).expect("held");
            assert_eq!(got, verified);
            assert!(!std::sync::Arc::ptr_eq(&got.jti, &verified.jti));
            assert_eq!(std::sync::Arc::strong_count(&verified.jti), 1);
        })
        .join()
        .expect("thread");
    }
}
