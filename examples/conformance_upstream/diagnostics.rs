//! The fixture's diagnostic tools of the `server-stateless` scenario (2026-07-28, SEP-2575),
//! listed to 2026-07-28 requests only:
//!
//! - `test_missing_capability` needs the client's `sampling`: without it, HTTP 400 and
//!   `-32021` (MissingRequiredClientCapability) whose `data.requiredCapabilities` names it;
//! - `test_streaming_elicitation` asks the user, as a 2026-07-28 server must: with an
//!   input-required result, never an `elicitation/create` request on the response stream;
//! - `test_logging_tool` logs only when the request's `_meta` sets
//!   `io.modelcontextprotocol/logLevel` (no `logging/setLevel` without a session);
//! - `test_trigger_tool_change` and `test_trigger_prompt_change` change the tool list (the
//!   description of `test_dynamic_tool`) or the prompt list (of `test_dynamic_prompt`) and say
//!   so with `notifications/*/list_changed`: the tool change on the `subscriptions/listen`
//!   streams only (as a server of 2026-07-28 only would), the prompt change on the sessions' GET
//!   streams too. The gateway's discovery hears either (it listens to both) and tells its
//!   clients' `subscriptions/listen` streams.
//!
//! Pure but for the answer's framing and the two list generations.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::LEVELS;

const CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
const LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
const MISSING_CAPABILITY: i64 = -32021;

/// How often the tool list and the prompt list were changed (one process, one list each).
static TOOL_GENERATION: AtomicU64 = AtomicU64::new(0);
static PROMPT_GENERATION: AtomicU64 = AtomicU64::new(0);

/// The tool whose description `test_trigger_tool_change` changes (listed at every revision).
pub(super) fn dynamic_tool() -> Value {
    json!({"name": "test_dynamic_tool", "inputSchema": {"type": "object", "properties": {}},
        "description": format!("Changes with test_trigger_tool_change (generation {})",
            TOOL_GENERATION.load(Ordering::SeqCst))})
}

/// The prompt whose description `test_trigger_prompt_change` changes.
pub(super) fn dynamic_prompt() -> Value {
    json!({"name": "test_dynamic_prompt",
        "description": format!("Changes with test_trigger_prompt_change (generation {})",
            PROMPT_GENERATION.load(Ordering::SeqCst))})
}

const TOOLS: &[(&str, &str)] = &[
    (
        "test_missing_capability",
        "Needs the client's sampling capability (-32021 without it)",
    ),
    (
        "test_streaming_elicitation",
        "Asks the user with an input-required result, never a request on the stream",
    ),
    (
        "test_logging_tool",
        "Logs only when the request's _meta sets a log level",
    ),
    (
        "test_trigger_tool_change",
        "Changes the tool list and notifies tools/list_changed",
    ),
    (
        "test_trigger_prompt_change",
        "Changes the prompt list and notifies prompts/list_changed",
    ),
];

pub(super) fn tools() -> Vec<Value> {
    super::no_argument_tools(TOOLS)
}

