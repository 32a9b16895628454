//! A list read on an upstream session of its own, closed after: discovery's question of what a
//! client with every relayed capability is listed (`capable_view`), a session's own list of a
//! server whose tools vary with the client's capabilities, and a stateless client's per-user list
//! (`user_lists`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::config::Server;
use crate::mcp::{self, method};
use crate::upstream::{InitLimits, UpstreamClient, UpstreamError, Via};

/// Budget of each step (initialize, list) of [`tools`].
const STEP_TIMEOUT: Duration = Duration::from_secs(5);

/// Every page of `server`'s tools on an upstream session of its own that declares
/// `capabilities` (see [`UpstreamClient::initialize_for`]), closed after, each step bounded.
/// For a client's request (`limits`), the initialize waits for a slot of
/// `--max-concurrent-initializes` like the router's.
pub(super) async fn tools(
    server: &Arc<Server>,
    client: &Arc<UpstreamClient>,
    credential: Option<String>,
    capabilities: Option<&str>,
    limits: Option<&InitLimits>,
) -> Result<Vec<Value>, UpstreamError> {
    let initialize = client.initialize_for(
        server,
        &Via::Direct,
        credential.as_deref(),
        mcp::LATEST_VERSION,
        None,
        capabilities,
    );
    let ends = tokio::time::Instant::now() + STEP_TIMEOUT;
    let s = match limits {
        Some(l) => l.run(&server.name, ends, initialize).await,
        None => tokio::time::timeout_at(ends, initialize)
            .await
            .unwrap_or(Err(UpstreamError::Timeout)),
    }?;
    let _closing = s.session_id.clone().map(|id| Closing {
        server: server.clone(),
        client: client.clone(),
        id,
        credential: credential.clone(),
    });
    tokio::time::timeout(
        STEP_TIMEOUT,
        super::discovery::list_all(
            server,
            client,
            credential.as_deref(),
            &s,
            method::TOOLS_LIST,
            "tools",
        ),
    )
    .await
    .unwrap_or(Err(UpstreamError::Timeout))
}

/// Closes an upstream session (DELETE) when dropped, in a task of its own: whether the list
/// that used it ended, failed or was given up (a timeout, a client gone), the session does not
/// outlive it on the server.
struct Closing {
    server: Arc<Server>,
    client: Arc<UpstreamClient>,
    id: String,
    credential: Option<String>,
}

impl Drop for Closing {
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (server, client) = (self.server.clone(), self.client.clone());
        let (id, credential) = (std::mem::take(&mut self.id), self.credential.take());
        runtime.spawn(async move {
            client.close(&server, &id, credential.as_deref()).await;
        });
    }
}

