//! Protocol facts: MCP versions, method names, header names and JSON-RPC error codes.
//!
//! Everything here is a constant or a tiny pure function; it knows no transport.

pub mod input_required;
pub mod modern;
pub mod tag;
pub mod tasks;

/// Protocol versions this gateway speaks, oldest first.
pub const SUPPORTED_VERSIONS: &[&str] = &["2025-03-26", "2025-06-18", "2025-11-25"];
/// Stateless protocol versions (no initialize, no sessions): a request names its version in the
/// `MCP-Protocol-Version` header.
pub const MODERN_VERSIONS: &[&str] = &["2026-07-28"];
/// The newest stateless version.
pub const MODERN_VERSION: &str = "2026-07-28";

/// Whether a request's `MCP-Protocol-Version` is a stateless (2026-07-28 and later) version.
pub fn is_modern(version: Option<&str>) -> bool {
    version.is_some_and(|v| MODERN_VERSIONS.contains(&v))
}

/// Whether the gateway speaks `version` (either generation).
pub fn is_known_version(version: &str) -> bool {
    MODERN_VERSIONS.contains(&version) || SUPPORTED_VERSIONS.contains(&version)
}

/// Every version the gateway speaks, newest first (`server/discover`, error -32022).
pub fn all_versions() -> Vec<&'static str> {
    MODERN_VERSIONS
        .iter()
        .rev()
        .chain(SUPPORTED_VERSIONS.iter().rev())
        .copied()
        .collect()
}

/// The version the gateway answers with when a client asks for one it does not know.
pub const LATEST_VERSION: &str = "2025-11-25";
/// The version assumed when a client sends no `MCP-Protocol-Version` header (spec: 2025-03-26).
pub const DEFAULT_VERSION: &str = "2025-03-26";

/// Picks the version to answer an `initialize` with: the client's own when supported, else the latest.
pub fn negotiate_version(requested: Option<&str>) -> &'static str {
    requested
        .and_then(|r| SUPPORTED_VERSIONS.iter().copied().find(|v| *v == r))
        .unwrap_or(LATEST_VERSION)
}

/// The media types MCP's Streamable HTTP transport uses, read from a `Content-Type` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    /// `application/json`
    Json,
    /// `text/event-stream`
    EventStream,
    /// Anything else, or no usable value.
    Other,
}

/// The media type of a `Content-Type` value: its part before any parameter, compared without
/// regard to case or surrounding space (RFC 9110 §8.3.1). The one place that reads one.
pub fn media_type(value: Option<&str>) -> MediaType {
    let Some(essence) = value.and_then(|ct| ct.split(';').next()).map(str::trim) else {
        return MediaType::Other;
    };
    if essence.eq_ignore_ascii_case("application/json") {
        MediaType::Json
    } else if essence.eq_ignore_ascii_case("text/event-stream") {
        MediaType::EventStream
    } else {
        MediaType::Other
    }
}

/// Whether a `Content-Type` value is `application/json` (parameters such as charset allowed).
pub fn is_json_content_type(value: Option<&str>) -> bool {
    media_type(value) == MediaType::Json
}

/// Whether a `Content-Type` value is `text/event-stream` (parameters allowed, any case).
pub fn is_event_stream_content_type(value: Option<&str>) -> bool {
    media_type(value) == MediaType::EventStream
}

/// Whether an `Accept` value lists `text/event-stream` (any case, parameters allowed). The
/// transport asks clients to list it; a wildcard is not taken for it.
pub fn accepts_event_stream(value: Option<&str>) -> bool {
    value.is_some_and(|accept| {
        accept
            .split(',')
            .any(|range| media_type(Some(range)) == MediaType::EventStream)
    })
}

/// Whether an `Accept` header names `text/event-stream` before `application/json` (both are
/// required of a Streamable HTTP client; the order says which it would rather get). Quality
/// values are not weighed: MCP clients send none.
pub fn prefers_event_stream(value: Option<&str>) -> bool {
    let Some(accept) = value else {
        return false;
    };
    for range in accept.split(',') {
        match media_type(Some(range)) {
            MediaType::EventStream => return true,
            MediaType::Json => return false,
            _ => {}
        }
    }
    false
}

