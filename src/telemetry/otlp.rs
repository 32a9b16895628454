//! Optional OTLP trace export (gRPC): off unless an endpoint is given.
//!
//! Spans end into a bounded queue that a batch task on the tokio runtime sends to the collector;
//! a full queue drops spans, so a slow or unreachable collector never holds up a request. Failed
//! exports are logged at most once per [`WARN_INTERVAL`], with how many failed meanwhile.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    span_processor_with_async_runtime::BatchSpanProcessor, SdkTracerProvider, SpanData,
    SpanExporter,
};
use opentelemetry_sdk::Resource;

/// `service.name` when neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES` names one.
pub const DEFAULT_SERVICE_NAME: &str = "mcp-router";
/// Least time between two warnings about failed exports.
pub const WARN_INTERVAL: Duration = Duration::from_secs(60);

/// Where and how to export, resolved from the flag and the OpenTelemetry variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpSettings {
    /// gRPC endpoint (`http://collector:4317`).
    pub endpoint: String,
    /// Said once at start: a variable that asks for something this exporter does not do.
    pub notice: Option<String>,
}

/// Why the export settings cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OtlpError {
    #[error("the OTLP endpoint must be an http:// or https:// URL (gRPC, e.g. http://otel-collector:4317)")]
    BadEndpoint(String),
    #[error("cannot build the OTLP exporter: {0}")]
    Build(String),
}

/// The export settings, or `None` when export is off: no endpoint in `--otlp-endpoint`
/// (whose env fallback is `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) nor in
/// `OTEL_EXPORTER_OTLP_ENDPOINT`, or `OTEL_SDK_DISABLED=true`. `env` reads a variable.
pub fn resolve(
    flag: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<OtlpSettings>, OtlpError> {
    let set = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    if set(env("OTEL_SDK_DISABLED")).is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    let Some(endpoint) = set(flag.map(str::to_owned))
        .or_else(|| set(env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")))
        .or_else(|| set(env("OTEL_EXPORTER_OTLP_ENDPOINT")))
    else {
        return Ok(None);
    };
    let ok = url::Url::parse(&endpoint)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
    if !ok {
        return Err(OtlpError::BadEndpoint(endpoint));
    }
    let protocol = set(env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"))
        .or_else(|| set(env("OTEL_EXPORTER_OTLP_PROTOCOL")));
    let notice = protocol
        .filter(|p| p != "grpc")
        .map(|p| format!("OTLP protocol {p:?} is not supported: traces are exported with gRPC"));
    Ok(Some(OtlpSettings { endpoint, notice }))
}

/// `endpoint` as it may be logged: an http(s) URL without user info or query, else nothing of
/// it (it could hold anything).
pub fn shown(endpoint: &str) -> String {
    match url::Url::parse(endpoint) {
        Ok(mut u) if matches!(u.scheme(), "http" | "https") => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.to_string()
        }
        _ => "(not an http:// or https:// URL)".to_owned(),
    }
}

/// A running exporter: flush it with [`Exporting::shutdown`] before the process exits.
pub struct Exporting {
    provider: SdkTracerProvider,
}

impl fmt::Debug for Exporting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Exporting")
    }
}

impl Exporting {
    /// Starts the exporter and its batch task. Must run inside a tokio runtime, which must
    /// outlive it. The collector is connected lazily: an unreachable one is not an error here.
    pub fn start(
        settings: &OtlpSettings,
    ) -> Result<(Exporting, opentelemetry_sdk::trace::Tracer), OtlpError> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(settings.endpoint.clone())
            .build()
            .map_err(|e| OtlpError::Build(e.to_string()))?;
        let processor = BatchSpanProcessor::builder(
            Warned::new(exporter, shown(&settings.endpoint)),
            opentelemetry_sdk::runtime::Tokio,
        )
        .build();
        let provider = SdkTracerProvider::builder()
            .with_resource(resource())
            .with_span_processor(processor)
            .build();
        let tracer = provider.tracer("mcp-router");
        Ok((Exporting { provider }, tracer))
    }

    /// Exports what is still queued, waiting at most `budget` (the collector may be gone).
    pub async fn shutdown(self, budget: Duration) {
        let provider = self.provider;
        // The processor's shutdown blocks until its task has exported: not on a runtime thread.
        let flush = tokio::task::spawn_blocking(move || provider.shutdown());
        match tokio::time::timeout(budget, flush).await {
            Ok(Ok(Ok(()))) => tracing::debug!("OTLP spans flushed"),
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "OTLP flush on shutdown failed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "OTLP flush on shutdown failed"),
            Err(_) => tracing::warn!(
                budget_s = budget.as_secs(),
                "OTLP flush on shutdown timed out"
            ),
        }
    }
}

