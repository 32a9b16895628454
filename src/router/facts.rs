//! What the router reads from Envoy's header maps, in one pass each: the request's facts
//! ([`RequestFacts`], typed where a decision compares them) and the response's
//! ([`ResponseFacts`]: status as a number, media type). Pure.

use super::wire::{Header, HeaderMap};

use crate::mcp::{CallTarget, MediaType};

/// The path the gateway serves MCP on.
pub const MCP_PATH: &str = "/mcp";

/// What the request headers tell, read once per stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFacts {
    pub method: http::Method,
    /// `:path` without the query.
    pub path: String,
    /// The request's one `:path` was exactly [`Self::path`] (no query or fragment cut off): a
    /// route to the same path need not set it again. `false` when unknown.
    pub path_is_exact: bool,
    pub content_type: Option<String>,
    pub session_id: Option<String>,
    pub protocol_version: Option<String>,
    /// How many `Mcp-Protocol-Version` headers the request has (the first counts above): a
    /// route need not set the header again when the only one already has the value.
    pub protocol_versions: u8,
    pub virtual_server: Option<String>,
    /// `x-mcp-authorized`, a policy engine's verdict for the broker: never passed to upstreams.
    /// Only whether it was sent: its value is the broker's to read.
    pub authorized: bool,
    pub authorization: Option<String>,
    /// The server named by a valid hairpin key (verified before deciding).
    pub hairpin_server: Option<String>,
    /// The call that triggered that hairpin initialize, as its signed key names it.
    pub hairpin_call: Option<CallTarget>,
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
    /// `Mcp-Method` and `Mcp-Name` (2026-07-28 clients); when present they must match the body.
    pub mcp_method: Option<String>,
    pub mcp_name: Option<String>,
    /// `Origin` (browsers): checked against the allowed origins.
    pub origin: Option<String>,
    /// `Last-Event-ID`: a GET that resumes an SSE stream.
    pub last_event_id: Option<String>,
    /// The request has no body.
    pub end_of_stream: bool,
}

impl RequestFacts {
    /// The media type of the request body (`Content-Type`).
    pub fn media(&self) -> MediaType {
        crate::mcp::media_type(self.content_type.as_deref())
    }

    /// A POST to the MCP endpoint: a JSON-RPC message to decide on.
    pub fn is_mcp_post(&self) -> bool {
        self.method == http::Method::POST && self.path == MCP_PATH
    }
}

/// What the response headers of a routed call tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseFacts {
    /// `:status`; 0 when missing or not a number.
    pub status: u16,
    pub media: MediaType,
    /// `WWW-Authenticate` is present (an upstream's challenge).
    pub challenged: bool,
}

/// The response facts of a header map, in one pass.
pub(super) fn read_response_facts(map: &HeaderMap) -> ResponseFacts {
    let mut facts = ResponseFacts {
        status: 0,
        media: MediaType::Other,
        challenged: false,
    };
    let (mut status, mut media) = (false, false);
    for h in map.iter() {
        match h.key() {
            name::STATUS if !status => {
                status = true;
                facts.status = std::str::from_utf8(h.bytes())
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
            }
            name::CONTENT_TYPE if !media => {
                media = true;
                facts.media = crate::mcp::media_type(std::str::from_utf8(h.bytes()).ok());
            }
            name::WWW_AUTHENTICATE => facts.challenged = true,
            _ => {}
        }
    }
    facts
}

fn method_of(h: &Header<'_>) -> http::Method {
    http::Method::from_bytes(h.bytes()).unwrap_or_default()
}

pub(super) fn header_value(map: &HeaderMap, name: &str) -> Option<String> {
    map.iter()
        .find(|h| h.key() == name.as_bytes())
        .map(|h| value_of(&h))
}

