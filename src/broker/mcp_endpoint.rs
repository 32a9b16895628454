//! `/mcp` on the broker: the gateway's own MCP server, Streamable HTTP (2025 generation).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::post_decide::{decide_method, decide_post, target_field, List, Method, Post};
use super::{fan_out, Broker};
use crate::auth::access::{self, Permissions};
use crate::auth::metadata;
use crate::auth::oidc::AuthError;
use crate::auth::session::GatewaySession;
use crate::auth::Caller;
use crate::catalog::Entry;
use crate::jsonrpc::{self, OwnedId};
use crate::mcp::{self, code, header, method};
use crate::reply::{self, Reject};

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

/// The session named by the request, or the error reply: missing → 400, unknown, or owned by
/// another caller → 404.
// The error is the reply itself, built once on a cold path; boxing it would only add noise.
#[allow(clippy::result_large_err)]
fn require_session(
    b: &Broker,
    headers: &HeaderMap,
    caller: &Caller,
    id: Option<&serde_json::value::RawValue>,
) -> Result<GatewaySession, Response> {
    let id = || id.map(OwnedId::from);
    let Some(token) = header_str(headers, header::SESSION_ID) else {
        return Err(reply::session_required(id()).into_response());
    };
    b.keys
        .verify_owned(token, caller.binding())
        .map_err(|e| reply::session_not_found(&e, id()).into_response())
}

/// A POST to `/mcp`: gather (the body, its message, the caller), decide
/// ([`post_decide::decide_post`]), act.
// About 85 lines: gather (body, message, caller) then one match on the decision.
pub(super) async fn post(State(b): State<Arc<Broker>>, headers: HeaderMap, body: Body) -> Response {
    let is_json = mcp::is_json_content_type(header_str(&headers, header::CONTENT_TYPE));
    if !is_json {
        return reply::not_json().into_response();
    }
    let bytes: Bytes = match axum::body::to_bytes(body, b.max_body).await {
        Ok(bytes) => bytes,
        Err(_) => return reply::too_large(b.max_body).into_response(),
    };
    let msg = match jsonrpc::parse(&bytes) {
        Ok(m) => m,
        Err(e) => return reply::parse_error(&e, &bytes).into_response(),
    };
    let m = msg.method.as_deref().unwrap_or("");
    let version = header_str(&headers, header::PROTOCOL_VERSION);
    if let Some(v) = version.filter(|v| !mcp::is_known_version(v)) {
        return reply::unsupported_version(v, msg.owned_id()).into_response();
    }
    // A stateless (2026-07-28) request: no initialize, no session, no ping; unknown methods are
    // 404; results say how long they may be cached.
    let modern = mcp::is_modern(version);
    let config = b.config.borrow().clone();
    let caller = match b
        .gatekeeper
        .authenticate(
            config.auth.as_ref(),
            header_str(&headers, header::AUTHORIZATION),
            // Envoy does not time the broker out: no deadline, only each request's own limit.
            crate::deadline::Deadline::NONE,
        )
        .await
    {
        Ok(c) => c,
        Err(e) => return unauthenticated(&b, &config, &e, msg.id),
    };
    let post = decide_post(msg.kind, m, msg.id.is_some(), modern);
    let params = msg.params();
    if let Post::Accept { session, cancel } = post {
        if session {
            let session = match require_session(&b, &headers, &caller, None) {
                Ok(s) => s,
                Err(r) => return r,
            };
            if cancel {
                // The cancelled request went to one of the session's upstreams.
                fan_out::spawn(
                    &b,
                    &session.jti,
                    header_str(&headers, header::AUTHORIZATION).map(str::to_owned),
                    fan_out::Message::Notification,
                    method::CANCELLED,
                    params_value(params),
                );
            }
        }
        return StatusCode::ACCEPTED.into_response();
    }
    let Some(id) = msg.id.filter(|_| post != Post::MissingId) else {
        return Reject::new(400, code::INVALID_REQUEST, "id is required", None).into_response();
    };
    // 2026-07-28: the `_meta` envelope every request carries is checked.
    if let Some(Err(e)) = version
        .filter(|_| modern)
        .map(|v| mcp::modern::check_meta(v, params))
    {
        return Reject::new(400, e.code, e.message, Some(id.into())).into_response();
    }
    match post {
        Post::Initialize => initialize(&b, id, params, &caller),
        Post::Listen => {
            let (auth, vs) = (
                header_str(&headers, header::AUTHORIZATION),
                header_str(&headers, header::X_MCP_VIRTUALSERVER),
            );
            super::listen::answer(&b, &caller, auth, vs, id, params).await
        }
        Post::Stateless => {
            let declared = mcp::input_required::declared_capabilities(msg.params_text());
            stateless(&b, &headers, id, m, &config, &caller, declared.as_deref()).await
        }
        Post::Session | Post::MissingId | Post::Accept { .. } => {
            let target = matches!(
                m,
                method::TOOLS_CALL | method::PROMPTS_GET | method::RESOURCES_READ
            )
            .then(|| params_str(params, target_field(m)))
            .flatten();
            let answer = decide_method(m, false, target.as_deref());
            session_request(&b, &headers, &caller, id, (m, answer), params).await
        }
    }
}

