//! mcp-router: an Envoy external processor (ext_proc) and MCP broker that turns an Envoy or
//! Istio gateway into an MCP Gateway.
//!
//! # Layout
//!
//! A request's way, in a few lines:
//!
//! ```text
//! client ─▶ Envoy ─ext_proc─▶ router::service   one gRPC stream per HTTP request, its answers
//!                              │                  computed on the connection's task as tonic
//!                              │                  polls (no task, no channel per stream)
//!                              ├ request_headers  strip, origin/CORS, authenticate, decide, act
//!                              ├ request_body     parse, decide, gather, act
//!                              │   ├ jsonrpc::parse   bytes → one JSON-RPC message (envelope only)
//!                              │   ├ router::decide   pure: snapshot + facts → Decision
//!                              │   ├ router::gather   gateway session, credential, upstream session
//!                              │   └ router::respond  Mutation / Reject → Answer (written as Envoy's
//!                              │                      ProcessingResponse by router::answer_wire)
//!                              └ response         session id back, SSE ids tagged, JSON bridged
//!        Envoy ─▶ broker (this process, HTTP) for initialize, lists, ping, notifications
//!        Envoy ─▶ upstream MCP server for tools/call, prompts/get, resources/read
//! ```
//!
//! A stream takes the config and catalog snapshot once, when Envoy opens it: every phase of one
//! request is judged by the same config. Refusals, the router's and the broker's, are
//! [`reply::Reject`]s with one mapping to the wire. `scripts/check-layers.sh` checks that the
//! router's modules import one another without a circle and that the broker never imports the
//! router.
//!
//! # Glossary
//!
//! - **seed**: the gateway this one replaces (its config file, headers and behaviour are kept);
//! - **hairpin**: an upstream initialize the router sends back through the gateway
//!   (`--mcp-gateway-private-host`) so that gateway policies judge it, carrying a signed
//!   `x-mcp-router-key`;
//! - **stateless / modern**: the 2026-07-28 protocol generation (no initialize, no session; each
//!   request says who it is); **session-era**: the 2025 one, with `Mcp-Session-Id`;
//! - **bridge**: what lets a stateless client use a session-era upstream (results marked
//!   complete) and the reverse (the request's envelope added);
//! - **via**: how an upstream initialize is sent: directly, or through the gateway (hairpin);
//! - **jti**: a gateway session's id (the JWT claim), the first half of an upstream session's key.
//!
//! - [`config`]: the seed gateway's config file, validated into an immutable snapshot, reloaded;
//! - [`catalog`]: what every upstream offers under its prefix (published by [`broker::discovery`]);
//!   [`uri_template`] matches resource URIs against the templates upstreams offer;
//! - [`router`]: the ext_proc service; [`broker`]: the gateway's own MCP server and `/status`;
//! - [`upstream`]: client of upstream MCP servers and the upstream session store;
//! - [`auth`]: gateway session tokens; [`mcp`]: protocol constants; [`telemetry`]: logs, metrics;
//! - [`thread_slots`]: a table per thread in front of a shared cache, for what every call looks
//!   up;
//! - [`deadline`]: the one deadline an ext_proc message's work shares (below Envoy's
//!   `message_timeout`); [`tls`]: the CA bundles trusted besides the public roots.
//!
//! [`run`] wires them together; `main` only reads flags.

#![forbid(unsafe_code)]

pub mod auth;
pub mod broker;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod deadline;
pub mod drain;
pub mod jsonrpc;
pub mod mcp;
pub mod reply;
pub mod router;
pub mod telemetry;
pub mod thread_slots;
pub mod tls;
pub mod tool_validation;
pub mod ui_resource;
pub mod upstream;
pub mod uri_template;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::session::SessionKeys;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::telemetry::Metrics;
use crate::upstream::{UpstreamClient, UpstreamSessions};

