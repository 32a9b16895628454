//! The routing decision: a pure function of the config and catalog snapshots, the request's
//! header facts and its parsed body. No I/O, no clocks: table-driven tests cover it.

use std::ops::Range;
use std::sync::Arc;

use crate::catalog::Catalog;
use crate::config::{Config, Server};
use crate::jsonrpc::{self, Kind, Message, OwnedId, ParamsError, TargetField};
use crate::mcp::{code, method, CallTarget};

pub use crate::mcp::CallKind;

/// What the request headers tell, read once per stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderFacts {
    pub method: String,
    /// `:path` without the query.
    pub path: String,
    pub content_type: Option<String>,
    pub session_id: Option<String>,
    pub protocol_version: Option<String>,
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

/// The path the gateway serves MCP on.
pub const MCP_PATH: &str = "/mcp";

/// A request the router answers itself, with an HTTP status and a JSON-RPC error.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    pub status: u16,
    pub code: i64,
    pub message: String,
    pub id: Option<OwnedId>,
    /// The error's `data`, when it has one.
    pub data: Option<serde_json::Value>,
}

impl Reject {
    pub fn new(status: u16, code: i64, message: impl Into<String>, id: Option<OwnedId>) -> Reject {
        Reject {
            status,
            code,
            message: message.into(),
            id,
            data: None,
        }
    }

    pub fn with_data(mut self, data: serde_json::Value) -> Reject {
        self.data = Some(data);
        self
    }

    /// The JSON-RPC error body.
    pub fn body(&self) -> Vec<u8> {
        jsonrpc::error_body(
            self.id.as_deref(),
            self.code,
            &self.message,
            self.data.as_ref(),
        )
    }
}

/// The decision on request headers.
#[derive(Debug, Clone, PartialEq)]
pub enum HeadersDecision {
    /// An upstream initialize sent back through the gateway: straight to that server, with
    /// the policy headers of the call that triggered it (when its key names one).
    Hairpin(Arc<Server>, Option<CallTarget>),
    /// A GET that resumes an upstream's SSE stream (a tagged `Last-Event-ID`).
    Resume(super::relay::Resume),
    /// The broker answers, and the body does not matter (GET, DELETE, other paths).
    Broker,
    /// A POST to the MCP endpoint: decide on the body.
    NeedBody,
    Reject(Reject),
}

/// Decides what a request's headers alone allow.
pub fn decide_headers(config: &Config, facts: &HeaderFacts) -> HeadersDecision {
    if let Some(name) = &facts.hairpin_server {
        return match config.server(name).filter(|s| s.enabled) {
            Some(s) => HeadersDecision::Hairpin(s.clone(), facts.hairpin_call.clone()),
            None => HeadersDecision::Reject(Reject::new(
                404,
                code::INVALID_PARAMS,
                format!("unknown upstream server {name:?}"),
                None,
            )),
        };
    }
    // POSTs are checked on the body, so that the error carries the request's id.
    if facts.path == MCP_PATH && facts.method != "POST" {
        if let Some(v) = facts.protocol_version.as_deref() {
            if !crate::mcp::is_known_version(v) {
                return HeadersDecision::Reject(unsupported_version(v));
            }
        }
    }
    if let Some(r) = super::relay::decide_resume(config, facts) {
        return HeadersDecision::Resume(r);
    }
    if facts.path != MCP_PATH || facts.method != "POST" {
        return HeadersDecision::Broker;
    }
    let json = crate::mcp::is_json_content_type(facts.content_type.as_deref());
    if !json {
        return HeadersDecision::Reject(Reject::new(
            415,
            code::INVALID_REQUEST,
            "Content-Type must be application/json",
            None,
        ));
    }
    if facts.end_of_stream {
        return HeadersDecision::Reject(Reject::new(
            400,
            code::PARSE_ERROR,
            "request body is empty",
            None,
        ));
    }
    HeadersDecision::NeedBody
}

/// 400 with -32022 and the versions the gateway speaks (what 2026-07-28 clients re-probe with).
pub fn unsupported_version(requested: &str) -> Reject {
    Reject::new(
        400,
        code::UNSUPPORTED_PROTOCOL_VERSION,
        format!("Unsupported protocol version {requested:?}"),
        None,
    )
    .with_data(serde_json::json!({
        "supported": crate::mcp::all_versions(),
        "requested": requested,
    }))
}

