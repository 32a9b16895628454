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

    /// Host (and port) of the gateway inside the cluster. When set, upstream initializes are
    /// sent back through the gateway so that its policies apply to them, judged by the
    /// `x-mcp-toolname` (or prompt name, or resource URI) of the call that needs the session.
    #[arg(long = "mcp-gateway-private-host")]
    pub private_host: Option<String>,

    /// Lifetime of a gateway session, in minutes.
    #[arg(long = "session-length", default_value_t = 1440, value_parser = clap::value_parser!(u64).range(1..))]
    pub session_length: u64,

    /// Largest request body accepted, in bytes.
    #[arg(long = "max-request-body-size", default_value_t = 5_242_880, value_parser = clap::value_parser!(u64).range(1..=1_073_741_824))]
    pub max_request_body_size: u64,

    /// Interval between discovery refreshes of each upstream, in seconds.
    #[arg(long = "mcp-check-interval", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub check_interval: u64,

    /// Log level (error, warn, info, debug, trace) or a tracing filter directive.
    #[arg(long = "log-level", default_value = "info")]
    pub log_level: String,

    /// Log format.
    #[arg(long = "log-format", value_enum, default_value = "txt")]
    pub log_format: LogFormat,

    /// Budget of an upstream initialize, in milliseconds; keep it below Envoy's ext_proc
    /// message_timeout (10 s in the shipped EnvoyFilter).
    #[arg(long = "upstream-init-timeout-ms", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub init_timeout_ms: u64,

    /// Idle time after which an upstream session is closed, in seconds.
    #[arg(long = "upstream-session-idle", default_value_t = 1800, value_parser = clap::value_parser!(u64).range(1..))]
    pub upstream_idle: u64,

    /// On SIGTERM, seconds to keep serving while reporting not ready (`/readyz` 503, gRPC health
    /// NOT_SERVING), so that load balancers stop sending before the listeners close.
    #[arg(long = "shutdown-delay", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=300))]
    pub shutdown_delay: u64,

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

    /// HS256 key for gateway session ids (at least 32 bytes). Unset: a random key, so sessions
    /// neither survive a restart nor span replicas.
    #[arg(
        long = "gateway-signing-key",
        env = "GATEWAY_SIGNING_KEY",
        hide_env_values = true
    )]
    pub signing_key: Option<String>,

    /// Redis URL (`redis://host:6379/0`) where upstream sessions are shared between replicas.
    /// Empty: sessions live in this process only.
    #[arg(
        long = "cache-connection-string",
        env = "CACHE_CONNECTION_STRING",
        hide_env_values = true
    )]
    pub cache_connection_string: Option<String>,

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
    #[arg(long = "otlp-endpoint", env = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

/// Why the flags cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("GATEWAY_SIGNING_KEY must be at least 32 bytes")]
    ShortKey,
    #[error("TRUSTED_HEADER_PUBLIC_KEY is not an EC public key in PEM form")]
    TrustedHeaderKey,
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
        } else if a.len() > 2 && a.starts_with('-') && !a.starts_with("--") {
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
        let signing_key = match &self.signing_key {
            Some(k) if k.len() < 32 => return Err(CliError::ShortKey),
            Some(k) => k.as_bytes().to_vec(),
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
        Ok(crate::Settings {
            trusted_header_key,
            metadata_env: crate::auth::metadata::MetadataEnv::from_env(),
            router_address: self.router_address,
            broker_address: self.broker_address,
            metrics_address: self.metrics_address,
            config_path: self.config.clone(),
            public_host: self.public_host.clone(),
            private_host: self.private_host.clone().filter(|h| !h.is_empty()),
            allowed_origins: self.allowed_origins.clone(),
            session_length: Duration::from_secs(self.session_length * 60),
            max_body: usize::try_from(self.max_request_body_size).unwrap_or(usize::MAX),
            check_interval: Duration::from_secs(self.check_interval),
            init_timeout: Duration::from_millis(self.init_timeout_ms),
            upstream_idle: Duration::from_secs(self.upstream_idle),
            shutdown_delay: Duration::from_secs(self.shutdown_delay),
            max_upstream_sessions: self.max_upstream_sessions,
            max_concurrent_initializes: usize::try_from(self.max_concurrent_initializes)
                .unwrap_or(usize::MAX),
            config_poll: Duration::from_secs(1),
            signing_key,
            cache_connection_string: self
                .cache_connection_string
                .clone()
                .filter(|s| !s.is_empty()),
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
    }
}
