//! The fixture's input-required results (2026-07-28 "MRTR", SEP-2322): tools and a prompt that
//! answer a first call with `"resultType":"input_required"` and the `inputRequests` they need,
//! and the client's retry (the same request plus `inputResponses` and the echoed `requestState`)
//! with the complete result. Nothing is kept between the rounds: what a tool must remember
//! travels in `requestState`, signed with a key of this process (HMAC-SHA256), so a tampered
//! state is refused (-32602). Listed to 2026-07-28 requests only (a session client has no way to
//! answer them). Pure but for the key.

use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::Sha256;

const CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
pub(super) const PROMPT: &str = "test_input_required_result_prompt";

/// What a round answers.
#[derive(Debug, PartialEq)]
pub(super) enum Outcome {
    Complete(Value),
    InputRequired(Value),
    /// A JSON-RPC error: code, message.
    Error(i64, String),
}

/// The key that signs request states.
pub(super) struct StateKey([u8; 32]);

impl StateKey {
    pub(super) fn random() -> StateKey {
        StateKey(rand::random())
    }

    fn mac(&self, payload: &str) -> String {
        // HMAC takes a key of any length: this cannot fail.
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        m.update(payload.as_bytes());
        hex::encode(m.finalize().into_bytes())
    }

    /// `payload.mac`, the payload being `tool:round`.
    fn sign(&self, tool: &str, round: u32) -> String {
        let payload = format!("{tool}:{round}");
        let mac = self.mac(&payload);
        format!("{payload}.{mac}")
    }

    /// The round a state of `tool` says, if it is one this process signed.
    fn round(&self, tool: &str, state: &str) -> Option<u32> {
        let (payload, mac) = state.rsplit_once('.')?;
        if self.mac(payload) != mac {
            return None;
        }
        let (t, round) = payload.rsplit_once(':')?;
        (t == tool).then(|| round.parse().ok()).flatten()
    }
}

const TOOLS: &[(&str, &str)] = &[
    (
        "test_input_required_result_elicitation",
        "Asks the user's name with an input-required result",
    ),
    (
        "test_input_required_result_sampling",
        "Asks the client's LLM with an input-required result",
    ),
    (
        "test_input_required_result_list_roots",
        "Asks for the client's roots with an input-required result",
    ),
    (
        "test_input_required_result_request_state",
        "Asks for a confirmation and checks the echoed request state",
    ),
    (
        "test_input_required_result_multiple_inputs",
        "Asks for an elicitation, a sampling and the roots at once",
    ),
    (
        "test_input_required_result_multi_round",
        "Asks twice, one question per round",
    ),
    (
        "test_input_required_result_tampered_state",
        "Refuses a request state that fails its integrity check",
    ),
    (
        "test_input_required_result_capabilities",
        "Asks only for what the client declared it can answer",
    ),
];

pub(super) fn tools() -> Vec<Value> {
    super::no_argument_tools(TOOLS)
}

pub(super) fn prompt() -> Value {
    json!({"name": PROMPT, "description": "A prompt that asks for context first"})
}

fn elicitation(message: &str, field: &str, kind: &str) -> Value {
    json!({"method": "elicitation/create", "params": {"message": message,
        "requestedSchema": {"type": "object", "properties": {field: {"type": kind}},
            "required": [field]}}})
}

fn sampling(question: &str, max_tokens: u32) -> Value {
    json!({"method": "sampling/createMessage", "params": {
        "messages": [{"role": "user", "content": {"type": "text", "text": question}}],
        "maxTokens": max_tokens}})
}

fn roots() -> Value {
    json!({"method": "roots/list", "params": {}})
}

fn text(t: &str) -> Value {
    json!({"content": [{"type": "text", "text": t}]})
}

/// The client capability an input request needs.
fn capability(request: &Value) -> &'static str {
    match request["method"].as_str() {
        Some("sampling/createMessage") => "sampling",
        Some("roots/list") => "roots",
        _ => "elicitation",
    }
}

