//! One ext_proc stream per HTTP request: read the phases Envoy sends, gather what the decision
//! needs, decide, answer. The stream is closed as soon as no later phase matters, which frees
//! Envoy from sending them.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use envoy_types::pb::envoy::config::core::v3::HeaderMap;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    external_processor_server::ExternalProcessor, processing_request::Request as Phase,
    ProcessingRequest, ProcessingResponse,
};
use futures_util::Stream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use super::cors;
use super::decide::{self, CallKind, Decision, HeaderFacts, HeadersDecision, Reject, UpstreamCall};
use super::respond::{self, Mutation, Skip};
use super::sse_tags::SseTagger;
use super::{relay_route, user_credential, Router};
use crate::auth::access::{self, Permissions};
use crate::auth::oidc::AuthError;
use crate::auth::{metadata, Caller};
use crate::deadline::{Bound, Deadline};
use crate::jsonrpc::{self, OwnedId};
use crate::mcp::{self, code, header};
use crate::telemetry::trace_context;
use crate::upstream::{SessionKey, UpstreamError, Via};

/// The tonic service.
#[derive(Clone)]
pub struct RouterService {
    router: Arc<Router>,
}

impl RouterService {
    pub fn new(router: Arc<Router>) -> RouterService {
        RouterService { router }
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<ProcessingResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ExternalProcessor for RouterService {
    type ProcessStream = ResponseStream;

    /// The response stream is the inbound stream, mapped: each answer is computed when tonic
    /// polls for the next one, on the connection's own task. No task and no channel per stream:
    /// measured, that cut the router's CPU per request by about 3× (REFERENCE.md).
    async fn process(
        &self,
        request: Request<Streaming<ProcessingRequest>>,
    ) -> Result<Response<Self::ProcessStream>, Status> {
        let router = self.router.clone();
        router.metrics.stream_opened();
        // Exported with OTLP when that is on, as a child of the request's `traceparent`
        // (adopted when the request headers arrive).
        let span = tracing::debug_span!(
            "ext_proc",
            otel.kind = "server",
            mcp.method = tracing::field::Empty,
            mcp.name = tracing::field::Empty,
            mcp.server = tracing::field::Empty,
            decision = tracing::field::Empty,
            status = tracing::field::Empty,
        );
        let conversation = Conversation {
            router,
            inbound: request.into_inner(),
            state: StreamState::default(),
            done: false,
            span,
        };
        let responses = futures_util::stream::unfold(conversation, |mut c| async move {
            let span = c.span.clone();
            let next = next_response(&mut c).instrument(span).await?;
            Some((next, c))
        });
        Ok(Response::new(Box::pin(responses)))
    }
}

/// One ext_proc stream in progress.
struct Conversation {
    router: Arc<Router>,
    inbound: Streaming<ProcessingRequest>,
    state: StreamState,
    /// The last answer that matters was sent: end the stream, which frees Envoy from sending
    /// the phases that follow.
    done: bool,
    span: tracing::Span,
}

/// What a stream remembers between phases.
#[derive(Default)]
pub(super) struct StreamState {
    pub(super) facts: HeaderFacts,
    /// Who is calling (a verified identity with native auth) and the bearer token to exchange.
    pub(super) caller: Caller,
    /// Set when the request went to an upstream: needed on the response headers.
    pub(super) upstream: Option<Routed>,
    /// Set when an upstream answered with an SSE stream: its ids are tagged chunk by chunk.
    sse: Option<SseTagger>,
    /// Set when a JSON response is buffered to mark its result complete (stateless client).
    bridge_json: bool,
    /// The client's request headers, kept (moved, not copied) from the headers phase to the
    /// body phase of a POST, for an upstream initialize sent back through the gateway.
    request_headers: Option<HeaderMap>,
    /// A browser's request from an allowed origin (`facts.origin`): whatever answer reaches
    /// the client gets the CORS headers, so the response headers phase is needed.
    cors: bool,
}

pub(super) struct Routed {
    pub(super) key: SessionKey,
    pub(super) used_session: bool,
    /// The request's id, for an error reply (`None` for a GET).
    pub(super) id: Option<OwnedId>,
    pub(super) method: &'static str,
    pub(super) name: String,
    /// The verified subject, for the audit line.
    pub(super) subject: Option<String>,
    /// A stateless client on a session-era upstream: results need their `resultType`.
    pub(super) mark_complete: bool,
    /// For `resources/subscribe`: the `Authorization` the upstream got, to listen for updates.
    pub(super) upstream_authorization: Option<String>,
    /// The stored per-user credential the call carried, forgotten on a 401.
    pub(super) user_credential: Option<user_credential::Held>,
}

/// The answer to the next message Envoy sends, or `None` when the stream is over.
async fn next_response(c: &mut Conversation) -> Option<Result<ProcessingResponse, Status>> {
    if c.done {
        return None;
    }
    loop {
        let message = match c.inbound.message().await {
            Ok(Some(m)) => m,
            Ok(None) => return None,
            Err(status) => {
                // Envoy gave up on the request (client gone, timeout): pass the error back
                // rather than ending cleanly, which Envoy would read as "continue unprocessed".
                c.done = true;
                return Some(Err(status));
            }
        };
        let Some(phase) = message.request else {
            continue;
        };
        let router = &c.router;
        let state = &mut c.state;
        // Envoy waits `message_timeout` for each answer: the work of a request message, however
        // many steps it takes, ends by one deadline below that.
        let (mut response, done) = match phase {
            Phase::RequestHeaders(h) => {
                let deadline = Deadline::after(router.settings.processing_budget);
                on_request_headers(router, state, h.headers, h.end_of_stream, deadline).await
            }
            Phase::RequestBody(b) => {
                let deadline = Deadline::after(router.settings.processing_budget);
                on_request_body(router, state, b.body, deadline).await
            }
            Phase::ResponseHeaders(h) => on_response_headers(router, state, h.headers).await,
            Phase::ResponseBody(b) if state.bridge_json => (
                respond::buffered_response_body(crate::router::bridge::mark_complete(&b.body)),
                true,
            ),
            Phase::ResponseBody(b) => match state.sse.as_mut() {
                Some(tagger) => {
                    let out = tagger.push(&b.body, b.end_of_stream);
                    let changed = (out != b.body).then_some(out);
                    (respond::response_body(changed), b.end_of_stream)
                }
                None => (respond::pass(respond::Phase::ResponseBody), false),
            },
            // Trailers are configured SKIP; the router never changes them, so the stream ends.
            Phase::RequestTrailers(_) | Phase::ResponseTrailers(_) => return None,
        };
        if c.state.cors {
            if let Some(origin) = &c.state.facts.origin {
                respond::add_cors(&mut response, origin.as_bytes());
            }
        }
        c.done = done;
        return Some(Ok(response));
    }
}

fn header_value(map: &HeaderMap, name: &str) -> Option<String> {
    map.headers.iter().find(|h| h.key == name).map(value_of)
}

/// What the decision needs from the request headers, in one pass over them.
fn read_facts(map: &HeaderMap, end_of_stream: bool) -> HeaderFacts {
    let mut facts = HeaderFacts {
        end_of_stream,
        ..Default::default()
    };
    for h in &map.headers {
        let slot = match h.key.as_str() {
            header::PATH => &mut facts.path,
            header::METHOD => &mut facts.method,
            header::X_MCP_AUTHORIZED => {
                facts.authorized = true;
                continue;
            }
            _ => {
                let slot = match h.key.as_str() {
                    header::CONTENT_TYPE => &mut facts.content_type,
                    header::SESSION_ID => &mut facts.session_id,
                    header::PROTOCOL_VERSION => &mut facts.protocol_version,
                    header::X_MCP_VIRTUALSERVER => &mut facts.virtual_server,
                    header::AUTHORIZATION => &mut facts.authorization,
                    "traceparent" => &mut facts.traceparent,
                    "tracestate" => &mut facts.tracestate,
                    header::MCP_METHOD => &mut facts.mcp_method,
                    header::MCP_NAME => &mut facts.mcp_name,
                    header::ORIGIN => &mut facts.origin,
                    header::LAST_EVENT_ID => &mut facts.last_event_id,
                    _ => continue,
                };
                // The first occurrence counts, as with a lookup.
                if slot.is_none() {
                    *slot = Some(value_of(h));
                }
                continue;
            }
        };
        if slot.is_empty() {
            *slot = value_of(h);
        }
    }
    if let Some(end) = facts.path.find(['?', '#']) {
        facts.path.truncate(end);
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

/// A header's value as Envoy sent it (`raw_value`, else `value`).
fn header_bytes(h: &envoy_types::pb::envoy::config::core::v3::HeaderValue) -> &[u8] {
    if h.raw_value.is_empty() {
        h.value.as_bytes()
    } else {
        &h.raw_value
    }
}

fn value_of(h: &envoy_types::pb::envoy::config::core::v3::HeaderValue) -> String {
    if h.raw_value.is_empty() {
        h.value.clone()
    } else {
        String::from_utf8_lossy(&h.raw_value).into_owned()
    }
}

async fn on_request_headers(
    router: &Router,
    state: &mut StreamState,
    headers: Option<HeaderMap>,
    end_of_stream: bool,
    deadline: Deadline,
) -> (ProcessingResponse, bool) {
    let map = headers.unwrap_or_default();
    let mut facts = read_facts(&map, end_of_stream);
    trace_context::adopt_remote_parent(
        &tracing::Span::current(),
        facts.traceparent.as_deref(),
        facts.tracestate.as_deref(),
    );
    // The hairpin is the initialize and its notifications/initialized: POSTs only, so a key
    // seen elsewhere opens nothing else (a GET stream, a DELETE) in its 30 s.
    let hairpin_key = (facts.method == "POST")
        .then(|| header_value(&map, header::X_MCP_ROUTER_KEY))
        .flatten();
    if let Some(key) = hairpin_key {
        if let Some(h) = router.keys.verify_hairpin(&key) {
            facts.hairpin_server = Some(h.server);
            facts.hairpin_call = h.call;
        }
    }
    let mut m = Mutation::default();
    // Strip every internal header the client sent, whatever the decision.
    let mut removed: Vec<String> = map
        .headers
        .iter()
        .filter(|h| header::is_internal(&h.key))
        .map(|h| h.key.clone())
        .collect();
    removed.dedup();
    if !removed.is_empty() {
        router.metrics.spoofed_headers_removed(removed.len());
    }
    m.remove = removed;
    if let Some(r) = router.settings.origins.check(facts.origin.as_deref()) {
        state.facts = facts;
        return (reject(router, &r, "origin"), true);
    }
    if facts.origin.is_some() {
        match cors::kind(&router.settings.origins, &facts) {
            Some(cors::Kind::Preflight) => {
                // Answered here, before authentication (browsers send preflights without
                // credentials); the CORS headers of every response are added on the way out.
                tracing::Span::current().record("decision", "preflight");
                let headers = cors::preflight_headers(
                    header_value(&map, "access-control-request-headers").as_deref(),
                    header_value(&map, "access-control-request-private-network").as_deref(),
                );
                state.cors = true;
                state.facts = facts;
                return (respond::preflight(headers), true);
            }
            Some(cors::Kind::Actual) => state.cors = true,
            None => {}
        }
    }
    let config = router.config.borrow().clone();
    let decision = decide::decide_headers(&config, &facts);
    if facts.path == decide::MCP_PATH && !matches!(decision, HeadersDecision::Hairpin(..)) {
        match router
            .gatekeeper
            .authenticate(
                config.auth.as_ref(),
                facts.authorization.as_deref(),
                deadline,
            )
            .await
        {
            Ok(caller) => {
                if let Some(id) = &caller.identity {
                    router.metrics.authenticated("ok");
                    m.set(header::X_MCP_VERIFIED_SUB, id.sub.as_bytes());
                }
                state.caller = caller;
            }
            Err(e) => {
                state.facts = facts;
                return (unauthenticated(router, &config, &e), true);
            }
        }
    }
    state.facts = facts;
    match decision {
        HeadersDecision::Resume(resume) => {
            tracing::Span::current().record("mcp.server", &*resume.server.name);
            tracing::Span::current().record("decision", "resume");
            match Box::pin(relay_route::resume(router, state, resume, m, deadline)).await {
                Ok(r) => (r, false),
                Err(r) => (reject(router, &r, "upstream"), true),
            }
        }
        HeadersDecision::Hairpin(server, call) => {
            let span = tracing::Span::current();
            span.record("mcp.server", &*server.name);
            span.record("decision", "hairpin");
            if let Some(c) = &call {
                span.record("mcp.name", c.name.as_str());
                tracing::debug!(server = %server.name, method = %c.method, name = %c.name, "upstream initialize sent back through the gateway");
            }
            router
                .metrics
                .request("initialize", "hairpin", &server.name);
            respond::hairpin_initialize(&mut m, &server, call.as_ref());
            (
                respond::request_headers(m, true, Skip::BodyAndResponse),
                true,
            )
        }
        HeadersDecision::Broker => {
            tracing::Span::current().record("decision", "broker");
            router
                .metrics
                .request(&state.facts.method, "broker", header::BROKER_SERVER_NAME);
            m.set(header::AUTHORITY, router.settings.public_host.as_bytes())
                .set(header::X_MCP_SERVERNAME, header::BROKER_SERVER_NAME);
            if state.cors {
                // The broker's answer needs the CORS headers: keep the response headers phase.
                return (respond::request_headers(m, true, Skip::Body), false);
            }
            (
                respond::request_headers(m, true, Skip::BodyAndResponse),
                true,
            )
        }
        HeadersDecision::NeedBody => {
            m.set(header::AUTHORITY, router.settings.public_host.as_bytes());
            state.request_headers = Some(map);
            (respond::request_headers(m, true, Skip::Nothing), false)
        }
        HeadersDecision::Reject(r) => (reject(router, &r, "headers"), true),
    }
}

/// 401 with the challenge that points clients to the protected resource metadata, or 503 when
/// the identity provider cannot be asked (504 when it did not answer in time).
fn unauthenticated(
    router: &Router,
    config: &crate::config::Config,
    e: &AuthError,
) -> ProcessingResponse {
    let (status, code) = match e {
        AuthError::ProviderTimeout(_) => (504, code::UPSTREAM_TIMEOUT),
        AuthError::Provider(_) => (503, code::UNAUTHORIZED),
        _ => (401, code::UNAUTHORIZED),
    };
    tracing::Span::current()
        .record("decision", "reject")
        .record("status", status);
    if e.is_provider() {
        router.metrics.authenticated("provider_error");
        router.metrics.rejected("auth_provider", status);
        tracing::warn!(error = %e, "cannot check a bearer token");
        // The body has not arrived yet: the id is not known (`null`), as for a 401.
        let r = Reject::new(status, code, e.to_string(), None);
        return respond::reject(&r);
    }
    router.metrics.authenticated("rejected");
    router.metrics.rejected("unauthenticated", 401);
    tracing::debug!(error = %e, "bearer token refused");
    let resource = metadata::resource(
        &router.gatekeeper.metadata_env,
        config.auth.as_deref(),
        &router.settings.public_host,
    );
    let detail = (*e != AuthError::Missing).then(|| e.to_string());
    let challenge = metadata::challenge(&resource, detail.as_deref());
    let body = jsonrpc::error_body(
        None,
        code::UNAUTHORIZED,
        &format!("Unauthorized: {e}"),
        None,
    );
    respond::immediate(
        401,
        body,
        &[(header::WWW_AUTHENTICATE, challenge.into_bytes())],
    )
}

fn reject(router: &Router, r: &Reject, reason: &'static str) -> ProcessingResponse {
    tracing::Span::current()
        .record("decision", "reject")
        .record("status", r.status);
    tracing::debug!(status = r.status, code = r.code, reason, message = %r.message, "rejected");
    router.metrics.rejected(reason, r.status);
    respond::reject(r)
}

async fn on_request_body(
    router: &Router,
    state: &mut StreamState,
    body: Vec<u8>,
    deadline: Deadline,
) -> (ProcessingResponse, bool) {
    if body.len() > router.settings.max_body {
        let r = Reject::new(
            413,
            code::REQUEST_TOO_LARGE,
            format!("request body exceeds {} bytes", router.settings.max_body),
            None,
        );
        return (reject(router, &r, "too_large"), true);
    }
    // Needed no longer than this phase: dropped with it.
    let client_headers = state.request_headers.take();
    let msg = match jsonrpc::parse(&body) {
        Ok(m) => m,
        Err(e) => {
            return (
                reject(router, &decide::reject_parse_error(&e, &body), "parse"),
                true,
            )
        }
    };
    let config = router.config.borrow().clone();
    let catalog = router.catalog.borrow().clone();
    let decision = decide::decide_body(&config, &catalog, &state.facts, &msg);
    let span = tracing::Span::current();
    if let Some(m) = msg.method.as_deref() {
        span.record("mcp.method", m);
    }
    match decision {
        Decision::Broker { method } => {
            span.record("decision", "broker");
            router
                .metrics
                .request(&method, "broker", header::BROKER_SERVER_NAME);
            let mut m = Mutation::default();
            m.set(header::X_MCP_SERVERNAME, header::BROKER_SERVER_NAME);
            if !method.is_empty() {
                m.set(header::X_MCP_METHOD, method.into_bytes());
            }
            // With CORS, the stream stays open for the broker's response headers.
            (respond::request_body(m, None, false), !state.cors)
        }
        Decision::Reject(r) => (reject(router, &r, "decision"), true),
        Decision::Relay(relayed) => {
            span.record("mcp.server", &*relayed.server.name);
            span.record("decision", "relay");
            match Box::pin(relay_route::relay(router, state, &body, relayed, deadline)).await {
                Ok(r) => (r, false),
                Err(r) => (reject(router, &r, "upstream"), true),
            }
        }
        Decision::Upstream(call) => {
            span.record("mcp.server", &*call.server.name);
            span.record("mcp.name", call.upstream_name.as_str());
            span.record("decision", "upstream");
            match route_upstream(
                router,
                state,
                &body,
                call,
                deadline,
                client_headers.as_ref(),
            )
            .await
            {
                // A call that needs nothing from the response (`response_phase`) left no
                // `upstream` behind: the stream ends with this answer.
                Ok(r) => (r, state.upstream.is_none()),
                Err(r) => (reject(router, &r, "upstream"), true),
            }
        }
    }
}

/// Gathers the session state of a routed call and builds its mutation; the token exchange and
/// the upstream initialize, when needed, share what is left until `deadline`.
async fn route_upstream(
    router: &Router,
    state: &mut StreamState,
    body: &[u8],
    call: UpstreamCall,
    deadline: Deadline,
    client_headers: Option<&HeaderMap>,
) -> Result<ProcessingResponse, Reject> {
    let facts = &state.facts;
    let session = match facts.session_id.as_deref() {
        Some(token) => router
            .keys
            .verify_owned(token, state.caller.binding())
            .map_err(|e| {
                Reject::new(
                    404,
                    code::SESSION_NOT_FOUND,
                    e.client_message(),
                    Some(call.id.clone()),
                )
            })?,
        // A stateless (2026-07-28) client: its upstream sessions are kept per caller.
        None => stateless_session(router, state, client_headers),
    };
    let key: SessionKey = (session.jti.clone(), call.server.name.clone());
    let server = call.server.clone();
    let config = router.config.borrow().clone();
    if let Some(auth) = &config.auth {
        let kind = match call.kind {
            CallKind::Tool => Some(access::Kind::Tool),
            CallKind::Prompt => Some(access::Kind::Prompt),
            CallKind::Resource => None,
        };
        let permissions = Permissions {
            roles: state
                .caller
                .identity
                .as_ref()
                .map(|id| (auth.roles_claim.clone(), id.claims.clone())),
            capabilities: None,
        };
        if let Some(kind) = kind {
            if !permissions.allows(kind, &server.name, &call.upstream_name) {
                return Err(Reject::new(
                    403,
                    code::FORBIDDEN,
                    format!(
                        "Forbidden: you may not use {} {} of {}",
                        if kind == access::Kind::Tool {
                            "tool"
                        } else {
                            "prompt"
                        },
                        call.upstream_name,
                        server.name
                    ),
                    Some(call.id.clone()),
                ));
            }
        }
    }
    // A per-user credential given by URL elicitation (user_credential.rs), else the usual one.
    let (replaced_authorization, user_credential) = match Box::pin(user_credential::gather(
        router,
        &state.caller,
        state.facts.authorization.as_deref(),
        &session,
        &server,
        &call.id,
        client_headers,
    ))
    .await
    {
        Ok(Some((token, held))) => (Some(token), Some(held)),
        Ok(None) => (
            upstream_authorization(router, state, &server, Some(&call.id), deadline).await?,
            None,
        ),
        Err(answered) => return Ok(answered),
    };
    let facts = &state.facts;
    // What the upstream is called with: the exchanged token or credential, else the client's
    // own header. Needed only to create a session or to listen after a subscribe.
    let upstream_sees = || {
        replaced_authorization
            .clone()
            .or_else(|| state.facts.authorization.clone())
    };
    // The common case, a live session, stays small and allocation-free; creating one is boxed.
    let upstream = match router.sessions.get(&key).await {
        Some(upstream) => {
            router.metrics.session_cache(true);
            upstream
        }
        None => {
            Box::pin(create_upstream_session(
                router,
                facts,
                &session,
                &key,
                upstream_sees(),
                &call,
                client_headers,
                state.caller.identity.as_ref().map(|id| id.sub.as_str()),
                deadline,
            ))
            .await?
        }
    };
    let subscribe_authorization = (call.method == mcp::method::RESOURCES_SUBSCRIBE)
        .then(upstream_sees)
        .flatten();
    router
        .metrics
        .request(call.method, "upstream", &server.name);
    let (m, new_body) = respond::upstream_call(
        &call,
        respond::UpstreamSession {
            id: upstream.id.as_deref(),
            protocol_version: &upstream.protocol_version,
        },
        &state.facts,
        replaced_authorization,
        body,
    );
    let routed = Routed {
        key,
        used_session: upstream.id.is_some(),
        id: Some(call.id),
        method: call.method,
        name: call.upstream_name,
        subject: state.caller.identity.as_ref().map(|i| i.sub.clone()),
        mark_complete: mcp::is_modern(state.facts.protocol_version.as_deref())
            && !mcp::is_modern(Some(&upstream.protocol_version)),
        upstream_authorization: subscribe_authorization,
        user_credential,
    };
    let mut answer = respond::request_body(m, new_body, true);
    let phase = super::response_phase::Call {
        mode: router.settings.response_phase,
        cors: state.cors,
        subscribe: routed.method == mcp::method::RESOURCES_SUBSCRIBE,
        mark_complete: routed.mark_complete,
        client_session: state.facts.session_id.is_some(),
        upstream_session: routed.used_session,
        user_credential: routed.user_credential.is_some(),
        answers: router.answer_kinds.get(&routed.key.1),
    };
    if super::response_phase::needed(phase) {
        state.upstream = Some(routed);
    } else {
        // Envoy puts the gateway session id on the answer; the status is in its access log.
        if let Some(gateway_session) = &state.facts.session_id {
            answer.dynamic_metadata =
                Some(super::response_phase::session_metadata(gateway_session));
        }
        audit(&routed, "-");
    }
    Ok(answer)
}

/// One audit line per routed call: who (the gateway session, never its token), what, where,
/// and how it ended (`-`: not seen by the router, see `response_phase`).
fn audit(routed: &Routed, status: &str) {
    tracing::info!(
        target: "audit",
        session = %routed.key.0,
        subject = routed.subject.as_deref().unwrap_or("-"),
        method = routed.method,
        name = %routed.name,
        server = %routed.key.1,
        status = %status,
        "routed call"
    );
}

/// Initializes the upstream session of `key` for `call`, the first call that needs it
/// (concurrent first calls share one initialize), directly or back through the gateway, within
/// `--upstream-init-timeout-ms` and by `deadline`.
#[allow(clippy::too_many_arguments)]
async fn create_upstream_session(
    router: &Router,
    facts: &HeaderFacts,
    session: &crate::auth::session::GatewaySession,
    key: &SessionKey,
    authorization: Option<String>,
    call: &UpstreamCall,
    client_headers: Option<&HeaderMap>,
    verified_sub: Option<&str>,
    deadline: Deadline,
) -> Result<Arc<crate::upstream::UpstreamSession>, Reject> {
    let (id, server) = (&call.id, &call.server);
    let now = tokio::time::Instant::now();
    let budget = router.settings.processing_budget;
    if deadline.expired_at(now) {
        // The steps before (token exchange) took all of it.
        return Err(Reject::new(
            504,
            code::UPSTREAM_TIMEOUT,
            format!(
                "the {} ms processing budget ran out before upstream {} could be initialized",
                budget.as_millis(),
                server.name
            ),
            Some(id.clone()),
        ));
    }
    let via = match &router.settings.private_host {
        Some(host) => {
            // The key names the call, so that the router gives the initialize the same policy
            // headers as the call; the client's end-to-end headers go along, as on the call.
            let target = mcp::CallTarget {
                method: call.method.to_owned(),
                kind: call.kind,
                name: call.upstream_name.clone(),
                hints: call.hints.as_deref().map(str::to_owned),
                verified_sub: verified_sub.map(str::to_owned),
            };
            Via::Gateway {
                private_host: host.clone(),
                key: router
                    .keys
                    .mint_hairpin(&server.name, Some(&target))
                    .map_err(|_| {
                        Reject::new(
                            500,
                            code::INTERNAL_ERROR,
                            "cannot sign the hairpin key",
                            Some(id.clone()),
                        )
                    })?,
                client_headers: crate::upstream::client::hairpin_headers(
                    client_headers
                        .into_iter()
                        .flat_map(|m| &m.headers)
                        .map(|h| (h.key.as_str(), header_bytes(h))),
                ),
            }
        }
        None => Via::Direct,
    };
    // The upstream session speaks the session generation: a stateless client's calls go over
    // the newest one.
    let version = facts
        .protocol_version
        .clone()
        .filter(|v| !mcp::is_modern(Some(v)))
        .unwrap_or_else(|| mcp::LATEST_VERSION.to_owned());
    // With OTLP export on, the upstream's initialize joins this trace under the ext_proc span.
    let traceparent = trace_context::outgoing_traceparent(facts.traceparent.as_deref());
    let (via, authorization, capabilities) = (
        &via,
        authorization.as_deref(),
        session.client_capabilities.as_deref(),
    );
    let (version, traceparent) = (version.as_str(), traceparent.as_deref());
    // Whether this call ran the initialize (rather than waiting on another call's).
    let created = std::sync::atomic::AtomicBool::new(false);
    let created = &created;
    // Waiting for an initialize slot and the initialize share the step's end.
    let initialize = move |ends: tokio::time::Instant| async move {
        created.store(true, std::sync::atomic::Ordering::Relaxed);
        let started = Instant::now();
        let r = router
            .init_limits
            .run(
                &server.name,
                ends,
                router.client.initialize_for(
                    server,
                    via,
                    authorization,
                    version,
                    traceparent,
                    capabilities,
                ),
            )
            .await;
        router
            .metrics
            .upstream_initialized(&server.name, r.is_ok(), started.elapsed());
        if let Err(e) = &r {
            tracing::warn!(server = %server.name, error = %e, "upstream initialize failed");
        }
        r
    };
    let mut now = now;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let (init_ends, bound) = deadline.end_of_step_at(now, router.settings.init_timeout);
        let limit = InitLimit {
            had: init_ends.saturating_duration_since(now),
            budget: (bound == Bound::Deadline).then_some(budget),
        };
        // Shared by concurrent first calls: it ends, with an error they all get, by the end of
        // the step of the call that started it; a call whose own deadline comes first stops
        // waiting then.
        let shared =
            router
                .sessions
                .get_or_create(key.clone(), session.remaining(), initialize(init_ends));
        let outcome = deadline
            .bound(shared)
            .await
            .unwrap_or_else(|_| Err(Arc::new(UpstreamError::Timeout)));
        let ran_it = created.load(std::sync::atomic::Ordering::Relaxed);
        match outcome {
            Ok(upstream) => {
                router.metrics.session_cache(!ran_it);
                return Ok(upstream);
            }
            // An initialize started by another call may have failed for that call alone: it ran
            // out of that call's budget, or a gateway policy refused that call's tool. Try again
            // until this call runs its own (another waiter's retry may start first), by our own
            // deadline.
            Err(e)
                if !ran_it
                    && attempts < MAX_INIT_ATTEMPTS
                    && failed_for_its_starter(&e, now.elapsed() < router.settings.init_timeout) =>
            {
                now = tokio::time::Instant::now();
                if deadline.expired_at(now) {
                    // What this call saw is its own time running out, not the other's refusal.
                    return Err(init_reject(
                        &UpstreamError::Timeout,
                        &server.name,
                        limit,
                        id,
                    ));
                }
            }
            Err(e) => return Err(init_reject(&e, &server.name, limit, id)),
        }
    }
}

/// How many initializes a call waits on before giving up, its own included: each one but the
/// last was another call's that failed for that call alone (see [`failed_for_its_starter`]).
const MAX_INIT_ATTEMPTS: u32 = 4;

/// Whether an upstream initialize that failed so may have failed only for the call that started
/// it, so that another call that waited on it deserves a try of its own: a policy on the hairpin
/// refused the starter's tool (403), or the starter's budget ended it (a timeout or no free slot)
/// before a whole `--upstream-init-timeout-ms` had passed (`cut_short`; after one, the upstream is
/// the slow one, and trying again would only load it more). Pure.
fn failed_for_its_starter(e: &UpstreamError, cut_short: bool) -> bool {
    match e {
        UpstreamError::Status { status: 403 } => true,
        UpstreamError::Timeout | UpstreamError::Busy { .. } => cut_short,
        _ => false,
    }
}

/// The stand-in gateway session of a stateless (2026-07-28) caller: upstream sessions are kept
/// per caller identity (the verified subject with native auth, else a hash of the
/// `Authorization` header, else one shared anonymous caller) and live as long as a gateway
/// session would, closed earlier when idle.
fn stateless_session(
    router: &Router,
    state: &StreamState,
    client_headers: Option<&HeaderMap>,
) -> crate::auth::session::GatewaySession {
    // Through the gateway, the initialize carries the client's end-to-end headers too (cookies,
    // API keys, a tenant): callers that differ in them must not share what it set up.
    let hairpin: Vec<(&str, &[u8])> = if router.settings.private_host.is_some() {
        client_headers
            .into_iter()
            .flat_map(|m| &m.headers)
            .map(|h| (h.key.as_str(), header_bytes(h)))
            .collect()
    } else {
        Vec::new()
    };
    let who = stateless_caller(
        state.caller.identity.as_ref().map(|id| &*id.binding),
        state.facts.authorization.as_deref(),
        &hairpin,
    );
    crate::auth::session::GatewaySession {
        jti: who.into(),
        exp: crate::auth::oidc::now_secs() + router.keys.length().as_secs(),
        client_capabilities: None,
        // Never checked (no session id to present): the key above is the caller already.
        owner: None,
    }
}

/// Who a stateless caller is, for keeping its upstream sessions: the verified subject with native
/// auth; else a digest of its `Authorization` and of the end-to-end headers an initialize sent
/// back through the gateway would carry (`hairpin`, empty when initializes go direct) that say
/// who the caller is ([`header::identifies_caller`]: not trace context or `Mcp-Param-*`, new on
/// every request); else one anonymous caller. Pure.
fn stateless_caller(
    verified: Option<&str>,
    authorization: Option<&str>,
    hairpin: &[(&str, &[u8])],
) -> String {
    use sha2::{Digest, Sha256};
    if let Some(binding) = verified {
        return format!("caller:sub:{binding}");
    }
    // Envoy sends names in lower case: a copy only for a name that is not.
    let mut forwarded: Vec<(std::borrow::Cow<'_, str>, &[u8])> = hairpin
        .iter()
        .map(|(k, v)| {
            let k = if k.bytes().any(|b| b.is_ascii_uppercase()) {
                std::borrow::Cow::Owned(k.to_ascii_lowercase())
            } else {
                std::borrow::Cow::Borrowed(*k)
            };
            (k, *v)
        })
        .filter(|(k, _)| header::identifies_caller(k))
        .collect();
    if authorization.is_none() && forwarded.is_empty() {
        return "caller:anonymous".to_owned();
    }
    forwarded.sort();
    let mut h = Sha256::new();
    h.update(authorization.unwrap_or_default().as_bytes());
    for (k, v) in &forwarded {
        // Lengths first, so that no two different header sets hash alike.
        h.update((k.len() as u64).to_be_bytes());
        h.update(k.as_bytes());
        h.update((v.len() as u64).to_be_bytes());
        h.update(v);
    }
    format!("caller:auth:{}", hex::encode(&h.finalize()[..16]))
}

/// What the upstream sees as `Authorization`: a token exchanged for its audience, else its
/// static credential where [`crate::auth::credential_applies`]; `None` leaves the client's own
/// header as it is (the seed's behaviour). An exchange that is not cached ends by `deadline`.
pub(super) async fn upstream_authorization(
    router: &Router,
    state: &StreamState,
    server: &crate::config::Server,
    id: Option<&OwnedId>,
    deadline: Deadline,
) -> Result<Option<String>, Reject> {
    match (&server.token_exchange, &server.credential) {
        (Some(te), _) => {
            let Some(subject) = &state.caller.token else {
                return Err(Reject::new(
                    401,
                    code::UNAUTHORIZED,
                    format!(
                        "Unauthorized: {} needs the caller's bearer token to exchange",
                        server.name
                    ),
                    id.cloned(),
                ));
            };
            let token = Box::pin(router.gatekeeper.exchanger.exchange(te, subject, deadline))
                .await
                .map_err(|e| {
                    tracing::warn!(server = %server.name, error = %e, "token exchange failed");
                    let code = match e.status() {
                        401 => code::UNAUTHORIZED,
                        403 => code::FORBIDDEN,
                        504 => code::UPSTREAM_TIMEOUT,
                        _ => code::UPSTREAM_UNAVAILABLE,
                    };
                    Reject::new(e.status(), code, e.to_string(), id.cloned())
                })?;
            Ok(Some(format!("Bearer {token}")))
        }
        (None, Some(c)) if crate::auth::credential_applies(state.caller.identity.is_some()) => {
            Ok(Some(c.clone()))
        }
        (None, _) => Ok(None),
    }
}

/// The time an initialize had, for its error message.
#[derive(Debug, Clone, Copy)]
struct InitLimit {
    had: std::time::Duration,
    /// Set when the processing budget (this long), not the initialize's own limit, ended it.
    budget: Option<std::time::Duration>,
}

impl std::fmt::Display for InitLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ms", self.had.as_millis())?;
        if let Some(budget) = self.budget {
            write!(
                f,
                ", what was left of the {} ms processing budget",
                budget.as_millis()
            )?;
        }
        Ok(())
    }
}

fn init_reject(e: &UpstreamError, server: &str, limit: InitLimit, id: &OwnedId) -> Reject {
    let (status, code, message) = match e {
        UpstreamError::Timeout => (
            504,
            code::UPSTREAM_TIMEOUT,
            format!("upstream {server} did not complete initialize within {limit}"),
        ),
        UpstreamError::Busy { limit: slots } => (
            503,
            code::UPSTREAM_TIMEOUT,
            format!(
                "upstream {server} has {slots} initializes in progress and none finished within {limit}: retry"
            ),
        ),
        UpstreamError::Abandoned => (
            503,
            code::UPSTREAM_TIMEOUT,
            format!("upstream {server}: {e}: retry"),
        ),
        UpstreamError::Unreachable(why) => (
            502,
            code::UPSTREAM_UNAVAILABLE,
            format!("upstream {server} is unreachable: {why}"),
        ),
        // A gateway policy (on an initialize sent back through the gateway) or the server
        // refused the call's session: the caller may not, which a retry does not change.
        UpstreamError::Status { status: 403 } => (
            403,
            code::FORBIDDEN,
            format!("Forbidden: a gateway policy or upstream {server} refused to initialize a session for this call (HTTP 403)"),
        ),
        other => (
            502,
            code::UPSTREAM_UNAVAILABLE,
            format!("upstream {server} failed to initialize a session: {other}"),
        ),
    };
    Reject::new(status, code, message, Some(id.clone()))
}

async fn on_response_headers(
    router: &Router,
    state: &mut StreamState,
    headers: Option<HeaderMap>,
) -> (ProcessingResponse, bool) {
    let Some(routed) = state.upstream.take() else {
        return (respond::pass(respond::Phase::ResponseHeaders), true);
    };
    let map = headers.unwrap_or_default();
    let status = header_value(&map, header::STATUS).unwrap_or_default();
    if let Ok(code) = status.parse::<u16>() {
        tracing::Span::current().record("status", code);
    }
    audit(&routed, &status);
    user_credential::on_status(router, routed.user_credential.as_ref(), &status).await;
    if status == "404" && routed.used_session {
        // The upstream lost our session (restarted, expired): forget it so the next call
        // creates a new one, and tell the client to retry without ending its gateway session
        // (a 404 would make it start over).
        router.sessions.forget(&routed.key).await;
        router.metrics.upstream_session_lost(&routed.key.1);
        let r = Reject::new(
            502,
            code::UPSTREAM_UNAVAILABLE,
            format!(
                "upstream {} no longer knows this session; a new one is created on the next call: retry",
                routed.key.1
            ),
            routed.id,
        );
        return (reject(router, &r, "upstream_session_lost"), true);
    }
    if let Some((status, code, message)) = super::upstream_failure::classify(
        &status,
        header_value(&map, header::CONTENT_TYPE).as_deref(),
        header_value(&map, header::WWW_AUTHENTICATE).is_some(),
        &routed.key.1,
    ) {
        let r = Reject::new(status, code, message, routed.id.clone());
        return (reject(router, &r, "upstream_failed"), true);
    }
    if routed.method == mcp::method::RESOURCES_SUBSCRIBE && status == "200" {
        // The upstream will tell of changes on its own GET stream of that session: listen.
        let server = router.config.borrow().server(&routed.key.1).cloned();
        if let (Some(server), Some(upstream)) = (server, router.sessions.get(&routed.key).await) {
            router.updates.listen(
                routed.key.clone(),
                server,
                crate::upstream::Established {
                    session_id: upstream.id.as_deref().map(str::to_owned),
                    protocol_version: upstream.protocol_version.to_string(),
                    result: serde_json::Value::Null,
                },
                routed.upstream_authorization.clone(),
                router.client.clone(),
            );
        }
    }
    let mut m = Mutation::default();
    match &state.facts.session_id {
        Some(gateway_session) => {
            m.set(header::SESSION_ID, gateway_session.as_bytes());
        }
        None => m.remove.push(header::SESSION_ID.to_owned()),
    }
    let is_sse = crate::mcp::is_event_stream_content_type(
        header_value(&map, header::CONTENT_TYPE).as_deref(),
    );
    let is_json =
        crate::mcp::is_json_content_type(header_value(&map, header::CONTENT_TYPE).as_deref());
    // What lets a later call to this server skip the response phase (`response_phase`).
    router
        .answer_kinds
        .learn(&routed.key.1, is_sse, is_json && status.starts_with('2'));
    if is_sse {
        // The upstream may send the client requests and numbers its events: tag them with the
        // server, chunk by chunk, so that answers and resumptions find their way back.
        state.sse = Some(SseTagger::new(&routed.key.1).marking_complete(routed.mark_complete));
        return (respond::response_headers_then_stream_body(m), false);
    }
    if routed.mark_complete && is_json {
        state.bridge_json = true;
        return (respond::response_headers_then_buffer_body(m), false);
    }
    (respond::response_headers(m), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stateless_callers_share_upstream_sessions_only_with_the_same_identity() {
        let key_a: &[(&str, &[u8])] = &[("x-api-key", b"a"), ("accept", b"*/*")];
        let key_a_reordered: &[(&str, &[u8])] = &[("Accept", b"text/plain"), ("X-Api-Key", b"a")];
        let key_b: &[(&str, &[u8])] = &[("x-api-key", b"b")];
        let only_internal: &[(&str, &[u8])] = &[("x-mcp-servername", b"x"), ("accept", b"*/*")];
        let who = |v, a, h| stateless_caller(v, a, h);
        // (one caller, another, same key?)
        let cases = [
            (
                who(Some("alice"), None, key_a),
                who(Some("alice"), Some("t"), key_b),
                true,
            ),
            (
                who(Some("alice"), None, &[]),
                who(Some("bob"), None, &[]),
                false,
            ),
            (who(None, None, &[]), who(None, None, only_internal), true),
            (who(None, None, key_a), who(None, None, key_b), false),
            (
                who(None, None, key_a),
                who(None, None, key_a_reordered),
                true,
            ),
            (who(None, None, key_a), who(None, None, &[]), false),
            // What changes with every request of one caller makes no new caller.
            (
                who(None, None, key_a),
                who(
                    None,
                    None,
                    &[
                        ("x-api-key", b"a"),
                        ("mcp-param-region", b"eu"),
                        ("baggage", b"k=v"),
                        ("tracestate", b"v=1"),
                        ("x-b3-traceid", b"80f198ee56343ba8"),
                    ],
                ),
                true,
            ),
            (
                who(None, Some("Bearer t"), &[]),
                who(None, Some("Bearer u"), &[]),
                false,
            ),
            (
                who(None, Some("Bearer t"), key_a),
                who(None, Some("Bearer t"), key_b),
                false,
            ),
            // Lengths are hashed: moving bytes between name and value makes another caller.
            (
                who(None, None, &[("x-ab", b"c")]),
                who(None, None, &[("x-a", b"bc")]),
                false,
            ),
        ];
        for (i, (one, other, same)) in cases.iter().enumerate() {
            assert_eq!(one == other, *same, "case {i}: {one} / {other}");
        }
        assert_eq!(who(None, None, &[]), "caller:anonymous");
        assert!(who(Some("b1"), None, &[]).starts_with("caller:sub:"));
    }
    use envoy_types::pb::envoy::config::core::v3::HeaderValue;

    fn map(headers: &[(&str, &str)]) -> HeaderMap {
        HeaderMap {
            headers: headers
                .iter()
                .map(|(k, v)| HeaderValue {
                    key: (*k).to_owned(),
                    raw_value: v.as_bytes().to_vec(),
                    ..Default::default()
                })
                .collect(),
        }
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
        assert_eq!(f.method, "POST");
        assert_eq!(f.path, "/mcp");
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
    fn a_call_that_waited_retries_only_what_may_have_failed_for_the_starter_alone() {
        // (error, cut short of a whole initialize timeout, retry?)
        for (e, cut_short, retry) in [
            (UpstreamError::Timeout, true, true),
            (UpstreamError::Busy { limit: 4 }, true, true),
            (UpstreamError::Status { status: 403 }, true, true),
            // A whole initialize timeout passed: the upstream is slow, for every caller.
            (UpstreamError::Timeout, false, false),
            (UpstreamError::Busy { limit: 4 }, false, false),
            (UpstreamError::Status { status: 403 }, false, true),
            (UpstreamError::Status { status: 401 }, true, false),
            (UpstreamError::Status { status: 500 }, true, false),
            (UpstreamError::Unreachable("refused".into()), true, false),
        ] {
            assert_eq!(
                failed_for_its_starter(&e, cut_short),
                retry,
                "{e} cut short: {cut_short}"
            );
        }
    }

    #[test]
    fn failed_initializes_become_json_rpc_errors_with_the_calls_id() {
        let id = jsonrpc::parse(br#"{"jsonrpc":"2.0","id":7,"method":"tools/call"}"#)
            .expect("parse")
            .owned_id()
            .expect("id");
        let limit = InitLimit {
            had: std::time::Duration::from_millis(5000),
            budget: None,
        };
        let cases: [(UpstreamError, u16, i64, &str); 7] = [
            (
                UpstreamError::Abandoned,
                503,
                code::UPSTREAM_TIMEOUT,
                "abandoned by their callers: retry",
            ),
            (
                UpstreamError::Timeout,
                504,
                code::UPSTREAM_TIMEOUT,
                "within 5000 ms",
            ),
            (
                UpstreamError::Busy { limit: 4 },
                503,
                code::UPSTREAM_TIMEOUT,
                "retry",
            ),
            (
                UpstreamError::Unreachable("refused".into()),
                502,
                code::UPSTREAM_UNAVAILABLE,
                "unreachable: refused",
            ),
            // A policy behind the gateway refused the initialize the call needs.
            (
                UpstreamError::Status { status: 403 },
                403,
                code::FORBIDDEN,
                "Forbidden: a gateway policy",
            ),
            (
                UpstreamError::Status { status: 401 },
                502,
                code::UPSTREAM_UNAVAILABLE,
                "HTTP 401",
            ),
            (
                UpstreamError::Status { status: 500 },
                502,
                code::UPSTREAM_UNAVAILABLE,
                "HTTP 500",
            ),
        ];
        for (e, status, code, needle) in cases {
            let r = init_reject(&e, "ns/kube", limit, &id);
            assert_eq!((r.status, r.code), (status, code), "{e:?}");
            assert!(
                r.message.contains(needle) && r.message.contains("ns/kube"),
                "{e:?}: {}",
                r.message
            );
            assert_eq!(r.id.as_ref(), Some(&id));
        }
    }

    #[test]
    fn initialize_errors_say_which_limit_ended_them() {
        let ms = std::time::Duration::from_millis;
        let own = InitLimit {
            had: ms(5000),
            budget: None,
        };
        let rest = InitLimit {
            had: ms(1200),
            budget: Some(ms(8000)),
        };
        let id = jsonrpc::parse(br#"{"jsonrpc":"2.0","id":7,"method":"tools/call"}"#)
            .expect("parse")
            .owned_id()
            .expect("id");
        // (error, limit, status, code, message)
        let cases = [
            (
                UpstreamError::Timeout,
                own,
                504,
                code::UPSTREAM_TIMEOUT,
                "upstream s/a did not complete initialize within 5000 ms",
            ),
            (
                UpstreamError::Timeout,
                rest,
                504,
                code::UPSTREAM_TIMEOUT,
                "upstream s/a did not complete initialize within 1200 ms, what was left of the 8000 ms processing budget",
            ),
            (
                UpstreamError::Busy { limit: 4 },
                rest,
                503,
                code::UPSTREAM_TIMEOUT,
                "upstream s/a has 4 initializes in progress and none finished within 1200 ms, what was left of the 8000 ms processing budget: retry",
            ),
        ];
        for (e, limit, status, code, message) in cases {
            let r = init_reject(&e, "s/a", limit, &id);
            assert_eq!(
                (r.status, r.code, r.message.as_str()),
                (status, code, message)
            );
            assert_eq!(r.id, Some(id.clone()));
        }
    }

    #[test]
    fn missing_and_empty_headers() {
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, Option<&'a str>);
        let cases: &[Case] = &[
            (&[], "", None),
            (&[(":path", "/mcp")], "/mcp", None),
            (&[(":path", "/mcp"), ("mcp-session-id", "")], "/mcp", None),
            (&[(":path", "?q")], "", None),
            (&[("mcp-session-id", "s")], "", Some("s")),
        ];
        for (headers, path, session) in cases {
            let f = read_facts(&map(headers), true);
            assert_eq!(f.path, *path, "{headers:?}");
            assert_eq!(f.session_id.as_deref(), *session, "{headers:?}");
            assert!(f.end_of_stream);
        }
    }
}
