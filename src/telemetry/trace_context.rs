//! W3C trace context: joining a caller's trace, and the `traceparent` the gateway sends on.
//!
//! With OTLP export off (no OpenTelemetry layer installed) every span context here is empty:
//! nothing is adopted, and the gateway forwards the caller's `traceparent` or makes a fresh one,
//! as it always did.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The remote span context a `traceparent` (and `tracestate`) header names, if it is valid.
pub fn remote_context(traceparent: Option<&str>, tracestate: Option<&str>) -> Option<Context> {
    let traceparent = traceparent?;
    let mut carrier = HashMap::with_capacity(2);
    carrier.insert("traceparent".to_owned(), traceparent.to_owned());
    if let Some(state) = tracestate {
        carrier.insert("tracestate".to_owned(), state.to_owned());
    }
    let cx = TraceContextPropagator::new().extract(&carrier);
    cx.span().span_context().is_valid().then_some(cx)
}

/// Makes `span` a child of the caller's span named by `traceparent`, when OTLP export is on
/// and the header is valid. Must run before anything starts the span's OpenTelemetry context
/// (a child span, or [`current_traceparent`]); later, it is a no-op.
pub fn adopt_remote_parent(
    span: &tracing::Span,
    traceparent: Option<&str>,
    tracestate: Option<&str>,
) {
    if span.is_disabled() {
        return;
    }
    if let Some(cx) = remote_context(traceparent, tracestate) {
        // Fails only without the OpenTelemetry layer (export off) or once started: keep going.
        let _ = span.set_parent(cx);
    }
}

/// `traceparent` of the current span when OTLP export is on (so that an upstream's spans join
/// this trace as its children), else `None`.
pub fn current_traceparent() -> Option<String> {
    let span = tracing::Span::current();
    if span.is_disabled() {
        return None;
    }
    format_traceparent(&span.context())
}

/// The `traceparent` header for `cx`, if it holds a valid span context.
pub fn format_traceparent(cx: &Context) -> Option<String> {
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::with_capacity(2);
    TraceContextPropagator::new().inject_context(cx, &mut carrier);
    carrier.remove("traceparent")
}

/// The `traceparent` for a call the gateway makes on a client's behalf: the current span's when
/// exporting, else the client's own.
pub fn outgoing_traceparent(client: Option<&str>) -> Option<String> {
    current_traceparent().or_else(|| client.map(str::to_owned))
}

/// A fresh W3C `traceparent` (version 00, random trace and span ids, sampled) for calls the
/// gateway makes on its own, such as discovery, when no span context is exported.
pub fn new_traceparent() -> String {
    let trace: u128 = rand::random::<u128>().max(1);
    let span: u64 = rand::random::<u64>().max(1);
    format!("00-{trace:032x}-{span:016x}-01")
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

    #[test]
    fn remote_contexts_are_read_from_valid_headers_only() {
        const T: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
        const S: &str = "00f067aa0ba902b7";
        // (header, Some((trace id, span id, sampled)) when it names a remote parent)
        type Case<'a> = (Option<&'a str>, Option<(&'a str, &'a str, bool)>);
        let cases: &[Case] = &[
            (Some(&format!("00-{T}-{S}-01")), Some((T, S, true))),
            (Some(&format!("00-{T}-{S}-00")), Some((T, S, false))),
            // A later version with more fields is read as far as version 00 goes.
            (Some(&format!("01-{T}-{S}-01-extra")), Some((T, S, true))),
            (None, None),
            (Some(""), None),
            (Some("garbage"), None),
            (Some(&format!("00-{}-{S}-01", "0".repeat(32))), None),
            (Some(&format!("00-{T}-{}-01", "0".repeat(16))), None),
            (Some(&format!("ff-{T}-{S}-01")), None),
            (Some(&format!("00-{T}-{S}")), None),
            (Some(&format!("00-{}-{S}-01", T.to_uppercase())), None),
        ];
        for (header, want) in cases {
            let got = remote_context(*header, None).map(|cx| {
                let sc = cx.span().span_context().clone();
                (
                    sc.trace_id().to_string(),
                    sc.span_id().to_string(),
                    sc.is_sampled(),
                    sc.is_remote(),
                )
            });
            let want = want.map(|(t, s, sampled)| (t.to_owned(), s.to_owned(), sampled, true));
            assert_eq!(got, want, "{header:?}");
        }
    }

    #[test]
    fn a_remote_context_formats_back_to_its_header() {
        let h = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let cx = remote_context(Some(h), Some("vendor=x")).expect("valid");
        assert_eq!(format_traceparent(&cx).as_deref(), Some(h));
        assert_eq!(format_traceparent(&Context::new()), None);
    }

    #[test]
    fn without_an_exporting_layer_the_clients_traceparent_goes_on() {
        // No OpenTelemetry layer in this test process: no span context to send.
        let span = tracing::info_span!("t");
        let _e = span.enter();
        assert_eq!(current_traceparent(), None);
        assert_eq!(
            outgoing_traceparent(Some("00-a-b-01")).as_deref(),
            Some("00-a-b-01")
        );
        assert_eq!(outgoing_traceparent(None), None);
        adopt_remote_parent(
            &span,
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            None,
        );
    }
}
