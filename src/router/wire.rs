//! What the router reads of Envoy's ext_proc requests, decoded without copying: the subset of
//! `envoy.service.ext_proc.v3.ProcessingRequest` it uses, with header names and values as ranges
//! of the received gRPC frame (one [`Bytes`] per header map) instead of an owned `String` (and
//! its UTF-8 check) per name and value, or even a reference-counted slice per name and value.
//! Fields the router does not read (attributes, metadata, protocol config, trailers' contents)
//! are skipped by the decoder ([`super::wire_decode`], by hand; the prost-derived types in this
//! module's tests, with Envoy's field numbers, are its reference). Answers are the router's own
//! ([`super::answer`]).
//!
//! Measured with callgrind (BENCHMARKS.md): decoding every client header into owned strings was
//! about an eighth of the router's instructions per call.

use bytes::Bytes;

/// `envoy.service.ext_proc.v3.ProcessingRequest`, the fields the router reads.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProcessingRequest {
    pub request: Option<Phase>,
}

/// `ProcessingRequest.request`: which phase the message is about.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    RequestHeaders(HttpHeaders),
    ResponseHeaders(HttpHeaders),
    RequestBody(HttpBody),
    ResponseBody(HttpBody),
    RequestTrailers(HttpTrailers),
    ResponseTrailers(HttpTrailers),
}

/// `envoy.service.ext_proc.v3.HttpHeaders` (without the deprecated `attributes`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HttpHeaders {
    pub headers: Option<HeaderMap>,
    pub end_of_stream: bool,
}

/// `envoy.service.ext_proc.v3.HttpBody`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HttpBody {
    pub body: Bytes,
    pub end_of_stream: bool,
}

/// `envoy.service.ext_proc.v3.HttpTrailers`: the router never reads trailers (they are
/// configured SKIP), so nothing of them is kept.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HttpTrailers {}

/// `envoy.config.core.v3.HeaderMap`: the headers in order, each a [`Header`] read from the
/// message they arrived in.
#[derive(Debug, Clone, Default)]
pub struct HeaderMap {
    /// The message the headers' ranges point into.
    whole: Bytes,
    entries: Vec<Entry>,
}

/// One `envoy.config.core.v3.HeaderValue`: where its `key`, `value` and `raw_value` (all
/// `string`/`bytes` on the wire) lie in [`HeaderMap::whole`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) key: Span,
    pub(super) value: Span,
    pub(super) raw_value: Span,
}

/// `whole[start..end]`; header maps are far below 4 GiB (Envoy's limit is 60 KiB for all
/// headers, and the gRPC message limit is 4 MiB).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Span {
    pub(super) start: u32,
    pub(super) end: u32,
}

/// A header of a [`HeaderMap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    key: &'a [u8],
    value: &'a [u8],
    raw_value: &'a [u8],
}

impl<'a> Header<'a> {
    /// The header's name as Envoy sent it (lower-case), as bytes.
    pub fn key(&self) -> &'a [u8] {
        self.key
    }

    /// The header's name (Envoy sends them lower-case; one that is not UTF-8 is no name the
    /// router knows: empty).
    pub fn name(&self) -> &'a str {
        std::str::from_utf8(self.key).unwrap_or("")
    }

    /// The header's value as Envoy sent it (`raw_value`, else `value`).
    pub fn bytes(&self) -> &'a [u8] {
        if self.raw_value.is_empty() {
            self.value
        } else {
            self.raw_value
        }
    }

    /// `value` and `raw_value` as sent (for tests against Envoy's own types).
    #[cfg(test)]
    pub(super) fn fields(&self) -> (&'a [u8], &'a [u8]) {
        (self.value, self.raw_value)
    }
}

impl HeaderMap {
    /// An empty map whose headers will be read from `whole`, with room for a usual request's
    /// headers (no regrowth while they are pushed).
    pub(super) fn reading(whole: Bytes) -> HeaderMap {
        HeaderMap {
            whole,
            entries: Vec::with_capacity(16),
        }
    }

    /// Adds a header read from the message this map reads (`wire_decode`).
    pub(super) fn push(&mut self, entry: Entry) {
        self.entries.push(entry);
    }

