//! A 2026-07-28 server has no GET stream: it tells list changes on `subscriptions/listen`
//! streams (a server that speaks both generations may tell a change it makes for a 2026-07-28
//! request there only). Discovery keeps one open to each server it keeps a 2026-07-28 view of
//! (or that speaks only that revision) and re-reads the server as soon as it says a list changed,
//! so the gateway's own clients hear of it within a round trip rather than at the next interval.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::catalog::{ServerLists, Told};
use crate::config::Server;
use crate::mcp::{self, method};
use crate::upstream::{sse, UpstreamClient};

/// The listening task; ends (aborted) when dropped, with the discovery task that holds it.
pub(super) struct Listening(JoinHandle<()>);

impl Drop for Listening {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Whether discovery should listen to a server with these lists: it speaks 2026-07-28.
pub(super) fn wanted(lists: &ServerLists) -> bool {
    lists.modern.is_some() || mcp::is_modern(lists.protocol_version.as_deref())
}

/// Which list a `*/list_changed` notification says changed (0 tools, 1 prompts, 2 resources).
fn list_changed(data: &str) -> Option<usize> {
    let msg = serde_json::from_str::<Value>(data).ok()?;
    match msg.get("method").and_then(Value::as_str)? {
        method::TOOLS_LIST_CHANGED => Some(0),
        method::PROMPTS_LIST_CHANGED => Some(1),
        method::RESOURCES_LIST_CHANGED => Some(2),
        _ => None,
    }
}

/// The list changes a server has told discovery of (on its GET or its listen stream), counted
/// per list; discovery copies them into the server's [`Told`] so that the gateway's clients are
/// told too, even when the lists read after it look the same.
#[derive(Debug, Default)]
pub(super) struct Heard([AtomicU64; 3]);

impl Heard {
    /// Counts `data` if it is a list change; whether it was.
    pub(super) fn hear(&self, data: &str) -> bool {
        let Some(list) = list_changed(data) else {
            return false;
        };
        self.0[list].fetch_add(1, Ordering::Relaxed);
        true
    }

    pub(super) fn told(&self) -> Told {
        let n = |i: usize| self.0[i].load(Ordering::Relaxed);
        Told {
            tools: n(0),
            prompts: n(1),
            resources: n(2),
        }
    }
}

/// Starts listening to `server`; `changed` is notified on each list change it tells.
pub(super) fn start(
    server: Arc<Server>,
    client: Arc<UpstreamClient>,
    credential: Option<String>,
    heard: Arc<Heard>,
    changed: Arc<Notify>,
) -> Listening {
    Listening(tokio::spawn(async move {
        let resp = match client.listen_modern(&server, credential.as_deref()).await {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(server = %server.name, error = %e, "no subscriptions/listen stream");
                return;
            }
        };
        each_message(resp, |data: String| {
            if heard.hear(&data) {
                changed.notify_one();
            }
            true
        })
        .await;
    }))
}

/// Calls `f` with each message of a `subscriptions/listen` stream (SSE, or JSON messages one per
/// line under a JSON content type), until it returns false or the stream ends.
pub(super) async fn each_message(resp: reqwest::Response, f: impl FnMut(String) -> bool) {
    let json_lines = mcp::is_json_content_type(
        resp.headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    );
    if json_lines {
        each_line(resp, f).await;
    } else {
        sse::each_event(resp, f).await;
    }
}

/// Longest line kept of a stream of JSON lines; a longer one is skipped to its end.
const MAX_LINE: usize = 1 << 20;

/// Calls `f` with each line of a stream of newline-delimited JSON messages (blank lines
/// skipped), until it returns false or the stream ends.
async fn each_line(resp: reqwest::Response, mut f: impl FnMut(String) -> bool) {
    use futures_util::StreamExt;
    let mut lines = Lines::default();
    let mut body = resp.bytes_stream();
    while let Some(Ok(chunk)) = body.next().await {
        for line in lines.push(&chunk) {
            if !f(line) {
                return;
            }
        }
    }
}

/// Splits chunks of a byte stream into lines.
#[derive(Default)]
struct Lines {
    buf: Vec<u8>,
    /// Inside a line longer than [`MAX_LINE`]: dropped until its end.
    skipping: bool,
}

impl Lines {
    fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for part in chunk.split_inclusive(|b| *b == b'\n') {
            let ends = part.ends_with(b"\n");
            if !self.skipping {
                self.buf.extend_from_slice(part);
            }
            if ends {
                if !self.skipping {
                    let line = String::from_utf8_lossy(&self.buf);
                    let line = line.trim();
                    if !line.is_empty() {
                        out.push(line.to_owned());
                    }
                }
                self.buf.clear();
                self.skipping = false;
            } else if self.buf.len() > MAX_LINE {
                self.buf.clear();
                self.skipping = true;
            }
        }
        out
    }
}

impl Listening {
    pub(super) fn is_finished(&self) -> bool {
        self.0.is_finished()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_changes_are_told_from_other_messages() {
        for (data, want) in [
            (
                r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#,
                true,
            ),
            (
                r#"{"jsonrpc":"2.0","method":"notifications/prompts/list_changed","params":{"_meta":{"io.modelcontextprotocol/subscriptionId":7}}}"#,
                true,
            ),
            (
                r#"{"jsonrpc":"2.0","method":"notifications/resources/list_changed"}"#,
                true,
            ),
            (
                r#"{"jsonrpc":"2.0","method":"notifications/subscriptions/acknowledged"}"#,
                false,
            ),
            (
                r#"{"jsonrpc":"2.0","method":"notifications/resources/updated"}"#,
                false,
            ),
            ("", false),
            ("not json", false),
        ] {
            assert_eq!(list_changed(data).is_some(), want, "{data}");
        }
    }

    #[test]
    fn json_lines_are_read_across_chunks_and_counted_per_list() {
        let mut l = Lines::default();
        let mut got = l.push(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/subscriptions/acknowledged\"}\n{\"a\"");
        got.extend(l.push(b":1}\r\n\n"));
        got.extend(
            l.push(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n"),
        );
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[1], "{\"a\":1}");
        let heard = Heard::default();
        let told: Vec<bool> = got.iter().map(|m| heard.hear(m)).collect();
        assert_eq!(told, [false, false, true]);
        heard.hear(r#"{"method":"notifications/prompts/list_changed"}"#);
        heard.hear(r#"{"method":"notifications/tools/list_changed"}"#);
        assert_eq!(
            heard.told(),
            Told {
                tools: 2,
                prompts: 1,
                resources: 0
            }
        );
        // A line past the limit is dropped, the next one read.
        let mut l = Lines::default();
        assert!(l.push(&vec![b'x'; MAX_LINE + 2]).is_empty());
        assert!(l.push(b"yyy\nok\n") == ["ok"]);
    }

    #[test]
    fn only_servers_that_speak_2026_07_28_are_listened_to() {
        let mut l = ServerLists {
            protocol_version: Some("2025-11-25".into()),
            ..Default::default()
        };
        assert!(!wanted(&l));
        l.modern = Some(Box::default());
        assert!(wanted(&l));
        let only_modern = ServerLists {
            protocol_version: Some(mcp::MODERN_VERSION.into()),
            ..Default::default()
        };
        assert!(wanted(&only_modern));
    }
}
