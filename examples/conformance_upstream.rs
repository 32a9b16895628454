//! An MCP server (Streamable HTTP, protocol 2025-11-25, with sessions) that offers what the
//! official MCP conformance suite's server scenarios ask for: `test_*` tools, prompts, resources
//! and a resource template, completion, logging, progress, sampling and elicitation requests made
//! during a tool call, resumable SSE streams (`Last-Event-ID`) and DNS-rebinding protection.
//! It speaks 2026-07-28 too (stateless requests, [`modern`]), with input-required results
//! ([`mrtr`]), the Tasks extension ([`tasks`]), the diagnostic tools of the stateless scenario
//! ([`diagnostics`]) and a tool with `Mcp-Param-*` headers ([`param_headers`]) listed to that
//! revision only; its 2026-07-28 requests are checked ([`checks`]) and it has a
//! `subscriptions/listen` stream ([`listen`]).
//! `tests/integration/conformance.rs` runs the suite against it directly and through the gateway.
//!
//! `cargo run --example conformance_upstream -- --port PORT` (listens on 127.0.0.1 only).

#![forbid(unsafe_code)]
#![allow(unreachable_pub)]

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use serde_json::{json, Value};
use tokio::sync::{oneshot, watch};

#[path = "conformance_upstream/checks.rs"]
mod checks;
#[path = "conformance_upstream/diagnostics.rs"]
mod diagnostics;
#[path = "conformance_upstream/listen.rs"]
mod listen;
#[path = "conformance_upstream/modern.rs"]
mod modern;
#[path = "conformance_upstream/mrtr.rs"]
mod mrtr;
#[path = "conformance_upstream/param_headers.rs"]
mod param_headers;
#[path = "conformance_upstream/tasks.rs"]
mod tasks;

/// Tools that take no arguments, from (name, description) pairs.
fn no_argument_tools(list: &[(&str, &str)]) -> Vec<Value> {
    list.iter()
        .map(|(name, description)| {
            json!({"name": name, "description": description,
                "inputSchema": {"type": "object", "properties": {}}})
        })
        .collect()
}