/// The header names [`read_facts`] and [`read_response_facts`] look for, as the bytes Envoy
/// sends (compared without a UTF-8 check of every name).
mod name {
    use crate::mcp::header;
    pub(super) const STATUS: &[u8] = header::STATUS.as_bytes();
    pub(super) const WWW_AUTHENTICATE: &[u8] = header::WWW_AUTHENTICATE.as_bytes();
    pub(super) const PATH: &[u8] = header::PATH.as_bytes();
    pub(super) const METHOD: &[u8] = header::METHOD.as_bytes();
    pub(super) const X_MCP_AUTHORIZED: &[u8] = header::X_MCP_AUTHORIZED.as_bytes();
    pub(super) const CONTENT_TYPE: &[u8] = header::CONTENT_TYPE.as_bytes();
    pub(super) const SESSION_ID: &[u8] = header::SESSION_ID.as_bytes();
    pub(super) const PROTOCOL_VERSION: &[u8] = header::PROTOCOL_VERSION.as_bytes();
    pub(super) const X_MCP_VIRTUALSERVER: &[u8] = header::X_MCP_VIRTUALSERVER.as_bytes();
    pub(super) const AUTHORIZATION: &[u8] = header::AUTHORIZATION.as_bytes();
    pub(super) const MCP_METHOD: &[u8] = header::MCP_METHOD.as_bytes();
    pub(super) const MCP_NAME: &[u8] = header::MCP_NAME.as_bytes();
    pub(super) const ORIGIN: &[u8] = header::ORIGIN.as_bytes();
    pub(super) const LAST_EVENT_ID: &[u8] = header::LAST_EVENT_ID.as_bytes();
}

/// What the decision needs from the request headers, in one pass over them.
pub(super) fn read_facts(map: &HeaderMap, end_of_stream: bool) -> RequestFacts {
    let mut facts = RequestFacts {
        end_of_stream,
        ..Default::default()
    };
    let mut seen_method = false;
    let mut paths = 0usize;
    for h in map.iter() {
        // Names compared as bytes: most headers are none of these, and need no UTF-8 check.
        let slot = match h.key() {
            name::PATH => {
                paths += 1;
                &mut facts.path
            }
            name::METHOD => {
                if !seen_method {
                    seen_method = true;
                    facts.method = method_of(&h);
                }
                continue;
            }
            name::X_MCP_AUTHORIZED => {
                facts.authorized = true;
                continue;
            }
            name::PROTOCOL_VERSION => {
                facts.protocol_versions = facts.protocol_versions.saturating_add(1);
                if facts.protocol_version.is_none() {
                    facts.protocol_version = Some(value_of(&h));
                }
                continue;
            }
            other => {
                let slot = match other {
                    name::CONTENT_TYPE => &mut facts.content_type,
                    name::SESSION_ID => &mut facts.session_id,
                    name::X_MCP_VIRTUALSERVER => &mut facts.virtual_server,
                    name::AUTHORIZATION => &mut facts.authorization,
                    b"traceparent" => &mut facts.traceparent,
                    b"tracestate" => &mut facts.tracestate,
                    name::MCP_METHOD => &mut facts.mcp_method,
                    name::MCP_NAME => &mut facts.mcp_name,
                    name::ORIGIN => &mut facts.origin,
                    name::LAST_EVENT_ID => &mut facts.last_event_id,
                    _ => continue,
                };
                // The first occurrence counts, as with a lookup.
                if slot.is_none() {
                    *slot = Some(value_of(&h));
                }
                continue;
            }
        };
        if slot.is_empty() {
            *slot = value_of(&h);
        }
    }
    // Exact only as the request's one `:path` (Envoy sends one; a map with more is not trusted).
    facts.path_is_exact = paths == 1 && !facts.path.is_empty();
    if let Some(end) = facts.path.find(['?', '#']) {
        facts.path.truncate(end);
        facts.path_is_exact = false;
    }
    for empty_is_none in [
        &mut facts.session_id,
        &mut facts.virtual_server,
        &mut facts.last_event_id,
    ] {
        if empty_is_none.as_deref() == Some("") {
            *empty_is_none = None;
        }
    }
    facts
}