/// What a call answers.
#[derive(Debug, PartialEq)]
enum Answer {
    /// A result (`resultType` said).
    Result(Value),
    /// A result after these `notifications/message` params, on an SSE stream.
    Logged(Vec<Value>, Value),
    /// HTTP 400, -32021: the client capability that is missing.
    MissingCapability(&'static str),
    /// A list changed: the result after this `notifications/*/list_changed` to every listen
    /// stream and, when `true`, to every session's GET streams.
    Changed(&'static str, bool, Value),
}

fn declared(params: &Value, capability: &str) -> bool {
    params
        .pointer("/_meta")
        .and_then(|m| m.get(CLIENT_CAPABILITIES))
        .and_then(|c| c.get(capability))
        .is_some()
}

fn text(t: &str) -> Value {
    json!({"resultType": "complete", "content": [{"type": "text", "text": t}]})
}

fn answer(name: &str, params: &Value) -> Option<Answer> {
    Some(match name {
        "test_missing_capability" => {
            if !declared(params, "sampling") {
                return Some(Answer::MissingCapability("sampling"));
            }
            Answer::Result(text("The client declared sampling"))
        }
        "test_streaming_elicitation" => {
            if !declared(params, "elicitation") {
                return Some(Answer::MissingCapability("elicitation"));
            }
            match params.pointer("/inputResponses/confirmation/action") {
                Some(action) => Answer::Result(text(&format!(
                    "The user answered: {}",
                    action.as_str().unwrap_or("")
                ))),
                None => Answer::Result(json!({"resultType": "input_required", "inputRequests": {
                    "confirmation": {"method": "elicitation/create", "params": {
                        "message": "Please confirm",
                        "requestedSchema": {"type": "object",
                            "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}}}}})),
            }
        }
        "test_logging_tool" => {
            let result = text("Logging tool done");
            let level = params
                .pointer("/_meta")
                .and_then(|m| m.get(LOG_LEVEL))
                .and_then(Value::as_str);
            match level.and_then(|l| LEVELS.iter().position(|x| *x == l)) {
                None => Answer::Result(result),
                Some(lowest) => {
                    let logs = ["debug", "info", "warning"]
                        .iter()
                        .filter(|l| LEVELS.iter().position(|x| x == *l) >= Some(lowest))
                        .map(|l| {
                            json!({"level": l, "logger": "conformance-upstream",
                            "data": format!("a {l} message")})
                        })
                        .collect();
                    Answer::Logged(logs, result)
                }
            }
        }
        "test_trigger_tool_change" => {
            TOOL_GENERATION.fetch_add(1, Ordering::SeqCst);
            Answer::Changed(
                "notifications/tools/list_changed",
                false,
                text("The tool list changed"),
            )
        }
        "test_trigger_prompt_change" => {
            PROMPT_GENERATION.fetch_add(1, Ordering::SeqCst);
            Answer::Changed(
                "notifications/prompts/list_changed",
                true,
                text("The prompt list changed"),
            )
        }
        _ => return None,
    })
}

/// A `tools/call` of one of [`tools`]; `None` for any other tool.
pub(super) fn call(app: &super::App, id: &Value, params: &Value) -> Option<Response> {
    let name = params["name"].as_str().unwrap_or("");
    Some(match answer(name, params)? {
        Answer::Result(r) => super::reply(id, r),
        Answer::Changed(notification, sessions, r) => {
            super::notify_sessions(app, notification, sessions);
            super::reply(id, r)
        }
        Answer::Logged(logs, r) => {
            let mut body = String::new();
            for l in logs {
                let n = json!({"jsonrpc": "2.0", "method": "notifications/message", "params": l});
                body.push_str(&format!("event: message\ndata: {n}\n\n"));
            }
            let done = json!({"jsonrpc": "2.0", "id": id, "result": r});
            body.push_str(&format!("event: message\ndata: {done}\n\n"));
            (
                [
                    (header::CONTENT_TYPE, "text/event-stream"),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                body,
            )
                .into_response()
        }
        Answer::MissingCapability(c) => (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": MISSING_CAPABILITY,
                "message": format!("this tool needs the client capability {c}"),
                "data": {"requiredCapabilities": {c: {}}}}})
            .to_string(),
        )
            .into_response(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(name: &str, meta: Value) -> Value {
        json!({"name": name, "arguments": {}, "_meta": meta})
    }

    #[test]
    fn each_tool_answers_as_the_scenario_expects() {
        let caps = |c: Value| json!({CLIENT_CAPABILITIES: c});
        let cases = [
            (
                params("test_missing_capability", caps(json!({}))),
                "missing sampling",
            ),
            (
                params("test_missing_capability", caps(json!({"sampling": {}}))),
                "complete",
            ),
            (
                params("test_streaming_elicitation", caps(json!({}))),
                "missing elicitation",
            ),
            (
                params(
                    "test_streaming_elicitation",
                    caps(json!({"elicitation": {}})),
                ),
                "input_required",
            ),
            (params("test_logging_tool", caps(json!({}))), "complete"),
            (
                params(
                    "test_logging_tool",
                    json!({CLIENT_CAPABILITIES: {}, LOG_LEVEL: "info"}),
                ),
                "logged 2",
            ),
        ];
        for (p, want) in cases {
            let got = match answer(p["name"].as_str().unwrap_or(""), &p) {
                Some(Answer::Result(r)) => r["resultType"].as_str().unwrap_or("").to_owned(),
                Some(Answer::Logged(l, _)) => format!("logged {}", l.len()),
                Some(Answer::MissingCapability(c)) => format!("missing {c}"),
                Some(Answer::Changed(n, _, _)) => n.to_owned(),
                None => "none".to_owned(),
            };
            assert_eq!(got, want, "{p}");
        }
        assert!(answer("test_simple_text", &json!({})).is_none());
        let before = dynamic_tool();
        assert!(matches!(
            answer("test_trigger_tool_change", &json!({})),
            Some(Answer::Changed(
                "notifications/tools/list_changed",
                false,
                _
            ))
        ));
        assert_ne!(dynamic_tool(), before);
    }
}
