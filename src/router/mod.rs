//! The ext_proc router: sees every request to the gateway, decides where it goes and mutates it.
//!
//! - [`decide`]: pure decisions from snapshots and request facts;
//! - [`respond`]: the only place that builds Envoy messages;
//! - [`stream`]: the I/O of one ext_proc stream (gather, decide, act);
//! - [`serve`]: the gRPC server, one single-threaded runtime per core; [`write_batch`]: its
//!   connections' writes batched until h2 flushes;
//! - [`origin`]: DNS-rebinding protection (the `Origin` header); [`cors`]: what browsers on an
//!   allowed origin get (preflight answers, `Access-Control-*` on every response);
//! - [`relay`], [`sse_tags`]: server-to-client requests and resumable SSE streams of routed calls
//!   (ids tagged with their server on the way out, routed by the tag on the way back).
//! - [`response_phase`]: whether a routed call needs the response-headers phase;
//! - [`upstream_failure`]: a routed call answered without MCP (upstream down) → JSON-RPC error.

pub mod bridge;
pub mod cors;
pub mod decide;
pub mod origin;
pub mod relay;
mod relay_route;
pub mod respond;
pub mod response_phase;
pub mod serve;
pub mod sse_tags;
pub mod stream;
pub mod upstream_failure;
mod user_credential;
pub mod write_batch;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::auth::session::SessionKeys;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::telemetry::Metrics;
use crate::upstream::{InitLimits, UpstreamClient, UpstreamSessions};

/// Settings from flags.
#[derive(Debug, Clone)]
pub struct RouterSettings {
    /// `:authority` of requests for the broker (`--mcp-gateway-public-host`).
    pub public_host: String,
    /// Where upstream initializes are sent back through the gateway (`--mcp-gateway-private-host`).
    pub private_host: Option<crate::upstream::PrivateHost>,
    /// Browser origins requests may come from (DNS-rebinding protection).
    pub origins: origin::AllowedOrigins,
    /// Largest request body accepted (`--max-request-body-size`).
    pub max_body: usize,
    /// Most an upstream initialize may take (`--upstream-init-timeout-ms`), within the
    /// processing budget.
    pub init_timeout: Duration,
    /// What the work of one ext_proc message may take, all steps together
    /// (`--processing-budget-ms`); must stay below Envoy's `message_timeout`.
    pub processing_budget: Duration,
    /// When a routed call's ext_proc stream stays open for the response (`--response-phase`).
    pub response_phase: response_phase::Mode,
}

/// Everything the router reads; cheap to share between streams.
pub struct Router {
    pub config: watch::Receiver<Arc<Config>>,
    pub catalog: watch::Receiver<Arc<Catalog>>,
    pub sessions: Arc<UpstreamSessions>,
    pub keys: Arc<SessionKeys>,
    pub client: Arc<UpstreamClient>,
    pub gatekeeper: Arc<crate::auth::Gatekeeper>,
    /// Resource updates from upstream sessions to the clients' GET streams.
    pub updates: Arc<crate::upstream::updates::Updates>,
    /// Bounds concurrent upstream initializes per server (`--max-concurrent-initializes`).
    pub init_limits: Arc<InitLimits>,
    pub settings: RouterSettings,
    pub metrics: Arc<Metrics>,
    /// How each server answers calls, learned in the response phase (`response_phase`).
    pub answer_kinds: response_phase::AnswerKinds,
    /// Per-user credentials by URL elicitation; `None` without `--enable-url-elicitation`.
    pub user_tokens: Option<Arc<crate::auth::user_tokens::UserTokens>>,
}