/// `read` (one server's list for a client's request) within `budget`; a list that fails or
/// runs out adds nothing (logged), the rest of the answer stands.
pub(super) async fn or_nothing(
    server: &Server,
    what: &'static str,
    budget: Duration,
    read: impl Future<Output = Result<Vec<Value>, String>>,
) -> Vec<Value> {
    match tokio::time::timeout(budget, read).await {
        Ok(Ok(tools)) => tools,
        Ok(Err(e)) => {
            tracing::warn!(server = %server.name, error = %e, "{what} failed");
            Vec::new()
        }
        Err(_) => {
            tracing::warn!(server = %server.name, "{what} timed out");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::Notify;

    /// A 2025 server that lists `a`, and `b` too on a session whose client declared `roots`;
    /// its `tools/list` takes `list_ms` (and says when one starts); it counts the sessions
    /// closed (DELETE).
    async fn stub(list_ms: u64) -> (Arc<Server>, Arc<AtomicUsize>, Arc<Notify>) {
        use axum::response::IntoResponse;
        use axum::routing::post;
        let closed = Arc::new(AtomicUsize::new(0));
        let listing = Arc::new(Notify::new());
        let roots = Arc::new(std::sync::Mutex::new(
            std::collections::HashSet::<String>::new(),
        ));
        let next = Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new().route(
            "/mcp",
            post({
                let (roots, listing) = (roots.clone(), listing.clone());
                move |headers: axum::http::HeaderMap, body: String| {
                    let (roots, next, listing) = (roots.clone(), next.clone(), listing.clone());
                    async move {
                        let m: Value = serde_json::from_str(&body).unwrap_or_default();
                        let session = headers
                            .get("mcp-session-id")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        let reply = |result: Value| {
                            json!({"jsonrpc": "2.0", "id": m["id"], "result": result}).to_string()
                        };
                        match m["method"].as_str() {
                            Some("initialize") => {
                                let id = format!("s{}", next.fetch_add(1, Ordering::SeqCst));
                                if m["params"]["capabilities"].get("roots").is_some() {
                                    roots.lock().expect("lock").insert(id.clone());
                                }
                                let body = reply(json!({"protocolVersion": "2025-11-25",
                                    "capabilities": {"tools": {}},
                                    "serverInfo": {"name": "stub", "version": "1"}}));
                                (
                                    axum::http::StatusCode::OK,
                                    [
                                        ("content-type", "application/json"),
                                        ("mcp-session-id", id.as_str()),
                                    ],
                                    body,
                                )
                                    .into_response()
                            }
                            Some("tools/list") => {
                                listing.notify_one();
                                tokio::time::sleep(Duration::from_millis(list_ms)).await;
                                let mut tools =
                                    vec![json!({"name": "a", "inputSchema": {"type": "object"}})];
                                if roots.lock().expect("lock").contains(&session) {
                                    tools.push(
                                        json!({"name": "b", "inputSchema": {"type": "object"}}),
                                    );
                                }
                                (
                                    [("content-type", "application/json")],
                                    reply(json!({"tools": tools})),
                                )
                                    .into_response()
                            }
                            _ => axum::http::StatusCode::ACCEPTED.into_response(),
                        }
                    }
                }
            })
            .delete({
                let closed = closed.clone();
                move || {
                    closed.fetch_add(1, Ordering::SeqCst);
                    async { axum::http::StatusCode::OK }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let config = Config::from_yaml(&format!(
            "servers: [{{name: ns/stub, url: 'http://127.0.0.1:{port}/mcp', prefix: s_}}]"
        ))
        .expect("config");
        (config.servers[0].clone(), closed, listing)
    }

    async fn closes(closed: &AtomicUsize, want: usize) {
        for _ in 0..1000 {
            if closed.load(Ordering::SeqCst) >= want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(closed.load(Ordering::SeqCst), want, "sessions closed");
    }

    #[tokio::test]
    async fn a_list_on_a_session_of_its_own_declares_the_capabilities_and_closes_it() {
        let (server, closed, _) = stub(0).await;
        let client = Arc::new(UpstreamClient::new());
        let limits = crate::upstream::InitLimits::new(1);
        let names = |tools: Vec<Value>| -> Vec<String> {
            tools
                .iter()
                .filter_map(|t| t["name"].as_str().map(str::to_owned))
                .collect()
        };
        let plain = tools(&server, &client, None, None, None)
            .await
            .expect("list");
        assert_eq!(names(plain), ["a"]);
        closes(&closed, 1).await;
        let capable = tools(
            &server,
            &client,
            None,
            Some(r#"{"roots":{}}"#),
            Some(&limits),
        )
        .await
        .expect("list");
        assert_eq!(names(capable), ["a", "b"]);
        closes(&closed, 2).await;
        assert_eq!(limits.in_flight(&server.name), 0, "the slot is given back");
        // Discovery's ask: the capable list names a tool the usual one does not.
        let usual = vec![json!({"name": "a"})];
        assert!(
            super::super::capable_view::ask(&server, &client, None, &usual)
                .await
                .expect("ask")
        );
        closes(&closed, 3).await;
    }

    #[tokio::test]
    async fn a_list_given_up_still_closes_its_session() {
        let (server, closed, listing) = stub(60_000).await;
        let client = Arc::new(UpstreamClient::new());
        // Given up (the future dropped) once the server is answering the list.
        tokio::select! {
            _ = tools(&server, &client, None, None, None) => panic!("the list took a minute"),
            () = listing.notified() => {}
        }
        closes(&closed, 1).await;
    }
}
