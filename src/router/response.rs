//! The response phases of a routed request: the audit line, the gateway's session id back in
//! place of the upstream's, an upstream that lost its session forgotten, a failure without MCP
//! turned into a JSON-RPC error, a subscription listened to, and the body planned: an SSE stream
//! tagged chunk by chunk, a JSON result bridged for a stateless client.

use super::wire::HeaderMap;

use super::decide::{self, ResponseDecision};
use super::facts::read_response_facts;
use super::mutation::Mutation;
use super::respond;
use super::sse_tags::SseTagger;
use std::sync::Arc;

use super::asks::Asker;
use super::state::{
    refused, Answer, AskPlan, BodyPlan, Next, Routed, Stream, Target, UpstreamLine,
};
use super::Router;
use crate::auth::session::AskedIn;
use crate::mcp::{self, header};
use crate::reply::Reject;

// About 85 lines: decide, then act on each decision in one place (the audit line included).
pub(super) async fn on_response_headers(
    router: &Router,
    s: &mut Stream,
    routed: Box<Routed>,
    headers: Option<HeaderMap>,
) -> Answer {
    let response = read_response_facts(&headers.unwrap_or_default());
    let status = response.status;
    if status != 0 {
        tracing::Span::current().record("status", status);
    }
    let server = &routed.key.server;
    audit(&routed, Some(status));
    // What lets a later call to this server skip the response phase (`response_phase`).
    router.answer_kinds.learn(
        server,
        response.media == mcp::MediaType::EventStream,
        response.media == mcp::MediaType::Json && (200..300).contains(&status),
    );
    super::gather::user_credential::on_status(router, routed.user_credential.as_ref(), status)
        .await;
    let decision = decide::decide_response(
        &response,
        decide::RoutedFacts {
            used_session: routed.used_session,
            mark_complete: routed.mark_complete,
            subscribe: routed.target.method() == mcp::method::RESOURCES_SUBSCRIBE,
            ui_app: routed.ui_prefix.is_some(),
            tasks: routed.tasks,
        },
        server,
    );
    let plan = match decision {
        ResponseDecision::SessionLost => {
            // The upstream lost our session (restarted, expired): forget it so the next call
            // creates a new one, and tell the client to retry without ending its gateway session
            // (a 404 would make it start over).
            router.sessions.forget(&routed.key).await;
            router.metrics.upstream_session_lost(server);
            let r = Reject::new(
                502,
                mcp::code::UPSTREAM_UNAVAILABLE,
                format!(
                    "upstream {server} no longer knows this session; a new one is created on the next call: retry"
                ),
                routed.id,
            );
            return Err(refused("upstream_session_lost")(r));
        }
        ResponseDecision::Failed(status, code, message) => {
            let r = Reject::new(status, code, message, routed.id);
            return Err(refused("upstream_failed")(r));
        }
        ResponseDecision::Pass { listen, body } => {
            if listen {
                Box::pin(listen_for_updates(router, s, &routed)).await;
            }
            body
        }
    };
    let mut m = Mutation::default();
    match &s.facts.session_id {
        Some(gateway_session) => {
            m.set(header::SESSION_ID, gateway_session.as_bytes());
        }
        None => {
            m.remove(header::SESSION_ID);
        }
    }
    Ok(match plan {
        // The upstream may send the client requests and numbers its events: tag them with the
        // server, chunk by chunk, so that answers and resumptions find their way back.
        Some(decide::BodyChoice::Tag) => {
            // The router may change the events' bytes (tags, a result's app URI): a length the
            // upstream gave would no longer hold.
            m.remove(header::CONTENT_LENGTH);
            // A stateless client bridged onto a session is asked the upstream's questions
            // through input-required results.
            let (asker, line) = match (routed.asks, &routed.id) {
                (Some(plan), Some(id)) => {
                    Box::pin(asking(router, s, &routed.key, &routed.target, *plan, id)).await
                }
                _ => (None, None),
            };
            (
                respond::response_headers_then_stream_body(m),
                Next::ResponseBody(Box::new(BodyPlan::Tag(
                    SseTagger::new(server)
                        .marking_complete(routed.mark_complete)
                        .tagging_tasks(routed.tasks)
                        .asking(asker)
                        .prefixing_ui(routed.ui_prefix),
                    line,
                ))),
            )
        }
        Some(decide::BodyChoice::Bridge) => (
            respond::response_headers_then_buffer_body(m),
            Next::ResponseBody(Box::new(BodyPlan::Bridge {
                mark_complete: routed.mark_complete,
                ui_prefix: routed.ui_prefix,
                task_prefix: routed
                    .tasks
                    .then(|| super::relay::tag_prefix(&routed.key.server)),
            })),
        ),
        None => (respond::response_headers(m), Next::Finished),
    })
}

