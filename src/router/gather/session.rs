//! The gateway session a request goes with: the verified one its `Mcp-Session-Id` names, or
//! for a stateless (2026-07-28) client a stand-in per caller; and for relayed traffic the live
//! upstream session that gateway session has with a server.

use std::sync::Arc;

use crate::router::wire::HeaderMap;

use crate::auth::session::GatewaySession;
use crate::config::Server;
use crate::jsonrpc::OwnedId;
use crate::mcp::{code, header};
use crate::reply::{self, Reject};
use crate::router::state::Stream;
use crate::router::Router;
use crate::upstream::{SessionKey, UpstreamError, UpstreamSession};

/// The gateway session of a routed call: the one its session id names (verified, owned by the
/// caller), else a stateless client's stand-in.
///
/// `declared`: the relayed capabilities a stateless client's request declares
/// ([`super::asks::read`]); its upstream sessions are kept per set of them and declare them.
pub(in crate::router) fn gateway_session(
    router: &Router,
    s: &Stream,
    id: &OwnedId,
    client_headers: &HeaderMap,
    declared: Option<String>,
) -> Result<GatewaySession, Reject> {
    match s.facts.session_id.as_deref() {
        Some(token) => router
            .keys
            .verify_owned(token, s.caller.binding())
            .map_err(|e| reply::session_not_found(&e, Some(id.clone()))),
        // A stateless (2026-07-28) client: its upstream sessions are kept per caller.
        None => Ok(stateless_session(router, s, client_headers, declared)),
    }
}

/// The live upstream session of this request's gateway session with `server`, for relayed
/// traffic (an answer to an upstream's request, a resumed stream): never created for it.
pub(in crate::router) async fn existing_session(
    router: &Router,
    s: &Stream,
    server: &Server,
    id: Option<&OwnedId>,
) -> Result<(SessionKey, Arc<UpstreamSession>), Reject> {
    let Some(token) = s.facts.session_id.as_deref() else {
        return Err(reply::session_required(id.cloned()));
    };
    let session = router
        .keys
        .verify_owned(token, s.caller.binding())
        .map_err(|e| reply::session_not_found(&e, id.cloned()))?;
    let key = SessionKey::new(session.jti.clone(), server.name.clone());
    // Found here or (with Redis) on another replica; never initialized for this.
    let upstream = router
        .sessions
        .get_or_create(key.clone(), session.remaining(), async {
            Err(UpstreamError::SessionGone)
        })
        .await
        .map_err(|_| {
            Reject::new(
                400,
                code::INVALID_REQUEST,
                format!(
                    "this session has no session with upstream {} (any more): nothing to answer or resume",
                    server.name
                ),
                id.cloned(),
            )
        })?;
    Ok((key, upstream))
}

/// The stand-in gateway session of a stateless (2026-07-28) caller: upstream sessions are kept
/// per caller identity (the verified subject with native auth, else a hash of the
/// `Authorization` header, else one shared anonymous caller) and live as long as a gateway
/// session would, closed earlier when idle.
fn stateless_session(
    router: &Router,
    s: &Stream,
    client_headers: &HeaderMap,
    declared: Option<String>,
) -> GatewaySession {
    // Through the gateway, the initialize carries the client's end-to-end headers too (cookies,
    // API keys, a tenant): callers that differ in them must not share what it set up.
    let hairpin: Vec<(&str, &[u8])> = if router.settings.private_host.is_some() {
        client_headers
            .iter()
            .map(|h| (h.name(), h.bytes()))
            .collect()
    } else {
        Vec::new()
    };
    let who = stateless_caller(
        s.caller.identity.as_ref().map(|id| &*id.binding),
        s.facts.authorization.as_deref(),
        &hairpin,
    );
    // What the upstream may ask it (declared by its upstream sessions) is part of the key.
    let jti = match &declared {
        Some(d) => format!("{who}+asks:{d}"),
        None => who,
    };
    // A session whose client may be asked lives no longer than the listener that answers what
    // its server asks outside a call ([`crate::upstream::updates::STATELESS_LISTEN_FOR`]): then
    // the next call makes a new one, listened to afresh.
    let length = match declared {
        Some(_) => router
            .keys
            .length()
            .min(crate::upstream::updates::STATELESS_LISTEN_FOR),
        None => router.keys.length(),
    };
    GatewaySession {
        jti: jti.into(),
        exp: crate::auth::oidc::now_secs() + length.as_secs(),
        client_capabilities: declared.map(Into::into),
        // Never checked (no session id to present): the key above is the caller already.
        owner: None,
    }
}