/// Client capabilities an upstream session declares on the client's behalf: the ones that let
/// an upstream send the client requests, which the gateway relays (see `router::relay`).
pub const RELAYED_CLIENT_CAPABILITIES: &[&str] = &["sampling", "elicitation", "roots"];
/// Client capabilities a gateway session keeps besides the relayed ones, not declared upstream:
/// `tasks` (2025-11-25), for which the upstream sessions' GET streams are opened so that task
/// status notifications reach the client (`upstream::task_status`). Declaring it upstream would
/// invite task-augmented requests to the client, which the gateway does not relay.
pub const KEPT_CLIENT_CAPABILITIES: &[&str] = &["tasks"];

/// The relayed part of a client's capabilities, as compact JSON; `None` when it declares none of
/// them (or `capabilities` is not an object).
pub fn relayed_client_capabilities(capabilities: &serde_json::Value) -> Option<String> {
    kept_of(capabilities, RELAYED_CLIENT_CAPABILITIES, &[])
}

/// What a gateway session keeps of a client's `initialize` capabilities (in its session id): the
/// relayed ones and [`KEPT_CLIENT_CAPABILITIES`], as compact JSON; `None` when there are none.
pub fn session_client_capabilities(capabilities: &serde_json::Value) -> Option<String> {
    kept_of(
        capabilities,
        RELAYED_CLIENT_CAPABILITIES,
        KEPT_CLIENT_CAPABILITIES,
    )
}

fn kept_of(capabilities: &serde_json::Value, a: &[&str], b: &[&str]) -> Option<String> {
    let all = capabilities.as_object()?;
    let kept: serde_json::Map<String, serde_json::Value> = all
        .iter()
        .filter(|(k, v)| (a.contains(&k.as_str()) || b.contains(&k.as_str())) && v.is_object())
        .map(|(k, v)| {
            let v = if RELAYED_CLIENT_CAPABILITIES.contains(&k.as_str()) {
                relayed_shape(k, v)
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect();
    (!kept.is_empty()).then(|| serde_json::Value::Object(kept).to_string())
}

/// A relayed capability as the gateway declares it upstream: only the members MCP defines for it
/// (`sampling`: `context`, `tools`; `elicitation`: `form`, `url`; `roots`: `listChanged`), each
/// as `{}` or a boolean. Callers that declare the same share upstream sessions (and, for
/// stateless ones, the key of those sessions), so what a client can vary is kept to these few
/// shapes.
fn relayed_shape(name: &str, value: &serde_json::Value) -> serde_json::Value {
    let members: &[&str] = match name {
        "sampling" => &["context", "tools"],
        "elicitation" => &["form", "url"],
        "roots" => &["listChanged"],
        _ => &[],
    };
    let shaped: serde_json::Map<String, serde_json::Value> = members
        .iter()
        .filter_map(|m| {
            let v = match value.get(*m)? {
                serde_json::Value::Object(_) => serde_json::json!({}),
                serde_json::Value::Bool(b) => serde_json::Value::Bool(*b),
                _ => return None,
            };
            Some(((*m).to_owned(), v))
        })
        .collect();
    serde_json::Value::Object(shaped)
}

/// What a call routed to an upstream names: a tool, a prompt, a resource (by URI), or a task of
/// the Tasks extension (by the id its server gave it, [`tasks`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallKind {
    Tool,
    Prompt,
    Resource,
    Task,
}

impl CallKind {
    /// The header that names the call's target for gateway policies (the seed's names).
    pub fn policy_header(self) -> &'static str {
        match self {
            CallKind::Tool => header::X_MCP_TOOLNAME,
            CallKind::Prompt => header::X_MCP_PROMPTNAME,
            CallKind::Resource => header::X_MCP_RESOURCEURI,
            CallKind::Task => header::X_MCP_TASKID,
        }
    }
}

/// A routed call as gateway policies see it: its method and the name (or URI) the upstream
/// knows. An upstream initialize sent back through the gateway carries the one of the call that
/// needed it, so that policies keyed on `x-mcp-toolname` see it there too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallTarget {
    pub method: String,
    pub kind: CallKind,
    pub name: String,
    /// The call's `x-mcp-annotation-hints`, when the tool has annotations.
    pub hints: Option<String>,
    /// The caller's `x-mcp-verified-sub`, with native auth.
    pub verified_sub: Option<String>,
}

