//! What a 2026-07-28 client's call over a session-era upstream's session brings for the questions
//! that upstream may ask ([`crate::router::asks`]): the capabilities the client declares (its
//! upstream session declares them too, so that a conforming server asks only what can be
//! answered), and on a retry the answers so far, from the `requestState` the gateway signed and
//! the client's `inputResponses`.

use crate::auth::session::AskedIn;
use crate::jsonrpc::{self, OwnedId};
use crate::mcp::code;
use crate::mcp::input_required::{self as ir, Answered};
use crate::reply::Reject;
use crate::router::Router;

/// The relayed capabilities (sampling, elicitation, roots) a 2026-07-28 request declares in its
/// `_meta`, as compact JSON in one order; `None` when it declares none of them.
pub(in crate::router) fn declared(body: &[u8]) -> Option<String> {
    let msg = jsonrpc::parse(body).ok()?;
    ir::declared_capabilities(msg.params)
}

/// The answers a retry carries (none for a first call). A `requestState` this gateway did not
/// sign for this caller and call, or that expired, is refused (HTTP 400, -32602): the client
/// calls again without it.
pub(in crate::router) fn answers(
    router: &Router,
    body: &[u8],
    call: AskedIn<'_>,
    id: &OwnedId,
) -> Result<Vec<Answered>, Reject> {
    let invalid =
        |message: String| Reject::new(400, code::INVALID_PARAMS, message, Some(id.clone()));
    let Ok(msg) = jsonrpc::parse(body) else {
        return Ok(Vec::new());
    };
    let Some((state, responses)) = ir::retry_members(msg.params).map_err(invalid)? else {
        return Ok(Vec::new());
    };
    let state = router.keys.verify_ask_state(&state, call).ok_or_else(|| {
        invalid(
            "requestState is not one this gateway gave for this call, or it has expired: call again without it"
                .into(),
        )
    })?;
    Ok(ir::answers_of_retry(state, responses))
}
