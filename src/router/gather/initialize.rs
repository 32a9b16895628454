//! The upstream session a call needs, created on its first call: concurrent first calls share
//! one initialize (coalesced in the session store), sent directly or back through the gateway,
//! within `--upstream-init-timeout-ms` and the request's processing budget, and tried again when
//! one started by another call failed for that call alone.

use std::sync::Arc;
use std::time::Instant;

use crate::router::wire::HeaderMap;

use crate::auth::session::GatewaySession;
use crate::deadline::{Bound, Deadline};
use crate::jsonrpc::OwnedId;
use crate::mcp::{self, code};
use crate::reply::Reject;
use crate::router::decide::UpstreamCall;
use crate::router::facts::RequestFacts;
use crate::router::Router;
use crate::telemetry::trace_context;
use crate::upstream::{SessionKey, UpstreamError, UpstreamSession, Via};

/// What an upstream initialize is made of: the call that needs it and the request it came in.
pub(in crate::router) struct InitRequest<'a> {
    pub(in crate::router) facts: &'a RequestFacts,
    pub(in crate::router) session: &'a GatewaySession,
    pub(in crate::router) key: &'a SessionKey,
    /// What the upstream is called with (exchanged, a credential, or the client's own).
    pub(in crate::router) authorization: Option<String>,
    pub(in crate::router) call: &'a UpstreamCall,
    /// The client's headers, for an initialize sent back through the gateway.
    pub(in crate::router) client_headers: &'a HeaderMap,
    pub(in crate::router) verified_sub: Option<&'a str>,
}

/// Initializes the upstream session of `key` for `call`, the first call that needs it
/// (concurrent first calls share one initialize), directly or back through the gateway, within
/// `--upstream-init-timeout-ms` and by `deadline`.
// Longer than 80 lines: one retry loop around one coalesced initialize whose closure borrows the
// request's parts; split, they would travel through more signatures than the loop has lines.
pub(in crate::router) async fn upstream_session(
    router: &Router,
    r: InitRequest<'_>,
    deadline: Deadline,
) -> Result<Arc<UpstreamSession>, Reject> {
    let InitRequest {
        facts,
        session,
        key,
        authorization,
        call,
        client_headers,
        verified_sub,
    } = r;
    let (id, server) = (&call.id, &call.server);
    let now = tokio::time::Instant::now();
    let budget = router.settings.processing_budget;
    if deadline.expired_at(now) {
        // The steps before (token exchange) took all of it.
        return Err(Reject::new(
            504,
            code::UPSTREAM_TIMEOUT,
            format!(
                "the {} ms processing budget ran out before upstream {} could be initialized",
                budget.as_millis(),
                server.name
            ),
            Some(id.clone()),
        ));
    }
    let via = via(router, call, verified_sub, client_headers)?;
    // The upstream session speaks the session generation: a stateless client's calls go over
    // the newest one.
    let version = facts
        .protocol_version
        .clone()
        .filter(|v| !mcp::is_modern(Some(v)))
        .unwrap_or_else(|| mcp::LATEST_VERSION.to_owned());
    // With OTLP export on, the upstream's initialize joins this trace under the ext_proc span.
    let traceparent = trace_context::outgoing_traceparent(facts.traceparent.as_deref());
    let (via, authorization, capabilities) = (
        &via,
        authorization.as_deref(),
        session.client_capabilities.as_deref(),
    );
    let (version, traceparent) = (version.as_str(), traceparent.as_deref());
    // Whether this call ran the initialize (rather than waiting on another call's).
    let created = std::sync::atomic::AtomicBool::new(false);
    let created = &created;
    // Waiting for an initialize slot and the initialize share the step's end.
    let initialize = move |ends: tokio::time::Instant| async move {
        created.store(true, std::sync::atomic::Ordering::Relaxed);
        let started = Instant::now();
        let r = router
            .init_limits
            .run(
                &server.name,
                ends,
                router.client.initialize_for(
                    server,
                    via,
                    authorization,
                    version,
                    traceparent,
                    capabilities,
                ),
            )
            .await;
        router
            .metrics
            .upstream_initialized(&server.name, r.is_ok(), started.elapsed());
        if let Err(e) = &r {
            tracing::warn!(server = %server.name, error = %e, "upstream initialize failed");
        }
        r
    };
    let mut now = now;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let (init_ends, bound) = deadline.end_of_step_at(now, router.settings.init_timeout);
        let limit = InitLimit {
            had: init_ends.saturating_duration_since(now),
            budget: (bound == Bound::Deadline).then_some(budget),
        };
        // Shared by concurrent first calls: it ends, with an error they all get, by the end of
        // the step of the call that started it; a call whose own deadline comes first stops
        // waiting then.
        let shared =
            router
                .sessions
                .get_or_create(key.clone(), session.remaining(), initialize(init_ends));
        let outcome = deadline
            .bound(shared)
            .await
            .unwrap_or_else(|_| Err(Arc::new(UpstreamError::Timeout)));
        let ran_it = created.load(std::sync::atomic::Ordering::Relaxed);
        match outcome {
            Ok(upstream) => {
                router.metrics.session_cache(!ran_it);
                return Ok(upstream);
            }
            // An initialize started by another call may have failed for that call alone: it ran
            // out of that call's budget, or a gateway policy refused that call's tool. Try again
            // until this call runs its own (another waiter's retry may start first), by our own
            // deadline.
            Err(e)
                if !ran_it
                    && attempts < MAX_INIT_ATTEMPTS
                    && failed_for_its_starter(&e, now.elapsed() < router.settings.init_timeout) =>
            {
                now = tokio::time::Instant::now();
                if deadline.expired_at(now) {
                    // What this call saw is its own time running out, not the other's refusal.
                    return Err(init_reject(
                        &UpstreamError::Timeout,
                        &server.name,
                        limit,
                        id,
                    ));
                }
            }
            Err(e) => return Err(init_reject(&e, &server.name, limit, id)),
        }
    }
}