/// The answers of this retry: `None` for a first call; an error when `inputResponses` is there
/// but not an object.
fn responses(params: &Value) -> Result<Option<&Map<String, Value>>, Outcome> {
    match params.get("inputResponses") {
        None => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(Outcome::Error(
            -32602,
            "inputResponses must be an object of input responses".into(),
        )),
    }
}

/// Whether `answer` has the shape of an answer to `request`.
fn well_formed(request: &Value, answer: &Value) -> bool {
    match capability(request) {
        "sampling" => answer.get("content").is_some_and(Value::is_object),
        "roots" => answer.get("roots").is_some_and(Value::is_array),
        _ => answer.get("action").is_some_and(Value::is_string),
    }
}

/// One round that asks for `wanted` (key → input request): the answers in key order when the
/// retry carries them all; else the input-required result asking for what is missing (with
/// `state`), or an error for an answer of the wrong shape or a capability the client lacks.
fn ask<'a>(
    params: &'a Value,
    wanted: &[(&str, Value)],
    state: Option<String>,
) -> Result<Vec<&'a Value>, Outcome> {
    let caps = params
        .pointer("/_meta")
        .and_then(|m| m.get(CLIENT_CAPABILITIES));
    if let Some((_, r)) = wanted
        .iter()
        .find(|(_, r)| caps.is_some_and(|c| c.get(capability(r)).is_none()))
    {
        return Err(Outcome::Error(
            -32021,
            format!("this request needs the client capability {}", capability(r)),
        ));
    }
    let given = responses(params)?;
    let mut answers = Vec::new();
    let mut missing = Map::new();
    for (key, request) in wanted {
        match given.and_then(|g| g.get(*key)) {
            Some(a) if well_formed(request, a) => answers.push(a),
            Some(_) => {
                return Err(Outcome::Error(
                    -32602,
                    format!(
                        "inputResponses.{key} is not an answer to {}",
                        request["method"]
                    ),
                ))
            }
            None => {
                missing.insert((*key).to_owned(), request.clone());
            }
        }
    }
    if missing.is_empty() {
        return Ok(answers);
    }
    let mut result = json!({"resultType": "input_required", "inputRequests": missing});
    if let Some(s) = state {
        result["requestState"] = Value::String(s);
    }
    Err(Outcome::InputRequired(result))
}

/// The round a retry's `requestState` says (0 without one); an error when it was not signed here
/// for `tool`.
fn state_round(key: &StateKey, tool: &str, params: &Value) -> Result<u32, Outcome> {
    match params.get("requestState") {
        None | Some(Value::Null) => Ok(0),
        Some(Value::String(s)) => key.round(tool, s).ok_or_else(|| {
            Outcome::Error(-32602, "requestState failed its integrity check".into())
        }),
        Some(_) => Err(Outcome::Error(
            -32602,
            "requestState must be a string".into(),
        )),
    }
}

fn outcome(r: Result<Value, Outcome>) -> Outcome {
    r.map_or_else(|o| o, Outcome::Complete)
}

