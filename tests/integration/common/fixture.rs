//! A small, controllable MCP server (Streamable HTTP, 2025 generation) for integration tests:
//! it counts initializes, records what each routed call looked like on the wire, and can be told
//! to forget its sessions, to be slow (initialize or tools/call), or to reset the connection in
//! the middle of an SSE answer. Each fixture runs on its own runtime, so that stopping it closes
//! every connection (as a crashed server would), and it can be started again on the same port.
//! It can serve over TLS ([`Fixture::start_tls`]).

#![allow(unreachable_pub)]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{json, Value};

/// A request as the fixture received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub body: Vec<u8>,
    pub headers: HeaderMap,
}

#[derive(Default)]
pub struct FixtureState {
    pub tools: Vec<Value>,
    /// Resources offered (and subscribable); none by default.
    pub resources: Mutex<Vec<Value>>,
    /// Open GET streams, which carry `notifications/resources/updated`.
    pub streams: Mutex<Vec<tokio::sync::mpsc::UnboundedSender<String>>>,
    pub initializes: AtomicUsize,
    pub sessions: Mutex<HashSet<String>>,
    pub seen: Mutex<Vec<Seen>>,
    pub next: AtomicU64,
    /// Delay before answering initialize.
    pub init_delay_ms: AtomicU64,
    /// Initializes being answered now, and the most there ever were at once.
    pub init_in_flight: AtomicUsize,
    pub init_peak: AtomicUsize,
    /// Delay before answering tools/call.
    pub call_delay_ms: AtomicU64,
    /// Answer tools/call as SSE, send part of an event, then reset the connection.
    pub reset_mid_sse: AtomicBool,
    pub require_session: AtomicBool,
    /// Speaks only the stateless protocol (2026-07-28): no initialize, no sessions; requires the
    /// version header, `Mcp-Method` and the `_meta` envelope.
    pub modern_only: AtomicBool,
    /// Answer tools/call as an SSE stream (one event with the result).
    pub sse_calls: AtomicBool,
    /// Add CORS headers of its own to every POST answer, as a permissive server (or the seed's
    /// route) would: `Access-Control-Allow-Origin: *` with credentials, `Vary: Accept-Encoding`.
    pub own_cors: AtomicBool,
    /// TLS handshakes that failed (a client that does not trust the certificate, say).
    pub tls_failures: AtomicUsize,
    /// When not empty: a server of per-user credentials. Every request needs an `Authorization`
    /// that is a key here (else 401); `tools/list` lists, and `tools/call` accepts, that user's
    /// tools only.
    pub per_user: Mutex<HashMap<String, Vec<String>>>,
    /// When not 0: `tools/list` answers in pages of this many tools (`nextCursor` is the index
    /// of the next page's first tool), in every mode.
    pub tools_page_size: AtomicUsize,
}

/// One page of `tools` after `msg`'s cursor (the whole list when `size` is 0), as a
/// `tools/list` result.
fn tools_page(tools: Vec<Value>, msg: &Value, size: usize) -> Value {
    if size == 0 {
        return json!({ "tools": tools });
    }
    let start: usize = msg
        .pointer("/params/cursor")
        .and_then(Value::as_str)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let end = (start + size).min(tools.len());
    let mut page = json!({ "tools": tools.get(start..end).unwrap_or_default() });
    if end < tools.len() {
        page["nextCursor"] = json!(end.to_string());
    }
    page
}

/// A running fixture; stopped (every connection closed) on drop.
pub struct Fixture {
    pub state: Arc<FixtureState>,
    pub port: u16,
    /// Serving over TLS.
    pub tls: bool,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Fixture {
    /// Starts on 127.0.0.1 on a free port, offering `tools` (names only; each echoes).
    pub async fn start(tools: &[&str]) -> Fixture {
        Self::start_on(tools, 0).await
    }

    /// The `traceparent` headers of the initializes this fixture received, in order.
    pub fn initialize_traceparents(&self) -> Vec<String> {
        self.state
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.method == "initialize")
            .filter_map(|s| {
                s.headers
                    .get("traceparent")?
                    .to_str()
                    .ok()
                    .map(str::to_owned)
            })
            .collect()
    }