/// How the initialize is sent: back through the gateway (a hairpin, with a key naming the call)
/// when `--mcp-gateway-private-host` is set, else straight to the server.
fn via(
    router: &Router,
    call: &UpstreamCall,
    verified_sub: Option<&str>,
    client_headers: &HeaderMap,
) -> Result<Via, Reject> {
    let (id, server) = (&call.id, &call.server);
    Ok(match &router.settings.private_host {
        Some(host) => {
            // The key names the call, so that the router gives the initialize the same policy
            // headers as the call; the client's end-to-end headers go along, as on the call.
            let target = mcp::CallTarget {
                method: call.method.to_owned(),
                kind: call.kind,
                name: call.upstream_name.clone(),
                hints: call.hints.as_deref().map(str::to_owned),
                verified_sub: verified_sub.map(str::to_owned),
            };
            Via::Gateway {
                private_host: host.clone(),
                key: router
                    .keys
                    .mint_hairpin(&server.name, Some(&target))
                    .map_err(|_| {
                        Reject::new(
                            500,
                            code::INTERNAL_ERROR,
                            "cannot sign the hairpin key",
                            Some(id.clone()),
                        )
                    })?,
                client_headers: crate::upstream::client::hairpin_headers(
                    client_headers.iter().map(|h| (h.name(), h.bytes())),
                ),
            }
        }
        None => Via::Direct,
    })
}

/// How many initializes a call waits on before giving up, its own included: each one but the
/// last was another call's that failed for that call alone (see [`failed_for_its_starter`]).
const MAX_INIT_ATTEMPTS: u32 = 4;

/// Whether an upstream initialize that failed so may have failed only for the call that started
/// it, so that another call that waited on it deserves a try of its own: a policy on the hairpin
/// refused the starter's tool (403), or the starter's budget ended it (a timeout or no free slot)
/// before a whole `--upstream-init-timeout-ms` had passed (`cut_short`; after one, the upstream is
/// the slow one, and trying again would only load it more). Pure.
fn failed_for_its_starter(e: &UpstreamError, cut_short: bool) -> bool {
    match e {
        UpstreamError::Status { status: 403 } => true,
        UpstreamError::Timeout | UpstreamError::Busy { .. } => cut_short,
        _ => false,
    }
}

/// The time an initialize had, for its error message.
#[derive(Debug, Clone, Copy)]
struct InitLimit {
    had: std::time::Duration,
    /// Set when the processing budget (this long), not the initialize's own limit, ended it.
    budget: Option<std::time::Duration>,
}

impl std::fmt::Display for InitLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ms", self.had.as_millis())?;
        if let Some(budget) = self.budget {
            write!(
                f,
                ", what was left of the {} ms processing budget",
                budget.as_millis()
            )?;
        }
        Ok(())
    }
}

