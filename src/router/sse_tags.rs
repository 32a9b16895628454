//! Tags an upstream's SSE stream, chunk by chunk as Envoy streams it, with the server it comes
//! from (see [`super::relay`]): event ids (`id: 5` → `id: mcpgw.<server>.5`), the ids of the
//! requests the upstream sends the client, and the `requestId` of its `notifications/cancelled`.
//! Every other byte passes unchanged. Pure.
//!
//! Events are rewritten whole: the bytes of an event that has not ended yet are held back until
//! its blank line arrives (or the stream ends). An event longer than [`MAX_HELD`] turns tagging
//! off for the rest of the stream, which then passes unchanged.

use super::relay;
use crate::jsonrpc::{self, Kind};
use crate::mcp::method;

/// The most bytes held back waiting for the end of an event.
pub const MAX_HELD: usize = 4 * 1024 * 1024;

/// The tagging state of one SSE response.
#[derive(Debug)]
pub struct SseTagger {
    prefix: String,
    held: Vec<u8>,
    passthrough: bool,
    /// Results get `"resultType":"complete"` (a stateless client of a session-era upstream).
    mark_complete: bool,
    /// A tool that declares an MCP App: its result's `ui://` URI gets this prefix.
    ui_prefix: Option<std::sync::Arc<str>>,
    /// A stateless client of a session-era upstream is asked the upstream's questions through
    /// an input-required result ([`super::asks`]).
    asker: Option<super::asks::Asker>,
    /// Task ids in results and task notifications get the server's tag ([`super::tasks`]).
    tag_tasks: bool,
}

impl SseTagger {
    pub fn new(server: &str) -> SseTagger {
        SseTagger {
            prefix: relay::tag_prefix(server),
            held: Vec::new(),
            passthrough: false,
            mark_complete: false,
            ui_prefix: None,
            asker: None,
            tag_tasks: false,
        }
    }

    /// Also tags the task ids of results and task notifications (`router::tasks`).
    pub fn tagging_tasks(mut self, on: bool) -> SseTagger {
        self.tag_tasks = on;
        self
    }

    /// Asks the client the upstream's questions through input-required results (see
    /// [`super::asks`]); `None` leaves the upstream's requests to be tagged and relayed.
    pub fn asking(mut self, asker: Option<super::asks::Asker>) -> SseTagger {
        self.asker = asker;
        self
    }

    /// What the upstream must be sent for the questions heard so far (see [`super::asks`]).
    pub fn take_for_upstream(&mut self) -> Vec<(&'static str, Vec<u8>)> {
        self.asker
            .as_mut()
            .map(super::asks::Asker::take_for_upstream)
            .unwrap_or_default()
    }

    /// Also gives a result's MCP App `ui://` URI the server's prefix ([`crate::ui_resource`]).
    pub fn prefixing_ui(mut self, prefix: Option<std::sync::Arc<str>>) -> SseTagger {
        self.ui_prefix = prefix;
        self
    }

    /// Also marks results complete for a stateless client ([`super::bridge`]).
    pub fn marking_complete(mut self, on: bool) -> SseTagger {
        self.mark_complete = on;
        self
    }

    /// The bytes to send for this chunk: the events it completes, tagged. At the end of the
    /// stream, whatever is held goes out too.
    pub fn push(&mut self, chunk: &[u8], end_of_stream: bool) -> Vec<u8> {
        if self.passthrough {
            return chunk.to_vec();
        }
        self.held.extend_from_slice(chunk);
        let mut out = Vec::with_capacity(self.held.len() + 64);
        let mut event_start = 0;
        let mut pos = 0;
        // Lines end with LF (a CR before it belongs to the terminator); a blank line ends an event.
        while let Some(nl) = self.held[pos..].iter().position(|&b| b == b'\n') {
            let line_end = pos + nl + 1;
            let content = trim_cr(&self.held[pos..pos + nl]);
            if content.is_empty() {
                self.rewrite_event(event_start, line_end, &mut out);
                event_start = line_end;
            }
            pos = line_end;
        }
        if end_of_stream {
            let end = self.held.len();
            self.rewrite_event(event_start, end, &mut out);
            self.held.clear();
        } else {
            self.held.drain(..event_start);
            if self.held.len() > MAX_HELD {
                // Too long to hold: give up tagging and let everything through.
                self.passthrough = true;
                out.append(&mut self.held);
            }
        }
        out
    }

