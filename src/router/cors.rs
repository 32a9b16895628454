//! CORS for browser clients (the MCP Inspector in "Direct" mode, web apps on another origin):
//! what the router answers to a preflight and adds to every response. Pure; `respond` puts it on
//! the wire.
//!
//! Only for requests whose `Origin` passed the DNS-rebinding check ([`super::origin`]): the
//! allowed origin is echoed, never `*` and never an origin that is not allowed (those still get
//! 403), with `Vary: Origin`. Only on the paths browsers call: the MCP endpoint and the RFC 9728
//! protected resource metadata. Requests without `Origin` (non-browser clients) get nothing.
//!
//! No `Access-Control-Allow-Credentials`: MCP uses no cookies, and a bearer token travels in
//! `Authorization`, which a page sets itself and which `Access-Control-Allow-Headers` lets
//! through without credentials mode. Allowing credentials would let pages of an allowed origin
//! send the user's ambient credentials (cookies, HTTP authentication, TLS client certificates)
//! and read the answers, which the gateway has no use for; an upstream's (or a route's)
//! `Access-Control-Allow-Credentials` is removed for the same reason.

use super::facts::{RequestFacts, MCP_PATH};
use super::origin::AllowedOrigins;

/// Where RFC 9728 protected resource metadata is served (and below it, `/mcp`).
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// The methods of the MCP endpoint (Streamable HTTP), for preflights.
pub const ALLOW_METHODS: &str = "GET, POST, DELETE, OPTIONS";

/// What browsers may cache a preflight answer for, in seconds (Chromium caps it at 7200).
pub const MAX_AGE: &str = "7200";

/// The response headers a page may read: the session id (Streamable HTTP needs it), the
/// negotiated version, and the challenge of a 401 (which names the resource metadata).
pub const EXPOSE_HEADERS: &str = "Mcp-Session-Id, Mcp-Protocol-Version, WWW-Authenticate";

/// The request headers MCP clients send, answered when a preflight names one the gateway refuses
/// (or names none). `Mcp-Param-*` (2026-07-28) has no fixed names: a preflight that asks for
/// them gets its own list back.
pub const ALLOW_HEADERS: &str = "content-type, accept, authorization, mcp-session-id, \
    mcp-protocol-version, mcp-method, mcp-name, last-event-id, x-mcp-virtualserver, \
    traceparent, tracestate, baggage";

/// Whether a browser calls `path` cross-origin: the MCP endpoint and the metadata documents.
pub fn serves(path: &str) -> bool {
    path == MCP_PATH
        || path
            .strip_prefix(METADATA_PATH)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// What CORS a request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An `OPTIONS` the router answers itself (204), before authentication: browsers send
    /// preflights without credentials.
    Preflight,
    /// A request whose response (the broker's, the upstream's or the router's own error) gets
    /// [`response_headers`].
    Actual,
}

/// The CORS of a request: `None` without an `Origin` (no work for non-browser clients), with
/// an origin that is not allowed (the origin check answers 403), on a path browsers do not call,
/// and for an upstream initialize sent back through the gateway (the router itself reads that
/// answer).
pub fn kind(origins: &AllowedOrigins, facts: &RequestFacts) -> Option<Kind> {
    let origin = facts.origin.as_deref()?;
    if facts.hairpin_server.is_some() || !serves(&facts.path) || !origins.allows(origin) {
        return None;
    }
    Some(if facts.method == http::Method::OPTIONS {
        Kind::Preflight
    } else {
        Kind::Actual
    })
}

/// Whether a page of an allowed origin may send the request header `name` (lower case): any
/// well-formed name (an API key a gateway policy checks, `Mcp-Param-*`, …) except those no
/// client may set: the router's own `x-mcp-*` headers (stripped on entry anyway),
/// `x-mcp-authorized` (a policy engine's verdict), and what Envoy trusts only from its own hops.
/// Refusing them in the preflight tells the page at once that they cannot work.
pub fn accepts_request_header(name: &str) -> bool {
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    token
        && !(crate::mcp::header::is_internal(name)
            || name == crate::mcp::header::X_MCP_AUTHORIZED
            || name.starts_with("x-envoy-")
            || name.starts_with("x-forwarded-")
            || name == "forwarded"
            || name == "x-real-ip")
}

/// `Access-Control-Allow-Headers` for a preflight that asked for `requested`
/// (`Access-Control-Request-Headers`): the names it asked for when the gateway accepts them
/// all, else [`ALLOW_HEADERS`] (the browser then refuses the request, as it must).
pub fn allow_headers(requested: Option<&str>) -> String {
    let names: Vec<String> = requested
        .unwrap_or("")
        .split(',')
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    if !names.is_empty() && names.iter().all(|n| accepts_request_header(n)) {
        names.join(", ")
    } else {
        ALLOW_HEADERS.to_owned()
    }
}