fn init_reject(e: &UpstreamError, server: &str, limit: InitLimit, id: &OwnedId) -> Reject {
    let (status, code, message) = match e {
        UpstreamError::Timeout => (
            504,
            code::UPSTREAM_TIMEOUT,
            format!("upstream {server} did not complete initialize within {limit}"),
        ),
        UpstreamError::Busy { limit: slots } => (
            503,
            code::UPSTREAM_TIMEOUT,
            format!(
                "upstream {server} has {slots} initializes in progress and none finished within {limit}: retry"
            ),
        ),
        UpstreamError::Abandoned => (
            503,
            code::UPSTREAM_TIMEOUT,
            format!("upstream {server}: {e}: retry"),
        ),
        UpstreamError::Unreachable(why) => (
            502,
            code::UPSTREAM_UNAVAILABLE,
            format!("upstream {server} is unreachable: {why}"),
        ),
        // A gateway policy (on an initialize sent back through the gateway) or the server
        // refused the call's session: the caller may not, which a retry does not change.
        UpstreamError::Status { status: 403 } => (
            403,
            code::FORBIDDEN,
            format!("Forbidden: a gateway policy or upstream {server} refused to initialize a session for this call (HTTP 403)"),
        ),
        other => (
            502,
            code::UPSTREAM_UNAVAILABLE,
            format!("upstream {server} failed to initialize a session: {other}"),
        ),
    };
    Reject::new(status, code, message, Some(id.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc;

    #[test]
    fn a_call_that_waited_retries_only_what_may_have_failed_for_the_starter_alone() {
        // (error, cut short of a whole initialize timeout, retry?)
        for (e, cut_short, retry) in [
            (UpstreamError::Timeout, true, true),
            (UpstreamError::Busy { limit: 4 }, true, true),
            (UpstreamError::Status { status: 403 }, true, true),
            // A whole initialize timeout passed: the upstream is slow, for every caller.
            (UpstreamError::Timeout, false, false),
            (UpstreamError::Busy { limit: 4 }, false, false),
            (UpstreamError::Status { status: 403 }, false, true),
            (UpstreamError::Status { status: 401 }, true, false),
            (UpstreamError::Status { status: 500 }, true, false),
            (UpstreamError::Unreachable("refused".into()), true, false),
        ] {
            assert_eq!(
                failed_for_its_starter(&e, cut_short),
                retry,
                "{e} cut short: {cut_short}"
            );
        }
    }

    #[test]
    fn failed_initializes_become_json_rpc_errors_with_the_calls_id() {
        let id = jsonrpc::parse(br#"{"jsonrpc":"2.0","id":7,"method":"tools/call"}"#)
            .expect("parse")
            .owned_id()
            .expect("id");
        let limit = InitLimit {
            had: std::time::Duration::from_millis(5000),
            budget: None,
        };
        let cases: [(UpstreamError, u16, i64, &str); 7] = [
            (
                UpstreamError::Abandoned,
                503,
                code::UPSTREAM_TIMEOUT,
                "abandoned by their callers: retry",
            ),
            (
                UpstreamError::Timeout,
                504,
                code::UPSTREAM_TIMEOUT,
                "within 5000 ms",
            ),
            (
                UpstreamError::Busy { limit: 4 },
                503,
                code::UPSTREAM_TIMEOUT,
                "retry",
            ),
            (
                UpstreamError::Unreachable("refused".into()),
                502,
                code::UPSTREAM_UNAVAILABLE,
                "unreachable: refused",
            ),
            // A policy behind the gateway refused the initialize the call needs.
            (
                UpstreamError::Status { status: 403 },
                403,
                code::FORBIDDEN,
                "Forbidden: a gateway policy",
            ),
            (
                UpstreamError::Status { status: 401 },
                502,
                code::UPSTREAM_UNAVAILABLE,
                "HTTP 401",
            ),
            (
                UpstreamError::Status { status: 500 },
                502,
                code::UPSTREAM_UNAVAILABLE,
                "HTTP 500",
            ),
        ];
        for (e, status, code, needle) in cases {
            let r = init_reject(&e, "ns/kube", limit, &id);
            assert_eq!((r.status, r.code), (status, code), "{e:?}");
            assert!(
                r.message.contains(needle) && r.message.contains("ns/kube"),
                "{e:?}: {}",
                r.message
            );
            assert_eq!(r.id.as_ref(), Some(&id));
        }
    }

    #[test]
    fn initialize_errors_say_which_limit_ended_them() {
        let ms = std::time::Duration::from_millis;
        let own = InitLimit {
            had: ms(5000),
            budget: None,
        };
        let rest = InitLimit {
            had: ms(1200),
            budget: Some(ms(8000)),
        };
        let id = jsonrpc::parse(br#"{"jsonrpc":"2.0","id":7,"method":"tools/call"}"#)
            .expect("parse")
            .owned_id()
            .expect("id");
        // (error, limit, status, code, message)
        let cases = [
            (
                UpstreamError::Timeout,
                own,
                504,
                code::UPSTREAM_TIMEOUT,
                "upstream s/a did not complete initialize within 5000 ms",
            ),
            (
                UpstreamError::Timeout,
                rest,
                504,
                code::UPSTREAM_TIMEOUT,
                "upstream s/a did not complete initialize within 1200 ms, what was left of the 8000 ms processing budget",
            ),
            (
                UpstreamError::Busy { limit: 4 },
                rest,
                503,
                code::UPSTREAM_TIMEOUT,
                "upstream s/a has 4 initializes in progress and none finished within 1200 ms, what was left of the 8000 ms processing budget: retry",
            ),
        ];
        for (e, limit, status, code, message) in cases {
            let r = init_reject(&e, "s/a", limit, &id);
            assert_eq!(
                (r.status, r.code, r.message.as_str()),
                (status, code, message)
            );
            assert_eq!(r.id, Some(id.clone()));
        }
    }
}
