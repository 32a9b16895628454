//! The I/O side of relayed traffic (see [`super::relay`]): a client's answer to an upstream's
//! request, and a GET that resumes an upstream's SSE stream, go to the upstream session the
//! client's gateway session has with that server. Neither creates an upstream session: one that
//! is gone can be neither answered nor resumed.

use super::gather::{credential, session};
use super::mutation::{self, Mutation};
use super::relay::{RelayedResponse, Resume};
use super::respond::{self, Skip};
use super::state::{refused, Answer, Next, Routed, Stream, Target};
use super::Router;
use crate::config::Server;
use crate::deadline::Deadline;
use crate::jsonrpc::OwnedId;
use crate::mcp::header;
use crate::upstream::UpstreamSession;

/// Where the upstream session is, for the request's headers.
fn target(m: &mut Mutation, server: &Server, upstream: &UpstreamSession) {
    mutation::route_to(
        m,
        server,
        mutation::UpstreamSession {
            id: upstream.id.as_deref(),
            protocol_version: &upstream.protocol_version,
        },
        mutation::AlreadySent::default(),
    );
    // The broker's headers, as on routed calls (a cold path: removed whether sent or not).
    m.remove(header::X_MCP_AUTHORIZED);
    m.remove(header::X_MCP_VIRTUALSERVER);
    m.remove(header::ORIGIN);
}

/// The upstream session and its credential for relayed traffic, the routing headers set.
async fn to_upstream(
    router: &Router,
    s: &Stream,
    server: &Server,
    id: Option<&OwnedId>,
    what: &Target,
    m: &mut Mutation,
    deadline: Deadline,
) -> Result<(crate::upstream::SessionKey, bool), Box<super::state::Refusal>> {
    let upstream_failed = refused("upstream");
    let (key, upstream) = session::existing_session(router, s, server, id)
        .await
        .map_err(&upstream_failed)?;
    router
        .metrics
        .request(what.method(), "upstream", &server.name);
    target(m, server, &upstream);
    if let Some(a) = credential::upstream_authorization(router, s, server, id, deadline)
        .await
        .map_err(&upstream_failed)?
    {
        m.set(header::AUTHORIZATION, a.into_bytes());
    }
    Ok((key, upstream.id.is_some()))
}

/// A client's answer to an upstream's request: to that upstream, with its own id back in place.
pub(super) async fn relay(
    router: &Router,
    s: &mut Stream,
    body: &[u8],
    r: RelayedResponse,
    deadline: Deadline,
) -> Answer {
    let mut m = Mutation::default();
    let what = Target::RelayedResponse;
    let (key, used_session) =
        to_upstream(router, s, &r.server, Some(&r.id), &what, &mut m, deadline).await?;
    let mut new_body = Vec::with_capacity(body.len());
    new_body.extend_from_slice(&body[..r.id_span.start]);
    new_body.extend_from_slice(r.upstream_id.as_bytes());
    new_body.extend_from_slice(&body[r.id_span.end..]);
    m.set(header::CONTENT_LENGTH, new_body.len().to_string());
    let routed = Routed {
        key,
        used_session,
        id: Some(r.id),
        target: what,
        subject: s.caller.identity.as_ref().map(|i| i.sub.clone()),
        mark_complete: false,
        upstream_authorization: None,
        ui_prefix: None,
        tasks: false,
        user_credential: None,
        asks: None,
    };
    Ok((
        respond::request_body(m, Some(new_body), true),
        Next::ResponseHeaders(Box::new(routed)),
    ))
}

/// A GET that resumes an upstream's SSE stream after the event the client last saw. `m` holds
/// the header changes made so far (internal headers removed).
pub(super) async fn resume(
    router: &Router,
    s: &mut Stream,
    r: Resume,
    mut m: Mutation,
    deadline: Deadline,
) -> Answer {
    let what = Target::ResumedStream;
    let (key, used_session) =
        to_upstream(router, s, &r.server, None, &what, &mut m, deadline).await?;
    m.set(header::LAST_EVENT_ID, r.last_event_id.into_bytes());
    let routed = Routed {
        key,
        used_session,
        id: None,
        target: what,
        subject: s.caller.identity.as_ref().map(|i| i.sub.clone()),
        mark_complete: false,
        upstream_authorization: None,
        ui_prefix: None,
        tasks: false,
        user_credential: None,
        asks: None,
    };
    Ok((
        respond::request_headers(m, true, Skip::Nothing),
        Next::ResponseHeaders(Box::new(routed)),
    ))
}
