//! OTLP trace export through the real Envoy: the ext_proc and broker spans reach a collector as
//! children of the client's `traceparent`, with their attributes; upstream initializes carry the
//! router's span; an unreachable collector costs no request; queued spans are flushed on SIGTERM.

use crate::common;
use std::time::{Duration, Instant};

use crate::common::fixture::Fixture;
use crate::common::otlp_collector::{Collector, Span};
use crate::common::{config_yaml, free_port, start_gateway_with, Client, Gateway, Upstream};
use serde_json::{json, Value};

/// The client's trace, and the span ids it calls from.
const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const INIT_SPAN: &str = "1000000000000001";
const LIST_SPAN: &str = "1000000000000002";
const CALL_SPAN: &str = "1000000000000003";
const SERVER_KIND: i32 = 2;
const CLIENT_KIND: i32 = 3;
const DEADLINE: Duration = Duration::from_secs(30);

fn traceparent(span: &str) -> String {
    format!("00-{TRACE}-{span}-01")
}

async fn gateway(test: &str, fx: &Fixture, endpoint: &str, env: &[(&str, &str)]) -> Gateway {
    let upstreams = [Upstream::new("test/fixture", "fx_", fx.port)];
    let flag = format!("--otlp-endpoint={endpoint}");
    start_gateway_with(test, &upstreams, &[&flag], &config_yaml(&upstreams), env).await
}

/// A JSON-RPC request from the client's span `span`.
async fn send(c: &Client, span: &str, body: Value) -> common::Reply {
    let tp = traceparent(span);
    c.post_raw(serde_json::to_vec(&body).unwrap(), &[("traceparent", &tp)])
        .await
}

