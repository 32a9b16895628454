//! What a 2026-07-28 client's call over a session-era upstream's session brings for the questions
//! that upstream may ask ([`crate::router::asks`]): the capabilities the client declares (its
//! upstream session declares them too, so that a conforming server asks only what can be
//! answered), and on a retry the answers so far, from the `requestState` the gateway signed and
//! the client's `inputResponses`.

use serde_json::value::RawValue;

use crate::auth::session::AskedIn;
use crate::jsonrpc::{self, OwnedId};
use crate::mcp::code;
use crate::mcp::input_required::{self as ir, Answered};
use crate::reply::Reject;
use crate::router::Router;

/// What a 2026-07-28 request over an upstream session says for the upstream's questions, read
/// in one parse: the relayed capabilities it declares in its `_meta` (sampling, elicitation,
/// roots; compact JSON in one order, `None` when none), and on a retry the echoed
/// `requestState` with the `inputResponses`.
pub(in crate::router) struct Asked<'a> {
    pub(in crate::router) declared: Option<String>,
    retry: Result<Option<(String, Option<&'a RawValue>)>, String>,
}

pub(in crate::router) fn read(body: &[u8]) -> Asked<'_> {
    // Most calls carry neither: a scan for the member names is cheaper than a parse.
    let named = |w: &str| memchr::memmem::find(body, w.as_bytes()).is_some();
    if !["requestState", "sampling", "elicitation", "roots"]
        .into_iter()
        .any(named)
    {
        return Asked {
            declared: None,
            retry: Ok(None),
        };
    }
    match jsonrpc::parse(body) {
        Ok(msg) => Asked {
            declared: ir::declared_capabilities(msg.params_text()),
            retry: ir::retry_members(msg.params_text()),
        },
        Err(_) => Asked {
            declared: None,
            retry: Ok(None),
        },
    }
}

/// The answers a retry carries (none for a first call). A `requestState` this gateway did not
/// sign for this caller and call, or that expired, is refused (HTTP 400, -32602): the client
/// calls again without it.
pub(in crate::router) fn answers(
    router: &Router,
    asked: Asked<'_>,
    call: AskedIn<'_>,
    id: &OwnedId,
) -> Result<Vec<Answered>, Reject> {
    let invalid =
        |message: String| Reject::new(400, code::INVALID_PARAMS, message, Some(id.clone()));
    let Some((state, responses)) = asked.retry.map_err(invalid)? else {
        return Ok(Vec::new());
    };
    let state = router.keys.verify_ask_state(&state, call).ok_or_else(|| {
        invalid(
            "requestState is not one this gateway gave for this call, or it has expired: call again without it"
                .into(),
        )
    })?;
    ir::answers_of_retry(state, responses).map_err(invalid)
}