    /// Appends the event in `held[start..end]` to `out`, tagged.
    fn rewrite_event(&mut self, start: usize, end: usize, out: &mut Vec<u8>) {
        let event = &self.held[start..end];
        let lines = split_lines(event);
        let mut data: Vec<&[u8]> = Vec::new();
        for (content, _) in &lines {
            if let Some(v) = field(content, b"data") {
                data.push(v);
            }
        }
        let data = data.join(&b'\n');
        if let Some(asker) = &mut self.asker {
            match asker.hear(&data) {
                super::asks::Heard::Pass => {}
                super::asks::Heard::Drop => return,
                super::asks::Heard::Answer(answer) => {
                    out.extend_from_slice(b"event: message\ndata: ");
                    out.extend_from_slice(&answer);
                    out.extend_from_slice(b"\n\n");
                    return;
                }
            }
        }
        let new_data = self.tag_message(&data);
        let mut data_written = false;
        for (content, terminator) in lines {
            if let Some(v) = field(content, b"id") {
                if !v.is_empty() && !v.starts_with(b"mcpgw.") {
                    out.extend_from_slice(b"id: ");
                    out.extend_from_slice(self.prefix.as_bytes());
                    out.extend_from_slice(v);
                    out.extend_from_slice(terminator);
                    continue;
                }
            }
            if let (Some(new), Some(_)) = (&new_data, field(content, b"data")) {
                if !data_written {
                    for part in new.split(|&b| b == b'\n') {
                        out.extend_from_slice(b"data: ");
                        out.extend_from_slice(part);
                        out.extend_from_slice(if terminator.is_empty() {
                            b"\n"
                        } else {
                            terminator
                        });
                    }
                    data_written = true;
                }
                continue;
            }
            out.extend_from_slice(content);
            out.extend_from_slice(terminator);
        }
    }

