//! 2026-07-28 input-required results (SEP-2322, "MRTR") as the gateway gives them on behalf of a
//! session-era (2025) upstream: the shapes, pure.
//!
//! A session-era server asks its client with a request on the call's SSE stream
//! (`elicitation/create`, `sampling/createMessage`, `roots/list`) and waits for the answer. A
//! 2026-07-28 client cannot be asked that way: it is asked with an input-required result and
//! retries the same request with `inputResponses` and the echoed `requestState`. The gateway
//! bridges the two by replay: the retry is the upstream's call again, and the upstream's questions
//! are answered, in the order it asks them, from the answers collected so far ([`Answered`],
//! carried in the signed `requestState`, so that any replica can take the retry).

use std::borrow::Cow;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::method;

/// The requests a session-era upstream may send its client that a 2026-07-28 client can be asked
/// through an input-required result, with the client capability each needs.
pub const ASKABLE: &[(&str, &str)] = &[
    ("elicitation/create", "elicitation"),
    ("sampling/createMessage", "sampling"),
    ("roots/list", "roots"),
];

/// The `inputRequests` key of the `n`-th question (from 0) an upstream asks during one call.
pub fn key(n: usize) -> String {
    format!("mcpgw.ask.{n}")
}

/// The client capability a request of `method` needs to be asked; `None` for a method a client is
/// never asked through an input-required result.
pub fn capability(method: &str) -> Option<&'static str> {
    ASKABLE.iter().find(|(m, _)| *m == method).map(|(_, c)| *c)
}

/// One question the upstream asked and the client's answer (its `result`, raw JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Answered {
    /// The method of the upstream's request.
    #[serde(rename = "m")]
    pub method: String,
    /// The result the client gave.
    #[serde(rename = "r")]
    pub result: Box<RawValue>,
}

impl PartialEq for Answered {
    fn eq(&self, other: &Answered) -> bool {
        self.method == other.method && self.result.get() == other.result.get()
    }
}

/// What a `requestState` the gateway issued carries: the answers so far, and the method of the
/// question the client is being asked now (its answer comes in `inputResponses`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AskState {
    #[serde(rename = "ans")]
    pub answers: Vec<Answered>,
    #[serde(rename = "ask")]
    pub asking: String,
}

#[derive(Deserialize)]
struct RetryParams<'a> {
    #[serde(rename = "requestState", borrow, default)]
    request_state: Option<&'a RawValue>,
    #[serde(rename = "inputResponses", borrow, default)]
    input_responses: Option<&'a RawValue>,
}

/// What a request's params say of a retry: the echoed `requestState` (a string) and the raw
/// `inputResponses`, if any. `None` without a state (answers without the state they answer
/// cannot be placed: a new call); `Err` when either is there with the wrong type.
pub fn retry_members(params: Option<&str>) -> Result<Option<(String, Option<&RawValue>)>, String> {
    let Some(params) = params.filter(|p| p.starts_with('{')) else {
        return Ok(None);
    };
    let p: RetryParams<'_> = serde_json::from_str(params).map_err(|e| e.to_string())?;
    let state = match p.request_state {
        None => None,
        Some(s) if s.get() == "null" => None,
        Some(s) => Some(
            serde_json::from_str::<String>(s.get())
                .map_err(|_| "requestState must be a string".to_owned())?,
        ),
    };
    let responses = match p.input_responses {
        Some(r) if r.get().starts_with('{') => Some(r),
        Some(r) if r.get() == "null" => None,
        None => None,
        Some(_) => return Err("inputResponses must be an object of input responses".into()),
    };
    Ok(state.map(|s| (s, responses)))
}

/// The answers a retry carries: those of `state` and the client's answer to the question it was
/// asked (`inputResponses[key(n)]`, `n` the number of earlier answers), when it gave one. `Err`
/// (the message of a -32602) when that answer does not have the shape of an answer to the
/// question: it is never passed on to the upstream unchecked.
pub fn answers_of_retry(
    state: AskState,
    responses: Option<&RawValue>,
) -> Result<Vec<Answered>, String> {
    let mut answers = state.answers;
    let given: HashMap<Cow<'_, str>, &RawValue> = responses
        .and_then(|r| serde_json::from_str(r.get()).ok())
        .unwrap_or_default();
    let k = key(answers.len());
    if let Some(r) = given.get(k.as_str()) {
        if !answers_question(&state.asking, r) {
            return Err(format!(
                "inputResponses[{k:?}] is not an answer to {}",
                state.asking
            ));
        }
        answers.push(Answered {
            method: state.asking,
            result: (*r).to_owned(),
        });
    }
    Ok(answers)
}

