//! What one ext_proc stream (one HTTP request) carries from phase to phase: the config and
//! catalog snapshot it is judged by (taken once), the request's facts, the caller, and what comes
//! next ([`Next`]), a state in which only what that phase needs is kept. Phase handlers answer
//! with an [`Answer`]: the message for Envoy and the next state, or a [`Refusal`].

use std::sync::Arc;

use super::wire::HeaderMap;

use super::facts::RequestFacts;
use super::sse_tags::SseTagger;
use super::Router;
use crate::auth::Caller;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::jsonrpc::OwnedId;
use crate::reply::Reject;
use crate::upstream::SessionKey;

/// The config and catalog one request is judged by, from its headers to its response: a reload
/// while it is in flight applies from the next request on.
pub(super) struct Snapshot {
    pub(super) config: Arc<Config>,
    pub(super) catalog: Arc<Catalog>,
}

impl Snapshot {
    pub(super) fn of(router: &Router) -> Snapshot {
        Snapshot {
            config: router.config.borrow().clone(),
            catalog: router.catalog.borrow().clone(),
        }
    }
}

/// One stream's state.
pub(super) struct Stream {
    /// Taken when Envoy opens the stream, which it does to send the request headers.
    pub(super) snapshot: Snapshot,
    pub(super) facts: RequestFacts,
    /// Who is calling (a verified identity with native auth) and the bearer token to exchange.
    pub(super) caller: Caller,
    /// A browser's request from an allowed origin (`facts.origin`): whatever answer reaches the
    /// client gets the CORS headers.
    pub(super) cors: bool,
    pub(super) next: Next,
    /// The gateway session id Envoy is to put on the response, sent with the next answer when
    /// the router ends the stream before the response (`answer_wire::Answer`).
    pub(super) session_back: Option<String>,
}

impl Stream {
    pub(super) fn new(router: &Router) -> Stream {
        Stream {
            snapshot: Snapshot::of(router),
            facts: RequestFacts::default(),
            caller: Caller::default(),
            cors: false,
            next: Next::RequestHeaders,
            session_back: None,
        }
    }
}

/// The phase the stream waits for, with what that phase needs.
pub(super) enum Next {
    RequestHeaders,
    /// A POST to the MCP endpoint: its body decides. The client's headers are kept (moved, not
    /// copied) for an upstream initialize sent back through the gateway.
    RequestBody {
        client_headers: HeaderMap,
    },
    /// An A2A POST (`--enable-a2a`): its body gets `x-a2a-method` (see [`super::a2a`]).
    A2aBody,
    /// The request went to an upstream: its response headers are checked and fixed. Boxed, as
    /// is the body's plan: every answer is returned with its `Next`, through each layer of the
    /// phase handlers, and the largest variant sets the size of every one.
    ResponseHeaders(Box<Routed>),
    /// The broker answers a browser's request: its response headers get the CORS headers.
    BrokerResponseHeaders,
    /// The response body passes through the router.
    ResponseBody(Box<BodyPlan>),
    /// Nothing later matters: the stream ends, which frees Envoy from sending the other phases.
    Done,
    /// Nothing later matters, and Envoy has nothing more to send (the response is past its
    /// headers, or its body has been answered; the response body is not sent unless the router
    /// asks for it, and trailers never are): the stream is left for Envoy to end, as it does
    /// when the request is over. Ending it here would cost both sides a little for nothing:
    /// the router's closing trailers, and a reset from each side (h2 resets a stream whose
    /// response ends before its request does, and Envoy resets it when the request is over).
    /// Anything that still comes is answered with a continue (trailers, never sent, would end
    /// the stream, which Envoy reads as a continue too). Used for a routed call's answer,
    /// whose response ends with the request: an event stream's body goes through the router
    /// (`ResponseBody`) and so holds the stream anyway.
    Finished,
}

/// What the router does with a response body.
pub(super) enum BodyPlan {
    /// An upstream's SSE stream: its ids are tagged chunk by chunk; what the tagger has for the
    /// upstream (answers to its questions, [`super::asks`]) goes on the line, when there is one.
    Tag(SseTagger, Option<Arc<UpstreamLine>>),
    /// A JSON response, buffered, whose result is marked complete (stateless client) and/or
    /// whose app URI gets its server's prefix.
    Bridge {
        mark_complete: bool,
        ui_prefix: Option<Arc<str>>,
        /// The server's tag for task ids ([`super::tasks`]).
        task_prefix: Option<String>,
    },
}

