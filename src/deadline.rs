//! The time an ext_proc message's work may take.
//!
//! Envoy waits `message_timeout` (10 s in the shipped configs) for each answer, then gives up with
//! its own error. Everything the router may do inside one message (OIDC discovery and JWKS fetches
//! in the request headers phase; token exchange steps, `via` included, and the upstream
//! initialize in the request body phase) therefore shares one [`Deadline`], set when the message
//! arrives from `--processing-budget-ms`. Each step takes what is left of it, capped by its own
//! limit (an HTTP request's, `--upstream-init-timeout-ms`); when it runs out the router answers
//! with its own JSON-RPC error while Envoy still waits. Fetches that fill a cache shared by many
//! requests (identity provider keys, exchanged tokens) are not cut short by it: they run in
//! their own tasks under their own limit, and a deadline ends only a request's waiting for them.
//! A deadline already past when a step starts ends the waiting at once (a ready result is still
//! taken).
//!
//! Callers that Envoy does not wait on (the broker, discovery) use [`Deadline::NONE`]. The
//! arithmetic is pure (`*_at` functions take `now`); only [`Deadline::bound`] touches a timer,
//! and only when the deadline is finite, so callers arm it on their slow paths only.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// When a message's work must be done; `NONE` for no bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(Option<Instant>);

/// The deadline passed before the work finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

/// What bounds a step: its own limit, or what is left of the message's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// The step's own limit ends first.
    Limit,
    /// The message's deadline ends first (or at the same time).
    Deadline,
}

impl Deadline {
    /// No bound.
    pub const NONE: Deadline = Deadline(None);

    /// `budget` from now.
    pub fn after(budget: Duration) -> Deadline {
        Deadline::after_at(Instant::now(), budget)
    }

    /// `budget` from `now` (no bound if that cannot be represented).
    pub fn after_at(now: Instant, budget: Duration) -> Deadline {
        Deadline(now.checked_add(budget))
    }

    /// The instant, if bounded.
    pub fn at(self) -> Option<Instant> {
        self.0
    }

    /// Time left at `now` (zero once passed); `None` when unbounded.
    pub fn remaining_at(self, now: Instant) -> Option<Duration> {
        self.0.map(|at| at.saturating_duration_since(now))
    }

    /// Whether nothing is left at `now`.
    pub fn expired_at(self, now: Instant) -> bool {
        self.remaining_at(now).is_some_and(|left| left.is_zero())
    }

    /// When a step that starts at `now` with its own `limit` must end, and which of the two
    /// bounds it.
    pub fn end_of_step_at(self, now: Instant, limit: Duration) -> (Instant, Bound) {
        let own = now.checked_add(limit);
        match (own, self.0) {
            (Some(own), Some(at)) if own < at => (own, Bound::Limit),
            (_, Some(at)) => (at, Bound::Deadline),
            (Some(own), None) => (own, Bound::Limit),
            // Neither representable: as far as anything can wait.
            (None, None) => (far_future(now), Bound::Limit),
        }
    }

    /// Runs `work` until the deadline: `Err(Elapsed)` if it passes first. A timer is armed
    /// only for a finite deadline, and only registered if `work` does not finish on its first
    /// poll.
    pub async fn bound<F: Future>(self, work: F) -> Result<F::Output, Elapsed> {
        match self.0 {
            None => Ok(work.await),
            Some(at) => tokio::time::timeout_at(at, work).await.map_err(|_| Elapsed),
        }
    }
}