const VERSIONS: &[&str] = &["2025-03-26", "2025-06-18", "2025-11-25"];
/// How long a tool waits for the client's answer to a sampling or elicitation request.
const ASK_TIMEOUT: Duration = Duration::from_secs(30);
/// A 1×1 PNG.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
const LEVELS: &[&str] = &[
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The SSE events of one response stream, kept so that a client can resume it with
/// `Last-Event-ID` after the connection was closed.
struct EventStream {
    number: u64,
    events: Mutex<Vec<Bytes>>,
    /// (events so far, finished)
    changed: watch::Sender<(usize, bool)>,
    /// The live connection is to be closed once it has sent what is there (test_reconnection).
    cut: AtomicBool,
}

impl EventStream {
    fn new(number: u64) -> Arc<EventStream> {
        let s = Arc::new(EventStream {
            number,
            events: Mutex::new(Vec::new()),
            changed: watch::channel((0, false)).0,
            cut: AtomicBool::new(false),
        });
        // The priming event: an id to resume from, and how soon to reconnect.
        s.push_raw(|id| format!("id: {id}\nretry: 500\ndata: \n\n"));
        s
    }

    fn push_raw(&self, event: impl FnOnce(&str) -> String) {
        let mut events = lock(&self.events);
        let id = format!("{}-{}", self.number, events.len());
        events.push(Bytes::from(event(&id)));
        let n = events.len();
        drop(events);
        self.changed.send_modify(|c| c.0 = n);
    }

    fn push(&self, message: &Value) {
        self.push_raw(|id| format!("id: {id}\nevent: message\ndata: {message}\n\n"));
    }

    fn finish(&self) {
        self.changed.send_modify(|c| c.1 = true);
    }

    fn cut_live(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.changed.send_modify(|_| {});
    }

    /// The events from index `from` on, as they come; ends when the stream is finished (or,
    /// for the live connection, cut).
    fn body(self: Arc<Self>, from: usize, live: bool) -> Body {
        let rx = self.changed.subscribe();
        let stream =
            futures_util::stream::unfold((self, rx, from), move |(s, mut rx, next)| async move {
                loop {
                    let (len, done) = *rx.borrow_and_update();
                    if next < len {
                        let e = lock(&s.events)[next].clone();
                        return Some((Ok::<_, Infallible>(e), (s, rx, next + 1)));
                    }
                    if done || (live && s.cut.load(Ordering::SeqCst)) {
                        return None;
                    }
                    if rx.changed().await.is_err() {
                        return None;
                    }
                }
            });
        Body::from_stream(stream)
    }
}

struct Session {
    client_capabilities: Value,
    /// Index into [`LEVELS`] of the lowest level sent.
    level: Mutex<usize>,
    subscriptions: Mutex<HashSet<String>>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Value>>>,
    next_request: AtomicU64,
    streams: Mutex<HashMap<u64, Arc<EventStream>>>,
    next_stream: AtomicU64,
    /// One 2026-07-28 request: nothing to ask the client on (it gets input-required results).
    stateless: bool,
    /// The session's standalone GET streams: where list changes are told.
    standalone: Mutex<Vec<Arc<EventStream>>>,
}

impl Session {
    fn new(client_capabilities: Value, stateless: bool) -> Session {
        Session {
            client_capabilities,
            level: Mutex::new(0),
            subscriptions: Mutex::default(),
            pending: Mutex::default(),
            next_request: AtomicU64::new(1),
            streams: Mutex::default(),
            next_stream: AtomicU64::new(1),
            stateless,
            standalone: Mutex::default(),
        }
    }

    fn new_stream(&self) -> Arc<EventStream> {
        let s = EventStream::new(self.next_stream.fetch_add(1, Ordering::SeqCst));
        lock(&self.streams).insert(s.number, s.clone());
        s
    }

    fn log(&self, stream: &EventStream, level: &str, message: &str) {
        let rank = LEVELS.iter().position(|l| *l == level).unwrap_or(0);
        if rank >= *lock(&self.level) {
            stream.push(&json!({"jsonrpc": "2.0", "method": "notifications/message",
                "params": {"level": level, "logger": "conformance-upstream", "data": message}}));
        }
    }

    /// Sends a request to the client on `stream` and waits for its answer (`result` or `error`).
    async fn ask(
        &self,
        stream: &EventStream,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        if self.stateless {
            return Err(format!(
                "a 2026-07-28 request cannot be sent {method}: this tool asks in a session only"
            ));
        }
        let id = self.next_request.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        stream.push(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        let answer = tokio::time::timeout(ASK_TIMEOUT, rx).await;
        lock(&self.pending).remove(&id);
        match answer {
            Ok(Ok(msg)) => match msg.get("result") {
                Some(r) => Ok(r.clone()),
                None => Err(format!("client answered {method} with {}", msg["error"])),
            },
            _ => Err(format!("no answer to {method} within {ASK_TIMEOUT:?}")),
        }
    }

    fn supports(&self, capability: &str) -> bool {
        self.client_capabilities.get(capability).is_some()
    }
}

struct App {
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    next_session: AtomicU64,
    /// Signs the request states of input-required results.
    state_key: mrtr::StateKey,
    /// Tasks of the Tasks extension (2026-07-28 requests).
    tasks: Arc<tasks::Tasks>,
    /// List changes, for the `subscriptions/listen` streams ([`listen`]).
    changes: tokio::sync::broadcast::Sender<&'static str>,
}

fn rpc_error(status: StatusCode, id: &Value, code: i64, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
            .to_string(),
    )
        .into_response()
}

fn reply_error(status: StatusCode, id: &Value, error: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"jsonrpc": "2.0", "id": id, "error": error}).to_string(),
    )
        .into_response()
}

fn reply(id: &Value, result: Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string(),
    )
        .into_response()
}

fn sse(body: Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// DNS-rebinding protection of a loopback server: the Host, and the Origin when there is one,
/// must name a loopback host.
fn is_loopback_authority(authority: &str) -> bool {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().map(|h| format!("[{h}]"))
    } else {
        authority.split(':').next().map(str::to_owned)
    };
    matches!(host.as_deref(), Some("localhost" | "127.0.0.1" | "[::1]"))
}

fn rebinding_guard(headers: &HeaderMap) -> Option<Response> {
    let host_ok = header_str(headers, "host").is_none_or(is_loopback_authority);
    let origin_ok = header_str(headers, "origin").is_none_or(|o| {
        o.split_once("://")
            .is_some_and(|(_, rest)| is_loopback_authority(rest.split('/').next().unwrap_or("")))
    });
    (!host_ok || !origin_ok).then(|| {
        rpc_error(
            StatusCode::FORBIDDEN,
            &Value::Null,
            -32000,
            "Host or Origin is not a loopback address",
        )
    })
}

