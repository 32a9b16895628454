//! Logs (tracing), optional OTLP trace export, and Prometheus metrics.

pub mod audit;
pub mod log_writer;
pub mod otlp;
pub mod trace_context;

pub use trace_context::new_traceparent;

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

/// Installs the global subscriber: log lines to stderr, filtered by `level` (a level or a
/// tracing filter directive), and, when `tracer` is given, this crate's spans (with the events
/// of level info and above inside them) to OpenTelemetry, whatever the log level.
pub fn init_logging(
    level: &str,
    format: LogFormat,
    tracer: Option<opentelemetry_sdk::trace::Tracer>,
) -> LogGuard {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = log_writer();
    // The audit line is formatted by hand, for the same writer in the same style (`audit`).
    let ansi = colours();
    audit::install(writer.clone(), audit::Style { format, ansi });
    let Some(tracer) = tracer else {
        // Export off: one global filter, so that disabled callsites cost nothing.
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(ansi)
            .with_writer(writer);
        let _ = match format {
            LogFormat::Txt => builder.try_init(),
            LogFormat::Json => builder.json().flatten_event(true).try_init(),
        };
        return LogGuard { _writer: guard };
    };
    // Export on: each layer has its own filter, so that spans are exported whatever is logged.
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(writer);
    let fmt = match format {
        LogFormat::Txt => fmt.boxed(),
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
    };
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        // A span is started when first needed, not when first entered: the ext_proc span
        // learns its remote parent (the request's `traceparent`) only from the first message.
        .with_context_activation(false)
        .with_filter(Exported);
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otel)
        .try_init();
    LogGuard { _writer: guard }
}

/// Colours only on a terminal: log files and collectors get plain text.
fn colours() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
}

/// Keeps the log writer's thread; dropping it writes out what is still buffered.
#[must_use = "logs buffered at exit are lost once the guard is dropped"]
pub struct LogGuard {
    _writer: log_writer::WriterGuard<std::io::Stderr>,
}

/// Lines are formatted on the thread that logs and written to stderr by one thread, in batches
/// (one write for all the lines of the last few milliseconds), and nothing is dropped: see
/// [`log_writer`].
fn log_writer() -> (
    log_writer::BatchedWriter<std::io::Stderr>,
    log_writer::WriterGuard<std::io::Stderr>,
) {
    log_writer::batched(std::io::stderr())
}

/// The OpenTelemetry layer's filter: [`exported`], decided once per callsite.
struct Exported;

impl<S> tracing_subscriber::layer::Filter<S> for Exported {
    fn enabled(
        &self,
        meta: &tracing::Metadata<'_>,
        _: &tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        exported(meta)
    }

    fn callsite_enabled(
        &self,
        meta: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if exported(meta) {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::DEBUG)
    }
}

/// What goes to OpenTelemetry: this crate's spans (debug and above), and its events of level
/// info and above.
fn exported(meta: &tracing::Metadata<'_>) -> bool {
    let ours = meta.target() == "mcp_router" || meta.target().starts_with("mcp_router::");
    let level = if meta.is_span() {
        tracing::Level::DEBUG
    } else {
        tracing::Level::INFO
    };
    ours && *meta.level() <= level
}

#[derive(Clone, Debug, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    decision: &'static str,
    server: ServerLabel,
}

// Counted on every request: the family's map hashes with SipHash, which costs about 100
// instructions per word written plus its finish; the three names go to it as one word, hashed
// with foldhash first (measured: about 450 instructions less per call).
impl std::hash::Hash for RequestLabels {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        use std::hash::BuildHasher;
        let names = foldhash::fast::FixedState::with_seed(0).hash_one((
            self.method,
            self.decision,
            self.server.as_str(),
        ));
        state.write_u64(names);
    }
}

/// The `server` label of a request: a configured server's shared name, or a fixed one (the
/// broker), so that counting a request copies no string (the label set is built for every
/// lookup, not only when a new series is made).
#[derive(Clone, Debug)]
pub struct ServerLabel(ServerName);

#[derive(Clone, Debug)]
enum ServerName {
    Shared(Arc<str>),
    Fixed(&'static str),
}

impl ServerLabel {
    fn as_str(&self) -> &str {
        match &self.0 {
            ServerName::Shared(s) => s,
            ServerName::Fixed(s) => s,
        }
    }
}

impl From<&Arc<str>> for ServerLabel {
    fn from(name: &Arc<str>) -> ServerLabel {
        ServerLabel(ServerName::Shared(name.clone()))
    }
}

impl From<&'static str> for ServerLabel {
    fn from(name: &'static str) -> ServerLabel {
        ServerLabel(ServerName::Fixed(name))
    }
}

