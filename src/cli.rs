//! Command-line flags and environment, compatible with the seed gateway's broker-router.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::telemetry::LogFormat;

/// mcp-router: Envoy ext_proc router and MCP broker for an MCP Gateway.
#[derive(Debug, Clone, Parser)]
#[command(name = "mcp-router", version, about, long_about = None)]
pub struct Cli {
    /// Address of the ext_proc gRPC server Envoy calls.
    #[arg(long = "mcp-router-address", default_value = "0.0.0.0:50051")]
    pub router_address: SocketAddr,

    /// Address of the broker (the gateway's own MCP server, /status, /healthz, /readyz).
    #[arg(long = "mcp-broker-public-address", default_value = "0.0.0.0:8080")]
    pub broker_address: SocketAddr,

    /// Address of the Prometheus /metrics endpoint.
    #[arg(long = "metrics-addr", default_value = "0.0.0.0:9090")]
    pub metrics_address: SocketAddr,

    /// Path of the gateway config file (YAML; reloaded when it changes).
    #[arg(
        long = "mcp-gateway-config",
        default_value = "./config/mcp-system/config.yaml"
    )]
    pub config: PathBuf,

    /// Public host of the gateway: the :authority the router gives requests for the broker.
    #[arg(long = "mcp-gateway-public-host")]
    pub public_host: String,

    /// Host and port of the gateway inside the cluster: `host:port` or `http://host:port` (its
    /// plain listener), or `https://host:port` (a TLS listener: the TLS name is the server's
    /// hostname, as in the seed). When set, upstream initializes are sent back through the
    /// gateway so that its policies apply to them, judged by the `x-mcp-toolname` (or prompt
    /// name, or resource URI) of the call that needs the session.
    #[arg(long = "mcp-gateway-private-host")]
    pub private_host: Option<String>,

    /// Path of a PEM CA bundle for the gateway's TLS listener (an `https://` private host),
    /// trusted for every upstream connection too. Read at start.
    #[arg(long = "gateway-ca-cert")]
    pub gateway_ca_cert: Option<PathBuf>,

    /// Lifetime of a gateway session, in minutes.
    #[arg(long = "session-length", default_value_t = 1440, value_parser = clap::value_parser!(u64).range(1..))]
    pub session_length: u64,

    /// Largest request body accepted, in bytes.
    #[arg(long = "max-request-body-size", default_value_t = 5_242_880, value_parser = clap::value_parser!(u64).range(1..=1_073_741_824))]
    pub max_request_body_size: u64,

    /// Interval between discovery refreshes of each upstream, in seconds.
    #[arg(long = "mcp-check-interval", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub check_interval: u64,

    /// Log level: error, warn, info, debug, trace; the seed's numbers (-4 debug, 0 info, 4 warn,
    /// 8 error); or tracing filter directives (`info,mcp_router::router=debug`).
    #[arg(long = "log-level", default_value = "info", value_parser = log_filter, allow_hyphen_values = true)]
    pub log_level: String,

    /// Log format.
    #[arg(long = "log-format", value_enum, default_value = "txt")]
    pub log_format: LogFormat,

    /// What the router's work on one ext_proc message may take, in milliseconds, all steps
    /// together: OIDC key fetches in the headers phase; token exchange (`via` included) and the
    /// upstream initialize in the body phase. When it runs out the client gets a 504 JSON-RPC
    /// error naming what was slow. Keep it below Envoy's ext_proc message_timeout (10 s in the
    /// shipped configs), with a margin. At least 100: less leaves no time for any step that
    /// is not served from a cache.
    #[arg(long = "processing-budget-ms", default_value_t = 8000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub processing_budget_ms: u64,

    /// When a routed call's ext_proc stream stays open for the response headers: `always` (the
    /// seed's behaviour, three messages per call), or `when-needed` (two for a plain call; Envoy
    /// puts the gateway session id on the answer; see README "Messages per call" for what such a
    /// call gives up).
    #[arg(long = "response-phase", value_enum, default_value_t = crate::router::response_phase::Mode::Always)]
    pub response_phase: crate::router::response_phase::Mode,

    /// Most an upstream initialize may take, in milliseconds, within what is left of
    /// `--processing-budget-ms`.
    #[arg(long = "upstream-init-timeout-ms", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub init_timeout_ms: u64,

    /// Idle time after which an upstream session is closed, in seconds.
    #[arg(long = "upstream-session-idle", default_value_t = 1800, value_parser = clap::value_parser!(u64).range(1..))]
    pub upstream_idle: u64,

    /// On SIGTERM, seconds to keep serving while reporting not ready (`/readyz` 503, gRPC health
    /// NOT_SERVING), so that load balancers stop sending before the listeners close.
    #[arg(long = "shutdown-delay", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=300))]
    pub shutdown_delay: u64,

    /// On SIGTERM, after `--shutdown-delay`: seconds at most to let in-flight streams finish
    /// (long tool calls, event streams); what is still open then is closed, with a warning.
    #[arg(long = "drain-timeout", default_value_t = 20, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub drain_timeout: u64,

    /// Most upstream initializes in flight to one upstream server at once; more wait (within
    /// the initialize budget, then a 503 JSON-RPC error).
    #[arg(long = "max-concurrent-initializes", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_concurrent_initializes: u64,

    /// Most upstream sessions held at once.
    #[arg(long = "max-upstream-sessions", default_value_t = 200_000)]
    pub max_upstream_sessions: u64,

    /// Threads serving Envoy's ext_proc connections, each with its own single-threaded runtime
    /// (0: one per CPU core). Envoy opens one connection per worker; they are spread over these.
    #[arg(long = "router-threads", default_value_t = 0)]
    pub router_threads: usize,

    /// HS256 key for gateway session ids (at least 32 bytes); also read from
    /// JWT_SESSION_SIGNING_KEY, as the seed did. Unset: a random key, so sessions neither survive
    /// a restart nor span replicas.
    #[arg(
        long = "gateway-signing-key",
        alias = "session-signing-key",
        env = "GATEWAY_SIGNING_KEY",
        hide_env_values = true
    )]
    pub signing_key: Option<String>,

    /// With TRUSTED_HEADER_PUBLIC_KEY: a list request without a valid `x-mcp-authorized` header
    /// lists no tools or prompts (without it, such a request lists everything).
    #[arg(long = "enforce-capability-filtering", num_args = 0..=1, default_missing_value = "true", default_value_t = false, action = clap::ArgAction::Set)]
    pub enforce_capability_filtering: bool,

    /// What to do with an upstream that lists an invalid tool (bad name or schema, a duplicate):
    /// serve its valid tools (FilterOut), or none of its tools (RejectServer). As in the seed.
    #[arg(long = "invalid-tool-policy", value_enum, default_value = "FilterOut")]
    pub invalid_tool_policy: crate::tool_validation::InvalidToolPolicy,

    /// The broker's discover_tools and select_tools meta-tools for large catalogs (2025
    /// sessions), as in the seed.
    #[arg(long = "discovery-tools-enabled", num_args = 0..=1, default_missing_value = "true", default_value_t = true, action = clap::ArgAction::Set)]
    pub discovery_tools_enabled: bool,

    /// More real tools than this are hidden from a session's tools/list (only the meta-tools
    /// are listed) until it selects some with select_tools; 0 (or less, as the seed): never.
    #[arg(
        long = "discovery-tool-threshold",
        default_value_t = 0,
        allow_hyphen_values = true
    )]
    pub discovery_tool_threshold: i64,

    /// The seed's experimental A2A passthrough: requests under /a2a/{agent} keep their route
    /// and get x-a2a-agent and x-a2a-method headers for policies and telemetry; a POST that is
    /// not a JSON-RPC request is refused.
    #[arg(long = "enable-a2a", num_args = 0..=1, default_missing_value = "true", default_value_t = false, action = clap::ArgAction::Set)]
    pub enable_a2a: bool,

    /// The seed's URL elicitation flag, and the seed flags this gateway accepts so that the
    /// seed's command lines start but does not act on (a warning names each one set): pprof,
    /// broker write timeout, router key.
    #[command(flatten)]
    pub seed: SeedFlags,

    /// Redis URL (`redis://host:6379/0`) where upstream sessions are shared between replicas.
    /// Empty: sessions live in this process only.
    #[arg(
        long = "cache-connection-string",
        env = "CACHE_CONNECTION_STRING",
        hide_env_values = true
    )]
    pub cache_connection_string: Option<String>,

    /// Path of a PEM CA bundle a `rediss://` server's certificate must chain to, instead of the
    /// public roots (a private CA). Read at start.
    #[arg(long = "cache-ca-cert", env = "CACHE_CA_CERT", hide_env_values = true)]
    pub cache_ca_cert: Option<PathBuf>,

    /// PEM public key (EC P-256) of the policy engine that signs `x-mcp-authorized` headers.
    /// Unset: the header is ignored.
    #[arg(
        long = "trusted-header-public-key",
        env = "TRUSTED_HEADER_PUBLIC_KEY",
        hide_env_values = true
    )]
    pub trusted_header_public_key: Option<String>,

    /// Browser origins allowed besides loopback hosts and the public host (comma-separated):
    /// exact origins (`https://app.example.com`), hosts (`app.example.com`) or `*`. A request
    /// with any other `Origin` header gets 403 (DNS-rebinding protection).
    #[arg(long = "allowed-origins", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// OTLP gRPC endpoint to export traces to (`http://otel-collector:4317`). Unset: read from
    /// OTEL_EXPORTER_OTLP_ENDPOINT too; neither set (or OTEL_SDK_DISABLED=true): no export.
    /// OTEL_SERVICE_NAME (default mcp-router), OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER and
    /// OTEL_TRACES_SAMPLER_ARG apply.
    #[arg(
        long = "otlp-endpoint",
        env = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        hide_env_values = true
    )]
    pub otlp_endpoint: Option<String>,
}

