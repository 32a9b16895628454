//! Task status notifications (the Tasks extension, SEP-2663) through the gateway (real Envoy +
//! mcp-router) to 2026-07-28 clients: a client that created a task at our conformance fixture
//! asks for its notifications on the gateway's `subscriptions/listen` (`notifications.taskIds`,
//! the tagged id it got) and receives `notifications/tasks` with that tagged id and its own
//! subscription id; another caller (another `Authorization`) naming the same id is not told
//! about it (the fixture binds tasks to the credential that created them and the gateway listens
//! with each caller's own); asking without declaring the extension is -32021.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::common::{
    content_type, final_message, start_gateway, start_replicas, Gateway, Upstream,
};
use crate::conformance::start_upstream;

const MODERN: &str = "2026-07-28";
/// How long any one awaited message may take (a bound, not an assertion).
const WAIT: Duration = Duration::from_secs(20);

fn envelope() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": {"name": "task-notes", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {
            "extensions": {"io.modelcontextprotocol/tasks": {}}},
    })
}

/// A 2026-07-28 POST as `bearer`, with the routing headers the revision requires.
async fn post(
    http: &reqwest::Client,
    url: &str,
    bearer: &str,
    body: &Value,
    mcp_name: Option<&str>,
) -> reqwest::Response {
    let mut req = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", body["method"].as_str().unwrap_or(""))
        .header("authorization", format!("Bearer {bearer}"));
    if let Some(n) = mcp_name {
        req = req.header("mcp-name", n);
    }
    req.json(body).send().await.expect("post")
}

/// The JSON-RPC answer of a request (JSON or one SSE event).
async fn answer(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let ct = content_type(resp.headers());
    let text = resp.text().await.expect("body");
    (status, final_message(&text, &ct))
}

/// The messages of an open SSE stream, one at a time.
struct Events {
    body: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: String,
    seen: Vec<Value>,
}

impl Events {
    fn new(resp: reqwest::Response) -> Events {
        Events {
            body: resp.bytes_stream().boxed(),
            buf: String::new(),
            seen: Vec::new(),
        }
    }

    /// The next message (an event's `data`), waiting at most [`WAIT`].
    async fn next(&mut self, what: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let event: String = self.buf.drain(..end + 2).collect();
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                let data = data.join("\n");
                if let Ok(v) = serde_json::from_str::<Value>(&data) {
                    self.seen.push(v.clone());
                    return v;
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "waiting for {what}: nothing within {WAIT:?}; seen {:?}",
                        self.seen
                    )
                })
                .unwrap_or_else(|| panic!("waiting for {what}: stream ended; seen {:?}", self.seen))
                .expect("chunk");
            self.buf
                .push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n"));
        }
    }

    /// Messages until one with `method` (at most 50), returned with those before it.
    async fn until(&mut self, method: &str) -> (Value, Vec<Value>) {
        let mut before = Vec::new();
        for _ in 0..50 {
            let m = self.next(method).await;
            if m["method"] == method {
                return (m, before);
            }
            before.push(m);
        }
        panic!("no {method} in 50 messages: {before:?}");
    }
}

async fn listen(
    http: &reqwest::Client,
    url: &str,
    bearer: &str,
    id: Value,
    notifications: Value,
) -> Events {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "subscriptions/listen",
        "params": {"notifications": notifications, "_meta": envelope()}});
    let resp = post(http, url, bearer, &body, None).await;
    assert_eq!(resp.status(), 200, "listen as {bearer}");
    assert!(
        content_type(resp.headers()).starts_with("text/event-stream"),
        "{:?}",
        resp.headers()
    );
    Events::new(resp)
}

/// `bearer` calls `confirm_delete`, which answers with a task that waits for its input: the
/// task's (tagged) id.
async fn create_task(http: &reqwest::Client, url: &str, bearer: &str, file: &str) -> String {
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "confirm_delete", "arguments": {"filename": file}, "_meta": envelope()}});
    let (status, created) =
        answer(post(http, url, bearer, &call, Some("confirm_delete")).await).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["result"]["status"], "input_required", "{created}");
    created["result"]["taskId"]
        .as_str()
        .unwrap_or_else(|| panic!("no task: {created}"))
        .to_owned()
}

/// `bearer` gives the task its input: it works, then completes.
async fn confirm_task(http: &reqwest::Client, url: &str, bearer: &str, task_id: &str) {
    let update = json!({"jsonrpc": "2.0", "id": 3, "method": "tasks/update", "params": {
        "taskId": task_id, "_meta": envelope(),
        "inputResponses": {"confirm": {"action": "accept", "content": {"confirm": true}}}}});
    let (status, updated) = answer(post(http, url, bearer, &update, Some(task_id)).await).await;
    assert_eq!(status, 200, "{updated}");
    assert!(updated.get("error").is_none(), "{updated}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_status_notification_reaches_the_client_that_created_it_and_no_other() {
    let (_fixture, port) = start_upstream().await;
    let g = start_gateway(
        "task-notifications",
        &[Upstream::new("tasks", "", port)],
        &[],
    )
    .await;
    g.wait_discovered(Duration::from_secs(30)).await;
    alice_is_told_and_bob_is_not(&g).await;
}

/// The same with two replicas that Envoy balances round robin: the create, the listens and the
/// update land on either, and no state is shared between them (no Redis).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_status_notifications_need_no_shared_state_between_replicas() {
    let (_fixture, port) = start_upstream().await;
    let g = start_replicas(
        "task-notifications-replicas",
        &[Upstream::new("tasks", "", port)],
        &[],
        2,
    )
    .await;
    for p in &g.broker_ports {
        g.wait_discovered_on(*p, Duration::from_secs(30)).await;
    }
    alice_is_told_and_bob_is_not(&g).await;
}