    /// Stops serving: the listener and every open connection are closed at once.
    pub fn stop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }

    /// Like [`Fixture::start`] on `port` (0: a free one); a fresh server that knows no sessions.
    pub async fn start_on(tools: &[&str], port: u16) -> Fixture {
        Self::start_inner(tools, port, None).await
    }

    /// Like [`Fixture::start`], over TLS with `tls` (HTTP/2 or HTTP/1.1 by ALPN).
    pub async fn start_tls(
        tools: &[&str],
        tls: Arc<tokio_rustls::rustls::ServerConfig>,
    ) -> Fixture {
        Self::start_inner(tools, 0, Some(tls)).await
    }

    /// The tool entries [`Fixture::start`] lists for `names`.
    pub fn echo_tools(names: &[&str]) -> Vec<Value> {
        names
            .iter()
            .map(|t| {
                json!({
                    "name": t,
                    "description": format!("fixture tool {t}"),
                    "inputSchema": {"type": "object"},
                    "annotations": {"readOnlyHint": true, "destructiveHint": false},
                })
            })
            .collect()
    }

    /// Like [`Fixture::start`], listing exactly `tools` (valid or not); a call to any name echoes.
    pub async fn start_listing(tools: Vec<Value>) -> Fixture {
        Self::start_values(tools, 0, None).await
    }

    async fn start_inner(
        tools: &[&str],
        port: u16,
        tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    ) -> Fixture {
        Self::start_values(Self::echo_tools(tools), port, tls).await
    }

    async fn start_values(
        tools: Vec<Value>,
        port: u16,
        tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    ) -> Fixture {
        let state = Arc::new(FixtureState {
            tools,
            require_session: AtomicBool::new(true),
            ..Default::default()
        });
        let app = axum::Router::new()
            .route("/mcp", post(handle).get(get_stream).delete(delete))
            .fallback(other_path)
            .with_state(state.clone());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fixture")
            .enable_all()
            .build()
            .expect("fixture runtime");
        let mut listener = None;
        for _ in 0..100 {
            // A port just freed by a stopped fixture may take a moment to be bindable again.
            match std::net::TcpListener::bind(("127.0.0.1", port)) {
                Ok(l) => {
                    l.set_nonblocking(true).expect("nonblocking");
                    listener = Some(l);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        let listener = listener.unwrap_or_else(|| panic!("cannot bind the fixture on port {port}"));
        let port = listener.local_addr().expect("addr").port();
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(listener).expect("fixture listener")
        };
        let is_tls = tls.is_some();
        match tls {
            None => {
                runtime.spawn(async move {
                    let _ = axum::serve(listener, app).await;
                });
            }
            Some(config) => {
                let listener = TlsListener::spawn(listener, config, state.clone(), &runtime);
                runtime.spawn(async move {
                    let _ = axum::serve(listener, app).await;
                });
            }
        }
        Fixture {
            state,
            port,
            tls: is_tls,
            runtime: Some(runtime),
        }
    }

    /// Like [`Fixture::start`], speaking only 2026-07-28.
    pub async fn start_modern(tools: &[&str]) -> Fixture {
        let f = Fixture::start(tools).await;
        f.state.modern_only.store(true, Ordering::SeqCst);
        f.state.require_session.store(false, Ordering::SeqCst);
        f
    }

    /// Like [`Fixture::start`], also offering subscribable resources at `uris`.
    pub async fn start_with_resources(tools: &[&str], uris: &[&str]) -> Fixture {
        let f = Fixture::start(tools).await;
        *f.state.resources.lock().expect("lock") = uris
            .iter()
            .map(|u| json!({"uri": u, "name": u, "mimeType": "text/plain"}))
            .collect();
        f
    }

    /// Tells every open GET stream that the resource at `uri` changed.
    pub fn resource_updated(&self, uri: &str) -> usize {
        self.send_on_streams(&json!({"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": {"uri": uri}}))
    }

    /// Sends `msg` on every open GET stream; how many there are.
    pub fn send_on_streams(&self, msg: &Value) -> usize {
        let msg = msg.to_string();
        let mut streams = self.state.streams.lock().expect("lock");
        streams.retain(|tx| tx.send(msg.clone()).is_ok());
        streams.len()
    }

    /// Announces that `uri` changed every 100 ms (at most 100 times) until `stream`, a client's
    /// GET stream, carries a resource update (or 10 s pass): whether it did, and what it carried.
    pub async fn announce_until_seen(
        fx: &std::sync::Arc<Fixture>,
        uri: &str,
        stream: reqwest::Response,
    ) -> (bool, String) {
        use futures_util::StreamExt;
        let announcer = {
            let (fx, uri) = (fx.clone(), uri.to_owned());
            tokio::spawn(async move {
                for _ in 0..100 {
                    fx.resource_updated(&uri);
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            })
        };
        let mut body = stream.bytes_stream();
        let mut seen = String::new();
        let found = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while let Some(Ok(chunk)) = body.next().await {
                seen.push_str(&String::from_utf8_lossy(&chunk));
                if seen.contains("notifications/resources/updated") {
                    return true;
                }
            }
            false
        })
        .await
        .unwrap_or(false);
        announcer.abort();
        (found, seen)
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}/mcp", self.port)
    }

    pub fn initializes(&self) -> usize {
        self.state.initializes.load(Ordering::SeqCst)
    }

    /// The tools/call requests seen so far.
    pub fn calls(&self) -> Vec<Seen> {
        self.state
            .seen
            .lock()
            .expect("lock")
            .iter()
            .filter(|s| s.method == "tools/call")
            .cloned()
            .collect()
    }

    /// Forgets every session, as a restarted server would.
    pub fn forget_sessions(&self) {
        self.state.sessions.lock().expect("lock").clear();
    }
}

