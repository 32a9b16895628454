//! Micro-benchmarks of the router's pure path for one `tools/call`: parse the body, decide where
//! it goes, build the Envoy answer (header mutation and the body with the name spliced), and
//! encode it as the gRPC message Envoy receives. `make bench-micro`; time and allocations per
//! call are printed by divan (its allocation profiler counts every allocation in the iteration).

#![forbid(unsafe_code)]
// Benchmark harness code: a broken fixture should stop the run loudly.
#![allow(clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use divan::{AllocProfiler, Bencher};
use mcp_router::catalog::{Catalog, Health, ServerLists};
use mcp_router::config::Config;
use mcp_router::jsonrpc;
use mcp_router::router::decide::{self, Decision};
use mcp_router::router::facts::RequestFacts;
use mcp_router::router::{answer_wire, mutation, respond};

#[global_allocator]
static ALLOC: AllocProfiler = AllocProfiler::system();

fn main() {
    divan::main();
}

fn config() -> Config {
    Config::from_yaml(
        r#"
servers:
  - {name: ns/kube, url: 'http://kube:8080/mcp', hostname: kube.local, prefix: kube_}
  - {name: ns/ev, url: 'http://ev:3001/mcp', hostname: ev.local, prefix: ev_}
"#,
    )
    .expect("config")
}

fn catalog(config: &Config) -> Catalog {
    let tools = |names: &[&str]| {
        names
            .iter()
            .map(|n| serde_json::json!({"name": n, "annotations": {"readOnlyHint": true}}))
            .collect()
    };
    let mut d = HashMap::new();
    d.insert(
        "ns/kube".into(),
        ServerLists {
            tools: tools(&["pods_list", "namespaces_list", "events_list", "pods_get"]),
            health: Health::Ready,
            ..Default::default()
        },
    );
    d.insert(
        "ns/ev".into(),
        ServerLists {
            tools: tools(&["echo", "add", "longRunningOperation"]),
            health: Health::Ready,
            ..Default::default()
        },
    );
    Catalog::build(config, &d)
}

fn facts() -> RequestFacts {
    RequestFacts {
        method: http::Method::POST,
        path: decide::MCP_PATH.into(),
        content_type: Some("application/json".into()),
        session_id: Some("gateway-session".into()),
        protocol_version: Some("2025-11-25".into()),
        ..Default::default()
    }
}

/// A `tools/call` of about `size` bytes (the argument is padding).
fn body(size: usize) -> Vec<u8> {
    let head = r#"{"jsonrpc":"2.0","id":12345678901234567890,"method":"tools/call","params":{"name":"kube_pods_list","arguments":{"namespace":"default","pad":""#;
    let tail = r#""}}}"#;
    let pad = size.saturating_sub(head.len() + tail.len());
    let mut b = Vec::with_capacity(size);
    b.extend_from_slice(head.as_bytes());
    b.extend(std::iter::repeat_n(b'x', pad));
    b.extend_from_slice(tail.as_bytes());
    b
}

/// parse → decide → respond, the answer encoded for the wire.
#[divan::bench(args = [1024, 16 * 1024, 1024 * 1024])]
fn parse_decide_respond(bencher: Bencher, size: usize) {
    let config = config();
    let catalog = catalog(&config);
    let facts = facts();
    let body = body(size);
    let mut out = Vec::with_capacity(2 * size + 4096);
    bencher
        .counter(divan::counter::BytesCount::new(size))
        .bench_local(|| {
            let msg = jsonrpc::parse(divan::black_box(&body)).expect("parse");
            let Decision::Upstream(call) = decide::decide_body(&config, &catalog, &facts, &msg)
            else {
                panic!("not routed upstream");
            };
            let (m, new_body) = mutation::upstream_call(
                &call,
                mutation::UpstreamSession {
                    id: Some("upstream-session-0123456789"),
                    protocol_version: "2025-11-25",
                },
                &facts,
                None,
                &body,
            );
            let answer = respond::request_body(m, new_body, true);
            // Encoded as the router encodes it, into a buffer kept between answers (as tonic's).
            out.clear();
            answer_wire::encode_answer(&answer, &mut out);
            out.len()
        });
}

/// The parser alone, for the share of the whole.
#[divan::bench(args = [1024, 16 * 1024, 1024 * 1024])]
fn parse_only(bencher: Bencher, size: usize) {
    let body = body(size);
    bencher
        .counter(divan::counter::BytesCount::new(size))
        .bench_local(|| {
            jsonrpc::parse(divan::black_box(&body))
                .map(|m| m.id_span())
                .is_ok()
        });
}
