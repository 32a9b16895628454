//! Both protocol generations through the gateway, with real clients and real servers: the
//! official Python SDK (2026-07-28, stateless, and its fallback to the 2025 session protocol)
//! and the MCP Inspector (TypeScript SDK, 2025-11-25), each listing and calling tools of a
//! 2025-era upstream (server-everything) and of an upstream built with the Python SDK (which
//! speaks 2026-07-28 natively); plus the stateless protocol's own rules on the wire.

use crate::common;
use std::process::{Command, Stdio};

use crate::common::{
    inspector, log_dir, start_everything, start_gateway, start_python_upstream, Client, Upstream,
};
use serde_json::{json, Value};

const MODERN: &str = "2026-07-28";

fn python_client(url: &str, mode: &str) -> Value {
    python_client_calls(url, mode, None)
}

fn python_client_calls(url: &str, mode: &str, calls: Option<Value>) -> Value {
    let calls = calls.map(|c| c.to_string());
    let mut args = vec![url, mode];
    args.extend(calls.as_deref());
    common::python_json("client.py", &args)
}

#[tokio::test(flavor = "multi_thread")]
async fn python_and_typescript_clients_of_both_generations_use_both_kinds_of_upstream() {
    let logs = log_dir("two-generations");
    let (_ev, ev_port) = start_everything(&logs).await;
    let (_py, py_port) = start_python_upstream(&logs).await;
    let g = start_gateway(
        "two-generations",
        &[
            Upstream::new("mcp-test/everything", "ev_", ev_port),
            Upstream::new("mcp-test/python", "py_", py_port),
        ],
        &[],
    )
    .await;
    let url = g.url();
    let url2 = url.clone();
    let results = tokio::task::spawn_blocking(move || {
        ["2026-07-28", "auto", "legacy"].map(|mode| (mode, python_client(&url2, mode)))
    })
    .await
    .unwrap();
    for (mode, r) in results {
        let want_version = if mode == "legacy" {
            "2025-11-25"
        } else {
            MODERN
        };
        assert_eq!(r["version"], want_version, "{mode}: {r}");
        let tools: Vec<&str> = r["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        for t in ["py_add", "py_shout", "ev_echo", "ev_get-sum"] {
            assert!(tools.contains(&t), "{mode}: {t} missing from {tools:?}");
        }
        assert_eq!(r["py_add"], json!(["42"]), "{mode}: {r}");
        assert_eq!(r["py_shout"], json!(["HELLO"]), "{mode}: {r}");
        assert_eq!(r["ev_echo"], json!(["Echo: from python"]), "{mode}: {r}");
        // A JSON-RPC error -32602 (the SDK may surface it as an error result).
        assert!(
            r["unknown"] == -32602 || r["unknown"] == "is_error",
            "{mode}: {r}"
        );
    }

    // The TypeScript SDK (MCP Inspector CLI, 2025-11-25) on the Python SDK's server.
    let url2 = url.clone();
    let out = tokio::task::spawn_blocking(move || {
        inspector(
            &url2,
            &[
                "--method",
                "tools/call",
                "--tool-name",
                "py_add",
                "--tool-arg",
                "a=1",
                "--tool-arg",
                "b=2",
            ],
        )
    })
    .await
    .unwrap();
    assert!(out.contains("\"3\""), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stateless_protocol_rules_hold_on_the_wire() {
    let logs = log_dir("stateless-wire");
    let (_py, py_port) = start_python_upstream(&logs).await;
    let g = start_gateway(
        "stateless-wire",
        &[Upstream::new("mcp-test/python", "py_", py_port)],
        &[],
    )
    .await;
    let c = Client::new(&g.url());
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    let post = |method: &str, params: Value, version: &str, extra: Vec<(&'static str, String)>| {
        let body = json!({"jsonrpc": "2.0", "id": 9, "method": method, "params": params});
        let mut headers: Vec<(&str, String)> = vec![
            ("mcp-protocol-version", version.to_owned()),
            ("mcp-method", method.to_owned()),
        ];
        headers.extend(extra);
        let c = &c;
        async move {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            c.post_raw(serde_json::to_vec(&body).unwrap(), &h).await
        }
    };

    // server/discover: both generations' versions, newest first, and the gateway's capabilities.
    let r = post("server/discover", json!({"_meta": meta}), MODERN, vec![]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let result = &r.json["result"];
    assert_eq!(result["supportedVersions"][0], MODERN);
    assert!(result["supportedVersions"]
        .as_array()
        .unwrap()
        .contains(&json!("2025-11-25")));
    assert!(result["capabilities"]["tools"].is_object());
    assert_eq!(result["resultType"], "complete");

    // Lists without a session, with caching directives.
    let r = post("tools/list", json!({"_meta": meta}), MODERN, vec![]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["result"]["ttlMs"], 0);
    assert_eq!(r.json["result"]["cacheScope"], "public");
    assert!(r.text.contains("py_add"), "{}", r.text);

    // A call without a session, routed, the name rewritten in the body and in Mcp-Name.
    let r = post(
        "tools/call",
        json!({"name": "py_add", "arguments": {"a": 2, "b": 3}, "_meta": meta}),
        MODERN,
        vec![("mcp-name", "py_add".into())],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["result"]["content"][0]["text"], "5", "{}", r.text);
    assert!(
        r.headers.get("mcp-session-id").is_none(),
        "no session for a stateless client"
    );

    // Unsupported version: 400 + -32022 naming what the gateway speaks.
    let r = post("tools/list", json!({"_meta": meta}), "2099-01-01", vec![]).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json["error"]["code"], -32022);
    assert_eq!(r.json["id"], 9);
    assert_eq!(r.json["error"]["data"]["requested"], "2099-01-01");
    assert_eq!(r.json["error"]["data"]["supported"][0], MODERN);

    // Unknown method (ping is gone in 2026-07-28): 404 + -32601.
    for m in ["foo/bar", "ping"] {
        let r = post(m, json!({"_meta": meta}), MODERN, vec![]).await;
        assert_eq!(r.status, 404, "{m}: {}", r.text);
        assert_eq!(r.json["error"]["code"], -32601, "{m}");
    }

    // Mcp-Method that disagrees with the body: -32020.
    let r = c
        .post_raw(
            serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"_meta": meta}})).unwrap(),
            &[("mcp-protocol-version", MODERN), ("mcp-method", "tools/call")],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json["error"]["code"], -32020);
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_of_both_generations_use_an_upstream_that_speaks_only_2026() {
    let modern = common::fixture::Fixture::start_modern(&["echo"]).await;
    let g = start_gateway(
        "modern-upstream",
        &[Upstream::new("test/modern", "md_", modern.port)],
        &[],
    )
    .await;
    // Discovery found its tools through server/discover + tools/list.
    let mut c = Client::new(&g.url());
    c.initialize().await;
    let r = c.request(json!(1), "tools/list", json!({})).await;
    assert!(r.text.contains("\"md_echo\""), "{}", r.text);

    // A 2025-11-25 client's call: the gateway adds the envelope and the headers the server needs.
    let r = c
        .call_tool(2, "md_echo", json!({"big": 12345678901234567890u64}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let text = r.json["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or("");
    assert!(text.starts_with("echo got "), "{}", r.text);
    assert!(
        text.contains("\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\""),
        "{text}"
    );
    assert!(text.contains("12345678901234567890"), "{text}");
    assert_eq!(
        r.headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok()),
        c.session.as_deref()
    );
    let seen = modern.calls();
    let last = seen.last().unwrap();
    assert_eq!(last.headers.get("mcp-method").unwrap(), "tools/call");
    assert_eq!(last.headers.get("mcp-name").unwrap(), "echo");
    assert!(last.headers.get("mcp-session-id").is_none());

    // The MCP Inspector (2025-11-25) and the Python SDK (forced 2026-07-28) call it too: the
    // latter passes through as it is, both sides speaking the same version.
    let url = g.url();
    let out = tokio::task::spawn_blocking(move || {
        inspector(&url, &["--method", "tools/call", "--tool-name", "md_echo"])
    })
    .await
    .unwrap();
    assert!(out.contains("echo got"), "{out}");
    assert_eq!(
        modern.initializes(),
        0,
        "nothing ever sent it initialize it could not take"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_2026_client_hears_of_list_changes_on_subscriptions_listen() {
    use std::io::{BufRead, BufReader};
    let first = common::fixture::Fixture::start(&["echo"]).await;
    let second = common::fixture::Fixture::start(&["add"]).await;
    let a = Upstream::new("test/a", "a_", first.port);
    let b = Upstream::new("test/b", "b_", second.port);
    let g = start_gateway("listen", std::slice::from_ref(&a), &[]).await;
    let mut child = Command::new(common::python_bin())
        .arg(common::repo().join("tests/python/listen.py"))
        .args([g.url().as_str(), "1", "30"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the venv's python: scripts/install-tools.sh python (make test does it)");
    let stdout = child.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        let mut r = BufReader::new(stdout);
        let mut first = String::new();
        r.read_line(&mut first).unwrap();
        (first, r)
    })
    .await
    .unwrap();
    assert_eq!(lines.0.trim(), "acknowledged", "no acknowledgement");
    // A second server joins: the tool list changes.
    let config = common::config_yaml(&[a, b]);
    std::fs::write(&g.config_path, config).unwrap();
    let mut reader = lines.1;
    let event = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "listen.py failed: {err}");
    assert_eq!(event.trim(), "ToolsListChanged", "{err}");
}
