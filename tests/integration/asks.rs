//! A 2026-07-28 client through the gateway to a session-era server that asks during its calls:
//! the TypeScript SDK 1.x server of tests/node/get_stream_server.mjs in `--in-call` mode (its
//! tools ask for sampling, elicitation and roots on the call's SSE stream), and the official
//! Python SDK as the client, whose own input-required loop answers what the gateway asks it.
//! Two replicas behind Envoy, round robin: each retry may reach the other one.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{self, free_port, log_dir, start_replicas, wait_port, Client, Proc, Upstream};

fn python_asks_client(url: &str, calls: &Value) -> Value {
    common::python_json("asks_client.py", &[url, &calls.to_string()])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2026_client_answers_what_a_session_era_server_asks_during_its_calls() {
    let logs = log_dir("asks");
    let port = free_port();
    let mut server = Proc::spawn(
        "ts-asking-server",
        Command::new("node")
            .arg(common::repo().join("tests/node/get_stream_server.mjs"))
            .arg(port.to_string())
            .arg("--in-call"),
        &logs,
    );
    wait_port(port, &mut server, Duration::from_secs(30)).await;
    let g = start_replicas("asks", &[Upstream::new("test/ts", "ts_", port)], &[], 2).await;
    g.wait_discovered(Duration::from_secs(30)).await;
    let url = g.url();

    let calls = json!([
        ["ts_test_sampling", {"prompt": "hi"}],
        ["ts_test_elicitation", {"message": "Who are you?"}],
        ["ts_test_two_questions", {}],
    ]);
    let u = url.clone();
    let out = tokio::task::spawn_blocking(move || python_asks_client(&u, &calls))
        .await
        .expect("client");
    assert_eq!(out["version"], "2026-07-28", "{out}");
    assert_eq!(
        out["ts_test_sampling"],
        json!(["LLM response: Hello from the LLM (hi)"]),
        "{out}"
    );
    let elicited = out["ts_test_elicitation"][0].as_str().unwrap_or_default();
    assert!(
        elicited.contains(r#""action":"accept""#) && elicited.contains("ada@example.com"),
        "{out}"
    );
    // Three questions in one call: three rounds, each replaying the call with the answers so far.
    assert_eq!(
        out["ts_test_two_questions"],
        json!(["Hello from the LLM (Greet Ada) (file:///work/project)"]),
        "{out}"
    );
    assert_eq!(
        out["asked"],
        json!([
            "sampling/createMessage",
            "elicitation/create",
            "elicitation/create",
            "sampling/createMessage",
            "roots/list"
        ]),
        "each question asked of the client once: {out}"
    );

    // A client that declares none of it is not asked: the server's request is refused to the
    // server, and the call ends with what the server makes of that.
    let client = Client::new(&url);
    let r = client
        .post_raw(
            serde_json::to_vec(
                &json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {
                "name": "ts_test_sampling", "arguments": {"prompt": "x"},
                "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                          "io.modelcontextprotocol/clientCapabilities": {}}}}),
            )
            .expect("json"),
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "ts_test_sampling"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["id"], 9, "{}", r.text);
    assert_ne!(
        r.json["result"]["resultType"], "input_required",
        "not asked: {}",
        r.text
    );
    assert!(
        r.json["result"]["isError"] == true || r.json["error"].is_object(),
        "the server's call failed on the refusal: {}",
        r.text
    );
    // Not a single question the client was not asked went unanswered on any replica.
    let mut asked = 0;
    for replica in 0..2 {
        let m = g.metrics_on(g.metrics_ports[replica]).await;
        asked += m
            .lines()
            .filter(|l| {
                l.starts_with("mcp_router_bridged_questions_total")
                    && l.contains("result=\"asked\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum::<u64>();
        assert!(!m.contains("result=\"send_failed\""), "{m}");
    }
    assert_eq!(asked, 5, "one question asked per input-required result");
}
