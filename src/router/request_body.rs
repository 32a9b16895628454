//! Phase 2, the body of a POST to the MCP endpoint: its size checked, parsed, decided on (the
//! broker, a relayed answer, an upstream call); for a call, what it needs gathered (the gateway
//! session, the caller's permission, the upstream credential, the upstream session) and the
//! request rewritten for its upstream.

use super::wire::HeaderMap;

use super::decide::{self, Decision, UpstreamCall};
use super::gather;
use super::mutation::{self, Mutation};
use super::respond;
use super::state::{refused, Answer, AskPlan, Next, Routed, Stream, Target};
use super::{relay_route, Router};
use crate::auth::session::AskedIn;
use crate::deadline::Deadline;
use crate::jsonrpc;
use crate::mcp::{self, header};
use crate::reply;
use crate::upstream::SessionKey;

pub(super) async fn on_request_body(
    router: &Router,
    s: &mut Stream,
    body: bytes::Bytes,
    // Needed no longer than this phase: dropped with it.
    client_headers: HeaderMap,
    deadline: Deadline,
) -> Answer {
    if let Some(r) = decide::decide_size(body.len(), router.settings.max_body) {
        return Err(refused("too_large")(r));
    }
    let msg = jsonrpc::parse(&body).map_err(|e| refused("parse")(reply::parse_error(&e, &body)))?;
    // A 2026-07-28 client sees the lists of that revision where a server has its own.
    let catalog = s
        .snapshot
        .catalog
        .for_version(s.facts.protocol_version.as_deref());
    let decision = decide::decide_body(&s.snapshot.config, &catalog, &s.facts, &msg);
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
            // To the broker's host, whatever host the client named (the headers' answer left
            // the route to this one).
            let mut m = Mutation::default();
            m.set(header::AUTHORITY, router.settings.public_host.as_bytes())
                .set(header::X_MCP_SERVERNAME, header::BROKER_SERVER_NAME);
            if !method.is_empty() {
                m.set(header::X_MCP_METHOD, method.into_bytes());
            }
            // With CORS, the stream stays open for the broker's response headers.
            let next = if s.cors {
                Next::BrokerResponseHeaders
            } else {
                Next::Done
            };
            Ok((respond::request_body(m, None, true), next))
        }
        Decision::Reject(r) => Err(refused("decision")(r)),
        Decision::Relay(relayed) => {
            span.record("mcp.server", &*relayed.server.name);
            span.record("decision", "relay");
            Box::pin(relay_route::relay(router, s, &body, relayed, deadline)).await
        }
        Decision::Upstream(call) => {
            span.record("mcp.server", &*call.server.name);
            span.record("mcp.name", call.upstream_name.as_str());
            span.record("decision", "upstream");
            route_upstream(router, s, &body, call, deadline, &client_headers).await
        }
    }
}

