//! An ext_proc processor that does nothing: it answers every message with "continue" and no
//! change, on the very server mcp-router uses (`router::serve`: one single-threaded runtime per
//! core, the answer stream mapped from the request stream). `make bench` measures it beside
//! mcp-router so that the cost of the gRPC exchange itself (Envoy's and this process's) is told
//! apart from the cost of routing.
//!
//! `cargo run --release --example noop_ext_proc -- 127.0.0.1:PORT`
//!
//! `NOOP_MIMIC=1`: instead of changing nothing, it answers every call with what mcp-router
//! answers a routed `tools/call` of `make bench`'s tool (`b_echo` on server `bench/upstream`),
//! without deciding anything: the body renamed (`b_echo` → `echo`, found by `memmem`), the
//! route changed to the upstream's host (`:authority`, the route cache cleared), the policy
//! headers and the upstream's session id set, and, on the response, the gateway's session id
//! set back. Behind the gateway's Envoy configuration, it measures what Envoy spends applying
//! the router's answers, with a processor that costs next to nothing (scripts/bench-syscalls.sh,
//! `NOOP=M`).

#![forbid(unsafe_code)]

use std::pin::Pin;

use envoy_types::pb::envoy::config::core::v3::{
    header_value_option::HeaderAppendAction, HeaderValue, HeaderValueOption,
};
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_server::{
    ExternalProcessor, ExternalProcessorServer,
};
use envoy_types::pb::envoy::service::ext_proc::v3::{
    body_mutation, processing_request::Request as Phase, processing_response::Response as Answer,
    BodyMutation, BodyResponse, CommonResponse, HeaderMutation, HeadersResponse, ProcessingRequest,
    ProcessingResponse,
};
use futures_util::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

#[derive(Clone, Copy)]
struct Noop {
    /// `NOOP_MIMIC=1`: mcp-router's answers to a routed call (see the module docs).
    mimic: bool,
}

type Answers = Pin<Box<dyn Stream<Item = Result<ProcessingResponse, Status>> + Send>>;

/// Header sets, each overwriting the header.
fn sets(headers: &[(&str, &[u8])]) -> Option<HeaderMutation> {
    Some(HeaderMutation {
        set_headers: headers
            .iter()
            .map(|(key, value)| HeaderValueOption {
                header: Some(HeaderValue {
                    key: (*key).to_owned(),
                    raw_value: value.to_vec(),
                    ..Default::default()
                }),
                append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
                ..Default::default()
            })
            .collect(),
        remove_headers: Vec::new(),
    })
}

/// What mcp-router answers the body of a routed call of `b_echo` (the bench's tool).
fn mimic_body(body: &[u8]) -> CommonResponse {
    const FROM: &[u8] = br#""name":"b_echo""#;
    let renamed = match memchr::memmem::find(body, FROM) {
        Some(at) => [&body[..at], br#""name":"echo""#, &body[at + FROM.len()..]].concat(),
        None => body.to_vec(),
    };
    let length = renamed.len().to_string();
    CommonResponse {
        header_mutation: sets(&[
            (":authority", b"upstream.bench.local"),
            ("x-mcp-servername", b"bench/upstream"),
            ("mcp-session-id", b"bench-session"),
            ("x-mcp-method", b"tools/call"),
            ("x-mcp-toolname", b"echo"),
            ("content-length", length.as_bytes()),
        ]),
        body_mutation: Some(BodyMutation {
            mutation: Some(body_mutation::Mutation::Body(renamed)),
        }),
        clear_route_cache: true,
        ..Default::default()
    }
}

/// The gateway session id mcp-router sets back on the response: as long as its tokens.
const GATEWAY_SESSION: &[u8] = &[b's'; 280];

fn answer(request: ProcessingRequest, mimic: bool) -> Option<ProcessingResponse> {
    let common = || Some(CommonResponse::default());
    let response = match request.request? {
        Phase::RequestHeaders(_) => Answer::RequestHeaders(HeadersResponse { response: common() }),
        Phase::RequestBody(b) if mimic => Answer::RequestBody(BodyResponse {
            response: Some(mimic_body(&b.body)),
        }),
        Phase::RequestBody(_) => Answer::RequestBody(BodyResponse { response: common() }),
        Phase::ResponseHeaders(_) if mimic => Answer::ResponseHeaders(HeadersResponse {
            response: Some(CommonResponse {
                header_mutation: sets(&[("mcp-session-id", GATEWAY_SESSION)]),
                ..Default::default()
            }),
        }),
        Phase::ResponseHeaders(_) => {
            Answer::ResponseHeaders(HeadersResponse { response: common() })
        }
        Phase::ResponseBody(_) => Answer::ResponseBody(BodyResponse { response: common() }),
        Phase::RequestTrailers(_) | Phase::ResponseTrailers(_) => return None,
    };
    Some(ProcessingResponse {
        response: Some(response),
        ..Default::default()
    })
}

#[tonic::async_trait]
impl ExternalProcessor for Noop {
    type ProcessStream = Answers;

    async fn process(
        &self,
        request: Request<Streaming<ProcessingRequest>>,
    ) -> Result<Response<Answers>, Status> {
        let mimic = self.mimic;
        let answers = request
            .into_inner()
            .filter_map(move |m| async move { m.map(|m| answer(m, mimic)).transpose() });
        Ok(Response::new(Box::pin(answers)))
    }
}

fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:50052".to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        let (_health_reporter, health) = tonic_health::server::health_reporter();
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
        // NOOP_THREADS: as many serving threads as the router's `--router-threads`.
        let threads = std::env::var("NOOP_THREADS")
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        mcp_router::router::serve::serve(
            listener,
            ExternalProcessorServer::new(Noop {
                mimic: std::env::var("NOOP_MIMIC").is_ok_and(|v| v == "1"),
            }),
            health,
            threads,
            stop,
            std::time::Duration::from_secs(5),
        )
        .await
    })
}