/// Connections that completed their TLS handshake, for `axum::serve`. Handshakes run in tasks of
/// their own, so that a slow or failing one holds up no other connection.
struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        std::net::SocketAddr,
    )>,
    addr: std::net::SocketAddr,
}

impl TlsListener {
    fn spawn(
        tcp: tokio::net::TcpListener,
        config: Arc<tokio_rustls::rustls::ServerConfig>,
        state: Arc<FixtureState>,
        runtime: &tokio::runtime::Runtime,
    ) -> TlsListener {
        let addr = tcp.local_addr().expect("addr");
        let (tx, ready) = tokio::sync::mpsc::channel(64);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        runtime.spawn(async move {
            loop {
                let Ok((conn, peer)) = tcp.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let (acceptor, tx, state) = (acceptor.clone(), tx.clone(), state.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(5), acceptor.accept(conn)).await
                    {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        _ => {
                            state.tls_failures.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                });
            }
        });
        TlsListener { ready, addr }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

/// The per-user mode's answer, when it answers (see [`FixtureState::per_user`]).
fn per_user(
    s: &FixtureState,
    headers: &HeaderMap,
    msg: &Value,
    method: &str,
    id: &Value,
) -> Option<Response> {
    let users = s.per_user.lock().expect("lock");
    if users.is_empty() {
        return None;
    }
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(tools) = users.get(auth) else {
        return Some(
            (
                StatusCode::UNAUTHORIZED,
                [(
                    http::header::WWW_AUTHENTICATE,
                    "Bearer error=\"invalid_token\"",
                )],
                "invalid token",
            )
                .into_response(),
        );
    };
    match method {
        "tools/list" => Some(json_reply(
            id,
            tools_page(
                tools
                    .iter()
                    .map(|n| json!({"name": n, "inputSchema": {"type": "object"}}))
                    .collect(),
                msg,
                s.tools_page_size.load(Ordering::SeqCst),
            ),
        )),
        "tools/call" => {
            let name = msg
                .pointer("/params/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            (!tools.iter().any(|t| t == name)).then(|| {
                (
                    [(http::header::CONTENT_TYPE, "application/json")],
                    serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32602, "message": format!("Unknown tool: {name}")}})).expect("encode"),
                )
                    .into_response()
            })
        }
        _ => None,
    }
}

fn json_reply(id: &Value, result: Value) -> Response {
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": id, "result": result})).expect("encode"),
    )
        .into_response()
}

/// Any other path (an A2A agent's, say): recorded as `HTTP <method> <path>`, answered with an
/// empty JSON-RPC result.
async fn other_path(
    State(s): State<Arc<FixtureState>>,
    method: http::Method,
    uri: http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    s.seen.lock().expect("lock").push(Seen {
        method: format!("HTTP {method} {}", uri.path()),
        body: body.to_vec(),
        headers,
    });
    let id = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("id").cloned())
        .unwrap_or(Value::Null);
    json_reply(&id, json!({"agent": "fixture"}))
}

async fn handle(state: State<Arc<FixtureState>>, headers: HeaderMap, body: Bytes) -> Response {
    let own_cors = state.own_cors.load(Ordering::SeqCst);
    let mut r = answer(state, headers, body).await;
    if own_cors {
        for (k, v) in [
            ("access-control-allow-origin", "*"),
            ("access-control-allow-credentials", "true"),
            ("vary", "Accept-Encoding"),
        ] {
            r.headers_mut().insert(k, v.parse().expect("header"));
        }
    }
    r
}