/// A session-era request the broker answers, once its session is checked.
async fn session_request(
    b: &Broker,
    headers: &HeaderMap,
    caller: &Caller,
    id: &serde_json::value::RawValue,
    (m, answer): (&str, Method),
    params: Option<&serde_json::value::RawValue>,
) -> Response {
    let session = match require_session(b, headers, caller, Some(id)) {
        Ok(s) => s,
        Err(r) => return r,
    };
    tracing::debug!(session = %session.jti, "broker request");
    let vs = header_str(headers, header::X_MCP_VIRTUALSERVER);
    let config = b.config.borrow().clone();
    let permissions = b.gatekeeper.permissions(
        config.auth.as_ref(),
        caller,
        header_str(headers, header::X_MCP_AUTHORIZED),
    );
    let lists = Lists {
        broker: b,
        virtual_server: vs,
        permissions: &permissions,
        modern: false,
    };
    let visible = || lists.list("tools", |c| &c.tool_list, Filter::Tools);
    let meta =
        super::meta_tools::answer_call(b, &session.jti, m, params, vs, &permissions, visible);
    if let Some(r) = meta.await {
        return json_response(StatusCode::OK, jsonrpc::result_body(id, r));
    }
    let mut result = match answer {
        Method::Ping => json!({}),
        Method::List(l) => lists.of(l),
        Method::SetLevel => {
            fan_out::spawn(
                b,
                &session.jti,
                header_str(headers, header::AUTHORIZATION).map(str::to_owned),
                fan_out::Message::Request,
                method::LOGGING_SET_LEVEL,
                params_value(params),
            );
            json!({})
        }
        // Never asked for in the session generation.
        Method::Discover => json!({}),
        Method::Reject(r) => return r.for_id(Some(id.into())).into_response(),
    };
    if let Some(vs) = vs {
        if config.virtual_server(vs).is_none() {
            return unknown_virtual_server(vs, id);
        }
    }
    if m == method::TOOLS_LIST {
        // The meta-tools' shape, then per-user and capability-dependent tools (user_lists.rs).
        let asker = super::user_lists::Asker {
            session: Some(&session),
            caller,
            authorization: header_str(headers, header::AUTHORIZATION),
            permissions: &permissions,
            virtual_server: vs,
        };
        result = super::user_lists::session_tools_list(b, &asker, &session.jti, result).await;
    }
    let body = jsonrpc::result_body(id, result);
    if mcp::prefers_event_stream(header_str(headers, "accept")) {
        // A client that would rather read a stream gets the result as its one event.
        return sse_response(futures_util::stream::iter([Ok::<_, std::io::Error>(
            one_event(&body),
        )]));
    }
    json_response(StatusCode::OK, body)
}

