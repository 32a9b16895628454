//! Two mcp-router replicas behind the real Envoy (round robin), sharing upstream sessions through a
//! real Redis: a session created through one is used through the other with exactly one upstream
//! initialize per (session, server), counted at the upstream. Also over TLS (`rediss://`, a Redis
//! with a certificate of a CA made here, trusted with `--cache-ca-cert`).

use std::time::Duration;

use crate::common::fixture::Fixture;
use crate::common::tls::TestCa;
use crate::common::{
    log_dir, start_gateway, start_redis, start_redis_tls, start_replicas, Client, Upstream,
};
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

fn store_errors(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("mcp_router_shared_store_errors_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_a_session_through_redis_over_tls_trusting_its_ca() {
    let logs = log_dir("replicas-rediss");
    let ca = TestCa::new("redis CA");
    let (cert, key) = ca.issue(&["127.0.0.1", "localhost"]).write(&logs, "redis");
    let ca_file = ca.write(&logs, "redis-ca.pem");
    let (_redis, redis_port) = start_redis_tls(&logs, &cert, &key, &ca_file).await;
    let fx = Fixture::start(&["echo"]).await;
    let upstreams = [Upstream::new("test/fixture", "fx_", fx.port)];
    let redis_url = format!("--cache-connection-string=rediss://127.0.0.1:{redis_port}/0");
    let ca_flag = format!("--cache-ca-cert={}", ca_file.display());
    let g = start_replicas("replicas-rediss", &upstreams, &[&redis_url, &ca_flag], 2).await;
    let before = fx.initializes();

    let mut c = Client::new(&g.url());
    c.initialize().await;
    for i in 0..20 {
        let r = c.call_tool(i, "fx_echo", json!({"i": i})).await;
        assert_eq!(r.status, 200, "call {i}: {}", r.text);
    }
    assert_eq!(
        fx.initializes() - before,
        1,
        "one upstream initialize for the session, shared through rediss://"
    );
    for p in &g.metrics_ports {
        let m = g.metrics_on(*p).await;
        assert!(routed_calls(&m) > 0, "both replicas routed calls");
        assert_eq!(
            store_errors(&m),
            0,
            "Redis over TLS worked on every replica"
        );
    }

    // Without the CA the Redis certificate is not trusted: counted, logged, and the gateway
    // serves from local state (a call still works).
    let g2 = start_gateway("replicas-rediss-untrusted", &upstreams, &[&redis_url]).await;
    let mut c = Client::new(&g2.url());
    c.initialize().await;
    let r = c.call_tool(1, "fx_echo", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(store_errors(&g2.metrics().await) > 0);
    // The log says why.
    g2.router.wait_for_log("UnknownIssuer").await;
}

fn subscribes_routed(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("mcp_router_requests_total{method=\"resources/subscribe\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_update_reaches_a_get_stream_held_by_another_replica() {
    use std::sync::Arc;
    let logs = log_dir("replicas-updates");
    let (_redis, redis_port) = start_redis(&logs).await;
    let fx = Arc::new(Fixture::start_with_resources(&["echo"], &["fx://doc"]).await);
    let redis_url = format!("--cache-connection-string=redis://127.0.0.1:{redis_port}/0");
    let g = start_replicas(
        "replicas-updates",
        &[Upstream::new("test/fixture", "fx_", fx.port)],
        &[&redis_url],
        2,
    )
    .await;
    let mut c = Client::new(&g.url());
    c.initialize().await;
    let r = c
        .request(json!(1), "resources/subscribe", json!({"uri": "fx://doc"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The replica that routed the subscription listens to the upstream; the client's GET stream
    // is opened on the other one (straight at its broker, so that Envoy cannot pick).
    let mut listening = None;
    for (i, p) in g.metrics_ports.iter().enumerate() {
        if subscribes_routed(&g.metrics_on(*p).await) > 0 {
            listening = Some(i);
        }
    }
    let listening = listening.expect("a replica routed the subscription");
    let holder = g.broker_ports[1 - listening];
    let stream = c
        .http
        .get(format!("http://127.0.0.1:{holder}/mcp"))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", c.session.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let (found, seen) = Fixture::announce_until_seen(&fx, "fx://doc", stream).await;
    assert!(
        found,
        "no update on the stream held by replica {}: {seen}",
        1 - listening
    );
    assert!(seen.contains("fx://doc"), "{seen}");
}
