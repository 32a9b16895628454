//! An upstream's answer read: its transport errors named (with a hint after a certificate
//! error), its body read up to a bound, the JSON-RPC response picked out of an event stream, and
//! the result or error of that response.

use futures_util::StreamExt;
use serde_json::Value;

use super::super::sse;
use super::UpstreamError;

/// A response larger than this is refused (bounded memory per upstream call).
const MAX_RESPONSE: usize = 32 * 1024 * 1024;

/// Said after a certificate error on a connection to an upstream...
pub(super) const UNTRUSTED_HINT: &str =
    " (a private CA must be in the server's caCert, in gatewayCACertPEM or in --gateway-ca-cert)";
/// ... and instead, on one to the gateway's TLS listener (the hairpin).
pub(super) const HAIRPIN_UNTRUSTED_HINT: &str =
    " (the gateway listener's CA must be in --gateway-ca-cert or in gatewayCACertPEM)";

pub(super) fn transport_error(e: reqwest::Error) -> UpstreamError {
    if e.is_timeout() {
        UpstreamError::Timeout
    } else {
        // The URL is config, not a secret; reqwest's message names it and the cause.
        let mut msg = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            source = s.source();
        }
        if msg.contains("invalid peer certificate") {
            msg.push_str(UNTRUSTED_HINT);
        }
        UpstreamError::Unreachable(msg)
    }
}

pub(super) async fn read_bounded(resp: reqwest::Response) -> Result<Vec<u8>, UpstreamError> {
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(transport_error)?;
        if out.len() + chunk.len() > MAX_RESPONSE {
            return Err(UpstreamError::Protocol("response too large".into()));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Reads events until the JSON-RPC response with `id` arrives; other messages are skipped.
pub(super) async fn read_sse_response(
    resp: reqwest::Response,
    id: u64,
) -> Result<Value, UpstreamError> {
    let mut parser = sse::Parser::default();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(transport_error)?;
        let events = parser
            .push(&chunk)
            .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
        for ev in events {
            let Ok(msg) = serde_json::from_str::<Value>(&ev.data) else {
                continue;
            };
            if msg.get("id").and_then(Value::as_u64) == Some(id)
                && (msg.get("result").is_some() || msg.get("error").is_some())
            {
                return Ok(msg);
            }
        }
    }
    Err(UpstreamError::Protocol(
        "event stream ended before the response".into(),
    ))
}

pub(super) fn into_result(message: Value, id: u64) -> Result<Value, UpstreamError> {
    if message.get("id").and_then(Value::as_u64) != Some(id) {
        return Err(UpstreamError::Protocol("response id does not match".into()));
    }
    if let Some(err) = message.get("error") {
        return Err(UpstreamError::Rpc {
            code: err.get("code").and_then(Value::as_i64).unwrap_or(0),
            message: err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .chars()
                .take(300)
                .collect(),
        });
    }
    message
        .get("result")
        .cloned()
        .ok_or_else(|| UpstreamError::Protocol("response has no result".into()))
}
