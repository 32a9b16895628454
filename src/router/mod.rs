//! The ext_proc router: sees every request to the gateway, decides where it goes and mutates it.
//! Read top-down, the files are the flow of one request:
//!
//! - [`processor_server`]: the gRPC service Envoy calls, decoding its messages as [`wire`]
//!   (header names and values as bytes into the received frame, no copies; by hand in
//!   [`wire_decode`]) and encoding the answers as [`answer_wire`] (the bytes prost writes for
//!   Envoy's `ProcessingResponse`, each length worked out once);
//! - [`service`]: one ext_proc stream, one future for its life ([`answers`]); each Envoy message
//!   to the handler of its phase, every refusal answered in one place;
//! - [`state`]: what a stream carries between phases (the config snapshot taken once, the facts,
//!   the caller, and `Next`: what the next phase needs);
//! - [`facts`]: Envoy header maps → typed request and response facts;
//! - `request_headers`, `request_body`, `response`: the phases (gather, decide, act);
//! - `gather`: the gateway session, the upstream credential, the upstream session (initialize);
//! - [`decide`]: pure decisions from the snapshot and the facts (headers, body, access, response);
//! - [`mutation`]: what changes in a request (the routing header set); [`respond`]: the only
//!   place that builds the answers to Envoy, in the router's own form ([`answer`]: the phase
//!   continued or the immediate response, no Envoy types); refusals are
//!   [`crate::reply::Reject`]s;
//! - [`origin`]: DNS-rebinding protection (the `Origin` header); [`cors`]: what browsers on an
//!   allowed origin get (preflight answers, `Access-Control-*` on every response);
//! - [`relay`], `relay_route`, [`sse_tags`]: server-to-client requests and resumable SSE streams
//!   of routed calls (ids tagged with their server on the way out, routed by the tag on the way
//!   back); [`bridge`]: a stateless client's view of a session-era upstream; `tasks`: task ids
//!   of the Tasks extension tagged with their server the same way (routed by `decide`);
//! - [`upstream_failure`]: a routed call answered without MCP (upstream down) → JSON-RPC error;
//! - [`response_phase`]: whether a routed call needs the response-headers phase;
//! - [`serve`]: the gRPC server, one single-threaded runtime per core; [`write_batch`]: each
//!   connection's writer task, one `write` for what h2 queued in a turn of the thread.
//!
//! `scripts/check-layers.sh` checks that these modules import one another without a circle.

pub mod a2a;
pub mod answer;
pub mod answer_wire;
pub mod answers;
pub mod asks;
pub mod bridge;
#[cfg(test)]
mod conversation_tests;
pub mod cors;
pub mod decide;
pub mod facts;
mod gather;
pub mod in_place;
pub mod mutation;
mod native;
pub mod origin;
pub mod processor_server;
pub mod relay;
mod relay_route;
mod request_body;
mod request_headers;
pub mod respond;
mod response;
pub mod response_phase;
pub mod serve;
pub mod service;
pub mod sse_tags;
mod state;
mod tasks;
pub mod upstream_failure;
pub mod wire;
pub mod wire_decode;
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
    /// `--enable-a2a`: `/a2a/{agent}` requests get `x-a2a-agent` and `x-a2a-method`.
    pub enable_a2a: bool,
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

#[cfg(test)]
mod layers {
    /// `scripts/check-layers.sh`: no import circle among the router's modules, no import of the
    /// router from the broker.
    #[test]
    fn the_router_has_no_import_circle_and_the_broker_does_not_import_it() {
        let root = env!("CARGO_MANIFEST_DIR");
        let out = std::process::Command::new("bash")
            .arg(format!("{root}/scripts/check-layers.sh"))
            .arg(root)
            .output()
            .expect("bash runs scripts/check-layers.sh");
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