/// Whether `answer` has the shape of a result of `method`: an elicitation's says its `action`,
/// a sampling's has `content`, a roots list its `roots`.
fn answers_question(method: &str, answer: &RawValue) -> bool {
    #[derive(Deserialize)]
    struct Shape<'a> {
        #[serde(borrow, default)]
        action: Option<&'a RawValue>,
        #[serde(borrow, default)]
        content: Option<&'a RawValue>,
        #[serde(borrow, default)]
        roots: Option<&'a RawValue>,
    }
    let Ok(shape) = serde_json::from_str::<Shape<'_>>(answer.get()) else {
        return false;
    };
    let starts = |v: Option<&RawValue>, with: &[u8]| {
        v.and_then(|v| v.get().as_bytes().first())
            .is_some_and(|b| with.contains(b))
    };
    match capability(method) {
        Some("elicitation") => starts(shape.action, b"\""),
        // One content block, or (sampling with tools) a list of them.
        Some("sampling") => starts(shape.content, b"{["),
        Some("roots") => starts(shape.roots, b"["),
        _ => false,
    }
}

#[derive(Serialize)]
struct InputRequest<'a> {
    method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<&'a RawValue>,
}

#[derive(Serialize)]
struct InputRequired<'a> {
    #[serde(rename = "resultType")]
    result_type: &'static str,
    #[serde(rename = "inputRequests")]
    input_requests: HashMap<String, InputRequest<'a>>,
    #[serde(rename = "requestState")]
    request_state: &'a str,
}

/// The JSON-RPC response (id `id`) that asks a 2026-07-28 client the upstream's question
/// (`method`, `params` as the upstream sent them), the `n`-th of its call, with the
/// `requestState` to echo.
pub fn input_required(
    id: &RawValue,
    n: usize,
    method: &str,
    params: Option<&RawValue>,
    state: &str,
) -> Vec<u8> {
    let result = InputRequired {
        result_type: "input_required",
        input_requests: HashMap::from([(key(n), InputRequest { method, params })]),
        request_state: state,
    };
    crate::jsonrpc::result_body(id, result)
}

/// What the upstream gets for one of its requests instead of the client's answer.
#[derive(Debug)]
pub enum Reply {
    /// A result (raw JSON).
    Result(Box<RawValue>),
    Error(i64, String),
}

impl Reply {
    fn result(raw: &str) -> Reply {
        // Only ever given literal JSON objects.
        match RawValue::from_string(raw.to_owned()) {
            Ok(r) => Reply::Result(r),
            Err(e) => Reply::Error(super::code::INTERNAL_ERROR, e.to_string()),
        }
    }

    /// The JSON-RPC response with id `id`.
    pub fn to(&self, id: &RawValue) -> Vec<u8> {
        match self {
            Reply::Result(r) => crate::jsonrpc::result_body(id, r),
            Reply::Error(code, message) => {
                crate::jsonrpc::error_body(Some(id), *code, message, None)
            }
        }
    }
}