/// JSON-RPC method names the gateway acts on.
pub mod method {
    pub const INITIALIZE: &str = "initialize";
    /// 2026-07-28: what a server offers, instead of initialize.
    pub const SERVER_DISCOVER: &str = "server/discover";
    /// 2026-07-28: the long-lived stream of list changes, instead of the GET stream.
    pub const SUBSCRIPTIONS_LISTEN: &str = "subscriptions/listen";
    pub const INITIALIZED: &str = "notifications/initialized";
    pub const PING: &str = "ping";
    pub const TOOLS_LIST: &str = "tools/list";
    pub const TOOLS_CALL: &str = "tools/call";
    pub const PROMPTS_LIST: &str = "prompts/list";
    pub const PROMPTS_GET: &str = "prompts/get";
    pub const RESOURCES_LIST: &str = "resources/list";
    pub const RESOURCES_TEMPLATES_LIST: &str = "resources/templates/list";
    pub const RESOURCES_READ: &str = "resources/read";
    pub const RESOURCES_SUBSCRIBE: &str = "resources/subscribe";
    pub const RESOURCES_UPDATED: &str = "notifications/resources/updated";
    pub const RESOURCES_UNSUBSCRIBE: &str = "resources/unsubscribe";
    pub const COMPLETION_COMPLETE: &str = "completion/complete";
    pub const LOGGING_SET_LEVEL: &str = "logging/setLevel";
    pub const CANCELLED: &str = "notifications/cancelled";
    pub const TOOLS_LIST_CHANGED: &str = "notifications/tools/list_changed";
    pub const PROMPTS_LIST_CHANGED: &str = "notifications/prompts/list_changed";
    pub const RESOURCES_LIST_CHANGED: &str = "notifications/resources/list_changed";
}

/// Header names, lower case as HTTP/2 carries them.
pub mod header {
    pub const SESSION_ID: &str = "mcp-session-id";
    pub const PROTOCOL_VERSION: &str = "mcp-protocol-version";
    pub const AUTHORIZATION: &str = "authorization";
    pub const WWW_AUTHENTICATE: &str = "www-authenticate";
    pub const CONTENT_TYPE: &str = "content-type";
    pub const CONTENT_LENGTH: &str = "content-length";
    pub const AUTHORITY: &str = ":authority";
    pub const PATH: &str = ":path";
    pub const METHOD: &str = ":method";
    pub const STATUS: &str = ":status";

    /// 2026-07-28 clients name the method and the tool/prompt/resource in headers too.
    pub const MCP_METHOD: &str = "mcp-method";
    pub const MCP_NAME: &str = "mcp-name";
    /// 2026-07-28: the prefix of the headers that mirror a call's parameters (`Mcp-Param-*`).
    pub const MCP_PARAM_PREFIX: &str = "mcp-param-";
    pub const ORIGIN: &str = "origin";
    /// Resumes an SSE stream after this event (GET).
    pub const LAST_EVENT_ID: &str = "last-event-id";

    /// Headers the router sets for policies and routing (the seed gateway's names).
    pub const X_MCP_METHOD: &str = "x-mcp-method";
    pub const X_MCP_SERVERNAME: &str = "x-mcp-servername";
    pub const X_MCP_TOOLNAME: &str = "x-mcp-toolname";
    pub const X_MCP_PROMPTNAME: &str = "x-mcp-promptname";
    pub const X_MCP_RESOURCEURI: &str = "x-mcp-resourceuri";
    pub const X_MCP_TASKID: &str = "x-mcp-taskid";
    pub const X_MCP_ANNOTATION_HINTS: &str = "x-mcp-annotation-hints";
    /// Chosen by the client: limits lists and calls to one virtual server.
    pub const X_MCP_VIRTUALSERVER: &str = "x-mcp-virtualserver";
    /// The subject of the caller's verified bearer token (native auth); never from a client.
    pub const X_MCP_VERIFIED_SUB: &str = "x-mcp-verified-sub";
    /// Set only by a trusted policy engine (ES256 JWT); never by a client.
    pub const X_MCP_AUTHORIZED: &str = "x-mcp-authorized";
    /// The seed gateway's hairpin-initialize marker; accepted from no client.
    pub const MCP_INIT_HOST: &str = "mcp-init-host";
    /// Our signed, short-lived marker for an upstream initialize sent back through the gateway.
    pub const X_MCP_ROUTER_KEY: &str = "x-mcp-router-key";