/// One SSE `message` event carrying `json`.
fn one_event(json: &[u8]) -> Bytes {
    let mut e = Vec::with_capacity(json.len() + 24);
    e.extend_from_slice(b"event: message\ndata: ");
    e.extend_from_slice(json);
    e.extend_from_slice(b"\n\n");
    Bytes::from(e)
}

fn unknown_virtual_server(vs: &str, id: &serde_json::value::RawValue) -> Response {
    Reject::new(
        404,
        code::INVALID_PARAMS,
        format!("unknown virtual server {vs:?}"),
        Some(id.into()),
    )
    .into_response()
}

const INSTRUCTIONS: &str = "An MCP gateway: tools, prompts and resources of several MCP servers, each server's under its own prefix.";

fn gateway_capabilities() -> Value {
    json!({
        "tools": {"listChanged": true},
        "prompts": {"listChanged": true},
        "resources": {"subscribe": true, "listChanged": true},
        "completions": {},
        "logging": {},
    })
}

fn server_info() -> Value {
    json!({"name": "mcp-router", "title": "MCP Gateway", "version": env!("CARGO_PKG_VERSION")})
}

/// A stateless (2026-07-28) request the broker answers: `server/discover` and the lists, with
/// `resultType`, `ttlMs` and `cacheScope`; anything else is 404 + -32601 (`ping`, `initialize`
/// and `logging/setLevel` are gone in that version). `declared`: the relayed capabilities the
/// request's `_meta` declares ([`mcp::input_required::declared_capabilities`]), for the tools
/// some servers list only to such clients.
async fn stateless(
    b: &Broker,
    headers: &HeaderMap,
    id: &serde_json::value::RawValue,
    m: &str,
    config: &crate::config::Config,
    caller: &crate::auth::Caller,
    declared: Option<&str>,
) -> Response {
    let vs = header_str(headers, header::X_MCP_VIRTUALSERVER);
    if let Some(vs) = vs {
        if config.virtual_server(vs).is_none() {
            return unknown_virtual_server(vs, id);
        }
    }
    let trusted = header_str(headers, header::X_MCP_AUTHORIZED);
    let permissions = b
        .gatekeeper
        .permissions(config.auth.as_ref(), caller, trusted);
    // What a caller sees depends on who it is when anything filters by caller.
    let scope = if permissions.unrestricted() && vs.is_none() {
        "public"
    } else {
        "private"
    };
    let lists = Lists {
        broker: b,
        virtual_server: vs,
        permissions: &permissions,
        modern: true,
    };
    let mut result = match decide_method(m, true, None) {
        Method::Discover => {
            let mut caps = gateway_capabilities();
            if let Some(o) = caps.as_object_mut() {
                // Log delivery is per request from 2026-07-28 on.
                o.remove("logging");
                // The router sends each task request to the server that made the task.
                o.insert("extensions".into(), json!({mcp::tasks::EXTENSION: {}}));
            }
            json!({
                "supportedVersions": mcp::all_versions(),
                "capabilities": caps,
                "instructions": INSTRUCTIONS,
                "_meta": {"io.modelcontextprotocol/serverInfo": server_info()},
            })
        }
        Method::List(l) => lists.of(l),
        // Never asked for in the stateless generation.
        Method::Ping | Method::SetLevel => json!({}),
        Method::Reject(r) => return r.for_id(Some(id.into())).into_response(),
    };
    let mut scope = scope;
    if m == method::TOOLS_LIST {
        let asker = super::user_lists::Asker {
            session: None,
            caller,
            authorization: header_str(headers, header::AUTHORIZATION),
            permissions: &permissions,
            virtual_server: vs,
        };
        if super::user_lists::stateless_tools_list(b, &asker, config, declared, &mut result).await {
            scope = "private";
        }
    }
    if let Some(o) = result.as_object_mut() {
        o.insert("resultType".into(), json!("complete"));
        // Lists follow discovery, which may change them at any time: never stale-cached.
        o.insert("ttlMs".into(), json!(0));
        o.insert("cacheScope".into(), json!(scope));
    }
    json_response(StatusCode::OK, jsonrpc::result_body(id, result))
}

