//! Faults, each through the real Envoy: an upstream that goes down, is slow, or resets the
//! connection in the middle of an SSE answer; the router killed and restarted under load; Redis
//! stopped and started while two replicas serve; a replica removed while sessions are live.
//! (A broken config file followed by a good one is in tests/integration/routing.rs.)
//!
//! What each checks: no request wrongly succeeds (every 200 carries the answer to its own id,
//! and nothing reaches an upstream without the router's routing), every failure the gateway
//! answers itself is a JSON-RPC error with the request's id, and clients recover with the
//! gateway session they had.

use crate::common;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::fixture::Fixture;
use crate::common::{
    log_dir, start_gateway, start_redis, start_redis_on, start_replicas, Client, Upstream,
};
use serde_json::{json, Value};

/// What came back for one call, without panicking on a broken answer.
#[derive(Debug)]
enum Outcome {
    /// The full answer (status, JSON-RPC message, content type).
    Answer(u16, Value, String),
    /// The connection or the body broke.
    Broken(String),
}

async fn try_call(c: &Client, id: i64, tool: &str) -> Outcome {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": {"id": id}}});
    let mut req = c
        .http
        .post(&c.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .timeout(Duration::from_secs(20))
        .body(body.to_string());
    if let Some(s) = &c.session {
        req = req.header("mcp-session-id", s);
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return Outcome::Broken(format!("send: {e}")),
    };
    let status = resp.status().as_u16();
    let ct = common::content_type(resp.headers());
    let text = match resp.text().await {
        Ok(t) => t,
        Err(e) => return Outcome::Broken(format!("HTTP {status}, body: {e}")),
    };
    let json = common::final_message(&text, &ct);
    if json.is_null() {
        return Outcome::Answer(status, Value::String(text), ct);
    }
    Outcome::Answer(status, json, ct)
}

/// A 200 must carry the answer to this very call; an error must be an error, never a 2xx.
fn check_not_wrongly_successful(id: i64, o: &Outcome) -> bool {
    match o {
        Outcome::Answer(200, v, _) => {
            assert_eq!(v["id"], id, "a 200 answers its own request: {v}");
            let ok = v["result"]["content"][0]["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("echo got"));
            assert!(ok, "a 200 carries the upstream's answer: {v}");
            true
        }
        Outcome::Answer(s, v, _) => {
            assert!(*s >= 400, "HTTP {s} is neither an answer nor an error: {v}");
            false
        }
        Outcome::Broken(_) => false,
    }
}

/// A failure the gateway answers itself: a JSON-RPC error object carrying the request's id.
fn assert_json_rpc_error(id: i64, o: &Outcome, what: &str) {
    match o {
        Outcome::Answer(s, v, ct) => {
            assert!(*s >= 400, "{what}: HTTP {s} {v}");
            assert!(
                ct.starts_with("application/json"),
                "{what}: a JSON-RPC error, not {ct:?}: {v}"
            );
            assert_eq!(v["id"], id, "{what}: {v}");
            assert!(v["error"]["code"].is_i64(), "{what}: {v}");
            assert!(
                v["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "{what}: {v}"
            );
        }
        Outcome::Broken(e) => panic!("{what}: the gateway should answer, got {e}"),
    }
}

/// A failure while the router (or one replica) is away: still a JSON-RPC error object, never an
/// empty 500 (Envoy cannot know the id then: it is null).
fn assert_gateway_error(o: &Outcome, what: &str) {
    match o {
        Outcome::Answer(s, v, ct) => {
            assert!(*s >= 400, "{what}: HTTP {s} {v}");
            assert!(
                ct.starts_with("application/json") && v["error"]["code"].is_i64(),
                "{what}: a JSON-RPC error, not HTTP {s} {ct:?} {v}"
            );
        }
        Outcome::Broken(e) => panic!("{what}: the gateway should answer, got {e}"),
    }
}

fn routed_only(fx: &Fixture) {
    for s in fx.calls() {
        let h = |k: &str| s.headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
        assert_eq!(
            h("x-mcp-servername"),
            "test/fixture",
            "every call that reached the upstream was routed by the router"
        );
        assert!(
            String::from_utf8_lossy(&s.body).contains("\"name\":\"echo\""),
            "the prefix was stripped: {}",
            String::from_utf8_lossy(&s.body)
        );
    }
}

fn metric(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_goes_down_is_a_json_rpc_error_and_is_used_again_when_it_returns() {
    let mut fx = Fixture::start(&["echo"]).await;
    let port = fx.port;
    let g = start_gateway(
        "faults-upstream-down",
        &[Upstream::new("test/fixture", "fx_", port)],
        &[],
    )
    .await;
    let mut c = Client::new(&g.url());
    c.initialize().await;
    assert!(check_not_wrongly_successful(
        1,
        &try_call(&c, 1, "fx_echo").await
    ));

    fx.stop();
    for id in 2..5 {
        let o = try_call(&c, id, "fx_echo").await;
        assert_json_rpc_error(id, &o, "upstream down");
        if let Outcome::Answer(s, v, _) = &o {
            assert_eq!(*s, 502, "{v}");
            assert!(
                v["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("test/fixture")),
                "names the server: {v}"
            );
        }
    }

    // Back (a fresh process: it knows no sessions). The client keeps its gateway session; at
    // most one call is told to retry while a new upstream session is made.
    let fx = Fixture::start_on(&["echo"], port).await;
    let mut answered = false;
    for id in 10..14 {
        let o = try_call(&c, id, "fx_echo").await;
        if check_not_wrongly_successful(id, &o) {
            answered = true;
            break;
        }
        assert_json_rpc_error(id, &o, "upstream back");
    }
    assert!(answered, "calls succeed again once the upstream is back");
    routed_only(&fx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upstream_answers_late_and_holds_up_no_other_call() {
    let slow = Fixture::start(&["echo"]).await;
    let fast = Fixture::start(&["echo"]).await;
    let g = start_gateway(
        "faults-slow-upstream",
        &[
            Upstream::new("test/slow", "slow_", slow.port),
            Upstream::new("test/fast", "fast_", fast.port),
        ],
        &[],
    )
    .await;
    let mut c = Client::new(&g.url());
    c.initialize().await;
    assert_eq!(c.call_tool(1, "slow_echo", json!({})).await.status, 200);
    slow.state.call_delay_ms.store(3000, Ordering::SeqCst);
    let c = Arc::new(c);
    let started = Instant::now();
    let slow_calls: Vec<_> = (0..4)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move { c.call_tool(100 + i, "slow_echo", json!({})).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 0..20 {
        let t = Instant::now();
        let r = c.call_tool(200 + i, "fast_echo", json!({})).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["id"], 200 + i);
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "a fast call waits for no slow one: {:?}",
            t.elapsed()
        );
    }
    for (i, t) in slow_calls.into_iter().enumerate() {
        let r = t.await.expect("join");
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["id"], 100 + i as i64);
    }
    assert!(started.elapsed() >= Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_resetting_mid_sse_answer_fails_that_call_only() {
    let fx = Fixture::start(&["echo"]).await;
    let g = start_gateway(
        "faults-reset-mid-sse",
        &[Upstream::new("test/fixture", "fx_", fx.port)],
        &[],
    )
    .await;
    let mut c = Client::new(&g.url());
    c.initialize().await;
    let mut other = Client::new(&g.url());
    other.initialize().await;
    assert!(check_not_wrongly_successful(
        1,
        &try_call(&c, 1, "fx_echo").await
    ));
    assert!(check_not_wrongly_successful(
        1,
        &try_call(&other, 1, "fx_echo").await
    ));

    fx.state.reset_mid_sse.store(true, Ordering::SeqCst);
    for id in 2..5 {
        let o = try_call(&c, id, "fx_echo").await;
        assert!(
            !check_not_wrongly_successful(id, &o),
            "a cut answer is never a success"
        );
        if let Outcome::Answer(s, v, _) = &o {
            // Envoy had already sent the 200 and half the event: the client must see the cut.
            assert_ne!(*s, 200, "a truncated answer came back whole: {v}");
        }
    }
    fx.state.reset_mid_sse.store(false, Ordering::SeqCst);
    // The session (gateway and upstream) is intact: the next calls just work, for both clients.
    assert!(check_not_wrongly_successful(
        10,
        &try_call(&c, 10, "fx_echo").await
    ));
    assert!(check_not_wrongly_successful(
        11,
        &try_call(&other, 11, "fx_echo").await
    ));
    assert_eq!(
        fx.initializes(),
        4,
        "discovery's two (its session, and the one that asks what a capable client is listed) \
         + one per session: no re-initialize"
    );
    routed_only(&fx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_killed_and_restarted_under_load_fails_no_request_wrongly_and_clients_recover() {
    const CLIENTS: usize = 8;
    let fx = Fixture::start(&["echo"]).await;
    let mut g = start_gateway(
        "faults-router-restart",
        &[Upstream::new("test/fixture", "fx_", fx.port)],
        &[],
    )
    .await;
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let mut c = Client::new(&g.url());
        c.initialize().await;
        clients.push(c);
    }
    let sessions: Vec<_> = clients.iter().map(|c| c.session.clone()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(n, c)| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let (mut ok, mut failed, mut last_ok) = (0u32, 0u32, false);
                let started = Instant::now();
                let mut id = (n as i64) * 100_000;
                // Bounded in count and time.
                while !stop.load(Ordering::SeqCst)
                    && started.elapsed() < Duration::from_secs(60)
                    && id < (n as i64) * 100_000 + 20_000
                {
                    id += 1;
                    let o = try_call(&c, id, "fx_echo").await;
                    last_ok = check_not_wrongly_successful(id, &o);
                    if last_ok {
                        ok += 1;
                    } else {
                        assert_gateway_error(&o, "while the router restarts");
                        failed += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                (ok, failed, last_ok, c)
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(700)).await;
    g.router.kill();
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    g.router = g.spawn_replica(0, 1).await;
    let restarted = killed.elapsed();
    g.wait_discovered(Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);

    let mut total_failed = 0;
    let mut clients = Vec::new();
    for t in load {
        let (ok, failed, last_ok, c) = t.await.expect("join");
        assert!(ok > 0, "each client got answers");
        assert!(last_ok, "each client recovered after the restart");
        total_failed += failed;
        clients.push(c);
    }
    assert!(
        total_failed > 0,
        "the router was down for {restarted:?}: some calls must have failed"
    );
    // The same gateway sessions work after the restart: the signing key is fixed.
    for (i, c) in clients.iter().enumerate() {
        assert_eq!(c.session, sessions[i]);
        let r = c.call_tool(9, "fx_echo", json!({})).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    routed_only(&fx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_and_started_while_two_replicas_serve() {
    let logs = log_dir("faults-redis-restart");
    let (mut redis, redis_port) = start_redis(&logs).await;
    let fx = Fixture::start(&["echo"]).await;
    let redis_url = format!("--cache-connection-string=redis://127.0.0.1:{redis_port}/0");
    let g = start_replicas(
        "faults-redis",
        &[Upstream::new("test/fixture", "fx_", fx.port)],
        &[&redis_url],
        2,
    )
    .await;

    let mut a = Client::new(&g.url());
    a.initialize().await;
    for id in 1..=6 {
        assert!(check_not_wrongly_successful(
            id,
            &try_call(&a, id, "fx_echo").await
        ));
    }

    redis.kill();
    let before = fx.initializes();
    for id in 10..20 {
        let o = try_call(&a, id, "fx_echo").await;
        assert!(
            check_not_wrongly_successful(id, &o),
            "a known session is served from local state while Redis is down: {o:?}"
        );
    }
    assert_eq!(
        fx.initializes(),
        before,
        "no re-initialize for a known session"
    );
    let mut b = Client::new(&g.url());
    b.initialize().await;
    for id in 1..=6 {
        let o = try_call(&b, id, "fx_echo").await;
        assert!(
            check_not_wrongly_successful(id, &o),
            "a new session while Redis is down: {o:?}"
        );
    }
    assert!(
        fx.initializes() - before <= 2,
        "without Redis, at most one initialize per replica"
    );
    let mut errors = 0;
    for p in &g.metrics_ports {
        errors += metric(
            &g.metrics_on(*p).await,
            "mcp_router_shared_store_errors_total",
        );
    }
    assert!(errors > 0, "Redis failures are counted");

    // Redis is back: new sessions are shared again (one upstream initialize whichever replica
    // routes), after the replicas have reconnected.
    let _redis = start_redis_on(&logs, redis_port).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut c = Client::new(&g.url());
        c.initialize().await;
        let before = fx.initializes();
        for id in 1..=6 {
            assert!(check_not_wrongly_successful(
                id,
                &try_call(&c, id, "fx_echo").await
            ));
        }
        if fx.initializes() - before == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replicas share sessions again within 20 s of Redis coming back"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Sessions made while Redis was down still work.
    for id in 30..34 {
        assert!(check_not_wrongly_successful(
            id,
            &try_call(&a, id, "fx_echo").await
        ));
        assert!(check_not_wrongly_successful(
            id,
            &try_call(&b, id, "fx_echo").await
        ));
    }
    routed_only(&fx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_removed_while_sessions_are_live_leaves_them_to_the_other() {
    let fx = Fixture::start(&["echo"]).await;
    let mut g = start_replicas(
        "faults-replica-removed",
        &[Upstream::new("test/fixture", "fx_", fx.port)],
        &[],
        2,
    )
    .await;
    let mut clients = Vec::new();
    for _ in 0..4 {
        let mut c = Client::new(&g.url());
        c.initialize().await;
        for id in 1..=4 {
            assert!(check_not_wrongly_successful(
                id,
                &try_call(&c, id, "fx_echo").await
            ));
        }
        clients.push(c);
    }

    // Replica 1 goes away. Until Envoy's health check notices (about a second), a call given to
    // it fails; none succeeds wrongly. Then every call is served by replica 0, which re-creates
    // the upstream sessions it had not made itself (no Redis here).
    g.other_routers[0].kill();
    let removed = Instant::now();
    let mut id = 100;
    let mut streak = 0;
    while streak < 40 {
        for c in &clients {
            id += 1;
            let o = try_call(c, id, "fx_echo").await;
            if check_not_wrongly_successful(id, &o) {
                streak += 1;
            } else {
                assert_gateway_error(&o, "while a replica goes away");
                streak = 0;
                assert!(
                    removed.elapsed() < Duration::from_secs(5),
                    "calls still fail {:?} after the replica went: {o:?}",
                    removed.elapsed()
                );
            }
        }
    }
    for c in &clients {
        let r = c.request(json!(7), "tools/list", json!({})).await;
        assert_eq!(
            r.status, 200,
            "the broker on the remaining replica: {}",
            r.text
        );
    }
    routed_only(&fx);
}
