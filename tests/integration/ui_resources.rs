//! `ui://` resources of MCP Apps through the real Envoy, federated as the seed does: listed
//! under `ui://<prefix><name>`, a tool's `_meta.ui.resourceUri` prefixed the same way (in the
//! list and in its results, JSON or SSE), and a
//! `resources/read` of the prefixed URI routed to its server with the prefix removed (in the
//! body and in `x-mcp-resourceuri`); other URIs keep their form.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::fixture::Fixture;
use crate::common::{start_gateway, Client, Upstream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_resources_are_listed_and_read_under_the_servers_prefix() {
    let fx = Fixture::start_listing(vec![
        json!({"name": "chart", "inputSchema": {"type": "object"},
               "_meta": {"ui": {"resourceUri": "ui://chart.html"}}}),
        json!({"name": "echo", "inputSchema": {"type": "object"}}),
    ])
    .await;
    *fx.state.resources.lock().expect("lock") = vec![
        json!({"uri": "ui://chart.html", "name": "chart app", "mimeType": "text/html;profile=mcp-app"}),
        json!({"uri": "file:///notes.txt", "name": "notes"}),
    ];
    let g = start_gateway(
        "ui-resources",
        &[Upstream::new("test/apps", "app_", fx.port)],
        &[],
    )
    .await;
    g.wait_discovered(Duration::from_secs(20)).await;
    let mut c = Client::new(&g.url());
    c.initialize().await;

    let r = c.request(json!(1), "resources/list", json!({})).await;
    let uris: Vec<&str> = r.json["result"]["resources"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", r.text))
        .iter()
        .filter_map(|x| x["uri"].as_str())
        .collect();
    assert_eq!(uris, ["ui://app_chart.html", "file:///notes.txt"]);

    let r = c.request(json!(2), "tools/list", json!({})).await;
    let chart = r.json["result"]["tools"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["name"] == "app_chart").cloned())
        .unwrap_or_else(|| panic!("{}", r.text));
    assert_eq!(chart["_meta"]["ui"]["resourceUri"], "ui://app_chart.html");

    // A call of the app's tool: the result names the resource by its prefixed URI, whether
    // the upstream answers with JSON or with an SSE stream; other tools' results are untouched.
    for sse in [false, true] {
        fx.state
            .sse_calls
            .store(sse, std::sync::atomic::Ordering::SeqCst);
        let r = c.call_tool(10, "app_chart", json!({})).await;
        assert_eq!(
            r.json["result"]["_meta"]["ui"]["resourceUri"], "ui://app_chart.html",
            "sse {sse}: {}",
            r.text
        );
        assert!(r.json["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("chart got")));
        let r = c.call_tool(11, "app_echo", json!({})).await;
        assert!(r.json["result"].get("_meta").is_none(), "{}", r.text);
    }

    // Read by the listed URI, and by one the server has not listed (found by its prefix).
    for (uri, upstream_uri) in [
        ("ui://app_chart.html", "ui://chart.html"),
        ("ui://app_other.html", "ui://other.html"),
        ("file:///notes.txt", "file:///notes.txt"),
    ] {
        let r = c
            .request(json!(3), "resources/read", json!({"uri": uri}))
            .await;
        assert_eq!(r.status, 200, "{uri}: {}", r.text);
        assert_eq!(
            r.json["result"]["contents"][0]["uri"], upstream_uri,
            "{}",
            r.text
        );
        let seen = fx.state.seen.lock().expect("lock").clone();
        let read = seen
            .iter()
            .rev()
            .find(|s| s.method == "resources/read")
            .expect("the read reached the server");
        let body: Value = serde_json::from_slice(&read.body).expect("json");
        assert_eq!(body["params"]["uri"], upstream_uri);
        assert_eq!(
            read.headers
                .get("x-mcp-resourceuri")
                .and_then(|v| v.to_str().ok()),
            Some(upstream_uri)
        );
    }
    // Another server's prefix, or none: not found.
    let r = c
        .request(
            json!(4),
            "resources/read",
            json!({"uri": "ui://chart.html"}),
        )
        .await;
    assert_eq!(r.json["error"]["code"], -32602, "{}", r.text);
}