/// `--enable-url-elicitation`, `--strict-compat`, and the seed's flags that mcp-router accepts
/// without acting on them.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SeedFlags {
    /// Per-user upstream credentials by URL elicitation for servers with `tokenURLElicitation`
    /// (the seed's flag; off by default).
    #[arg(long = "enable-url-elicitation", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub enable_url_elicitation: Option<bool>,
    /// (seed) pprof server: not offered (use `make bench-micro` / perf); accepted and ignored.
    #[arg(long = "enable-pprof", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub enable_pprof: Option<bool>,
    /// (seed) broker HTTP write timeout in seconds: the broker has none (SSE streams stay open);
    /// accepted and ignored.
    #[arg(long = "mcp-broker-write-timeout")]
    pub broker_write_timeout: Option<i64>,
    /// (seed, removed there in v0.9) router key: hairpin keys are signed with the session key
    /// here; accepted and ignored.
    #[arg(long = "mcp-router-key", hide_env_values = true)]
    pub router_key: Option<String>,
    /// Refuse to start (exit 64) when a seed flag or config key is set that mcp-router would
    /// accept but not act on, and refuse a config reload that has one (or an unknown key).
    #[arg(long = "strict-compat", env = "STRICT_COMPAT", num_args = 0..=1, default_missing_value = "true", default_value_t = false, action = clap::ArgAction::Set)]
    pub strict_compat: bool,
}

