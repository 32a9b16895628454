//! Two mcp-router replicas behind the real Envoy (round robin), sharing upstream sessions through a
//! real Redis: a session created through one is used through the other with exactly one upstream
//! initialize per (session, server), counted at the upstream.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic: that is how they fail

mod common;

use std::time::Duration;

use common::fixture::Fixture;
use common::{log_dir, start_redis, start_replicas, Client, Upstream};
use serde_json::json;

fn routed_calls(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("mcp_router_requests_total{method=\"tools/call\",decision=\"upstream\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_served_by_every_replica_with_one_upstream_initialize() {
    let logs = log_dir("replicas-redis");
    let (mut redis, redis_port) = start_redis(&logs).await;
    let fx = Fixture::start(&["echo"]).await;
    let redis_url = format!("--cache-connection-string=redis://127.0.0.1:{redis_port}/0");
    let g = start_replicas(
        "replicas",
        &[Upstream::new("test/fixture", "fx_", fx.port)],
        &[&redis_url],
        2,
    )
    .await;
    let before = fx.initializes();

    let mut c = Client::new(&g.url());
    c.initialize().await;
    for i in 0..30 {
        let r = c.call_tool(i, "fx_echo", json!({"i": i})).await;
        assert_eq!(r.status, 200, "call {i}: {}", r.text);
    }
    assert_eq!(
        fx.initializes() - before,
        1,
        "one upstream initialize for the session, whichever replica routed"
    );
    let per_replica: Vec<u64> = {
        let mut v = Vec::new();
        for p in &g.metrics_ports {
            v.push(routed_calls(&g.metrics_on(*p).await));
        }
        v
    };
    assert!(
        per_replica.iter().all(|n| *n > 0),
        "both replicas routed calls: {per_replica:?}"
    );
    assert_eq!(per_replica.iter().sum::<u64>(), 30);

    // A session ended through one replica is ended on every replica.
    let mut ended = Client::new(&g.url());
    ended.initialize().await;
    assert_eq!(ended.call_tool(1, "fx_echo", json!({})).await.status, 200);
    let del = ended
        .http
        .delete(g.url())
        .header("mcp-session-id", ended.session.clone().expect("session"))
        .send()
        .await
        .expect("delete");
    assert_eq!(del.status(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 2..8 {
        let r = ended.call_tool(i, "fx_echo", json!({})).await;
        assert_eq!(
            r.status, 404,
            "call {i} after DELETE, on either replica: {}",
            r.text
        );
    }

    // Redis stops: replicas keep serving known sessions from local state, new ones re-initialize.
    redis.kill();
    for i in 100..110 {
        let r = c.call_tool(i, "fx_echo", json!({})).await;
        assert_eq!(r.status, 200, "with Redis down, call {i}: {}", r.text);
    }
    let mut c2 = Client::new(&g.url());
    c2.initialize().await;
    let r = c2.call_tool(1, "fx_echo", json!({})).await;
    assert_eq!(
        r.status, 200,
        "a new session while Redis is down: {}",
        r.text
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
}
