//! The bound on a shutdown's drain.
//!
//! On SIGTERM each server stops accepting and lets what is in flight finish. Some of what is in
//! flight need not end soon: a client's event stream on the broker, an upstream's SSE answer
//! that the router tags chunk by chunk, a long tool call whose ext_proc stream stays open until
//! its response ends. An orchestrator kills the process at the end of its grace period anyway
//! (30 s in the shipped Deployment), without a word; so the drain ends by `--drain-timeout`
//! after the stop, and what is still open then is closed, with a warning saying so.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

/// Runs `server` (which stops accepting and drains once `stop` turns true) to its end, but for
/// `drain` at most after the stop: `Some` of what it returned, or `None` when the drain ran out
/// and `server` was dropped. What it still held open closes with the runtime its connection
/// tasks run on (an ext_proc worker's at once, the broker's when the process ends). A `stop`
/// whose sender is gone counts as a stop, as the servers' own shutdown signals count it.
pub async fn bounded<R>(
    server: impl Future<Output = R>,
    mut stop: watch::Receiver<bool>,
    drain: Duration,
    name: &'static str,
) -> Option<R> {
    let ran_out = async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
        tokio::time::sleep(drain).await;
    };
    tokio::select! {
        // A server that has ended wins over a drain that ran out in the same turn.
        biased;
        served = server => Some(served),
        () = ran_out => {
            tracing::warn!(
                server = name,
                drain_s = drain.as_secs_f64(),
                "still open at the end of the drain (--drain-timeout): closed"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that drains for `takes` once stopped (or never ends, with `None`).
    async fn server(mut stop: watch::Receiver<bool>, takes: Option<Duration>) -> &'static str {
        let _ = stop.wait_for(|s| *s).await;
        match takes {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
        "drained"
    }

    #[tokio::test(start_paused = true)]
    async fn a_drain_ends_by_the_bound_after_the_stop_and_no_sooner() {
        let drain = Duration::from_secs(20);
        // (the server's drain after the stop, the time the stop comes, what `bounded` gives, and
        // when, after the start)
        let cases: [(Option<u64>, u64, Option<&str>, u64); 5] = [
            (Some(0), 0, Some("drained"), 0),
            (Some(5), 0, Some("drained"), 5),
            (Some(5), 100, Some("drained"), 105),
            (None, 0, None, 20),
            (None, 100, None, 120),
        ];
        for (takes, stop_at, want, done_at) in cases {
            let (tx, rx) = watch::channel(false);
            let started = tokio::time::Instant::now();
            let stopper = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(stop_at)).await;
                let _ = tx.send(true);
                // Held until the end, so that only the value stops the server.
                std::future::pending::<()>().await;
            });
            let got = bounded(
                server(rx.clone(), takes.map(Duration::from_secs)),
                rx,
                drain,
                "test",
            )
            .await;
            assert_eq!(got, want, "takes {takes:?}, stop at {stop_at}");
            assert_eq!(
                started.elapsed().as_secs(),
                done_at,
                "takes {takes:?}, stop at {stop_at}"
            );
            stopper.abort();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_never_stopped_is_never_cut() {
        let (_tx, rx) = watch::channel(false);
        let run = bounded(server(rx.clone(), None), rx, Duration::ZERO, "test");
        assert!(tokio::time::timeout(Duration::from_secs(3600), run)
            .await
            .is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_whose_sender_is_gone_counts_as_a_stop() {
        let (tx, rx) = watch::channel(false);
        drop(tx);
        let got = bounded(server(rx.clone(), None), rx, Duration::from_secs(1), "test").await;
        assert_eq!(got, None);
    }
}