/// initialize + notifications/initialized from the client's span `span`.
async fn initialize(c: &mut Client, span: &str) {
    let r = send(
        c,
        span,
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"}}}),
    )
    .await;
    assert_eq!(r.status, 200, "initialize: {}", r.text);
    c.session = r
        .headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let n = send(
        c,
        span,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!(n.status, 202, "initialized: {}", n.text);
}

async fn call_echo(c: &Client, span: &str, id: i64) -> common::Reply {
    send(
        c,
        span,
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": "fx_echo", "arguments": {"message": "hi"}}}),
    )
    .await
}

fn sigterm(g: &Gateway) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(g.router.child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("signal");
}

async fn wait_exit(g: &mut Gateway) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(s) = g.router.child.try_wait().expect("wait") {
            return s;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "mcp-router did not stop within {DEADLINE:?}; log:\n{}",
            g.router.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_as_children_of_the_clients_trace() {
    let collector = Collector::start().await;
    let fx = Fixture::start(&["echo"]).await;
    let g = gateway(
        "otlp-export",
        &fx,
        &collector.endpoint(),
        &[("OTEL_BSP_SCHEDULE_DELAY", "100")],
    )
    .await;
    let mut c = Client::new(&g.url());
    initialize(&mut c, INIT_SPAN).await;
    let list = send(
        &c,
        LIST_SPAN,
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    )
    .await;
    assert_eq!(list.status, 200, "{}", list.text);
    let call = call_echo(&c, CALL_SPAN, 2).await;
    assert_eq!(call.status, 200, "{}", call.text);
    assert!(call.json["result"].is_object(), "{}", call.text);

    // The routed call's ext_proc stream: a child of the client's span, with where it went.
    let ext_proc = collector
        .wait_for("ext_proc tools/call", DEADLINE, |s| {
            s.name == "ext_proc" && s.parent_span_id == CALL_SPAN
        })
        .await;
    assert_eq!(ext_proc.trace_id, TRACE);
    assert_eq!(ext_proc.service, "mcp-router");
    assert_eq!(ext_proc.kind, SERVER_KIND);
    for (k, v) in [
        ("mcp.method", "tools/call"),
        ("mcp.server", "test/fixture"),
        ("mcp.name", "echo"),
        ("decision", "upstream"),
        ("status", "200"),
    ] {
        assert_eq!(ext_proc.attr(k), v, "{k} of {ext_proc:#?}");
    }

    // The broker's span for tools/list, and the ext_proc stream that sent it there.
    let broker = collector
        .wait_for("broker tools/list", DEADLINE, |s| {
            s.name == "broker" && s.parent_span_id == LIST_SPAN
        })
        .await;
    assert_eq!(broker.trace_id, TRACE);
    assert_eq!(broker.kind, SERVER_KIND);
    for (k, v) in [
        ("mcp.method", "tools/list"),
        ("http.path", "/mcp"),
        ("status", "200"),
    ] {
        assert_eq!(broker.attr(k), v, "{k} of {broker:#?}");
    }
    let to_broker = collector
        .wait_for("ext_proc tools/list", DEADLINE, |s| {
            s.name == "ext_proc" && s.parent_span_id == LIST_SPAN
        })
        .await;
    assert_eq!(
        (to_broker.trace_id.as_str(), to_broker.attr("decision")),
        (TRACE, "broker")
    );
    collector
        .wait_for("broker initialize", DEADLINE, |s| {
            s.name == "broker" && s.parent_span_id == INIT_SPAN && s.trace_id == TRACE
        })
        .await;

    // The upstream session was initialized for the call: in the client's trace, under the
    // router's ext_proc span.
    let want = format!("00-{TRACE}-{}-01", ext_proc.span_id);
    let seen = fx.initialize_traceparents();
    assert!(seen.contains(&want), "want {want} among {seen:?}");

    // Discovery rounds are traces of their own, and the upstream sees the round's span.
    let rounds: Vec<Span> = {
        collector
            .wait_for("discovery", DEADLINE, |s| s.name == "discovery")
            .await;
        collector
            .spans()
            .into_iter()
            .filter(|s| s.name == "discovery")
            .collect()
    };
    let round = &rounds[0];
    assert_eq!(
        (round.kind, round.attr("mcp.server"), round.attr("result")),
        (CLIENT_KIND, "test/fixture", "ok")
    );
    assert!(round.parent_span_id.is_empty(), "{round:#?}");
    let seen = fx.initialize_traceparents();
    assert!(
        rounds.iter().any(|r| seen
            .iter()
            .any(|t| t == &format!("00-{}-{}-01", r.trace_id, r.span_id))),
        "no discovery initialize carried its round's span: {seen:?} {rounds:#?}"
    );

    // Nothing secret or bulky rides along.
    for s in collector.spans() {
        for (k, v) in &s.attributes {
            assert!(
                !v.contains("\"arguments\"") && !v.contains(common::SIGNING_KEY),
                "{k}={v} in {s:#?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_collector_fails_no_request_and_is_warned_about() {
    let fx = Fixture::start(&["echo"]).await;
    // Nothing listens there.
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let started = Instant::now();
    let mut g = gateway(
        "otlp-unreachable",
        &fx,
        &endpoint,
        &[("OTEL_BSP_SCHEDULE_DELAY", "100")],
    )
    .await;
    let mut c = Client::new(&g.url());
    initialize(&mut c, INIT_SPAN).await;
    for id in 1..=20 {
        let r = call_echo(&c, CALL_SPAN, id).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let log = || std::fs::read_to_string(&g.router.log).unwrap_or_default();
    let warning = "OTLP trace export failed";
    let waited = Instant::now();
    while !log().contains(warning) {
        assert!(
            waited.elapsed() < DEADLINE,
            "no warning about the unreachable collector; log:\n{}",
            g.router.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // At most one warning per minute, however many batches failed.
    let warnings = log().matches(warning).count() as u64;
    assert!(
        warnings <= 1 + started.elapsed().as_secs() / 60,
        "{warnings} warnings:\n{}",
        log()
    );
    sigterm(&g);
    let status = wait_exit(&mut g).await;
    assert_eq!(status.code(), Some(0), "log:\n{}", g.router.log_tail());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_spans_are_flushed_on_sigterm() {
    let collector = Collector::start().await;
    let fx = Fixture::start(&["echo"]).await;
    // Batches are due only every hour: what the collector gets, the shutdown flushed.
    let mut g = gateway(
        "otlp-flush",
        &fx,
        &collector.endpoint(),
        &[("OTEL_BSP_SCHEDULE_DELAY", "3600000")],
    )
    .await;
    let mut c = Client::new(&g.url());
    initialize(&mut c, INIT_SPAN).await;
    let r = call_echo(&c, CALL_SPAN, 1).await;
    assert_eq!(r.status, 200, "{}", r.text);
    sigterm(&g);
    let status = wait_exit(&mut g).await;
    assert_eq!(status.code(), Some(0), "log:\n{}", g.router.log_tail());
    let s = collector
        .wait_for("ext_proc tools/call", DEADLINE, |s| {
            s.name == "ext_proc" && s.parent_span_id == CALL_SPAN
        })
        .await;
    assert_eq!((s.trace_id.as_str(), s.attr("mcp.name")), (TRACE, "echo"));
}