    /// The value of `x-mcp-servername` for requests the broker answers.
    pub const BROKER_SERVER_NAME: &str = "mcpBroker";

    /// Internal headers a client must never be able to set: removed from every request on entry.
    /// (`x-mcp-virtualserver` is the client's to choose, so it is not here.)
    pub const INTERNAL: &[&str] = &[
        X_MCP_METHOD,
        X_MCP_SERVERNAME,
        X_MCP_TOOLNAME,
        X_MCP_PROMPTNAME,
        X_MCP_RESOURCEURI,
        X_MCP_TASKID,
        X_MCP_ANNOTATION_HINTS,
        MCP_INIT_HOST,
        X_MCP_ROUTER_KEY,
    ];

    /// Whether a client-sent header must be stripped: the fixed list, plus every `x-mcp-*`
    /// header except the ones a client or policy engine legitimately sends.
    ///
    /// Asked of every header of every request: one prefix test for most names (every `INTERNAL`
    /// name but `mcp-init-host` starts with `x-mcp-`; a test holds that).
    pub fn is_internal(name: &str) -> bool {
        is_internal_key(name.as_bytes())
    }

    /// [`is_internal`] of a name as bytes (as Envoy sends it), so that the common case needs no
    /// UTF-8 check.
    pub fn is_internal_key(name: &[u8]) -> bool {
        if name.starts_with(b"x-mcp-") {
            name != X_MCP_VIRTUALSERVER.as_bytes() && name != X_MCP_AUTHORIZED.as_bytes()
        } else {
            name == MCP_INIT_HOST.as_bytes()
        }
    }

    /// Headers of the client's request that its upstream initialize, sent back through the
    /// gateway, must not repeat (`name` in lower case, as HTTP/2 carries it):
    /// - pseudo-headers and hop-by-hop headers (RFC 9110 7.6.1; `proxy-authorization` is the
    ///   client's credential for a proxy);
    /// - the framing and negotiation of the client's own message, and its MCP transport
    ///   headers (session, protocol version, `Mcp-Method`/`Mcp-Name`, `Last-Event-ID`): the
    ///   initialize is a message of its own, and the upstream client sets them;
    /// - what the upstream client sets itself: `authorization` (exchanged, static or the
    ///   client's own), `traceparent` (a child of the router's span), `user-agent`;
    /// - every `x-mcp-*` header and the hairpin markers: only the router sets those;
    /// - `x-envoy-*`: Envoy trusts them on internal requests (retries, timeouts, …);
    /// - what says who the peer is (`x-forwarded-*`, `forwarded`, `x-real-ip`, the client
    ///   certificate in `x-forwarded-client-cert`, `x-request-id`): Envoy sets them for the
    ///   hop it sees, and a policy must not take the client's copies as the gateway's word.
    pub const NOT_ON_HAIRPIN: &[&str] = &[
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        CONTENT_TYPE,
        "content-encoding",
        "accept",
        "accept-encoding",
        "expect",
        SESSION_ID,
        PROTOCOL_VERSION,
        MCP_METHOD,
        MCP_NAME,
        LAST_EVENT_ID,
        AUTHORIZATION,
        "traceparent",
        "user-agent",
        MCP_INIT_HOST,
        X_MCP_ROUTER_KEY,
        ORIGIN,
        "forwarded",
        "x-real-ip",
        "x-request-id",
        "true-client-ip",
        "cf-connecting-ip",
        "x-client-ip",
        "x-cluster-client-ip",
        "client-ip",
        "fastly-client-ip",
        "fly-client-ip",
        "x-azure-clientip",
        "x-appengine-user-ip",
        "x-original-forwarded-for",
    ];

