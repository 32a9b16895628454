//! What the router does with a routed request's response headers. Pure.

use crate::mcp::MediaType;
use crate::router::facts::ResponseFacts;

/// What the response decision needs to know of the routed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutedFacts {
    /// It went over an upstream session (a 404 then means that session is gone).
    pub used_session: bool,
    /// A stateless client on a session-era upstream: results need their `resultType`.
    pub mark_complete: bool,
    /// A `resources/subscribe`.
    pub subscribe: bool,
    /// A tool that declares an MCP App: its result's `ui://` URI gets the server's prefix.
    pub ui_app: bool,
    /// The answer may carry a task id, which gets the server's tag.
    pub tasks: bool,
}

/// What happens to the response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyChoice {
    /// An SSE stream: through the router, its ids tagged with the server.
    Tag,
    /// A JSON result, buffered, marked complete and/or its app URI prefixed.
    Bridge,
}

/// The decision on a routed response's headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseDecision {
    /// The upstream lost the session (404 on one): forget it, tell the client to retry.
    SessionLost,
    /// Answered without MCP (a bare 5xx, a policy's 403): this JSON-RPC error instead.
    Failed(u16, i64, String),
    /// The upstream's answer goes on; `listen` after a granted subscription; `body` when the
    /// router needs the body.
    Pass {
        listen: bool,
        body: Option<BodyChoice>,
    },
}

/// Decides on a routed response from its facts.
pub fn decide_response(
    response: &ResponseFacts,
    routed: RoutedFacts,
    server: &str,
) -> ResponseDecision {
    if response.status == 404 && routed.used_session {
        return ResponseDecision::SessionLost;
    }
    if let Some((status, code, message)) =
        crate::router::upstream_failure::classify(response, server)
    {
        return ResponseDecision::Failed(status, code, message);
    }
    let body = match response.media {
        MediaType::EventStream => Some(BodyChoice::Tag),
        MediaType::Json if routed.mark_complete || routed.ui_app || routed.tasks => {
            Some(BodyChoice::Bridge)
        }
        _ => None,
    };
    ResponseDecision::Pass {
        listen: routed.subscribe && response.status == 200,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_decisions() {
        use BodyChoice::{Bridge, Tag};
        use MediaType::{EventStream, Json, Other};
        let pass = |listen, body| ResponseDecision::Pass { listen, body };
        // (status, media, challenged, used_session, mark_complete, subscribe) → decision
        type Row = (
            (u16, MediaType, bool),
            (bool, bool, bool),
            Option<ResponseDecision>,
        );
        let rows: &[Row] = &[
            (
                (200, Json, false),
                (true, false, false),
                Some(pass(false, None)),
            ),
            (
                (200, EventStream, false),
                (true, false, false),
                Some(pass(false, Some(Tag))),
            ),
            (
                (200, EventStream, false),
                (true, true, false),
                Some(pass(false, Some(Tag))),
            ),
            (
                (200, Json, false),
                (false, true, false),
                Some(pass(false, Some(Bridge))),
            ),
            (
                (200, Other, false),
                (false, true, false),
                Some(pass(false, None)),
            ),
            (
                (200, Json, false),
                (true, false, true),
                Some(pass(true, None)),
            ),
            (
                (400, Json, false),
                (true, false, true),
                Some(pass(false, None)),
            ),
            (
                (404, Json, false),
                (true, false, false),
                Some(ResponseDecision::SessionLost),
            ),
            // No session to lose (a stateless upstream): the upstream's own 404.
            (
                (404, Json, false),
                (false, false, false),
                Some(pass(false, None)),
            ),
            // Failures without MCP: checked by classify (its own table); only the kind here.
            ((503, Other, false), (true, false, false), None),
            ((403, Other, false), (true, false, false), None),
            (
                (403, Other, true),
                (true, false, false),
                Some(pass(false, None)),
            ),
        ];
        for ((status, media, challenged), (used_session, mark_complete, subscribe), want) in rows {
            let got = decide_response(
                &ResponseFacts {
                    status: *status,
                    media: *media,
                    challenged: *challenged,
                },
                RoutedFacts {
                    used_session: *used_session,
                    mark_complete: *mark_complete,
                    subscribe: *subscribe,
                    ui_app: false,
                    tasks: false,
                },
                "ns/a",
            );
            match want {
                Some(want) => assert_eq!(&got, want, "{status} {media:?}"),
                None => assert!(
                    matches!(got, ResponseDecision::Failed(..)),
                    "{status}: {got:?}"
                ),
            }
        }
    }

    #[test]
    fn a_json_result_of_an_app_tool_is_buffered_to_prefix_its_uri() {
        let routed = |ui_app| RoutedFacts {
            used_session: true,
            mark_complete: false,
            subscribe: false,
            ui_app,
            tasks: false,
        };
        let json = ResponseFacts {
            status: 200,
            media: MediaType::Json,
            challenged: false,
        };
        let body = |d| match d {
            ResponseDecision::Pass { body, .. } => body,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            body(decide_response(&json, routed(true), "ns/a")),
            Some(BodyChoice::Bridge)
        );
        assert_eq!(body(decide_response(&json, routed(false), "ns/a")), None);
    }
}