/// Checks the bearer token when native auth is configured.
// The error is the reply itself, built once on a cold path.
#[allow(clippy::result_large_err)]
async fn authenticate(b: &Broker, headers: &HeaderMap) -> Result<Caller, Response> {
    let config = b.config.borrow().clone();
    b.gatekeeper
        .authenticate(
            config.auth.as_ref(),
            header_str(headers, header::AUTHORIZATION),
            crate::deadline::Deadline::NONE,
        )
        .await
        .map_err(|e| unauthenticated(b, &config, &e, None))
}

fn params_value(params: Option<&serde_json::value::RawValue>) -> Value {
    params
        .and_then(|p| serde_json::from_str(p.get()).ok())
        .unwrap_or_else(|| json!({}))
}

fn params_str(params: Option<&serde_json::value::RawValue>, field: &str) -> Option<String> {
    let v: Value = serde_json::from_str(params?.get()).ok()?;
    v.get(field)?.as_str().map(str::to_owned)
}

fn initialize(
    b: &Broker,
    id: &serde_json::value::RawValue,
    params: Option<&serde_json::value::RawValue>,
    caller: &Caller,
) -> Response {
    let requested = params_str(params, "protocolVersion");
    let version = mcp::negotiate_version(requested.as_deref());
    let capabilities: Option<Value> = params
        .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
        .and_then(|p| p.get("capabilities").cloned());
    let relayed = capabilities
        .as_ref()
        .and_then(mcp::session_client_capabilities);
    let (token, session) = match b.keys.mint_for(relayed, caller.binding()) {
        Ok(t) => t,
        Err(_) => {
            return Reject::new(
                500,
                code::INTERNAL_ERROR,
                "cannot sign a session",
                Some(id.into()),
            )
            .into_response()
        }
    };
    b.metrics.gateway_session_created();
    tracing::debug!(session = %session.jti, version, "gateway session created");
    let result = json!({
        "protocolVersion": version,
        "capabilities": gateway_capabilities(),
        "serverInfo": server_info(),
        "instructions": super::meta_tools::instructions(b).unwrap_or(INSTRUCTIONS),
    });
    let mut r = json_response(StatusCode::OK, jsonrpc::result_body(id, result));
    if let Ok(v) = HeaderValue::from_str(&token) {
        r.headers_mut().insert(header::SESSION_ID, v);
    }
    r
}

#[derive(Clone, Copy)]
enum Filter {
    Tools,
    Prompts,
    None,
}

/// What limits a list: the virtual server chosen and what the caller may use.
struct Lists<'a> {
    broker: &'a Broker,
    virtual_server: Option<&'a str>,
    permissions: &'a Permissions,
    /// A 2026-07-28 client: the catalog of that revision.
    modern: bool,
}

impl Lists<'_> {
    fn of(&self, l: List) -> Value {
        match l {
            List::Tools => self.list("tools", |c| &c.tool_list, Filter::Tools),
            List::Prompts => self.list("prompts", |c| &c.prompt_list, Filter::Prompts),
            List::Resources => self.list("resources", |c| &c.resource_list, Filter::None),
            List::ResourceTemplates => self.list(
                "resourceTemplates",
                |c| &c.resource_template_list,
                Filter::None,
            ),
        }
    }

    fn list(
        &self,
        field: &str,
        pick: impl Fn(&crate::catalog::Catalog) -> &Vec<Entry>,
        filter: Filter,
    ) -> Value {
        let catalog = self.broker.catalog.borrow().clone();
        let catalog = catalog.for_version(self.modern.then_some(mcp::MODERN_VERSION));
        let config = self.broker.config.borrow().clone();
        let vs = self.virtual_server.and_then(|n| config.virtual_server(n));
        let allowed = |e: &Entry, kind: access::Kind| {
            if self.permissions.unrestricted() {
                return true;
            }
            // Permissions name what the upstream knows: the name without its prefix.
            let prefix = config.server(&e.server).map_or("", |s| &*s.prefix);
            let name = e.key.strip_prefix(prefix).unwrap_or(&e.key);
            self.permissions.allows(kind, &e.server, name)
        };
        let items: Vec<&Value> = pick(&catalog)
            .iter()
            .filter(|e| match (vs, filter) {
                (Some(vs), Filter::Tools) => vs.tools.contains(&*e.key),
                (Some(vs), Filter::Prompts) => {
                    vs.prompts.is_empty() || vs.prompts.contains(&*e.key)
                }
                _ => true,
            })
            .filter(|e| match filter {
                Filter::Tools => allowed(e, access::Kind::Tool),
                Filter::Prompts => allowed(e, access::Kind::Prompt),
                Filter::None => true,
            })
            .map(|e| &*e.value)
            .collect();
        json!({ field: items })
    }
}

