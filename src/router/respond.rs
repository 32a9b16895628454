//! The only place that builds the router's answers to Envoy ([`Answer`]; `answer_wire` writes
//! them as Envoy's `ProcessingResponse`).

use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::{
    processing_mode::{BodySendMode, HeaderSendMode},
    ProcessingMode,
};

pub use super::answer::{Answer, Phase};
use super::answer::{Common, Message};
pub use super::mutation::Mutation;
use crate::mcp::header;
use crate::reply::Reject;

/// What to skip for the rest of the request, sent with a headers response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Keep the configured modes.
    Nothing,
    /// The body and the response headers are not needed.
    BodyAndResponse,
    /// The body is not needed, the response headers are (to add CORS headers).
    Body,
}

fn continue_with(
    phase: Phase,
    mutation: Mutation,
    body: Option<Vec<u8>>,
    clear_route_cache: bool,
) -> Answer {
    Answer::new(Message::Continue(
        phase,
        Common {
            mutation,
            body,
            clear_route_cache,
        },
    ))
}

/// The modes for the rest of the request: the request body and trailers not sent, the response
/// headers as given, the response body as given.
fn modes(response_headers: HeaderSendMode, response_body: BodySendMode) -> ProcessingMode {
    ProcessingMode {
        request_header_mode: HeaderSendMode::Default as i32,
        response_header_mode: response_headers as i32,
        request_body_mode: BodySendMode::None as i32,
        response_body_mode: response_body as i32,
        request_trailer_mode: HeaderSendMode::Skip as i32,
        response_trailer_mode: HeaderSendMode::Skip as i32,
    }
}

/// Continue after request headers, with header changes.
pub fn request_headers(m: Mutation, clear_route_cache: bool, skip: Skip) -> Answer {
    let mut a = continue_with(Phase::RequestHeaders, m, None, clear_route_cache);
    a.mode_override = match skip {
        Skip::Nothing => None,
        Skip::BodyAndResponse => Some(modes(HeaderSendMode::Skip, BodySendMode::None)),
        Skip::Body => Some(modes(HeaderSendMode::Send, BodySendMode::None)),
    };
    a
}

/// Continue after the request body, with header changes and an optional new body.
pub fn request_body(m: Mutation, body: Option<Vec<u8>>, clear_route_cache: bool) -> Answer {
    continue_with(Phase::RequestBody, m, body, clear_route_cache)
}

/// Continue after response headers, with header changes.
pub fn response_headers(m: Mutation) -> Answer {
    continue_with(Phase::ResponseHeaders, m, None, false)
}

/// Continue after response headers, with header changes, and stream the response body through
/// the router from now on (an upstream's SSE stream, whose ids it tags).
pub fn response_headers_then_stream_body(m: Mutation) -> Answer {
    response_headers_then_body(m, BodySendMode::Streamed)
}

/// Continue after response headers, with header changes, and have Envoy send the whole
/// response body next (to rewrite it).
pub fn response_headers_then_buffer_body(m: Mutation) -> Answer {
    response_headers_then_body(m, BodySendMode::Buffered)
}

fn response_headers_then_body(m: Mutation, body: BodySendMode) -> Answer {
    let mut a = response_headers(m);
    a.mode_override = Some(modes(HeaderSendMode::Default, body));
    a
}

/// Continue after a buffered response body, replacing it (and its length) when given.
pub fn buffered_response_body(body: Option<Vec<u8>>) -> Answer {
    let mut m = Mutation::default();
    if let Some(b) = &body {
        m.set(header::CONTENT_LENGTH, b.len().to_string());
    }
    continue_with(Phase::ResponseBody, m, body, false)
}

/// Continue after a streamed response body chunk, replacing it with `body` when given.
pub fn response_body(body: Option<Vec<u8>>) -> Answer {
    continue_with(Phase::ResponseBody, Mutation::default(), body, false)
}

/// An acknowledgement that changes nothing, for a phase the router has no business in.
pub fn pass(phase: Phase) -> Answer {
    continue_with(phase, Mutation::default(), None, false)
}

/// The router answers the client itself: a [`Reject`] as an Envoy immediate response (its
/// status, `Content-Type: application/json`, its extra headers, its body).
pub fn reject(r: Reject) -> Answer {
    let body = r.body();
    let mut m = Mutation::with_capacity(1 + r.headers.len());
    m.set(header::CONTENT_TYPE, "application/json");
    for (k, v) in r.headers {
        m.set(k, v);
    }
    immediate_with(r.status, body, m)
}

/// An immediate JSON response (`Content-Type: application/json`) that is not a refusal.
pub fn immediate(status: u16, body: Vec<u8>) -> Answer {
    let mut m = Mutation::with_capacity(1);
    m.set(header::CONTENT_TYPE, "application/json");
    immediate_with(status, body, m)
}

