//! The per-user credential of a routed call to a server with `tokenURLElicitation` (with
//! `--enable-url-elicitation`): gathers the caller's subject and stored credential, asks
//! [`crate::auth::elicitation::decide`], and either hands back the `Authorization` to send or
//! the answer itself (-32042 with a new elicitation, or an isError tool result saying why).
//! Hooked into the call's credential step ([`gather`]) and its response headers ([`on_status`]:
//! a 401 forgets the credential).

use crate::router::wire::HeaderMap;

use crate::auth::elicitation::{self, Need};
use crate::auth::session::GatewaySession;
use crate::auth::user_tokens::Pending;
use crate::auth::Caller;
use crate::config::Server;
use crate::jsonrpc::OwnedId;
use crate::reply::Reject;
use crate::router::{respond, Router};

pub(in crate::router) use crate::router::state::Held;

/// The subject a router names a caller by: the verified identity with native auth (its binding
/// to issuer and subject); else the `sub` of its bearer JWT, unchecked, as the seed does (a
/// policy after the router checks the token; the `/tokens` page checks a verified one).
pub(crate) fn subject(caller: &Caller, authorization: Option<&str>) -> Option<String> {
    match &caller.identity {
        Some(id) => Some(id.binding.to_string()),
        None => elicitation::unverified_sub(authorization),
    }
}

/// Whether calls to `server` may take a per-user credential: URL elicitation is on and the
/// server names a token page. When not, [`gather`] has nothing to do (`Ok(None)`).
pub(in crate::router) fn applies(router: &Router, server: &Server) -> bool {
    router.user_tokens.is_some() && server.token_url_elicitation.is_some()
}

/// For a call to `server`: `Ok(None)` when the server takes no per-user credential (or URL
/// elicitation is off), `Ok(Some(..))` with the `Authorization` to send, `Err(answer)` when the
/// call is answered here.
pub(in crate::router) async fn gather(
    router: &Router,
    caller: &Caller,
    authorization: Option<&str>,
    session: &GatewaySession,
    server: &Server,
    id: &OwnedId,
    client_headers: &HeaderMap,
) -> Result<Option<(String, Held)>, crate::router::answer::Answer> {
    let (Some(store), Some(page)) = (&router.user_tokens, &server.token_url_elicitation) else {
        return Ok(None);
    };
    let subject = subject(caller, authorization);
    let stored = match &subject {
        Some(s) => store.get(&session.jti, &server.name, s).await,
        None => None,
    };
    let elicits = elicitation::client_elicits(session.client_capabilities.as_deref());
    match (
        elicitation::decide(subject.as_deref(), stored, elicits),
        subject,
    ) {
        (Need::Use(token), Some(subject)) => Ok(Some((
            token,
            Held {
                jti: session.jti.clone(),
                server: server.name.clone(),
                subject,
            },
        ))),
        (Need::Elicit, Some(subject)) => {
            let pending = Pending {
                jti: session.jti.to_string(),
                server: server.name.to_string(),
                subject: store.subject_digest(&subject),
                exp: session.exp,
            };
            let Ok(eid) = store.begin(&pending).await else {
                let r = Reject::new(
                    503,
                    crate::mcp::code::UPSTREAM_UNAVAILABLE,
                    "the per-user credential store is unavailable: retry",
                    Some(id.clone()),
                );
                return Err(respond::reject(r));
            };
            let scheme = client_headers
                .iter()
                .find(|h| h.name().eq_ignore_ascii_case("x-forwarded-proto"))
                .and_then(|h| std::str::from_utf8(h.bytes()).ok());
            let url = elicitation::elicitation_url(
                page.as_ref(),
                scheme,
                &router.settings.public_host,
                &eid,
            );
            tracing::debug!(server = %server.name, "per-user credential needed: URL elicitation");
            router.metrics.rejected("url_elicitation", 200);
            let r = Reject::new(
                200,
                elicitation::URL_ELICITATION_REQUIRED,
                elicitation::URL_ELICITATION_MESSAGE,
                Some(id.clone()),
            )
            .with_data(elicitation::required_data(&eid, &url));
            Err(respond::reject(r))
        }
        (Need::Refuse(why), _) => Err(refuse(router, id, why)),
        (_, None) => Err(refuse(router, id, elicitation::NO_SUBJECT)),
    }
}

/// The isError tool result (HTTP 200) a call gets when it cannot go on, as the seed answers.
fn refuse(router: &Router, id: &OwnedId, why: &str) -> crate::router::answer::Answer {
    router.metrics.rejected("url_elicitation_refused", 200);
    let body = crate::jsonrpc::result_body(id, elicitation::tool_error_result(why));
    respond::immediate(200, body)
}

/// The upstream's status for a call that carried a stored credential: a 401 forgets it, so that
/// the next call asks the user again.
pub(in crate::router) async fn on_status(router: &Router, held: Option<&Held>, status: u16) {
    if let (Some(h), Some(store), 401) = (held, &router.user_tokens, status) {
        tracing::info!(server = %h.server, "upstream refused a per-user credential: forgotten");
        store.forget(&h.jti, &h.server, &h.subject).await;
    }
}
