//! What the router reads of Envoy's ext_proc requests, decoded without copying: the subset of
//! `envoy.service.ext_proc.v3.ProcessingRequest` it uses, declared with the same field numbers
//! (so the wire format is Envoy's), header names and values as [`Bytes`] that point into the
//! received gRPC frame instead of an owned `String` (and its UTF-8 check) per name and value.
//! Fields the router does not read (attributes, metadata, protocol config, trailers' contents)
//! are skipped by the decoder ([`super::wire_decode`], by hand; the prost derives here are its
//! reference in tests). Answers stay Envoy's own types (`envoy_types`).
//!
//! Measured with callgrind (BENCHMARKS.md): decoding every client header into owned strings was
//! about an eighth of the router's instructions per call.

use bytes::Bytes;

/// `envoy.service.ext_proc.v3.ProcessingRequest`, the fields the router reads.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProcessingRequest {
    #[prost(oneof = "Phase", tags = "2, 3, 4, 5, 6, 7")]
    pub request: Option<Phase>,
}

/// `ProcessingRequest.request`: which phase the message is about.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Phase {
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

/// `envoy.service.ext_proc.v3.HttpHeaders` (without the deprecated `attributes`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct HttpHeaders {
    #[prost(message, optional, tag = "1")]
    pub headers: Option<HeaderMap>,
    #[prost(bool, tag = "3")]
    pub end_of_stream: bool,
}

/// `envoy.service.ext_proc.v3.HttpBody`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HttpBody {
    #[prost(bytes = "bytes", tag = "1")]
    pub body: Bytes,
    #[prost(bool, tag = "2")]
    pub end_of_stream: bool,
}

/// `envoy.service.ext_proc.v3.HttpTrailers`: the router never reads trailers (they are
/// configured SKIP), so nothing of them is kept.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HttpTrailers {}

/// `envoy.config.core.v3.HeaderMap`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HeaderMap {
    #[prost(message, repeated, tag = "1")]
    pub headers: Vec<HeaderValue>,
}

/// `envoy.config.core.v3.HeaderValue`: `key` and `value` are `string`s on the wire, read here as
/// bytes (the same encoding); Envoy sends the value in `raw_value`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HeaderValue {
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub value: Bytes,
    #[prost(bytes = "bytes", tag = "3")]
    pub raw_value: Bytes,
}

impl HeaderValue {
    /// A header as Envoy sends it: lower-case name, value in `raw_value`.
    pub fn new(name: &str, value: &[u8]) -> HeaderValue {
        HeaderValue {
            key: Bytes::copy_from_slice(name.as_bytes()),
            value: Bytes::new(),
            raw_value: Bytes::copy_from_slice(value),
        }
    }

    /// The header's name (Envoy sends them lower-case; one that is not UTF-8 is no name the
    /// router knows: empty).
    pub fn name(&self) -> &str {
        std::str::from_utf8(&self.key).unwrap_or("")
    }

    /// The header's value as Envoy sent it (`raw_value`, else `value`).
    pub fn bytes(&self) -> &[u8] {
        if self.raw_value.is_empty() {
            &self.value
        } else {
            &self.raw_value
        }
    }
}

impl HeaderMap {
    /// A header map of `(name, value)` pairs, as Envoy would send it.
    pub fn of(pairs: &[(&str, &str)]) -> HeaderMap {
        HeaderMap {
            headers: pairs
                .iter()
                .map(|(k, v)| HeaderValue::new(k, v.as_bytes()))
                .collect(),
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3 as core;
    use envoy_types::pb::envoy::service::ext_proc::v3 as envoy;
    use prost::Message;

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
            let got = ProcessingRequest::decode(sent.encode_to_vec().as_slice()).expect("decodes");
            match (request, got.request.expect("a phase")) {
                (R::RequestHeaders(e), Phase::RequestHeaders(w))
                | (R::ResponseHeaders(e), Phase::ResponseHeaders(w)) => {
                    assert_eq!(e.end_of_stream, w.end_of_stream);
                    let w = w.headers.expect("headers");
                    let names: Vec<&str> = w.headers.iter().map(HeaderValue::name).collect();
                    assert_eq!(names, [":path", "x-a"]);
                    let values: Vec<&[u8]> = w.headers.iter().map(HeaderValue::bytes).collect();
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
