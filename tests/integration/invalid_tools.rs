//! `--invalid-tool-policy` through the real Envoy: an upstream that lists invalid tools (a bad
//! name, a missing or non-object input schema, a duplicate) has them left out (FilterOut, the
//! default) or all of its tools refused (RejectServer); a clean upstream is untouched either way.
//! Both show on `/status` and in the `mcp_router_discovery_invalid_tools` gauge.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::fixture::Fixture;
use crate::common::{start_gateway, Client, Upstream};

fn listed_by_the_bad_upstream() -> Vec<Value> {
    vec![
        json!({"name": "good", "inputSchema": {"type": "object"}}),
        json!({"name": "also_good", "inputSchema": {"type": "object", "properties": {"n": {"type": "integer"}}}}),
        json!({"name": "has space", "inputSchema": {"type": "object"}}),
        json!({"name": "no_schema"}),
        json!({"name": "string_schema", "inputSchema": {"type": "string"}}),
        json!({"name": "good", "inputSchema": {"type": "object"}, "description": "again"}),
    ]
}

async fn names(c: &Client) -> Vec<String> {
    let r = c.request(json!(10), "tools/list", json!({})).await;
    let mut v: Vec<String> = r.json["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools: {}", r.text))
        .iter()
        .map(|t| t["name"].as_str().unwrap_or("").to_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_listing_invalid_tools_is_filtered_or_rejected_as_the_policy_says() {
    for (policy, flags, listed) in [
        (
            "FilterOut",
            &[][..],
            &[
                "bx_also_good",
                "bx_good",
                "discover_tools",
                "ok_echo",
                "select_tools",
            ][..],
        ),
        (
            "RejectServer",
            &["--invalid-tool-policy=RejectServer"][..],
            &["discover_tools", "ok_echo", "select_tools"][..],
        ),
    ] {
        let bad = Fixture::start_listing(listed_by_the_bad_upstream()).await;
        let clean = Fixture::start(&["echo"]).await;
        let g = start_gateway(
            &format!("invalid-tools-{policy}"),
            &[
                Upstream::new("test/bad", "bx_", bad.port),
                Upstream::new("test/clean", "ok_", clean.port),
            ],
            flags,
        )
        .await;
        g.wait_discovered(Duration::from_secs(20)).await;
        let mut c = Client::new(&g.url());
        c.initialize().await;
        assert_eq!(names(&c).await, listed, "{policy}");

        // A tool left out is not routed, even by its prefix; a served one is.
        for (tool, served) in [
            ("bx_no_schema", false),
            ("bx_string_schema", false),
            ("bx_good", policy == "FilterOut"),
            ("ok_echo", true),
        ] {
            let r = c.call_tool(20, tool, json!({})).await;
            if served {
                assert!(
                    r.json.get("result").is_some(),
                    "{policy} {tool}: {}",
                    r.text
                );
            } else {
                assert_eq!(
                    r.json["error"]["code"], -32602,
                    "{policy} {tool}: {}",
                    r.text
                );
                assert_eq!(r.json["id"], 20, "{policy} {tool}: {}", r.text);
            }
        }
        assert!(
            !bad.calls().iter().any(|s| {
                let b = String::from_utf8_lossy(&s.body);
                b.contains("no_schema") || b.contains("string_schema")
            }),
            "{policy}: an invalid tool reached the upstream"
        );

        let status = g.status().await;
        let server = |name: &str| {
            status["servers"]
                .as_array()
                .and_then(|a| a.iter().find(|s| s["name"] == name).cloned())
                .unwrap_or_else(|| panic!("{name} not on /status: {status:#}"))
        };
        let b = server("test/bad");
        assert_eq!(b["invalidTools"], 4, "{policy}: {b:#}");
        let why: Vec<(String, String)> = b["invalidToolList"]
            .as_array()
            .expect("list")
            .iter()
            .map(|t| {
                (
                    t["name"].as_str().unwrap_or("").to_owned(),
                    t["errors"][0].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        assert_eq!(
            why,
            [
                (
                    "has space".to_owned(),
                    "name must be 1 to 128 characters of A-Z, a-z, 0-9, '_', '-' and '.'"
                        .to_owned()
                ),
                ("no_schema".to_owned(), "inputSchema is required".to_owned()),
                (
                    "string_schema".to_owned(),
                    "inputSchema.type must be \"object\", got \"string\"".to_owned()
                ),
                (
                    "good".to_owned(),
                    "duplicate name: the server lists another tool by this name".to_owned()
                ),
            ],
            "{policy}"
        );
        assert_eq!(b["toolsRejected"], policy == "RejectServer", "{policy}");
        assert_eq!(server("test/clean")["invalidTools"], 0);
        assert_eq!(server("test/clean")["toolsRejected"], false);

        let metrics = g.metrics().await;
        assert!(
            metrics.contains("mcp_router_discovery_invalid_tools{server=\"test/bad\"} 4"),
            "{metrics}"
        );
        assert!(
            metrics.contains("mcp_router_discovery_invalid_tools{server=\"test/clean\"} 0"),
            "{metrics}"
        );
    }
}