#[allow(clippy::result_large_err)]
fn session_of(app: &App, headers: &HeaderMap, id: &Value) -> Result<Arc<Session>, Response> {
    let Some(sid) = header_str(headers, "mcp-session-id") else {
        return Err(rpc_error(
            StatusCode::BAD_REQUEST,
            id,
            -32600,
            "Mcp-Session-Id is required",
        ));
    };
    lock(&app.sessions)
        .get(sid)
        .cloned()
        .ok_or_else(|| rpc_error(StatusCode::NOT_FOUND, id, -32001, "Session not found"))
}

async fn post_mcp(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = rebinding_guard(&headers) {
        return r;
    }
    let Ok(msg) = serde_json::from_slice::<Value>(&body) else {
        return rpc_error(StatusCode::BAD_REQUEST, &Value::Null, -32700, "Parse error");
    };
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    let method = msg.get("method").and_then(Value::as_str).unwrap_or("");
    if let Some(r) = modern::unsupported_version(&headers, &id) {
        return r;
    }
    if modern::is_modern(&headers) {
        return modern::post(&app, &headers, &msg).await;
    }
    if method == "initialize" {
        return initialize(&app, &id, &msg);
    }
    let session = match session_of(&app, &headers, &id) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if method.is_empty() {
        // The client's answer to one of our requests.
        if let Some(n) = id.as_u64() {
            if let Some(tx) = lock(&session.pending).remove(&n) {
                let _ = tx.send(msg);
            }
        }
        return StatusCode::ACCEPTED.into_response();
    }
    if msg.get("id").is_none() {
        return StatusCode::ACCEPTED.into_response();
    }
    let params = msg.get("params").cloned().unwrap_or(json!({}));
    match method {
        "ping" => reply(&id, json!({})),
        "tools/list" => reply(&id, json!({"tools": tools()})),
        "tools/call" => call_tool(session, id, params),
        "prompts/list" => reply(&id, json!({"prompts": prompts()})),
        "prompts/get" => match get_prompt(&params) {
            Some(r) => reply(&id, r),
            None => rpc_error(StatusCode::OK, &id, -32602, "Unknown prompt"),
        },
        "resources/list" => reply(&id, json!({"resources": resources()})),
        "resources/templates/list" => reply(&id, templates()),
        "resources/read" => match read_resource(params["uri"].as_str().unwrap_or("")) {
            Some(r) => reply(&id, r),
            None => rpc_error(StatusCode::OK, &id, -32002, "Resource not found"),
        },
        "resources/subscribe" | "resources/unsubscribe" => {
            let uri = params["uri"].as_str().unwrap_or("").to_owned();
            let mut subs = lock(&session.subscriptions);
            if method == "resources/subscribe" {
                subs.insert(uri);
            } else {
                subs.remove(&uri);
            }
            reply(&id, json!({}))
        }
        "logging/setLevel" => {
            let level = params["level"].as_str().unwrap_or("");
            match LEVELS.iter().position(|l| *l == level) {
                Some(rank) => {
                    *lock(&session.level) = rank;
                    reply(&id, json!({}))
                }
                None => rpc_error(StatusCode::OK, &id, -32602, "Unknown log level"),
            }
        }
        "completion/complete" => reply(&id, complete(&params)),
        _ => rpc_error(StatusCode::OK, &id, -32601, "Method not found"),
    }
}