impl SeedFlags {
    /// The seed flags given with a value that asks for something mcp-router does not do.
    pub fn ignored(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.router_key.is_some() {
            v.push("--mcp-router-key");
        }
        if self.enable_pprof == Some(true) {
            v.push("--enable-pprof");
        }
        if self.broker_write_timeout.is_some_and(|t| t > 0) {
            v.push("--mcp-broker-write-timeout");
        }
        v
    }
}

impl Cli {
    /// Warnings for flags that still work here but that the seed gateway has removed.
    pub fn deprecations(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.gateway_ca_cert.is_some() {
            v.push(
                "--gateway-ca-cert is deprecated (the seed gateway removed it): it still works; \
                 prefer gatewayCACertPEM in the config file",
            );
        }
        v
    }

    /// With `--strict-compat`: the seed flags set that mcp-router does not act on, as an error.
    pub fn strict_compat_error(&self) -> Option<String> {
        let ignored = self.seed.ignored();
        (self.seed.strict_compat && !ignored.is_empty()).then(|| {
            format!(
                "--strict-compat: seed gateway flags that mcp-router does not act on: {}",
                ignored.join(", ")
            )
        })
    }
}

/// The tracing filter for a `--log-level` value: a level name, the seed's slog numbers (-4
/// debug, 0 info, 4 warn, 8 error; in between, the next level up, as slog compares; below -4
/// trace; above 8 error), or filter directives. A bare word that is no level would be read as a
/// target and silence everything else, so it is refused.
pub fn log_filter(value: &str) -> Result<String, String> {
    let v = value.trim();
    if let Ok(n) = v.parse::<i64>() {
        let level = match n {
            ..=-5 => "trace",
            -4 => "debug",
            -3..=0 => "info",
            1..=4 => "warn",
            _ => "error",
        };
        return Ok(level.to_owned());
    }
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    let lower = v.to_ascii_lowercase();
    let lower = if lower == "warning" {
        "warn".to_owned()
    } else {
        lower
    };
    if LEVELS.contains(&lower.as_str()) {
        return Ok(lower);
    }
    // Directives: each `target=level` or a level, comma-separated.
    let ok = !v.is_empty()
        && v.split(',').all(|d| {
            let d = d.trim();
            match d.rsplit_once('=') {
                Some((target, level)) => {
                    !target.is_empty() && LEVELS.contains(&level.to_ascii_lowercase().as_str())
                }
                None => LEVELS.contains(&d.to_ascii_lowercase().as_str()),
            }
        })
        && tracing_subscriber::EnvFilter::try_new(v).is_ok();
    if ok {
        Ok(v.to_owned())
    } else {
        Err(format!(
            "{value:?} is not a log level: use error, warn, info, debug or trace, the seed's -4, 0, 4 or 8, or directives like info,mcp_router::router=debug"
        ))
    }
}

