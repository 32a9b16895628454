//! An upstream session's own GET stream, opened when the gateway session can take what comes on
//! it: a client that declared `sampling`, `elicitation` or `roots` may be sent requests there
//! (the TypeScript SDK 1.x sends `server.request()` made outside a request's context on it), so
//! the replica that created the upstream session listens on that stream and hands those requests
//! (tagged with the server) and resource updates to the client's GET stream
//! ([`crate::upstream::updates`], [`crate::upstream::get_stream`]). A stateless (2026-07-28)
//! client has no GET stream, and is asked only within its calls: the requests a server sends on
//! its upstream session's stream are answered at once (a `ping` answered, anything else refused)
//! rather than left to the server's timeout. Sessions of clients that
//! declared none of them open nothing, so that idle sessions cost nothing. A client that declared
//! `tasks` (2025-11-25) gets it opened too: a server tells a task's later status changes there
//! (`notifications/tasks/status`, relayed with the task id tagged). The call waits
//! (within its deadline) until the stream is open: a server drops what it would send on a
//! stream that is not there yet.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::session::GatewaySession;
use crate::config::Server;
use crate::deadline::Deadline;
use crate::upstream::{Established, SessionKey, UpstreamSession};

use crate::router::Router;

/// How long a call without a processing deadline waits for the new session's GET stream.
const OPEN_WAIT: Duration = Duration::from_secs(2);

/// Opens the GET stream of a just-created upstream session when
/// [`crate::upstream::get_stream::wanted`] says so.
#[allow(clippy::too_many_arguments)]
pub(in crate::router) async fn open(
    router: &Router,
    session: &GatewaySession,
    key: &SessionKey,
    server: &Arc<Server>,
    upstream: &UpstreamSession,
    authorization: Option<String>,
    deadline: Deadline,
) {
    if !crate::upstream::get_stream::wanted(
        session.client_capabilities.as_deref(),
        upstream.id.is_some(),
        &upstream.protocol_version,
    ) {
        return;
    }
    let ready = router.updates.listen(
        key.clone(),
        server.clone(),
        Established {
            session_id: upstream.id.as_deref().map(str::to_owned),
            protocol_version: upstream.protocol_version.to_string(),
            result: serde_json::Value::Null,
        },
        authorization,
        router.client.clone(),
        crate::router::relay::tag_prefix(&server.name),
    );
    // Until the stream is open or refused (both come at once from a working server), within
    // the call's processing budget: a slow open must not make the call lose its request.
    let wait = deadline
        .remaining_at(tokio::time::Instant::now())
        .unwrap_or(OPEN_WAIT);
    let _ = tokio::time::timeout(wait, ready).await;
}