fn initialize(app: &App, id: &Value, msg: &Value) -> Response {
    let asked = msg
        .pointer("/params/protocolVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let version = VERSIONS
        .iter()
        .find(|v| **v == asked)
        .copied()
        .unwrap_or("2025-11-25");
    let sid = format!(
        "conformance-{}-{}",
        std::process::id(),
        app.next_session.fetch_add(1, Ordering::SeqCst)
    );
    let session = Arc::new(Session::new(
        msg.pointer("/params/capabilities")
            .cloned()
            .unwrap_or(json!({})),
        false,
    ));
    lock(&app.sessions).insert(sid.clone(), session);
    let mut r = reply(
        id,
        json!({
            "protocolVersion": version,
            "capabilities": {
                "tools": {"listChanged": true},
                "prompts": {"listChanged": true},
                "resources": {"subscribe": true, "listChanged": true},
                "logging": {},
                "completions": {},
            },
            "serverInfo": {"name": "conformance-upstream", "version": env!("CARGO_PKG_VERSION")},
        }),
    );
    if let Ok(v) = HeaderValue::from_str(&sid) {
        r.headers_mut().insert("mcp-session-id", v);
    }
    r
}

/// GET: resumes a response stream after `Last-Event-ID`, or opens the session's own stream.
async fn get_mcp(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Some(r) = rebinding_guard(&headers) {
        return r;
    }
    let session = match session_of(&app, &headers, &Value::Null) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Some(last) = header_str(&headers, "last-event-id") {
        let parsed = last
            .split_once('-')
            .and_then(|(s, n)| Some((s.parse::<u64>().ok()?, n.parse::<usize>().ok()?)));
        let stream = parsed.and_then(|(s, n)| Some((lock(&session.streams).get(&s).cloned()?, n)));
        return match stream {
            Some((s, n)) => sse(s.body(n + 1, false)),
            None => rpc_error(
                StatusCode::NOT_FOUND,
                &Value::Null,
                -32000,
                "unknown event id",
            ),
        };
    }
    // The standalone stream: it stays open (with its priming event) and tells of list changes.
    let stream = session.new_stream();
    lock(&session.standalone).push(stream.clone());
    sse(stream.body(0, false))
}

/// Sends `notification` (a `notifications/*/list_changed`) on every `subscriptions/listen`
/// stream and, with `sessions`, on every session's GET streams.
fn notify_sessions(app: &App, notification: &'static str, sessions: bool) {
    let _ = app.changes.send(notification);
    if !sessions {
        return;
    }
    let sessions: Vec<Arc<Session>> = lock(&app.sessions).values().cloned().collect();
    for s in sessions {
        for stream in lock(&s.standalone).iter() {
            stream.push(&json!({"jsonrpc": "2.0", "method": notification}));
        }
    }
}

async fn delete_mcp(State(app): State<Arc<App>>, headers: HeaderMap) -> StatusCode {
    let sid = header_str(&headers, "mcp-session-id").unwrap_or("");
    if lock(&app.sessions).remove(sid).is_some() {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    }
}

fn templates() -> Value {
    json!({"resourceTemplates": [{
        "uriTemplate": "test://template/{id}/data",
        "name": "template",
        "description": "Data for an id",
        "mimeType": "application/json",
    }]})
}

fn tool(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "description": description, "inputSchema": schema})
}

fn no_args() -> Value {
    json!({"type": "object", "properties": {}})
}

fn string_arg(name: &str, description: &str) -> Value {
    json!({"type": "object", "properties": {name: {"type": "string", "description": description}}, "required": [name]})
}

fn tools() -> Vec<Value> {
    vec![
        tool("test_simple_text", "Returns a simple text", no_args()),
        tool("test_image_content", "Returns an image", no_args()),
        tool("test_audio_content", "Returns an audio clip", no_args()),
        tool(
            "test_embedded_resource",
            "Returns an embedded resource",
            no_args(),
        ),
        tool(
            "test_multiple_content_types",
            "Returns text, an image and a resource",
            no_args(),
        ),
        tool(
            "test_tool_with_logging",
            "Logs three messages while it runs",
            no_args(),
        ),
        tool(
            "test_tool_with_progress",
            "Reports progress while it runs",
            no_args(),
        ),
        tool("test_error_handling", "Always fails", no_args()),
        tool(
            "test_sampling",
            "Asks the client's LLM",
            string_arg("prompt", "The prompt to send to the LLM"),
        ),
        tool(
            "test_elicitation",
            "Asks the user",
            string_arg("message", "The message to show the user"),
        ),
        tool(
            "test_elicitation_sep1034_defaults",
            "Asks the user, with defaults",
            no_args(),
        ),
        tool(
            "test_elicitation_sep1330_enums",
            "Asks the user, with every enum style",
            no_args(),
        ),
        tool(
            "test_reconnection",
            "Closes its SSE stream before answering",
            no_args(),
        ),
        diagnostics::dynamic_tool(),
        json!({
            "name": "json_schema_2020_12_tool",
            "description": "Tool with JSON Schema 2020-12 features",
            "inputSchema": {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "$defs": {"address": {"$anchor": "address", "type": "object", "properties": {
                    "street": {"type": "string"}, "city": {"type": "string"}}}},
                "properties": {
                    "name": {"type": "string"},
                    "address": {"$ref": "#/$defs/address"},
                    "contact": {"type": "string"},
                    "country": {"type": "string"},
                    "postalCode": {"type": "string"},
                },
                // Composition and conditional keywords (SEP-2106): a gateway must pass them on.
                "allOf": [{"anyOf": [{"required": ["name"]}, {"required": ["contact"]}]}],
                "if": {"properties": {"country": {"const": "US"}}, "required": ["country"]},
                "then": {"properties": {"postalCode": {"pattern": "^[0-9]{5}$"}}},
                "else": {"properties": {"postalCode": {"type": "string"}}},
                "additionalProperties": false,
            },
        }),
    ]
}

