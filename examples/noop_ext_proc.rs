//! An ext_proc processor that does nothing: it answers every message with "continue" and no
//! change, on the very server mcp-router uses (`router::serve`: one single-threaded runtime per
//! core, the answer stream mapped from the request stream). `make bench` measures it beside
//! mcp-router so that the cost of the gRPC exchange itself (Envoy's and this process's) is told
//! apart from the cost of routing.
//!
//! `cargo run --release --example noop_ext_proc -- 127.0.0.1:PORT`

#![forbid(unsafe_code)]

use std::pin::Pin;

use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_server::{
    ExternalProcessor, ExternalProcessorServer,
};
use envoy_types::pb::envoy::service::ext_proc::v3::{
    processing_request::Request as Phase, processing_response::Response as Answer, BodyResponse,
    CommonResponse, HeadersResponse, ProcessingRequest, ProcessingResponse,
};
use futures_util::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

#[derive(Clone, Copy)]
struct Noop;

type Answers = Pin<Box<dyn Stream<Item = Result<ProcessingResponse, Status>> + Send>>;

fn answer(request: ProcessingRequest) -> Option<ProcessingResponse> {
    let common = || Some(CommonResponse::default());
    let response = match request.request? {
        Phase::RequestHeaders(_) => Answer::RequestHeaders(HeadersResponse { response: common() }),
        Phase::RequestBody(_) => Answer::RequestBody(BodyResponse { response: common() }),
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
        let answers = request
            .into_inner()
            .filter_map(|m| async move { m.map(answer).transpose() });
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
            ExternalProcessorServer::new(Noop),
            health,
            threads,
            stop,
            std::time::Duration::from_secs(5),
        )
        .await
    })
}
