//! Envoy's ext_proc messages decoded by hand into [`super::wire`]'s types: the same result as
//! prost's derived decoder (a test holds them equal), in one pass over one [`Bytes`] of the whole
//! message, each header name and value a slice of it.
//!
//! prost reads each `bytes` field by splitting the frame buffer it decodes from (a `BytesMut`
//! split per field, with the bookkeeping of a nested `merge` per message); measured with callgrind,
//! decoding was about 700 instructions per header. Here a header is two varints and two slices.
//!
//! As prost does: fields the router does not read are skipped whatever their wire type (groups
//! included), a field the router reads with the wrong wire type is an error, a oneof variant
//! seen again is merged into the one before (repeated headers appended, scalars replaced), and
//! another variant replaces it.

use bytes::Bytes;

use super::wire::{
    Entry, HeaderMap, HttpBody, HttpHeaders, HttpTrailers, Phase, ProcessingRequest, Span,
};

/// Why a message could not be decoded (it is cut short or not protobuf).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to decode an ext_proc message: {0}")]
pub struct DecodeError(&'static str);

/// Protobuf wire types.
const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const I32: u8 = 5;

/// Deepest nesting of groups skipped (prost's recursion limit).
const MAX_GROUP_DEPTH: u32 = 100;

/// Decodes one `ProcessingRequest`.
pub fn decode(whole: Bytes) -> Result<ProcessingRequest, DecodeError> {
    let mut r = Reader { buf: &whole, at: 0 };
    let mut request: Option<Phase> = None;
    while let Some((field, wire)) = r.key()? {
        if !(2..=7).contains(&field) {
            r.skip(field, wire, 0)?;
            continue;
        }
        expect(wire, LEN)?;
        let (start, end) = r.len_delimited()?;
        let part = Part {
            whole: &whole,
            start,
            end,
        };
        request = Some(match (field, request.take()) {
            (2, Some(Phase::RequestHeaders(h))) => Phase::RequestHeaders(part.headers(h)?),
            (2, _) => Phase::RequestHeaders(part.headers(HttpHeaders::default())?),
            (3, Some(Phase::ResponseHeaders(h))) => Phase::ResponseHeaders(part.headers(h)?),
            (3, _) => Phase::ResponseHeaders(part.headers(HttpHeaders::default())?),
            (4, Some(Phase::RequestBody(b))) => Phase::RequestBody(part.body(b)?),
            (4, _) => Phase::RequestBody(part.body(HttpBody::default())?),
            (5, Some(Phase::ResponseBody(b))) => Phase::ResponseBody(part.body(b)?),
            (5, _) => Phase::ResponseBody(part.body(HttpBody::default())?),
            (6, _) => {
                part.skip_all()?;
                Phase::RequestTrailers(HttpTrailers {})
            }
            _ => {
                part.skip_all()?;
                Phase::ResponseTrailers(HttpTrailers {})
            }
        });
    }
    Ok(ProcessingRequest { request })
}

fn expect(wire: u8, want: u8) -> Result<(), DecodeError> {
    if wire == want {
        Ok(())
    } else {
        Err(DecodeError("invalid wire type"))
    }
}

/// A length-delimited part of the message: `whole[start..end]`.
struct Part<'a> {
    whole: &'a Bytes,
    start: usize,
    end: usize,
}