async fn answer(State(s): State<Arc<FixtureState>>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(msg) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let method = msg
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    s.seen.lock().expect("lock").push(Seen {
        method: method.clone(),
        body: body.to_vec(),
        headers: headers.clone(),
    });
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    if let Some(r) = per_user(&s, &headers, &msg, &method, &id) {
        return r;
    }
    if s.modern_only.load(Ordering::SeqCst) {
        return modern(&s, &headers, &msg, &method, &id, &body);
    }
    if method == "initialize" {
        s.initializes.fetch_add(1, Ordering::SeqCst);
        let now = s.init_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        s.init_peak.fetch_max(now, Ordering::SeqCst);
        let delay = s.init_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        s.init_in_flight.fetch_sub(1, Ordering::SeqCst);
        let sid = format!("fx-{}", s.next.fetch_add(1, Ordering::SeqCst));
        s.sessions.lock().expect("lock").insert(sid.clone());
        let mut r = json_reply(
            &id,
            json!({
                "protocolVersion": msg.pointer("/params/protocolVersion").cloned().unwrap_or(json!("2025-06-18")),
                "capabilities": if s.resources.lock().expect("lock").is_empty() {
                    json!({"tools": {"listChanged": true}})
                } else {
                    json!({"tools": {"listChanged": true}, "resources": {"subscribe": true}})
                },
                "serverInfo": {"name": "fixture", "version": "1"},
            }),
        );
        r.headers_mut()
            .insert("mcp-session-id", sid.parse().expect("header"));
        return r;
    }
    if s.require_session.load(Ordering::SeqCst) {
        let sid = headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !s.sessions.lock().expect("lock").contains(sid) {
            return (StatusCode::NOT_FOUND, "unknown session").into_response();
        }
    }
    if msg.get("id").is_none() {
        return StatusCode::ACCEPTED.into_response();
    }
    match method.as_str() {
        "tools/list" => json_reply(
            &id,
            tools_page(
                s.tools.clone(),
                &msg,
                s.tools_page_size.load(Ordering::SeqCst),
            ),
        ),
        "tools/call" => {
            let name = msg.pointer("/params/name").and_then(Value::as_str).unwrap_or("");
            if !s.tools.iter().any(|t| t["name"] == name) {
                return (
                    [(http::header::CONTENT_TYPE, "application/json")],
                    serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32602, "message": format!("Unknown tool: {name}")}})).expect("encode"),
                )
                    .into_response();
            }
            let delay = s.call_delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            if s.reset_mid_sse.load(Ordering::SeqCst) {
                return reset_mid_sse(&id);
            }
            // Echo the raw arguments text, so callers can see exactly what arrived.
            let raw = String::from_utf8_lossy(&body).into_owned();
            let mut result = json!({"content": [{"type": "text", "text": format!("{name} got {raw}")}]});
            // A tool that declares an MCP App names its resource in the result too.
            if let Some(app) = s
                .tools
                .iter()
                .find(|t| t["name"] == name)
                .and_then(|t| t.pointer("/_meta/ui/resourceUri"))
            {
                result["_meta"] = json!({"ui": {"resourceUri": app}});
            }
            if s.sse_calls.load(Ordering::SeqCst) {
                let event = format!(
                    "event: message\ndata: {}\n\n",
                    json!({"jsonrpc": "2.0", "id": id, "result": result})
                );
                return ([(http::header::CONTENT_TYPE, "text/event-stream")], event).into_response();
            }
            json_reply(&id, result)
        }
        "ping" => json_reply(&id, json!({})),
        "resources/list" => json_reply(&id, json!({"resources": *s.resources.lock().expect("lock")})),
        "resources/templates/list" => json_reply(&id, json!({"resourceTemplates": []})),
        "resources/read" => {
            let uri = msg.pointer("/params/uri").cloned().unwrap_or(Value::Null);
            json_reply(
                &id,
                json!({"contents": [{"uri": uri, "mimeType": "text/html;profile=mcp-app", "text": "<p>app</p>"}]}),
            )
        }
        "resources/subscribe" | "resources/unsubscribe" => json_reply(&id, json!({})),
        _ => (
            [(http::header::CONTENT_TYPE, "application/json")],
            serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "Method not found"}})).expect("encode"),
        )
            .into_response(),
    }
}