/// The SDK's resource (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`), named `mcp-router`
/// unless those name the service.
fn resource() -> Resource {
    let detected = Resource::builder().build();
    let unnamed = detected
        .get(&opentelemetry::Key::from_static_str("service.name"))
        .is_none_or(|v| v.as_str().starts_with("unknown_service"));
    if unnamed {
        Resource::builder()
            .with_service_name(DEFAULT_SERVICE_NAME)
            .build()
    } else {
        detected
    }
}

/// Counts failed exports between two warnings.
#[derive(Debug, Default)]
struct WarnGate {
    last_warned: Option<Instant>,
    failed_batches: u64,
    lost_spans: u64,
}

/// What a warning about failed exports reports.
#[derive(Debug, PartialEq, Eq)]
struct Failures {
    batches: u64,
    spans: u64,
}

impl WarnGate {
    /// A batch of `spans` failed at `now`: the failures to warn about, if one is due.
    fn failed(&mut self, now: Instant, spans: usize) -> Option<Failures> {
        self.failed_batches += 1;
        self.lost_spans += spans as u64;
        let due = self
            .last_warned
            .is_none_or(|t| now.saturating_duration_since(t) >= WARN_INTERVAL);
        if !due {
            return None;
        }
        self.last_warned = Some(now);
        let f = Failures {
            batches: self.failed_batches,
            spans: self.lost_spans,
        };
        self.failed_batches = 0;
        self.lost_spans = 0;
        Some(f)
    }

    /// A batch went through: whether to say the collector is reachable again.
    fn succeeded(&mut self) -> bool {
        let recovered = self.last_warned.is_some();
        *self = WarnGate::default();
        recovered
    }
}

/// The OTLP exporter, with failed exports logged through a [`WarnGate`].
struct Warned<E> {
    inner: E,
    endpoint: String,
    gate: Mutex<WarnGate>,
}

impl<E> Warned<E> {
    fn new(inner: E, endpoint: String) -> Self {
        Warned {
            inner,
            endpoint,
            gate: Mutex::new(WarnGate::default()),
        }
    }
}