/// Where messages for the upstream session of a call go (answers to its requests).
pub(super) struct UpstreamLine {
    pub(super) server: Arc<crate::config::Server>,
    pub(super) session: crate::upstream::Established,
    pub(super) authorization: Option<String>,
}

/// A 2026-07-28 client's call over a session-era upstream's session: what the upstream asks
/// during it is asked of the client through input-required results ([`super::asks`]).
pub(super) struct AskPlan {
    /// The relayed capabilities the client declared (compact JSON).
    pub(super) declared: Option<String>,
    /// What the client answered in earlier rounds (its retry's `requestState` and
    /// `inputResponses`).
    pub(super) answers: Vec<crate::mcp::input_required::Answered>,
    /// The `Authorization` the upstream got, for the answers posted to it.
    pub(super) authorization: Option<String>,
}

/// What a routed request's response needs to know.
pub(super) struct Routed {
    pub(super) key: SessionKey,
    pub(super) used_session: bool,
    /// The request's id, for an error reply (`None` for a GET).
    pub(super) id: Option<OwnedId>,
    pub(super) target: Target,
    /// The verified subject, for the audit line.
    pub(super) subject: Option<String>,
    /// A stateless client on a session-era upstream: results need their `resultType`.
    pub(super) mark_complete: bool,
    /// For `resources/subscribe`: the `Authorization` the upstream got, to listen for updates.
    pub(super) upstream_authorization: Option<String>,
    /// The stored per-user credential the call carried, forgotten on a 401.
    pub(super) user_credential: Option<Held>,
    /// A tool that declares an MCP App: its result's `ui://` URI gets this prefix.
    pub(super) ui_prefix: Option<Arc<str>>,
    /// A stateless client's call to a stateless upstream that may answer with a task (a
    /// `tools/call`, a `tasks/*`): task ids get the server's tag ([`super::tasks`]).
    pub(super) tasks: bool,
    /// A stateless client bridged onto an upstream session: its questions are asked of the
    /// client ([`super::asks`]).
    pub(super) asks: Option<Box<AskPlan>>,
}

/// Whose stored per-user credential (URL elicitation) a call carries, to forget it when the
/// upstream refuses it (`gather::user_credential`).
#[derive(Debug, Clone)]
pub(super) struct Held {
    pub(super) jti: Arc<str>,
    pub(super) server: Arc<str>,
    pub(super) subject: String,
}

/// What was routed.
pub(super) enum Target {
    /// A call (`tools/call`, `resources/read`, …) of a name the upstream knows.
    Call { method: &'static str, name: String },
    /// A client's answer to an upstream's request.
    RelayedResponse,
    /// A GET that resumes an upstream's SSE stream.
    ResumedStream,
}

impl Target {
    /// The method named in audit lines and metrics.
    pub(super) fn method(&self) -> &'static str {
        match self {
            Target::Call { method, .. } => method,
            Target::RelayedResponse => "(response)",
            Target::ResumedStream => "(resume)",
        }
    }

    pub(super) fn name(&self) -> &str {
        match self {
            Target::Call { name, .. } => name,
            _ => "",
        }
    }
}

/// A request the router answers itself, and why (the `reason` label of the rejections metric).
pub(super) struct Refusal {
    pub(super) reject: Reject,
    pub(super) reason: &'static str,
}

impl Refusal {
    pub(super) fn new(reason: &'static str, reject: Reject) -> Refusal {
        Refusal { reject, reason }
    }
}

/// What every phase handler answers: the message for Envoy and the state that follows, or a
/// refusal (answered by `service::refuse`, after which the stream ends).
pub(super) type Answer = Result<(super::answer::Answer, Next), Box<Refusal>>;

/// `reason` for the refusals of one step: `.map_err(refused("upstream"))?`.
pub(super) fn refused(reason: &'static str) -> impl Fn(Reject) -> Box<Refusal> {
    move |reject| Box::new(Refusal::new(reason, reject))
}