    /// The message with its request id (or the `requestId` it cancels) tagged; `None` when
    /// nothing in it needs a tag.
    fn tag_message(&self, data: &[u8]) -> Option<Vec<u8>> {
        let msg = jsonrpc::parse(data).ok()?;
        if msg.kind == Kind::Response {
            return super::bridge::rewrite_result(
                data,
                self.mark_complete,
                self.ui_prefix.as_deref(),
                self.tag_tasks.then_some(self.prefix.as_str()),
            );
        }
        if self.tag_tasks && msg.kind == Kind::Notification {
            if let Some(tagged) = super::tasks::tag_notification(data, &self.prefix) {
                return Some(tagged);
            }
        }
        let span = match msg.kind {
            Kind::Request => msg.id_span()?,
            Kind::Notification if msg.method.as_deref() == Some(method::CANCELLED) => {
                msg.param_span("requestId")?
            }
            _ => return None,
        };
        let raw = std::str::from_utf8(&data[span.clone()]).ok()?;
        if !(raw.starts_with('"')
            || raw.starts_with('-')
            || raw.starts_with(|c: char| c.is_ascii_digit()))
        {
            return None;
        }
        let tagged = format!("{}{raw}", self.prefix);
        Some(jsonrpc::splice_string(data, span, &tagged))
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The lines of an event: (content, terminator) with the terminator as it was (`\n`, `\r\n` or
/// nothing for a last line without one).
fn split_lines(event: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut lines = Vec::new();
    let mut rest = event;
    while !rest.is_empty() {
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..=i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        let content_len = if line.ends_with(b"\r\n") {
            line.len() - 2
        } else if line.ends_with(b"\n") {
            line.len() - 1
        } else {
            line.len()
        };
        lines.push((&line[..content_len], &line[content_len..]));
        rest = next;
    }
    lines
}

/// The value of an SSE field line `name: value` (one space after the colon is not part of it).
fn field<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let rest = line.strip_prefix(name)?;
    let value = rest.strip_prefix(b":")?;
    Some(value.strip_prefix(b" ").unwrap_or(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tagged(v: &str) -> String {
        relay::tag("ns/ev", v)
    }

    fn run(chunks: &[&str]) -> String {
        let mut t = SseTagger::new("ns/ev");
        let mut out = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            out.extend(t.push(c.as_bytes(), i + 1 == chunks.len()));
        }
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn ids_and_requests_are_tagged_and_the_rest_kept() {
        let cases: Vec<(Vec<&str>, String)> = vec![
            // Priming event, a notification, a request, the response.
            (
                vec!["id: 1-0\nretry: 500\ndata: \n\n", "id: 1-1\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}\n\n"],
                format!("id: {}\nretry: 500\ndata: \n\nid: {}\nevent: message\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{{\"progress\":1}}}}\n\n", tagged("1-0"), tagged("1-1")),
            ),
            (
                vec!["data: {\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"elicitation/create\",\"params\":{}}\n\n"],
                format!("data: {{\"jsonrpc\":\"2.0\",\"id\":\"{}7\",\"method\":\"elicitation/create\",\"params\":{{}}}}\n\n", tagged("")),
            ),
            // A string id is kept as its JSON text inside the tag.
            (
                vec!["data: {\"jsonrpc\":\"2.0\",\"id\":\"r1\",\"method\":\"roots/list\"}\r\n\r\n"],
                format!("data: {{\"jsonrpc\":\"2.0\",\"id\":\"{}\\\"r1\\\"\",\"method\":\"roots/list\"}}\r\n\r\n", tagged("")),
            ),
            // Responses are not tagged.
            (
                vec!["data: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}\n\n"],
                "data: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}\n\n".into(),
            ),
            // What the upstream cancels is tagged like its request was.
            (
                vec!["data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":7}}\n\n"],
                format!("data: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{{\"requestId\":\"{}7\"}}}}\n\n", tagged("")),
            ),
            // Split anywhere, even inside a line: the same bytes come out.
            (
                vec!["id: 4\nda", "ta: {\"jsonrpc\":\"2.0\",\"id\":1,", "\"method\":\"ping\"}\n", "\n: keep-alive\n\n"],
                format!("id: {}\ndata: {{\"jsonrpc\":\"2.0\",\"id\":\"{}1\",\"method\":\"ping\"}}\n\n: keep-alive\n\n", tagged("4"), tagged("")),
            ),
            // A message over several data lines.
            (
                vec!["data: {\"jsonrpc\":\"2.0\",\ndata: \"id\":2,\"method\":\"ping\"}\n\n"],
                format!("data: {{\"jsonrpc\":\"2.0\",\ndata: \"id\":\"{}2\",\"method\":\"ping\"}}\n\n", tagged("")),
            ),
            // Not JSON, an empty id, an already tagged id: unchanged; the tail goes out at the end.
            (
                vec!["data: hello\nid:\n\nid: mcpgw.x.1\n\ndata: {\"jsonrpc\""],
                "data: hello\nid:\n\nid: mcpgw.x.1\n\ndata: {\"jsonrpc\"".into(),
            ),
        ];
        for (chunks, expected) in cases {
            assert_eq!(run(&chunks), expected, "{chunks:?}");
        }
    }

    #[test]
    fn a_stateless_client_is_asked_what_the_upstream_asks_and_nothing_after() {
        let raw = serde_json::value::RawValue::from_string("\"c-9\"".into()).expect("id");
        let id = crate::jsonrpc::OwnedId::from(&*raw);
        let asker = super::super::asks::Asker::new(
            id,
            Some(r#"{"sampling":{}}"#.into()),
            Vec::new(),
            Box::new(|_: &crate::mcp::input_required::AskState| Some("signed".into())),
        );
        let mut t = SseTagger::new("ns/ev")
            .marking_complete(true)
            .asking(Some(asker));
        let progress =
            "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n";
        assert_eq!(t.push(progress.as_bytes(), false), progress.as_bytes());
        let out = t.push(
            b"id: 4\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"sampling/createMessage\",\"params\":{}}\n\n",
            false,
        );
        let out = String::from_utf8(out).expect("utf8");
        let msg: serde_json::Value = serde_json::from_str(
            out.strip_prefix("event: message\ndata: ")
                .and_then(|o| o.strip_suffix("\n\n"))
                .expect("one event"),
        )
        .expect("json");
        assert_eq!(msg["id"], "c-9");
        assert_eq!(msg["result"]["resultType"], "input_required");
        assert_eq!(msg["result"]["requestState"], "signed");
        assert_eq!(
            msg["result"]["inputRequests"]["mcpgw.ask.0"]["method"],
            "sampling/createMessage"
        );
        // The upstream's question is withdrawn (its call ends), and what it says after that is
        // for nobody.
        let sent = t.take_for_upstream();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, "asked");
        assert!(t
            .push(
                b"data: {\"jsonrpc\":\"2.0\",\"id\":\"c-9\",\"result\":{}}\n\n",
                true
            )
            .is_empty());
    }

    #[test]
    fn incomplete_events_are_held_until_their_end() {
        let mut t = SseTagger::new("ns/ev");
        assert_eq!(t.push(b"id: 1\ndata: x\n", false), b"");
        let out = t.push(b"\nid: 2\n", false);
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            format!("id: {}\ndata: x\n\n", tagged("1"))
        );
        let out = t.push(b"", true);
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            format!("id: {}\n", tagged("2"))
        );
    }

    #[test]
    fn an_event_too_long_to_hold_turns_tagging_off() {
        let mut t = SseTagger::new("ns/ev");
        let big = vec![b'x'; MAX_HELD + 1];
        let mut chunk = b"data: ".to_vec();
        chunk.extend_from_slice(&big);
        assert_eq!(t.push(&chunk, false).len(), chunk.len());
        assert_eq!(t.push(b"\n\nid: 1\n\n", false), b"\n\nid: 1\n\n");
    }
}
