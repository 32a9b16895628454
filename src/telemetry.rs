//! Logs (tracing) and Prometheus metrics.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Log output format (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Txt,
    Json,
}

/// Installs the global subscriber. `level` is a level or a tracing filter directive.
pub fn init_logging(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Txt => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    decision: &'static str,
    server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectLabels {
    reason: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabels {
    server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    server: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OkLabels {
    result: &'static str,
}

/// Every metric the process exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    rejections: Family<RejectLabels, Counter>,
    streams: Counter,
    spoofed: Counter,
    upstream_inits: Family<ResultLabels, Counter>,
    upstream_init_seconds: Family<ServerLabels, Histogram>,
    upstream_sessions_lost: Family<ServerLabels, Counter>,
    gateway_sessions: Counter,
    config_reloads: Family<OkLabels, Counter>,
    discovery_tools: Family<ServerLabels, Gauge>,
    discovery_up: Family<ServerLabels, Gauge>,
    shared_store_errors: Counter,
    token_cache: Family<CacheLabels, Counter>,
    authentications: Family<OkLabels, Counter>,
    upstream_sessions_live: Gauge,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: &'static str,
    result: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Known methods keep their name as a label; anything else is "other" (bounded cardinality).
fn method_label(m: &str) -> String {
    const KNOWN: &[&str] = &[
        "initialize",
        "ping",
        "tools/list",
        "tools/call",
        "prompts/list",
        "prompts/get",
        "resources/list",
        "resources/read",
        "resources/templates/list",
        "resources/subscribe",
        "resources/unsubscribe",
        "completion/complete",
        "logging/setLevel",
        "notifications/initialized",
        "notifications/cancelled",
        "notifications/progress",
        "GET",
        "DELETE",
        "POST",
        "",
    ];
    if KNOWN.contains(&m) { m } else { "other" }.to_owned()
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("mcp_router");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests seen by the router, by MCP method, decision and server",
            requests.clone(),
        );
        let rejections = Family::<RejectLabels, Counter>::default();
        registry.register(
            "rejections",
            "Requests answered by the router with an error, by reason and HTTP status",
            rejections.clone(),
        );
        let streams = Counter::default();
        registry.register(
            "ext_proc_streams",
            "ext_proc streams opened by Envoy",
            streams.clone(),
        );
        let spoofed = Counter::default();
        registry.register(
            "spoofed_headers_removed",
            "Internal headers removed from client requests",
            spoofed.clone(),
        );
        let upstream_inits = Family::<ResultLabels, Counter>::default();
        registry.register(
            "upstream_initializations",
            "Upstream session initializations, by server and result",
            upstream_inits.clone(),
        );
        let upstream_init_seconds = Family::<ServerLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ])
        });
        registry.register(
            "upstream_initialize_duration_seconds",
            "Time to initialize an upstream session",
            upstream_init_seconds.clone(),
        );
        let upstream_sessions_lost = Family::<ServerLabels, Counter>::default();
        registry.register(
            "upstream_sessions_lost",
            "Upstream sessions the upstream forgot (404)",
            upstream_sessions_lost.clone(),
        );
        let gateway_sessions = Counter::default();
        registry.register(
            "gateway_sessions_created",
            "Gateway sessions created by initialize",
            gateway_sessions.clone(),
        );
        let config_reloads = Family::<OkLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Config file reloads, by result",
            config_reloads.clone(),
        );
        let discovery_tools = Family::<ServerLabels, Gauge>::default();
        registry.register(
            "discovery_tools",
            "Tools discovered per upstream",
            discovery_tools.clone(),
        );
        let discovery_up = Family::<ServerLabels, Gauge>::default();
        registry.register(
            "discovery_up",
            "Whether the last discovery of an upstream succeeded (1) or not (0)",
            discovery_up.clone(),
        );
        let shared_store_errors = Counter::default();
        registry.register(
            "shared_store_errors",
            "Failed operations on the shared session store (Redis); each was served from local state",
            shared_store_errors.clone(),
        );
        let token_cache = Family::<CacheLabels, Counter>::default();
        registry.register(
            "cache_lookups",
            "Cache lookups (exchanged tokens, upstream sessions), by cache and result (hit, miss, error)",
            token_cache.clone(),
        );
        let upstream_sessions_live = Gauge::default();
        registry.register(
            "upstream_sessions",
            "Upstream sessions this replica holds",
            upstream_sessions_live.clone(),
        );
        let authentications = Family::<OkLabels, Counter>::default();
        registry.register(
            "authentications",
            "Bearer token checks by native auth, by result (ok, rejected, provider_error)",
            authentications.clone(),
        );
        // Counters that rate() and alerts expect to exist before their first event.
        for result in ["ok", "error"] {
            let _ = config_reloads.get_or_create(&OkLabels { result });
        }
        for result in ["ok", "rejected", "provider_error"] {
            let _ = authentications.get_or_create(&OkLabels { result });
        }
        Metrics {
            registry,
            requests,
            rejections,
            streams,
            spoofed,
            upstream_inits,
            upstream_init_seconds,
            upstream_sessions_lost,
            gateway_sessions,
            config_reloads,
            discovery_tools,
            discovery_up,
            shared_store_errors,
            token_cache,
            authentications,
            upstream_sessions_live,
        }
    }

    pub fn upstream_sessions_live(&self, n: u64) {
        self.upstream_sessions_live
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// An upstream session lookup for a routed call: found (`hit`) or created (`miss`).
    pub fn session_cache(&self, hit: bool) {
        self.token_cache
            .get_or_create(&CacheLabels {
                cache: "upstream_sessions",
                result: if hit { "hit" } else { "miss" },
            })
            .inc();
    }

    /// An exchanged-token cache lookup: `hit` (served from the cache), else a fetch that
    /// succeeded (`miss`) or failed (`error`).
    pub fn token_cache(&self, hit: bool, ok: bool) {
        let result = match (hit, ok) {
            (true, _) => "hit",
            (false, true) => "miss",
            (false, false) => "error",
        };
        self.token_cache
            .get_or_create(&CacheLabels {
                cache: "exchanged_tokens",
                result,
            })
            .inc();
    }

    /// A native bearer token check: `ok`, `rejected` or `provider_error`.
    pub fn authenticated(&self, result: &'static str) {
        self.authentications
            .get_or_create(&OkLabels { result })
            .inc();
    }

    /// The counter of failed shared-store (Redis) operations, for the store to count into.
    pub fn shared_store_errors(&self) -> Counter {
        self.shared_store_errors.clone()
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub fn stream_opened(&self) {
        self.streams.inc();
    }

    pub fn spoofed_headers_removed(&self, n: usize) {
        self.spoofed.inc_by(n as u64);
    }

    pub fn request(&self, method: &str, decision: &'static str, server: &str) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method_label(method),
                decision,
                server: server.to_owned(),
            })
            .inc();
    }

    pub fn rejected(&self, reason: &'static str, status: u16) {
        self.rejections
            .get_or_create(&RejectLabels { reason, status })
            .inc();
    }

    pub fn upstream_initialized(&self, server: &str, ok: bool, took: Duration) {
        self.upstream_inits
            .get_or_create(&ResultLabels {
                server: server.to_owned(),
                result: if ok { "ok" } else { "error" },
            })
            .inc();
        self.upstream_init_seconds
            .get_or_create(&ServerLabels {
                server: server.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    pub fn upstream_session_lost(&self, server: &str) {
        self.upstream_sessions_lost
            .get_or_create(&ServerLabels {
                server: server.to_owned(),
            })
            .inc();
    }

    pub fn gateway_session_created(&self) {
        self.gateway_sessions.inc();
    }

    pub fn config_reloaded(&self, ok: bool) {
        self.config_reloads
            .get_or_create(&OkLabels {
                result: if ok { "ok" } else { "error" },
            })
            .inc();
    }

    pub fn discovery(&self, server: &str, up: bool, tools: usize) {
        let l = ServerLabels {
            server: server.to_owned(),
        };
        self.discovery_up.get_or_create(&l).set(i64::from(up));
        self.discovery_tools.get_or_create(&l).set(tools as i64);
    }
}

/// A fresh W3C `traceparent` (version 00, random trace and span ids, sampled) for calls the
/// gateway makes on its own, such as discovery.
pub fn new_traceparent() -> String {
    let trace: u128 = rand::random::<u128>().max(1);
    let span: u64 = rand::random::<u64>().max(1);
    format!("00-{trace:032x}-{span:016x}-01")
}

/// Lets the config reloader count into the metrics.
pub struct ReloadCounter(pub Arc<Metrics>);

impl crate::config::reload::ReloadObserver for ReloadCounter {
    fn reloaded(&self, ok: bool) {
        self.0.config_reloaded(ok);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_are_w3c_shaped_and_fresh() {
        let a = new_traceparent();
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!(
            (parts[0], parts[1].len(), parts[2].len(), parts[3]),
            ("00", 32, 16, "01")
        );
        assert!(parts[1].chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, new_traceparent());
    }
}