/// Who a stateless caller is, for keeping its upstream sessions: the verified subject with native
/// auth; else a digest of its `Authorization` and of the end-to-end headers an initialize sent
/// back through the gateway would carry (`hairpin`, empty when initializes go direct) that say
/// who the caller is ([`header::identifies_caller`]: not trace context or `Mcp-Param-*`, new on
/// every request); else one anonymous caller. Pure.
fn stateless_caller(
    verified: Option<&str>,
    authorization: Option<&str>,
    hairpin: &[(&str, &[u8])],
) -> String {
    use sha2::{Digest, Sha256};
    if let Some(binding) = verified {
        return format!("caller:sub:{binding}");
    }
    // Envoy sends names in lower case: a copy only for a name that is not.
    let mut forwarded: Vec<(std::borrow::Cow<'_, str>, &[u8])> = hairpin
        .iter()
        .map(|(k, v)| {
            let k = if k.bytes().any(|b| b.is_ascii_uppercase()) {
                std::borrow::Cow::Owned(k.to_ascii_lowercase())
            } else {
                std::borrow::Cow::Borrowed(*k)
            };
            (k, *v)
        })
        .filter(|(k, _)| header::identifies_caller(k))
        .collect();
    if authorization.is_none() && forwarded.is_empty() {
        return "caller:anonymous".to_owned();
    }
    forwarded.sort();
    let mut h = Sha256::new();
    h.update(authorization.unwrap_or_default().as_bytes());
    for (k, v) in &forwarded {
        // Lengths first, so that no two different header sets hash alike.
        h.update((k.len() as u64).to_be_bytes());
        h.update(k.as_bytes());
        h.update((v.len() as u64).to_be_bytes());
        h.update(v);
    }
    format!("caller:auth:{}", hex::encode(&h.finalize()[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stateless_callers_share_upstream_sessions_only_with_the_same_identity() {
        let key_a: &[(&str, &[u8])] = &[("x-api-key", b"a"), ("accept", b"*/*")];
        let key_a_reordered: &[(&str, &[u8])] = &[("Accept", b"text/plain"), ("X-Api-Key", b"a")];
        let key_b: &[(&str, &[u8])] = &[("x-api-key", b"b")];
        let only_internal: &[(&str, &[u8])] = &[("x-mcp-servername", b"x"), ("accept", b"*/*")];
        let who = |v, a, h| stateless_caller(v, a, h);
        // (one caller, another, same key?)
        let cases = [
            (
                who(Some("alice"), None, key_a),
                who(Some("alice"), Some("t"), key_b),
                true,
            ),
            (
                who(Some("alice"), None, &[]),
                who(Some("bob"), None, &[]),
                false,
            ),
            (who(None, None, &[]), who(None, None, only_internal), true),
            (who(None, None, key_a), who(None, None, key_b), false),
            (
                who(None, None, key_a),
                who(None, None, key_a_reordered),
                true,
            ),
            (who(None, None, key_a), who(None, None, &[]), false),
            // What changes with every request of one caller makes no new caller.
            (
                who(None, None, key_a),
                who(
                    None,
                    None,
                    &[
                        ("x-api-key", b"a"),
                        ("mcp-param-region", b"eu"),
                        ("baggage", b"k=v"),
                        ("tracestate", b"v=1"),
                        ("x-b3-traceid", b"80f198ee56343ba8"),
                    ],
                ),
                true,
            ),
            (
                who(None, Some("Bearer t"), &[]),
                who(None, Some("Bearer u"), &[]),
                false,
            ),
            (
                who(None, Some("Bearer t"), key_a),
                who(None, Some("Bearer t"), key_b),
                false,
            ),
            // Lengths are hashed: moving bytes between name and value makes another caller.
            (
                who(None, None, &[("x-ab", b"c")]),
                who(None, None, &[("x-a", b"bc")]),
                false,
            ),
        ];
        for (i, (one, other, same)) in cases.iter().enumerate() {
            assert_eq!(one == other, *same, "case {i}: {one} / {other}");
        }
        assert_eq!(who(None, None, &[]), "caller:anonymous");
        assert!(who(Some("b1"), None, &[]).starts_with("caller:sub:"));
    }
}
