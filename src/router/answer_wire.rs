//! The router's answers on the wire: an [`Answer`] written as the `ProcessingResponse` Envoy
//! reads, in one pass, the same bytes prost writes for the same message.
//!
//! prost writes a nested message as its length and then its fields, and works each length out by
//! walking the message below: a header set in a headers or body answer sits five levels down
//! (answer, common response, header mutation, header option, header). Here each length is summed
//! once from the router's own [`Mutation`] (a name and a range of one buffer per header), and
//! the mode override, the only part left to prost, is a flat message. A test holds the bytes
//! equal to prost's encoding of the same answer built as Envoy's types.

use prost::bytes::BufMut;
use prost::encoding::{self, encode_varint, encoded_len_varint, key_len, WireType};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;

use super::answer::{Answer, Common, Message, Phase};
use super::mutation::{HeaderSet, Mutation};
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

/// Encodes answers with [`encode_answer`].
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

// Field numbers of `envoy.service.ext_proc.v3.ProcessingResponse` and the messages below it.
/// `ProcessingResponse.immediate_response`.
const IMMEDIATE: u32 = 7;
/// `ProcessingResponse.dynamic_metadata`.
const DYNAMIC_METADATA: u32 = 8;
/// `ProcessingResponse.mode_override`.
const MODE_OVERRIDE: u32 = 9;
/// `HeaderValueOption.append_action`: `OVERWRITE_IF_EXISTS_OR_ADD`.
const OVERWRITE_IF_EXISTS_OR_ADD: i32 = 2;

/// Writes `a` as prost writes the `ProcessingResponse` it stands for: fields in tag order (the
/// response oneof, tags 1–7, first), defaults left out.
pub fn encode_answer(a: &Answer, buf: &mut impl BufMut) {
    let Answer {
        message,
        mode_override,
        session_back,
    } = a;
    match message {
        Message::Continue(phase, c) => {
            let mutation = mutation_len(&c.mutation);
            let common = common_len(c, mutation);
            // `HeadersResponse` and `BodyResponse` have the same one field, the common response.
            open(phase_tag(*phase), field_len(1, common), buf);
            open(1, common, buf);
            put_common(c, mutation, buf);
        }
        Message::Immediate {
            status,
            headers,
            body,
        } => {
            let status_len = int_len(1, i32::from(*status));
            let mutation = mutation_len(headers);
            let len = field_len(1, status_len)
                + if headers.is_empty() {
                    0
                } else {
                    field_len(2, mutation)
                }
                + bytes_len(3, body);
            open(IMMEDIATE, len, buf);
            open(1, status_len, buf);
            put_int(1, i32::from(*status), buf);
            if !headers.is_empty() {
                open(2, mutation, buf);
                put_mutation(headers, buf);
            }
            put_bytes(3, body, buf);
        }
    }
    if let Some(session) = session_back {
        put_session_metadata(session, buf);
    }
    if let Some(m) = mode_override {
        encoding::message::encode(MODE_OVERRIDE, m, buf);
    }
}

