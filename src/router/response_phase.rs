//! Whether a routed call needs the response-headers phase (a third ext_proc message), and what
//! Envoy does in its place when it does not.
//!
//! Each ext_proc message costs Envoy about 11 µs and the router about 7 µs per call here
//! (REFERENCE.md). With `--response-phase when-needed`, the router ends the ext_proc stream with
//! its answer to the request body when nothing in the answer needs it, and Envoy itself puts the
//! gateway session id on the response: the router hands it over as dynamic metadata
//! ([`NAMESPACE`]`:`[`SESSION_KEY`]) and the shipped Envoy configs copy it into `Mcp-Session-Id`
//! with `response_headers_to_add` (an empty value adds nothing and leaves the header as it is).
//!
//! The response phase is only known to be unneeded before the upstream answers for a call that
//! changes nothing in it: no CORS headers, no `resources/subscribe` (the router listens after a
//! 200), no result to mark complete for a stateless client, no app tool's result whose `ui://`
//! URI gets the server's prefix, no upstream session id to remove for
//! a client without a gateway session, and a server that has answered calls with JSON and never
//! with an SSE stream (whose ids the router tags); the router learns that from the answers that
//! did pass the response phase ([`AnswerKinds`]); and no caller's own credential (URL
//! elicitation), which an upstream 401 deletes. What such a call gives up, and why that is
//! acceptable only as an opt-in:
//! - an upstream that lost its session answers 404, which reaches the client as it is: the
//!   client starts a new gateway session (MCP's rule for a 404), which creates new upstream
//!   sessions, instead of being told to retry on the same one;
//! - a bare 5xx or 403 from the upstream (or Envoy's own 503 when the upstream cannot be
//!   reached) reaches the client as it is, not as a JSON-RPC error with the request's id;
//! - the audit line is written when the call is routed, with `status="-"`: the status is in
//!   Envoy's access log;
//! - a server that answers a call with SSE for the first time after JSON answers has that
//!   stream's ids untagged (server-to-client requests on it cannot be answered through the
//!   gateway) until the router notices: one call in [`RECHECK_EVERY`] to a JSON server passes
//!   the response phase anyway, and once one of them sees SSE every later call passes it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use envoy_types::pb::google::protobuf::{value::Kind, Struct, Value};

/// The dynamic metadata namespace the Envoy configs accept from the router
/// (`metadata_options.receiving_namespaces.untyped`).
pub const NAMESPACE: &str = "mcp-router";
/// The gateway session id for the response (`%DYNAMIC_METADATA(mcp-router:mcp-session-id)%`).
pub const SESSION_KEY: &str = "mcp-session-id";

/// `--response-phase`: when a routed call's ext_proc stream stays open for the response headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Mode {
    /// Every routed call (the seed's behaviour): three messages per call.
    #[default]
    Always,
    /// Only calls that need it (see the module docs): two messages for a plain call.
    WhenNeeded,
}

/// How a server has answered routed calls, as seen in the response phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Answers {
    /// Not seen yet.
    #[default]
    Unknown,
    /// JSON, never SSE.
    Json,
    /// At least once with an SSE stream: it may again.
    EventStream,
}

/// One call in this many to a server learnt to answer JSON passes the response phase anyway, so
/// that a server that starts answering with SSE is noticed (and its later streams tagged).
pub const RECHECK_EVERY: u64 = 32;

/// What the router has learned of each server's answers; cheap to read on every call.
#[derive(Debug, Default)]
pub struct AnswerKinds {
    by_server: RwLock<foldhash::HashMap<Arc<str>, Answers>>,
    /// Calls judged `Json`, for [`RECHECK_EVERY`].
    json_calls: AtomicU64,
}

impl AnswerKinds {
    /// How `server` answers, as far as a call's response phase is concerned: `Json` (the phase
    /// may be skipped) turns into `Unknown` for one call in [`RECHECK_EVERY`].
    pub fn get(&self, server: &str) -> Answers {
        let learnt = self.learnt(server);
        if learnt == Answers::Json
            && (self.json_calls.fetch_add(1, Ordering::Relaxed) + 1).is_multiple_of(RECHECK_EVERY)
        {
            return Answers::Unknown;
        }
        learnt
    }