/// About 30 years after `now` (as tokio's own "far future"): later than any step will wait.
fn far_future(now: Instant) -> Instant {
    const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);
    now.checked_add(FAR).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn time_left() {
        let t0 = Instant::now();
        // (budget, elapsed, remaining, expired)
        let cases = [
            (8000, 0, 8000, false),
            (8000, 2500, 5500, false),
            (8000, 7999, 1, false),
            (8000, 8000, 0, true),
            (8000, 9000, 0, true),
            (0, 0, 0, true),
        ];
        for (budget, elapsed, remaining, expired) in cases {
            let d = Deadline::after_at(t0, ms(budget));
            let now = t0 + ms(elapsed);
            assert_eq!(
                d.remaining_at(now),
                Some(ms(remaining)),
                "{budget} after {elapsed}"
            );
            assert_eq!(d.expired_at(now), expired, "{budget} after {elapsed}");
        }
        assert_eq!(Deadline::NONE.remaining_at(t0), None);
        assert!(!Deadline::NONE.expired_at(t0 + ms(1_000_000)));
    }

    #[test]
    fn steps_take_what_is_left_capped_by_their_own_limit() {
        let t0 = Instant::now();
        // (budget, step starts after, step limit, step ends after, bound by)
        let cases = [
            // A live budget leaves an initialize its whole limit...
            (8000, 0, 5000, 5000, Bound::Limit),
            // ...but a slow exchange before it leaves only the rest of the budget.
            (8000, 4000, 5000, 8000, Bound::Deadline),
            (8000, 3000, 5000, 8000, Bound::Deadline),
            (8000, 2999, 5000, 7999, Bound::Limit),
            // Two exchange steps of 5 s each cannot both have their 5 s.
            (8000, 5000, 5000, 8000, Bound::Deadline),
            // Nothing left: the step ends as it starts (at the deadline).
            (8000, 8000, 5000, 8000, Bound::Deadline),
            (8000, 9500, 5000, 8000, Bound::Deadline),
            // A limit longer than the budget: the budget wins.
            (2000, 0, 5000, 2000, Bound::Deadline),
        ];
        for (budget, start, limit, end, bound) in cases {
            let d = Deadline::after_at(t0, ms(budget));
            assert_eq!(
                d.end_of_step_at(t0 + ms(start), ms(limit)),
                (t0 + ms(end), bound),
                "budget {budget}, start {start}, limit {limit}"
            );
        }
        assert_eq!(
            Deadline::NONE.end_of_step_at(t0 + ms(100), ms(5000)),
            (t0 + ms(5100), Bound::Limit)
        );
        // A limit too long to represent: the deadline bounds it, else the far future (never
        // "now", which would end the step before it starts).
        let d = Deadline::after_at(t0, ms(8000));
        assert_eq!(
            d.end_of_step_at(t0, Duration::MAX),
            (t0 + ms(8000), Bound::Deadline)
        );
        let (end, bound) = Deadline::NONE.end_of_step_at(t0, Duration::MAX);
        assert_eq!(bound, Bound::Limit);
        assert!(
            end >= t0 + Duration::from_secs(86_400 * 365),
            "{:?}",
            end - t0
        );
    }

    #[test]
    fn an_unrepresentable_budget_is_no_bound() {
        let d = Deadline::after_at(Instant::now(), Duration::MAX);
        assert_eq!(d, Deadline::NONE);
    }

    #[tokio::test(start_paused = true)]
    async fn bound_work_ends_at_the_deadline() {
        let d = Deadline::after(ms(100));
        assert_eq!(d.bound(async { 7 }).await, Ok(7));
        assert_eq!(
            d.bound(tokio::time::sleep(ms(50))).await,
            Ok(()),
            "within the budget"
        );
        assert_eq!(d.bound(tokio::time::sleep(ms(60))).await, Err(Elapsed));
        assert_eq!(
            d.bound(async { 1 }).await,
            Ok(1),
            "ready work still finishes"
        );
        assert_eq!(
            Deadline::NONE.bound(tokio::time::sleep(ms(10_000))).await,
            Ok(())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_already_past_ends_the_waiting_at_once() {
        let past = Deadline::after(ms(0));
        tokio::time::advance(ms(1)).await;
        let started = Instant::now();
        assert_eq!(past.bound(std::future::pending::<()>()).await, Err(Elapsed));
        assert_eq!(Instant::now(), started, "no time passed");
        assert_eq!(
            past.bound(async { 3 }).await,
            Ok(3),
            "a ready result is taken"
        );
    }
}
