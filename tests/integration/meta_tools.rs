//! The broker's discovery meta-tools through the real Envoy, with a catalog of 520 tools on two
//! servers (fixtures that generate them): above `--discovery-tool-threshold` only the
//! meta-tools are listed; the official MCP Python SDK (a 2025 session) discovers, selects,
//! gets the targeted `tools/list_changed`, lists only its selection, and calls tools (selected
//! or not: calls still route, as in the seed); `list_tags` and `filter_tools_by_tags` follow
//! the config's tags; 2026-07-28 clients are offered none of them; and the default
//! (threshold 0) lists every tool plus the meta-tools.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::fixture::Fixture;
use crate::common::{self, start_gateway, start_gateway_with, Client, Upstream};

const PER_SERVER: usize = 260;
const METAS: [&str; 4] = [
    "discover_tools",
    "filter_tools_by_tags",
    "list_tags",
    "select_tools",
];

async fn big_fixture() -> Fixture {
    let names: Vec<String> = (0..PER_SERVER).map(|i| format!("t{i:03}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    Fixture::start_listing(Fixture::echo_tools(&refs)).await
}

fn config(upstreams: &[Upstream]) -> String {
    let extra = [
        "    category: [Infra]\n    hint: \"cluster tools\"\n    tags: [ops, k8s]\n",
        "    tags: [dev]\n",
    ];
    let mut y = String::from("servers:\n");
    for (u, extra) in upstreams.iter().zip(extra) {
        y.push_str(&format!(
            "  - name: {}\n    url: http://127.0.0.1:{}{}\n    hostname: {}\n    prefix: \"{}\"\n{extra}",
            u.name, u.port, u.path, u.hostname, u.prefix
        ));
    }
    y
}

async fn list(c: &Client) -> Vec<String> {
    let r = c.request(json!(100), "tools/list", json!({})).await;
    let mut v: Vec<String> = r.json["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools: {}", r.text))
        .iter()
        .map(|t| t["name"].as_str().unwrap_or("").to_owned())
        .collect();
    v.sort();
    v
}

fn tool_text(r: &common::Reply) -> Value {
    let t = r.json["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text: {}", r.text));
    serde_json::from_str(t).unwrap_or_else(|_| json!(t))
}