/// The headers of the answer to a preflight, besides those every CORS response gets
/// ([`response_headers`]). `private_network` is the request's
/// `Access-Control-Request-Private-Network` (Chromium asks before a public page calls a gateway
/// on a private network).
pub fn preflight_headers(
    requested_headers: Option<&str>,
    private_network: Option<&str>,
) -> Vec<(&'static str, Vec<u8>)> {
    let mut h = vec![
        ("access-control-allow-methods", ALLOW_METHODS.into()),
        (
            "access-control-allow-headers",
            allow_headers(requested_headers).into_bytes(),
        ),
        ("access-control-max-age", MAX_AGE.into()),
    ];
    if private_network.is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        h.push(("access-control-allow-private-network", b"true".to_vec()));
    }
    h
}

/// What every response to a CORS request gets: set (replacing an upstream's), appended, removed.
pub struct ResponseHeaders<'a> {
    pub set: [(&'static str, &'a [u8]); 2],
    /// Appended, so that an upstream's own `Vary` values stay.
    pub append: (&'static str, &'static [u8]),
    pub remove: &'static str,
}

/// The headers every response to a CORS request from `origin` (as the request sent it) gets.
pub fn response_headers(origin: &[u8]) -> ResponseHeaders<'_> {
    ResponseHeaders {
        set: [
            ("access-control-allow-origin", origin),
            ("access-control-expose-headers", EXPOSE_HEADERS.as_bytes()),
        ],
        append: ("vary", b"Origin"),
        remove: "access-control-allow-credentials",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_requests_get_cors() {
        let origins = AllowedOrigins::new("gw.example.com", &["https://app.example.org".into()]);
        let facts = |method: &str, path: &str, origin: Option<&str>, hairpin: bool| RequestFacts {
            method: method.parse().expect("method"),
            path: path.into(),
            origin: origin.map(Into::into),
            hairpin_server: hairpin.then(|| "ns/a".into()),
            ..Default::default()
        };
        let app = Some("https://app.example.org");
        let local = Some("http://localhost:6274");
        let evil = Some("https://evil.example.com");
        let metadata = "/.well-known/oauth-protected-resource/mcp";
        for (method, path, origin, hairpin, want) in [
            ("OPTIONS", "/mcp", app, false, Some(Kind::Preflight)),
            ("OPTIONS", "/mcp", local, false, Some(Kind::Preflight)),
            ("OPTIONS", metadata, app, false, Some(Kind::Preflight)),
            ("POST", "/mcp", app, false, Some(Kind::Actual)),
            ("GET", "/mcp", local, false, Some(Kind::Actual)),
            ("DELETE", "/mcp", app, false, Some(Kind::Actual)),
            ("GET", metadata, app, false, Some(Kind::Actual)),
            // No Origin: not a browser's cross-origin request.
            ("POST", "/mcp", None, false, None),
            ("OPTIONS", "/mcp", None, false, None),
            // Not allowed: the origin check answers 403, with no CORS.
            ("OPTIONS", "/mcp", evil, false, None),
            ("POST", "/mcp", evil, false, None),
            ("POST", "/mcp", Some("null"), false, None),
            // Not a path browsers call.
            ("GET", "/status", app, false, None),
            ("OPTIONS", "/healthz", app, false, None),
            // The router's own initialize, sent back through the gateway.
            ("POST", "/mcp", app, true, None),
        ] {
            assert_eq!(
                kind(&origins, &facts(method, path, origin, hairpin)),
                want,
                "{method} {path} {origin:?} hairpin={hairpin}"
            );
        }
    }

    #[test]
    fn paths_browsers_call() {
        for (path, served) in [
            ("/mcp", true),
            ("/.well-known/oauth-protected-resource", true),
            ("/.well-known/oauth-protected-resource/mcp", true),
            ("/.well-known/oauth-protected-resourcex", false),
            ("/mcp/", false),
            ("/status", false),
            ("/healthz", false),
            ("", false),
        ] {
            assert_eq!(serves(path), served, "{path}");
        }
    }

    #[test]
    fn request_headers_a_page_may_send() {
        for (name, ok) in [
            ("content-type", true),
            ("authorization", true),
            ("mcp-session-id", true),
            ("mcp-protocol-version", true),
            ("mcp-method", true),
            ("mcp-name", true),
            ("mcp-param-region", true),
            ("last-event-id", true),
            ("x-mcp-virtualserver", true),
            ("x-api-key", true),
            ("traceparent", true),
            ("x-mcp-toolname", false),
            ("x-mcp-servername", false),
            ("x-mcp-router-key", false),
            ("x-mcp-verified-sub", false),
            ("x-mcp-authorized", false),
            ("mcp-init-host", false),
            ("x-envoy-upstream-rq-timeout-ms", false),
            ("x-forwarded-for", false),
            ("forwarded", false),
            ("x-real-ip", false),
            ("", false),
            ("bad name", false),
            ("bad\"name", false),
        ] {
            assert_eq!(accepts_request_header(name), ok, "{name}");
        }
    }

    #[test]
    fn preflights_echo_acceptable_headers_else_the_fixed_list() {
        for (requested, want) in [
            (
                Some("content-type,mcp-protocol-version,mcp-session-id"),
                "content-type, mcp-protocol-version, mcp-session-id",
            ),
            (
                Some(" Authorization , Mcp-Param-Region,x-api-key "),
                "authorization, mcp-param-region, x-api-key",
            ),
            (Some("content-type,x-mcp-toolname"), ALLOW_HEADERS),
            (Some("content-type,x-forwarded-for"), ALLOW_HEADERS),
            (Some(""), ALLOW_HEADERS),
            (Some(" , "), ALLOW_HEADERS),
            (None, ALLOW_HEADERS),
        ] {
            assert_eq!(allow_headers(requested), want, "{requested:?}");
        }
        // The fixed list covers what MCP clients send.
        for h in [
            "content-type",
            "accept",
            "authorization",
            "mcp-session-id",
            "mcp-protocol-version",
            "last-event-id",
            "mcp-method",
            "mcp-name",
        ] {
            assert!(
                ALLOW_HEADERS.split(", ").any(|a| a.trim() == h),
                "{h} missing from ALLOW_HEADERS"
            );
        }
        assert!(ALLOW_HEADERS
            .split(',')
            .all(|h| accepts_request_header(h.trim())));
    }

    #[test]
    fn preflight_answers() {
        type Case<'a> = (Option<&'a str>, Option<&'a str>, &'a [(&'a str, &'a str)]);
        let cases: &[Case] = &[
            (
                Some("content-type,mcp-session-id"),
                None,
                &[
                    ("access-control-allow-methods", "GET, POST, DELETE, OPTIONS"),
                    (
                        "access-control-allow-headers",
                        "content-type, mcp-session-id",
                    ),
                    ("access-control-max-age", "7200"),
                ],
            ),
            (
                None,
                Some("true"),
                &[
                    ("access-control-allow-methods", "GET, POST, DELETE, OPTIONS"),
                    ("access-control-allow-headers", ALLOW_HEADERS),
                    ("access-control-max-age", "7200"),
                    ("access-control-allow-private-network", "true"),
                ],
            ),
            (
                Some("authorization"),
                Some("false"),
                &[
                    ("access-control-allow-methods", "GET, POST, DELETE, OPTIONS"),
                    ("access-control-allow-headers", "authorization"),
                    ("access-control-max-age", "7200"),
                ],
            ),
        ];
        for (requested, private_network, want) in cases {
            let got = preflight_headers(*requested, *private_network);
            let got: Vec<(&str, &str)> = got
                .iter()
                .map(|(k, v)| (*k, std::str::from_utf8(v).expect("utf8")))
                .collect();
            assert_eq!(got, *want, "{requested:?} {private_network:?}");
        }
    }

    #[test]
    fn responses_echo_the_origin_and_expose_the_session_id() {
        let h = response_headers(b"http://localhost:6274");
        assert_eq!(
            h.set,
            [
                ("access-control-allow-origin", &b"http://localhost:6274"[..]),
                (
                    "access-control-expose-headers",
                    &b"Mcp-Session-Id, Mcp-Protocol-Version, WWW-Authenticate"[..]
                ),
            ]
        );
        assert_eq!(h.append, ("vary", &b"Origin"[..]));
        assert_eq!(h.remove, "access-control-allow-credentials");
    }

    /// [`crate::router::respond::add_cors`]: which answers get the headers.
    mod on_answers {
        use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
        use envoy_types::pb::envoy::service::ext_proc::v3::{processing_response, HeaderMutation};

        use crate::mcp::header;
        use crate::reply::Reject;
        use crate::router::respond::*;

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
            let mut r = reject(Reject::new(404, -32001, "unknown session", None));
            add_cors(&mut r, origin);
            let Some(processing_response::Response::ImmediateResponse(i)) = &r.to_prost().response
            else {
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
            let Some(processing_response::Response::ImmediateResponse(i)) = &r.to_prost().response
            else {
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
                let Some(processing_response::Response::ResponseHeaders(h)) =
                    &r.to_prost().response
                else {
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
    }
}