fn rpc_error(status: StatusCode, id: &Value, code: i64, message: &str, data: Value) -> Response {
    (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message, "data": data}})).expect("encode"),
    )
        .into_response()
}

/// The stateless (2026-07-28) server: strict about what that version requires.
fn modern(
    s: &FixtureState,
    headers: &HeaderMap,
    msg: &Value,
    method: &str,
    id: &Value,
    body: &[u8],
) -> Response {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let version = h("mcp-protocol-version");
    if version != "2026-07-28" {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            id,
            -32022,
            "Unsupported protocol version",
            json!({"supported": ["2026-07-28"], "requested": version}),
        );
    }
    if h("mcp-method") != method {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            id,
            -32020,
            "Mcp-Method does not match",
            Value::Null,
        );
    }
    if msg
        .pointer("/params/_meta/io.modelcontextprotocol~1protocolVersion")
        .is_none()
    {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            id,
            -32602,
            "params._meta is missing the envelope",
            Value::Null,
        );
    }
    let complete = |mut v: Value| {
        v["resultType"] = json!("complete");
        json_reply(id, v)
    };
    match method {
        "server/discover" => complete(json!({
            "supportedVersions": ["2026-07-28"],
            "capabilities": {"tools": {}},
            "ttlMs": 0, "cacheScope": "public",
        })),
        "tools/list" => {
            let mut page = tools_page(
                s.tools.clone(),
                msg,
                s.tools_page_size.load(Ordering::SeqCst),
            );
            page["ttlMs"] = json!(0);
            page["cacheScope"] = json!("public");
            complete(page)
        }
        "tools/call" => {
            let name = msg
                .pointer("/params/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            if h("mcp-name") != name {
                return rpc_error(
                    StatusCode::BAD_REQUEST,
                    id,
                    -32020,
                    "Mcp-Name does not match",
                    Value::Null,
                );
            }
            let raw = String::from_utf8_lossy(body).into_owned();
            complete(json!({"content": [{"type": "text", "text": format!("{name} got {raw}")}]}))
        }
        _ => rpc_error(
            StatusCode::NOT_FOUND,
            id,
            -32601,
            "Method not found",
            Value::Null,
        ),
    }
}

/// The session's GET stream: messages the fixture is told to send.
async fn get_stream(State(s): State<Arc<FixtureState>>, headers: HeaderMap) -> Response {
    let sid = headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !s.sessions.lock().expect("lock").contains(sid) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    s.streams.lock().expect("lock").push(tx);
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        let msg = rx.recv().await?;
        Some((
            Ok::<_, std::io::Error>(Bytes::from(format!("event: message\ndata: {msg}\n\n"))),
            rx,
        ))
    });
    (
        [(http::header::CONTENT_TYPE, "text/event-stream")],
        axum::body::Body::from_stream(body),
    )
        .into_response()
}

/// A 200 SSE answer that sends half an event and then fails, which makes the server abort the
/// connection (no terminating chunk): what a crashing upstream looks like mid-answer.
fn reset_mid_sse(id: &Value) -> Response {
    let event = format!(
        "event: message\ndata: {}\n\n",
        json!({"jsonrpc": "2.0", "id": id, "result": {"content": [{"type": "text", "text": "x".repeat(4096)}]}})
    );
    let half = event[..event.len() / 2].to_owned();
    // The first half goes out with the headers; the failure follows a moment later.
    let chunks = futures_util::stream::unfold(0u8, move |step| {
        let half = half.clone();
        async move {
            match step {
                0 => Some((Ok(Bytes::from(half)), 1)),
                1 => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Some((
                        Err(std::io::Error::new(
                            std::io::ErrorKind::ConnectionReset,
                            "fixture resets mid-answer",
                        )),
                        2,
                    ))
                }
                _ => None,
            }
        }
    });
    let body = axum::body::Body::from_stream(chunks);
    ([(http::header::CONTENT_TYPE, "text/event-stream")], body).into_response()
}

async fn delete(State(s): State<Arc<FixtureState>>, headers: HeaderMap) -> StatusCode {
    let sid = headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if s.sessions.lock().expect("lock").remove(sid) {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    }
}

/// Counts by method, for assertions.
pub fn count_methods(seen: &[Seen]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for s in seen {
        *m.entry(s.method.clone()).or_default() += 1;
    }
    m
}
