//! The only place that builds Envoy ext_proc messages.

use envoy_types::pb::envoy::config::core::v3::{
    header_value_option::HeaderAppendAction, HeaderValue, HeaderValueOption,
};
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::{
    processing_mode::{BodySendMode, HeaderSendMode},
    ProcessingMode,
};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    body_mutation, common_response::ResponseStatus, processing_response, BodyMutation,
    BodyResponse, CommonResponse, HeaderMutation, HeadersResponse, ImmediateResponse,
    ProcessingResponse,
};
use envoy_types::pb::google::protobuf::BoolValue;

pub use super::mutation::Mutation;
use crate::mcp::header;
use crate::reply::Reject;

/// A [`Mutation`] as Envoy's header mutation; `None` when it changes nothing.
pub(super) fn header_mutation(m: Mutation) -> Option<HeaderMutation> {
    let (set, mut remove) = m.into_lists();
    if set.is_empty() && remove.is_empty() {
        return None;
    }
    // A header set here must not also be removed (a client's spoofed copy is overwritten by the
    // set anyway).
    remove.retain(|r| {
        !set.iter()
            .any(|o| o.header.as_ref().is_some_and(|h| h.key == *r))
    });
    Some(HeaderMutation {
        set_headers: set,
        remove_headers: remove,
    })
}

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

fn common(m: Mutation, body: Option<Vec<u8>>, clear_route_cache: bool) -> CommonResponse {
    CommonResponse {
        status: ResponseStatus::Continue as i32,
        header_mutation: header_mutation(m),
        body_mutation: body.map(|b| BodyMutation {
            mutation: Some(body_mutation::Mutation::Body(b)),
        }),
        trailers: None,
        clear_route_cache,
    }
}

/// Continue after request headers, with header changes.
pub fn request_headers(m: Mutation, clear_route_cache: bool, skip: Skip) -> ProcessingResponse {
    ProcessingResponse {
        response: Some(processing_response::Response::RequestHeaders(
            HeadersResponse {
                response: Some(common(m, None, clear_route_cache)),
            },
        )),
        mode_override: match skip {
            Skip::Nothing => None,
            Skip::BodyAndResponse | Skip::Body => Some(ProcessingMode {
                request_header_mode: HeaderSendMode::Default as i32,
                response_header_mode: if skip == Skip::Body {
                    HeaderSendMode::Send
                } else {
                    HeaderSendMode::Skip
                } as i32,
                request_body_mode: BodySendMode::None as i32,
                response_body_mode: BodySendMode::None as i32,
                request_trailer_mode: HeaderSendMode::Skip as i32,
                response_trailer_mode: HeaderSendMode::Skip as i32,
            }),
        },
        ..Default::default()
    }
}

/// Continue after the request body, with header changes and an optional new body.
pub fn request_body(
    m: Mutation,
    body: Option<Vec<u8>>,
    clear_route_cache: bool,
) -> ProcessingResponse {
    ProcessingResponse {
        response: Some(processing_response::Response::RequestBody(BodyResponse {
            response: Some(common(m, body, clear_route_cache)),
        })),
        ..Default::default()
    }
}

/// Continue after response headers, with header changes.
pub fn response_headers(m: Mutation) -> ProcessingResponse {
    ProcessingResponse {
        response: Some(processing_response::Response::ResponseHeaders(
            HeadersResponse {
                response: Some(common(m, None, false)),
            },
        )),
        ..Default::default()
    }
}

/// Continue after response headers, with header changes, and stream the response body through
/// the router from now on (an upstream's SSE stream, whose ids it tags).
pub fn response_headers_then_stream_body(m: Mutation) -> ProcessingResponse {
    response_headers_then_body(m, BodySendMode::Streamed)
}

/// Continue after response headers, with header changes, and have Envoy send the whole
/// response body next (to rewrite it).
pub fn response_headers_then_buffer_body(m: Mutation) -> ProcessingResponse {
    response_headers_then_body(m, BodySendMode::Buffered)
}

fn response_headers_then_body(m: Mutation, body: BodySendMode) -> ProcessingResponse {
    ProcessingResponse {
        mode_override: Some(ProcessingMode {
            request_header_mode: HeaderSendMode::Default as i32,
            response_header_mode: HeaderSendMode::Default as i32,
            request_body_mode: BodySendMode::None as i32,
            response_body_mode: body as i32,
            request_trailer_mode: HeaderSendMode::Skip as i32,
            response_trailer_mode: HeaderSendMode::Skip as i32,
        }),
        ..response_headers(m)
    }
}

/// Continue after a buffered response body, replacing it (and its length) when given.
pub fn buffered_response_body(body: Option<Vec<u8>>) -> ProcessingResponse {
    let mut m = Mutation::default();
    if let Some(b) = &body {
        m.set(header::CONTENT_LENGTH, b.len().to_string());
    }
    ProcessingResponse {
        response: Some(processing_response::Response::ResponseBody(BodyResponse {
            response: Some(common(m, body, false)),
        })),
        ..Default::default()
    }
}

