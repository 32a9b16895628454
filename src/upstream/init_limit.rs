//! A bound on concurrent upstream initializes, per upstream server.
//!
//! A cold start (many new gateway sessions calling at once) would otherwise open one initialize
//! per (session, server) all at the same moment and pile them on the upstream. Each server gets a
//! semaphore of `--max-concurrent-initializes` permits; an initialize waits for a permit, and the
//! whole of it (waiting plus the exchange) ends by one deadline (`--upstream-init-timeout-ms`, or
//! earlier when the processing budget of the message has less left). A caller whose deadline
//! passes while still waiting gets [`UpstreamError::Busy`]: a clear, retryable error instead of a
//! request that hangs until Envoy gives up.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

use super::UpstreamError;

/// Semaphores per server name, created on first use (servers are bounded by the config).
pub struct InitLimits {
    per_server: usize,
    // A std mutex: held only to look up or insert a semaphore, never across an await.
    semaphores: Mutex<HashMap<Arc<str>, Arc<Semaphore>>>,
}

impl InitLimits {
    /// At most `per_server` initializes in flight to each server (at least 1).
    pub fn new(per_server: usize) -> InitLimits {
        InitLimits {
            per_server: per_server.max(1),
            semaphores: Mutex::new(HashMap::new()),
        }
    }

    /// The bound per server.
    pub fn per_server(&self) -> usize {
        self.per_server
    }

    fn semaphore(&self, server: &Arc<str>) -> Arc<Semaphore> {
        let mut map = self.semaphores.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(server.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_server)))
            .clone()
    }

    /// Initializes in flight to `server` now.
    pub fn in_flight(&self, server: &Arc<str>) -> usize {
        self.per_server - self.semaphore(server).available_permits()
    }

    /// Runs `init` once a permit for `server` is free, all by `deadline`: `Busy` when the
    /// deadline passed before a permit was free, `Timeout` when it passed during `init`.
    pub async fn run<T>(
        &self,
        server: &Arc<str>,
        deadline: tokio::time::Instant,
        init: impl Future<Output = Result<T, UpstreamError>>,
    ) -> Result<T, UpstreamError> {
        let semaphore = self.semaphore(server);
        let _permit = match tokio::time::timeout_at(deadline, semaphore.acquire_owned()).await {
            Ok(Ok(p)) => p,
            // The semaphore is never closed; treat it like a full one all the same.
            Ok(Err(_)) | Err(_) => {
                return Err(UpstreamError::Busy {
                    limit: self.per_server,
                })
            }
        };
        tokio::time::timeout_at(deadline, init)
            .await
            .unwrap_or(Err(UpstreamError::Timeout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn after(d: Duration) -> tokio::time::Instant {
        tokio::time::Instant::now() + d
    }

    #[tokio::test(start_paused = true)]
    async fn no_more_than_the_bound_run_at_once() {
        let limits = Arc::new(InitLimits::new(4));
        let server: Arc<str> = "s".into();
        let (now, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let mut tasks = Vec::new();
        for _ in 0..40 {
            let (limits, server, now, peak) =
                (limits.clone(), server.clone(), now.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                limits
                    .run(&server, after(Duration::from_secs(60)), async {
                        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(n, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        now.fetch_sub(1, Ordering::SeqCst);
                        Ok(())
                    })
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.expect("join"), Ok(()));
        }
        assert_eq!(peak.load(Ordering::SeqCst), 4);
        assert_eq!(limits.in_flight(&server), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_past_the_budget_is_busy_and_a_slow_init_is_a_timeout() {
        let limits = Arc::new(InitLimits::new(1));
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let holder = {
            let (limits, a) = (limits.clone(), a.clone());
            tokio::spawn(async move {
                limits
                    .run(&a, after(Duration::from_secs(10)), async {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        Ok(())
                    })
                    .await
            })
        };
        tokio::task::yield_now().await;
        let waited = limits
            .run(&a, after(Duration::from_secs(1)), async { Ok(()) })
            .await;
        assert_eq!(waited, Err(UpstreamError::Busy { limit: 1 }));
        // Another server has its own permits.
        assert_eq!(
            limits
                .run(&b, after(Duration::from_secs(1)), async { Ok(()) })
                .await,
            Ok(())
        );
        let slow = limits
            .run(&b, after(Duration::from_secs(1)), async {
                tokio::time::sleep(Duration::from_secs(2)).await;
                Ok(())
            })
            .await;
        assert_eq!(slow, Err(UpstreamError::Timeout));
        assert_eq!(holder.await.expect("join"), Ok(()));
    }
}
