//! A 2026-07-28 client's call bridged onto a session-era upstream that asks it something
//! (`elicitation/create`, `sampling/createMessage`, `roots/list` on the call's SSE stream): the
//! client is asked with an input-required result, and its retry replays the call, the upstream's
//! questions answered in order from what the client said ([`crate::mcp::input_required`]).
//! Pure: what the upstream must be sent is collected for the response phase to post.
//!
//! One [`Asker`] per bridged SSE response. For each request the upstream sends on it:
//! - the `n`-th askable question (the client declared its capability) that an earlier round
//!   answered with the same method: that answer goes to the upstream, the event is dropped;
//! - the first one not answered yet: the client's request is answered with an input-required
//!   result asking it (its `requestState` holds the answers so far), the upstream's question
//!   is withdrawn (an elicitation cancelled, else an error) so that its call ends, and the rest
//!   of the stream is dropped (later questions withdrawn likewise);
//! - `ping` is answered; anything else, or a capability the client did not declare, is refused
//!   to the upstream (-32601), and the call goes on.

use serde_json::value::RawValue;

use crate::jsonrpc::{self, Kind, OwnedId};
use crate::mcp::input_required::{self as ir, Answered, AskState};

/// Signs the `requestState` for the answers so far and the question being asked.
pub type MintState = Box<dyn Fn(&AskState) -> Option<String> + Send + Sync>;

/// What becomes of one SSE event's message.
#[derive(Debug, PartialEq)]
pub enum Heard {
    /// Goes on to the client (tagged as usual).
    Pass,
    /// Not for the client.
    Drop,
    /// Replaces the event: the client's request answered (a JSON-RPC message).
    Answer(Vec<u8>),
}

/// The asking state of one bridged response.
pub struct Asker {
    /// The client's request, answered with the input-required result.
    client: OwnedId,
    /// The relayed capabilities the client declared (compact JSON, `None`: none).
    declared: Option<String>,
    /// What earlier rounds answered, in the order the upstream asked.
    answers: Vec<Answered>,
    /// Questions asked on this stream so far.
    asked: usize,
    /// The client has been asked: nothing more goes to it.
    done: bool,
    mint: MintState,
    /// What the upstream must be sent, each with what became of its question (the label of the
    /// `bridged_questions` metric).
    to_upstream: Vec<(&'static str, Vec<u8>)>,
}

impl std::fmt::Debug for Asker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Asker")
            .field("asked", &self.asked)
            .field("answers", &self.answers.len())
            .field("done", &self.done)
            .finish()
    }
}

impl Asker {
    pub fn new(
        client: OwnedId,
        declared: Option<String>,
        answers: Vec<Answered>,
        mint: MintState,
    ) -> Asker {
        Asker {
            client,
            declared,
            answers,
            asked: 0,
            done: false,
            mint,
            to_upstream: Vec::new(),
        }
    }

    /// What becomes of one message (`data`, an SSE event's data) of the upstream's stream.
    pub fn hear(&mut self, data: &[u8]) -> Heard {
        let Ok(msg) = jsonrpc::parse(data) else {
            return if self.done { Heard::Drop } else { Heard::Pass };
        };
        if msg.kind != Kind::Request {
            return if self.done { Heard::Drop } else { Heard::Pass };
        }
        let (Some(id), Some(method)) = (msg.id, msg.method.as_deref()) else {
            return Heard::Drop;
        };
        let declared = ir::capability(method).is_some_and(|c| self.declares(c));
        if !declared {
            self.send("refused", id, ir::not_asked(method));
            return Heard::Drop;
        }
        if self.done {
            self.send("withdrawn", id, ir::withdrawn(method));
            return Heard::Drop;
        }
        let n = self.asked;
        self.asked += 1;
        if let Some(a) = self.answers.get(n).filter(|a| a.method == method) {
            let answer = ir::Reply::Result(a.result.clone());
            self.send("answered", id, answer);
            return Heard::Drop;
        }
        // Not answered yet (or the upstream asks something else than last time: what followed
        // no longer applies).
        self.answers.truncate(n);
        self.done = true;
        self.send("asked", id, ir::withdrawn(method));
        let state = AskState {
            answers: std::mem::take(&mut self.answers),
            asking: method.to_owned(),
        };
        Heard::Answer(match (self.mint)(&state) {
            Some(token) => ir::input_required(&self.client, n, method, msg.params(), &token),
            None => crate::jsonrpc::error_body(
                Some(&self.client),
                crate::mcp::code::INTERNAL_ERROR,
                &format!("the upstream asked the client {method}; the gateway could not sign the request state to ask it"),
                None,
            ),
        })
    }

