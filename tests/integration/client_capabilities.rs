//! A server that lists some tools only to clients that declare some capability (the reference
//! server, server-everything: `get-roots-list` with `roots`, `trigger-sampling-request` with
//! `sampling`, `trigger-elicitation-request` with `elicitation`, `trigger-url-elicitation` with
//! its `url` mode), through the real Envoy: each 2025 session lists what the server would list to
//! that client directly.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::common::{
    config_yaml, launch, log_dir, start_everything, start_gateway, Client, Gateway, Launch, Proc,
    Upstream,
};

/// The `ev_` tools a client declaring `capabilities` lists through the gateway, and directly.
async fn listed(
    gateway: &str,
    direct: &str,
    capabilities: Value,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut out = Vec::new();
    for (url, prefix) in [(gateway, ""), (direct, "ev_")] {
        let mut c = Client::new(url);
        c.initialize_with(capabilities.clone()).await;
        let l = c.request(json!(1), "tools/list", json!({})).await;
        assert_eq!(l.status, 200, "tools/list: {}", l.text);
        out.push(
            l.json["result"]["tools"]
                .as_array()
                .unwrap_or_else(|| panic!("tools: {}", l.text))
                .iter()
                .filter_map(|t| t["name"].as_str())
                .map(|n| format!("{prefix}{n}"))
                .filter(|n| n.starts_with("ev_"))
                .collect(),
        );
    }
    let direct = out.pop().expect("direct");
    (out.pop().expect("gateway"), direct)
}

/// server-everything, and the gateway in front of it (prefix `ev_`).
async fn everything_behind_the_gateway(test: &str) -> (Proc, u16, Gateway) {
    let logs = log_dir(test);
    let (ev, ev_port) = start_everything(&logs).await;
    let g = start_gateway(
        test,
        &[Upstream::new("mcp-test/everything", "ev_", ev_port)],
        &[],
    )
    .await;
    (ev, ev_port, g)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_session_lists_the_tools_the_server_lists_to_its_client() {
    let (_ev, ev_port, g) = everything_behind_the_gateway("client-capabilities").await;
    let direct = format!("http://127.0.0.1:{ev_port}/mcp");
    let conditional = [
        "ev_get-roots-list",
        "ev_trigger-sampling-request",
        "ev_trigger-elicitation-request",
        "ev_trigger-url-elicitation",
    ];
    // (declared capabilities, the conditional tools that client sees)
    for (capabilities, sees) in [
        (json!({}), &[][..]),
        (json!({"roots": {}}), &["ev_get-roots-list"][..]),
        (
            json!({"sampling": {}, "elicitation": {}}),
            &[
                "ev_trigger-sampling-request",
                "ev_trigger-elicitation-request",
            ][..],
        ),
        (
            json!({"sampling": {}, "elicitation": {"form": {}, "url": {}}, "roots": {"listChanged": true}}),
            &conditional[..],
        ),
        // Capabilities the gateway does not relay: as without any.
        (json!({"experimental": {"x": {}}}), &[][..]),
        (json!({"tasks": {}}), &[][..]),
    ] {
        let (through, directly) = listed(&g.url(), &direct, capabilities.clone()).await;
        for name in conditional {
            assert_eq!(
                through.contains(name),
                sees.contains(&name),
                "{name} for a client declaring {capabilities}: {through:?}"
            );
        }
        assert_eq!(through, directly, "a client declaring {capabilities}");
        assert!(through.contains("ev_echo"), "{through:?}");
    }
}

/// A client that declared `roots` lists its tools and calls `get-roots-list`: the server asks
/// the client for its roots on its upstream session's own GET stream, the gateway relays the
/// request to the client's GET stream, the client answers, and the call ends with its roots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_listed_for_a_capability_works_through_the_gateway() {
    let (_ev, _, g) = everything_behind_the_gateway("client-capabilities-call").await;
    roots_asked_through(&g.url()).await;
}

/// The same with server-everything as a `userSpecificList` server, whose list the broker fetches
/// on the upstream session it makes for the client's session (which the calls then reuse): the
/// broker opens that session's GET stream as the router does for its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_specific_servers_session_made_by_the_broker_relays_its_requests() {
    let logs = log_dir("client-capabilities-user-list");
    let (_ev, ev_port) = start_everything(&logs).await;
    let up = Upstream::new("mcp-test/everything", "ev_", ev_port);
    let config = config_yaml(std::slice::from_ref(&up)).replace(
        "    prefix: \"ev_\"\n",
        "    prefix: \"ev_\"\n    userSpecificList: true\n",
    );
    assert!(config.contains("userSpecificList"), "{config}");
    let g = launch(
        "client-capabilities-user-list",
        &[up],
        Launch {
            config: Some(config),
            wait_discovered: false,
            ..Launch::default()
        },
    )
    .await;
    roots_asked_through(&g.url()).await;
}