/// A call routed to an upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamCall {
    pub server: Arc<Server>,
    pub kind: CallKind,
    pub method: &'static str,
    /// The name (or URI) the upstream knows.
    pub upstream_name: String,
    pub hints: Option<Arc<str>>,
    /// The span of the name literal to replace; `None` when the name stays as it is.
    pub rename: Option<Range<usize>>,
    pub id: OwnedId,
}

/// The decision on a request body.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The broker answers; `method` is for `x-mcp-method` (empty for client responses).
    Broker {
        method: String,
    },
    Upstream(UpstreamCall),
    /// A client's answer to a request an upstream sent it during a call: back to that upstream.
    Relay(super::relay::RelayedResponse),
    Reject(Reject),
}

/// Decides where a parsed JSON-RPC message goes.
pub fn decide_body(
    config: &Config,
    catalog: &Catalog,
    facts: &HeaderFacts,
    msg: &Message<'_>,
) -> Decision {
    let m = msg.method.as_deref().unwrap_or("");
    if let Some(v) = facts.protocol_version.as_deref() {
        if !crate::mcp::is_known_version(v) {
            let mut r = unsupported_version(v);
            r.id = msg.owned_id();
            return Decision::Reject(r);
        }
    }
    if let Some(h) = &facts.mcp_method {
        if h != m {
            return Decision::Reject(Reject::new(
                400,
                code::HEADER_MISMATCH,
                format!("Mcp-Method header {h:?} does not match the body's method {m:?}"),
                msg.owned_id(),
            ));
        }
    }
    let modern = crate::mcp::is_modern(facts.protocol_version.as_deref());
    if modern && msg.kind == Kind::Request && facts.mcp_method.is_none() {
        // 2026-07-28 makes the header required, and a request without it is refused.
        return Decision::Reject(Reject::new(
            400,
            code::HEADER_MISMATCH,
            format!("Mcp-Method header is required (protocol version 2026-07-28); the body's method is {m:?}"),
            msg.owned_id(),
        ));
    }
    if msg.kind == Kind::Request && modern && crate::mcp::modern::is_removed(m) {
        return Decision::Reject(Reject::new(
            404,
            code::METHOD_NOT_FOUND,
            format!("Method not found: {m} (not in protocol version 2026-07-28)"),
            msg.owned_id(),
        ));
    }
    if msg.kind == Kind::Response {
        if let Some(d) = super::relay::decide_response(config, msg) {
            return d;
        }
    }
    let Some((kind, m_static, target)) = routed_target(msg, m) else {
        return Decision::Broker {
            method: m.to_owned(),
        };
    };
    let id = msg.owned_id();
    let reject = |status, code, message: String| {
        Decision::Reject(Reject::new(status, code, message, id.clone()))
    };
    let target = match target {
        Ok(t) if facts.mcp_name.as_deref().is_some_and(|h| h != t.value) => {
            return reject(
                400,
                code::HEADER_MISMATCH,
                format!(
                    "Mcp-Name header {:?} does not match the body's {:?}",
                    facts.mcp_name.as_deref().unwrap_or(""),
                    &*t.value
                ),
            )
        }
        Ok(t)
            if modern
                && facts.mcp_name.is_none()
                && matches!(
                    m_static,
                    method::TOOLS_CALL | method::PROMPTS_GET | method::RESOURCES_READ
                ) =>
        {
            return reject(
                400,
                code::HEADER_MISMATCH,
                format!(
                    "Mcp-Name header is required (protocol version 2026-07-28); the body names {:?}",
                    &*t.value
                ),
            )
        }
        Ok(t) => t,
        Err(
            e @ (ParamsError::Missing(_)
            | ParamsError::NotString(_)
            | ParamsError::NotObject
            | ParamsError::Invalid(_)),
        ) => return reject(400, code::INVALID_PARAMS, e.to_string()),
    };
    // A stateless (2026-07-28) client has no session: the router keeps upstream sessions per
    // caller for it.
    if facts.session_id.is_none() && !crate::mcp::is_modern(facts.protocol_version.as_deref()) {
        return reject(
            400,
            code::INVALID_REQUEST,
            "Mcp-Session-Id header is required: call initialize first".into(),
        );
    }
    let noun = match kind {
        CallKind::Tool => "tool",
        CallKind::Prompt => "prompt",
        CallKind::Resource => "resource",
    };
    if let Some(vs_name) = &facts.virtual_server {
        let Some(vs) = config.virtual_server(vs_name) else {
            return reject(
                404,
                code::INVALID_PARAMS,
                format!("unknown virtual server {vs_name:?}"),
            );
        };
        let listed = match kind {
            CallKind::Tool => vs.tools.contains(&*target.value),
            CallKind::Prompt => vs.prompts.is_empty() || vs.prompts.contains(&*target.value),
            CallKind::Resource => true,
        };
        if !listed {
            return reject(
                UNKNOWN_TARGET_STATUS,
                code::INVALID_PARAMS,
                format!(
                    "Unknown {noun}: {} (not in virtual server {vs_name})",
                    target.value
                ),
            );
        }
    }
    let resolved = match kind {
        CallKind::Tool => catalog.find_tool(&target.value),
        CallKind::Prompt => catalog.find_prompt(&target.value),
        CallKind::Resource => catalog.find_resource(&target.value),
    };
    let Some(r) = resolved else {
        let r = Reject::new(
            UNKNOWN_TARGET_STATUS,
            code::INVALID_PARAMS,
            format!("Unknown {noun}: {}", target.value),
            id,
        );
        // SEP-2164: a resource that is not there names its URI in the error's data.
        return Decision::Reject(match kind {
            CallKind::Resource => r.with_data(serde_json::json!({"uri": &*target.value})),
            _ => r,
        });
    };
    let Some(id) = id else {
        // decide_body is only reached for requests, which always have an id.
        return Decision::Broker {
            method: m.to_owned(),
        };
    };
    Decision::Upstream(UpstreamCall {
        server: r.server.clone(),
        kind,
        method: m_static,
        rename: (r.name != target.value).then(|| target.span.clone()),
        upstream_name: r.name.to_owned(),
        hints: r.hints.map(Into::into),
        id,
    })
}

