//! The fixture's `subscriptions/listen` (2026-07-28, SEP-2575): an SSE stream that says first
//! which of the requested list changes it will tell (`notifications/subscriptions/acknowledged`),
//! then tells those as they happen (the `test_trigger_*` tools of [`super::diagnostics`]), each
//! stamped with the subscription id (the request's JSON-RPC id). A filter that names `taskIds`
//! (the Tasks extension, SEP-2663) is acknowledged with those of the caller's tasks
//! ([`super::tasks::Tasks::listened`]), whose status changes then come as `notifications/tasks`.

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

/// The task ids acknowledged and their status changes (task id, `DetailedTask`).
pub(super) type TaskChanges = (Vec<String>, broadcast::Receiver<(String, Value)>);

/// The next status change of one of `ids`; pending forever without tasks.
async fn next_task(tasks: &mut Option<TaskChanges>) -> Option<Value> {
    let Some((ids, rx)) = tasks else {
        return std::future::pending().await;
    };
    loop {
        match rx.recv().await {
            Ok((id, task)) if ids.contains(&id) => return Some(task),
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => {
                *tasks = None;
                return None;
            }
        }
    }
}

/// The stream for the `subscriptions/listen` request `id` with filter `requested`; `tasks`: the
/// task ids it acknowledges and their changes.
pub(super) fn stream(
    changes: broadcast::Receiver<&'static str>,
    tasks: Option<TaskChanges>,
    id: &Value,
    requested: &Value,
) -> Response {
    let kinds = honored(requested);
    let meta = json!({SUBSCRIPTION_ID: id});
    let mut filter: Map<String, Value> = kinds
        .iter()
        .map(|(k, _)| ((*k).to_owned(), Value::Bool(true)))
        .collect();
    if let Some((ids, _)) = &tasks {
        filter.insert("taskIds".into(), json!(ids));
    }
    let ack = event(
        &json!({"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged",
        "params": {"notifications": filter, "_meta": meta}}),
    );
    struct State {
        first: Option<Bytes>,
        changes: broadcast::Receiver<&'static str>,
        tasks: Option<TaskChanges>,
        kinds: Vec<(&'static str, &'static str)>,
        meta: Value,
    }
    let start = State {
        first: Some(ack),
        changes,
        tasks,
        kinds,
        meta,
    };
    let body = futures_util::stream::unfold(start, |mut s| async move {
        if let Some(b) = s.first.take() {
            return Some((Ok::<_, Infallible>(b), s));
        }
        loop {
            tokio::select! {
                change = s.changes.recv() => match change {
                    Ok(n) if s.kinds.iter().any(|(_, k)| *k == n) => {
                        let b = event(&json!({"jsonrpc": "2.0", "method": n,
                            "params": {"_meta": s.meta}}));
                        return Some((Ok(b), s));
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                Some(mut task) = next_task(&mut s.tasks) => {
                    task["_meta"] = s.meta.clone();
                    let b = event(&json!({"jsonrpc": "2.0", "method": "notifications/tasks",
                        "params": task}));
                    return Some((Ok(b), s));
                }
            }
        }
    });
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