/// Gathers what a routed call needs and builds its mutation; the token exchange and the
/// upstream initialize, when needed, share what is left until `deadline`.
// About 90 lines: the steps of one call in the order they must run (session, access, credential,
// upstream session, mutation), each a call into gather/, decide or mutation.
async fn route_upstream(
    router: &Router,
    s: &mut Stream,
    body: &[u8],
    call: UpstreamCall,
    deadline: Deadline,
    client_headers: &HeaderMap,
) -> Answer {
    let upstream_failed = refused("upstream");
    let client_modern = mcp::is_modern(s.facts.protocol_version.as_deref());
    // A 2026-07-28 client on a server that speaks that revision too: natively, no session.
    let native = super::native::native_modern(&s.snapshot.catalog, &s.facts, &call.server.name);
    // Else over an upstream session, whose questions are asked of the client (`asks`).
    let bridged = client_modern && native.is_none();
    let mut asked = bridged.then(|| gather::asks::read(body));
    let declared = asked.as_mut().and_then(|a| a.declared.take());
    let session =
        gather::session::gateway_session(router, s, &call.id, client_headers, declared.clone())
            .map_err(&upstream_failed)?;
    let answers = match asked {
        Some(asked) => gather::asks::answers(
            router,
            asked,
            AskedIn {
                owner: &session.jti,
                server: &call.server.name,
                name: &call.upstream_name,
            },
            &call.id,
        )
        .map_err(refused("request_state"))?,
        None => Vec::new(),
    };
    if let Some(r) = decide::decide_access(
        s.snapshot.config.auth.as_deref(),
        s.caller.identity.as_ref(),
        &call,
    ) {
        return Err(upstream_failed(r));
    }
    // A per-user credential given by URL elicitation, else the usual one (the boxed future is
    // made only for a server that may take one).
    let user_credential = if gather::user_credential::applies(router, &call.server) {
        Box::pin(gather::user_credential::gather(
            router,
            &s.caller,
            s.facts.authorization.as_deref(),
            &session,
            &call.server,
            &call.id,
            client_headers,
        ))
        .await
    } else {
        Ok(None)
    };
    let (replaced_authorization, user_credential) = match user_credential {
        Ok(Some((token, held))) => (Some(token), Some(held)),
        Ok(None) => (
            gather::credential::upstream_authorization(
                router,
                s,
                &call.server,
                Some(&call.id),
                deadline,
            )
            .await
            .map_err(&upstream_failed)?,
            None,
        ),
        // Answered here (an elicitation, or why the call cannot go on).
        Err(answered) => return Ok((answered, Next::Done)),
    };
    // What the upstream is called with: the exchanged token or credential, else the client's
    // own header. Needed only to create a session or to listen after a subscribe.
    let upstream_sees = || {
        replaced_authorization
            .clone()
            .or_else(|| s.facts.authorization.clone())
    };
    let key = SessionKey::new(session.jti.clone(), call.server.name.clone());
    // The common case, a live session, stays small and allocation-free; creating one is boxed.
    let cached = match native {
        Some(_) => native.clone(),
        None => router.sessions.get(&key).await,
    };
    let upstream = match cached {
        Some(upstream) => {
            router.metrics.session_cache(true);
            upstream
        }
        None => {
            let init = gather::initialize::InitRequest {
                facts: &s.facts,
                session: &session,
                key: &key,
                authorization: upstream_sees(),
                call: &call,
                client_headers,
                verified_sub: s.caller.identity.as_ref().map(|id| id.sub.as_str()),
            };
            let created = Box::pin(gather::initialize::upstream_session(router, init, deadline))
                .await
                .map_err(&upstream_failed)?;
            // Server requests on the new session's own GET stream reach the client's; a
            // stateless client has none (it is asked within its calls, by input-required
            // results), so what comes there for it is answered at once ([`crate::upstream::updates`]).
            gather::upstream_stream::open(
                router,
                &session,
                &key,
                &call.server,
                &created,
                upstream_sees(),
                deadline,
            )
            .await;
            created
        }
    };
    let subscribe_authorization = (call.method == mcp::method::RESOURCES_SUBSCRIBE)
        .then(upstream_sees)
        .flatten();
    // Over a session-era upstream's session (a 2026-07-28 server is never bridged).
    let asks = (bridged && !mcp::is_modern(Some(&upstream.protocol_version))).then(|| {
        Box::new(AskPlan {
            declared,
            answers,
            authorization: upstream_sees(),
        })
    });
    router
        .metrics
        .request(call.method, "upstream", &call.server.name);
    let (m, new_body) = mutation::upstream_call(
        &call,
        mutation::UpstreamSession {
            id: upstream.id.as_deref(),
            protocol_version: &upstream.protocol_version,
        },
        &s.facts,
        replaced_authorization,
        body,
    );
    let routed = Routed {
        key,
        used_session: upstream.id.is_some(),
        id: Some(call.id),
        target: Target::Call {
            method: call.method,
            name: call.upstream_name,
        },
        subject: s.caller.identity.as_ref().map(|i| i.sub.clone()),
        mark_complete: mcp::is_modern(s.facts.protocol_version.as_deref())
            && (native.is_some() || !mcp::is_modern(Some(&upstream.protocol_version))),
        upstream_authorization: subscribe_authorization,
        user_credential,
        ui_prefix: call.ui_prefix,
        tasks: mcp::is_modern(s.facts.protocol_version.as_deref())
            && mcp::is_modern(Some(&upstream.protocol_version))
            && (call.method == mcp::method::TOOLS_CALL || call.kind == mcp::CallKind::Task),
        asks,
    };
    let answer = respond::request_body(m, new_body, true);
    let phase = super::response_phase::Call {
        mode: router.settings.response_phase,
        cors: s.cors,
        subscribe: call.method == mcp::method::RESOURCES_SUBSCRIBE,
        mark_complete: routed.mark_complete,
        ui_app: routed.ui_prefix.is_some(),
        tasks: routed.tasks,
        client_session: s.facts.session_id.is_some(),
        upstream_session: routed.used_session,
        user_credential: routed.user_credential.is_some(),
        answers: router.answer_kinds.get(&routed.key.server),
    };
    if super::response_phase::needed(phase) {
        return Ok((answer, Next::ResponseHeaders(Box::new(routed))));
    }
    // Nothing in the answer needs the router: the stream ends here, Envoy puts the gateway
    // session id on the answer (handed over as dynamic metadata), and the status is in its
    // access log. The stream's facts are not read again.
    s.session_back = s.facts.session_id.take();
    super::response::audit(&routed, None);
    Ok((answer, Next::Done))
}