fn text(t: &str) -> Value {
    json!({"type": "text", "text": t})
}

/// A short silent WAV (8 kHz, 8 bit, mono).
fn wav() -> String {
    let samples = [128u8; 80];
    let mut b = Vec::with_capacity(44 + samples.len());
    let len = samples.len() as u32;
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&8000u32.to_le_bytes());
    b.extend_from_slice(&8000u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&8u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&len.to_le_bytes());
    b.extend_from_slice(&samples);
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn content(items: Vec<Value>) -> Value {
    json!({"content": items})
}

/// Answers a tools/call on its own SSE stream, so that the tool can send notifications and
/// requests before its result.
fn call_tool(session: Arc<Session>, id: Value, params: Value) -> Response {
    let name = params["name"].as_str().unwrap_or("").to_owned();
    if !tools().iter().any(|t| t["name"] == name.as_str()) {
        return rpc_error(
            StatusCode::OK,
            &id,
            -32602,
            &format!("Unknown tool: {name}"),
        );
    }
    let stream = session.new_stream();
    let body = stream.clone().body(0, true);
    tokio::spawn(async move {
        let mut result = run_tool(&session, &stream, &name, &params).await;
        if session.stateless {
            result = modern::complete(result, false);
        }
        stream.push(&json!({"jsonrpc": "2.0", "id": id, "result": result}));
        stream.finish();
    });
    sse(body)
}