/// What the upstream gets instead of the answer to a question the client is asked on its retry
/// (the call it belongs to is replayed then): an elicitation is cancelled (the user dismissed it),
/// anything else an error.
pub fn withdrawn(method: &str) -> Reply {
    if method == "elicitation/create" {
        return Reply::result(r#"{"action":"cancel"}"#);
    }
    Reply::Error(
        super::code::INTERNAL_ERROR,
        "the gateway asks the client on its retry of this call (2026-07-28 input-required result)"
            .into(),
    )
}

/// What the upstream gets for a request its 2026-07-28 client cannot be asked: a `ping` is
/// answered; a method that is never asked, or whose capability the client did not declare, is
/// an error.
pub fn not_asked(method: &str) -> Reply {
    if method == method::PING {
        return Reply::result("{}");
    }
    let message = if capability(method).is_some() {
        format!("the client did not declare the capability {method} needs")
    } else {
        format!("{method} is not relayed to a 2026-07-28 client")
    };
    Reply::Error(super::code::METHOD_NOT_FOUND, message)
}

/// What the upstream gets for a request it sends a 2026-07-28 client outside any call (on its
/// upstream session's GET stream): a `ping` is answered; anything else is an error, since such a
/// client is asked only within its calls.
pub fn outside_a_call(method: &str) -> Reply {
    if method == method::PING {
        return Reply::result("{}");
    }
    Reply::Error(
        super::code::METHOD_NOT_FOUND,
        format!("{method} outside a call is not relayed to a 2026-07-28 client"),
    )
}

/// The relayed client capabilities a 2026-07-28 request declares in its `_meta`, as compact JSON
/// with its members in a fixed order (callers that declare the same share upstream sessions);
/// `None` when it declares none of them.
pub fn declared_capabilities(params: Option<&str>) -> Option<String> {
    #[derive(Deserialize)]
    struct P<'a> {
        #[serde(rename = "_meta", borrow, default)]
        meta: Option<&'a RawValue>,
    }
    let p: P<'_> = serde_json::from_str(params?).ok()?;
    let meta: HashMap<Cow<'_, str>, &RawValue> = serde_json::from_str(p.meta?.get()).ok()?;
    let caps: serde_json::Value =
        serde_json::from_str(meta.get(super::modern::META_CLIENT_CAPABILITIES)?.get()).ok()?;
    // serde_json's map keeps its keys sorted: one text for the same capabilities.
    super::relayed_client_capabilities(&caps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).expect("json")
    }

    #[test]
    fn the_retry_members_are_read_or_refused() {
        for (params, want) in [
            (r#"{"name":"x"}"#, Ok(None)),
            (
                r#"{"requestState":"s","inputResponses":{"a":1}}"#,
                Ok(Some(("s", Some(r#"{"a":1}"#)))),
            ),
            (r#"{"requestState":"s"}"#, Ok(Some(("s", None)))),
            (r#"{"inputResponses":{"a":1}}"#, Ok(None)),
            (r#"{"requestState":null,"inputResponses":null}"#, Ok(None)),
            (
                r#"{"requestState":5}"#,
                Err("requestState must be a string"),
            ),
            (
                r#"{"requestState":"s","inputResponses":[1]}"#,
                Err("inputResponses must be an object of input responses"),
            ),
        ] {
            let p = raw(params);
            let got = retry_members(Some(p.get()));
            let got = got
                .as_ref()
                .map(|o| o.as_ref().map(|(s, r)| (s.as_str(), r.map(|r| r.get()))))
                .map_err(String::as_str);
            assert_eq!(got, want, "{params}");
        }
    }

    #[test]
    fn a_retry_adds_the_answer_to_the_question_it_was_asked() {
        let earlier = Answered {
            method: "roots/list".into(),
            result: raw(r#"{"roots":[]}"#),
        };
        let state = |asking: &str| AskState {
            answers: vec![earlier.clone()],
            asking: asking.into(),
        };
        let got = answers_of_retry(
            state("elicitation/create"),
            Some(&raw(
                r#"{"mcpgw.ask.1":{"action":"accept","content":{"n":1.50}},"other":{}}"#,
            )),
        )
        .expect("an answer");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], earlier);
        assert_eq!(got[1].method, "elicitation/create");
        assert_eq!(
            got[1].result.get(),
            r#"{"action":"accept","content":{"n":1.50}}"#
        );
        // The answer to another question (or none) adds nothing.
        let got = answers_of_retry(state("x"), Some(&raw(r#"{"mcpgw.ask.0":{}}"#)));
        assert_eq!(got, Ok(vec![earlier.clone()]));
        assert_eq!(answers_of_retry(state("x"), None), Ok(vec![earlier]));
    }

    #[test]
    fn an_answer_must_have_the_shape_of_an_answer_to_its_question() {
        for (asking, answer, ok) in [
            ("elicitation/create", r#"{"action":"decline"}"#, true),
            ("elicitation/create", r#"{"action":1}"#, false),
            ("elicitation/create", r#"{"content":{}}"#, false),
            (
                "sampling/createMessage",
                r#"{"role":"assistant","content":{"type":"text"}}"#,
                true,
            ),
            (
                "sampling/createMessage",
                r#"{"content":[{"type":"tool_use"}]}"#,
                true,
            ),
            ("sampling/createMessage", r#"{"content":"hi"}"#, false),
            ("roots/list", r#"{"roots":[]}"#, true),
            ("roots/list", r#"{"roots":{}}"#, false),
            ("roots/list", "[]", false),
            ("roots/list", "\"x\"", false),
        ] {
            let state = AskState {
                answers: Vec::new(),
                asking: asking.into(),
            };
            let responses = raw(&format!(r#"{{"mcpgw.ask.0":{answer}}}"#));
            let got = answers_of_retry(state, Some(&responses));
            assert_eq!(got.is_ok(), ok, "{asking} {answer}: {got:?}");
            if let Err(e) = got {
                assert!(e.contains("mcpgw.ask.0") && e.contains(asking), "{e}");
            }
        }
    }

    #[test]
    fn the_client_is_asked_the_upstreams_question_as_it_was_asked() {
        let p = raw(r#"{"message":"Name?","requestedSchema":{"type":"object"},"n":1.50}"#);
        let got = input_required(
            &raw(r#""c-1""#),
            2,
            "elicitation/create",
            Some(&p),
            "st\"ate",
        );
        let v: serde_json::Value = serde_json::from_slice(&got).expect("json");
        assert_eq!(v["jsonrpc"], "2.0");
        assert_eq!(v["id"], "c-1");
        let r = &v["result"];
        assert_eq!(r["resultType"], "input_required");
        assert_eq!(r["requestState"], "st\"ate");
        assert_eq!(
            r["inputRequests"]["mcpgw.ask.2"]["method"],
            "elicitation/create"
        );
        assert_eq!(
            r["inputRequests"]["mcpgw.ask.2"]["params"]["message"],
            "Name?"
        );
        // The upstream's params as they were sent, byte for byte.
        assert!(String::from_utf8_lossy(&got).contains(p.get()));
        let got = input_required(&raw("7"), 0, "roots/list", None, "s");
        assert_eq!(
            String::from_utf8(got).expect("utf8"),
            r#"{"jsonrpc":"2.0","id":7,"result":{"resultType":"input_required","inputRequests":{"mcpgw.ask.0":{"method":"roots/list"}},"requestState":"s"}}"#
        );
    }

    #[test]
    fn what_the_upstream_gets_for_what_is_not_answered_from_the_client() {
        let id = raw("3");
        let json =
            |r: Reply| -> serde_json::Value { serde_json::from_slice(&r.to(&id)).expect("json") };
        assert_eq!(
            json(not_asked("ping")),
            serde_json::json!({"jsonrpc":"2.0","id":3,"result":{}})
        );
        assert_eq!(
            json(withdrawn("elicitation/create")),
            serde_json::json!({"jsonrpc":"2.0","id":3,"result":{"action":"cancel"}})
        );
        let v = json(withdrawn("sampling/createMessage"));
        assert_eq!(v["error"]["code"], -32603, "{v}");
        let v = json(not_asked("sampling/createMessage"));
        assert_eq!(v["error"]["code"], -32601, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("did not declare"),
            "{v}"
        );
        let v = json(not_asked("custom/thing"));
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("is not relayed"),
            "{v}"
        );
    }

    #[test]
    fn declared_capabilities_are_the_relayed_ones_in_one_order() {
        for (params, want) in [
            (
                r#"{"_meta":{"io.modelcontextprotocol/clientCapabilities":{"sampling":{},"elicitation":{"form":{}},"extensions":{}}}}"#,
                Some(r#"{"elicitation":{"form":{}},"sampling":{}}"#),
            ),
            (
                r#"{"_meta":{"io.modelcontextprotocol/clientCapabilities":{"roots":{}}}}"#,
                Some(r#"{"roots":{}}"#),
            ),
            (
                r#"{"_meta":{"io.modelcontextprotocol/clientCapabilities":{}}}"#,
                None,
            ),
            (r#"{"name":"x"}"#, None),
        ] {
            let p = raw(params);
            assert_eq!(
                declared_capabilities(Some(p.get())).as_deref(),
                want,
                "{params}"
            );
        }
    }
}