    /// Whether a header of the client's request goes with the upstream initialize it
    /// triggers when that is sent back through the gateway: every end-to-end header the
    /// client sent (an API key, a tenant, `cookie`, `tracestate`, `baggage`, …), as the
    /// routed call itself carries them to the upstream, so that gateway policies keyed on
    /// them judge the initialize as they judge the call; not those of [`NOT_ON_HAIRPIN`].
    pub fn goes_on_hairpin(name: &str) -> bool {
        !(name.starts_with(':')
            // They describe the client's own body and what it accepts, not the initialize's.
            || name.starts_with("content-")
            || name.starts_with("accept")
            || name.starts_with("x-mcp-")
            || name.starts_with("x-envoy-")
            || name.starts_with("x-forwarded-")
            || NOT_ON_HAIRPIN.contains(&name))
    }

    /// Headers that go on the hairpin but differ from one request of the same caller to the
    /// next: the 2026-07-28 per-call parameters, trace context, cache and conditional request
    /// directives, browser fetch metadata.
    const PER_REQUEST: &[&str] = &[
        "tracestate",
        "baggage",
        "b3",
        "sentry-trace",
        "grpc-trace-bin",
        "uber-trace-id",
        "x-amzn-trace-id",
        "x-cloud-trace-context",
        "x-ot-span-context",
        "x-client-trace-id",
        "x-trace-id",
        "x-correlation-id",
        "request-id",
        "idempotency-key",
        "newrelic",
        "elastic-apm-traceparent",
        "traceresponse",
        "cf-ray",
        "x-amz-cf-id",
        "x-request-start",
        "x-queue-start",
        "date",
        "cache-control",
        "pragma",
        "priority",
        "referer",
    ];

    /// Whether a header that goes on the hairpin ([`goes_on_hairpin`]) says who the caller
    /// is, so that callers differing in it must not share an upstream session (a cookie, an
    /// API key, a tenant): not those whose value changes with every request
    /// ([`PER_REQUEST`], `Mcp-Param-*`, `x-b3-*`, `x-datadog-*`, `if-*`, `sec-fetch-*`),
    /// which would make each request a new caller with an upstream session of its own.
    pub fn identifies_caller(name: &str) -> bool {
        goes_on_hairpin(name)
            && !(name.starts_with(MCP_PARAM_PREFIX)
                || name.starts_with("x-b3-")
                || name.starts_with("x-datadog-")
                || name.starts_with("if-")
                || name.starts_with("sec-fetch-")
                || PER_REQUEST.contains(&name))
    }
}

