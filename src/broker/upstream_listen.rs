//! A 2026-07-28 server has no GET stream: it tells list changes on `subscriptions/listen`
//! streams (a server that speaks both generations may tell a change it makes for a 2026-07-28
//! request there only). Discovery keeps one open to each server it keeps a 2026-07-28 view of
//! (or that speaks only that revision) and re-reads the server as soon as it says a list changed,
//! so the gateway's own clients hear of it within a round trip rather than at the next interval.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::catalog::ServerLists;
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

/// Whether an SSE event's data is a `*/list_changed` notification.
pub(super) fn is_list_changed(data: &str) -> bool {
    let Ok(msg) = serde_json::from_str::<Value>(data) else {
        return false;
    };
    matches!(
        msg.get("method").and_then(Value::as_str),
        Some(
            method::TOOLS_LIST_CHANGED
                | method::PROMPTS_LIST_CHANGED
                | method::RESOURCES_LIST_CHANGED
        )
    )
}

/// Starts listening to `server`; `changed` is notified on each list change it tells.
pub(super) fn start(
    server: Arc<Server>,
    client: Arc<UpstreamClient>,
    credential: Option<String>,
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
        sse::each_event(resp, |data| {
            if is_list_changed(&data) {
                changed.notify_one();
            }
            true
        })
        .await;
    }))
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
            assert_eq!(is_list_changed(data), want, "{data}");
        }
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