async fn run_tool(session: &Session, stream: &EventStream, name: &str, params: &Value) -> Value {
    let args = &params["arguments"];
    let pause = || tokio::time::sleep(Duration::from_millis(50));
    match name {
        "test_simple_text" => content(vec![text("This is a simple text response for testing.")]),
        "test_image_content" => content(vec![json!({"type": "image", "data": PNG, "mimeType": "image/png"})]),
        "test_audio_content" => content(vec![json!({"type": "audio", "data": wav(), "mimeType": "audio/wav"})]),
        "test_embedded_resource" => content(vec![json!({"type": "resource", "resource": {
            "uri": "test://embedded-resource", "mimeType": "text/plain",
            "text": "This is an embedded resource content."}})]),
        "test_multiple_content_types" => content(vec![
            text("Multiple content types test:"),
            json!({"type": "image", "data": PNG, "mimeType": "image/png"}),
            json!({"type": "resource", "resource": {"uri": "test://mixed-content-resource",
                "mimeType": "application/json", "text": "{\"test\":\"data\",\"value\":123}"}}),
        ]),
        "test_tool_with_logging" => {
            session.log(stream, "info", "Tool execution started");
            pause().await;
            session.log(stream, "info", "Tool processing data");
            pause().await;
            session.log(stream, "info", "Tool execution completed");
            content(vec![text("Tool with logging executed successfully")])
        }
        "test_tool_with_progress" => {
            let token = params.pointer("/_meta/progressToken").cloned();
            for (i, progress) in [0, 50, 100].into_iter().enumerate() {
                if i > 0 {
                    pause().await;
                }
                if let Some(t) = &token {
                    stream.push(&json!({"jsonrpc": "2.0", "method": "notifications/progress",
                        "params": {"progressToken": t, "progress": progress, "total": 100}}));
                }
            }
            content(vec![text("Tool with progress executed successfully")])
        }
        "test_error_handling" => json!({"isError": true,
            "content": [text("This tool intentionally returns an error for testing")]}),
        "test_sampling" => {
            if !session.supports("sampling") {
                return tool_error("the client does not support sampling");
            }
            let prompt = args["prompt"].as_str().unwrap_or("");
            match session
                .ask(stream, "sampling/createMessage", json!({
                    "messages": [{"role": "user", "content": {"type": "text", "text": prompt}}],
                    "maxTokens": 100,
                }))
                .await
            {
                Ok(r) => {
                    let answer = r.pointer("/content/text").and_then(Value::as_str).unwrap_or("");
                    content(vec![text(&format!("LLM response: {answer}"))])
                }
                Err(e) => tool_error(&e),
            }
        }
        "test_elicitation" => {
            let message = args["message"].as_str().unwrap_or("");
            elicit(session, stream, json!({
                "message": message,
                "requestedSchema": {"type": "object", "properties": {
                    "username": {"type": "string", "description": "User's response"},
                    "email": {"type": "string", "description": "User's email address"},
                }, "required": ["username", "email"]},
            }), "User response")
            .await
        }
        "test_elicitation_sep1034_defaults" => {
            elicit(session, stream, json!({
                "message": "Please review and update the form fields with defaults",
                "requestedSchema": {"type": "object", "properties": {
                    "name": {"type": "string", "description": "User name", "default": "John Doe"},
                    "age": {"type": "integer", "description": "User age", "default": 30},
                    "score": {"type": "number", "description": "User score", "default": 95.5},
                    "status": {"type": "string", "description": "User status",
                        "enum": ["active", "inactive", "pending"], "default": "active"},
                    "verified": {"type": "boolean", "description": "Verification status", "default": true},
                }},
            }), "Elicitation completed")
            .await
        }
        "test_elicitation_sep1330_enums" => {
            elicit(session, stream, json!({
                "message": "Please select options from the enum fields",
                "requestedSchema": {"type": "object", "properties": {
                    "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
                    "titledSingle": {"type": "string", "oneOf": [
                        {"const": "value1", "title": "First Option"},
                        {"const": "value2", "title": "Second Option"},
                        {"const": "value3", "title": "Third Option"}]},
                    "legacyEnum": {"type": "string", "enum": ["opt1", "opt2", "opt3"],
                        "enumNames": ["Option One", "Option Two", "Option Three"]},
                    "untitledMulti": {"type": "array", "items": {"type": "string",
                        "enum": ["option1", "option2", "option3"]}},
                    "titledMulti": {"type": "array", "items": {"anyOf": [
                        {"const": "value1", "title": "First Choice"},
                        {"const": "value2", "title": "Second Choice"},
                        {"const": "value3", "title": "Third Choice"}]}},
                }},
            }), "Elicitation completed")
            .await
        }
        "test_reconnection" => {
            // Close the live connection after the priming event; the result comes to a client
            // that resumes with Last-Event-ID.
            stream.cut_live();
            tokio::time::sleep(Duration::from_millis(200)).await;
            content(vec![text("Reconnection test completed")])
        }
        _ => content(vec![text("ok")]),
    }
}

fn tool_error(message: &str) -> Value {
    json!({"isError": true, "content": [text(message)]})
}

async fn elicit(session: &Session, stream: &EventStream, params: Value, label: &str) -> Value {
    if !session.supports("elicitation") {
        return tool_error("the client does not support elicitation");
    }
    match session.ask(stream, "elicitation/create", params).await {
        Ok(r) => content(vec![text(&format!(
            "{label}: action={}, content={}",
            r["action"].as_str().unwrap_or(""),
            r.get("content").cloned().unwrap_or(json!({}))
        ))]),
        Err(e) => tool_error(&e),
    }
}

fn prompts() -> Vec<Value> {
    let arg = |name: &str, d: &str| json!({"name": name, "description": d, "required": true});
    vec![
        json!({"name": "test_simple_prompt", "description": "A prompt without arguments"}),
        json!({"name": "test_prompt_with_arguments", "description": "A prompt with arguments",
            "arguments": [arg("arg1", "First test argument"), arg("arg2", "Second test argument")]}),
        json!({"name": "test_prompt_with_embedded_resource", "description": "A prompt with a resource",
            "arguments": [arg("resourceUri", "URI of the resource to embed")]}),
        json!({"name": "test_prompt_with_image", "description": "A prompt with an image"}),
        diagnostics::dynamic_prompt(),
    ]
}