/// One audit line per routed call: who (the gateway session, never its token), what, where, and
/// how it ended (`-`: not seen by the router, see `response_phase`).
/// Formatted by hand, not by the log formatter: see [`crate::telemetry::audit`].
pub(super) fn audit(routed: &Routed, status: Option<u16>) {
    crate::telemetry::audit::write(&crate::telemetry::audit::AuditLine {
        session: &routed.key.gateway,
        subject: routed.subject.as_deref().unwrap_or("-"),
        method: routed.target.method(),
        name: routed.target.name(),
        server: &routed.key.server,
        status,
    });
}

/// The upstream tells of changes to a subscribed resource on its own GET stream of that
/// session: listen to it.
async fn listen_for_updates(router: &Router, s: &Stream, routed: &Routed) {
    let server = s.snapshot.config.server(&routed.key.server).cloned();
    if let (Some(server), Some(upstream)) = (server, router.sessions.get(&routed.key).await) {
        router.updates.listen(
            routed.key.clone(),
            server,
            crate::upstream::Established {
                session_id: upstream.id.as_deref().map(str::to_owned),
                protocol_version: upstream.protocol_version.to_string(),
                result: serde_json::Value::Null,
            },
            routed.upstream_authorization.clone(),
            router.client.clone(),
            super::relay::tag_prefix(&routed.key.server),
        );
    }
}

/// The asker of a bridged call's SSE response, and the line to its upstream session for the
/// answers (none when the session is gone: the upstream's questions then go unanswered, and the
/// client is still asked).
async fn asking(
    router: &Router,
    s: &Stream,
    key: &crate::upstream::SessionKey,
    target: &Target,
    plan: AskPlan,
    id: &crate::jsonrpc::OwnedId,
) -> (Option<Asker>, Option<Arc<UpstreamLine>>) {
    let keys = router.keys.clone();
    let (owner, server, name) = (
        key.gateway.clone(),
        key.server.clone(),
        target.name().to_owned(),
    );
    let mint: super::asks::MintState = Box::new(move |state| {
        let call = AskedIn {
            owner: &owner,
            server: &server,
            name: &name,
        };
        keys.mint_ask_state(call, state).ok()
    });
    let asker = Asker::new(id.clone(), plan.declared, plan.answers, mint);
    let server = s.snapshot.config.server(&key.server).cloned();
    let line = match (server, router.sessions.get(key).await) {
        (Some(server), Some(upstream)) => Some(Arc::new(UpstreamLine {
            server,
            session: crate::upstream::Established {
                session_id: upstream.id.as_deref().map(str::to_owned),
                protocol_version: upstream.protocol_version.to_string(),
                result: serde_json::Value::Null,
            },
            authorization: plan.authorization,
        })),
        _ => None,
    };
    (Some(asker), line)
}

/// Posts what a bridged call's upstream must be sent (answers to its questions), in order, off
/// the response's path.
fn send_to_upstream(
    router: &Router,
    line: &Arc<UpstreamLine>,
    messages: Vec<(&'static str, Vec<u8>)>,
) {
    let (client, line, metrics) = (router.client.clone(), line.clone(), router.metrics.clone());
    tokio::spawn(async move {
        for (outcome, m) in messages {
            metrics.bridged_question(&line.server.name, outcome);
            let sent = client
                .send_in(
                    &line.server,
                    &line.session,
                    line.authorization.as_deref(),
                    m,
                )
                .await;
            if let Err(e) = sent {
                metrics.bridged_question(&line.server.name, "send_failed");
                tracing::warn!(server = %line.server.name, error = %e, "an answer to the upstream's request could not be sent");
            }
        }
    });
}

/// A chunk of a response body the router asked for. The plan stays in its box for the next
/// chunk of a streamed body.
pub(super) fn on_response_body(
    router: &Router,
    mut plan: Box<BodyPlan>,
    body: bytes::Bytes,
    end_of_stream: bool,
) -> (super::answer::Answer, Next) {
    match &mut *plan {
        BodyPlan::Bridge {
            mark_complete,
            ui_prefix,
            task_prefix,
        } => (
            respond::buffered_response_body(super::bridge::rewrite_result(
                &body,
                *mark_complete,
                ui_prefix.as_deref(),
                task_prefix.as_deref(),
            )),
            Next::Finished,
        ),
        BodyPlan::Tag(tagger, line) => {
            let out = tagger.push(&body, end_of_stream);
            let changed = (out != body).then_some(out);
            let for_upstream = tagger.take_for_upstream();
            if !for_upstream.is_empty() {
                match line {
                    Some(line) => send_to_upstream(router, line, for_upstream),
                    None => tracing::warn!("the upstream session of a bridged call is gone: its requests go unanswered"),
                }
            }
            let next = if end_of_stream {
                Next::Finished
            } else {
                Next::ResponseBody(plan)
            };
            (respond::response_body(changed), next)
        }
    }
}
