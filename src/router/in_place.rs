//! Futures built in the box made for them.
//!
//! `Box::pin(f)` builds `f` aside and then copies it into the box, whole. An async fn's future is
//! mostly room for the states to come (the router's are kilobytes), and the copy reads and writes
//! all of it, in memory the call has no other use for: measured with `CACHE=1
//! scripts/bench-calls.sh`, the stream's future alone took about 100 first-level data-cache misses
//! per call that way. Made first, the box is where the call that builds the future writes its
//! result, when that call is not inlined: the builders given here are `#[inline(never)]`
//! functions, and only what the future starts with (its arguments) is written.

use std::pin::Pin;

/// The future `build` returns, built in a box made before it is called.
pub fn boxed<F>(build: impl FnOnce() -> F) -> Pin<Box<F>> {
    let slot = Box::<F>::new_uninit();
    Box::into_pin(Box::write(slot, build()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_boxed_future_runs_as_built() {
        let mut log = Vec::new();
        let answer = boxed(|| async {
            log.push("ran");
            7
        })
        .await;
        assert_eq!((answer, log), (7, vec!["ran"]));
    }
}