/// Everything [`run`] needs, already validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub router_address: SocketAddr,
    pub broker_address: SocketAddr,
    pub metrics_address: SocketAddr,
    pub config_path: PathBuf,
    pub public_host: String,
    /// `--mcp-gateway-private-host`: where upstream initializes go back through the gateway.
    pub private_host: Option<upstream::PrivateHost>,
    /// `--gateway-ca-cert`, read and checked: a CA bundle (PEM) trusted for every upstream
    /// connection, the hairpin through the gateway's TLS listener in particular.
    pub gateway_ca_cert: Option<String>,
    /// `--allowed-origins`: browser origins allowed besides loopback and the public host.
    pub allowed_origins: Vec<String>,
    pub session_length: Duration,
    pub max_body: usize,
    pub check_interval: Duration,
    pub init_timeout: Duration,
    /// Time the work of one ext_proc message may take, all steps together.
    pub processing_budget: Duration,
    /// `--response-phase`.
    pub response_phase: router::response_phase::Mode,
    pub upstream_idle: Duration,
    /// Not-ready time before the listeners close on shutdown.
    pub shutdown_delay: Duration,
    /// Longest wait, after the listeners close, for what is in flight to finish ([`drain`]).
    pub drain_timeout: Duration,
    pub max_upstream_sessions: u64,
    /// Bound of concurrent upstream initializes per server.
    pub max_concurrent_initializes: usize,
    pub config_poll: Duration,
    pub signing_key: Vec<u8>,
    /// Threads (each with its own single-threaded runtime) serving ext_proc connections.
    pub router_threads: usize,
    /// Redis URL for sharing upstream sessions between replicas.
    pub cache_connection_string: Option<String>,
    /// `--cache-ca-cert`, read and checked: the CA bundle (PEM) a `rediss://` server's
    /// certificate must chain to (instead of the public roots).
    pub cache_ca_cert: Option<String>,
    /// PEM key that verifies `x-mcp-authorized` headers (`TRUSTED_HEADER_PUBLIC_KEY`).
    pub trusted_header_key: Option<String>,
    /// `--enforce-capability-filtering`: no valid `x-mcp-authorized` header, nothing listed.
    pub enforce_capability_filtering: bool,
    /// The seed's `OAUTH_*` variables for the protected resource metadata.
    pub metadata_env: auth::metadata::MetadataEnv,
    /// `--enable-url-elicitation`: per-user credentials for servers with `tokenURLElicitation`.
    pub enable_url_elicitation: bool,
    /// `--strict-compat`: a config reload with settings not acted on is refused.
    pub strict_compat: bool,
    /// `--invalid-tool-policy`: what discovery does with a server advertising an invalid tool.
    pub invalid_tool_policy: tool_validation::InvalidToolPolicy,
    /// `--discovery-tools-enabled`: the broker offers `discover_tools` and `select_tools`.
    pub discovery_tools: bool,
    /// `--discovery-tool-threshold`: more real tools than this (0: never) are hidden from a
    /// session's `tools/list` until it selects some.
    pub discovery_tool_threshold: usize,
    /// `--enable-a2a`: the A2A passthrough on `/a2a/{agent}`.
    pub enable_a2a: bool,
}

/// The bound listeners, so that tests can bind port 0 and read the ports back.
pub struct Listeners {
    pub router: TcpListener,
    pub broker: TcpListener,
    pub metrics: TcpListener,
}

impl Listeners {
    /// Binds the three addresses of `settings`.
    pub async fn bind(settings: &Settings) -> std::io::Result<Listeners> {
        let bind = |a: SocketAddr, what: &'static str| async move {
            TcpListener::bind(a).await.map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot bind {what} address {a}: {e}"))
            })
        };
        Ok(Listeners {
            router: bind(settings.router_address, "router").await?,
            broker: bind(settings.broker_address, "broker").await?,
            metrics: bind(settings.metrics_address, "metrics").await?,
        })
    }
}