/// Why the flags cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("GATEWAY_SIGNING_KEY must be at least 32 bytes")]
    ShortKey,
    #[error("TRUSTED_HEADER_PUBLIC_KEY is not an EC public key in PEM form")]
    TrustedHeaderKey,
    #[error("--mcp-gateway-private-host {0}")]
    PrivateHost(String),
    #[error("--gateway-ca-cert {0}")]
    GatewayCaCert(String),
    #[error("--cache-ca-cert {0}")]
    CacheCaCert(String),
    #[error("CACHE_CONNECTION_STRING (--cache-connection-string) cannot be used: {0}")]
    CacheUrl(String),
}

/// Accepts Go-style single-dash long flags (`-mcp-gateway-config=x`) as the seed's binary did.
pub fn normalize_args(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut passthrough = false;
    for (i, a) in args.into_iter().enumerate() {
        if i == 0 || passthrough {
            out.push(a);
            continue;
        }
        if a == "--" {
            passthrough = true;
        } else if a.len() > 2
            && a.starts_with('-')
            && !a.starts_with("--")
            && a[1..].parse::<f64>().is_err()
        {
            out.push(format!("-{a}"));
            continue;
        }
        out.push(a);
    }
    out
}

impl Cli {
    /// The run settings these flags describe. `random_key` fills in a missing signing key.
    pub fn settings(
        &self,
        random_key: impl FnOnce() -> Vec<u8>,
    ) -> Result<crate::Settings, CliError> {
        self.settings_with(random_key, |k| std::env::var(k).ok())
    }

