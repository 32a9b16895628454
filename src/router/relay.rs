//! Server-to-client traffic of routed calls, through a gateway that serves many upstreams behind
//! one session.
//!
//! An upstream may send the client requests (`sampling/createMessage`, `elicitation/create`,
//! `roots/list`, `ping`) on a call's SSE stream, and it numbers its SSE events so that a client
//! can resume a stream with `Last-Event-ID`. Ids are the upstream's own, and several upstreams
//! use the same ones, so the gateway tags them on the way out with the server they come from
//! (`mcpgw.<server, base64url>.<id>`; see [`super::sse_tags`]) and routes by the tag on the way
//! back: the client's JSON-RPC response to such a request goes to the upstream session that asked
//! (with the upstream's id restored), and a GET that resumes a tagged event goes to the upstream
//! that sent it. Tags carry no secret: a client can only address its own upstream sessions.
//! Pure: no I/O.

use std::ops::Range;
use std::sync::Arc;

use super::facts::{RequestFacts, MCP_PATH};
use crate::config::{Config, Server};
use crate::jsonrpc::{Message, OwnedId};

pub(super) use crate::mcp::tag::TAG;
pub use crate::mcp::tag::{tag, tag_prefix, untag};

/// A client's response to an upstream's request, to send back to that upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct RelayedResponse {
    pub server: Arc<Server>,
    /// Where the (tagged) id stands in the body.
    pub id_span: Range<usize>,
    /// The upstream's own id, as JSON text, to put back in its place.
    pub upstream_id: String,
    /// The id as the client sent it.
    pub id: OwnedId,
}

/// Whether a JSON text is an id an MCP peer may use: a string or an integer.
fn is_id(raw: &str) -> bool {
    match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(serde_json::Value::String(_)) => true,
        Ok(serde_json::Value::Number(n)) => n.is_i64() || n.is_u64(),
        _ => false,
    }
}

/// A client response whose id the gateway tagged goes back to the upstream that asked; `None`
/// leaves it to the broker (which acknowledges it).
pub fn relayed_response(config: &Config, msg: &Message<'_>) -> Option<RelayedResponse> {
    let id = msg.id?;
    let text: String = serde_json::from_str(id.get()).ok()?;
    let (server, upstream_id) = untag(&text)?;
    if !is_id(upstream_id) {
        return None;
    }
    let server = config.server(&server).filter(|s| s.enabled)?.clone();
    Some(RelayedResponse {
        server,
        id_span: msg.id_span()?,
        upstream_id: upstream_id.to_owned(),
        id: msg.owned_id()?,
    })
}

/// A GET that resumes an upstream's SSE stream after one of its events.
#[derive(Debug, Clone, PartialEq)]
pub struct Resume {
    pub server: Arc<Server>,
    /// The event id as the upstream knows it.
    pub last_event_id: String,
}

/// A GET on the MCP endpoint with a tagged `Last-Event-ID` resumes that upstream's stream.
pub fn resume(config: &Config, facts: &RequestFacts) -> Option<Resume> {
    if facts.method != http::Method::GET || facts.path != MCP_PATH {
        return None;
    }
    let (server, original) = untag(facts.last_event_id.as_deref()?)?;
    let server = config.server(&server).filter(|s| s.enabled)?.clone();
    Some(Resume {
        server,
        last_event_id: original.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc;

    fn config() -> Config {
        Config::from_yaml(
            r#"
servers:
  - {name: ns/ev, url: 'http://ev:3001/mcp', prefix: ev_}
  - {name: ns/off, url: 'http://off/mcp', prefix: off_, state: Disabled}
"#,
        )
        .expect("config")
    }

    #[test]
    fn tags_round_trip_and_nothing_else_untags() {
        for (server, value) in [
            ("ns/ev", "1"),
            ("ns/ev", "\"a.b\""),
            ("a.b/c.d", "17-4"),
            ("ns/ev", ""),
        ] {
            let t = tag(server, value);
            assert!(t.starts_with("mcpgw."), "{t}");
            assert_eq!(untag(&t), Some((server.to_owned(), value)), "{t}");
        }
        for s in [
            "",
            "1",
            "mcpgw.",
            "mcpgw.!!.1",
            "mcpgw.bnMvZXY",
            "xmcpgw.bnMvZXY.1",
            "mcpgw..1",
        ] {
            assert_eq!(untag(s), None, "{s}");
        }
    }

    #[test]
    fn responses_with_a_tag_go_back_to_their_upstream() {
        let c = config();
        let ev = tag("ns/ev", "");
        let off = tag("ns/off", "");
        let gone = tag("ns/gone", "");
        for (body, expect) in [
            (
                format!(r#"{{"jsonrpc":"2.0","id":"{ev}7","result":{{}}}}"#),
                Some(("ns/ev", "7")),
            ),
            (
                format!(
                    r#"{{"jsonrpc":"2.0","id":"{ev}\"x\"","error":{{"code":1,"message":"m"}}}}"#
                ),
                Some(("ns/ev", "\"x\"")),
            ),
            // Not an id once untagged, a disabled or unknown server, or no tag at all.
            (
                format!(r#"{{"jsonrpc":"2.0","id":"{ev}1.5","result":{{}}}}"#),
                None,
            ),
            (
                format!(r#"{{"jsonrpc":"2.0","id":"{ev}{{}}","result":{{}}}}"#),
                None,
            ),
            (
                format!(r#"{{"jsonrpc":"2.0","id":"{off}1","result":{{}}}}"#),
                None,
            ),
            (
                format!(r#"{{"jsonrpc":"2.0","id":"{gone}1","result":{{}}}}"#),
                None,
            ),
            (r#"{"jsonrpc":"2.0","id":7,"result":{}}"#.to_owned(), None),
            (r#"{"jsonrpc":"2.0","id":"7","result":{}}"#.to_owned(), None),
        ] {
            let msg = jsonrpc::parse(body.as_bytes()).expect(&body);
            match (relayed_response(&c, &msg), expect) {
                (Some(r), Some((server, id))) => {
                    assert_eq!(&*r.server.name, server, "{body}");
                    assert_eq!(r.upstream_id, id, "{body}");
                    assert_eq!(&body[r.id_span.clone()], r.id.get(), "{body}");
                }
                (None, None) => {}
                (d, e) => panic!("{body}: expected {e:?}, got {d:?}"),
            }
        }
    }

    #[test]
    fn a_get_with_a_tagged_last_event_id_resumes_at_its_upstream() {
        let c = config();
        let facts = |method: &str, path: &str, last: Option<String>| RequestFacts {
            method: method.parse().expect("method"),
            path: path.into(),
            last_event_id: last,
            ..Default::default()
        };
        let tagged = Some(tag("ns/ev", "3-1"));
        let r = resume(&c, &facts("GET", "/mcp", tagged.clone())).expect("resume");
        assert_eq!(
            (&*r.server.name, r.last_event_id.as_str()),
            ("ns/ev", "3-1")
        );
        for f in [
            facts("GET", "/mcp", Some("12".into())),
            facts("GET", "/mcp", None),
            facts("POST", "/mcp", tagged.clone()),
            facts("GET", "/other", tagged),
            facts("GET", "/mcp", Some(tag("ns/off", "1"))),
        ] {
            assert_eq!(resume(&c, &f), None, "{f:?}");
        }
    }
}