/// Runs the router, the broker and the metrics endpoint until `shutdown` resolves.
pub async fn run(
    settings: Settings,
    config: Config,
    config_bytes: Vec<u8>,
    listeners: Listeners,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let (config_tx, config_rx) = watch::channel(Arc::new(config));
    let (catalog_tx, catalog_rx) = watch::channel(Arc::new(Catalog::default()));
    let keys = Arc::new(SessionKeys::new(
        &settings.signing_key,
        settings.session_length,
    ));
    let (mut sessions, closed) = UpstreamSessions::with_close_reports(
        settings.max_upstream_sessions,
        settings.upstream_idle,
    );
    let mut closed = Some(closed);
    if let Some(url) = &settings.cache_connection_string {
        // Shared sessions may be in use through other replicas: they end with their gateway
        // session (Redis expiry), not when this replica stops using them.
        closed = None;
        let shared = upstream::shared::SharedSessions::new(
            url,
            settings.cache_ca_cert.as_deref(),
            metrics.shared_store_errors(),
        )
        .map_err(|e| anyhow::anyhow!("CACHE_CONNECTION_STRING cannot be used: {e}"))?;
        tracing::info!("upstream sessions are shared through Redis");
        sessions = sessions.with_shared(shared);
    }
    let sessions = Arc::new(sessions);
    if !settings.enable_url_elicitation {
        for s in config_rx
            .borrow()
            .servers
            .iter()
            .filter(|s| s.token_url_elicitation.is_some())
        {
            tracing::warn!(server = %s.name, "tokenURLElicitation is set but --enable-url-elicitation is not: calls carry the client's own credential");
        }
    }
    let user_tokens = settings.enable_url_elicitation.then(|| {
        Arc::new(auth::user_tokens::UserTokens::new(
            &settings.signing_key,
            sessions.shared().cloned(),
        ))
    });
    let updates = Arc::new(upstream::updates::Updates::new(sessions.shared().cloned()));
    let announcements = sessions.shared().cloned().map(|shared| {
        let (keys, updates) = (keys.clone(), updates.clone());
        tokio::spawn(shared.watch(move |heard| match heard {
            upstream::shared::Announcement::Terminated(jti) => keys.terminate_jti(&jti),
            // Only what a replica would relay itself: anyone who can publish on the Redis must
            // not be able to put other messages in a client's stream.
            upstream::shared::Announcement::Update { jti, message } => {
                if upstream::get_stream::may_announce(&message) {
                    updates.publish(&jti, message);
                }
            }
        }))
    });
    let client = Arc::new(
        UpstreamClient::with_gateway_ca(settings.gateway_ca_cert.as_deref())
            .map_err(|e| anyhow::anyhow!("--gateway-ca-cert: {e}"))?,
    );
    let trusted = match &settings.trusted_header_key {
        Some(pem) => Some(
            auth::trusted_header::TrustedHeader::from_pem(pem)
                .map_err(|e| anyhow::anyhow!("TRUSTED_HEADER_PUBLIC_KEY: {e}"))?,
        ),
        None => None,
    };
    let (ready_tx, ready_rx) = watch::channel(true);
    let sessions_gauge = {
        let (sessions, metrics) = (sessions.clone(), metrics.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                metrics.upstream_sessions_live(sessions.len());
            }
        })
    };
    let gatekeeper = Arc::new(auth::Gatekeeper::new(
        trusted,
        settings.enforce_capability_filtering,
        settings.metadata_env.clone(),
        Some(metrics.clone()),
    ));
    let closer = closed.map(|rx| {
        tokio::spawn(upstream::close_idle(
            rx,
            sessions.clone(),
            config_rx.clone(),
            client.clone(),
        ))
    });

    let reloader = tokio::spawn(config::reload::watch_file(
        settings.config_path.clone(),
        config_bytes,
        settings.config_poll,
        config_tx,
        Arc::new(telemetry::ReloadCounter(metrics.clone())),
        settings.strict_compat,
    ));
    let discovery = broker::discovery::spawn(
        config_rx.clone(),
        catalog_tx,
        client.clone(),
        gatekeeper.clone(),
        metrics.clone(),
        broker::discovery::Pacing {
            interval: settings.check_interval,
            first_retry: Duration::from_secs(1),
        },
        broker::discovery::Offer {
            invalid_tool_policy: settings.invalid_tool_policy,
            discovery_tools: settings.discovery_tools,
        },
    );

    // One bound for every initialize made for a client's request, the router's and the broker's.
    let init_limits = Arc::new(upstream::InitLimits::new(
        settings.max_concurrent_initializes,
    ));
    let router = Arc::new(router::Router {
        config: config_rx.clone(),
        catalog: catalog_rx.clone(),
        sessions: sessions.clone(),
        keys: keys.clone(),
        client: client.clone(),
        gatekeeper: gatekeeper.clone(),
        updates: updates.clone(),
        init_limits: init_limits.clone(),
        settings: router::RouterSettings {
            public_host: settings.public_host.clone(),
            private_host: settings.private_host.clone(),
            origins: router::origin::AllowedOrigins::new(
                &settings.public_host,
                &settings.allowed_origins,
            ),
            max_body: settings.max_body,
            init_timeout: settings.init_timeout,
            processing_budget: settings.processing_budget,
            enable_a2a: settings.enable_a2a,
            response_phase: settings.response_phase,
        },
        metrics: metrics.clone(),
        answer_kinds: Default::default(),
        user_tokens: user_tokens.clone(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let broker = Arc::new(broker::Broker {
        config: config_rx,
        catalog: catalog_rx,
        keys,
        sessions,
        client,
        gatekeeper,
        updates,
        metrics: metrics.clone(),
        max_body: settings.max_body,
        public_host: settings.public_host.clone(),
        ready: ready_rx,
        closing: stop_rx.clone(),
        init_limits,
        user_tokens,
        meta_tools: broker::meta_tools::MetaTools::new(settings.discovery_tool_threshold),
        capable_lists: broker::capable_lists::CapableLists::default(),
    });

    let router_stop = stop_rx.clone();
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let drain_stop = router_stop.clone();
    let drain = settings.drain_timeout;
    tracing::info!(
        router = %listeners.router.local_addr()?,
        broker = %listeners.broker.local_addr()?,
        metrics = %listeners.metrics.local_addr()?,
        "mcp-router listening"
    );

    let grpc =
        router::processor_server::ProcessorServer::new(router::service::RouterService::new(router))
            .max_decoding_message_size(settings.max_body + 64 * 1024)
            .max_encoding_message_size(settings.max_body + 64 * 1024);
    // gRPC health on the router port: SERVING for "" and the ext_proc service while running.
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<router::processor_server::ProcessorServer>()
        .await;
    let router_task = tokio::spawn(router::serve::serve(
        listeners.router,
        grpc,
        health_service,
        settings.router_threads,
        router_stop,
        drain,
    ));
    // A drain that runs out closes what is still open (`drain`): not an error.
    let broker_task = tokio::spawn(drain::bounded(
        broker::serve(listeners.broker, broker::app(broker), stopped()),
        drain_stop.clone(),
        drain,
        "broker",
    ));
    let metrics_task = tokio::spawn(drain::bounded(
        broker::serve(listeners.metrics, broker::metrics_app(metrics), stopped()),
        drain_stop,
        drain,
        "metrics",
    ));

    shutdown.await;
    tracing::info!(delay_s = settings.shutdown_delay.as_secs(), "shutting down");
    health_reporter
        .set_not_serving::<router::processor_server::ProcessorServer>()
        .await;
    let _ = ready_tx.send(false);
    // Keep serving while load balancers notice the not-ready state, then stop accepting.
    tokio::time::sleep(settings.shutdown_delay).await;
    let _ = stop_tx.send(true);
    let (r, b, m) = tokio::join!(router_task, broker_task, metrics_task);
    reloader.abort();
    discovery.abort();
    sessions_gauge.abort();
    if let Some(c) = closer {
        c.abort();
    }
    if let Some(t) = announcements {
        t.abort();
    }
    r??;
    b?.unwrap_or(Ok(()))?;
    m?.unwrap_or(Ok(()))?;
    Ok(())
}
