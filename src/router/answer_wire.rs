//! The router's answers on the wire: a `ProcessingResponse` encoded in one pass, the same bytes
//! prost writes, without prost's repeated length computations.
//!
//! prost writes a nested message as its length and then its fields, and works each length out by
//! walking the message below: a header set in a headers or body answer sits five levels down
//! (answer, common response, header mutation, header option, header) and was walked once per
//! level, plus once more for the whole message's size check. Here the headers and body of the
//! phase answers are written by hand, each length summed from the fields' own lengths; whatever
//! else an answer carries (an immediate response, metadata, a mode override, trailers) is left to
//! prost, field by field, in prost's order (by tag). A test holds the two encodings byte for byte
//! equal over the answers the router builds.

use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::service::ext_proc::v3::{
    body_mutation, processing_response::Response, BodyMutation, CommonResponse, HeaderMutation,
    ProcessingResponse,
};
use prost::bytes::BufMut;
use prost::encoding::{self, encode_key, encode_varint, encoded_len_varint, key_len, WireType};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;

use super::wire::ProcessingRequest;

/// The ext_proc service's codec: requests decoded as [`super::wire`], answers encoded here.
#[derive(Debug, Default, Clone, Copy)]
pub struct AnswerCodec;

impl Codec for AnswerCodec {
    type Encode = Answer;
    type Decode = ProcessingRequest;
    type Encoder = AnswerEncoder;
    type Decoder = RequestDecoder;

    fn encoder(&mut self) -> AnswerEncoder {
        AnswerEncoder
    }

    fn decoder(&mut self) -> RequestDecoder {
        RequestDecoder
    }
}

/// Encodes answers with [`encode`].
#[derive(Debug, Default, Clone, Copy)]
pub struct AnswerEncoder;

impl Encoder for AnswerEncoder {
    type Item = Answer;
    type Error = Status;

    fn encode(&mut self, item: Answer, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        encode_answer(&item, dst);
        Ok(())
    }
}

/// An answer as the router sends it: Envoy's message, and the gateway session id Envoy is to
/// put on the response when the router ends the stream with this answer (`response_phase`).
/// Sent as the dynamic metadata `{"mcp-router": {"mcp-session-id": …}}`, written here by hand:
/// building that `Struct` (two hash maps, four strings) and encoding and dropping it was about
/// 3k instructions of each such call.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub response: ProcessingResponse,
    pub session_back: Option<String>,
}

impl From<ProcessingResponse> for Answer {
    fn from(response: ProcessingResponse) -> Answer {
        Answer {
            response,
            session_back: None,
        }
    }
}

/// Writes `a` as prost would write its message with the session in `dynamic_metadata` (the
/// router never sets both).
pub fn encode_answer(a: &Answer, buf: &mut impl BufMut) {
    match &a.session_back {
        Some(session) if a.response.dynamic_metadata.is_none() => {
            encode_fields(&a.response, Some(session), buf)
        }
        _ => encode_fields(&a.response, None, buf),
    }
}

/// Decodes Envoy's messages as prost does, by hand ([`super::wire_decode`]), into
/// [`super::wire`]'s types.
#[derive(Debug, Default, Clone, Copy)]
pub struct RequestDecoder;

impl Decoder for RequestDecoder {
    type Item = ProcessingRequest;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<ProcessingRequest>, Status> {
        use prost::bytes::Buf;
        let whole = buf.copy_to_bytes(buf.remaining());
        super::wire_decode::decode(whole)
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }
}

/// Writes `r` as prost would (fields in tag order, defaults left out).
pub fn encode(r: &ProcessingResponse, buf: &mut impl BufMut) {
    encode_fields(r, None, buf);
}