    /// [`Cli::settings`] with the environment read through `env`.
    pub fn settings_with(
        &self,
        random_key: impl FnOnce() -> Vec<u8>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<crate::Settings, CliError> {
        // The seed read JWT_SESSION_SIGNING_KEY when GATEWAY_SIGNING_KEY was unset.
        let fallback = || env("JWT_SESSION_SIGNING_KEY");
        // Set but empty (a Secret key that is empty) is refused like a short key, never replaced
        // by a random one: replicas would each make up their own.
        let signing_key = match self.signing_key.clone().or_else(fallback) {
            Some(k) if k.len() < 32 => return Err(CliError::ShortKey),
            Some(k) => k.into_bytes(),
            None => random_key(),
        };
        let trusted_header_key = match self
            .trusted_header_public_key
            .as_deref()
            .filter(|k| !k.trim().is_empty())
        {
            Some(pem) => {
                crate::auth::trusted_header::TrustedHeader::from_pem(pem)
                    .map_err(|_| CliError::TrustedHeaderKey)?;
                Some(pem.to_owned())
            }
            None => None,
        };
        let private_host = match self
            .private_host
            .as_deref()
            .filter(|h| !h.trim().is_empty())
        {
            Some(h) => Some(crate::upstream::PrivateHost::parse(h).map_err(CliError::PrivateHost)?),
            None => None,
        };
        let gateway_ca_cert = match &self.gateway_ca_cert {
            Some(path) => Some(crate::tls::read_ca_file(path).map_err(CliError::GatewayCaCert)?),
            None => None,
        };
        let cache_connection_string = self
            .cache_connection_string
            .clone()
            .filter(|s| !s.is_empty());
        let cache_ca_cert = match &self.cache_ca_cert {
            Some(path) if !path.as_os_str().is_empty() => {
                Some(crate::tls::read_ca_file(path).map_err(CliError::CacheCaCert)?)
            }
            _ => None,
        };
        match (&cache_connection_string, &cache_ca_cert) {
            (Some(url), ca) => {
                crate::upstream::shared::redis_client(url, ca.as_deref())
                    .map_err(CliError::CacheUrl)?;
            }
            (None, Some(_)) => {
                return Err(CliError::CacheCaCert(
                    "is set but CACHE_CONNECTION_STRING is not".into(),
                ))
            }
            (None, None) => {}
        }
        Ok(crate::Settings {
            strict_compat: self.seed.strict_compat,
            invalid_tool_policy: self.invalid_tool_policy,
            discovery_tools: self.discovery_tools_enabled,
            enable_a2a: self.enable_a2a,
            discovery_tool_threshold: usize::try_from(self.discovery_tool_threshold.max(0))
                .unwrap_or(usize::MAX),
            trusted_header_key,
            enforce_capability_filtering: self.enforce_capability_filtering,
            metadata_env: crate::auth::metadata::MetadataEnv::from_env(),
            enable_url_elicitation: self.seed.enable_url_elicitation == Some(true),
            router_address: self.router_address,
            broker_address: self.broker_address,
            metrics_address: self.metrics_address,
            config_path: self.config.clone(),
            public_host: self.public_host.clone(),
            private_host,
            gateway_ca_cert,
            cache_ca_cert,
            allowed_origins: self.allowed_origins.clone(),
            session_length: Duration::from_secs(self.session_length * 60),
            max_body: usize::try_from(self.max_request_body_size).unwrap_or(usize::MAX),
            check_interval: Duration::from_secs(self.check_interval),
            init_timeout: Duration::from_millis(self.init_timeout_ms),
            processing_budget: Duration::from_millis(self.processing_budget_ms),
            response_phase: self.response_phase,
            upstream_idle: Duration::from_secs(self.upstream_idle),
            shutdown_delay: Duration::from_secs(self.shutdown_delay),
            drain_timeout: Duration::from_secs(self.drain_timeout),
            max_upstream_sessions: self.max_upstream_sessions,
            max_concurrent_initializes: usize::try_from(self.max_concurrent_initializes)
                .unwrap_or(usize::MAX),
            config_poll: Duration::from_secs(1),
            signing_key,
            cache_connection_string,
            router_threads: if self.router_threads == 0 {
                std::thread::available_parallelism().map_or(2, usize::from)
            } else {
                self.router_threads
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let mut v = vec!["mcp-router".to_owned()];
        v.extend(args.iter().map(|s| s.to_string()));
        Cli::try_parse_from(normalize_args(v))
    }

    #[test]
    fn both_flag_styles_and_go_single_dash_work() {
        for args in [
            &[
                "--mcp-gateway-public-host",
                "mcp.example.com",
                "--session-length",
                "5",
            ][..],
            &[
                "--mcp-gateway-public-host=mcp.example.com",
                "--session-length=5",
            ],
            &[
                "-mcp-gateway-public-host=mcp.example.com",
                "-session-length",
                "5",
            ],
        ] {
            let c = parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert_eq!(c.public_host, "mcp.example.com");
            assert_eq!(c.session_length, 5);
            assert_eq!(c.router_address.to_string(), "0.0.0.0:50051");
            assert_eq!(c.broker_address.to_string(), "0.0.0.0:8080");
            assert_eq!(c.metrics_address.to_string(), "0.0.0.0:9090");
            assert_eq!(c.max_request_body_size, 5_242_880);
            assert_eq!(c.check_interval, 60);
            assert_eq!(c.processing_budget_ms, 8000);
            assert_eq!(c.init_timeout_ms, 5000);
        }
    }

    #[test]
    fn bad_flags_are_refused() {
        assert!(parse(&[]).is_err(), "public host is required");
        assert!(parse(&["--mcp-gateway-public-host=h", "--session-length=0"]).is_err());
        assert!(parse(&["--mcp-gateway-public-host=h", "--log-format=xml"]).is_err());
        assert!(parse(&["--mcp-gateway-public-host=h", "--mcp-router-address=nope"]).is_err());
    }

    #[test]
    fn the_processing_budget_is_between_100_ms_and_a_minute() {
        for (value, accepted) in [
            ("0", false),
            ("1", false),
            ("99", false),
            ("100", true),
            ("8000", true),
            ("60000", true),
            ("60001", false),
            ("-5", false),
            ("", false),
        ] {
            let flag = format!("--processing-budget-ms={value}");
            let r = parse(&["--mcp-gateway-public-host=h", &flag]);
            assert_eq!(r.is_ok(), accepted, "{flag}");
            if let Ok(c) = r {
                assert_eq!(c.processing_budget_ms.to_string(), value);
            }
        }
    }

    #[test]
    fn log_levels_take_names_the_seeds_numbers_and_directives() {
        for (value, filter) in [
            ("info", Some("info")),
            ("WARN", Some("warn")),
            ("warning", Some("warn")),
            ("off", Some("off")),
            // The seed's slog levels, and values between them as slog compares them.
            ("0", Some("info")),
            ("-4", Some("debug")),
            ("4", Some("warn")),
            ("8", Some("error")),
            ("-8", Some("trace")),
            ("-2", Some("info")),
            ("2", Some("warn")),
            ("6", Some("error")),
            ("12", Some("error")),
            (
                "info,mcp_router::router=debug",
                Some("info,mcp_router::router=debug"),
            ),
            ("audit=off", Some("audit=off")),
            // A bare word would be a target at trace and silence everything else.
            ("verbose", None),
            ("mcp_router", None),
            ("", None),
            ("info,", None),
            ("=debug", None),
        ] {
            assert_eq!(log_filter(value).ok().as_deref(), filter, "{value:?}");
        }
        // Through the parser, negative numbers included.
        for (args, level) in [
            (&["--log-level", "-4"][..], "debug"),
            (&["--log-level=0"], "info"),
            (&["-log-level=8"], "error"),
            (&["-log-level", "-10"], "trace"),
        ] {
            let mut a = vec!["--mcp-gateway-public-host=h"];
            a.extend_from_slice(args);
            assert_eq!(parse(&a).expect("cli").log_level, level, "{args:?}");
        }
        assert!(parse(&["--mcp-gateway-public-host=h", "--log-level=loud"]).is_err());
    }

    #[test]
    fn the_seeds_other_flags_are_accepted_and_the_ones_asking_for_something_named() {
        let c = parse(&[
            "--mcp-gateway-public-host=h",
            "--enable-url-elicitation",
            "--enable-pprof=false",
            "--mcp-broker-write-timeout=0",
            "--invalid-tool-policy=RejectServer",
            "--discovery-tools-enabled=false",
            "--discovery-tool-threshold",
            "0",
            "--enforce-capability-filtering",
            "--mcp-router-key=old-controller-key",
            "--session-signing-key",
            "k-k-k-k-k-k-k-k-k-k-k-k-k-k-k-k-k",
        ])
        .expect("the seed's flags parse");
        assert_eq!(c.seed.ignored(), ["--mcp-router-key"]);
        assert_eq!(
            c.invalid_tool_policy,
            crate::tool_validation::InvalidToolPolicy::RejectServer
        );
        assert_eq!(c.seed.enable_url_elicitation, Some(true));
        assert!(c.enforce_capability_filtering);
        assert_eq!(
            c.signing_key.as_deref(),
            Some("k-k-k-k-k-k-k-k-k-k-k-k-k-k-k-k-k")
        );
        let defaults = parse(&["--mcp-gateway-public-host=h"]).expect("cli");
        assert!(defaults.seed.ignored().is_empty());
        assert!(!defaults.enforce_capability_filtering);
        assert!(defaults.discovery_tools_enabled);
        assert_eq!(defaults.discovery_tool_threshold, 0);
        let c = parse(&[
            "--mcp-gateway-public-host=h",
            "--discovery-tools-enabled=false",
            "--discovery-tool-threshold=40",
            "--enforce-capability-filtering=false",
        ])
        .expect("cli");
        assert!(c.seed.ignored().is_empty());
        assert!(!c.discovery_tools_enabled);
        assert_eq!(c.discovery_tool_threshold, 40);
        assert!(!c.enforce_capability_filtering);
    }

    #[test]
    fn strict_compat_turns_a_seed_flag_not_acted_on_into_an_error_naming_it() {
        for (args, refused) in [
            (&["--strict-compat"][..], None),
            (&["--strict-compat", "--enable-pprof=false"][..], None),
            (&["--enable-pprof"][..], None),
            (
                &["--strict-compat", "--enable-pprof"][..],
                Some("--enable-pprof"),
            ),
            (
                &["--strict-compat=true", "--enable-url-elicitation"][..],
                None,
            ),
            (&["--strict-compat", "--enable-a2a"][..], None),
            (
                &["--strict-compat", "--mcp-router-key=k"][..],
                Some("--mcp-router-key"),
            ),
            (&["--strict-compat=false", "--mcp-router-key=k"][..], None),
        ] {
            let mut a = vec!["--mcp-gateway-public-host=h"];
            a.extend_from_slice(args);
            let c = parse(&a).expect("cli");
            let e = c.strict_compat_error();
            match refused {
                None => assert_eq!(e, None, "{args:?}"),
                Some(flag) => assert!(e.is_some_and(|e| e.contains(flag)), "{args:?}"),
            }
        }
    }

    #[test]
    fn every_seed_flag_parses_and_has_a_row_in_the_readme_compatibility_table() {
        // The seed broker-router's flags (cmd/mcp-broker-router/main.go after v0.9.0), plus
        // the two it removed, each with a value it accepts.
        const SEED_FLAGS: &[(&str, &str)] = &[
            ("log-level", "0"),
            ("log-format", "json"),
            ("mcp-gateway-public-host", "h"),
            ("mcp-gateway-private-host", "gw:8080"),
            ("mcp-gateway-config", "/c.yaml"),
            ("session-length", "60"),
            ("enable-url-elicitation", "false"),
            ("enable-a2a", "false"),
            ("gateway-signing-key", "k-k-k-k-k-k-k-k-k-k-k-k-k-k-k-k-k"),
            ("session-signing-key", "k-k-k-k-k-k-k-k-k-k-k-k-k-k-k-k-k"),
            ("cache-connection-string", "redis://r:6379/0"),
            ("mcp-broker-public-address", "0.0.0.0:8080"),
            ("mcp-broker-write-timeout", "0"),
            ("mcp-check-interval", "60"),
            ("enforce-capability-filtering", "false"),
            ("invalid-tool-policy", "FilterOut"),
            ("discovery-tools-enabled", "false"),
            ("discovery-tool-threshold", "0"),
            ("enable-pprof", "false"),
            ("metrics-addr", "0.0.0.0:9090"),
            ("mcp-router-address", "0.0.0.0:50051"),
            ("max-request-body-size", "5242880"),
            ("mcp-router-key", "k"),
            ("gateway-ca-cert", "/ca.pem"),
        ];
        let readme = include_str!("../README.md");
        let table = &readme[readme
            .find("## Compatibility with the seed gateway")
            .expect("the README has the compatibility section")..];
        for (flag, value) in SEED_FLAGS {
            let arg = format!("-{flag}={value}");
            let c = if *flag == "mcp-gateway-public-host" {
                parse(&[&arg])
            } else {
                parse(&["--mcp-gateway-public-host=h", &arg])
            };
            assert!(c.is_ok(), "{arg}: {c:?}");
            assert!(
                table.contains(&format!("`--{flag}`")),
                "--{flag} has no row"
            );
        }
        for key in [
            "name",
            "url",
            "hostname",
            "prefix",
            "auth",
            "credential",
            "caCert",
            "state",
            "tokenURLElicitation",
            "userSpecificList",
            "category",
            "hint",
            "tags",
            "guardrailsConfigIDs",
            "globalGuardrails",
            "gatewayCACertPEM",
        ] {
            assert!(table.contains(&format!("{key}`")), "{key} has no row");
        }
    }

    #[test]
    fn the_flag_the_seed_removed_still_works_with_a_deprecation_warning() {
        let c = parse(&["--mcp-gateway-public-host=h", "--gateway-ca-cert=/ca.pem"]).expect("cli");
        assert_eq!(
            c.gateway_ca_cert.as_deref(),
            Some(std::path::Path::new("/ca.pem"))
        );
        assert!(c.deprecations()[0].contains("--gateway-ca-cert"));
        assert!(parse(&["--mcp-gateway-public-host=h"])
            .expect("cli")
            .deprecations()
            .is_empty());
    }

    #[test]
    fn private_hosts_and_ca_files_are_checked_at_start() {
        let dir = tempfile::tempdir().expect("dir");
        let ca = dir.path().join("ca.pem");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&ca, crate::tls::tests::test_ca_pem()).expect("write");
        std::fs::write(&garbage, "not a certificate").expect("write");
        let (ca, garbage) = (ca.display().to_string(), garbage.display().to_string());
        let missing = dir.path().join("missing.pem").display().to_string();
        let settings = |args: &[String]| {
            let mut a = vec!["--mcp-gateway-public-host=h".to_owned()];
            a.extend_from_slice(args);
            let refs: Vec<&str> = a.iter().map(String::as_str).collect();
            let mut c = parse(&refs).expect("cli");
            c.signing_key = Some("k".repeat(32));
            c.settings_with(Vec::new, |_| None)
        };
        let flag = |f: &str, v: &str| format!("--{f}={v}");
        // Ok(private host's tls, gateway CA read, cache CA read), or Err(part of the message).
        type Want = Result<(Option<bool>, bool, bool), &'static str>;
        let cases: Vec<(Vec<String>, Want)> = vec![
            (vec![], Ok((None, false, false))),
            (
                vec![flag("mcp-gateway-private-host", "")],
                Ok((None, false, false)),
            ),
            (
                vec![flag("mcp-gateway-private-host", "gw:8080")],
                Ok((Some(false), false, false)),
            ),
            (
                vec![
                    flag("mcp-gateway-private-host", "https://gw:8443"),
                    flag("gateway-ca-cert", &ca),
                ],
                Ok((Some(true), true, false)),
            ),
            (
                vec![flag("mcp-gateway-private-host", "ftp://gw")],
                Err("--mcp-gateway-private-host \"ftp://gw\": the scheme"),
            ),
            (
                vec![flag("mcp-gateway-private-host", "https://gw/mcp")],
                Err("only a host and port"),
            ),
            (
                vec![flag("gateway-ca-cert", &missing)],
                Err("--gateway-ca-cert cannot read"),
            ),
            (
                vec![flag("gateway-ca-cert", &garbage)],
                Err("garbage.pem: must be a PEM bundle with at least one certificate"),
            ),
            (
                vec![
                    flag("cache-connection-string", "rediss://r:6380/0"),
                    flag("cache-ca-cert", &ca),
                ],
                Ok((None, false, true)),
            ),
            (
                vec![flag("cache-connection-string", "rediss://r:6380/0")],
                Ok((None, false, false)),
            ),
            (
                vec![
                    flag("cache-connection-string", "rediss://r:6380/0"),
                    flag("cache-ca-cert", &garbage),
                ],
                Err("--cache-ca-cert"),
            ),
            (
                vec![
                    flag("cache-connection-string", "redis://r:6379/0"),
                    flag("cache-ca-cert", &ca),
                ],
                Err("rediss://"),
            ),
            (
                vec![flag("cache-connection-string", "rediss://r/#insecure")],
                Err("#insecure"),
            ),
            (
                vec![flag("cache-ca-cert", &ca)],
                Err("CACHE_CONNECTION_STRING is not"),
            ),
        ];
        for (args, want) in cases {
            match (settings(&args), want) {
                (Ok(s), Ok((tls, gw, cache))) => {
                    assert_eq!(s.private_host.map(|p| p.tls), tls, "{args:?}");
                    assert_eq!(s.gateway_ca_cert.is_some(), gw, "{args:?}");
                    assert_eq!(s.cache_ca_cert.is_some(), cache, "{args:?}");
                }
                (Err(e), Err(text)) => assert!(e.to_string().contains(text), "{args:?}: {e}"),
                (got, want) => panic!("{args:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn signing_keys() {
        let mut c = parse(&["--mcp-gateway-public-host=h"]).expect("cli");
        c.signing_key = None;
        assert_eq!(
            c.settings(|| vec![7; 32]).expect("random").signing_key,
            vec![7; 32]
        );
        c.signing_key = Some("short".into());
        assert!(c.settings(Vec::new).is_err());
        c.signing_key = Some("k".repeat(32));
        assert_eq!(
            c.settings(Vec::new).expect("key").signing_key,
            b"k".repeat(32)
        );
        // The seed's other variable, when GATEWAY_SIGNING_KEY is unset.
        let seed_env = |k: &str| (k == "JWT_SESSION_SIGNING_KEY").then(|| "j".repeat(32));
        assert_eq!(
            c.settings_with(Vec::new, seed_env)
                .expect("key")
                .signing_key,
            b"k".repeat(32),
            "GATEWAY_SIGNING_KEY wins"
        );
        c.signing_key = None;
        assert_eq!(
            c.settings_with(Vec::new, seed_env)
                .expect("key")
                .signing_key,
            b"j".repeat(32)
        );
        assert_eq!(
            c.settings_with(|| vec![7; 32], |_| None)
                .expect("random")
                .signing_key,
            vec![7; 32]
        );
        // Set but empty: refused, not replaced by a random key.
        assert!(c
            .settings_with(Vec::new, |k| (k == "JWT_SESSION_SIGNING_KEY")
                .then(String::new))
            .is_err());
        c.signing_key = Some(String::new());
        assert!(c.settings_with(Vec::new, seed_env).is_err());
    }
}
