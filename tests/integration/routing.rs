//! Routing through the real Envoy: names, headers, sessions and bodies as the upstream sees them,
//! and every kind of bad input answered with a JSON-RPC error.

use crate::common;
use std::sync::Arc;
use std::time::Duration;

use crate::common::fixture::Fixture;
use crate::common::{start_gateway, Client, Upstream};
use serde_json::{json, Value};

async fn one_fixture(test: &str) -> (Fixture, common::Gateway) {
    let fx = Fixture::start(&["echo", "add"]).await;
    let g = start_gateway(test, &[Upstream::new("test/fixture", "fx_", fx.port)], &[]).await;
    (fx, g)
}

/// A fixture behind the gateway, and a client with an initialized gateway session.
async fn with_session(test: &str) -> (Fixture, common::Gateway, Client) {
    with_session_and(test, &[]).await
}

/// Like [`with_session`], with extra mcp-router flags.
async fn with_session_and(test: &str, flags: &[&str]) -> (Fixture, common::Gateway, Client) {
    let fx = Fixture::start(&["echo", "add"]).await;
    let g = start_gateway(
        test,
        &[Upstream::new("test/fixture", "fx_", fx.port)],
        flags,
    )
    .await;
    let mut c = Client::new(&g.url());
    c.initialize().await;
    (fx, g, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_virtual_server_limits_what_is_listed_and_called() {
    // The harness's config has virtual server test/only-echo: [ev_echo, fx_echo].
    let (fx, _g, c) = with_session("routing-virtual-server").await;
    let vs = [("x-mcp-virtualserver", "test/only-echo")];
    let list = |r: &common::Reply| {
        let mut names: Vec<String> = r.json["result"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("no tools: {}", r.text))
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    };
    let all = c.request(json!(1), "tools/list", json!({})).await;
    // The discovery meta-tools too (on by default); the virtual server does not list them.
    assert_eq!(
        list(&all),
        ["discover_tools", "fx_add", "fx_echo", "select_tools"]
    );
    let r = c
        .post_raw(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#, &vs)
        .await;
    assert_eq!(list(&r), ["fx_echo"]);

    let r = c
        .post_raw(
            r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"fx_echo","arguments":{}}}"#,
            &vs,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json.get("result").is_some(), "{}", r.text);
    let before = fx.calls().len();
    let r = c
        .post_raw(
            r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"fx_add","arguments":{}}}"#,
            &vs,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["id"], 4);
    assert_eq!(r.json["error"]["code"], -32602, "{}", r.text);
    assert_eq!(fx.calls().len(), before, "refused before the upstream");

    for (id, method) in [(5, "tools/list"), (6, "tools/call")] {
        let body =
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": {"name": "fx_echo"}});
        let r = c
            .post_raw(
                serde_json::to_vec(&body).unwrap(),
                &[("x-mcp-virtualserver", "test/nope")],
            )
            .await;
        assert_eq!(r.status, 404, "{method}: {}", r.text);
        assert_eq!(r.json["id"], id);
        assert_eq!(r.json["error"]["code"], -32602);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_reaches_its_upstream_with_the_prefix_stripped_and_routing_headers_set() {
    let (fx, _g, c) = with_session("routing-headers").await;

    let list = c.request(json!(1), "tools/list", json!({})).await;
    assert_eq!(list.status, 200, "{}", list.text);
    let names: Vec<&str> = list.json["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    // The broker's discovery meta-tools follow the upstreams' tools (on by default, as in the seed).
    assert_eq!(
        names,
        ["fx_echo", "fx_add", "discover_tools", "select_tools"]
    );

    let r = c.call_tool(2, "fx_echo", json!({"message": "hi"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["id"], 2);
    let text = r.json["result"]["content"][0]["text"]
        .as_str()
        .expect("text");
    assert!(text.starts_with("echo got "), "{text}");
    assert_eq!(
        r.headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok()),
        c.session.as_deref(),
        "the client sees its gateway session id, not the upstream's"
    );

    let calls = fx.calls();
    assert_eq!(calls.len(), 1);
    let h = &calls[0].headers;
    let get = |k: &str| {
        h.get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(get("x-mcp-method"), "tools/call");
    assert_eq!(get("x-mcp-servername"), "test/fixture");
    assert_eq!(get("x-mcp-toolname"), "echo");
    assert_eq!(
        get("x-mcp-annotation-hints"),
        "readOnly=true,destructive=false,idempotent=unspecified,openWorld=unspecified"
    );
    assert!(
        get("mcp-session-id").starts_with("fx-"),
        "the upstream sees its own session id"
    );
    assert_eq!(
        get("host"),
        format!("127.0.0.1:{}", fx.port),
        "Envoy rewrote the host for the loopback upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_reaches_the_upstream_byte_identical_but_for_the_name() {
    let (fx, _g, c) = with_session("routing-bytes").await;
    let body = "{\"jsonrpc\":\"2.0\",  \"id\":12345678901234567890,\"method\":\"tools/call\",\"params\":{\"arguments\":{\"big\":123456789012345678901,\"f\":0.1000000000000000055511151231257827,\"z\":\"\\u00e9\\n\",\"a\":1},\n\"name\":\"fx_echo\"}}";
    let r = c.post_raw(body, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.text.contains("12345678901234567890"),
        "the reply keeps the big id: {}",
        r.text
    );
    let calls = fx.calls();
    let expected = body.replace("\"fx_echo\"", "\"echo\"");
    assert_eq!(String::from_utf8_lossy(&calls[0].body), expected);
    assert_eq!(
        calls[0]
            .headers
            .get("content-length")
            .and_then(|v| v.to_str().ok()),
        Some(expected.len().to_string().as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_calls_create_exactly_one_upstream_session() {
    let (fx, g) = one_fixture("routing-coalesce").await;
    fx.state
        .init_delay_ms
        .store(300, std::sync::atomic::Ordering::SeqCst);
    let discovery_inits = fx.initializes();
    let mut c = Client::new(&g.url());
    c.initialize().await;
    let c = Arc::new(c);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.call_tool(100 + i, "fx_add", json!({"a": i})).await
        }));
    }
    for t in tasks {
        let r = t.await.expect("join");
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(
            r.json["result"]["content"][0]["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("add got")),
            "{}",
            r.text
        );
    }
    assert_eq!(
        fx.initializes() - discovery_inits,
        1,
        "20 concurrent first calls, one upstream initialize"
    );
    assert_eq!(fx.calls().len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_cannot_forge_internal_headers_or_reach_an_upstream_by_authority() {
    let (fx, g, c) = with_session("routing-spoof").await;
    let body = serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "fx_echo", "arguments": {}}})).expect("encode");
    let r = c
        .post_raw(
            body,
            &[
                ("x-mcp-servername", "evil/server"),
                ("x-mcp-toolname", "rm_rf"),
                ("x-mcp-annotation-hints", "readOnly=true"),
                ("mcp-init-host", "evil.local"),
                ("x-mcp-router-key", "forged"),
                // The broker's: never passed to an upstream.
                ("x-mcp-authorized", "a.verdict.for-the-broker"),
                ("x-mcp-virtualserver", "test/only-echo"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let h = &fx.calls()[0].headers;
    let all = |k: &str| {
        h.get_all(k)
            .iter()
            .map(|v| v.to_str().unwrap_or("").to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(all("x-mcp-servername"), ["test/fixture"]);
    assert_eq!(all("x-mcp-toolname"), ["echo"]);
    assert!(all("mcp-init-host").is_empty());
    assert!(all("x-mcp-router-key").is_empty());
    assert!(all("x-mcp-authorized").is_empty());
    assert!(all("x-mcp-virtualserver").is_empty());

    // An initialize aimed at the upstream's hostname still reaches the broker.
    let fx_inits = fx.initializes();
    let direct = reqwest::Client::new()
        .post(g.url())
        .header("host", "test-fixture.mcp.local")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(direct.status(), 200);
    let v: Value = direct.json().await.expect("json");
    assert_eq!(v["result"]["serverInfo"]["name"], "mcp-router");
    assert_eq!(fx.initializes(), fx_inits);

    // And a GET to the upstream's hostname is the broker's too.
    let get = reqwest::Client::new()
        .get(g.url())
        .header("host", "test-fixture.mcp.local")
        .send()
        .await
        .expect("get");
    assert_eq!(
        get.status(),
        406,
        "the broker's answer to a GET without Accept: text/event-stream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_json_rpc_error_with_the_right_status() {
    let (_fx, g, c) = with_session("routing-bad-input").await;
    let good_session = c.session.clone();
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":77,"method":"tools/call","params":{{"name":"fx_echo","arguments":{{"s":"{}"}}}}}}"#,
        "x".repeat(6 * 1024 * 1024)
    );
    // A session id signed with the gateway's key that expired an hour ago.
    let expired: &'static str = Box::leak(
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &json!({"iss": "mcp-gateway", "aud": "mcp-gateway", "jti": "expired-1",
                    "iat": 1_700_000_000u64, "exp": std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() - 3600}),
            &jsonwebtoken::EncodingKey::from_secret(common::SIGNING_KEY.as_bytes()),
        )
        .unwrap()
        .into_boxed_str(),
    );
    struct Case {
        what: &'static str,
        body: String,
        headers: Vec<(&'static str, &'static str)>,
        session: Option<Option<&'static str>>,
        status: u16,
        code: i64,
        id: Value,
    }
    let case = |what, body: &str, status, code, id| Case {
        what,
        body: body.into(),
        headers: vec![],
        session: None,
        status,
        code,
        id,
    };
    let mut cases = vec![
        case("malformed JSON", r#"{"jsonrpc":"2.0","id":1,"method":"#, 400, -32700, Value::Null),
        case("not UTF-8", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"x\":\"\u{fffd}\"}", 200, 0, json!(1)),
        case("batch", r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#, 400, -32600, Value::Null),
        case("wrong jsonrpc", r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#, 400, -32600, json!(1)),
        case("missing method", r#"{"jsonrpc":"2.0","id":"m"}"#, 400, -32600, json!("m")),
        case("call without id", r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"fx_echo"}}"#, 400, -32600, Value::Null),
        case("list without id", r#"{"jsonrpc":"2.0","method":"tools/list"}"#, 400, -32600, Value::Null),
        case("unknown tool", r#"{"jsonrpc":"2.0","id":"u1","method":"tools/call","params":{"name":"nope_tool"}}"#, 200, -32602, json!("u1")),
        case("unknown prefix", r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"zz_echo"}}"#, 200, -32602, json!(5)),
        case("missing tool name", r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{}}"#, 400, -32602, json!(6)),
        case("unknown method", r#"{"jsonrpc":"2.0","id":7,"method":"no/such"}"#, 200, -32601, json!(7)),
        case("deep nesting", &format!(r#"{{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{{"name":"fx_echo","arguments":{}{}}}}}"#, "[".repeat(500), "]".repeat(500)), 400, -32700, Value::Null),
        Case { what: "missing session", session: Some(None), ..case("", r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"fx_echo"}}"#, 400, -32600, json!(9)) },
        Case { what: "invalid session", session: Some(Some("bogus")), ..case("", r#"{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"fx_echo"}}"#, 404, -32001, json!(10)) },
        Case { what: "invalid session on a list", session: Some(Some("bogus")), ..case("", r#"{"jsonrpc":"2.0","id":11,"method":"tools/list"}"#, 404, -32001, json!(11)) },
        Case { what: "alg none session", session: Some(Some("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJpc3MiOiJtY3AtZ2F0ZXdheSIsImF1ZCI6Im1jcC1nYXRld2F5IiwianRpIjoieCIsImV4cCI6OTk5OTk5OTk5OX0.")), ..case("", r#"{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"fx_echo"}}"#, 404, -32001, json!(12)) },
        Case { what: "expired session", session: Some(Some(expired)), ..case("", r#"{"jsonrpc":"2.0","id":14,"method":"tools/call","params":{"name":"fx_echo"}}"#, 404, -32001, json!(14)) },
        Case { what: "expired session on a list", session: Some(Some(expired)), ..case("", r#"{"jsonrpc":"2.0","id":15,"method":"tools/list"}"#, 404, -32001, json!(15)) },
        Case { what: "not JSON content type", headers: vec![("content-type", "text/plain")], ..case("", r#"{"jsonrpc":"2.0","id":13,"method":"ping"}"#, 415, -32600, Value::Null) },
        Case { what: "body over the limit", body: big, ..case("", "", 413, -32004, Value::Null) },
    ];
    cases.retain(|c| c.what != "not UTF-8"); // sent as bytes below
    for case in &cases {
        let mut client = Client::new(&g.url());
        client.session = match case.session {
            None => good_session.clone(),
            Some(s) => s.map(str::to_owned),
        };
        let r = client.post_raw(case.body.clone(), &case.headers).await;
        assert_eq!(
            r.status,
            case.status,
            "{}: {}",
            case.what,
            r.text.chars().take(300).collect::<String>()
        );
        if case.status == 202 {
            continue;
        }
        assert!(
            r.content_type().starts_with("application/json"),
            "{}: content-type {:?}",
            case.what,
            r.content_type()
        );
        if case.code != 0 {
            assert_eq!(
                r.json["error"]["code"], case.code,
                "{}: {}",
                case.what, r.text
            );
            assert_eq!(r.json["id"], case.id, "{}: {}", case.what, r.text);
            assert_eq!(r.json["jsonrpc"], "2.0", "{}", case.what);
            assert!(
                r.json["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "{}",
                case.what
            );
        }
    }
    // Invalid UTF-8 bytes.
    let r = c.post_raw(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"fx_echo\",\"arguments\":{\"s\":\"\xff\"}}}".to_vec(), &[]).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json["error"]["code"], -32700);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_upstream_gets_a_new_session_without_the_client_losing_its_own() {
    let (fx, g, c) = with_session("routing-upstream-404").await;
    assert_eq!(c.call_tool(1, "fx_echo", json!({})).await.status, 200);
    fx.forget_sessions();
    let lost = c.call_tool(2, "fx_echo", json!({})).await;
    assert_eq!(lost.status, 502, "{}", lost.text);
    assert_eq!(lost.json["id"], 2);
    assert!(
        lost.json["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("retry")),
        "{}",
        lost.text
    );
    let again = c.call_tool(3, "fx_echo", json!({})).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json["id"], 3);
    let m = g.metrics().await;
    assert!(
        m.contains("mcp_router_upstream_sessions_lost_total{server=\"test/fixture\"} 1"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_is_a_clear_error_naming_it() {
    let (fx, _g, c) = with_session("routing-unreachable").await;
    drop(fx);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = c.call_tool(1, "fx_echo", json!({})).await;
    assert_eq!(r.status, 502, "{}", r.text);
    assert_eq!(r.json["id"], 1);
    assert!(
        r.json["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("test/fixture")),
        "{}",
        r.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upstream_initialize_is_a_504_within_the_budget() {
    let fx = Fixture::start(&["echo"]).await;
    let g = start_gateway(
        "routing-slow-init",
        &[Upstream::new("test/fixture", "fx_", fx.port)],
        &["--upstream-init-timeout-ms=500"],
    )
    .await;
    fx.state
        .init_delay_ms
        .store(3000, std::sync::atomic::Ordering::SeqCst);
    let mut c = Client::new(&g.url());
    c.initialize().await;
    let started = std::time::Instant::now();
    let r = c.call_tool(1, "fx_echo", json!({})).await;
    assert_eq!(r.status, 504, "{}", r.text);
    assert_eq!(r.json["id"], 1);
    assert!(
        r.json["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("test/fixture")),
        "{}",
        r.text
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered within the budget, not after the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_session_is_gone_and_its_upstream_sessions_closed() {
    let (fx, g, c) = with_session("routing-delete").await;
    assert_eq!(c.call_tool(1, "fx_echo", json!({})).await.status, 200);
    let del = c
        .http
        .delete(g.url())
        .header("mcp-session-id", c.session.clone().expect("session"))
        .send()
        .await
        .expect("delete");
    assert_eq!(del.status(), 200);
    let r = c.call_tool(2, "fx_echo", json!({})).await;
    assert_eq!(r.status, 404, "{}", r.text);
    let mut closed = false;
    for _ in 0..50 {
        if fx.state.seen.lock().expect("lock").is_empty()
            || fx.state.sessions.lock().expect("lock").len() <= 1
        {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(closed, "the upstream session was closed with DELETE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_initialize_can_go_back_through_the_gateway() {
    let (fx, _g, c) = with_session_and(
        "routing-hairpin",
        &["--mcp-gateway-private-host=127.0.0.1:{envoy_port}"],
    )
    .await;
    let r = c.call_tool(1, "fx_echo", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let seen = fx.state.seen.lock().expect("lock").clone();
    let init = seen
        .iter()
        .rev()
        .find(|s| s.method == "initialize")
        .expect("an initialize reached the upstream");
    let h = |k: &str| {
        init.headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(
        h("x-mcp-servername"),
        "test/fixture",
        "the initialize went through Envoy and the router"
    );
    assert_eq!(h("x-mcp-method"), "initialize");
    assert_eq!(
        h("x-mcp-toolname"),
        "echo",
        "the initialize carries the tool of the call that needs it, for gateway policies"
    );
    assert_eq!(
        h("x-mcp-annotation-hints"),
        "readOnly=true,destructive=false,idempotent=unspecified,openWorld=unspecified",
        "and its annotation hints, as the call gets them"
    );
    assert_eq!(
        h("x-mcp-router-key"),
        "",
        "the hairpin key does not leave the gateway"
    );
    assert_eq!(h("mcp-init-host"), "");

    // A valid key opens only the hairpin's POSTs: a GET with one is an ordinary request for the
    // broker (whose GET stream needs a session), never a stream to the upstream.
    let key = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"iss": "mcp-gateway", "aud": "mcp-router-hairpin", "srv": "test/fixture",
                "exp": std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 30}),
        &jsonwebtoken::EncodingKey::from_secret(common::SIGNING_KEY.as_bytes()),
    )
    .unwrap();
    let gets_before = fx.state.seen.lock().expect("lock").len();
    let get = c
        .http
        .get(&c.url)
        .header("accept", "text/event-stream")
        .header("x-mcp-router-key", &key)
        .send()
        .await
        .expect("get");
    assert_eq!(get.status().as_u16(), 400, "the broker wants a session");
    assert_eq!(fx.state.seen.lock().expect("lock").len(), gets_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_change_is_applied_and_a_broken_one_is_refused() {
    let (fx, g, c) = with_session("routing-reload").await;
    std::fs::write(
        &g.config_path,
        "servers: [{name: test/fixture, url: 'http://127.0.0.1:1/mcp', prefix: BAD}]",
    )
    .expect("write");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = c.call_tool(1, "fx_echo", json!({})).await;
    assert_eq!(r.status, 200, "the old config still routes: {}", r.text);
    assert!(r.json["result"].is_object(), "{}", r.text);

    let mut up = Upstream::new("test/fixture", "fy_", fx.port);
    up.hostname = "test-fixture.mcp.local".into();
    std::fs::write(&g.config_path, common::config_yaml(&[up])).expect("write");
    let mut names = Vec::new();
    for _ in 0..100 {
        let list = c.request(json!(2), "tools/list", json!({})).await;
        names = list.json["result"]["tools"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if names.iter().any(|n| n == "fy_echo") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(names.iter().any(|n| n == "fy_echo"), "{names:?}");
    let r = c.call_tool(3, "fy_echo", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        c.call_tool(4, "fx_echo", json!({})).await.json["error"]["code"],
        -32602
    );
    let m = g.metrics().await;
    assert!(
        m.contains("mcp_router_config_reloads_total{result=\"error\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("mcp_router_config_reloads_total{result=\"ok\"} 1"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_get_stream_tells_the_client_when_the_tool_list_changes() {
    use futures_util::StreamExt;
    let (fx, g, c) = with_session("routing-get-stream").await;
    let no_session = c
        .http
        .get(g.url())
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("get");
    assert_eq!(no_session.status(), 400);
    let resp = c
        .http
        .get(g.url())
        .header("accept", "text/event-stream")
        .header("mcp-session-id", c.session.clone().expect("session"))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .starts_with("text/event-stream"));
    let mut body = resp.bytes_stream();

    let mut up = Upstream::new("test/fixture", "fz_", fx.port);
    up.hostname = "test-fixture.mcp.local".into();
    std::fs::write(&g.config_path, common::config_yaml(&[up])).expect("write");

    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !seen.contains("notifications/tools/list_changed") {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .unwrap_or_else(|_| panic!("no list_changed within 15 s; stream so far: {seen:?}"))
            .expect("stream open")
            .expect("chunk");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    // The first change may be the old tools going before the new ones are discovered.
    let mut text = String::new();
    for _ in 0..100 {
        text = c.request(json!(5), "tools/list", json!({})).await.text;
        if text.contains("fz_echo") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(text.contains("fz_echo"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_upstream_sessions_are_closed_and_recreated_on_use() {
    let (fx, _g, c) = with_session_and("routing-idle-close", &["--upstream-session-idle=1"]).await;
    let live_before = fx.state.sessions.lock().expect("lock").len();
    assert_eq!(c.call_tool(1, "fx_echo", json!({})).await.status, 200);
    assert_eq!(
        fx.state.sessions.lock().expect("lock").len(),
        live_before + 1
    );
    let inits = fx.initializes();
    let mut closed = false;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if fx.state.sessions.lock().expect("lock").len() == live_before {
            closed = true;
            break;
        }
    }
    assert!(closed, "the idle upstream session was closed with DELETE");
    let r = c.call_tool(2, "fx_echo", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        fx.initializes(),
        inits + 1,
        "a new upstream session for the next call"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_method_and_name_headers_must_match_and_are_rewritten_with_the_name() {
    let (fx, _g, c) = with_session("routing-mcp-name").await;
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fx_echo","arguments":{}}}"#;
    let r = c
        .post_raw(
            body,
            &[("mcp-method", "tools/call"), ("mcp-name", "fx_echo")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let h = &fx.calls()[0].headers;
    assert_eq!(
        h.get("mcp-name").and_then(|v| v.to_str().ok()),
        Some("echo")
    );
    for (headers, what) in [
        (vec![("mcp-method", "tools/list")], "method"),
        (vec![("mcp-name", "fx_add")], "name"),
    ] {
        let r = c.post_raw(body, &headers).await;
        assert_eq!(r.status, 400, "{what}: {}", r.text);
        assert_eq!(r.json["error"]["code"], -32020, "{what}: {}", r.text);
        assert_eq!(r.json["id"], 1);
    }
    assert_eq!(
        fx.calls().len(),
        1,
        "mismatched requests never reach the upstream"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn discovery_is_traced_and_sessions_are_counted() {
    let (fx, g) = one_fixture("routing-traceparent").await;
    let traceparents = fx.initialize_traceparents();
    assert!(
        !traceparents.is_empty(),
        "discovery's initialize carried no traceparent"
    );
    for t in &traceparents {
        let parts: Vec<&str> = t.split('-').collect();
        assert_eq!(
            (parts.len(), parts[0], parts[1].len()),
            (4, "00", 32),
            "{t}"
        );
    }
    let mut c = Client::new(&g.url());
    c.initialize().await;
    for id in 1..=3 {
        let r = c.call_tool(id, "fx_echo", json!({})).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    // The live-sessions gauge is refreshed every second.
    let mut metrics = String::new();
    for _ in 0..40 {
        metrics = g.metrics().await;
        if metrics.contains("mcp_router_upstream_sessions 1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        metrics.contains("mcp_router_upstream_sessions 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"mcp_router_cache_lookups_total{cache="upstream_sessions",result="miss"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"mcp_router_cache_lookups_total{cache="upstream_sessions",result="hit"} 2"#
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subscribed_resource_update_reaches_the_clients_get_stream() {
    let fx = Fixture::start_with_resources(&["echo"], &["fx://doc"]).await;
    let g = start_gateway(
        "routing-resource-updates",
        &[Upstream::new("test/fixture", "fx_", fx.port)],
        &[],
    )
    .await;
    let mut c = Client::new(&g.url());
    c.initialize().await;
    // The client's GET stream first, then the subscription.
    let stream = c
        .http
        .get(g.url())
        .header("accept", "text/event-stream")
        .header("mcp-session-id", c.session.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let r = c
        .request(json!(1), "resources/subscribe", json!({"uri": "fx://doc"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The gateway listens on the upstream session's GET stream once the subscription
    // succeeded; the fixture announces the change until the client has seen it (discovery's own
    // GET stream is open on the fixture too, so "delivered" alone proves nothing).
    let fx = Arc::new(fx);
    let (found, seen) = Fixture::announce_until_seen(&fx, "fx://doc", stream).await;
    assert!(found, "no update on the client's stream: {seen}");
    assert!(seen.contains("fx://doc"), "{seen}");
}