    /// The headers, in the order sent.
    pub fn iter(&self) -> impl Iterator<Item = Header<'_>> + '_ {
        self.entries.iter().map(|e| Header {
            key: self.slice(e.key),
            value: self.slice(e.value),
            raw_value: self.slice(e.raw_value),
        })
    }

    fn slice(&self, s: Span) -> &[u8] {
        self.whole
            .get(s.start as usize..s.end as usize)
            .unwrap_or_default()
    }

    /// A header map of `(name, value)` pairs, as Envoy would send it (values in `raw_value`),
    /// for tests.
    #[cfg(test)]
    pub fn of(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut whole = Vec::new();
        let mut entries = Vec::with_capacity(pairs.len());
        let span = |bytes: &[u8], whole: &mut Vec<u8>| {
            let start = whole.len() as u32;
            whole.extend_from_slice(bytes);
            Span {
                start,
                end: whole.len() as u32,
            }
        };
        for (k, v) in pairs {
            let key = span(k.as_bytes(), &mut whole);
            let raw_value = span(v.as_bytes(), &mut whole);
            entries.push(Entry {
                key,
                value: Span::default(),
                raw_value,
            });
        }
        HeaderMap {
            whole: whole.into(),
            entries,
        }
    }
}

/// Two maps are equal when they hold the same headers (wherever their bytes lie).
impl PartialEq for HeaderMap {
    fn eq(&self, other: &HeaderMap) -> bool {
        self.entries.len() == other.entries.len() && self.iter().eq(other.iter())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3 as core;
    use envoy_types::pb::envoy::service::ext_proc::v3 as envoy;
    use prost::Message;

    /// The fields the router reads of Envoy's `ProcessingRequest`, as prost derives them from
    /// Envoy's field numbers: the reference the hand decoder (`wire_decode`) is held to.
    pub(in crate::router) mod reference {
        use bytes::Bytes;

        #[derive(Clone, PartialEq, prost::Message)]
        pub(crate) struct ProcessingRequest {
            #[prost(oneof = "Phase", tags = "2, 3, 4, 5, 6, 7")]
            pub(crate) request: Option<Phase>,
        }

        #[derive(Clone, PartialEq, prost::Oneof)]
        pub(crate) enum Phase {
            #[prost(message, tag = "2")]
            RequestHeaders(HttpHeaders),
            #[prost(message, tag = "3")]
            ResponseHeaders(HttpHeaders),
            #[prost(message, tag = "4")]
            RequestBody(HttpBody),
            #[prost(message, tag = "5")]
            ResponseBody(HttpBody),
            #[prost(message, tag = "6")]
            RequestTrailers(HttpTrailers),
            #[prost(message, tag = "7")]
            ResponseTrailers(HttpTrailers),
        }

        #[derive(Clone, PartialEq, prost::Message)]
        pub(crate) struct HttpHeaders {
            #[prost(message, optional, tag = "1")]
            pub(crate) headers: Option<HeaderMap>,
            #[prost(bool, tag = "3")]
            pub(crate) end_of_stream: bool,
        }

        #[derive(Clone, PartialEq, prost::Message)]
        pub(crate) struct HttpBody {
            #[prost(bytes = "bytes", tag = "1")]
            pub(crate) body: Bytes,
            #[prost(bool, tag = "2")]
            pub(crate) end_of_stream: bool,
        }

        #[derive(Clone, PartialEq, prost::Message)]
        pub(crate) struct HttpTrailers {}

        #[derive(Clone, PartialEq, prost::Message)]
        pub(crate) struct HeaderMap {
            #[prost(message, repeated, tag = "1")]
            pub(crate) headers: Vec<HeaderValue>,
        }

        #[derive(Clone, PartialEq, prost::Message)]
        pub(crate) struct HeaderValue {
            #[prost(bytes = "bytes", tag = "1")]
            pub(crate) key: Bytes,
            #[prost(bytes = "bytes", tag = "2")]
            pub(crate) value: Bytes,
            #[prost(bytes = "bytes", tag = "3")]
            pub(crate) raw_value: Bytes,
        }
    }

    /// A decoded request in the reference's form, to compare with prost's decoding.
    pub(in crate::router) fn as_reference(r: &ProcessingRequest) -> reference::ProcessingRequest {
        use reference as x;
        let headers = |h: &HttpHeaders| x::HttpHeaders {
            headers: h.headers.as_ref().map(|m| x::HeaderMap {
                headers: m
                    .iter()
                    .map(|h| {
                        let (value, raw_value) = h.fields();
                        x::HeaderValue {
                            key: Bytes::copy_from_slice(h.key()),
                            value: Bytes::copy_from_slice(value),
                            raw_value: Bytes::copy_from_slice(raw_value),
                        }
                    })
                    .collect(),
            }),
            end_of_stream: h.end_of_stream,
        };
        let body = |b: &HttpBody| x::HttpBody {
            body: b.body.clone(),
            end_of_stream: b.end_of_stream,
        };
        x::ProcessingRequest {
            request: r.request.as_ref().map(|p| match p {
                Phase::RequestHeaders(h) => x::Phase::RequestHeaders(headers(h)),
                Phase::ResponseHeaders(h) => x::Phase::ResponseHeaders(headers(h)),
                Phase::RequestBody(b) => x::Phase::RequestBody(body(b)),
                Phase::ResponseBody(b) => x::Phase::ResponseBody(body(b)),
                Phase::RequestTrailers(_) => x::Phase::RequestTrailers(x::HttpTrailers {}),
                Phase::ResponseTrailers(_) => x::Phase::ResponseTrailers(x::HttpTrailers {}),
            }),
        }
    }

    /// A header as Envoy's types hold it, its value in `raw_value` (as Envoy sends it) or not.
    pub(in crate::router) fn envoy_header(k: &str, v: &str, raw: bool) -> core::HeaderValue {
        core::HeaderValue {
            key: k.into(),
            value: if raw { String::new() } else { v.into() },
            raw_value: if raw {
                v.as_bytes().to_vec()
            } else {
                Vec::new()
            },
        }
    }

    /// Envoy's own encoding of each phase decodes to the same facts here.
    #[test]
    fn envoys_messages_decode_to_the_subset() {
        let header = envoy_header;
        let headers = envoy::HttpHeaders {
            headers: Some(core::HeaderMap {
                headers: vec![header(":path", "/mcp", true), header("x-a", "b", false)],
            }),
            end_of_stream: true,
            ..Default::default()
        };
        let body = envoy::HttpBody {
            body: b"{\"jsonrpc\":\"2.0\"}".to_vec(),
            end_of_stream: true,
            ..Default::default()
        };
        use envoy::processing_request::Request as R;
        let cases = [
            R::RequestHeaders(headers.clone()),
            R::ResponseHeaders(headers),
            R::RequestBody(body.clone()),
            R::ResponseBody(body),
            R::RequestTrailers(envoy::HttpTrailers::default()),
        ];
        for request in cases {
            let sent = envoy::ProcessingRequest {
                request: Some(request.clone()),
                // Fields the router does not read are skipped.
                observability_mode: true,
                ..Default::default()
            };
            let got =
                super::super::wire_decode::decode(sent.encode_to_vec().into()).expect("decodes");
            match (request, got.request.expect("a phase")) {
                (R::RequestHeaders(e), Phase::RequestHeaders(w))
                | (R::ResponseHeaders(e), Phase::ResponseHeaders(w)) => {
                    assert_eq!(e.end_of_stream, w.end_of_stream);
                    let w = w.headers.expect("headers");
                    let names: Vec<&str> = w.iter().map(|h| h.name()).collect();
                    assert_eq!(names, [":path", "x-a"]);
                    let values: Vec<&[u8]> = w.iter().map(|h| h.bytes()).collect();
                    assert_eq!(values, [&b"/mcp"[..], &b"b"[..]]);
                }
                (R::RequestBody(e), Phase::RequestBody(w))
                | (R::ResponseBody(e), Phase::ResponseBody(w)) => {
                    assert_eq!(e.body, w.body);
                    assert_eq!(e.end_of_stream, w.end_of_stream);
                }
                (R::RequestTrailers(_), Phase::RequestTrailers(_)) => {}
                (e, w) => panic!("{e:?} decoded as {w:?}"),
            }
        }
    }
}