impl<E> fmt::Debug for Warned<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Warned")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl<E: SpanExporter> SpanExporter for Warned<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let result = self.inner.export(batch).await;
        let Ok(mut gate) = self.gate.lock() else {
            return result;
        };
        match &result {
            Ok(()) => {
                if gate.succeeded() {
                    tracing::info!(endpoint = %self.endpoint, "OTLP export works again");
                }
            }
            Err(e) => {
                if let Some(f) = gate.failed(Instant::now(), spans) {
                    tracing::warn!(
                        endpoint = %self.endpoint,
                        error = %e,
                        failed_batches = f.batches,
                        lost_spans = f.spans,
                        "OTLP trace export failed; spans are dropped until the collector answers"
                    );
                }
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn export_is_on_only_with_an_endpoint_and_the_flag_wins() {
        let on = |e: &str| {
            Ok(Some(OtlpSettings {
                endpoint: e.into(),
                notice: None,
            }))
        };
        type Vars = &'static [(&'static str, &'static str)];
        type Case = (
            Option<&'static str>,
            Vars,
            Result<Option<OtlpSettings>, OtlpError>,
        );
        let cases: &[Case] = &[
            (None, &[], Ok(None)),
            (Some(""), &[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")], Ok(None)),
            (Some("http://flag:4317"), &[], on("http://flag:4317")),
            (
                None,
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://any:4317")],
                on("http://any:4317"),
            ),
            (
                None,
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://any:4317"),
                    ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://traces:4317"),
                ],
                on("https://traces:4317"),
            ),
            (
                Some("http://flag:4317"),
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://any:4317")],
                on("http://flag:4317"),
            ),
            (
                Some("http://flag:4317"),
                &[("OTEL_SDK_DISABLED", "TRUE")],
                Ok(None),
            ),
            (
                Some("http://flag:4317"),
                &[("OTEL_SDK_DISABLED", "false")],
                on("http://flag:4317"),
            ),
            (
                Some("collector:4317"),
                &[],
                Err(OtlpError::BadEndpoint("collector:4317".into())),
            ),
            (
                Some("grpc://collector:4317"),
                &[],
                Err(OtlpError::BadEndpoint("grpc://collector:4317".into())),
            ),
            (
                None,
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://any:4317"),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ],
                on("http://any:4317"),
            ),
        ];
        for (flag, vars, want) in cases {
            assert_eq!(&resolve(*flag, env(vars)), want, "{flag:?} {vars:?}");
        }
    }

    #[test]
    fn endpoints_are_shown_without_credentials() {
        for (e, want) in [
            ("http://c:4317", "http://c:4317/"),
            ("https://user:secret@c:4317/x?token=t", "https://c:4317/x"),
            ("nope", "(not an http:// or https:// URL)"),
            ("user:secret@c:4317", "(not an http:// or https:// URL)"),
        ] {
            assert_eq!(shown(e), want);
        }
    }

    #[test]
    fn another_protocol_is_noticed_not_refused() {
        let s = resolve(
            Some("http://c:4318"),
            env(&[("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")]),
        )
        .expect("valid")
        .expect("on");
        assert!(s.notice.expect("notice").contains("http/protobuf"));
    }

    #[test]
    fn failed_exports_warn_once_per_interval_with_a_count() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut g = WarnGate::default();
        // (seconds after t0, Some(spans) = a failed batch / None = a good one, expected outcome)
        let steps: &[(u64, Option<usize>, Option<Failures>, bool)] = &[
            (
                0,
                Some(3),
                Some(Failures {
                    batches: 1,
                    spans: 3,
                }),
                false,
            ),
            (5, Some(2), None, false),
            (59, Some(1), None, false),
            (
                60,
                Some(4),
                Some(Failures {
                    batches: 3,
                    spans: 7,
                }),
                false,
            ),
            (61, None, None, true),
            (62, None, None, false),
            (
                63,
                Some(1),
                Some(Failures {
                    batches: 1,
                    spans: 1,
                }),
                false,
            ),
        ];
        for (at, batch, warn, recovered) in steps {
            match batch {
                Some(n) => assert_eq!(&g.failed(t0 + s(*at), *n), warn, "at {at}s"),
                None => assert_eq!(g.succeeded(), *recovered, "at {at}s"),
            }
        }
    }

    #[test]
    fn the_service_is_named_mcp_router_by_default() {
        // OTEL_SERVICE_NAME is not set for unit tests.
        if std::env::var_os("OTEL_SERVICE_NAME").is_some()
            || std::env::var_os("OTEL_RESOURCE_ATTRIBUTES").is_some()
        {
            return;
        }
        let r = resource();
        assert_eq!(
            r.get(&opentelemetry::Key::from_static_str("service.name"))
                .map(|v| v.as_str().into_owned()),
            Some(DEFAULT_SERVICE_NAME.to_owned())
        );
    }
}
