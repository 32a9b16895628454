//! Phase 1, the request headers: internal headers a client sent stripped, the `Origin` checked
//! (a CORS preflight answered), the caller authenticated, and the decision on what the headers
//! alone tell: a hairpin initialize straight to its server, a resumed SSE stream, the broker,
//! or a POST whose body decides.

use std::borrow::Cow;

use super::wire::HeaderMap;

use super::decide::{self, HeadersDecision};
use super::facts::{header_value, read_facts};
use super::mutation::{self, Mutation};
use super::respond::{self, Skip};
use super::state::{refused, Answer, Next, Refusal, Stream};
use super::{cors, relay_route, Router};
use crate::auth::metadata;
use crate::auth::oidc::AuthError;
use crate::deadline::Deadline;
use crate::mcp::header;
use crate::reply;
use crate::telemetry::trace_context;

pub(super) async fn on_request_headers(
    router: &Router,
    s: &mut Stream,
    headers: Option<HeaderMap>,
    end_of_stream: bool,
    deadline: Deadline,
) -> Answer {
    let map = headers.unwrap_or_default();
    s.facts = read_facts(&map, end_of_stream);
    let facts = &mut s.facts;
    trace_context::adopt_remote_parent(
        &tracing::Span::current(),
        facts.traceparent.as_deref(),
        facts.tracestate.as_deref(),
    );
    // The hairpin is the initialize and its notifications/initialized: POSTs only, so a key
    // seen elsewhere opens nothing else (a GET stream, a DELETE) in its 30 s.
    let hairpin_key = (facts.method == http::Method::POST)
        .then(|| header_value(&map, header::X_MCP_ROUTER_KEY))
        .flatten();
    if let Some(key) = hairpin_key {
        if let Some(h) = router.keys.verify_hairpin(&key) {
            facts.hairpin_server = Some(h.server);
            facts.hairpin_call = h.call;
        }
    }
    let mut m = Mutation::removing(strip_internal(router, &map));
    if router.settings.enable_a2a && super::a2a::is_a2a_path(&facts.path) {
        tracing::Span::current().record("decision", "a2a");
        let (r, body_next) =
            super::a2a::on_headers(&facts.path, facts.method.as_str(), end_of_stream, m);
        return Ok((r, if body_next { Next::A2aBody } else { Next::Done }));
    }
    if let Some(r) = router.settings.origins.check(facts.origin.as_deref()) {
        return Err(refused("origin")(r));
    }
    if facts.origin.is_some() {
        match cors::kind(&router.settings.origins, facts) {
            Some(cors::Kind::Preflight) => {
                // Answered here, before authentication (browsers send preflights without
                // credentials); the CORS headers of every response are added on the way out.
                tracing::Span::current().record("decision", "preflight");
                let headers = cors::preflight_headers(
                    header_value(&map, "access-control-request-headers").as_deref(),
                    header_value(&map, "access-control-request-private-network").as_deref(),
                );
                s.cors = true;
                return Ok((respond::preflight(headers), Next::Done));
            }
            Some(cors::Kind::Actual) => s.cors = true,
            None => {}
        }
    }
    let decision = decide::decide_headers(&s.snapshot.config, &s.facts);
    if decision.authenticates(&s.facts) {
        let config = &s.snapshot.config;
        match router
            .gatekeeper
            .authenticate(
                config.auth.as_ref(),
                s.facts.authorization.as_deref(),
                deadline,
            )
            .await
        {
            Ok(caller) => {
                if let Some(id) = &caller.identity {
                    router.metrics.authenticated("ok");
                    m.set(header::X_MCP_VERIFIED_SUB, id.sub.as_bytes());
                }
                s.caller = caller;
            }
            Err(e) => return Err(unauthenticated(router, s, &e)),
        }
    }
    act(router, s, decision, m, map, deadline).await
}

/// The internal headers a client sent (removed whatever the decision), counted.
fn strip_internal(router: &Router, map: &HeaderMap) -> Vec<Cow<'static, str>> {
    let mut removed: Vec<Cow<'static, str>> = map
        .iter()
        .filter(|h| header::is_internal_key(h.key()))
        .map(|h| h.name().to_owned().into())
        .collect();
    removed.dedup();
    if !removed.is_empty() {
        router.metrics.spoofed_headers_removed(removed.len());
    }
    removed
}

async fn act(
    router: &Router,
    s: &mut Stream,
    decision: HeadersDecision,
    mut m: Mutation,
    map: HeaderMap,
    deadline: Deadline,
) -> Answer {
    let span = tracing::Span::current();
    match decision {
        HeadersDecision::Resume(resume) => {
            span.record("mcp.server", &*resume.server.name);
            span.record("decision", "resume");
            Box::pin(relay_route::resume(router, s, resume, m, deadline)).await
        }
        HeadersDecision::Hairpin(server, call) => {
            span.record("mcp.server", &*server.name);
            span.record("decision", "hairpin");
            if let Some(c) = &call {
                span.record("mcp.name", c.name.as_str());
                tracing::debug!(server = %server.name, method = %c.method, name = %c.name, "upstream initialize sent back through the gateway");
            }
            router
                .metrics
                .request("initialize", "hairpin", &server.name);
            mutation::hairpin_initialize(&mut m, &server, call.as_ref());
            Ok((
                respond::request_headers(m, true, Skip::BodyAndResponse),
                Next::Done,
            ))
        }
        HeadersDecision::Broker => {
            span.record("decision", "broker");
            router.metrics.request(
                s.facts.method.as_str(),
                "broker",
                header::BROKER_SERVER_NAME,
            );
            m.set(header::AUTHORITY, router.settings.public_host.as_bytes())
                .set(header::X_MCP_SERVERNAME, header::BROKER_SERVER_NAME);
            if s.cors {
                // The broker's answer needs the CORS headers: keep the response headers phase.
                return Ok((
                    respond::request_headers(m, true, Skip::Body),
                    Next::BrokerResponseHeaders,
                ));
            }
            Ok((
                respond::request_headers(m, true, Skip::BodyAndResponse),
                Next::Done,
            ))
        }
        HeadersDecision::NeedBody => {
            // No route yet: the body's answer sets the host (the broker's or the upstream's) and
            // has Envoy match the route again, once. Envoy forwards nothing before that answer
            // (the body is buffered), so the route of the client's own host is never used.
            Ok((
                respond::request_headers(m, false, Skip::Nothing),
                Next::RequestBody {
                    client_headers: map,
                },
            ))
        }
        HeadersDecision::Reject(r) => Err(refused("headers")(r)),
    }
}

/// A bearer token refused (401 with the challenge), or the identity provider not asked (503/504).
fn unauthenticated(router: &Router, s: &Stream, e: &AuthError) -> Box<Refusal> {
    let reason = if e.is_provider() {
        router.metrics.authenticated("provider_error");
        tracing::warn!(error = %e, "cannot check a bearer token");
        "auth_provider"
    } else {
        router.metrics.authenticated("rejected");
        tracing::debug!(error = %e, "bearer token refused");
        "unauthenticated"
    };
    let resource = || {
        metadata::resource(
            &router.gatekeeper.metadata_env,
            s.snapshot.config.auth.as_deref(),
            &router.settings.public_host,
        )
    };
    // The body has not arrived yet: the id is not known (`null`).
    refused(reason)(reply::unauthenticated(e, resource, None))
}
