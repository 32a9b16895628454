//! Thin entry point: flags and environment → config → logging → run.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use mcp_router::cli::{normalize_args, Cli};
use mcp_router::telemetry::otlp;
use mcp_router::{config, telemetry, Listeners};
use rand::RngCore;

/// sysexits EX_USAGE / EX_CONFIG: bad flags or config.
const EXIT_CONFIG: u8 = 64;
/// Longest wait for queued spans to reach the collector on shutdown.
const FLUSH_BUDGET: std::time::Duration = std::time::Duration::from_secs(5);

fn main() -> ExitCode {
    let cli = match Cli::try_parse_from(normalize_args(std::env::args())) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mcp-router: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let otlp = match otlp::resolve(cli.otlp_endpoint.as_deref(), |k| std::env::var(k).ok()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("mcp-router: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let (exporting, tracer) = match &otlp {
        Some(s) => {
            // The exporter's batch task and connection live on the runtime.
            let _in_runtime = runtime.enter();
            match otlp::Exporting::start(s) {
                Ok((exporting, tracer)) => (Some(exporting), Some(tracer)),
                Err(e) => {
                    eprintln!("mcp-router: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            }
        }
        None => (None, None),
    };
    // Dropped last (below): the log lines still buffered are written then.
    let log_guard = telemetry::init_logging(&cli.log_level, cli.log_format, tracer);
    if let Some(s) = &otlp {
        tracing::info!(endpoint = %otlp::shown(&s.endpoint), "exporting traces with OTLP (gRPC)");
        if let Some(notice) = &s.notice {
            tracing::warn!("{notice}");
        }
    }
    for notice in cli.deprecations() {
        tracing::warn!("{notice}");
    }
    if let Some(e) = cli.strict_compat_error() {
        tracing::error!("{e}");
        eprintln!("mcp-router: {e}");
        return ExitCode::from(EXIT_CONFIG);
    }
    for flag in cli.seed.ignored() {
        tracing::warn!(
            flag,
            "a seed gateway flag that mcp-router accepts but does not act on (see --help)"
        );
    }
    let code = start(&cli, &runtime);
    if let Some(exporting) = exporting {
        runtime.block_on(exporting.shutdown(FLUSH_BUDGET));
        // A flush that timed out is still blocked on a collector: do not wait for it.
        runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    } else {
        drop(runtime);
    }
    // After the runtime, so that what its tasks log while stopping is written too.
    drop(log_guard);
    code
}

/// Settings, config, listeners, then [`mcp_router::run`] until a shutdown signal.
fn start(cli: &Cli, runtime: &tokio::runtime::Runtime) -> ExitCode {
    let settings = match cli.settings(|| {
        tracing::warn!(
            "GATEWAY_SIGNING_KEY is not set: using a random key; sessions will not survive a restart or span replicas"
        );
        let mut k = vec![0u8; 32];
        rand::rng().fill_bytes(&mut k);
        k
    }) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "invalid settings");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let (config, bytes) = match config::reload::load(&settings.config_path, settings.strict_compat)
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("mcp-router: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match &settings.private_host {
        Some(host) => tracing::info!(
            private_host = %format_args!(
                "{}://{}",
                if host.tls { "https" } else { "http" },
                host.authority
            ),
            "upstream initializes go back through the gateway, under its policies"
        ),
        // The seed sent them through the gateway by default; say so, since policies that guard a
        // server's route (the seed's AuthPolicy) then do not see the initialize.
        None => tracing::info!(
            "upstream initializes go straight to each server's url (no --mcp-gateway-private-host): gateway policies on the servers' routes do not see them"
        ),
    }
    tracing::info!(
        path = %settings.config_path.display(),
        servers = config.servers.len(),
        virtual_servers = config.virtual_servers.len(),
        "config loaded"
    );
    runtime.block_on(async move {
        let listeners = match Listeners::bind(&settings).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                eprintln!("mcp-router: {e}");
                return ExitCode::FAILURE;
            }
        };
        match mcp_router::run(settings, config, bytes, listeners, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "stopped with an error");
                ExitCode::FAILURE
            }
        }
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
