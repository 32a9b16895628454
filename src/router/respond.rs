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

use super::decide::{HeaderFacts, Reject, UpstreamCall};
use crate::config::Server;
use crate::jsonrpc;
use crate::mcp::{self, header, CallTarget};

/// Header changes for one phase.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Mutation {
    pub set: Vec<(&'static str, Vec<u8>)>,
    pub remove: Vec<String>,
}

impl Mutation {
    pub fn set(&mut self, name: &'static str, value: impl Into<Vec<u8>>) -> &mut Self {
        self.set.push((name, value.into()));
        self
    }

    fn into_proto(self) -> Option<HeaderMutation> {
        if self.set.is_empty() && self.remove.is_empty() {
            return None;
        }
        // A header set here must not also be removed (a client's spoofed copy is overwritten by
        // the set anyway): filtered before the set is consumed, with no list of its names.
        let set = &self.set;
        let mut remove = self.remove;
        remove.retain(|r| !set.iter().any(|(k, _)| k == r));
        Some(HeaderMutation {
            set_headers: self
                .set
                .into_iter()
                .map(|(k, v)| HeaderValueOption {
                    header: Some(HeaderValue {
                        key: k.to_owned(),
                        // Envoy reads raw_value; a value given only in `value` arrives empty.
                        raw_value: v,
                        ..Default::default()
                    }),
                    append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
                    ..Default::default()
                })
                .collect(),
            remove_headers: remove,
        })
    }
}

/// The upstream session a routed call goes over.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamSession<'a> {
    /// Its `Mcp-Session-Id`; `None` for a stateless upstream.
    pub id: Option<&'a str>,
    pub protocol_version: &'a str,
}

/// The header changes and the new body (when it changes) of a call routed to an upstream:
/// routing headers, the upstream's session, the name the upstream knows spliced into the body
/// (every other byte kept), and the 2026-07-28 envelope for a stateless upstream. Pure.
pub fn upstream_call(
    call: &UpstreamCall,
    upstream: UpstreamSession<'_>,
    facts: &HeaderFacts,
    replaced_authorization: Option<String>,
    body: &[u8],
) -> (Mutation, Option<Vec<u8>>) {
    let server = &call.server;
    // Room for every header a call may set (up to 12), so the list is allocated once.
    let mut m = Mutation {
        set: Vec::with_capacity(12),
        remove: Vec::new(),
    };
    m.set(header::AUTHORITY, server.hostname.as_bytes())
        .set(header::PATH, server.path.as_bytes())
        .set(header::X_MCP_METHOD, call.method)
        .set(header::X_MCP_SERVERNAME, server.name.as_bytes())
        .set(
            header::PROTOCOL_VERSION,
            upstream.protocol_version.as_bytes(),
        );
    m.set(call.kind.policy_header(), call.upstream_name.as_bytes());
    if let Some(a) = replaced_authorization {
        m.set(header::AUTHORIZATION, a.into_bytes());
    }
    if let Some(h) = &call.hints {
        m.set(header::X_MCP_ANNOTATION_HINTS, h.as_bytes());
    }
    match upstream.id {
        Some(id) => {
            m.set(header::SESSION_ID, id.as_bytes());
        }
        None => m.remove.push(header::SESSION_ID.to_owned()),
    }
    // Meant for the broker (which tools a caller sees): an upstream has no use for them, and the
    // verdict lists everything the caller may use elsewhere.
    if facts.virtual_server.is_some() {
        m.remove.push(header::X_MCP_VIRTUALSERVER.to_owned());
    }
    if facts.authorized {
        m.remove.push(header::X_MCP_AUTHORIZED.to_owned());
    }
    // A browser's Origin was checked here (DNS-rebinding protection, CORS); the upstream is
    // called by the gateway, and its own origin list would refuse the browser's.
    if facts.origin.is_some() {
        m.remove.push(header::ORIGIN.to_owned());
    }
    if facts.mcp_name.is_some() {
        // The header names what the upstream knows, like the body.
        m.set(header::MCP_NAME, call.upstream_name.as_bytes());
    }
    let mut new_body = call
        .rename
        .clone()
        .map(|span| jsonrpc::splice_string(body, span, &call.upstream_name));
    let client_modern = mcp::is_modern(facts.protocol_version.as_deref());
    if mcp::is_modern(Some(upstream.protocol_version)) && !client_modern {
        // A session-era client on a stateless upstream: the request must say who asks and name
        // its method and target in headers.
        m.set(header::MCP_METHOD, call.method)
            .set(header::MCP_NAME, call.upstream_name.as_bytes());
        let envelope = crate::upstream::client::modern_envelope().to_string();
        let members = &envelope[1..envelope.len() - 1];
        if let Some(b) = super::bridge::add_envelope(new_body.as_deref().unwrap_or(body), members) {
            new_body = Some(b);
        }
    }
    if let Some(b) = &new_body {
        m.set(header::CONTENT_LENGTH, b.len().to_string());
    }
    (m, new_body)
}

