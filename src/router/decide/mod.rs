//! The routing decisions: pure functions of the config and catalog snapshots, the request's
//! facts and its parsed body ([`decide_headers`], [`decide_body`]), the caller's permissions
//! ([`decide_access`]) and the response's facts ([`decide_response`]). No I/O, no clocks:
//! table-driven tests cover them.

use std::ops::Range;
use std::sync::Arc;

use crate::catalog::Catalog;
use crate::config::{Config, Server};
use crate::jsonrpc::{self, Kind, Message, OwnedId, ParamsError, TargetField};
use crate::mcp::{code, method, CallTarget};

use super::facts::RequestFacts;
pub use super::facts::MCP_PATH;
pub use access::decide_access;
pub use response::{decide_response, BodyChoice, ResponseDecision, RoutedFacts};

mod access;
mod response;
mod tasks;
#[cfg(test)]
mod tests;
use super::relay::{self, RelayedResponse, Resume};
pub use crate::mcp::CallKind;
use crate::reply::{self, Reject};

/// The decision on request headers.
#[derive(Debug, Clone, PartialEq)]
pub enum HeadersDecision {
    /// An upstream initialize sent back through the gateway: straight to that server, with
    /// the policy headers of the call that triggered it (when its key names one).
    Hairpin(Arc<Server>, Option<CallTarget>),
    /// A GET that resumes an upstream's SSE stream (a tagged `Last-Event-ID`).
    Resume(Resume),
    /// The broker answers, and the body does not matter (GET, DELETE, other paths).
    Broker,
    /// A POST to the MCP endpoint: decide on the body.
    NeedBody,
    Reject(Reject),
}

impl HeadersDecision {
    /// Whether the caller is authenticated before acting on this decision: every request to the
    /// MCP endpoint but an upstream initialize sent back through the gateway (its signed key
    /// vouches for it).
    pub fn authenticates(&self, facts: &RequestFacts) -> bool {
        facts.path == MCP_PATH && !matches!(self, HeadersDecision::Hairpin(..))
    }
}

/// Decides what a request's headers alone allow.
pub fn decide_headers(config: &Config, facts: &RequestFacts) -> HeadersDecision {
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
    if facts.path == MCP_PATH && facts.method != http::Method::POST {
        if let Some(v) = facts.protocol_version.as_deref() {
            if !crate::mcp::is_known_version(v) {
                return HeadersDecision::Reject(reply::unsupported_version(v, None));
            }
        }
    }
    if let Some(r) = relay::resume(config, facts) {
        return HeadersDecision::Resume(r);
    }
    if !facts.is_mcp_post() {
        return HeadersDecision::Broker;
    }
    if facts.media() != crate::mcp::MediaType::Json {
        return HeadersDecision::Reject(reply::not_json());
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

/// A request body longer than `max` (`--max-request-body-size`) is refused with 413 before it is
/// parsed.
pub fn decide_size(len: usize, max: usize) -> Option<Reject> {
    (len > max).then(|| reply::too_large(max))
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
    /// A tool that declares an MCP App: the prefix its result's `ui://` resource URI gets.
    pub ui_prefix: Option<Arc<str>>,
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
    Relay(RelayedResponse),
    Reject(Reject),
}

/// Decides where a parsed JSON-RPC message goes.
pub fn decide_body(
    config: &Config,
    catalog: &Catalog,
    facts: &RequestFacts,
    msg: &Message<'_>,
) -> Decision {
    let m = msg.method.as_deref().unwrap_or("");
    if let Some(v) = facts.protocol_version.as_deref() {
        if !crate::mcp::is_known_version(v) {
            return Decision::Reject(reply::unsupported_version(v, msg.owned_id()));
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
        if let Some(r) = relay::relayed_response(config, msg) {
            return Decision::Relay(r);
        }
    }
    if let Some(d) = tasks::decide_task(config, catalog, facts, msg, m) {
        return d;
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
        return Decision::Reject(reply::session_required(id));
    }
    let noun = match kind {
        CallKind::Tool => "tool",
        CallKind::Prompt => "prompt",
        CallKind::Resource => "resource",
        CallKind::Task => "task",
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
            CallKind::Resource | CallKind::Task => true,
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
    // The broker's own tools (`discover_tools`, …) are its to answer, for 2025 sessions only.
    if matches!(kind, CallKind::Tool)
        && catalog.is_broker_tool(&target.value)
        && !crate::mcp::is_modern(facts.protocol_version.as_deref())
    {
        return Decision::Broker {
            method: m.to_owned(),
        };
    }
    let resolved = match kind {
        CallKind::Tool => catalog.find_tool(&target.value),
        CallKind::Prompt => catalog.find_prompt(&target.value),
        CallKind::Resource => catalog.find_resource(&target.value),
        // Routed by decide_task, never here.
        CallKind::Task => None,
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
        upstream_name: r.name.into_owned(),
        hints: r.hints.map(Into::into),
        id,
        ui_prefix: match kind {
            CallKind::Tool => catalog.ui_app_prefix(&target.value),
            _ => None,
        },
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
            Ok((TargetField::Uri | TargetField::TaskId, t)) => {
                (CallKind::Resource, method::COMPLETION_COMPLETE, Ok(t))
            }
            Err(e) => (CallKind::Prompt, method::COMPLETION_COMPLETE, Err(e)),
        }),
        _ => None,
    }
}

/// HTTP status of "no such tool/prompt/resource". The JSON-RPC error (-32602) tells the client
/// what is wrong; a 404 would make a Streamable HTTP client believe its session is gone and
/// start over, so the reply is a normal 200 JSON-RPC error response, as MCP servers send.
pub const UNKNOWN_TARGET_STATUS: u16 = 200;