/// The requests that go to the server offering what they name: what kind of thing they name,
/// the method (static, for headers and metrics), and the name or URI with its span.
fn routed_target<'a>(
    msg: &Message<'a>,
    m: &str,
) -> Option<(
    CallKind,
    &'static str,
    Result<jsonrpc::Target<'a>, ParamsError>,
)> {
    if msg.kind != Kind::Request {
        return None;
    }
    let named = |kind, m_static, field| Some((kind, m_static, msg.target(field)));
    match m {
        method::TOOLS_CALL => named(CallKind::Tool, method::TOOLS_CALL, TargetField::Name),
        method::PROMPTS_GET => named(CallKind::Prompt, method::PROMPTS_GET, TargetField::Name),
        method::RESOURCES_READ => {
            named(CallKind::Resource, method::RESOURCES_READ, TargetField::Uri)
        }
        method::RESOURCES_SUBSCRIBE => named(
            CallKind::Resource,
            method::RESOURCES_SUBSCRIBE,
            TargetField::Uri,
        ),
        method::RESOURCES_UNSUBSCRIBE => named(
            CallKind::Resource,
            method::RESOURCES_UNSUBSCRIBE,
            TargetField::Uri,
        ),
        // Completion of a prompt's or a resource template's argument: the server that offers it.
        method::COMPLETION_COMPLETE => Some(match msg.completion_ref() {
            Ok((TargetField::Name, t)) => (CallKind::Prompt, method::COMPLETION_COMPLETE, Ok(t)),
            Ok((TargetField::Uri, t)) => (CallKind::Resource, method::COMPLETION_COMPLETE, Ok(t)),
            Err(e) => (CallKind::Prompt, method::COMPLETION_COMPLETE, Err(e)),
        }),
        _ => None,
    }
}

/// HTTP status of "no such tool/prompt/resource". The JSON-RPC error (-32602) tells the client
/// what is wrong; a 404 would make a Streamable HTTP client believe its session is gone and
/// start over, so the reply is a normal 200 JSON-RPC error response, as MCP servers send.
pub const UNKNOWN_TARGET_STATUS: u16 = 200;

