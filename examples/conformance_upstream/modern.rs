//! The fixture's 2026-07-28 (stateless) side: a POST with `MCP-Protocol-Version: 2026-07-28` and
//! no session is one request that carries all it needs in its `_meta` (the client's
//! capabilities). `server/discover` says both generations are spoken; the lists are those of the
//! sessions plus what only a 2026-07-28 client can use (the input-required tools and prompt of
//! [`super::mrtr`]), so the gateway's discovery keeps a 2026-07-28 view of this server and sends
//! 2026-07-28 clients to it natively. Results say `"resultType":"complete"` and the cacheable
//! ones carry caching hints.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::checks::{self, Refusal};
use super::mrtr::{self, Outcome};
use super::tasks;
use super::{diagnostics, listen, param_headers};
use super::{header_str, rpc_error, App, Session};

pub(super) const MODERN: &str = "2026-07-28";
const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const META_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// Methods of the session generation only: 404 -32601 on a stateless request.
const REMOVED: &[&str] = &[
    "initialize",
    "ping",
    "logging/setLevel",
    "resources/subscribe",
    "resources/unsubscribe",
];

/// Whether a POST is a stateless request: no session, and this revision's header.
pub(super) fn is_modern(headers: &HeaderMap) -> bool {
    header_str(headers, "mcp-session-id").is_none()
        && header_str(headers, "mcp-protocol-version") == Some(MODERN)
}

/// A result as a 2026-07-28 client reads it: `resultType` said, and caching hints on `cacheable`
/// ones.
pub(super) fn complete(mut result: Value, cacheable: bool) -> Value {
    if let Some(o) = result.as_object_mut() {
        o.entry("resultType").or_insert_with(|| json!("complete"));
        if cacheable {
            o.entry("ttlMs").or_insert_with(|| json!(0));
            o.entry("cacheScope").or_insert_with(|| json!("private"));
        }
    }
    result
}

fn answer(id: &Value, result: Value, cacheable: bool) -> Response {
    super::reply(id, complete(result, cacheable))
}

fn outcome(id: &Value, o: Outcome) -> Response {
    match o {
        Outcome::Complete(r) => answer(id, r, false),
        Outcome::InputRequired(r) => super::reply(id, r),
        Outcome::Error(code, message) => {
            let status = if code == -32021 {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            };
            rpc_error(status, id, code, &message)
        }
    }
}

fn refuse(id: &Value, Refusal(code, message, data): Refusal) -> Response {
    let mut error = json!({"code": code, "message": message});
    if let Some(d) = data {
        error["data"] = d;
    }
    super::reply_error(StatusCode::BAD_REQUEST, id, error)
}

/// The refusal of a sessionless request in a protocol version the fixture does not speak.
pub(super) fn unsupported_version(headers: &HeaderMap, id: &Value) -> Option<Response> {
    let mut speaks: Vec<&str> = super::VERSIONS.to_vec();
    speaks.push(MODERN);
    if header_str(headers, "mcp-session-id").is_some() {
        return None;
    }
    checks::version(header_str(headers, "mcp-protocol-version"), &speaks).map(|r| refuse(id, r))
}

/// One stateless request.
pub(super) async fn post(app: &App, headers: &HeaderMap, msg: &Value) -> Response {
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    let Some(method) = msg.get("method").and_then(Value::as_str) else {
        return StatusCode::ACCEPTED.into_response();
    };
    if msg.get("id").is_none() {
        return StatusCode::ACCEPTED.into_response();
    }
    if REMOVED.contains(&method) {
        return rpc_error(StatusCode::NOT_FOUND, &id, -32601, "Method not found");
    }
    let params = msg.get("params").cloned().unwrap_or(json!({}));
    let meta = params.get("_meta");
    let version = meta
        .and_then(|m| m.get(META_VERSION))
        .and_then(Value::as_str);
    let caps = meta.and_then(|m| m.get(META_CAPABILITIES));
    let (Some(version), Some(caps)) = (version, caps.filter(|c| c.is_object())) else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            &id,
            -32602,
            "_meta must carry the protocol version and the client capabilities",
        );
    };
    if Some(version) != header_str(headers, "mcp-protocol-version") {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            &id,
            -32020,
            "MCP-Protocol-Version and _meta protocolVersion differ",
        );
    }
    let (mcp_method, mcp_name) = (
        header_str(headers, "mcp-method"),
        header_str(headers, "mcp-name"),
    );
    if let Some(r) = checks::headers(mcp_method, mcp_name, method, &params) {
        return refuse(&id, r);
    }
    match method {
        "server/discover" => answer(&id, discover(), true),
        "tools/list" => {
            let mut tools = super::tools();
            tools.extend(mrtr::tools());
            tools.extend(tasks::tools());
            tools.extend(diagnostics::tools());
            tools.extend(param_headers::tools());
            answer(&id, json!({"tools": tools}), true)
        }
        "tools/call" => {
            let name = params["name"].as_str().unwrap_or("");
            if let Some(r) = param_headers::call(headers, &id, &params) {
                return r;
            }
            if let Some(r) = diagnostics::call(app, &id, &params) {
                return r;
            }
            if let Some(o) = mrtr::call(&app.state_key, name, &params) {
                return outcome(&id, o);
            }
            if let Some(r) = tasks::call(&app.tasks, headers, &id, &params) {
                return r;
            }
            let session = Arc::new(Session::new(caps.clone(), true));
            super::call_tool(session, id, params)
        }
        "prompts/list" => {
            let mut prompts = super::prompts();
            prompts.push(mrtr::prompt());
            answer(&id, json!({"prompts": prompts}), true)
        }
        "prompts/get" => match mrtr::get_prompt(&params) {
            Some(o) => outcome(&id, o),
            None => match super::get_prompt(&params) {
                Some(r) => answer(&id, r, false),
                None => rpc_error(StatusCode::OK, &id, -32602, "Unknown prompt"),
            },
        },
        "resources/list" => answer(&id, json!({"resources": super::resources()}), true),
        "resources/templates/list" => answer(&id, super::templates(), true),
        "resources/read" => {
            let uri = params["uri"].as_str().unwrap_or("");
            match super::read_resource(uri) {
                Some(r) => answer(&id, r, true),
                // SEP-2164: an unknown resource is invalid params, naming the URI.
                None => super::reply_error(
                    StatusCode::OK,
                    &id,
                    json!({"code": -32602, "message": "Resource not found",
                        "data": {"uri": uri}}),
                ),
            }
        }
        "completion/complete" => answer(&id, super::complete(&params), false),
        "subscriptions/listen" => match app.tasks.listened(headers, &id, &params) {
            Ok(tasks) => listen::stream(
                app.changes.subscribe(),
                tasks,
                &id,
                &params["notifications"],
            ),
            Err(refused) => refused,
        },
        m => tasks::method(&app.tasks, headers, m, &id, &params)
            .unwrap_or_else(|| rpc_error(StatusCode::NOT_FOUND, &id, -32601, "Method not found")),
    }
}

fn discover() -> Value {
    let info = json!({"name": "conformance-upstream", "version": env!("CARGO_PKG_VERSION")});
    let mut versions: Vec<&str> = super::VERSIONS.to_vec();
    versions.push(MODERN);
    json!({
        "supportedVersions": versions,
        "capabilities": {
            "tools": {"listChanged": true},
            "prompts": {"listChanged": true},
            "resources": {"listChanged": true},
            "completions": {},
            "extensions": {tasks::EXTENSION: {}},
        },
        "serverInfo": info,
        "_meta": {"io.modelcontextprotocol/serverInfo": info},
    })
}