fn encode_fields(r: &ProcessingResponse, session_back: Option<&str>, buf: &mut impl BufMut) {
    // Every field named, so that a field added to the message is a compile error here.
    #[allow(deprecated)]
    let ProcessingResponse {
        dynamic_metadata,
        typed_dynamic_metadata,
        mode_override,
        request_drain,
        request_drain_requests,
        request_drain_responses,
        override_message_timeout,
        server_window_update,
        response,
    } = r;
    // The oneof (tags 1–7 and 11) comes first: prost orders fields by their lowest tag.
    match response {
        Some(Response::RequestHeaders(h)) => phase(1, h.response.as_ref(), buf),
        Some(Response::ResponseHeaders(h)) => phase(2, h.response.as_ref(), buf),
        Some(Response::RequestBody(b)) => phase(3, b.response.as_ref(), buf),
        Some(Response::ResponseBody(b)) => phase(4, b.response.as_ref(), buf),
        Some(other) => other.encode(buf),
        None => {}
    }
    if let Some(m) = dynamic_metadata {
        encoding::message::encode(8, m, buf);
    } else if let Some(session) = session_back {
        put_session_metadata(session, buf);
    }
    if let Some(m) = mode_override {
        encoding::message::encode(9, m, buf);
    }
    if let Some(t) = override_message_timeout {
        encoding::message::encode(10, t, buf);
    }
    if *request_drain {
        encoding::bool::encode(12, request_drain, buf);
    }
    encoding::hash_map::encode(
        encoding::string::encode,
        encoding::string::encoded_len,
        encoding::message::encode,
        encoding::message::encoded_len,
        13,
        typed_dynamic_metadata,
        buf,
    );
    if let Some(w) = server_window_update {
        encoding::message::encode(14, w, buf);
    }
    if *request_drain_requests {
        encoding::bool::encode(15, request_drain_requests, buf);
    }
    if *request_drain_responses {
        encoding::bool::encode(16, request_drain_responses, buf);
    }
}

/// `dynamic_metadata` (field 8, a `google.protobuf.Struct`) holding only
/// `{NAMESPACE: {SESSION_KEY: session}}`, as prost writes it: each map entry a message of the
/// key (1) and the `Value` (2), whose `struct_value` is field 5 and `string_value` field 3.
fn put_session_metadata(session: &str, buf: &mut impl BufMut) {
    use crate::router::response_phase::{NAMESPACE, SESSION_KEY};
    // A oneof member is written even when empty.
    let string_value = field_len(3, session.len());
    let inner_entry = bytes_len(1, SESSION_KEY.as_bytes()) + field_len(2, string_value);
    let inner_struct = field_len(1, inner_entry);
    let struct_value = field_len(5, inner_struct);
    let outer_entry = bytes_len(1, NAMESPACE.as_bytes()) + field_len(2, struct_value);
    open(8, field_len(1, outer_entry), buf);
    open(1, outer_entry, buf);
    put_bytes(1, NAMESPACE.as_bytes(), buf);
    open(2, struct_value, buf);
    open(5, inner_struct, buf);
    open(1, inner_entry, buf);
    put_bytes(1, SESSION_KEY.as_bytes(), buf);
    open(2, string_value, buf);
    open(3, session.len(), buf);
    buf.put_slice(session.as_bytes());
}

/// A length-delimited field's key and length.
fn open(tag: u32, len: usize, buf: &mut impl BufMut) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
}

/// The size of a length-delimited field of `len` bytes.
fn field_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

/// A string or bytes field, left out when empty (proto3).
fn put_bytes(tag: u32, bytes: &[u8], buf: &mut impl BufMut) {
    if !bytes.is_empty() {
        open(tag, bytes.len(), buf);
        buf.put_slice(bytes);
    }
}

fn bytes_len(tag: u32, bytes: &[u8]) -> usize {
    if bytes.is_empty() {
        0
    } else {
        field_len(tag, bytes.len())
    }
}

/// An enum or int32 field, left out when 0 (negative values as prost writes them).
fn put_int(tag: u32, v: i32, buf: &mut impl BufMut) {
    if v != 0 {
        encode_key(tag, WireType::Varint, buf);
        encode_varint(v as u64, buf);
    }
}

fn int_len(tag: u32, v: i32) -> usize {
    if v == 0 {
        0
    } else {
        key_len(tag) + encoded_len_varint(v as u64)
    }
}

/// A bool field, left out when false.
fn put_bool(tag: u32, v: bool, buf: &mut impl BufMut) {
    if v {
        encode_key(tag, WireType::Varint, buf);
        encode_varint(1, buf);
    }
}

fn bool_len(tag: u32, v: bool) -> usize {
    if v {
        key_len(tag) + 1
    } else {
        0
    }
}

/// A headers or body answer (`HeadersResponse` and `BodyResponse` have the same one field).
fn phase(tag: u32, common: Option<&CommonResponse>, buf: &mut impl BufMut) {
    let inner = common.map_or(0, |c| field_len(1, common_len(c)));
    open(tag, inner, buf);
    if let Some(c) = common {
        open(1, common_len(c), buf);
        put_common(c, buf);
    }
}