/// The answer to a CORS preflight: 204, no body, the preflight's headers (the ones every CORS
/// response gets are added by [`add_cors`]).
pub fn preflight(headers: Vec<(&'static str, Vec<u8>)>) -> Answer {
    let mut m = Mutation::with_capacity(headers.len());
    for (name, value) in headers {
        m.set(name, value);
    }
    immediate_with(204, Vec::new(), m)
}

/// Adds the CORS headers of a request from `origin` (an allowed one) to the router's answer
/// when it reaches the client: an immediate response (an error, a preflight) or the response
/// headers of the broker's or an upstream's answer. Other answers are left alone.
pub fn add_cors(answer: &mut Answer, origin: &[u8]) {
    let mutation = match &mut answer.message {
        Message::Immediate { headers, .. } => headers,
        Message::Continue(Phase::ResponseHeaders, c) => &mut c.mutation,
        Message::Continue(..) => return,
    };
    let cors = super::cors::response_headers(origin);
    for (k, v) in cors.set {
        mutation.set(k, v);
    }
    mutation.append(cors.append.0, cors.append.1);
    mutation.remove(cors.remove);
}

fn immediate_with(status: u16, body: Vec<u8>, headers: Mutation) -> Answer {
    Answer::new(Message::Immediate {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
    use envoy_types::pb::envoy::service::ext_proc::v3::{body_mutation, processing_response};

    #[test]
    fn headers_go_in_raw_value_and_overwrite() {
        let mut m = Mutation::default();
        m.set(":authority", "kube.local");
        m.remove("x-mcp-toolname");
        let r = request_body(m, Some(b"{}".to_vec()), true).to_prost();
        let Some(processing_response::Response::RequestBody(b)) = r.response else {
            panic!("body response")
        };
        let c = b.response.expect("common");
        assert!(c.clear_route_cache);
        let hm = c.header_mutation.expect("mutation");
        let h = hm.set_headers[0].header.as_ref().expect("header");
        assert_eq!(
            (h.key.as_str(), h.raw_value.as_slice(), h.value.as_str()),
            (":authority", &b"kube.local"[..], "")
        );
        assert_eq!(
            hm.set_headers[0].append_action,
            HeaderAppendAction::OverwriteIfExistsOrAdd as i32
        );
        assert_eq!(hm.remove_headers, vec!["x-mcp-toolname".to_owned()]);
        assert!(
            matches!(c.body_mutation.and_then(|b| b.mutation), Some(body_mutation::Mutation::Body(b)) if b == b"{}")
        );
    }

    #[test]
    fn rejects_are_json_rpc_with_status() {
        let r = reject(Reject::new(413, -32004, "too large", None)).to_prost();
        let Some(processing_response::Response::ImmediateResponse(i)) = r.response else {
            panic!("immediate")
        };
        assert_eq!(i.status.map(|s| s.code), Some(413));
        assert_eq!(
            String::from_utf8(i.body).expect("utf8"),
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32004,"message":"too large"}}"#
        );
        let h = &i.headers.expect("headers").set_headers[0];
        assert_eq!(
            h.header
                .as_ref()
                .map(|h| (h.key.as_str(), h.raw_value.as_slice())),
            Some(("content-type", &b"application/json"[..]))
        );
    }

    #[test]
    fn sse_bodies_are_streamed_and_chunks_replaced() {
        let r = response_headers_then_stream_body(Mutation::default()).to_prost();
        assert!(matches!(
            r.response,
            Some(processing_response::Response::ResponseHeaders(_))
        ));
        let m = r.mode_override.expect("override");
        assert_eq!(m.response_body_mode, BodySendMode::Streamed as i32);
        let Some(processing_response::Response::ResponseBody(b)) =
            response_body(Some(b"x".to_vec())).to_prost().response
        else {
            panic!("body response")
        };
        assert!(
            matches!(b.response.and_then(|c| c.body_mutation).and_then(|m| m.mutation), Some(body_mutation::Mutation::Body(b)) if b == b"x")
        );
    }

    /// (name, value, whether Envoy's ext_proc appends it) of every header set, and the removed
    /// names.
    #[test]
    fn skipping_overrides_the_modes() {
        let r = request_headers(Mutation::default(), true, Skip::BodyAndResponse);
        let m = r.mode_override.expect("override");
        assert_eq!(m.request_body_mode, BodySendMode::None as i32);
        assert_eq!(m.response_header_mode, HeaderSendMode::Skip as i32);
        // With CORS the broker's response headers are needed, its request body still is not.
        let m = request_headers(Mutation::default(), true, Skip::Body)
            .mode_override
            .expect("override");
        assert_eq!(m.request_body_mode, BodySendMode::None as i32);
        assert_eq!(m.response_header_mode, HeaderSendMode::Send as i32);
        assert_eq!(m.response_body_mode, BodySendMode::None as i32);
        assert!(request_headers(Mutation::default(), true, Skip::Nothing)
            .mode_override
            .is_none());
    }
}
