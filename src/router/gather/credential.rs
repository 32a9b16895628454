//! The credential an upstream is called with: a token exchanged for its audience (RFC 8693),
//! else its static credential, else the client's own `Authorization`.

use crate::deadline::Deadline;
use crate::jsonrpc::OwnedId;
use crate::mcp::code;
use crate::reply::Reject;
use crate::router::state::Stream;
use crate::router::Router;

/// What the upstream sees as `Authorization`: a token exchanged for its audience, else its
/// static credential where [`crate::auth::credential_applies`]; `None` leaves the client's own
/// header as it is (the seed's behaviour). An exchange that is not cached ends by `deadline`.
pub(in crate::router) async fn upstream_authorization(
    router: &Router,
    s: &Stream,
    server: &crate::config::Server,
    id: Option<&OwnedId>,
    deadline: Deadline,
) -> Result<Option<String>, Reject> {
    match crate::auth::upstream_auth(server, s.caller.identity.is_some()) {
        crate::auth::UpstreamAuth::Exchange(te) => {
            let Some(subject) = &s.caller.token else {
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
        crate::auth::UpstreamAuth::Credential(c) => Ok(Some(c.to_owned())),
        crate::auth::UpstreamAuth::Callers => Ok(None),
    }
}
