//! The broker: the gateway's own MCP server (Streamable HTTP) and its operational endpoints.
//!
//! It answers `initialize` (minting the gateway session), the aggregated lists, `ping` and
//! notifications; routed calls never reach it. `/healthz`, `/readyz` and `/status` sit beside it.

pub(crate) mod capable_lists;
mod capable_view;
pub mod discovery;
mod fan_out;
mod listen;
mod mcp_endpoint;
pub mod meta_tools;
mod modern_view;
pub mod notifications;
mod one_off;
mod post_decide;
mod status;
mod task_listen;
mod tokens_page;
mod upstream_listen;
mod user_lists;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use tokio::sync::watch;

use crate::auth::session::SessionKeys;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::telemetry::Metrics;
use crate::upstream::{UpstreamClient, UpstreamSessions};

/// Everything the broker's handlers read.
pub struct Broker {
    pub config: watch::Receiver<Arc<Config>>,
    pub catalog: watch::Receiver<Arc<Catalog>>,
    pub keys: Arc<SessionKeys>,
    pub sessions: Arc<UpstreamSessions>,
    pub client: Arc<UpstreamClient>,
    pub gatekeeper: Arc<crate::auth::Gatekeeper>,
    /// Resource updates from upstream sessions to the clients' GET streams.
    pub updates: Arc<crate::upstream::updates::Updates>,
    pub metrics: Arc<Metrics>,
    pub max_body: usize,
    /// `--mcp-gateway-public-host`: the default protected resource is `https://<it>/mcp`.
    pub public_host: String,
    /// False once shutdown has begun: `/readyz` answers 503.
    pub ready: watch::Receiver<bool>,
    /// `--max-concurrent-initializes`, shared with the router: the upstream sessions the broker
    /// opens for a client's list count too.
    pub init_limits: Arc<crate::upstream::InitLimits>,
    /// True once the listeners close on shutdown (after `--shutdown-delay`): the long-lived
    /// event streams end then ([`notifications::until_closing`]).
    pub closing: watch::Receiver<bool>,
    /// Per-user credentials by URL elicitation; `None` without `--enable-url-elicitation`.
    pub user_tokens: Option<Arc<crate::auth::user_tokens::UserTokens>>,
    /// Per-session scopes of `select_tools` and the discovery threshold.
    pub meta_tools: meta_tools::MetaTools,
    /// Lists servers gave clients of some capabilities ([`capable_lists`]).
    pub capable_lists: capable_lists::CapableLists,
}

/// The broker's HTTP routes.
pub fn app(broker: Arc<Broker>) -> axum::Router {
    axum::Router::new()
        .route(
            "/mcp",
            get(mcp_endpoint::get)
                .post(mcp_endpoint::post)
                .delete(mcp_endpoint::delete),
        )
        .route(
            "/.well-known/oauth-protected-resource",
            get(mcp_endpoint::protected_resource),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(mcp_endpoint::protected_resource),
        )
        .route("/healthz", get(status::healthz))
        .route("/readyz", get(status::readyz))
        .route("/status", get(status::status))
        .route("/tokens", get(tokens_page::form).post(tokens_page::submit))
        .route(
            "/tokens/{*server}",
            axum::routing::delete(tokens_page::revoke),
        )
        .layer(axum::middleware::from_fn(traced))
        .with_state(broker)
}

/// One span per broker request (method, path, MCP method header, status), so that its log
/// lines group; the `traceparent` a client sent is recorded with it and, with OTLP export on,
/// the span is exported as a child of it. No bodies, no tokens.
async fn traced(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use tracing::Instrument;
    // Built in a block: nothing borrowing the request (whose body is not Sync) may live across
    // the await below.
    let span = {
        let header =
            |n: &str| -> Option<&str> { req.headers().get(n).and_then(|v| v.to_str().ok()) };
        let traceparent = header("traceparent");
        let span = tracing::debug_span!(
            "broker",
            otel.kind = "server",
            http.method = %req.method(),
            http.path = %req.uri().path(),
            mcp.method = %header(crate::mcp::header::X_MCP_METHOD).unwrap_or(""),
            traceparent = %traceparent.unwrap_or(""),
            status = tracing::field::Empty,
        );
        crate::telemetry::trace_context::adopt_remote_parent(
            &span,
            traceparent,
            header("tracestate"),
        );
        span
    };
    let started = std::time::Instant::now();
    let resp = next.run(req).instrument(span.clone()).await;
    span.record("status", resp.status().as_u16());
    let took_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    span.in_scope(|| tracing::debug!(took_us, "broker request done"));
    resp
}

/// The metrics endpoint's routes.
pub fn metrics_app(metrics: Arc<Metrics>) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        get(move || {
            let m = metrics.clone();
            async move {
                (
                    [(
                        http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    m.encode(),
                )
            }
        }),
    )
}

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