/// The reply to a body that is not one valid JSON-RPC message: with its id when one can be read.
pub fn reject_parse_error(e: &jsonrpc::ParseError, body: &[u8]) -> Reject {
    Reject::new(400, e.code(), e.to_string(), jsonrpc::readable_id(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Health, ServerLists};
    use std::collections::HashMap;

    fn config() -> Config {
        Config::from_yaml(
            r#"
servers:
  - {name: ns/kube, url: 'http://kube:9999/mcp', hostname: kube.local, prefix: kube_}
  - {name: ns/ev, url: 'http://ev:3001/mcp', hostname: ev.local, prefix: ev_}
  - {name: ns/off, url: 'http://off/mcp', prefix: off_, state: Disabled}
virtualServers:
  - {name: ns/dev, tools: [kube_pods_list]}
"#,
        )
        .expect("config")
    }

    fn catalog(config: &Config) -> Catalog {
        let mut d = HashMap::new();
        d.insert(
            "ns/kube".into(),
            ServerLists {
                tools: vec![
                    serde_json::json!({"name": "pods_list", "annotations": {"readOnlyHint": true}}),
                    serde_json::json!({"name": "namespaces_list"}),
                ],
                resources: vec![serde_json::json!({"uri": "k8s://cluster", "name": "cluster"})],
                resource_templates: vec![
                    serde_json::json!({"uriTemplate": "k8s://pods/{name}", "name": "pod"}),
                ],
                health: Health::Ready,
                ..Default::default()
            },
        );
        d.insert(
            "ns/ev".into(),
            ServerLists {
                tools: vec![serde_json::json!({"name": "echo"})],
                prompts: vec![serde_json::json!({"name": "simple"})],
                health: Health::Ready,
                ..Default::default()
            },
        );
        Catalog::build(config, &d)
    }

    fn facts() -> HeaderFacts {
        HeaderFacts {
            method: "POST".into(),
            path: MCP_PATH.into(),
            content_type: Some("application/json".into()),
            session_id: Some("s".into()),
            ..Default::default()
        }
    }

    #[test]
    fn headers() {
        let c = config();
        let with = |f: fn(&mut HeaderFacts)| {
            let mut x = facts();
            f(&mut x);
            decide_headers(&c, &x)
        };
        assert_eq!(with(|_| {}), HeadersDecision::NeedBody);
        assert_eq!(
            with(|f| f.content_type = Some("Application/JSON; charset=utf-8".into())),
            HeadersDecision::NeedBody
        );
        assert_eq!(with(|f| f.method = "GET".into()), HeadersDecision::Broker);
        assert_eq!(
            with(|f| f.method = "DELETE".into()),
            HeadersDecision::Broker
        );
        assert_eq!(
            with(|f| f.path = "/.well-known/oauth-protected-resource/mcp".into()),
            HeadersDecision::Broker
        );
        assert!(
            matches!(with(|f| f.content_type = Some("text/plain".into())), HeadersDecision::Reject(r) if r.status == 415)
        );
        assert!(
            matches!(with(|f| f.content_type = None), HeadersDecision::Reject(r) if r.status == 415)
        );
        assert!(
            matches!(with(|f| f.end_of_stream = true), HeadersDecision::Reject(r) if r.status == 400)
        );
        assert!(
            matches!(with(|f| f.hairpin_server = Some("ns/kube".into())), HeadersDecision::Hairpin(s, None) if &*s.name == "ns/kube")
        );
        let call = CallTarget {
            method: method::TOOLS_CALL.into(),
            kind: CallKind::Tool,
            name: "pods_list".into(),
            hints: None,
            verified_sub: None,
        };
        let mut hairpin = facts();
        hairpin.hairpin_server = Some("ns/kube".into());
        hairpin.hairpin_call = Some(call.clone());
        assert!(
            matches!(decide_headers(&c, &hairpin), HeadersDecision::Hairpin(s, Some(got)) if &*s.name == "ns/kube" && got == call),
            "the call of the key goes with the decision"
        );
        assert!(
            matches!(with(|f| f.hairpin_server = Some("ns/off".into())), HeadersDecision::Reject(r) if r.status == 404)
        );
        let resume = |f: &mut HeaderFacts| {
            f.method = "GET".into();
            f.last_event_id = Some(crate::router::relay::tag("ns/ev", "7"));
        };
        assert!(
            matches!(with(resume), HeadersDecision::Resume(r) if &*r.server.name == "ns/ev" && r.last_event_id == "7")
        );
        assert_eq!(
            with(|f| {
                f.method = "GET".into();
                f.last_event_id = Some("7".into());
            }),
            HeadersDecision::Broker
        );
    }

    struct Case {
        body: &'static str,
        facts: fn(&mut HeaderFacts),
        expect: Expect,
    }

    #[derive(Debug)]
    enum Expect {
        Broker(&'static str),
        Relay {
            server: &'static str,
            upstream_id: &'static str,
        },
        Upstream {
            server: &'static str,
            name: &'static str,
            renamed: bool,
            hints: Option<&'static str>,
        },
        Reject {
            status: u16,
            code: i64,
            id: Option<&'static str>,
            needle: &'static str,
        },
    }

    #[test]
    fn bodies() {
        let c = config();
        let cat = catalog(&c);
        let cases = [
            Case { body: r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#, facts: |_| {}, expect: Expect::Broker("initialize") },
            Case { body: r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#, facts: |f| f.session_id = None, expect: Expect::Broker("tools/list") },
            Case { body: r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#, facts: |_| {}, expect: Expect::Broker("notifications/initialized") },
            Case { body: r#"{"jsonrpc":"2.0","id":9,"result":{}}"#, facts: |_| {}, expect: Expect::Broker("") },
            Case { body: r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"kube_pods_list"}}"#, facts: |_| {},
                   expect: Expect::Upstream { server: "ns/kube", name: "pods_list", renamed: true, hints: Some("readOnly=true,destructive=unspecified,idempotent=unspecified,openWorld=unspecified") } },
            Case { body: r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"kube_brand_new"}}"#, facts: |_| {},
                   expect: Expect::Upstream { server: "ns/kube", name: "brand_new", renamed: true, hints: None } },
            Case { body: r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"ev_simple"}}"#, facts: |_| {},
                   expect: Expect::Upstream { server: "ns/ev", name: "simple", renamed: true, hints: None } },
            Case { body: r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"k8s://cluster"}}"#, facts: |_| {},
                   expect: Expect::Upstream { server: "ns/kube", name: "k8s://cluster", renamed: false, hints: None } },
            Case { body: r#"{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"nope"}}"#, facts: |_| {},
                   expect: Expect::Reject { status: 200, code: -32602, id: Some(r#""x""#), needle: "Unknown tool: nope" } },
            Case { body: r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"off_thing"}}"#, facts: |_| {},
                   expect: Expect::Reject { status: 200, code: -32602, id: Some("2"), needle: "Unknown tool" } },
            Case { body: r#"{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"file:///nope"}}"#, facts: |_| {},
                   expect: Expect::Reject { status: 200, code: -32602, id: Some("3"), needle: "Unknown resource" } },
            Case { body: r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"arguments":{}}}"#, facts: |_| {},
                   expect: Expect::Reject { status: 400, code: -32602, id: Some("4"), needle: "params.name is required" } },
            Case { body: r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"kube_pods_list"}}"#, facts: |f| f.session_id = None,
                   expect: Expect::Reject { status: 400, code: -32600, id: Some("5"), needle: "Mcp-Session-Id" } },
            Case { body: r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"kube_pods_list"}}"#, facts: |f| f.virtual_server = Some("ns/dev".into()),
                   expect: Expect::Upstream { server: "ns/kube", name: "pods_list", renamed: true, hints: Some("readOnly=true,destructive=unspecified,idempotent=unspecified,openWorld=unspecified") } },
            Case { body: r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"ev_echo"}}"#, facts: |f| f.virtual_server = Some("ns/dev".into()),
                   expect: Expect::Reject { status: 200, code: -32602, id: Some("7"), needle: "not in virtual server" } },
            Case { body: r#"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"ev_echo"}}"#, facts: |f| f.virtual_server = Some("ns/none".into()),
                   expect: Expect::Reject { status: 404, code: -32602, id: Some("8"), needle: "unknown virtual server" } },
            Case { body: r#"{"jsonrpc":"2.0","id":20,"method":"tools/call","params":{"name":"ev_echo"}}"#, facts: |f| { f.mcp_method = Some("tools/call".into()); f.mcp_name = Some("ev_echo".into()); },
                   expect: Expect::Upstream { server: "ns/ev", name: "echo", renamed: true, hints: None } },
            Case { body: r#"{"jsonrpc":"2.0","id":21,"method":"tools/call","params":{"name":"ev_echo"}}"#, facts: |f| f.mcp_method = Some("tools/list".into()),
                   expect: Expect::Reject { status: 400, code: -32020, id: Some("21"), needle: "Mcp-Method" } },
            Case { body: r#"{"jsonrpc":"2.0","id":22,"method":"tools/call","params":{"name":"ev_echo"}}"#, facts: |f| f.mcp_name = Some("kube_pods_list".into()),
                   expect: Expect::Reject { status: 400, code: -32020, id: Some("22"), needle: "Mcp-Name" } },
            Case { body: r#"{"jsonrpc":"2.0","id":23,"method":"tools/list"}"#, facts: |f| f.mcp_method = Some("tools/call".into()),
                   expect: Expect::Reject { status: 400, code: -32020, id: Some("23"), needle: "Mcp-Method" } },
            // 2026-07-28: Mcp-Method always, Mcp-Name for a call, and no removed methods.
            Case { body: r#"{"jsonrpc":"2.0","id":24,"method":"tools/list"}"#, facts: |f| f.protocol_version = Some("2026-07-28".into()),
                   expect: Expect::Reject { status: 400, code: -32020, id: Some("24"), needle: "Mcp-Method header is required" } },
            Case { body: r#"{"jsonrpc":"2.0","id":25,"method":"tools/call","params":{"name":"ev_echo"}}"#, facts: |f| { f.protocol_version = Some("2026-07-28".into()); f.mcp_method = Some("tools/call".into()); },
                   expect: Expect::Reject { status: 400, code: -32020, id: Some("25"), needle: "Mcp-Name header is required" } },
            Case { body: r#"{"jsonrpc":"2.0","id":26,"method":"tools/call","params":{"name":"ev_echo"}}"#, facts: |f| { f.protocol_version = Some("2026-07-28".into()); f.session_id = None; f.mcp_method = Some("tools/call".into()); f.mcp_name = Some("ev_echo".into()); },
                   expect: Expect::Upstream { server: "ns/ev", name: "echo", renamed: true, hints: None } },
            Case { body: r#"{"jsonrpc":"2.0","id":27,"method":"resources/subscribe","params":{"uri":"k8s://cluster"}}"#, facts: |f| { f.protocol_version = Some("2026-07-28".into()); f.mcp_method = Some("resources/subscribe".into()); },
                   expect: Expect::Reject { status: 404, code: -32601, id: Some("27"), needle: "Method not found" } },
            Case { body: r#"{"jsonrpc":"2.0","id":28,"method":"resources/read","params":{"uri":"nope://x"}}"#, facts: |_| {},
                   expect: Expect::Reject { status: 200, code: -32602, id: Some("28"), needle: "Unknown resource: nope://x" } },
            // Resources by template; subscriptions and completions go where their target lives.
            Case { body: r#"{"jsonrpc":"2.0","id":30,"method":"resources/read","params":{"uri":"k8s://pods/web-1"}}"#, facts: |_| {},
                   expect: Expect::Upstream { server: "ns/kube", name: "k8s://pods/web-1", renamed: false, hints: None } },
            Case { body: r#"{"jsonrpc":"2.0","id":31,"method":"resources/subscribe","params":{"uri":"k8s://cluster"}}"#, facts: |_| {},
                   expect: Expect::Upstream { server: "ns/kube", name: "k8s://cluster", renamed: false, hints: None } },
            Case { body: r#"{"jsonrpc":"2.0","id":32,"method":"resources/unsubscribe","params":{"uri":"k8s://pods/a"}}"#, facts: |_| {},
                   expect: Expect::Upstream { server: "ns/kube", name: "k8s://pods/a", renamed: false, hints: None } },
            Case { body: r#"{"jsonrpc":"2.0","id":33,"method":"resources/subscribe","params":{"uri":"k8s://nodes/a"}}"#, facts: |_| {},
                   expect: Expect::Reject { status: 200, code: -32602, id: Some("33"), needle: "Unknown resource" } },
            Case { body: r#"{"jsonrpc":"2.0","id":34,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"ev_simple"},"argument":{"name":"a","value":"b"}}}"#, facts: |_| {},
                   expect: Expect::Upstream { server: "ns/ev", name: "simple", renamed: true, hints: None } },
            Case { body: r#"{"jsonrpc":"2.0","id":35,"method":"completion/complete","params":{"ref":{"type":"ref/resource","uri":"k8s://pods/{name}"},"argument":{"name":"name","value":"w"}}}"#, facts: |_| {},
                   expect: Expect::Upstream { server: "ns/kube", name: "k8s://pods/{name}", renamed: false, hints: None } },
            Case { body: r#"{"jsonrpc":"2.0","id":36,"method":"completion/complete","params":{"ref":{"type":"ref/tool","name":"ev_echo"}}}"#, facts: |_| {},
                   expect: Expect::Reject { status: 400, code: -32602, id: Some("36"), needle: "ref/prompt" } },
            Case { body: r#"{"jsonrpc":"2.0","id":37,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"kube_nope"}}}"#, facts: |_| {},
                   expect: Expect::Upstream { server: "ns/kube", name: "nope", renamed: true, hints: None } },
            Case { body: r#"{"jsonrpc":"2.0","id":38,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"nope"}}}"#, facts: |_| {},
                   expect: Expect::Reject { status: 200, code: -32602, id: Some("38"), needle: "Unknown prompt: nope" } },
            // A client's answer to an upstream's request goes back to it; other answers to the broker.
            Case { body: r#"{"jsonrpc":"2.0","id":"mcpgw.bnMvZXY.5","result":{"action":"accept"}}"#, facts: |_| {},
                   expect: Expect::Relay { server: "ns/ev", upstream_id: "5" } },
            Case { body: r#"{"jsonrpc":"2.0","id":"mcpgw.bnMvb2Zm.5","result":{}}"#, facts: |_| {}, expect: Expect::Broker("") },
        ];
        for case in cases {
            let mut f = facts();
            (case.facts)(&mut f);
            let msg = jsonrpc::parse(case.body.as_bytes()).expect(case.body);
            let d = decide_body(&c, &cat, &f, &msg);
            match (&case.expect, &d) {
                (Expect::Broker(m), Decision::Broker { method }) => {
                    assert_eq!(method, m, "{}", case.body)
                }
                (
                    Expect::Relay {
                        server,
                        upstream_id,
                    },
                    Decision::Relay(r),
                ) => {
                    assert_eq!(&*r.server.name, *server, "{}", case.body);
                    assert_eq!(r.upstream_id, *upstream_id, "{}", case.body);
                }
                (
                    Expect::Upstream {
                        server,
                        name,
                        renamed,
                        hints,
                    },
                    Decision::Upstream(call),
                ) => {
                    assert_eq!(&*call.server.name, *server, "{}", case.body);
                    assert_eq!(call.upstream_name, *name, "{}", case.body);
                    assert_eq!(call.rename.is_some(), *renamed, "{}", case.body);
                    assert_eq!(call.hints.as_deref(), *hints, "{}", case.body);
                    if let Some(span) = &call.rename {
                        assert!(case.body[span.clone()].starts_with('"'), "{}", case.body);
                    }
                }
                (
                    Expect::Reject {
                        status,
                        code,
                        id,
                        needle,
                    },
                    Decision::Reject(r),
                ) => {
                    assert_eq!(r.status, *status, "{}", case.body);
                    assert_eq!(r.code, *code, "{}", case.body);
                    assert_eq!(r.id.as_ref().map(|i| i.get()), *id, "{}", case.body);
                    assert!(r.message.contains(needle), "{}: {}", case.body, r.message);
                }
                (e, d) => panic!("{}: expected {e:?}, got {d:?}", case.body),
            }
        }
    }
}
