//! A small direct-mapped table, kept per thread, in front of a shared cache.
//!
//! Envoy sends one worker's requests over one ext_proc connection, served by one router thread,
//! so what a client's call looks up (its gateway session, its upstream session) comes back to
//! the thread that looked it up last. A shared concurrent cache answers a repeat over code and
//! data of its own (its map, its read recording, shared reference counts) that the call has no
//! other use for; a slot in a table the thread keeps warm answers it from a few cache lines.
//! The tables hold only what their owners put in them and check on every hit
//! ([`crate::auth::session`]'s verified ids, [`crate::upstream::UpstreamSessions`]' sessions).

use std::cell::RefCell;
use std::thread::LocalKey;

/// Slots per table; an entry goes in the slot its key's hash picks, replacing what was there.
pub const SLOTS: usize = 64;

/// A table per thread: `thread_local! { static T: Table<E> = const { RefCell::new(Slots::new()) } }`.
pub type Table<E> = RefCell<Slots<E>>;

/// What `look` makes of the slot `hash` picks in this thread's `table`: `None` when the table
/// was not made yet (or is in use, which nothing here allows).
pub fn get<E, R>(
    table: &'static LocalKey<Table<E>>,
    hash: u64,
    look: impl FnOnce(&mut Option<E>) -> Option<R>,
) -> Option<R> {
    table.with(|t| {
        let mut t = t.try_borrow_mut().ok()?;
        look(t.find(hash)?)
    })
}

/// Puts `entry` in the slot `hash` picks in this thread's `table`, replacing what was there.
pub fn put<E>(table: &'static LocalKey<Table<E>>, hash: u64, entry: E) {
    table.with(|t| {
        let Ok(mut t) = t.try_borrow_mut() else {
            return;
        };
        if let Some(slot) = t.pick(hash) {
            *slot = Some(entry);
        }
    });
}

/// One thread's table: empty until the first entry is put in it.
pub struct Slots<E> {
    slots: Vec<Option<E>>,
}

impl<E> Slots<E> {
    pub const fn new() -> Slots<E> {
        Slots { slots: Vec::new() }
    }

    /// The slot `hash` picks, if the table was made.
    pub fn find(&mut self, hash: u64) -> Option<&mut Option<E>> {
        self.slots.get_mut(index(hash))
    }

    /// The slot `hash` picks; the table is made on first use.
    pub fn pick(&mut self, hash: u64) -> Option<&mut Option<E>> {
        if self.slots.is_empty() {
            self.slots.resize_with(SLOTS, || None);
        }
        self.find(hash)
    }
}

impl<E> Default for Slots<E> {
    fn default() -> Self {
        Self::new()
    }
}

fn index(hash: u64) -> usize {
    // SLOTS divides u64's range: the low bits of a well-mixed hash.
    (hash % SLOTS as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_picks_one_slot_and_a_later_entry_replaces_it() {
        let mut t: Slots<&str> = Slots::new();
        assert!(t.find(3).is_none(), "not made before the first put");
        // (hash, put, then what hash 3's slot holds)
        let cases: [(u64, &str, Option<&str>); 3] = [
            (3, "a", Some("a")),
            (4, "b", Some("a")),
            (3 + SLOTS as u64, "c", Some("c")),
        ];
        for (i, (hash, value, held)) in cases.into_iter().enumerate() {
            *t.pick(hash).expect("slot") = Some(value);
            assert_eq!(t.find(3).and_then(|s| *s), held, "case {i}");
        }
        assert_eq!(t.find(4).and_then(|s| *s), Some("b"));
    }
}
