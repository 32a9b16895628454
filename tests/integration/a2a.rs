//! The A2A passthrough (`--enable-a2a`) through the real Envoy: a request under `/a2a/{agent}`
//! keeps its own route (here the agent's virtual host) and reaches the agent with
//! `x-a2a-agent` from the path and `x-a2a-method` from the body (a known A2A method or
//! `other`), the client's own copies removed; a GET passes; a POST that is not a JSON-RPC
//! request is answered with a JSON-RPC error and never reaches the agent.

use serde_json::{json, Value};

use crate::common::fixture::{Fixture, Seen};
use crate::common::{start_gateway, Upstream};

fn a2a_seen(agent: &Fixture) -> Vec<Seen> {
    agent
        .state
        .seen
        .lock()
        .expect("lock")
        .iter()
        .filter(|s| s.method.starts_with("HTTP ") && s.method.contains("/a2a/"))
        .cloned()
        .collect()
}

fn values(s: &Seen, name: &str) -> Vec<String> {
    s.headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a2a_requests_are_labelled_for_policies_and_bad_bodies_refused() {
    let agent = Fixture::start(&["echo"]).await;
    let upstream = Upstream::new("test/agent", "ag_", agent.port);
    let host = upstream.hostname.clone();
    let g = start_gateway("a2a", &[upstream], &["--enable-a2a"]).await;
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let url = |p: &str| format!("http://127.0.0.1:{}{p}", g.port);
    let post = |path: &str, body: &'static str| {
        http.post(url(path))
            .header("host", &host)
            .header("content-type", "application/json")
            .header("x-a2a-agent", "spoofed")
            .header("x-a2a-method", "GetTask")
            .body(body)
    };

    for (path, body, agent_name, method) in [
        (
            "/a2a/billing/v1",
            r#"{"jsonrpc":"2.0","id":7,"method":"SendMessage","params":{"message":{}}}"#,
            "billing",
            "SendMessage",
        ),
        (
            "/a2a/travel",
            r#"{"jsonrpc":"2.0","id":"x","method":"message/send"}"#,
            "travel",
            "other",
        ),
    ] {
        let before = a2a_seen(&agent).len();
        let r = post(path, body).send().await.expect("post");
        assert_eq!(r.status(), 200);
        let reply: Value = r.json().await.expect("json");
        assert_eq!(reply["result"]["agent"], "fixture", "{reply}");
        let seen = a2a_seen(&agent);
        assert_eq!(seen.len(), before + 1);
        let s = seen.last().expect("seen");
        assert_eq!(s.method, format!("HTTP POST {path}"));
        assert_eq!(values(s, "x-a2a-agent"), [agent_name], "{path}");
        assert_eq!(values(s, "x-a2a-method"), [method], "{path}");
        // The body reaches the agent as the client sent it.
        assert_eq!(s.body, body.as_bytes());
    }

    // The agent card (a GET) passes, labelled with the agent, the client's method label gone.
    let r = http
        .get(url("/a2a/billing/.well-known/agent-card.json"))
        .header("host", &host)
        .header("x-a2a-method", "SendMessage")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    let s = a2a_seen(&agent).pop().expect("seen");
    assert_eq!(
        s.method,
        "HTTP GET /a2a/billing/.well-known/agent-card.json"
    );
    assert_eq!(values(&s, "x-a2a-agent"), ["billing"]);
    assert!(values(&s, "x-a2a-method").is_empty());

    // Bodies that are not a JSON-RPC request with a method never reach the agent.
    let before = a2a_seen(&agent).len();
    for (body, code) in [
        ("not json", -32700),
        ("", -32700),
        (r#"[{"method":"SendMessage"}]"#, -32700),
        (r#"{"jsonrpc":"2.0","id":3}"#, -32600),
    ] {
        let r = post("/a2a/billing", body).send().await.expect("post");
        assert_eq!(r.status(), 200, "{body:?}");
        let reply: Value = r.json().await.expect("json");
        assert_eq!(
            reply,
            json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": "invalid json-rpc request"}}),
            "{body:?}"
        );
    }
    assert_eq!(a2a_seen(&agent).len(), before);
}