/// The header changes of an upstream initialize sent back through the gateway (it carries a
/// valid hairpin key): to the server, as `initialize`, with the policy headers of the call that
/// triggered it, set as that call gets them (`x-mcp-servername`, and `x-mcp-toolname`,
/// `x-mcp-promptname` or `x-mcp-resourceuri` with the name the upstream knows), so that gateway
/// policies judge the initialize as they judge the call. `x-mcp-method` stays `initialize`, as
/// on the seed's hairpin. Pure; the values come from the signed key, never from the client.
pub fn hairpin_initialize(m: &mut Mutation, server: &Server, call: Option<&CallTarget>) {
    m.set(header::AUTHORITY, server.hostname.as_bytes())
        .set(header::PATH, server.path.as_bytes())
        .set(header::X_MCP_METHOD, mcp::method::INITIALIZE)
        .set(header::X_MCP_SERVERNAME, server.name.as_bytes());
    if let Some(c) = call {
        m.set(c.kind.policy_header(), c.name.as_bytes());
        // The call's other policy headers, so that a policy judges the initialize like the call.
        if let Some(h) = &c.hints {
            m.set(header::X_MCP_ANNOTATION_HINTS, h.as_bytes());
        }
        if let Some(sub) = &c.verified_sub {
            m.set(header::X_MCP_VERIFIED_SUB, sub.as_bytes());
        }
    }
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
        header_mutation: m.into_proto(),
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

/// The router answers the client itself: the one mapping from a [`Reject`] to the wire.
pub fn reject(r: &Reject) -> ProcessingResponse {
    immediate(r.status, r.body(), &[])
}

/// An immediate JSON response with extra headers.
pub fn immediate(
    status: u16,
    body: Vec<u8>,
    extra: &[(&'static str, Vec<u8>)],
) -> ProcessingResponse {
    let mut m = Mutation::default();
    m.set(header::CONTENT_TYPE, "application/json");
    for (k, v) in extra {
        m.set(k, v.clone());
    }
    immediate_with(status, body, m)
}

/// The answer to a CORS preflight: 204, no body, the preflight's headers (the ones every CORS
/// response gets are added by [`add_cors`]).
pub fn preflight(headers: Vec<(&'static str, Vec<u8>)>) -> ProcessingResponse {
    immediate_with(
        204,
        Vec::new(),
        Mutation {
            set: headers,
            remove: Vec::new(),
        },
    )
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
                headers: m.into_proto(),
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
    fn a_hairpin_initialize_carries_the_policy_headers_of_its_call() {
        use crate::mcp::CallKind;
        let config = crate::config::Config::from_yaml(
            "servers: [{name: ns/kube, url: 'http://kube:9999/k/mcp', hostname: kube.local, prefix: kube_}]",
        )
        .expect("config");
        let server = config.server("ns/kube").expect("server");
        let call = |method: &str, kind, name: &str| CallTarget {
            method: method.into(),
            kind,
            name: name.into(),
            hints: None,
            verified_sub: None,
        };
        let routing: &[(&str, &str)] = &[
            (":authority", "kube.local"),
            (":path", "/k/mcp"),
            ("x-mcp-method", "initialize"),
            ("x-mcp-servername", "ns/kube"),
        ];
        type Case<'a> = (Option<CallTarget>, Option<(&'a str, &'a str)>);
        let cases: [Case; 6] = [
            (None, None),
            (
                Some(call("tools/call", CallKind::Tool, "pods_list")),
                Some(("x-mcp-toolname", "pods_list")),
            ),
            (
                Some(call("prompts/get", CallKind::Prompt, "greet")),
                Some(("x-mcp-promptname", "greet")),
            ),
            (
                Some(call("resources/read", CallKind::Resource, "k8s://pods/a")),
                Some(("x-mcp-resourceuri", "k8s://pods/a")),
            ),
            (
                Some(call("resources/subscribe", CallKind::Resource, "k8s://x")),
                Some(("x-mcp-resourceuri", "k8s://x")),
            ),
            (
                Some(call("completion/complete", CallKind::Prompt, "greet")),
                Some(("x-mcp-promptname", "greet")),
            ),
        ];
        for (call, named) in cases {
            // A client's spoofed copies were marked for removal on entry.
            let mut m = Mutation {
                remove: vec!["x-mcp-toolname".into(), "x-mcp-promptname".into()],
                ..Default::default()
            };
            hairpin_initialize(&mut m, server, call.as_ref());
            let mut want: Vec<(&str, &str)> = routing.to_vec();
            want.extend(named);
            let got: Vec<(&str, &str)> = m
                .set
                .iter()
                .map(|(k, v)| (*k, std::str::from_utf8(v).expect("utf8")))
                .collect();
            assert_eq!(got, want, "{call:?}");
            // What is set is not removed again; the other spoofed copy still is.
            let proto = m.into_proto().expect("mutation");
            let removed: Vec<&str> = proto.remove_headers.iter().map(String::as_str).collect();
            let set_here = named.map(|(k, _)| k);
            let want_removed: Vec<&str> = ["x-mcp-toolname", "x-mcp-promptname"]
                .into_iter()
                .filter(|h| Some(*h) != set_here)
                .collect();
            assert_eq!(removed, want_removed, "{call:?}");
        }
        // The call's hints and verified subject go with it.
        let mut full = call("tools/call", CallKind::Tool, "pods_list");
        full.hints = Some("readOnly=true".into());
        full.verified_sub = Some("alice-sub".into());
        let mut m = Mutation::default();
        hairpin_initialize(&mut m, server, Some(&full));
        let got: Vec<(&str, &str)> = m
            .set
            .iter()
            .map(|(k, v)| (*k, std::str::from_utf8(v).expect("utf8")))
            .collect();
        let mut want = routing.to_vec();
        want.extend([
            ("x-mcp-toolname", "pods_list"),
            ("x-mcp-annotation-hints", "readOnly=true"),
            ("x-mcp-verified-sub", "alice-sub"),
        ]);
        assert_eq!(got, want);
    }

    #[test]
    fn rejects_are_json_rpc_with_status() {
        let r = reject(&Reject::new(413, -32004, "too large", None));
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
    fn headers_of(m: &HeaderMutation) -> (Vec<(String, String, bool)>, Vec<String>) {
        let set = m
            .set_headers
            .iter()
            .map(|o| {
                let h = o.header.as_ref().expect("header");
                // What ext_proc does: a non-zero append_action decides, else `append` (false).
                #[allow(deprecated)]
                let appends = match o.append_action {
                    0 => o.append.as_ref().is_some_and(|b| b.value),
                    a => a == HeaderAppendAction::AppendIfExistsOrAdd as i32,
                };
                (
                    h.key.clone(),
                    String::from_utf8(h.raw_value.clone()).expect("utf8"),
                    appends,
                )
            })
            .collect();
        (set, m.remove_headers.clone())
    }

    #[test]
    fn cors_headers_go_on_what_reaches_the_client() {
        let origin = b"http://localhost:6274";
        let (overwrite, append) = (false, true);
        let cors = |before: Vec<(String, String, bool)>| {
            let mut want = before;
            want.extend([
                (
                    "access-control-allow-origin".to_owned(),
                    "http://localhost:6274".to_owned(),
                    overwrite,
                ),
                (
                    "access-control-expose-headers".to_owned(),
                    "Mcp-Session-Id, Mcp-Protocol-Version, WWW-Authenticate".to_owned(),
                    overwrite,
                ),
                ("vary".to_owned(), "Origin".to_owned(), append),
            ]);
            (want, vec!["access-control-allow-credentials".to_owned()])
        };

        // The router's own error.
        let mut r = reject(&Reject::new(404, -32001, "unknown session", None));
        add_cors(&mut r, origin);
        let Some(processing_response::Response::ImmediateResponse(i)) = &r.response else {
            panic!("immediate")
        };
        assert_eq!(
            headers_of(i.headers.as_ref().expect("headers")),
            cors(vec![(
                "content-type".into(),
                "application/json".into(),
                overwrite
            )])
        );

        // A preflight: 204, no body, its own headers and the common ones.
        let mut r = preflight(vec![("access-control-max-age", b"7200".to_vec())]);
        add_cors(&mut r, origin);
        let Some(processing_response::Response::ImmediateResponse(i)) = &r.response else {
            panic!("immediate")
        };
        assert_eq!(i.status.as_ref().map(|s| s.code), Some(204));
        assert!(i.body.is_empty());
        assert_eq!(
            headers_of(i.headers.as_ref().expect("headers")),
            cors(vec![(
                "access-control-max-age".into(),
                "7200".into(),
                overwrite
            )])
        );

        // The broker's answer (nothing else to change) and an upstream's SSE answer.
        let mut session = Mutation::default();
        session.set(header::SESSION_ID, "gw-session");
        for (mut r, before) in [
            (pass(Phase::ResponseHeaders), vec![]),
            (
                response_headers_then_stream_body(session),
                vec![("mcp-session-id".into(), "gw-session".into(), overwrite)],
            ),
        ] {
            add_cors(&mut r, origin);
            let Some(processing_response::Response::ResponseHeaders(h)) = &r.response else {
                panic!("response headers")
            };
            let m = h.response.as_ref().and_then(|c| c.header_mutation.as_ref());
            assert_eq!(headers_of(m.expect("mutation")), cors(before));
        }

        // Request phases and body chunks are not the client's answer: left alone.
        for mut r in [
            request_headers(Mutation::default(), true, Skip::Nothing),
            request_body(Mutation::default(), None, false),
            response_body(Some(b"x".to_vec())),
        ] {
            let before = r.clone();
            add_cors(&mut r, origin);
            assert_eq!(r, before);
        }
    }

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