/// The oneof tag of the answer to `phase` (`request_headers` = 1 … `response_body` = 4).
fn phase_tag(phase: Phase) -> u32 {
    match phase {
        Phase::RequestHeaders => 1,
        Phase::ResponseHeaders => 2,
        Phase::RequestBody => 3,
        Phase::ResponseBody => 4,
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
    open(DYNAMIC_METADATA, field_len(1, outer_entry), buf);
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

/// `CommonResponse`: status `CONTINUE` (0, left out), the header mutation (2) unless empty, the
/// body mutation (3) with its `body` (1, written even when empty: a oneof member), and
/// `clear_route_cache` (5).
fn common_len(c: &Common, mutation: usize) -> usize {
    let Common {
        mutation: m,
        body,
        clear_route_cache,
    } = c;
    (if m.is_empty() {
        0
    } else {
        field_len(2, mutation)
    }) + body
        .as_ref()
        .map_or(0, |b| field_len(3, field_len(1, b.len())))
        + bool_len(5, *clear_route_cache)
}

fn put_common(c: &Common, mutation: usize, buf: &mut impl BufMut) {
    if !c.mutation.is_empty() {
        open(2, mutation, buf);
        put_mutation(&c.mutation, buf);
    }
    if let Some(body) = &c.body {
        open(3, field_len(1, body.len()), buf);
        open(1, body.len(), buf);
        buf.put_slice(body);
    }
    put_bool(5, c.clear_route_cache, buf);
}

/// `HeaderMutation`: `set_headers` (1), then `remove_headers` (2, a repeated string, written
/// even when empty).
fn mutation_len(m: &Mutation) -> usize {
    m.sets()
        .map(|h| field_len(1, option_len(&h)))
        .sum::<usize>()
        + m.removed().map(|r| field_len(2, r.len())).sum::<usize>()
}

fn put_mutation(m: &Mutation, buf: &mut impl BufMut) {
    for h in m.sets() {
        open(1, option_len(&h), buf);
        put_option(&h, buf);
    }
    for r in m.removed() {
        open(2, r.len(), buf);
        buf.put_slice(r.as_bytes());
    }
}

/// `HeaderValueOption`: the header (1); to append, the deprecated `append` (2) as
/// `BoolValue{value: true}` (Envoy reads it when `append_action` is its default,
/// `APPEND_IF_EXISTS_OR_ADD`); to overwrite, `append_action` (3).
fn option_len(h: &HeaderSet<'_>) -> usize {
    field_len(1, header_len(h))
        + if h.append {
            field_len(2, bool_len(1, true))
        } else {
            int_len(3, OVERWRITE_IF_EXISTS_OR_ADD)
        }
}

fn put_option(h: &HeaderSet<'_>, buf: &mut impl BufMut) {
    open(1, header_len(h), buf);
    put_bytes(1, h.name.as_bytes(), buf);
    // Envoy reads `raw_value` (3); `value` (2) stays empty, left out.
    put_bytes(3, h.value, buf);
    if h.append {
        open(2, bool_len(1, true), buf);
        put_bool(1, true, buf);
    } else {
        put_int(3, OVERWRITE_IF_EXISTS_OR_ADD, buf);
    }
}

/// `HeaderValue`: `key` (1) and `raw_value` (3).
fn header_len(h: &HeaderSet<'_>) -> usize {
    bytes_len(1, h.name.as_bytes()) + bytes_len(3, h.value)
}

/// A varint as prost writes it; most of an answer's (field keys, header lengths) are one byte,
/// written without prost's loop (measured: about 1k instructions of a routed call's answer).
fn varint(v: u64, buf: &mut impl BufMut) {
    if v < 0x80 {
        buf.put_u8(v as u8);
    } else {
        encode_varint(v, buf);
    }
}

/// A field's key (its tag and wire type), as prost's `encode_key` writes it.
fn key(tag: u32, wire_type: WireType, buf: &mut impl BufMut) {
    varint(u64::from(tag) << 3 | wire_type as u64, buf);
}

/// A length-delimited field's key and length.
fn open(tag: u32, len: usize, buf: &mut impl BufMut) {
    key(tag, WireType::LengthDelimited, buf);
    varint(len as u64, buf);
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
        key(tag, WireType::Varint, buf);
        varint(v as u64, buf);
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
        key(tag, WireType::Varint, buf);
        buf.put_u8(1);
    }
}

fn bool_len(tag: u32, v: bool) -> usize {
    if v {
        key_len(tag) + 1
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::Reject;
    use crate::router::respond::{self, Skip};
    use envoy_types::pb::envoy::service::ext_proc::v3::ProcessingResponse;
    use prost::Message as _;

    fn ours(a: &Answer) -> Vec<u8> {
        let mut buf = Vec::new();
        encode_answer(a, &mut buf);
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
        m.remove("x-mcp-virtualserver");
        m.remove(String::new());
        // Set above (when n > 4): not removed as well.
        m.remove("mcp-session-id");
        m
    }

    /// Every kind of answer the router builds, with headers, values and bodies around the
    /// varint boundaries (127/128 bytes, 16 KiB).
    fn answers() -> Vec<Answer> {
        let mut all = vec![
            respond::request_headers(Mutation::default(), false, Skip::Nothing),
            respond::request_headers(mutation(2, 3), true, Skip::BodyAndResponse),
            respond::request_headers(mutation(1, 0), true, Skip::Body),
            respond::request_body(mutation(8, 20), Some(vec![b'{'; 1024]), true),
            respond::request_body(mutation(9, 200), Some(vec![b'x'; 1 << 20]), true),
            respond::request_body(mutation(3, 125), Some(vec![b'y'; 16_383]), false),
            respond::request_body(Mutation::default(), Some(Vec::new()), false),
            respond::request_body(Mutation::default(), None, false),
            respond::request_body(Mutation::removing(vec!["origin".into()]), None, true),
            respond::response_headers(mutation(1, 280)),
            respond::response_headers_then_stream_body(mutation(3, 5)),
            respond::response_headers_then_buffer_body(Mutation::default()),
            respond::buffered_response_body(Some(b"{\"result\":{}}".to_vec())),
            respond::buffered_response_body(None),
            respond::response_body(Some(vec![b'e'; 70_000])),
            respond::response_body(None),
            respond::pass(Phase::RequestHeaders),
            respond::pass(Phase::RequestBody),
            respond::pass(Phase::ResponseHeaders),
            respond::pass(Phase::ResponseBody),
            respond::preflight(vec![("access-control-max-age", b"7200".to_vec())]),
            respond::preflight(Vec::new()),
            respond::reject(Reject::new(413, -32004, "too large", None)),
            respond::immediate(200, vec![b'r'; 300]),
            respond::immediate(0, Vec::new()),
        ];
        // CORS headers (one appended) on every answer that reaches the client.
        let with_cors: Vec<Answer> = all
            .iter()
            .cloned()
            .map(|mut a| {
                respond::add_cors(&mut a, b"https://app.example.org");
                a
            })
            .collect();
        all.extend(with_cors);
        all
    }

    #[test]
    fn answers_are_the_bytes_prost_writes() {
        for (i, a) in answers().iter().enumerate() {
            for session in [None, Some(""), Some("s-1"), Some(&*"t".repeat(300))] {
                let mut a = a.clone();
                a.session_back = session.map(str::to_owned);
                let want = a.to_prost();
                let got = ours(&a);
                assert_eq!(got.len(), want.encoded_len(), "answer {i}, {session:?}");
                assert!(
                    got == want.encode_to_vec(),
                    "answer {i}, {session:?}: {a:?}"
                );
                assert_eq!(
                    ProcessingResponse::decode(got.as_slice()).expect("decodes"),
                    want,
                    "answer {i}, {session:?}"
                );
            }
        }
    }

    #[test]
    fn a_header_set_is_not_also_removed() {
        let a = respond::request_body(mutation(5, 1), None, false).to_prost();
        let Some(envoy_types::pb::envoy::service::ext_proc::v3::processing_response::Response::RequestBody(b)) = a.response else {
            panic!("a body answer")
        };
        let m = b
            .response
            .and_then(|c| c.header_mutation)
            .expect("mutation");
        assert_eq!(
            m.remove_headers,
            vec!["x-mcp-virtualserver".to_owned(), String::new()]
        );
        assert_eq!(m.set_headers.len(), 5);
    }
}
