//! The broker's decisions on a POST to `/mcp`, pure: what kind of answer a parsed message gets
//! ([`decide_post`]), and which answer a request's method gets in either protocol generation
//! ([`decide_method`]). `mcp_endpoint::post` gathers (body, message, caller, session), asks
//! these, and acts.

use crate::jsonrpc::Kind;
use crate::mcp::{code, method};
use crate::reply::Reject;

/// What a POSTed message gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Post {
    /// A notification or a response: 202. `session`: its gateway session is checked first (a
    /// session-era message other than `notifications/initialized`); `cancel`: a
    /// `notifications/cancelled` to fan out to the session's upstreams.
    Accept { session: bool, cancel: bool },
    /// A request without an id: 400.
    MissingId,
    /// A session-era `initialize`: a new gateway session.
    Initialize,
    /// A stateless `subscriptions/listen`: an SSE stream of list changes.
    Listen,
    /// A stateless (2026-07-28) request.
    Stateless,
    /// A session-era request: its session is checked, then its method answered.
    Session,
}

/// Decides on a parsed message: its kind, method, whether it has an id, and whether the client
/// speaks the stateless generation.
pub(super) fn decide_post(kind: Kind, m: &str, has_id: bool, modern: bool) -> Post {
    match kind {
        Kind::Notification | Kind::Response => {
            let session = m != method::INITIALIZED && !modern;
            return Post::Accept {
                session,
                cancel: session && m == method::CANCELLED,
            };
        }
        Kind::Request => {}
    }
    if !has_id {
        return Post::MissingId;
    }
    match (m, modern) {
        (method::INITIALIZE, false) => Post::Initialize,
        (method::SUBSCRIPTIONS_LISTEN, true) => Post::Listen,
        (_, true) => Post::Stateless,
        (_, false) => Post::Session,
    }
}

/// The lists the broker aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum List {
    Tools,
    Prompts,
    Resources,
    ResourceTemplates,
}

/// The answer a request's method gets from the broker.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Method {
    /// `ping`: an empty result (session-era only).
    Ping,
    /// `server/discover` (stateless only).
    Discover,
    List(List),
    /// `logging/setLevel`: fanned out to the session's upstreams (session-era only).
    SetLevel,
    /// A call of a name the router did not know (it routes known ones): this error.
    Reject(Reject),
}

/// Decides which answer `m` gets; `target` names what a call names (for its error). Unknown
/// methods are -32601: 200 in the session generation, 404 in the stateless one.
pub(super) fn decide_method(m: &str, modern: bool, target: Option<&str>) -> Method {
    match m {
        method::PING if !modern => Method::Ping,
        method::SERVER_DISCOVER if modern => Method::Discover,
        method::TOOLS_LIST => Method::List(List::Tools),
        method::PROMPTS_LIST => Method::List(List::Prompts),
        method::RESOURCES_LIST => Method::List(List::Resources),
        method::RESOURCES_TEMPLATES_LIST => Method::List(List::ResourceTemplates),
        method::LOGGING_SET_LEVEL if !modern => Method::SetLevel,
        method::TOOLS_CALL | method::PROMPTS_GET | method::RESOURCES_READ => {
            let noun = match m {
                method::TOOLS_CALL => "tool",
                method::PROMPTS_GET => "prompt",
                _ => "resource",
            };
            let message = match target {
                Some(t) if !modern => format!("Unknown {noun}: {t}"),
                _ if !modern => format!("Unknown {noun}: "),
                _ => format!("Unknown {noun}"),
            };
            Method::Reject(Reject::new(200, code::INVALID_PARAMS, message, None))
        }
        _ => Method::Reject(Reject::new(
            if modern { 404 } else { 200 },
            code::METHOD_NOT_FOUND,
            format!("Method not found: {m}"),
            None,
        )),
    }
}

