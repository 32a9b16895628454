//! What the router answers Envoy, in the router's own form: which phase it continues (with its
//! header changes, new body and route-cache flag) or the immediate response Envoy sends the
//! client instead, a mode override, and the gateway session Envoy is to put on the response.
//!
//! `respond` builds these, `answer_wire` writes them as the `ProcessingResponse` Envoy reads
//! (the bytes prost writes for the same message). Kept apart from Envoy's generated types so
//! that a call's headers are not a `String` and a `Vec` each, built, encoded and dropped.

use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::ProcessingMode;

use super::mutation::Mutation;

/// One answer to one ext_proc message.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub(super) message: Message,
    pub(super) mode_override: Option<ProcessingMode>,
    /// The gateway session id Envoy is to put on the response when the router ends the stream
    /// with this answer (`response_phase`): sent as the dynamic metadata
    /// `{"mcp-router": {"mcp-session-id": …}}`.
    pub(super) session_back: Option<String>,
}

/// The ext_proc phases the router may be asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    RequestHeaders,
    RequestBody,
    ResponseHeaders,
    ResponseBody,
}

/// What the answer says.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Message {
    /// Go on with the request or response (Envoy's `HeadersResponse` or `BodyResponse`).
    Continue(Phase, Common),
    /// Envoy answers the client itself, with this status, these headers and this body.
    Immediate {
        status: u16,
        headers: Mutation,
        body: Vec<u8>,
    },
}

/// The changes of a phase answer (Envoy's `CommonResponse`, status `CONTINUE`).
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct Common {
    pub(super) mutation: Mutation,
    /// The new body, when it changes (`Some(empty)` empties it).
    pub(super) body: Option<Vec<u8>>,
    pub(super) clear_route_cache: bool,
}

impl Answer {
    pub(super) fn new(message: Message) -> Answer {
        Answer {
            message,
            mode_override: None,
            session_back: None,
        }
    }
}

/// The answers as Envoy's own types, built field by field: the reference the wire encoding is
/// held to, and what tests read.
#[cfg(test)]
pub(crate) mod prost_form {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::{
        header_value_option::HeaderAppendAction, HeaderValue, HeaderValueOption,
    };
    use envoy_types::pb::envoy::r#type::v3::HttpStatus;
    use envoy_types::pb::envoy::service::ext_proc::v3::{
        body_mutation, common_response::ResponseStatus, processing_response, BodyMutation,
        BodyResponse, CommonResponse, HeaderMutation, HeadersResponse, ImmediateResponse,
        ProcessingResponse,
    };
    use envoy_types::pb::google::protobuf::BoolValue;

    impl Answer {
        /// This answer as Envoy's `ProcessingResponse`.
        pub(crate) fn to_prost(&self) -> ProcessingResponse {
            let response = match &self.message {
                Message::Continue(phase, c) => {
                    let r = Some(common(c));
                    match phase {
                        Phase::RequestHeaders => {
                            processing_response::Response::RequestHeaders(HeadersResponse {
                                response: r,
                            })
                        }
                        Phase::ResponseHeaders => {
                            processing_response::Response::ResponseHeaders(HeadersResponse {
                                response: r,
                            })
                        }
                        Phase::RequestBody => {
                            processing_response::Response::RequestBody(BodyResponse { response: r })
                        }
                        Phase::ResponseBody => {
                            processing_response::Response::ResponseBody(BodyResponse {
                                response: r,
                            })
                        }
                    }
                }
                Message::Immediate {
                    status,
                    headers,
                    body,
                } => processing_response::Response::ImmediateResponse(ImmediateResponse {
                    status: Some(HttpStatus {
                        code: i32::from(*status),
                    }),
                    headers: header_mutation(headers),
                    body: body.clone(),
                    grpc_status: None,
                    details: String::new(),
                }),
            };
            ProcessingResponse {
                response: Some(response),
                mode_override: self.mode_override,
                dynamic_metadata: self
                    .session_back
                    .as_deref()
                    .map(crate::router::response_phase::session_metadata),
                ..Default::default()
            }
        }
    }

    fn common(c: &Common) -> CommonResponse {
        CommonResponse {
            status: ResponseStatus::Continue as i32,
            header_mutation: header_mutation(&c.mutation),
            body_mutation: c.body.clone().map(|b| BodyMutation {
                mutation: Some(body_mutation::Mutation::Body(b)),
            }),
            trailers: None,
            clear_route_cache: c.clear_route_cache,
        }
    }

    /// A [`Mutation`] as Envoy's header mutation; `None` when it changes nothing.
    fn header_mutation(m: &Mutation) -> Option<HeaderMutation> {
        if m.is_empty() {
            return None;
        }
        let set_headers = m
            .sets()
            .map(|h| {
                let header = Some(HeaderValue {
                    key: h.name.to_owned(),
                    raw_value: h.value.to_vec(),
                    ..Default::default()
                });
                if h.append {
                    // Envoy's ext_proc cannot tell APPEND_IF_EXISTS_OR_ADD (0, the default)
                    // from an unset `append_action`, and then reads the deprecated `append`.
                    #[allow(deprecated)]
                    HeaderValueOption {
                        header,
                        append: Some(BoolValue { value: true }),
                        append_action: HeaderAppendAction::AppendIfExistsOrAdd as i32,
                        ..Default::default()
                    }
                } else {
                    HeaderValueOption {
                        header,
                        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
                        ..Default::default()
                    }
                }
            })
            .collect();
        Some(HeaderMutation {
            set_headers,
            remove_headers: m.removed().map(str::to_owned).collect(),
        })
    }
}