    /// The messages the upstream must be sent (answers to its requests), in order, each with
    /// what became of its question; taken once.
    pub fn take_for_upstream(&mut self) -> Vec<(&'static str, Vec<u8>)> {
        std::mem::take(&mut self.to_upstream)
    }

    fn declares(&self, capability: &str) -> bool {
        let Some(d) = &self.declared else {
            return false;
        };
        serde_json::from_str::<std::collections::HashMap<&str, &RawValue>>(d)
            .is_ok_and(|m| m.contains_key(capability))
    }

    fn send(&mut self, outcome: &'static str, id: &RawValue, answer: ir::Reply) {
        self.to_upstream.push((outcome, answer.to(id)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn id(s: &str) -> OwnedId {
        jsonrpc::parse(format!(r#"{{"jsonrpc":"2.0","id":{s},"method":"x"}}"#).as_bytes())
            .expect("parse")
            .owned_id()
            .expect("id")
    }

    fn asker(declared: &str, answers: &[(&str, &str)]) -> Asker {
        let answers = answers
            .iter()
            .map(|(m, r)| Answered {
                method: (*m).into(),
                result: RawValue::from_string((*r).into()).expect("json"),
            })
            .collect();
        Asker::new(
            id(r#""c-1""#),
            (!declared.is_empty()).then(|| declared.to_owned()),
            answers,
            Box::new(|s: &AskState| Some(serde_json::to_string(s).expect("json"))),
        )
    }

    fn request(id: u32, method: &str) -> Vec<u8> {
        format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{{"q":{id}}}}}"#)
            .into_bytes()
    }

    fn sent(a: &mut Asker) -> Vec<Value> {
        a.take_for_upstream()
            .iter()
            .map(|(_, b)| serde_json::from_slice(b).expect("json"))
            .collect()
    }

    #[test]
    fn the_first_unanswered_question_is_asked_of_the_client() {
        let mut a = asker(r#"{"elicitation":{}}"#, &[]);
        let note = br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{}}"#;
        assert_eq!(a.hear(note), Heard::Pass);
        let Heard::Answer(answer) = a.hear(&request(0, "elicitation/create")) else {
            panic!("asked")
        };
        let v: Value = serde_json::from_slice(&answer).expect("json");
        assert_eq!(v["id"], "c-1");
        assert_eq!(v["result"]["resultType"], "input_required");
        let asked = &v["result"]["inputRequests"]["mcpgw.ask.0"];
        assert_eq!(asked["method"], "elicitation/create");
        assert_eq!(asked["params"]["q"], 0);
        let state: AskState =
            serde_json::from_str(v["result"]["requestState"].as_str().expect("state"))
                .expect("state");
        assert_eq!(state.asking, "elicitation/create");
        assert!(state.answers.is_empty());
        // The upstream's question is withdrawn so that its call ends.
        assert_eq!(
            sent(&mut a),
            vec![serde_json::json!({"jsonrpc":"2.0","id":0,"result":{"action":"cancel"}})]
        );
        // Then nothing more reaches the client; later questions are withdrawn too.
        assert_eq!(a.hear(note), Heard::Drop);
        assert_eq!(a.hear(&request(1, "elicitation/create")), Heard::Drop);
        assert_eq!(sent(&mut a)[0]["id"], 1);
        let result = br#"{"jsonrpc":"2.0","id":"c-1","result":{}}"#;
        assert_eq!(a.hear(result), Heard::Drop);
    }

    #[test]
    fn a_retry_answers_the_questions_it_has_answers_for_in_order() {
        let mut a = asker(
            r#"{"elicitation":{},"sampling":{}}"#,
            &[
                (
                    "elicitation/create",
                    r#"{"action":"accept","content":{"n":1}}"#,
                ),
                ("sampling/createMessage", r#"{"role":"assistant"}"#),
            ],
        );
        assert_eq!(a.hear(&request(5, "elicitation/create")), Heard::Drop);
        assert_eq!(a.hear(&request(6, "sampling/createMessage")), Heard::Drop);
        assert_eq!(
            sent(&mut a),
            vec![
                serde_json::json!({"jsonrpc":"2.0","id":5,"result":{"action":"accept","content":{"n":1}}}),
                serde_json::json!({"jsonrpc":"2.0","id":6,"result":{"role":"assistant"}}),
            ]
        );
        let result = br#"{"jsonrpc":"2.0","id":"c-1","result":{"content":[]}}"#;
        assert_eq!(a.hear(result), Heard::Pass);
    }

    #[test]
    fn a_different_question_drops_the_answers_from_there_on() {
        let mut a = asker(
            r#"{"elicitation":{},"roots":{}}"#,
            &[
                ("elicitation/create", r#"{"action":"accept"}"#),
                ("elicitation/create", r#"{"action":"decline"}"#),
            ],
        );
        assert_eq!(a.hear(&request(1, "elicitation/create")), Heard::Drop);
        let Heard::Answer(answer) = a.hear(&request(2, "roots/list")) else {
            panic!("asked")
        };
        let v: Value = serde_json::from_slice(&answer).expect("json");
        assert!(
            v["result"]["inputRequests"]["mcpgw.ask.1"].is_object(),
            "{v}"
        );
        let state: AskState =
            serde_json::from_str(v["result"]["requestState"].as_str().expect("s")).expect("s");
        assert_eq!(state.answers.len(), 1);
        assert_eq!(state.asking, "roots/list");
    }

    #[test]
    fn what_the_client_cannot_be_asked_is_answered_to_the_upstream_and_the_call_goes_on() {
        for (declared, method, code) in [
            ("", "elicitation/create", Some(-32601)),
            (r#"{"sampling":{}}"#, "roots/list", Some(-32601)),
            (r#"{"roots":{}}"#, "custom/ask", Some(-32601)),
            ("", "ping", None),
        ] {
            let mut a = asker(declared, &[]);
            assert_eq!(a.hear(&request(3, method)), Heard::Drop, "{method}");
            let s = sent(&mut a);
            assert_eq!(s.len(), 1);
            assert_eq!(s[0]["id"], 3);
            assert_eq!(s[0]["error"]["code"].as_i64(), code, "{method}");
            let note = br#"{"jsonrpc":"2.0","method":"notifications/message","params":{}}"#;
            assert_eq!(a.hear(note), Heard::Pass, "the call goes on");
        }
    }

    #[test]
    fn a_state_that_cannot_be_signed_is_an_error_to_the_client() {
        let mut a = Asker::new(
            id("7"),
            Some(r#"{"roots":{}}"#.into()),
            Vec::new(),
            Box::new(|_: &AskState| None),
        );
        let Heard::Answer(answer) = a.hear(&request(0, "roots/list")) else {
            panic!("answered")
        };
        let v: Value = serde_json::from_slice(&answer).expect("json");
        assert_eq!(v["id"], 7);
        assert_eq!(v["error"]["code"], -32603);
    }
}