// One series per name, however the name is held.
impl PartialEq for ServerLabel {
    fn eq(&self, other: &ServerLabel) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for ServerLabel {}

impl std::hash::Hash for ServerLabel {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl prometheus_client::encoding::EncodeLabelValue for ServerLabel {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelValueEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        prometheus_client::encoding::EncodeLabelValue::encode(&self.as_str(), encoder)
    }
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
    /// A session-era upstream's questions to 2026-07-28 clients, by what became of them.
    bridged_questions: Family<ResultLabels, Counter>,
    gateway_sessions: Counter,
    config_reloads: Family<OkLabels, Counter>,
    discovery_tools: Family<ServerLabels, Gauge>,
    discovery_up: Family<ServerLabels, Gauge>,
    invalid_tools: Family<ServerLabels, Gauge>,
    shared_store_errors: Counter,
    token_cache: Family<CacheLabels, Counter>,
    /// `token_cache`'s two series for the upstream-session lookup every routed call makes, held
    /// here so that counting one is an atomic add, not a lookup in the family by label set.
    upstream_session_lookups: [Counter; 2],
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
fn method_label(m: &str) -> &'static str {
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
    KNOWN.iter().find(|k| **k == m).copied().unwrap_or("other")
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
        let bridged_questions = Family::<ResultLabels, Counter>::default();
        registry.register(
            "bridged_questions",
            "Requests a session-era upstream sent a 2026-07-28 client during a call: asked (an input-required result), answered (from the client's retry), refused (not askable), withdrawn (after the client was asked), send_failed (the answer could not be posted)",
            bridged_questions.clone(),
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
        let invalid_tools = Family::<ServerLabels, Gauge>::default();
        registry.register(
            "discovery_invalid_tools",
            "Tools of an upstream judged invalid at its last discovery (--invalid-tool-policy)",
            invalid_tools.clone(),
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
        let upstream_session_lookups = [false, true].map(|hit| {
            token_cache
                .get_or_create(&CacheLabels {
                    cache: "upstream_sessions",
                    result: if hit { "hit" } else { "miss" },
                })
                .clone()
        });
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
            bridged_questions,
            gateway_sessions,
            config_reloads,
            discovery_tools,
            discovery_up,
            invalid_tools,
            shared_store_errors,
            token_cache,
            upstream_session_lookups,
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
        self.upstream_session_lookups[usize::from(hit)].inc();
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

    pub fn request(&self, method: &str, decision: &'static str, server: impl Into<ServerLabel>) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method_label(method),
                decision,
                server: server.into(),
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

    /// `result`: asked, answered, refused, withdrawn or send_failed.
    pub fn bridged_question(&self, server: &str, result: &'static str) {
        self.bridged_questions
            .get_or_create(&ResultLabels {
                server: server.to_owned(),
                result,
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

    /// Tools of `server` that `--invalid-tool-policy` judged invalid at its last discovery.
    pub fn invalid_tools(&self, server: &str, n: usize) {
        let l = ServerLabels {
            server: server.to_owned(),
        };
        self.invalid_tools.get_or_create(&l).set(n as i64);
    }
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
    fn a_request_series_is_one_whatever_holds_the_servers_name() {
        let m = Metrics::new();
        let shared: Arc<str> = Arc::from("ns/kube");
        m.request("tools/call", "upstream", &shared);
        m.request("tools/call", "upstream", "ns/kube");
        m.request("tools/call", "upstream", &Arc::from("ns/kube"));
        m.request("tools/list", "broker", "broker");
        let text = m.encode();
        let series = |needle: &str| {
            text.lines()
                .filter(|l| l.starts_with("mcp_router_requests") && l.contains(needle))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        let kube = series("server=\"ns/kube\"");
        assert_eq!(kube.len(), 1, "{text}");
        assert!(kube[0].ends_with(" 3"), "{kube:?}");
        assert!(kube[0].contains("method=\"tools/call\""), "{kube:?}");
        let broker = series("server=\"broker\"");
        assert_eq!(broker.len(), 1, "{text}");
        assert!(broker[0].ends_with(" 1"), "{broker:?}");
    }

    /// The upstream-session lookups are counted into the family's own series (held, not looked
    /// up), beside the exchanged tokens' series of the same family.
    #[test]
    fn upstream_session_lookups_are_the_cache_familys_series() {
        let m = Metrics::new();
        let line = |text: &str, result: &str| {
            let want = format!(
                "mcp_router_cache_lookups_total{{cache=\"upstream_sessions\",result=\"{result}\"}} "
            );
            text.lines()
                .find_map(|l| l.strip_prefix(want.as_str()).map(str::to_owned))
        };
        let text = m.encode();
        assert_eq!(line(&text, "hit").as_deref(), Some("0"), "{text}");
        assert_eq!(line(&text, "miss").as_deref(), Some("0"), "{text}");
        m.session_cache(true);
        m.session_cache(true);
        m.session_cache(false);
        m.token_cache(true, true);
        let text = m.encode();
        assert_eq!(line(&text, "hit").as_deref(), Some("2"), "{text}");
        assert_eq!(line(&text, "miss").as_deref(), Some("1"), "{text}");
        assert!(
            text.contains(
                "mcp_router_cache_lookups_total{cache=\"exchanged_tokens\",result=\"hit\"} 1"
            ),
            "{text}"
        );
    }

    #[test]
    fn only_this_crates_spans_and_notable_events_are_exported() {
        use tracing::Level;
        struct Cs;
        impl tracing::Callsite for Cs {
            fn set_interest(&self, _: tracing::subscriber::Interest) {}
            fn metadata(&self) -> &tracing::Metadata<'_> {
                unreachable!()
            }
        }
        static CS: Cs = Cs;
        let cases = [
            ("mcp_router::router::stream", Level::DEBUG, true, true),
            ("mcp_router", Level::INFO, true, true),
            ("mcp_router", Level::TRACE, true, false),
            ("mcp_router::broker", Level::INFO, false, true),
            ("mcp_router::broker", Level::WARN, false, true),
            ("mcp_router::broker", Level::DEBUG, false, false),
            ("mcp_routerx", Level::INFO, true, false),
            ("audit", Level::INFO, false, false),
            ("h2::proto", Level::DEBUG, true, false),
            ("opentelemetry_sdk", Level::WARN, false, false),
        ];
        for (target, level, span, want) in cases {
            let kind = if span {
                tracing::metadata::Kind::SPAN
            } else {
                tracing::metadata::Kind::EVENT
            };
            let meta = tracing::Metadata::new(
                "x",
                target,
                level,
                None,
                None,
                None,
                tracing::field::FieldSet::new(&[], tracing::callsite::Identifier(&CS)),
                kind,
            );
            assert_eq!(exported(&meta), want, "{target} {level} span={span}");
        }
    }
}
