//! The broker: the gateway's own MCP server (Streamable HTTP) and its operational endpoints.
//!
//! It answers `initialize` (minting the gateway session), the aggregated lists, `ping` and
//! notifications; routed calls never reach it. `/healthz`, `/readyz` and `/status` sit beside it.

pub mod discovery;
mod fan_out;
mod mcp_endpoint;
pub mod notifications;
mod status;

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
    pub metrics: Arc<Metrics>,
    pub max_body: usize,
    /// `--mcp-gateway-public-host`: the default protected resource is `https://<it>/mcp`.
    pub public_host: String,
    /// False once shutdown has begun: `/readyz` answers 503.
    pub ready: watch::Receiver<bool>,
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
        .with_state(broker)
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