async fn alice_is_told_and_bob_is_not(g: &Gateway) {
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let url = g.url();

    // Alice creates a task that waits for her input.
    let task_id = create_task(&http, &url, "alice", "a.txt").await;
    assert!(
        task_id.starts_with("mcpgw."),
        "the task id is tagged: {task_id}"
    );

    // Asking for task notifications without declaring the extension: -32021.
    let undeclared = json!({"jsonrpc": "2.0", "id": 2, "method": "subscriptions/listen",
        "params": {"notifications": {"taskIds": [task_id]}, "_meta": {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {}}}});
    let (status, refused) = answer(post(&http, &url, "alice", &undeclared, None).await).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["code"], -32021, "{refused}");

    // Alice listens for her task; Bob names the same id (and tool list changes, a barrier).
    let mut alice = listen(
        &http,
        &url,
        "alice",
        json!("alice-sub"),
        json!({"taskIds": [task_id]}),
    )
    .await;
    let ack = alice.next("alice's acknowledgement").await;
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    assert_eq!(
        ack["params"]["notifications"]["taskIds"],
        json!([task_id]),
        "{ack}"
    );
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "alice-sub"
    );
    let mut bob = listen(
        &http,
        &url,
        "bob",
        json!(77),
        json!({"taskIds": [task_id], "toolsListChanged": true}),
    )
    .await;
    let ack = bob.next("bob's acknowledgement").await;
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    assert_eq!(
        ack["params"]["notifications"]["taskIds"],
        json!([]),
        "not bob's task: {ack}"
    );
    assert_eq!(
        ack["params"]["notifications"]["toolsListChanged"], true,
        "{ack}"
    );

    // Alice answers; the task works, then completes, and she is told each time.
    confirm_task(&http, &url, "alice", &task_id).await;
    let mut statuses = Vec::new();
    while statuses.last() != Some(&"completed".to_owned()) {
        let (n, before) = alice.until("notifications/tasks").await;
        assert!(
            before.is_empty(),
            "only task notifications asked for: {before:?}"
        );
        assert_eq!(
            n["params"]["taskId"],
            json!(task_id),
            "tagged as everywhere: {n}"
        );
        assert_eq!(
            n["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], "alice-sub",
            "{n}"
        );
        let s = n["params"]["status"].as_str().unwrap_or("").to_owned();
        if s == "completed" {
            assert!(n["params"]["result"]["content"].is_array(), "{n}");
        }
        statuses.push(s);
        assert!(statuses.len() <= 3, "{statuses:?}");
    }
    assert_eq!(statuses, ["working", "completed"]);

    // Bob's stream: a tool list change comes, no task notification before it.
    let trigger = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {
        "name": "test_trigger_tool_change", "arguments": {}, "_meta": envelope()}});
    let (status, triggered) = answer(
        post(
            &http,
            &url,
            "bob",
            &trigger,
            Some("test_trigger_tool_change"),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{triggered}");
    let (_, before) = bob.until("notifications/tools/list_changed").await;
    assert!(
        before.iter().all(|m| m["method"] != "notifications/tasks"),
        "bob was told of alice's task: {before:?}"
    );

    // Bob cannot read it either (the fixture binds it to alice's credential).
    let get = json!({"jsonrpc": "2.0", "id": 5, "method": "tasks/get", "params": {
        "taskId": task_id, "_meta": envelope()}});
    let (_, got) = answer(post(&http, &url, "bob", &get, Some(&task_id)).await).await;
    assert_eq!(got["error"]["code"], -32602, "{got}");
}

/// A 2025-11-25 client that declared `tasks`: the upstream session made for its call opens its
/// GET stream (a client that declared nothing opens none), `tasks` is not declared upstream, and
/// a `notifications/tasks/status` the server sends there reaches the client's GET stream with its
/// task id tagged with the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2025_task_status_notification_on_the_upstream_get_stream_reaches_the_client_tagged() {
    use crate::common::fixture::Fixture;
    use crate::common::Client;

    let fx = Fixture::start(&["echo"]).await;
    let g = start_gateway(
        "task-status-2025",
        &[Upstream::new("test/fixture", "fx_", fx.port)],
        &[],
    )
    .await;
    g.wait_discovered(Duration::from_secs(30)).await;
    let session_of = |r: &crate::common::Reply| {
        r.headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

    // A client that declared nothing: its call opens no upstream GET stream.
    let mut idle = Client::new(&g.url());
    idle.initialize().await;
    let streams_before =
        fx.send_on_streams(&json!({"jsonrpc": "2.0", "method": "notifications/ping"}));
    let r = idle.call_tool(1, "fx_echo", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        fx.send_on_streams(&json!({"jsonrpc": "2.0", "method": "notifications/ping"})),
        streams_before,
        "an idle session opened an upstream GET stream"
    );

    // A client that declared tasks.
    let mut c = Client::new(&g.url());
    let r = c
        .request(
            json!(0),
            "initialize",
            json!({"protocolVersion": "2025-11-25",
                "capabilities": {"tasks": {"list": {}, "cancel": {}}},
                "clientInfo": {"name": "task-notes", "version": "1"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    c.session = session_of(&r);
    assert!(c.session.is_some(), "no session: {}", r.text);
    assert_eq!(c.post_raw(initialized, &[]).await.status, 202);
    let get = c
        .http
        .get(g.url())
        .header("accept", "text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .header("mcp-session-id", c.session.clone().unwrap_or_default())
        .send()
        .await
        .expect("get");
    assert_eq!(get.status(), 200);
    let mut events = Events::new(get);
    let r = c.call_tool(2, "fx_echo", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let upstream_streams =
        fx.send_on_streams(&json!({"jsonrpc": "2.0", "method": "notifications/ping"}));
    assert_eq!(
        upstream_streams,
        streams_before + 1,
        "the tasks client's upstream session opened its GET stream"
    );
    let declared_upstream: Vec<Value> = fx
        .state
        .seen
        .lock()
        .expect("lock")
        .iter()
        .filter(|s| s.method == "initialize")
        .filter_map(|s| serde_json::from_slice::<Value>(&s.body).ok())
        .map(|b| b["params"]["capabilities"].clone())
        .collect();
    assert!(
        declared_upstream.iter().all(|c| c.get("tasks").is_none()),
        "tasks is not declared upstream: {declared_upstream:?}"
    );

    // The server tells of a task's status on its GET stream.
    let status = json!({"jsonrpc": "2.0", "method": "notifications/tasks/status", "params": {
        "taskId": "t-9", "status": "completed", "createdAt": "2025-11-25T10:30:00Z",
        "lastUpdatedAt": "2025-11-25T10:50:00Z", "ttl": 60000}});
    assert_eq!(fx.send_on_streams(&status), upstream_streams);
    let (n, _) = events.until("notifications/tasks/status").await;
    let server_tag = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("test/fixture")
    };
    assert_eq!(
        n["params"]["taskId"],
        format!("mcpgw.{server_tag}.t-9"),
        "tagged with the server: {n}"
    );
    assert_eq!(n["params"]["status"], "completed", "{n}");
}

/// A TCP proxy to `to` on a port of its own whose open connections can be cut at once (new ones
/// are still let through): a server restart, or a network blip, as the gateway sees it.
struct CutProxy {
    port: u16,
    cut: tokio::sync::watch::Sender<u64>,
}

async fn cut_proxy(to: u16) -> CutProxy {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind the proxy");
    let port = listener.local_addr().expect("addr").port();
    let (cut, cuts) = tokio::sync::watch::channel(0u64);
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let mut cuts = cuts.clone();
            cuts.borrow_and_update();
            tokio::spawn(async move {
                let Ok(mut out) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut out) => {}
                    _ = cuts.changed() => {}
                }
            });
        }
    });
    CutProxy { port, cut }
}

/// The gateway's own listen stream to a task's server is cut under a client's listen: the
/// gateway opens it again (the client's stream goes on), and the task's next status change
/// reaches the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_listen_cut_under_the_client_is_opened_again() {
    let (_fixture, port) = start_upstream().await;
    let proxy = cut_proxy(port).await;
    let g = start_gateway(
        "task-notifications-reopen",
        &[Upstream::new("tasks", "", proxy.port)],
        &[],
    )
    .await;
    g.wait_discovered(Duration::from_secs(30)).await;
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let url = g.url();
    let task_id = create_task(&http, &url, "carol", "b.txt").await;
    let mut carol = listen(
        &http,
        &url,
        "carol",
        json!("carol-sub"),
        json!({"taskIds": [task_id]}),
    )
    .await;
    let ack = carol.next("carol's acknowledgement").await;
    assert_eq!(
        ack["params"]["notifications"]["taskIds"],
        json!([task_id]),
        "{ack}"
    );
    // Every connection to the server is cut: the gateway's listen to it among them.
    proxy.cut.send_modify(|n| *n += 1);
    g.router.wait_for_log("task listen reopened").await;
    confirm_task(&http, &url, "carol", &task_id).await;
    let (n, _) = carol.until("notifications/tasks").await;
    assert_eq!(n["params"]["taskId"], json!(task_id), "{n}");
    assert_eq!(
        n["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], "carol-sub",
        "{n}"
    );
}