impl Part<'_> {
    /// A part of the same message.
    fn at(&self, (start, end): (usize, usize)) -> Part<'_> {
        Part {
            whole: self.whole,
            start,
            end,
        }
    }

    fn reader(&self) -> Reader<'_> {
        Reader {
            buf: &self.whole[..self.end],
            at: self.start,
        }
    }

    fn skip_all(&self) -> Result<(), DecodeError> {
        let mut r = self.reader();
        while let Some((field, wire)) = r.key()? {
            r.skip(field, wire, 0)?;
        }
        Ok(())
    }

    /// `HttpHeaders`, merged into `h`.
    fn headers(&self, mut h: HttpHeaders) -> Result<HttpHeaders, DecodeError> {
        let mut r = self.reader();
        while let Some((field, wire)) = r.key()? {
            match field {
                1 => {
                    expect(wire, LEN)?;
                    let range = r.len_delimited()?;
                    let map = h
                        .headers
                        .get_or_insert_with(|| HeaderMap::reading(self.whole.clone()));
                    self.at(range).header_map(map)?;
                }
                3 => {
                    expect(wire, VARINT)?;
                    h.end_of_stream = r.varint()? != 0;
                }
                _ => r.skip(field, wire, 0)?,
            }
        }
        Ok(h)
    }

    /// `HeaderMap`: its headers appended to `map`.
    fn header_map(&self, map: &mut HeaderMap) -> Result<(), DecodeError> {
        let mut r = self.reader();
        while let Some((field, wire)) = r.key()? {
            if field != 1 {
                r.skip(field, wire, 0)?;
                continue;
            }
            expect(wire, LEN)?;
            let range = r.len_delimited()?;
            map.push(self.at(range).header_value()?);
        }
        Ok(())
    }

    /// `HeaderValue`: where its fields lie in the message (no copy, no reference count).
    fn header_value(&self) -> Result<Entry, DecodeError> {
        let mut r = self.reader();
        let mut h = Entry::default();
        while let Some((field, wire)) = r.key()? {
            let slot = match field {
                1 => &mut h.key,
                2 => &mut h.value,
                3 => &mut h.raw_value,
                _ => {
                    r.skip(field, wire, 0)?;
                    continue;
                }
            };
            expect(wire, LEN)?;
            let (start, end) = r.len_delimited()?;
            *slot = span(start, end)?;
        }
        Ok(h)
    }

    /// `HttpBody`, merged into `b`.
    fn body(&self, mut b: HttpBody) -> Result<HttpBody, DecodeError> {
        let mut r = self.reader();
        while let Some((field, wire)) = r.key()? {
            match field {
                1 => {
                    expect(wire, LEN)?;
                    let (start, end) = r.len_delimited()?;
                    b.body = self.whole.slice(start..end);
                }
                2 => {
                    expect(wire, VARINT)?;
                    b.end_of_stream = r.varint()? != 0;
                }
                _ => r.skip(field, wire, 0)?,
            }
        }
        Ok(b)
    }
}

/// `start..end` as a [`Span`]: a message beyond 4 GiB (gRPC's limit here is 4 MiB) is refused.
fn span(start: usize, end: usize) -> Result<Span, DecodeError> {
    match (u32::try_from(start), u32::try_from(end)) {
        (Ok(start), Ok(end)) => Ok(Span { start, end }),
        _ => Err(DecodeError("message too large")),
    }
}