fn get_prompt(params: &Value) -> Option<Value> {
    let args = &params["arguments"];
    let user = |content: Value| json!({"role": "user", "content": content});
    let messages = match params["name"].as_str()? {
        "test_simple_prompt" => vec![user(text("This is a simple prompt for testing."))],
        "test_prompt_with_arguments" => vec![user(text(&format!(
            "Prompt with arguments: arg1='{}', arg2='{}'",
            args["arg1"].as_str().unwrap_or(""),
            args["arg2"].as_str().unwrap_or("")
        )))],
        "test_prompt_with_embedded_resource" => vec![
            user(json!({"type": "resource", "resource": {
                "uri": args["resourceUri"].as_str().unwrap_or("test://example-resource"),
                "mimeType": "text/plain", "text": "Embedded resource content for testing."}})),
            user(text("Please process the embedded resource above.")),
        ],
        "test_prompt_with_image" => vec![
            user(json!({"type": "image", "data": PNG, "mimeType": "image/png"})),
            user(text("Please analyze the image above.")),
        ],
        _ => return None,
    };
    Some(json!({"messages": messages}))
}

fn resources() -> Vec<Value> {
    vec![
        json!({"uri": "test://static-text", "name": "static-text", "description": "A static text",
            "mimeType": "text/plain"}),
        json!({"uri": "test://static-binary", "name": "static-binary", "description": "A static image",
            "mimeType": "image/png"}),
        json!({"uri": "test://watched-resource", "name": "watched-resource",
            "description": "A resource to subscribe to", "mimeType": "text/plain"}),
    ]
}

fn read_resource(uri: &str) -> Option<Value> {
    let one = |c: Value| Some(json!({"contents": [c]}));
    match uri {
        "test://static-text" => one(json!({"uri": uri, "mimeType": "text/plain",
            "text": "This is the content of the static text resource."})),
        "test://static-binary" => one(json!({"uri": uri, "mimeType": "image/png", "blob": PNG})),
        "test://watched-resource" => {
            one(json!({"uri": uri, "mimeType": "text/plain", "text": "watched"}))
        }
        _ => {
            let id = uri
                .strip_prefix("test://template/")?
                .strip_suffix("/data")?;
            if id.is_empty() || id.contains('/') {
                return None;
            }
            let data =
                json!({"id": id, "templateTest": true, "data": format!("Data for ID: {id}")});
            one(json!({"uri": uri, "mimeType": "application/json", "text": data.to_string()}))
        }
    }
}

fn complete(params: &Value) -> Value {
    let candidates: &[&str] = match (
        params.pointer("/ref/type").and_then(Value::as_str),
        params.pointer("/argument/name").and_then(Value::as_str),
    ) {
        (Some("ref/prompt"), Some("arg1")) => &["paris", "park", "party"],
        (Some("ref/prompt"), Some("arg2")) => &["world", "wonder"],
        (Some("ref/resource"), Some("id")) => &["123", "456"],
        _ => &[],
    };
    let typed = params
        .pointer("/argument/value")
        .and_then(Value::as_str)
        .unwrap_or("");
    let values: Vec<&str> = candidates
        .iter()
        .copied()
        .filter(|c| c.starts_with(typed))
        .collect();
    json!({"completion": {"values": values, "total": values.len(), "hasMore": false}})
}

/// Serves the MCP endpoint (`/mcp`) on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let app = axum::Router::new()
        .route("/mcp", post(post_mcp).get(get_mcp).delete(delete_mcp))
        .with_state(Arc::new(App {
            sessions: Mutex::default(),
            next_session: AtomicU64::new(0),
            state_key: mrtr::StateKey::random(),
            tasks: Arc::default(),
            changes: tokio::sync::broadcast::channel(16).0,
        }));
    axum::serve(listener, app).await
}

#[allow(dead_code)] // `tests/integration/conformance.rs` includes this file as a module and calls `serve`.
#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut port = 3210u16;
    while let Some(a) = args.next() {
        let value = match a.split_once('=') {
            Some((_, v)) => Some(v.to_owned()),
            None => args.next(),
        };
        if a.starts_with("--port") {
            port = value.and_then(|v| v.parse().ok()).ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "--port needs a number")
            })?;
        }
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!(
        "conformance upstream listening on {}",
        listener.local_addr()?
    );
    serve(listener).await
}