fn python_discovery(url: &str, select: &[&str], unselected: &str) -> Value {
    common::python_json(
        "discovery.py",
        &[url, &json!(select).to_string(), unselected],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_catalog_is_hidden_above_the_threshold_and_a_real_client_selects_from_it() {
    let (aa, bb) = (big_fixture().await, big_fixture().await);
    let upstreams = [
        Upstream::new("test/aa", "aa_", aa.port),
        Upstream::new("test/bb", "bb_", bb.port),
    ];
    let g = start_gateway_with(
        "meta-tools-threshold",
        &upstreams,
        &["--discovery-tool-threshold=100"],
        &config(&upstreams),
        &[],
    )
    .await;
    g.wait_discovered(Duration::from_secs(30)).await;
    assert_eq!(g.status().await["tools"], 2 * PER_SERVER);

    let mut c = Client::new(&g.url());
    let init = c.initialize().await;
    assert!(
        init.json["result"]["instructions"]
            .as_str()
            .is_some_and(|i| i.contains("discover_tools") && i.contains("select_tools")),
        "{}",
        init.text
    );
    // 520 real tools > 100: only the meta-tools.
    assert_eq!(list(&c).await, METAS);

    // The tags tools, raw.
    let r = c.call_tool(1, "list_tags", json!({})).await;
    assert_eq!(tool_text(&r), json!(["dev", "k8s", "ops"]), "{}", r.text);
    let r = c
        .call_tool(2, "filter_tools_by_tags", json!({"tags": ["ops", "k8s"]}))
        .await;
    let matched = tool_text(&r);
    let matched = matched.as_array().expect("array");
    assert_eq!(matched.len(), PER_SERVER);
    assert!(matched
        .iter()
        .all(|t| t["name"].as_str().is_some_and(|n| n.starts_with("aa_"))
            && t["inputSchema"]["type"] == "object"));
    let r = c
        .call_tool(3, "filter_tools_by_tags", json!({"tags": []}))
        .await;
    assert_eq!(r.json["result"]["isError"], true, "{}", r.text);
    assert_eq!(
        r.json["result"]["content"][0]["text"],
        "tags must not be empty"
    );
    let r = c
        .call_tool(4, "discover_tools", json!({"category": "infra"}))
        .await;
    let d = tool_text(&r);
    assert_eq!(d["servers"].as_array().map(Vec::len), Some(1), "{d}");
    assert_eq!(d["servers"][0]["name"], "test/aa");
    assert_eq!(d["servers"][0]["categories"], json!(["Infra"]));
    assert_eq!(d["servers"][0]["hint"], "cluster tools");
    assert_eq!(
        d["servers"][0]["tools"].as_array().map(Vec::len),
        Some(PER_SERVER)
    );

    // The Python SDK, in its own session.
    let url = g.url();
    let out = tokio::task::spawn_blocking(move || {
        python_discovery(&url, &["aa_t001", "bb_t259"], "aa_t100")
    })
    .await
    .expect("python");
    assert_eq!(out["first"], json!(METAS), "{out:#}");
    let discovered: BTreeMap<String, u64> =
        serde_json::from_value(out["discovered"].clone()).expect("counts");
    assert_eq!(
        discovered,
        BTreeMap::from([("test/aa".into(), 260), ("test/bb".into(), 260)])
    );
    assert_eq!(
        out["selected"],
        json!({"status": "scope set to 2 tools", "tools": ["aa_t001", "bb_t259"]})
    );
    assert_eq!(out["notified"], true, "no tools/list_changed: {out:#}");
    let mut second = vec!["aa_t001", "bb_t259"];
    second.extend(METAS);
    second.sort();
    assert_eq!(out["second"], json!(second), "{out:#}");
    assert_eq!(out["call_selected"]["is_error"], false, "{out:#}");
    assert!(out["call_selected"]["text"][0]
        .as_str()
        .is_some_and(|t| t.starts_with("t001 got") && t.contains("python")));
    assert!(out["call_unselected"]["text"][0]
        .as_str()
        .is_some_and(|t| t.starts_with("t100 got")));
    assert_eq!(
        out["bad_select"],
        json!({"is_error": true, "text": ["tool not available"]})
    );

    // The scope was the Python session's: this session still sees only the meta-tools.
    assert_eq!(list(&c).await, METAS);

    // A 2026-07-28 client is offered none of them, and the threshold does not hide its tools.
    let modern = Client::new(&g.url());
    let hdr = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/list"),
    ];
    let r = modern
        .post_raw(
            json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list", "params": {"_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": {}}}})
            .to_string(),
            &hdr,
        )
        .await;
    let tools = r.json["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", r.text));
    assert_eq!(tools.len(), 2 * PER_SERVER, "{}", r.text);
    assert!(!tools.iter().any(|t| t["name"] == "discover_tools"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_every_tool_and_the_discovery_pair_are_listed_and_the_flag_turns_them_off() {
    let fx = Fixture::start(&["echo", "add"]).await;
    for (flags, expected) in [
        (
            &[][..],
            &["discover_tools", "fx_add", "fx_echo", "select_tools"][..],
        ),
        (
            &["--discovery-tools-enabled=false"][..],
            &["fx_add", "fx_echo"][..],
        ),
    ] {
        let g = start_gateway(
            "meta-tools-default",
            &[Upstream::new("test/fixture", "fx_", fx.port)],
            flags,
        )
        .await;
        let mut c = Client::new(&g.url());
        c.initialize().await;
        assert_eq!(list(&c).await, expected, "{flags:?}");
        let r = c.call_tool(1, "discover_tools", json!({})).await;
        if flags.is_empty() {
            assert_eq!(
                tool_text(&r),
                json!({"servers": [{"name": "test/fixture", "categories": ["uncategorised"], "tools": ["fx_echo", "fx_add"]}]}),
                "{}",
                r.text
            );
        } else {
            assert_eq!(r.json["error"]["code"], -32602, "{}", r.text);
        }
    }
}