fn common_len(c: &CommonResponse) -> usize {
    let CommonResponse {
        status,
        header_mutation,
        body_mutation,
        trailers,
        clear_route_cache,
    } = c;
    int_len(1, *status)
        + header_mutation
            .as_ref()
            .map_or(0, |m| field_len(2, mutation_len(m)))
        + body_mutation
            .as_ref()
            .map_or(0, |b| field_len(3, body_len(b)))
        + trailers
            .as_ref()
            .map_or(0, |t| encoding::message::encoded_len(4, t))
        + bool_len(5, *clear_route_cache)
}

fn put_common(c: &CommonResponse, buf: &mut impl BufMut) {
    put_int(1, c.status, buf);
    if let Some(m) = &c.header_mutation {
        open(2, mutation_len(m), buf);
        for o in &m.set_headers {
            open(1, option_len(o), buf);
            put_option(o, buf);
        }
        for r in &m.remove_headers {
            // A repeated string is written even when empty.
            open(2, r.len(), buf);
            buf.put_slice(r.as_bytes());
        }
    }
    if let Some(b) = &c.body_mutation {
        open(3, body_len(b), buf);
        match &b.mutation {
            // A oneof member is written even when empty.
            Some(body_mutation::Mutation::Body(body)) => {
                open(1, body.len(), buf);
                buf.put_slice(body);
            }
            Some(other) => other.encode(buf),
            None => {}
        }
    }
    if let Some(t) = &c.trailers {
        encoding::message::encode(4, t, buf);
    }
    put_bool(5, c.clear_route_cache, buf);
}

fn mutation_len(m: &HeaderMutation) -> usize {
    let HeaderMutation {
        set_headers,
        remove_headers,
    } = m;
    set_headers
        .iter()
        .map(|o| field_len(1, option_len(o)))
        .sum::<usize>()
        + remove_headers
            .iter()
            .map(|r| field_len(2, r.len()))
            .sum::<usize>()
}

fn body_len(b: &BodyMutation) -> usize {
    match &b.mutation {
        Some(body_mutation::Mutation::Body(body)) => field_len(1, body.len()),
        Some(other) => other.encoded_len(),
        None => 0,
    }
}

fn option_len(o: &HeaderValueOption) -> usize {
    #[allow(deprecated)]
    let HeaderValueOption {
        header,
        append,
        append_action,
        keep_empty_value,
    } = o;
    header.as_ref().map_or(0, |h| field_len(1, header_len(h)))
        + append
            .as_ref()
            .map_or(0, |a| encoding::message::encoded_len(2, a))
        + int_len(3, *append_action)
        + bool_len(4, *keep_empty_value)
}

fn put_option(o: &HeaderValueOption, buf: &mut impl BufMut) {
    if let Some(h) = &o.header {
        open(1, header_len(h), buf);
        put_bytes(1, h.key.as_bytes(), buf);
        put_bytes(2, h.value.as_bytes(), buf);
        put_bytes(3, &h.raw_value, buf);
    }
    #[allow(deprecated)]
    if let Some(a) = &o.append {
        encoding::message::encode(2, a, buf);
    }
    put_int(3, o.append_action, buf);
    put_bool(4, o.keep_empty_value, buf);
}

