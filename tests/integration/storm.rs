//! Cold-start storm through the real Envoy: many new gateway sessions calling an upstream at
//! once. Every call gets its answer (or, past its budget, a clear JSON-RPC error with its id),
//! each (session, server) costs exactly one upstream initialize, counted at the upstream, and
//! no more initializes than `--max-concurrent-initializes` reach the upstream at once.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::common::fixture::Fixture;
use crate::common::{start_gateway, Client, Reply, Upstream};
use serde_json::json;

/// `n` new gateway sessions, initialized concurrently.
async fn sessions(url: &str, n: usize) -> Vec<Client> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let url = url.to_owned();
            tokio::spawn(async move {
                let mut c = Client::new(&url);
                c.initialize().await;
                c
            })
        })
        .collect();
    let mut clients = Vec::with_capacity(n);
    for t in tasks {
        clients.push(t.await.expect("initialize"));
    }
    clients
}

/// Every client calls `fx_echo` at the same moment (a barrier, then one request each).
async fn call_all_at_once(clients: Vec<Client>) -> Vec<(i64, Reply, Duration)> {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(clients.len()));
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let id = 1000 + i as i64;
                let started = Instant::now();
                let r = c.call_tool(id, "fx_echo", json!({"i": i})).await;
                (id, r, started.elapsed())
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("call"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_cold_sessions_each_get_their_answer_with_one_upstream_initialize() {
    const SESSIONS: usize = 200;
    const BOUND: usize = 16;
    let fx = Fixture::start(&["echo"]).await;
    let g = start_gateway(
        "storm-cold-start",
        &[Upstream::new("test/fixture", "fx_", fx.port)],
        &[&format!("--max-concurrent-initializes={BOUND}")],
    )
    .await;
    // Slow enough that initializes overlap and the bound is reached.
    fx.state.init_delay_ms.store(50, Ordering::SeqCst);
    fx.state.init_peak.store(0, Ordering::SeqCst);
    let before = fx.initializes();

    let clients = sessions(&g.url(), SESSIONS).await;
    let started = Instant::now();
    let replies = call_all_at_once(clients).await;
    let took = started.elapsed();

    let failed: Vec<String> = replies
        .iter()
        .filter(|(id, r, _)| {
            r.status != 200 || r.json["id"] != *id || !r.json["result"].is_object()
        })
        .map(|(id, r, _)| {
            format!(
                "id {id}: HTTP {} {}",
                r.status,
                r.text.chars().take(200).collect::<String>()
            )
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {SESSIONS} calls failed (in {took:?}):\n{}",
        failed.len(),
        failed.join("\n")
    );
    assert_eq!(
        fx.initializes() - before,
        SESSIONS,
        "exactly one upstream initialize per (session, server)"
    );
    let upstream_sessions: HashSet<String> = fx
        .calls()
        .iter()
        .filter_map(|s| {
            s.headers
                .get("mcp-session-id")?
                .to_str()
                .ok()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(
        upstream_sessions.len(),
        SESSIONS,
        "each gateway session used its own upstream session"
    );
    let peak = fx.state.init_peak.load(Ordering::SeqCst);
    assert!(
        (2..=BOUND).contains(&peak),
        "initializes in flight at the upstream peaked at {peak}, bound {BOUND}"
    );
    let slowest = replies.iter().map(|(_, _, d)| *d).max().unwrap_or_default();
    assert!(
        slowest < Duration::from_secs(5),
        "every call answered within the 5 s initialize budget; slowest {slowest:?}"
    );
    let m = g.metrics().await;
    assert!(
        m.contains(&format!(
            "mcp_router_upstream_initializations_total{{server=\"test/fixture\",result=\"ok\"}} {SESSIONS}"
        )),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_still_waiting_for_an_initialize_slot_past_their_budget_get_a_503_with_their_id() {
    const SESSIONS: usize = 12;
    let fx = Fixture::start(&["echo"]).await;
    let g = start_gateway(
        "storm-budget",
        &[Upstream::new("test/fixture", "fx_", fx.port)],
        &[
            "--max-concurrent-initializes=1",
            "--upstream-init-timeout-ms=1000",
        ],
    )
    .await;
    fx.state.init_delay_ms.store(300, Ordering::SeqCst);

    let clients = sessions(&g.url(), SESSIONS).await;
    let replies = call_all_at_once(clients).await;
    let (mut ok, mut busy) = (0, 0);
    for (id, r, took) in &replies {
        assert!(
            r.content_type().starts_with("application/json"),
            "id {id}: a JSON answer, never an empty error: HTTP {} {:?}",
            r.status,
            r.text
        );
        assert_eq!(r.json["id"], *id, "{}", r.text);
        match r.status {
            200 => {
                assert!(r.json["result"].is_object(), "{}", r.text);
                ok += 1;
            }
            503 | 504 => {
                assert_eq!(r.json["error"]["code"], -32003, "{}", r.text);
                let msg = r.json["error"]["message"].as_str().unwrap_or("");
                assert!(msg.contains("test/fixture"), "{msg}");
                busy += 1;
            }
            s => panic!("id {id}: unexpected HTTP {s}: {}", r.text),
        }
        assert!(
            *took < Duration::from_millis(2500),
            "id {id} answered within its 1 s budget (plus slack): {took:?}"
        );
    }
    assert!(ok >= 1, "the first initializes finish within the budget");
    assert!(
        busy >= 1,
        "with one slot of 300 ms and a 1 s budget, some wait too long"
    );
    assert_eq!(ok + busy, SESSIONS);
    // (No peak check here: an initialize abandoned at its deadline frees its slot while the
    // upstream may still be working on it. The first test checks the bound.)

    // Those who were told to retry succeed when they do.
    fx.state.init_delay_ms.store(0, Ordering::SeqCst);
    let mut again = Client::new(&g.url());
    again.initialize().await;
    let r = again.call_tool(1, "fx_echo", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
}