/// 401 with the RFC 9728 challenge, or 503/504 when the identity provider cannot be asked.
fn unauthenticated(
    b: &Broker,
    config: &crate::config::Config,
    e: &AuthError,
    id: Option<&serde_json::value::RawValue>,
) -> Response {
    let resource = || {
        metadata::resource(
            &b.gatekeeper.metadata_env,
            config.auth.as_deref(),
            &b.public_host,
        )
    };
    reply::unauthenticated(e, resource, id.map(OwnedId::from)).into_response()
}

/// `/.well-known/oauth-protected-resource[/mcp]`: RFC 9728 metadata, 404 without auth.
pub(super) async fn protected_resource(State(b): State<Arc<Broker>>) -> Response {
    let config = b.config.borrow().clone();
    match metadata::document(
        &b.gatekeeper.metadata_env,
        config.auth.as_deref(),
        &b.public_host,
    ) {
        Some(doc) => json_response(StatusCode::OK, doc.to_string().into_bytes()),
        None => Reject::new(
            404,
            code::METHOD_NOT_FOUND,
            "this gateway has no protected resource metadata (no auth configured)",
            None,
        )
        .into_response(),
    }
}

/// The session's GET stream: `list_changed` notifications from the gateway (SSE).
pub(super) async fn get(State(b): State<Arc<Broker>>, headers: HeaderMap) -> Response {
    let accepts_sse = mcp::accepts_event_stream(header_str(&headers, "accept"));
    if !accepts_sse {
        return Reject::new(
            406,
            code::INVALID_REQUEST,
            "the GET stream needs Accept: text/event-stream",
            None,
        )
        .with_header("allow", "GET, POST, DELETE")
        .into_response();
    }
    let caller = match authenticate(&b, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let session = match require_session(&b, &headers, &caller, None) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let resume = super::notifications::own_event_id(header_str(&headers, "last-event-id"));
    sse_response(super::notifications::until_closing(
        &b,
        super::notifications::stream(
            b.catalog.clone(),
            resume,
            Some(b.updates.subscribe(&session.jti)),
        ),
    ))
}

/// A `text/event-stream` response of `events`.
pub(super) fn sse_response<S>(events: S) -> Response
where
    S: futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
{
    let mut r = Response::new(Body::from_stream(events));
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    r
}

pub(super) async fn delete(State(b): State<Arc<Broker>>, headers: HeaderMap) -> Response {
    let caller = match authenticate(&b, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let session = match require_session(&b, &headers, &caller, None) {
        Ok(s) => s,
        Err(r) => return r,
    };
    b.keys.terminate(&session);
    b.meta_tools.forget(&session.jti);
    b.sessions.announce_terminated(&session.jti).await;
    if let Some(store) = &b.user_tokens {
        // Its per-user credentials (URL elicitation) go with it.
        store.forget_session(&session.jti).await;
    }
    let gone = b.sessions.forget_gateway_session(&session.jti).await;
    if !gone.is_empty() {
        let config = b.config.borrow().clone();
        let client = b.client.clone();
        tokio::spawn(async move {
            for (server, upstream) in gone {
                if let (Some(s), Some(id)) = (config.server(&server), &upstream.id) {
                    client.close(s, id, s.credential.as_deref()).await;
                }
            }
        });
    }
    tracing::debug!(session = %session.jti, "gateway session terminated");
    StatusCode::OK.into_response()
}