/// JSON-RPC and MCP error codes.
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
    /// Implementation-defined server errors (JSON-RPC reserves -32000..-32099).
    pub const SERVER_ERROR: i64 = -32000;
    pub const SESSION_NOT_FOUND: i64 = -32001;
    pub const UPSTREAM_UNAVAILABLE: i64 = -32002;
    pub const UPSTREAM_TIMEOUT: i64 = -32003;
    pub const REQUEST_TOO_LARGE: i64 = -32004;
    /// 2026-07-28: the `Mcp-Method` / `Mcp-Name` headers disagree with the body.
    pub const HEADER_MISMATCH: i64 = -32020;
    /// 2026-07-28: the request's protocol version is not one the server speaks (HTTP 400).
    pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
    /// No acceptable bearer token (HTTP 401).
    pub const UNAUTHORIZED: i64 = -32005;
    /// The caller may not use that tool or prompt, or get a token for that server (HTTP 403).
    pub const FORBIDDEN: i64 = -32006;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_stream_is_preferred_only_when_named_first() {
        for (accept, sse) in [
            (Some("text/event-stream, application/json"), true),
            (Some("application/json, text/event-stream"), false),
            (
                Some("text/html, text/event-stream;q=0.9, application/json"),
                true,
            ),
            (Some("application/json"), false),
            (Some("*/*"), false),
            (None, false),
        ] {
            assert_eq!(prefers_event_stream(accept), sse, "{accept:?}");
        }
    }

    #[test]
    fn negotiation_keeps_known_versions_and_falls_back_to_latest() {
        for (asked, answered) in [
            (Some("2025-03-26"), "2025-03-26"),
            (Some("2025-06-18"), "2025-06-18"),
            (Some("2025-11-25"), "2025-11-25"),
            (Some("1999-01-01"), LATEST_VERSION),
            (None, LATEST_VERSION),
        ] {
            assert_eq!(negotiate_version(asked), answered, "{asked:?}");
        }
    }

    #[test]
    fn only_relayed_client_capabilities_are_kept() {
        use serde_json::json;
        for (caps, kept) in [
            (
                json!({"sampling": {}, "elicitation": {"form": {}}, "roots": {"listChanged": true}, "experimental": {"x": {}}}),
                Some(r#"{"elicitation":{"form":{}},"roots":{"listChanged":true},"sampling":{}}"#),
            ),
            (json!({"elicitation": {}}), Some(r#"{"elicitation":{}}"#)),
            // Only the members MCP defines, as `{}` or a boolean: a client cannot make up
            // variants of its own.
            (
                json!({"sampling": {"context": {"x": 1}, "tools": {}, "n": 1}, "roots": {"listChanged": false, "n": {}}}),
                Some(r#"{"roots":{"listChanged":false},"sampling":{"context":{},"tools":{}}}"#),
            ),
            (
                json!({"elicitation": {"form": {"a": [1]}, "url": {}, "other": {}}}),
                Some(r#"{"elicitation":{"form":{},"url":{}}}"#),
            ),
            (
                json!({"roots": {"listChanged": "yes"}}),
                Some(r#"{"roots":{}}"#),
            ),
            (json!({"tasks": {"list": {}}}), None),
            (json!({"experimental": {}}), None),
            (json!({"sampling": true}), None),
            (json!({}), None),
            (json!([]), None),
        ] {
            assert_eq!(
                relayed_client_capabilities(&caps).as_deref(),
                kept,
                "{caps}"
            );
        }
        for (caps, kept) in [
            (
                json!({"tasks": {"list": {}}, "sampling": {}, "experimental": {}}),
                Some(r#"{"sampling":{},"tasks":{"list":{}}}"#),
            ),
            (json!({"tasks": true}), None),
            (json!({"roots": {}}), Some(r#"{"roots":{}}"#)),
        ] {
            assert_eq!(
                session_client_capabilities(&caps).as_deref(),
                kept,
                "{caps}"
            );
        }
    }

    #[test]
    fn json_content_types() {
        for (ct, json) in [
            (Some("application/json"), true),
            (Some("Application/JSON; charset=utf-8"), true),
            (Some(" application/json ;x=y"), true),
            (Some("application/jsonx"), false),
            (Some("text/plain"), false),
            (None, false),
        ] {
            assert_eq!(is_json_content_type(ct), json, "{ct:?}");
        }
    }

    #[test]
    fn media_types_ignore_case_space_and_parameters() {
        use MediaType::*;
        for (ct, want) in [
            (Some("text/event-stream"), EventStream),
            (Some("Text/Event-Stream; charset=utf-8"), EventStream),
            (Some("  TEXT/EVENT-STREAM "), EventStream),
            (Some("text/event-streams"), Other),
            (Some("application/json"), Json),
            (Some("APPLICATION/JSON;charset=UTF-8"), Json),
            (Some(""), Other),
            (Some("text/plain"), Other),
            (None, Other),
        ] {
            assert_eq!(media_type(ct), want, "{ct:?}");
            assert_eq!(
                is_event_stream_content_type(ct),
                want == EventStream,
                "{ct:?}"
            );
        }
    }

    #[test]
    fn accept_ranges_that_admit_an_event_stream() {
        for (accept, ok) in [
            (Some("text/event-stream"), true),
            (Some("application/json, Text/Event-Stream"), true),
            (Some("text/event-stream;q=0.5"), true),
            (Some("*/*"), false),
            (Some("application/json"), false),
            (Some("text/event-streamx"), false),
            (None, false),
        ] {
            assert_eq!(accepts_event_stream(accept), ok, "{accept:?}");
        }
    }

    #[test]
    fn only_end_to_end_client_headers_go_on_the_hairpin() {
        for (name, forwarded) in [
            // Policies may key on these; the routed call carries them to the upstream too.
            ("x-api-key", true),
            ("x-tenant", true),
            ("cookie", true),
            ("tracestate", true),
            ("baggage", true),
            ("accept-language", false),
            ("content-md5", false),
            // Checked by the gateway: an upstream's own origin list would refuse the browser.
            ("origin", false),
            // Set by the upstream client itself.
            ("authorization", false),
            ("traceparent", false),
            ("user-agent", false),
            ("content-type", false),
            ("content-length", false),
            ("accept", false),
            ("accept-encoding", false),
            // The client's own MCP transport.
            ("mcp-session-id", false),
            ("mcp-protocol-version", false),
            ("mcp-method", false),
            ("mcp-name", false),
            ("last-event-id", false),
            // Pseudo-headers and hop-by-hop.
            (":authority", false),
            (":path", false),
            ("host", false),
            ("connection", false),
            ("keep-alive", false),
            ("transfer-encoding", false),
            ("te", false),
            ("upgrade", false),
            ("proxy-authorization", false),
            // Internal: only the router sets them.
            ("x-mcp-toolname", false),
            ("x-mcp-servername", false),
            ("x-mcp-authorized", false),
            ("x-mcp-virtualserver", false),
            ("x-mcp-verified-sub", false),
            ("x-mcp-router-key", false),
            ("mcp-init-host", false),
            // Envoy's and the peer's.
            ("x-envoy-retry-on", false),
            ("x-envoy-upstream-rq-timeout-ms", false),
            ("x-forwarded-for", false),
            ("x-forwarded-client-cert", false),
            ("x-forwarded-proto", false),
            ("forwarded", false),
            ("x-real-ip", false),
            ("x-request-id", false),
            ("true-client-ip", false),
            ("cf-connecting-ip", false),
            ("x-client-ip", false),
            ("x-cluster-client-ip", false),
            ("client-ip", false),
            ("fastly-client-ip", false),
            ("x-original-forwarded-for", false),
        ] {
            assert_eq!(header::goes_on_hairpin(name), forwarded, "{name}");
        }
    }

    #[test]
    fn only_headers_that_stay_the_same_for_a_caller_identify_it() {
        for (name, identifies) in [
            ("x-api-key", true),
            ("x-tenant", true),
            ("cookie", true),
            // Forwarded, but new on every request.
            ("mcp-param-region", false),
            ("tracestate", false),
            ("baggage", false),
            ("b3", false),
            ("x-b3-traceid", false),
            ("x-datadog-trace-id", false),
            ("x-amzn-trace-id", false),
            ("x-client-trace-id", false),
            ("x-correlation-id", false),
            ("cf-ray", false),
            ("idempotency-key", false),
            ("cache-control", false),
            ("if-none-match", false),
            ("sec-fetch-mode", false),
            // Not forwarded at all.
            ("authorization", false),
            ("x-forwarded-for", false),
            ("mcp-session-id", false),
        ] {
            assert_eq!(header::identifies_caller(name), identifies, "{name}");
        }
    }

    #[test]
    fn each_kind_of_call_names_its_target_in_its_own_header() {
        for (kind, header) in [
            (CallKind::Tool, "x-mcp-toolname"),
            (CallKind::Prompt, "x-mcp-promptname"),
            (CallKind::Resource, "x-mcp-resourceuri"),
            (CallKind::Task, "x-mcp-taskid"),
        ] {
            assert_eq!(kind.policy_header(), header);
            assert!(header::is_internal(header), "{header} is never a client's");
        }
    }

    #[test]
    fn internal_headers_are_recognised() {
        for (name, internal) in [
            ("x-mcp-servername", true),
            ("x-mcp-toolname", true),
            ("x-mcp-anything-new", true),
            ("mcp-init-host", true),
            ("x-mcp-router-key", true),
            ("x-mcp-virtualserver", false),
            ("x-mcp-authorized", false),
            ("mcp-session-id", false),
            ("authorization", false),
            ("x-mcp", false),
            ("x-mcp-", true),
            ("mcp-init-hos", false),
        ] {
            assert_eq!(header::is_internal(name), internal, "{name}");
        }
        // The fixed list is internal, each entry by the prefix or by name.
        for name in header::INTERNAL {
            assert!(header::is_internal(name), "{name}");
            assert!(
                name.starts_with("x-mcp-") || *name == header::MCP_INIT_HOST,
                "{name}: is_internal tests the prefix, and names only mcp-init-host"
            );
        }
    }
}