/// A `tools/call` of one of [`tools`]; `None` for any other tool.
pub(super) fn call(key: &StateKey, name: &str, params: &Value) -> Option<Outcome> {
    let name_q = || elicitation("What is your name?", "name", "string");
    let r = match name {
        "test_input_required_result_elicitation" => ask(params, &[("user_name", name_q())], None)
            .map(|a| {
                let who = a[0].pointer("/content/name").and_then(Value::as_str);
                text(&format!("Hello, {}!", who.unwrap_or("stranger")))
            }),
        "test_input_required_result_sampling" => ask(
            params,
            &[(
                "capital_question",
                sampling("What is the capital of France?", 100),
            )],
            None,
        )
        .map(|a| {
            let said = a[0].pointer("/content/text").and_then(Value::as_str);
            text(&format!("The LLM said: {}", said.unwrap_or("")))
        }),
        "test_input_required_result_list_roots" => ask(params, &[("client_roots", roots())], None)
            .map(|a| {
                let uris: Vec<&str> = a[0]["roots"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r["uri"].as_str())
                    .collect();
                text(&format!("The client's roots: {}", uris.join(", ")))
            }),
        "test_input_required_result_request_state"
        | "test_input_required_result_tampered_state" => {
            let confirm = elicitation("Please confirm", "ok", "boolean");
            state_round(key, name, params).and_then(|round| {
                let state = Some(key.sign(name, 1));
                let a = ask(params, &[("confirm", confirm)], state)?;
                if round != 1 {
                    // Answers without the state this server gave: ask again, with it.
                    return Err(Outcome::InputRequired(json!({"resultType": "input_required",
                        "inputRequests": {"confirm": elicitation("Please confirm", "ok", "boolean")},
                        "requestState": key.sign(name, 1)})));
                }
                Ok(text(&format!(
                    "state-ok: confirmed={}",
                    a[0].pointer("/content/ok").unwrap_or(&Value::Null)
                )))
            })
        }
        "test_input_required_result_multiple_inputs" => state_round(key, name, params)
            .and_then(|_| {
                ask(
                    params,
                    &[
                        ("user_name", name_q()),
                        ("greeting", sampling("Generate a greeting", 50)),
                        ("client_roots", roots()),
                    ],
                    Some(key.sign(name, 1)),
                )
            })
            .map(|_| text("Got the name, the greeting and the roots")),
        "test_input_required_result_multi_round" => {
            state_round(key, name, params).and_then(|round| {
                let step1 = elicitation("Step 1: What is your name?", "name", "string");
                let step2 = elicitation("Step 2: What is your favorite color?", "color", "string");
                match round {
                    2 => ask(params, &[("step2", step2)], Some(key.sign(name, 2)))
                        .map(|_| text("Both steps done")),
                    1 => {
                        ask(params, &[("step1", step1)], Some(key.sign(name, 1)))?;
                        Err(Outcome::InputRequired(
                            json!({"resultType": "input_required",
                            "inputRequests": {"step2": elicitation(
                                "Step 2: What is your favorite color?", "color", "string")},
                            "requestState": key.sign(name, 2)}),
                        ))
                    }
                    _ => Err(Outcome::InputRequired(
                        json!({"resultType": "input_required",
                        "inputRequests": {"step1": step1},
                        "requestState": key.sign(name, 1)}),
                    )),
                }
            })
        }
        "test_input_required_result_capabilities" => {
            let caps = params
                .pointer("/_meta")
                .and_then(|m| m.get(CLIENT_CAPABILITIES))
                .cloned()
                .unwrap_or(Value::Null);
            let wanted: Vec<(&str, Value)> = [
                ("user_name", name_q()),
                (
                    "capital_question",
                    sampling("What is the capital of France?", 100),
                ),
                ("client_roots", roots()),
            ]
            .into_iter()
            .filter(|(_, r)| caps.get(capability(r)).is_some())
            .collect();
            if wanted.is_empty() {
                Ok(text("The client declared nothing to ask with"))
            } else {
                ask(params, &wanted, None).map(|_| text("Asked only what the client can answer"))
            }
        }
        _ => return None,
    };
    Some(outcome(r))
}

/// A `prompts/get` of [`PROMPT`]; `None` for any other prompt.
pub(super) fn get_prompt(params: &Value) -> Option<Outcome> {
    if params["name"] != PROMPT {
        return None;
    }
    let q = elicitation("What context should the prompt use?", "context", "string");
    Some(outcome(ask(params, &[("user_context", q)], None).map(
        |a| {
            let context = a[0].pointer("/content/context").and_then(Value::as_str);
            json!({"messages": [{"role": "user", "content": {"type": "text",
            "text": format!("Answer with this context: {}", context.unwrap_or(""))}}]})
        },
    )))
}
