//! The tonic service: one ext_proc stream per HTTP request. Each message Envoy sends goes to the
//! handler of its phase (request_headers, request_body, response) with the stream's state; the
//! answer goes back, and a [`Refusal`] is answered here, the one place a refusal is spanned,
//! counted, logged and given its CORS headers. The stream ends as soon as no later phase matters,
//! except after a routed call's last phase, when Envoy has nothing more to send anyway: then
//! Envoy ends it ([`Next::Finished`]).

use std::pin::Pin;
use std::sync::Arc;

use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use super::decide;
use super::respond;
use super::state::{refused, Next, Refusal, Stream};
use super::wire::{Phase, ProcessingRequest};
use super::{in_place, request_body, request_headers, response, Router};
use crate::deadline::Deadline;

/// The tonic service.
#[derive(Clone)]
pub struct RouterService {
    router: Arc<Router>,
}

impl RouterService {
    pub fn new(router: Arc<Router>) -> RouterService {
        RouterService { router }
    }
}

pub(super) type ResponseStream =
    Pin<Box<dyn futures_util::Stream<Item = Result<super::answer::Answer, Status>> + Send>>;

impl RouterService {
    /// One ext_proc stream. The response stream is the inbound stream, mapped: each answer is
    /// computed when tonic polls for the next one, on the connection's own task. No task and no
    /// channel per stream: measured, that cut the router's CPU per request by about 3×
    /// (REFERENCE.md). The conversation is one future for the stream's life ([`super::answers`]).
    pub(super) fn process(
        &self,
        request: Request<Streaming<ProcessingRequest>>,
    ) -> Response<ResponseStream> {
        let router = self.router.clone();
        router.metrics.stream_opened();
        // Exported with OTLP when that is on, as a child of the request's `traceparent`
        // (adopted when the request headers arrive).
        let span = tracing::debug_span!(
            "ext_proc",
            otel.kind = "server",
            mcp.method = tracing::field::Empty,
            mcp.name = tracing::field::Empty,
            mcp.server = tracing::field::Empty,
            decision = tracing::field::Empty,
            status = tracing::field::Empty,
        );
        let conversation = Conversation {
            stream: Stream::new(&router),
            router,
            inbound: request.into_inner(),
            span,
        };
        // One future for the whole stream (`answers`): nothing is moved per message.
        let responses = super::answers::Answers::new(|slot| converse(conversation, slot));
        Response::new(Box::pin(responses))
    }
}

/// The stream's conversation, as one future. Built by a call of its own, so that it is built in
/// the box made for it ([`super::in_place`]) rather than aside and copied in: its future is 3 KB,
/// most of it room for the phases to come, and only the conversation (1 KB) is there at the
/// start.
/// The conversation is used where it was captured: moved into a local (or taken by an
/// `async fn`, which keeps its arguments twice), it would be held twice.
#[allow(clippy::manual_async_fn)]
#[inline(never)]
fn converse(
    mut conversation: Conversation,
    slot: Arc<super::answers::Slot<Result<super::answer::Answer, Status>>>,
) -> impl std::future::Future<Output = ()> + Send {
    async move {
        loop {
            let span = conversation.span.clone();
            let Some(next) = next_response(&mut conversation).instrument(span).await else {
                return;
            };
            slot.give(next).await;
        }
    }
}

/// One ext_proc stream in progress.
struct Conversation {
    router: Arc<Router>,
    inbound: Streaming<ProcessingRequest>,
    stream: Stream,
    span: tracing::Span,
}

/// The answer to the next message Envoy sends, or `None` when the stream is over.
async fn next_response(c: &mut Conversation) -> Option<Result<super::answer::Answer, Status>> {
    if matches!(c.stream.next, Next::Done) {
        return None;
    }
    loop {
        let message = match c.inbound.message().await {
            Ok(Some(m)) => m,
            Ok(None) => return None,
            // Envoy resets the stream of a request that is over: nothing was waiting for it.
            Err(_) if matches!(c.stream.next, Next::Finished) => return None,
            Err(status) => {
                // Envoy gave up on the request (client gone, timeout): pass the error back
                // rather than ending cleanly, which Envoy would read as "continue unprocessed".
                c.stream.next = Next::Done;
                return Some(Err(status));
            }
        };
        let Some(phase) = message.request else {
            continue;
        };
        let mut response = match dispatch(&c.router, &mut c.stream, phase).await? {
            Ok((response, next)) => {
                c.stream.next = next;
                response
            }
            Err(refusal) => {
                c.stream.next = Next::Done;
                refuse(&c.router, *refusal)
            }
        };
        if c.stream.cors {
            if let Some(origin) = &c.stream.facts.origin {
                respond::add_cors(&mut response, origin.as_bytes());
            }
        }
        response.session_back = c.stream.session_back.take();
        return Some(Ok(response));
    }
}