fn header_len(h: &HeaderValue) -> usize {
    let HeaderValue {
        key,
        value,
        raw_value,
    } = h;
    bytes_len(1, key.as_bytes()) + bytes_len(2, value.as_bytes()) + bytes_len(3, raw_value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::mutation::Mutation;
    use crate::router::respond::{self, Skip};
    use envoy_types::pb::envoy::config::core::v3::HeaderMap;
    use envoy_types::pb::envoy::service::ext_proc::v3::{
        common_response::ResponseStatus, BodyResponse, HeadersResponse, ImmediateResponse,
    };
    use envoy_types::pb::google::protobuf::{BoolValue, Duration};
    use prost::Message;

    fn ours(r: &ProcessingResponse) -> Vec<u8> {
        let mut buf = Vec::new();
        encode(r, &mut buf);
        buf
    }

    fn mutation(n: usize, value_len: usize) -> Mutation {
        let names = [
            ":authority",
            ":path",
            "x-mcp-servername",
            "mcp-protocol-version",
            "mcp-session-id",
            "x-mcp-method",
            "x-mcp-toolname",
            "content-length",
        ];
        let mut m = Mutation::default();
        for i in 0..n {
            m.set(names[i % names.len()], vec![b'v'; value_len + i]);
        }
        m.remove.push("x-mcp-virtualserver".into());
        m.remove.push(String::new());
        m
    }

    fn answers() -> Vec<ProcessingResponse> {
        let mut all = vec![
            ProcessingResponse::default(),
            respond::request_headers(Mutation::default(), false, Skip::Nothing),
            respond::request_headers(mutation(2, 3), true, Skip::BodyAndResponse),
            respond::request_headers(mutation(1, 0), true, Skip::Body),
            respond::request_body(mutation(8, 20), Some(vec![b'{'; 1024]), true),
            respond::request_body(mutation(9, 200), Some(vec![b'x'; 1 << 20]), true),
            respond::request_body(Mutation::default(), Some(Vec::new()), false),
            respond::request_body(Mutation::default(), None, false),
            respond::response_headers(mutation(1, 280)),
            respond::response_headers_then_stream_body(mutation(3, 5)),
            respond::response_headers_then_buffer_body(Mutation::default()),
            respond::buffered_response_body(Some(b"{\"result\":{}}".to_vec())),
            respond::response_body(Some(vec![b'e'; 70_000])),
            respond::response_body(None),
            respond::pass(respond::Phase::RequestHeaders),
            respond::pass(respond::Phase::ResponseBody),
            respond::preflight(vec![("access-control-max-age", b"7200".to_vec())]),
        ];
        // Fields the router does not set today, still written as prost writes them.
        let mut odd = respond::request_body(mutation(2, 2), Some(b"b".to_vec()), true);
        if let Some(Response::RequestBody(BodyResponse { response: Some(c) })) = &mut odd.response {
            c.status = ResponseStatus::ContinueAndReplace as i32;
            c.trailers = Some(HeaderMap::default());
            if let Some(m) = &mut c.header_mutation {
                #[allow(deprecated)]
                {
                    m.set_headers[0].append = Some(BoolValue { value: true });
                }
                m.set_headers[0].keep_empty_value = true;
                m.set_headers[1].append_action = -1;
                if let Some(h) = &mut m.set_headers[1].header {
                    h.value = "a value".into();
                    h.key = String::new();
                }
                m.set_headers.push(HeaderValueOption::default());
            }
            c.body_mutation = Some(BodyMutation {
                mutation: Some(body_mutation::Mutation::ClearBody(true)),
            });
        }
        odd.dynamic_metadata = Some(crate::router::response_phase::session_metadata("s-1"));
        odd.override_message_timeout = Some(Duration {
            seconds: 3,
            nanos: 0,
        });
        #[allow(deprecated)]
        {
            odd.request_drain = true;
        }
        odd.request_drain_responses = true;
        all.push(odd);
        all.push(ProcessingResponse {
            response: Some(Response::ResponseHeaders(HeadersResponse {
                response: None,
            })),
            ..Default::default()
        });
        all.push(ProcessingResponse {
            response: Some(Response::ImmediateResponse(ImmediateResponse {
                body: b"{\"error\":{}}".to_vec(),
                ..Default::default()
            })),
            ..Default::default()
        });
        all
    }

    #[test]
    fn the_session_handed_back_is_the_metadata_prost_writes() {
        for (i, r) in answers().iter().enumerate() {
            for session in ["", "s-1", &"t".repeat(300)] {
                let mut with_metadata = r.clone();
                let answer = Answer {
                    response: r.clone(),
                    session_back: Some(session.to_owned()),
                };
                if r.dynamic_metadata.is_none() {
                    with_metadata.dynamic_metadata =
                        Some(crate::router::response_phase::session_metadata(session));
                }
                let mut got = Vec::new();
                encode_answer(&answer, &mut got);
                assert!(
                    got == with_metadata.encode_to_vec(),
                    "answer {i}, {session:?}"
                );
            }
            let mut got = Vec::new();
            encode_answer(&Answer::from(r.clone()), &mut got);
            assert!(got == r.encode_to_vec(), "answer {i} without a session");
        }
    }

    #[test]
    fn answers_are_the_bytes_prost_writes() {
        for (i, r) in answers().iter().enumerate() {
            let got = ours(r);
            assert_eq!(got.len(), r.encoded_len(), "answer {i}");
            assert!(got == r.encode_to_vec(), "answer {i}: {r:?}");
            assert_eq!(
                &ProcessingResponse::decode(got.as_slice()).expect("decodes"),
                r,
                "answer {i}"
            );
        }
    }
}