pub(super) fn value_of(h: &Header<'_>) -> String {
    // `from_utf8` checks a word at a time; `from_utf8_lossy` walks every byte even when all is
    // well (about 500 instructions for a session id).
    match std::str::from_utf8(h.bytes()) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(h.bytes()).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(headers: &[(&str, &str)]) -> HeaderMap {
        HeaderMap::of(headers)
    }

    #[test]
    fn facts_from_headers() {
        let f = read_facts(
            &map(&[
                (":method", "POST"),
                (":path", "/mcp?x=1#frag"),
                ("content-type", "application/json"),
                ("mcp-session-id", "first"),
                ("mcp-session-id", "second"),
                ("mcp-protocol-version", "2025-11-25"),
                ("authorization", "Bearer t"),
                ("traceparent", "00-aa-bb-01"),
                ("tracestate", "k=v"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "kube_pods_list"),
                ("origin", "http://localhost"),
                ("x-mcp-virtualserver", ""),
                ("last-event-id", ""),
                ("x-other", "ignored"),
            ]),
            false,
        );
        assert_eq!(f.method, http::Method::POST);
        assert_eq!(f.path, "/mcp");
        assert!(!f.path_is_exact, "the query and fragment were cut off");
        assert_eq!(f.content_type.as_deref(), Some("application/json"));
        assert_eq!(f.session_id.as_deref(), Some("first"));
        assert_eq!(f.protocol_version.as_deref(), Some("2025-11-25"));
        assert_eq!(f.authorization.as_deref(), Some("Bearer t"));
        assert_eq!(f.traceparent.as_deref(), Some("00-aa-bb-01"));
        assert_eq!(f.tracestate.as_deref(), Some("k=v"));
        assert_eq!(f.mcp_method.as_deref(), Some("tools/call"));
        assert_eq!(f.mcp_name.as_deref(), Some("kube_pods_list"));
        assert_eq!(f.origin.as_deref(), Some("http://localhost"));
        assert_eq!(f.virtual_server, None);
        assert_eq!(f.last_event_id, None);
        assert!(!f.end_of_stream);
    }

    #[test]
    fn missing_and_empty_headers() {
        // (headers, path, whether `:path` was exactly that path, session)
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, bool, Option<&'a str>);
        let cases: &[Case] = &[
            (&[], "", false, None),
            (&[(":path", "/mcp")], "/mcp", true, None),
            (
                &[(":path", "/mcp"), (":path", "/other")],
                "/mcp",
                false,
                None,
            ),
            (&[(":path", "/mcp?")], "/mcp", false, None),
            (&[(":path", "/mcp#")], "/mcp", false, None),
            (
                &[(":path", "/mcp"), ("mcp-session-id", "")],
                "/mcp",
                true,
                None,
            ),
            (&[(":path", "?q")], "", false, None),
            (&[("mcp-session-id", "s")], "", false, Some("s")),
        ];
        for (headers, path, exact, session) in cases {
            let f = read_facts(&map(headers), true);
            assert_eq!(f.path, *path, "{headers:?}");
            assert_eq!(f.path_is_exact, *exact, "{headers:?}");
            assert_eq!(f.session_id.as_deref(), *session, "{headers:?}");
            assert!(f.end_of_stream);
        }
    }

    #[test]
    fn response_facts() {
        // (headers, status, media, challenged)
        type Case<'a> = (&'a [(&'a str, &'a str)], u16, MediaType, bool);
        let cases: &[Case] = &[
            (
                &[(":status", "200"), ("content-type", "Text/Event-Stream")],
                200,
                MediaType::EventStream,
                false,
            ),
            (
                &[
                    (":status", "404"),
                    ("content-type", "application/json; charset=utf-8"),
                ],
                404,
                MediaType::Json,
                false,
            ),
            (
                &[(":status", "403"), ("www-authenticate", "Bearer")],
                403,
                MediaType::Other,
                true,
            ),
            (&[(":status", "x")], 0, MediaType::Other, false),
            (&[], 0, MediaType::Other, false),
        ];
        for (headers, status, media, challenged) in cases {
            let f = read_response_facts(&map(headers));
            assert_eq!(
                (f.status, f.media, f.challenged),
                (*status, *media, *challenged),
                "{headers:?}"
            );
        }
    }

    #[test]
    fn methods_are_typed() {
        for (m, want) in [
            ("POST", http::Method::POST),
            ("GET", http::Method::GET),
            ("OPTIONS", http::Method::OPTIONS),
        ] {
            assert_eq!(read_facts(&map(&[(":method", m)]), true).method, want);
        }
    }
}