async fn roots_asked_through(url: &str) {
    let mut c = Client::new(url);
    c.initialize_with(json!({"roots": {}})).await;
    let session = c.session.clone().expect("session");
    let l = c.request(json!(1), "tools/list", json!({})).await;
    assert!(l.text.contains("ev_get-roots-list"), "{}", l.text);

    // The client's GET stream: every roots/list that comes on it is answered.
    let mut events = reqwest::Client::new()
        .get(url)
        .header("accept", "text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .header("mcp-session-id", &session)
        .send()
        .await
        .expect("event stream");
    assert_eq!(events.status(), 200);
    let c = std::sync::Arc::new(c);
    let answering = {
        let c = c.clone();
        tokio::spawn(async move {
            let mut text = String::new();
            let mut answered = 0;
            while let Ok(Some(chunk)) = events.chunk().await {
                text.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = text.find("\n\n") {
                    let event: String = text.drain(..end + 2).collect();
                    let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) else {
                        continue;
                    };
                    let Ok(m) = serde_json::from_str::<Value>(data) else {
                        continue;
                    };
                    if m["method"] == "roots/list" {
                        let r = c
                            .post_raw(
                                serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": m["id"], "result": {"roots": [{"uri": "file:///work", "name": "work"}]}}))
                                    .expect("encode"),
                                &[],
                            )
                            .await;
                        assert_eq!(r.status, 202, "the answer is taken: {}", r.text);
                        answered += 1;
                    }
                }
            }
            answered
        })
    };
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        c.call_tool(2, "ev_get-roots-list", json!({})),
    )
    .await
    .expect("the call ends: the server's roots/list reached the client and its answer the server");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["id"], 2, "{}", r.text);
    assert!(
        r.json["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("file:///work")),
        "the call ends with the client's roots: {}",
        r.text
    );
    answering.abort();
}

/// A stateless (2026-07-28) client declares its capabilities in each request's `_meta`: its
/// `tools/list` through the gateway names the tools server-everything lists to a client with
/// those capabilities (as the 2025 sessions above get them), and says `cacheScope: private` when
/// it does. The official Python SDK as such a client (answering sampling, elicitation and roots)
/// then calls them: what the server asks within a call reaches it as an input-required result;
/// what the server asks outside a call (server-everything's `roots/list`, on its upstream
/// session's GET stream) cannot reach such a client and is answered at once, with an error the
/// server logs (not left to the server's 60 s timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateless_client_lists_and_calls_the_tools_its_capabilities_add() {
    let (ev, ev_port, g) = everything_behind_the_gateway("client-capabilities-stateless").await;
    let direct = format!("http://127.0.0.1:{ev_port}/mcp");
    let client = Client::new(&g.url());
    for capabilities in [
        json!({}),
        json!({"roots": {}}),
        json!({"sampling": {}, "elicitation": {}}),
        json!({"sampling": {}, "elicitation": {"form": {}, "url": {}}, "roots": {"listChanged": true}}),
        json!({"experimental": {"x": {}}}),
    ] {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": capabilities.clone()}}});
        let l = client
            .post_raw(
                serde_json::to_vec(&body).expect("json"),
                &[
                    ("mcp-protocol-version", "2026-07-28"),
                    ("mcp-method", "tools/list"),
                ],
            )
            .await;
        assert_eq!(l.status, 200, "tools/list: {}", l.text);
        let through: BTreeSet<String> = l.json["result"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("tools: {}", l.text))
            .iter()
            .filter_map(|t| t["name"].as_str().map(str::to_owned))
            .collect();
        // What a 2025 session declaring the same gets from the server itself.
        let (_, directly) = listed(&g.url(), &direct, capabilities.clone()).await;
        assert_eq!(through, directly, "a client declaring {capabilities}");
        let scope = if through.contains("ev_get-roots-list")
            || through.contains("ev_trigger-sampling-request")
        {
            "private"
        } else {
            "public"
        };
        assert_eq!(l.json["result"]["cacheScope"], scope, "{capabilities}");
    }
    // The list read for some capabilities is kept while the server's usual list stays the
    // same: the same list asked again makes the server open a session for the direct client
    // only, not for the gateway's read.
    let opened = || {
        std::fs::read_to_string(&ev.log)
            .unwrap_or_default()
            .matches("Session initialized")
            .count()
    };
    let every = json!({"sampling": {}, "elicitation": {"form": {}, "url": {}}, "roots": {"listChanged": true}});
    let first = listed(&g.url(), &direct, every.clone()).await;
    let before = opened();
    assert_eq!(listed(&g.url(), &direct, every).await, first);
    assert_eq!(opened(), before + 1, "the gateway's read was kept");

    let url = g.url();
    let calls = json!([
        ["ev_trigger-sampling-request", {"prompt": "hi"}],
        ["ev_trigger-elicitation-request", {}],
        ["ev_get-roots-list", {}],
    ]);
    let out = tokio::task::spawn_blocking(move || {
        crate::common::python_json("asks_client.py", &[&url, &calls.to_string()])
    })
    .await
    .expect("client");
    assert_eq!(out["version"], "2026-07-28", "{out}");
    let tools = out["tools"].as_array().expect("tools");
    for name in [
        "ev_get-roots-list",
        "ev_trigger-sampling-request",
        "ev_trigger-elicitation-request",
    ] {
        assert!(tools.contains(&json!(name)), "{name}: {out}");
    }
    let text = |name: &str| out[name].to_string();
    assert!(
        text("ev_trigger-sampling-request").contains("Hello from the LLM"),
        "{out}"
    );
    assert!(
        text("ev_trigger-elicitation-request").contains("ada@example.com"),
        "{out}"
    );
    assert!(
        text("ev_get-roots-list").contains("no roots are currently configured"),
        "{out}"
    );
    assert_eq!(
        out["asked"],
        json!(["sampling/createMessage", "elicitation/create"]),
        "{out}"
    );
    // The server logs the answer its roots/list got.
    ev.wait_for_log("roots/list outside a call is not relayed to a 2026-07-28 client")
        .await;
}