/// The field a call's target is named by.
pub(super) fn target_field(m: &str) -> &'static str {
    if m == method::RESOURCES_READ {
        "uri"
    } else {
        "name"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_posted_message_gets() {
        let accept = |session, cancel| Post::Accept { session, cancel };
        // (kind, method, has id, modern) → answer
        let cases = [
            (
                Kind::Notification,
                method::INITIALIZED,
                false,
                false,
                accept(false, false),
            ),
            (
                Kind::Notification,
                method::CANCELLED,
                false,
                false,
                accept(true, true),
            ),
            (
                Kind::Notification,
                method::CANCELLED,
                false,
                true,
                accept(false, false),
            ),
            (
                Kind::Notification,
                "notifications/progress",
                false,
                false,
                accept(true, false),
            ),
            (Kind::Response, "", true, false, accept(true, false)),
            (Kind::Response, "", true, true, accept(false, false)),
            (
                Kind::Request,
                method::TOOLS_LIST,
                false,
                false,
                Post::MissingId,
            ),
            (
                Kind::Request,
                method::INITIALIZE,
                true,
                false,
                Post::Initialize,
            ),
            (
                Kind::Request,
                method::INITIALIZE,
                true,
                true,
                Post::Stateless,
            ),
            (
                Kind::Request,
                method::SUBSCRIPTIONS_LISTEN,
                true,
                true,
                Post::Listen,
            ),
            (
                Kind::Request,
                method::SUBSCRIPTIONS_LISTEN,
                true,
                false,
                Post::Session,
            ),
            (
                Kind::Request,
                method::TOOLS_LIST,
                true,
                true,
                Post::Stateless,
            ),
            (
                Kind::Request,
                method::TOOLS_LIST,
                true,
                false,
                Post::Session,
            ),
        ];
        for (kind, m, has_id, modern, want) in cases {
            assert_eq!(
                decide_post(kind, m, has_id, modern),
                want,
                "{kind:?} {m} {has_id} {modern}"
            );
        }
    }

    #[test]
    fn which_answer_a_method_gets() {
        let reject =
            |status, code, message: &str| Method::Reject(Reject::new(status, code, message, None));
        // (method, modern, target) → answer
        let cases = [
            (method::PING, false, None, Method::Ping),
            (
                method::PING,
                true,
                None,
                reject(404, code::METHOD_NOT_FOUND, "Method not found: ping"),
            ),
            (method::SERVER_DISCOVER, true, None, Method::Discover),
            (
                method::SERVER_DISCOVER,
                false,
                None,
                reject(
                    200,
                    code::METHOD_NOT_FOUND,
                    "Method not found: server/discover",
                ),
            ),
            (method::TOOLS_LIST, false, None, Method::List(List::Tools)),
            (
                method::RESOURCES_TEMPLATES_LIST,
                true,
                None,
                Method::List(List::ResourceTemplates),
            ),
            (method::LOGGING_SET_LEVEL, false, None, Method::SetLevel),
            (
                method::LOGGING_SET_LEVEL,
                true,
                None,
                reject(
                    404,
                    code::METHOD_NOT_FOUND,
                    "Method not found: logging/setLevel",
                ),
            ),
            (
                method::INITIALIZE,
                true,
                None,
                reject(404, code::METHOD_NOT_FOUND, "Method not found: initialize"),
            ),
            (
                method::TOOLS_CALL,
                false,
                Some("nope"),
                reject(200, code::INVALID_PARAMS, "Unknown tool: nope"),
            ),
            (
                method::RESOURCES_READ,
                false,
                None,
                reject(200, code::INVALID_PARAMS, "Unknown resource: "),
            ),
            (
                method::PROMPTS_GET,
                true,
                Some("x"),
                reject(200, code::INVALID_PARAMS, "Unknown prompt"),
            ),
            (
                "foo/bar",
                false,
                None,
                reject(200, code::METHOD_NOT_FOUND, "Method not found: foo/bar"),
            ),
        ];
        for (m, modern, target, want) in cases {
            assert_eq!(decide_method(m, modern, target), want, "{m} {modern}");
        }
        assert_eq!(target_field(method::RESOURCES_READ), "uri");
        assert_eq!(target_field(method::TOOLS_CALL), "name");
    }
}