    fn learnt(&self, server: &str) -> Answers {
        self.by_server
            .read()
            .map(|m| m.get(server).copied().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Records an answer of `server` to a call: `event_stream` or `json` from its content type
    /// (a 202 or an error page is neither and teaches nothing). SSE is remembered for good.
    pub fn learn(&self, server: &Arc<str>, event_stream: bool, json: bool) {
        let next = match (event_stream, json) {
            (true, _) => Answers::EventStream,
            (false, true) => Answers::Json,
            (false, false) => return,
        };
        let now = self.learnt(server);
        if now == next || now == Answers::EventStream {
            return;
        }
        if let Ok(mut m) = self.by_server.write() {
            let slot = m.entry(server.clone()).or_default();
            if *slot != Answers::EventStream {
                *slot = next;
            }
        }
    }
}

/// What decides whether a routed call needs the response phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    pub mode: Mode,
    /// A browser's request from an allowed origin: the answer needs CORS headers.
    pub cors: bool,
    /// `resources/subscribe`: the router listens for updates after a 200.
    pub subscribe: bool,
    /// A stateless client on a session-era upstream: results are marked complete.
    pub mark_complete: bool,
    /// A tool that declares an MCP App: its result's `ui://` URI gets the server's prefix.
    pub ui_app: bool,
    /// The answer may carry a task id, which gets the server's tag.
    pub tasks: bool,
    /// The client presented a gateway session id (which goes back on the answer).
    pub client_session: bool,
    /// The call goes over an upstream session id (which the answer may carry back).
    pub upstream_session: bool,
    /// The call carries a caller's own credential (URL elicitation): a 401 deletes it.
    pub user_credential: bool,
    pub answers: Answers,
}

/// Whether the call's ext_proc stream must stay open for the response headers. Pure.
pub fn needed(c: Call) -> bool {
    c.mode == Mode::Always
        || c.cors
        || c.subscribe
        || c.mark_complete
        || c.ui_app
        || c.tasks
        || c.user_credential
        // The upstream's session id must not reach a client that has none of the gateway's.
        || (c.upstream_session && !c.client_session)
        || c.answers != Answers::Json
}

/// The dynamic metadata that has Envoy put `gateway_session` on the response, as Envoy's types
/// hold it (`answer_wire` writes the same bytes by hand; its tests compare them with this).
pub fn session_metadata(gateway_session: &str) -> Struct {
    let string = |s: &str| Value {
        kind: Some(Kind::StringValue(s.to_owned())),
    };
    let mut fields = Struct::default();
    fields
        .fields
        .insert(SESSION_KEY.to_owned(), string(gateway_session));
    let mut namespaces = Struct::default();
    namespaces.fields.insert(
        NAMESPACE.to_owned(),
        Value {
            kind: Some(Kind::StructValue(fields)),
        },
    );
    namespaces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plain_call_to_a_json_server_skips_the_response_phase() {
        let plain = Call {
            mode: Mode::WhenNeeded,
            cors: false,
            subscribe: false,
            mark_complete: false,
            ui_app: false,
            tasks: false,
            client_session: true,
            upstream_session: true,
            user_credential: false,
            answers: Answers::Json,
        };
        // (the call, needs the response phase?)
        let cases = [
            (plain, false),
            (
                Call {
                    mode: Mode::Always,
                    ..plain
                },
                true,
            ),
            (
                Call {
                    cors: true,
                    ..plain
                },
                true,
            ),
            (
                Call {
                    subscribe: true,
                    ..plain
                },
                true,
            ),
            (
                Call {
                    tasks: true,
                    ..plain
                },
                true,
            ),
            (
                Call {
                    mark_complete: true,
                    ..plain
                },
                true,
            ),
            (
                Call {
                    ui_app: true,
                    ..plain
                },
                true,
            ),
            (
                Call {
                    client_session: false,
                    ..plain
                },
                true,
            ),
            (
                Call {
                    user_credential: true,
                    ..plain
                },
                true,
            ),
            // A stateless client on a stateless upstream: nothing to put back or take away.
            (
                Call {
                    client_session: false,
                    upstream_session: false,
                    ..plain
                },
                false,
            ),
            // A session-era client on a stateless upstream: its session id goes back.
            (
                Call {
                    upstream_session: false,
                    ..plain
                },
                false,
            ),
            (
                Call {
                    answers: Answers::Unknown,
                    ..plain
                },
                true,
            ),
            (
                Call {
                    answers: Answers::EventStream,
                    ..plain
                },
                true,
            ),
        ];
        for (i, (call, want)) in cases.into_iter().enumerate() {
            assert_eq!(needed(call), want, "case {i}: {call:?}");
        }
    }

    #[test]
    fn servers_are_json_until_they_answer_with_sse_once() {
        let kinds = AnswerKinds::default();
        let a: Arc<str> = "ns/a".into();
        assert_eq!(kinds.get("ns/a"), Answers::Unknown);
        // (event stream, json, then)
        for (sse, json, then) in [
            (false, false, Answers::Unknown),
            (false, true, Answers::Json),
            (false, false, Answers::Json),
            (true, false, Answers::EventStream),
            (false, true, Answers::EventStream),
        ] {
            kinds.learn(&a, sse, json);
            assert_eq!(kinds.get("ns/a"), then, "after sse={sse} json={json}");
        }
        assert_eq!(kinds.get("ns/b"), Answers::Unknown);
    }

    #[test]
    fn one_call_in_recheck_every_to_a_json_server_passes_the_response_phase() {
        let kinds = AnswerKinds::default();
        let a: Arc<str> = "ns/a".into();
        kinds.learn(&a, false, true);
        let seen: Vec<Answers> = (0..2 * RECHECK_EVERY).map(|_| kinds.get("ns/a")).collect();
        let rechecks = seen.iter().filter(|k| **k == Answers::Unknown).count();
        assert_eq!(rechecks, 2, "{seen:?}");
        assert_eq!(
            seen[0],
            Answers::Json,
            "the call right after learning skips it"
        );
        // A recheck that sees SSE makes every later call pass the response phase.
        kinds.learn(&a, true, false);
        assert!((0..RECHECK_EVERY).all(|_| kinds.get("ns/a") == Answers::EventStream));
    }

    #[test]
    fn the_session_goes_to_envoy_under_the_configured_namespace() {
        let m = session_metadata("gw-token");
        let Some(Kind::StructValue(s)) = &m.fields[NAMESPACE].kind else {
            panic!("a struct per namespace")
        };
        assert_eq!(
            s.fields[SESSION_KEY].kind,
            Some(Kind::StringValue("gw-token".into()))
        );
    }
}
