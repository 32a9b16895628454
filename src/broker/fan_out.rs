//! Client messages meant for every upstream of a gateway session, which no single route can
//! carry: `logging/setLevel` (the gateway answers it, and each upstream session open at the time
//! gets it too) and `notifications/cancelled` (the cancelled request went to one of them; the
//! others do not know its id and ignore it, as the protocol lets them). Best effort, in the
//! background: the client's answer does not wait for the upstreams.

use std::time::Duration;

use serde_json::Value;

use super::Broker;
use crate::upstream::Established;

/// How long one upstream gets for a fanned-out message.
const PER_UPSTREAM: Duration = Duration::from_secs(5);

/// What to send every upstream session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Message {
    Request,
    Notification,
}

/// Sends `method` with `params` to every upstream session of gateway session `jti` on this
/// replica. `authorization` is the client's header, replaced as on routed calls (a token
/// exchanged for the server, or its credential where [`crate::auth::credential_applies`]).
pub(super) fn spawn(
    b: &Broker,
    jti: &str,
    authorization: Option<String>,
    kind: Message,
    method: &'static str,
    params: Value,
) {
    let sessions = b.sessions.of_gateway_session(jti);
    if sessions.is_empty() {
        return;
    }
    let config = b.config.borrow().clone();
    let native_auth = config.auth.is_some();
    let client = b.client.clone();
    let gatekeeper = b.gatekeeper.clone();
    tokio::spawn(async move {
        for (server_name, upstream) in sessions {
            let Some(server) = config.server(&server_name).cloned() else {
                continue;
            };
            let session = Established {
                session_id: upstream.id.as_deref().map(str::to_owned),
                protocol_version: upstream.protocol_version.to_string(),
                result: Value::Null,
            };
            // As for routed calls: a token exchanged for the server, else its credential,
            // else the client's header.
            let subject = crate::auth::oidc::bearer(authorization.as_deref());
            let auth = match (&server.token_exchange, subject) {
                (Some(te), Some(subject)) => match gatekeeper
                    .exchanger
                    .exchange(te, subject, crate::deadline::Deadline::NONE)
                    .await
                {
                    Ok(t) => Some(format!("Bearer {t}")),
                    Err(e) => {
                        tracing::debug!(server = %server.name, error = %e, "fan-out: no token");
                        continue;
                    }
                },
                _ => match &server.credential {
                    Some(c) if crate::auth::credential_applies(native_auth) => Some(c.clone()),
                    _ => authorization.clone(),
                },
            };
            let client = client.clone();
            let params = params.clone();
            tokio::spawn(async move {
                let sent = async {
                    match kind {
                        Message::Request => client
                            .request(&server, &session, auth.as_deref(), method, params)
                            .await
                            .map(|_| ()),
                        Message::Notification => {
                            client
                                .notify_in(&server, &session, auth.as_deref(), method, params)
                                .await
                        }
                    }
                };
                match tokio::time::timeout(PER_UPSTREAM, sent).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::debug!(server = %server.name, method, error = %e, "fan-out failed")
                    }
                    Err(_) => tracing::debug!(server = %server.name, method, "fan-out timed out"),
                }
            });
        }
    });
}