/// A cursor over `buf` from `at`.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn varint(&mut self) -> Result<u64, DecodeError> {
        // Most are one byte (field keys, header lengths): read without the loop.
        if let Some(&b) = self.buf.get(self.at) {
            if b < 0x80 {
                self.at += 1;
                return Ok(u64::from(b));
            }
        }
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.at) else {
                return Err(DecodeError("buffer underflow"));
            };
            self.at += 1;
            // The tenth byte holds only the top bit.
            if i == 9 && b > 1 {
                return Err(DecodeError("invalid varint"));
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(DecodeError("invalid varint"))
    }

    /// The next field's number and wire type; `None` at the end.
    fn key(&mut self) -> Result<Option<(u32, u8)>, DecodeError> {
        if self.at >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        if key > u64::from(u32::MAX) {
            return Err(DecodeError("invalid key value"));
        }
        let wire = (key & 7) as u8;
        let field = (key >> 3) as u32;
        if field == 0 {
            return Err(DecodeError("invalid field number: 0"));
        }
        if wire > I32 {
            return Err(DecodeError("invalid wire type"));
        }
        Ok(Some((field, wire)))
    }

    /// The range of a length-delimited field's contents, stepped over.
    fn len_delimited(&mut self) -> Result<(usize, usize), DecodeError> {
        let len = usize::try_from(self.varint()?).map_err(|_| DecodeError("buffer underflow"))?;
        let start = self.at;
        let end = start
            .checked_add(len)
            .filter(|end| *end <= self.buf.len())
            .ok_or(DecodeError("buffer underflow"))?;
        self.at = end;
        Ok((start, end))
    }

    fn advance(&mut self, n: usize) -> Result<(), DecodeError> {
        if self.buf.len() - self.at < n {
            return Err(DecodeError("buffer underflow"));
        }
        self.at += n;
        Ok(())
    }

    /// Steps over a field the router does not read.
    fn skip(&mut self, field: u32, wire: u8, depth: u32) -> Result<(), DecodeError> {
        match wire {
            VARINT => self.varint().map(|_| ()),
            I64 => self.advance(8),
            I32 => self.advance(4),
            LEN => self.len_delimited().map(|_| ()),
            START_GROUP => {
                if depth >= MAX_GROUP_DEPTH {
                    return Err(DecodeError("recursion limit reached"));
                }
                loop {
                    let Some((inner, inner_wire)) = self.key()? else {
                        return Err(DecodeError("unexpected end of group"));
                    };
                    if inner_wire == END_GROUP {
                        if inner != field {
                            return Err(DecodeError("unexpected end group tag"));
                        }
                        return Ok(());
                    }
                    self.skip(inner, inner_wire, depth + 1)?;
                }
            }
            _ => Err(DecodeError("unexpected end group tag")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::wire::tests::{as_reference, envoy_header as header, reference};
    use envoy_types::pb::envoy::config::core::v3 as core;
    use envoy_types::pb::envoy::service::ext_proc::v3 as envoy;
    use prost::Message;

    fn prost_decode(
        bytes: &[u8],
    ) -> Result<crate::router::wire::tests::reference::ProcessingRequest, prost::DecodeError> {
        crate::router::wire::tests::reference::ProcessingRequest::decode(bytes)
    }

    fn ours(bytes: &[u8]) -> Result<reference::ProcessingRequest, DecodeError> {
        decode(Bytes::copy_from_slice(bytes)).map(|r| as_reference(&r))
    }

    /// Envoy's own messages, as Envoy's types encode them.
    fn envoy_messages() -> Vec<Vec<u8>> {
        use envoy::processing_request::Request as R;
        let headers = envoy::HttpHeaders {
            headers: Some(core::HeaderMap {
                headers: vec![
                    header(":method", "POST", true),
                    header(":path", "/mcp", true),
                    header("mcp-session-id", &"s".repeat(300), true),
                    header("x-old-style", "v", false),
                    header("x-empty", "", true),
                ],
            }),
            end_of_stream: false,
            ..Default::default()
        };
        let body = envoy::HttpBody {
            body: br#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#.to_vec(),
            end_of_stream: true,
            ..Default::default()
        };
        let mut out = Vec::new();
        for request in [
            R::RequestHeaders(headers.clone()),
            R::ResponseHeaders(envoy::HttpHeaders {
                end_of_stream: true,
                ..headers.clone()
            }),
            R::RequestBody(body.clone()),
            R::ResponseBody(body),
            R::RequestBody(envoy::HttpBody::default()),
            R::RequestHeaders(envoy::HttpHeaders::default()),
            R::RequestTrailers(envoy::HttpTrailers {
                trailers: Some(core::HeaderMap {
                    headers: vec![header("grpc-status", "0", true)],
                }),
            }),
            R::ResponseTrailers(envoy::HttpTrailers::default()),
        ] {
            let sent = envoy::ProcessingRequest {
                request: Some(request),
                // Fields the router does not read, of several wire types.
                observability_mode: true,
                metadata_context: Some(Default::default()),
                protocol_config: Some(envoy::ProtocolConfiguration {
                    request_body_mode: 1,
                    ..Default::default()
                }),
                ..Default::default()
            };
            out.push(sent.encode_to_vec());
        }
        out.push(Vec::new());
        out
    }

    #[test]
    fn decodes_as_prost_does() {
        let mut cases = envoy_messages();
        // The same oneof variant twice (merged), then another variant (replaces it).
        let twice = [cases[0].clone(), cases[0].clone()].concat();
        cases.push(twice.clone());
        cases.push([twice, cases[2].clone()].concat());
        // Unknown fields of every wire type, a group among them, before a phase.
        let mut odd: Vec<u8> = [
            &[0x08, 0x96, 0x01][..],         // field 1, varint 150
            &[0x41, 1, 2, 3, 4, 5, 6, 7, 8], // field 8, i64
            &[0x4d, 1, 2, 3, 4],             // field 9, i32
            &[0x53, 0x08, 0x01, 0x54],       // field 10: a group holding a varint, ended
        ]
        .concat();
        odd.extend_from_slice(&cases[2]);
        cases.push(odd);
        for bytes in &cases {
            let ours = ours(bytes).expect("decodes");
            let theirs = prost_decode(bytes).expect("prost decodes");
            assert_eq!(ours, theirs, "{bytes:?}");
        }
    }

    #[test]
    fn refuses_what_prost_refuses() {
        let whole = &envoy_messages()[0];
        let mut broken: Vec<Vec<u8>> = (1..whole.len()).map(|n| whole[..n].to_vec()).collect();
        broken.extend([
            vec![0x12, 0x05, 0x0a],       // field 2 longer than the message
            vec![0x10, 0x01],             // field 2 as a varint: wrong wire type
            vec![0x12, 0x02, 0x18],       // a length past what follows
            vec![0x12, 0x02, 0x0d, 0x00], // HttpHeaders.headers as an i32
            vec![0x00],                   // field 0
            vec![0x0e],                   // wire type 6
            vec![0x0c],                   // an end group with no start
            vec![0x0b, 0x08, 0x01],       // a group never ended
            vec![0x0b, 0x14],             // a group ended by another field's tag
            vec![
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
            ], // varint too long
        ]);
        for bytes in &broken {
            let ours = ours(bytes);
            let theirs = prost_decode(bytes);
            match (ours, theirs) {
                (Err(_), Err(_)) => {}
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{bytes:?}"),
                (a, b) => panic!("{bytes:?}: ours {a:?}, prost's {b:?}"),
            }
        }
    }
}
