//! The fixture's `subscriptions/listen` (2026-07-28, SEP-2575): an SSE stream that says first
//! which of the requested list changes it will tell (`notifications/subscriptions/acknowledged`),
//! then tells those as they happen (the `test_trigger_*` tools of [`super::diagnostics`]), each
//! stamped with the subscription id (the request's JSON-RPC id).

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::response::Response;
use serde_json::{json, Map, Value};
use tokio::sync::broadcast;

const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
/// Filter key → the notification it asks for.
const KINDS: &[(&str, &str)] = &[
    ("toolsListChanged", "notifications/tools/list_changed"),
    ("promptsListChanged", "notifications/prompts/list_changed"),
    (
        "resourcesListChanged",
        "notifications/resources/list_changed",
    ),
];

/// The notifications of `requested` (the request's `notifications` filter) this stream tells.
fn honored(requested: &Value) -> Vec<(&'static str, &'static str)> {
    KINDS
        .iter()
        .copied()
        .filter(|(k, _)| requested.get(k).and_then(Value::as_bool) == Some(true))
        .collect()
}

fn event(message: &Value) -> Bytes {
    Bytes::from(format!("event: message\ndata: {message}\n\n"))
}

/// The stream for the `subscriptions/listen` request `id` with filter `requested`.
pub(super) fn stream(
    changes: broadcast::Receiver<&'static str>,
    id: &Value,
    requested: &Value,
) -> Response {
    let kinds = honored(requested);
    let meta = json!({SUBSCRIPTION_ID: id});
    let filter: Map<String, Value> = kinds
        .iter()
        .map(|(k, _)| ((*k).to_owned(), Value::Bool(true)))
        .collect();
    let ack = event(
        &json!({"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged",
        "params": {"notifications": filter, "_meta": meta}}),
    );
    let body = futures_util::stream::unfold(
        (Some(ack), changes, kinds, meta),
        |(first, mut rx, kinds, meta)| async move {
            if let Some(b) = first {
                return Some((Ok::<_, Infallible>(b), (None, rx, kinds, meta)));
            }
            loop {
                match rx.recv().await {
                    Ok(n) if kinds.iter().any(|(_, k)| *k == n) => {
                        let b = event(&json!({"jsonrpc": "2.0", "method": n,
                            "params": {"_meta": meta}}));
                        return Some((Ok(b), (None, rx, kinds, meta)));
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    super::sse(Body::from_stream(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_requested_list_changes_are_honored() {
        for (requested, want) in [
            (json!({}), vec![]),
            (json!({"toolsListChanged": true}), vec!["toolsListChanged"]),
            (
                json!({"promptsListChanged": true, "toolsListChanged": false, "x": true}),
                vec!["promptsListChanged"],
            ),
        ] {
            let got: Vec<&str> = honored(&requested).iter().map(|(k, _)| *k).collect();
            assert_eq!(got, want, "{requested}");
        }
    }
}