/// Continue after a streamed response body chunk, replacing it with `body` when given.
pub fn response_body(body: Option<Vec<u8>>) -> ProcessingResponse {
    ProcessingResponse {
        response: Some(processing_response::Response::ResponseBody(BodyResponse {
            response: Some(common(Mutation::default(), body, false)),
        })),
        ..Default::default()
    }
}

/// An acknowledgement that changes nothing, for a phase the router has no business in.
pub fn pass(phase: Phase) -> ProcessingResponse {
    let r = Some(common(Mutation::default(), None, false));
    let response = match phase {
        Phase::RequestHeaders => {
            processing_response::Response::RequestHeaders(HeadersResponse { response: r })
        }
        Phase::RequestBody => {
            processing_response::Response::RequestBody(BodyResponse { response: r })
        }
        Phase::ResponseHeaders => {
            processing_response::Response::ResponseHeaders(HeadersResponse { response: r })
        }
        Phase::ResponseBody => {
            processing_response::Response::ResponseBody(BodyResponse { response: r })
        }
    };
    ProcessingResponse {
        response: Some(response),
        ..Default::default()
    }
}

/// The ext_proc phases the router may be asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    RequestHeaders,
    RequestBody,
    ResponseHeaders,
    ResponseBody,
}

/// The router answers the client itself: a [`Reject`] as an Envoy immediate response (its
/// status, `Content-Type: application/json`, its extra headers, its body).
pub fn reject(r: Reject) -> ProcessingResponse {
    let body = r.body();
    let mut m = Mutation::default();
    m.set(header::CONTENT_TYPE, "application/json");
    for (k, v) in r.headers {
        m.set(k, v);
    }
    immediate_with(r.status, body, m)
}

/// An immediate JSON response (`Content-Type: application/json`) that is not a refusal.
pub fn immediate(status: u16, body: Vec<u8>) -> ProcessingResponse {
    let mut m = Mutation::default();
    m.set(header::CONTENT_TYPE, "application/json");
    immediate_with(status, body, m)
}

/// The answer to a CORS preflight: 204, no body, the preflight's headers (the ones every CORS
/// response gets are added by [`add_cors`]).
pub fn preflight(headers: Vec<(&'static str, Vec<u8>)>) -> ProcessingResponse {
    let mut m = Mutation::with_capacity(headers.len());
    for (name, value) in headers {
        m.set(name, value);
    }
    immediate_with(204, Vec::new(), m)
}

/// Adds the CORS headers of a request from `origin` (an allowed one) to the router's answer
/// when it reaches the client: an immediate response (an error, a preflight) or the response
/// headers of the broker's or an upstream's answer. Other answers are left alone.
pub fn add_cors(response: &mut ProcessingResponse, origin: &[u8]) {
    let mutation = match &mut response.response {
        Some(processing_response::Response::ImmediateResponse(i)) => {
            i.headers.get_or_insert_with(HeaderMutation::default)
        }
        Some(processing_response::Response::ResponseHeaders(HeadersResponse {
            response: Some(c),
        })) => c
            .header_mutation
            .get_or_insert_with(HeaderMutation::default),
        _ => return,
    };
    let cors = super::cors::response_headers(origin);
    let header = |(k, v): (&str, &[u8])| {
        Some(HeaderValue {
            key: k.to_owned(),
            raw_value: v.to_vec(),
            ..Default::default()
        })
    };
    for h in cors.set {
        mutation.set_headers.push(HeaderValueOption {
            header: header(h),
            append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
            ..Default::default()
        });
    }
    // Envoy's ext_proc cannot tell APPEND_IF_EXISTS_OR_ADD (0, the default) from an unset
    // `append_action`, and then reads the deprecated `append`, whose default there is false
    // (overwrite): appending takes `append: true`.
    #[allow(deprecated)]
    mutation.set_headers.push(HeaderValueOption {
        header: header(cors.append),
        append: Some(BoolValue { value: true }),
        append_action: HeaderAppendAction::AppendIfExistsOrAdd as i32,
        ..Default::default()
    });
    mutation.remove_headers.push(cors.remove.to_owned());
}

fn immediate_with(status: u16, body: Vec<u8>, m: Mutation) -> ProcessingResponse {
    ProcessingResponse {
        response: Some(processing_response::Response::ImmediateResponse(
            ImmediateResponse {
                status: Some(HttpStatus {
                    code: i32::from(status),
                }),
                headers: header_mutation(m),
                body,
                grpc_status: None,
                details: String::new(),
            },
        )),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_go_in_raw_value_and_overwrite() {
        let mut m = Mutation::default();
        m.set(":authority", "kube.local");
        m.remove.push("x-mcp-toolname".into());
        let r = request_body(m, Some(b"{}".to_vec()), true);
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
        let r = reject(Reject::new(413, -32004, "too large", None));
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
        let r = response_headers_then_stream_body(Mutation::default());
        assert!(matches!(
            r.response,
            Some(processing_response::Response::ResponseHeaders(_))
        ));
        let m = r.mode_override.expect("override");
        assert_eq!(m.response_body_mode, BodySendMode::Streamed as i32);
        let Some(processing_response::Response::ResponseBody(b)) =
            response_body(Some(b"x".to_vec())).response
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