/// The handler of `phase`, given what the stream waits for; `None` ends the stream.
async fn dispatch(router: &Router, s: &mut Stream, phase: Phase) -> Option<super::state::Answer> {
    // Envoy waits `message_timeout` for each answer: the work of a request message, however
    // many steps it takes, ends by one deadline below that.
    let deadline = || Deadline::after(router.settings.processing_budget);
    Some(match (phase, std::mem::replace(&mut s.next, Next::Done)) {
        (Phase::RequestHeaders(h), _) => {
            request_headers::on_request_headers(router, s, h.headers, h.end_of_stream, deadline())
                .await
        }
        (Phase::RequestBody(b), Next::RequestBody { client_headers }) => {
            request_body::on_request_body(router, s, b.body, client_headers, deadline()).await
        }
        (Phase::RequestBody(b), Next::A2aBody) => {
            match decide::decide_size(b.body.len(), router.settings.max_body) {
                Some(r) => Err(refused("too_large")(r)),
                None => Ok((super::a2a::on_body(&b.body), Next::Done)),
            }
        }
        // Boxed: the largest of the phases' futures (about 4 KB against the body's 1.7 KB).
        // Unboxed, every stream's conversation future would be that large; boxed, only a call
        // that has the response phase allocates it, and builds it in the box.
        (Phase::ResponseHeaders(h), Next::ResponseHeaders(routed)) => {
            in_place::boxed(|| response_headers(router, s, routed, h.headers)).await
        }
        (Phase::ResponseBody(b), Next::ResponseBody(plan)) => Ok(response::on_response_body(
            router,
            plan,
            b.body,
            b.end_of_stream,
        )),
        // The broker's answer to a browser: only the CORS headers (added by the caller). The
        // stream ends here rather than with the response, which may be the broker's long-lived
        // event stream.
        (Phase::ResponseHeaders(_), Next::BrokerResponseHeaders) => {
            Ok((respond::pass(respond::Phase::ResponseHeaders), Next::Done))
        }
        (Phase::ResponseHeaders(_), _) => {
            Ok((respond::pass(respond::Phase::ResponseHeaders), Next::Done))
        }
        // A phase the router has no business in: acknowledged, the state kept.
        (Phase::RequestBody(_), next) => Ok((respond::pass(respond::Phase::RequestBody), next)),
        (Phase::ResponseBody(_), next) => Ok((respond::pass(respond::Phase::ResponseBody), next)),
        // Trailers are configured SKIP; the router never changes them, so the stream ends.
        (Phase::RequestTrailers(_) | Phase::ResponseTrailers(_), _) => return None,
    })
}

/// [`response::on_response_headers`]'s future, built by a call that is not inlined, so that it is
/// built where the caller wants it ([`super::in_place`]).
#[inline(never)]
fn response_headers<'a>(
    router: &'a Router,
    s: &'a mut Stream,
    routed: Box<super::state::Routed>,
    headers: Option<super::wire::HeaderMap>,
) -> impl std::future::Future<Output = super::state::Answer> + Send + 'a {
    response::on_response_headers(router, s, routed, headers)
}

/// The one place a refusal is answered: recorded on the span, counted, logged, and sent as an
/// immediate response (CORS headers are added with every answer).
pub(super) fn refuse(router: &Router, r: Refusal) -> super::answer::Answer {
    let Refusal { reject, reason } = r;
    tracing::Span::current()
        .record("decision", "reject")
        .record("status", reject.status);
    tracing::debug!(status = reject.status, code = reject.code, reason, message = %reject.message, "rejected");
    router.metrics.rejected(reason, reject.status);
    respond::reject(reject)
}
