//! An incremental `text/event-stream` parser (the subset MCP uses: `event`, `data`, `id`).

/// One dispatched event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    pub event: Option<String>,
    pub data: String,
    pub id: Option<String>,
}

/// Feeds on chunks as they arrive; yields complete events.
#[derive(Debug, Default)]
pub struct Parser {
    buf: Vec<u8>,
    current: Event,
    has_data: bool,
}

/// An event stream line longer than this is refused (bounded memory).
pub const MAX_LINE: usize = 16 * 1024 * 1024;

/// The stream broke the format or a bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event stream line exceeds {MAX_LINE} bytes")]
pub struct LineTooLong;

impl Parser {
    /// Adds a chunk and returns the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Event>, LineTooLong> {
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(pos) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos;
            let mut line = &self.buf[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let line = String::from_utf8_lossy(line).into_owned();
            start = end + 1;
            self.line(&line, &mut events);
        }
        self.buf.drain(..start);
        if self.buf.len() > MAX_LINE {
            return Err(LineTooLong);
        }
        Ok(events)
    }

    fn line(&mut self, line: &str, events: &mut Vec<Event>) {
        if line.is_empty() {
            if self.has_data {
                events.push(std::mem::take(&mut self.current));
            } else {
                self.current = Event::default();
            }
            self.has_data = false;
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.current.event = Some(value.to_owned()),
            "id" => self.current.id = Some(value.to_owned()),
            _ => {}
        }
    }
}

/// Reads an HTTP response as an event stream until it ends or breaks, handing each event's
/// data to `f` (which returns `false` to stop).
pub async fn each_event(resp: reqwest::Response, mut f: impl FnMut(String) -> bool) {
    use futures_util::StreamExt;
    let mut parser = Parser::default();
    let mut body = resp.bytes_stream();
    while let Some(Ok(chunk)) = body.next().await {
        let Ok(events) = parser.push(&chunk) else {
            return;
        };
        for ev in events {
            if !f(ev.data) {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks() {
        let mut p = Parser::default();
        let mut all = Vec::new();
        for chunk in [
            &b"event: message\r\nid: 1\r\ndata: {\"a\""[..],
            b":1}\r\n\r\n: keep-alive\n\ndata: x\ndata: y\n",
            b"\n",
            b"data:nospace\n\n",
        ] {
            all.extend(p.push(chunk).expect("bounded"));
        }
        assert_eq!(
            all,
            vec![
                Event {
                    event: Some("message".into()),
                    data: "{\"a\":1}".into(),
                    id: Some("1".into())
                },
                Event {
                    event: None,
                    data: "x\ny".into(),
                    id: None
                },
                Event {
                    event: None,
                    data: "nospace".into(),
                    id: None
                },
            ]
        );
    }

    #[test]
    fn an_unending_line_is_refused() {
        let mut p = Parser::default();
        let chunk = vec![b'a'; MAX_LINE + 1];
        assert_eq!(p.push(&chunk), Err(LineTooLong));
    }
}
