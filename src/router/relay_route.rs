//! The I/O side of relayed traffic (see [`super::relay`]): a client's answer to an upstream's
//! request, and a GET that resumes an upstream's SSE stream, go to the upstream session the
//! client's gateway session has with that server. Neither creates an upstream session: one that
//! is gone can be neither answered nor resumed.

use std::sync::Arc;

use envoy_types::pb::envoy::service::ext_proc::v3::ProcessingResponse;

use super::decide::Reject;
use super::relay::{RelayedResponse, Resume};
use super::respond::{self, Mutation, Skip};
use super::stream::{Routed, StreamState};
use super::Router;
use crate::config::Server;
use crate::deadline::Deadline;
use crate::jsonrpc::OwnedId;
use crate::mcp::{code, header};
use crate::upstream::{SessionKey, UpstreamError, UpstreamSession};

/// The method named in audit lines and metrics for relayed traffic.
const RELAYED_RESPONSE: &str = "(response)";
const RESUMED_STREAM: &str = "(resume)";

/// The live upstream session of this request's gateway session with `server`.
async fn existing_session(
    router: &Router,
    state: &StreamState,
    server: &Server,
    id: Option<&OwnedId>,
) -> Result<(SessionKey, Arc<UpstreamSession>), Reject> {
    let reject = |status, code, message: &str| Reject::new(status, code, message, id.cloned());
    let Some(token) = state.facts.session_id.as_deref() else {
        return Err(reject(
            400,
            code::INVALID_REQUEST,
            "Mcp-Session-Id header is required: call initialize first",
        ));
    };
    let session = router
        .keys
        .verify_owned(token, state.caller.binding())
        .map_err(|e| reject(404, code::SESSION_NOT_FOUND, e.client_message()))?;
    let key: SessionKey = (session.jti.clone(), server.name.clone());
    // Found here or (with Redis) on another replica; never initialized for this.
    let upstream = router
        .sessions
        .get_or_create(key.clone(), session.remaining(), async {
            Err(UpstreamError::SessionGone)
        })
        .await
        .map_err(|_| {
            reject(
                400,
                code::INVALID_REQUEST,
                &format!(
                    "this session has no session with upstream {} (any more): nothing to answer or resume",
                    server.name
                ),
            )
        })?;
    Ok((key, upstream))
}

/// Where the upstream session is, for the request's headers.
fn target(m: &mut Mutation, server: &Server, upstream: &UpstreamSession) {
    m.set(header::AUTHORITY, server.hostname.as_bytes())
        .set(header::PATH, server.path.as_bytes())
        .set(header::X_MCP_SERVERNAME, server.name.as_bytes())
        .set(
            header::PROTOCOL_VERSION,
            upstream.protocol_version.as_bytes(),
        );
    match &upstream.id {
        Some(id) => {
            m.set(header::SESSION_ID, id.as_bytes());
        }
        None => m.remove.push(header::SESSION_ID.to_owned()),
    }
    // The broker's headers, as on routed calls (a cold path: removed whether sent or not).
    m.remove.push(header::X_MCP_AUTHORIZED.to_owned());
    m.remove.push(header::X_MCP_VIRTUALSERVER.to_owned());
    m.remove.push(header::ORIGIN.to_owned());
}

/// A client's answer to an upstream's request: to that upstream, with its own id back in place.
pub(super) async fn relay(
    router: &Router,
    state: &mut StreamState,
    body: &[u8],
    r: RelayedResponse,
    deadline: Deadline,
) -> Result<ProcessingResponse, Reject> {
    let (key, upstream) = existing_session(router, state, &r.server, Some(&r.id)).await?;
    router
        .metrics
        .request(RELAYED_RESPONSE, "upstream", &r.server.name);
    let mut m = Mutation::default();
    target(&mut m, &r.server, &upstream);
    if let Some(a) =
        super::stream::upstream_authorization(router, state, &r.server, Some(&r.id), deadline)
            .await?
    {
        m.set(header::AUTHORIZATION, a.into_bytes());
    }
    let mut new_body = Vec::with_capacity(body.len());
    new_body.extend_from_slice(&body[..r.id_span.start]);
    new_body.extend_from_slice(r.upstream_id.as_bytes());
    new_body.extend_from_slice(&body[r.id_span.end..]);
    m.set(header::CONTENT_LENGTH, new_body.len().to_string());
    state.upstream = Some(Routed {
        key,
        used_session: upstream.id.is_some(),
        id: Some(r.id),
        method: RELAYED_RESPONSE,
        name: String::new(),
        subject: state.caller.identity.as_ref().map(|i| i.sub.clone()),
        mark_complete: false,
        upstream_authorization: None,
        user_credential: None,
    });
    Ok(respond::request_body(m, Some(new_body), true))
}

/// A GET that resumes an upstream's SSE stream after the event the client last saw. `m` holds
/// the header changes made so far (internal headers removed).
pub(super) async fn resume(
    router: &Router,
    state: &mut StreamState,
    r: Resume,
    mut m: Mutation,
    deadline: Deadline,
) -> Result<ProcessingResponse, Reject> {
    let (key, upstream) = existing_session(router, state, &r.server, None).await?;
    router
        .metrics
        .request(RESUMED_STREAM, "upstream", &r.server.name);
    target(&mut m, &r.server, &upstream);
    if let Some(a) =
        super::stream::upstream_authorization(router, state, &r.server, None, deadline).await?
    {
        m.set(header::AUTHORIZATION, a.into_bytes());
    }
    m.set(header::LAST_EVENT_ID, r.last_event_id.into_bytes());
    state.upstream = Some(Routed {
        key,
        used_session: upstream.id.is_some(),
        id: None,
        method: RESUMED_STREAM,
        name: String::new(),
        subject: state.caller.identity.as_ref().map(|i| i.sub.clone()),
        mark_complete: false,
        upstream_authorization: None,
        user_credential: None,
    });
    Ok(respond::request_headers(m, true, Skip::Nothing))
}
