//! A server that lists some tools only to clients that declare some capability (the reference
//! server, server-everything: `get-roots-list` with `roots`, `trigger-sampling-request` with
//! `sampling`, `trigger-elicitation-request` with `elicitation`, `trigger-url-elicitation` with
//! its `url` mode), through the real Envoy: each 2025 session lists what the server would list to
//! that client directly.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::common::{log_dir, start_everything, start_gateway, Client, Upstream};

/// The `ev_` tools a client declaring `capabilities` lists through the gateway, and directly.
async fn listed(
    gateway: &str,
    direct: &str,
    capabilities: Value,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut out = Vec::new();
    for (url, prefix) in [(gateway, ""), (direct, "ev_")] {
        let mut c = Client::new(url);
        let r = c
            .request(
                json!(0),
                "initialize",
                json!({"protocolVersion": "2025-11-25", "capabilities": capabilities, "clientInfo": {"name": "test", "version": "1"}}),
            )
            .await;
        assert_eq!(r.status, 200, "initialize: {}", r.text);
        c.session = r
            .headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let n = c
            .post_raw(
                r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
                &[],
            )
            .await;
        assert_eq!(n.status, 202, "initialized: {}", n.text);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_session_lists_the_tools_the_server_lists_to_its_client() {
    let logs = log_dir("client-capabilities");
    let (_ev, ev_port) = start_everything(&logs).await;
    let g = start_gateway(
        "client-capabilities",
        &[Upstream::new("mcp-test/everything", "ev_", ev_port)],
        &[],
    )
    .await;
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
        // Not relayed (the gateway does not answer task-augmented requests): as without it.
        (json!({"experimental": {"x": {}}}), &[][..]),
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
