//! A 2026-07-28 client's `subscriptions/listen` (SEP-2575): the broker answers it itself with an
//! SSE stream that acknowledges what it will tell, then tells it: the aggregated lists' changes
//! the client opted in to ([`super::notifications::Honored`]) and, for the task ids it names in
//! `notifications.taskIds`, those tasks' status notifications from their servers
//! ([`super::task_listen`]). Asking for task ids without declaring the Tasks extension in the
//! request's `_meta` is -32021 (HTTP 400), as the extension says; a malformed `taskIds` is -32602.

use axum::response::Response;
use serde_json::value::RawValue;
use serde_json::Value;

use super::{notifications, task_listen, Broker};
use crate::auth::Caller;
use crate::mcp::{code, tasks};
use crate::reply::Reject;

/// The answer to a `subscriptions/listen` with JSON-RPC id `id`.
pub(super) async fn answer(
    b: &Broker,
    caller: &Caller,
    authorization: Option<&str>,
    virtual_server: Option<&str>,
    id: &RawValue,
    params: Option<&RawValue>,
) -> Response {
    let requested = params
        .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
        .and_then(|p| p.get("notifications").cloned())
        .unwrap_or_default();
    let honored = notifications::Honored::of(&requested);
    let task_ids = match task_listen::requested(&requested) {
        Ok(ids) => ids,
        Err(message) => {
            return Reject::new(400, code::INVALID_PARAMS, message, Some(id.into())).into_response()
        }
    };
    if task_ids.is_empty() {
        return super::mcp_endpoint::sse_response(super::notifications::until_closing(
            b,
            notifications::listen(b.catalog.clone(), id.get(), honored, None),
        ));
    }
    if !tasks::declares_extension(params.map(serde_json::value::RawValue::get)) {
        let r = Reject::new(
            400,
            tasks::MISSING_REQUIRED_CLIENT_CAPABILITY,
            format!(
                "notifications.taskIds needs the client capability extensions[{:?}] in params._meta",
                tasks::EXTENSION
            ),
            Some(id.into()),
        );
        return r.with_data(tasks::required_capabilities()).into_response();
    }
    let subscription: Value = serde_json::from_str(id.get()).unwrap_or(Value::Null);
    let relay = task_listen::open(
        b,
        caller,
        authorization,
        virtual_server,
        &task_ids,
        subscription,
    )
    .await;
    let readers = relay.readers;
    let stream = notifications::listen(
        b.catalog.clone(),
        id.get(),
        honored,
        Some((relay.acked, relay.updates)),
    );
    // The upstream streams end with the client's: the readers go when this stream is dropped.
    let stream = futures_util::StreamExt::map(stream, move |event| {
        let _ = &readers;
        event
    });
    super::mcp_endpoint::sse_response(super::notifications::until_closing(b, stream))
}
