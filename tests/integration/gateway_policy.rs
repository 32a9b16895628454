//! A gateway policy behind the router, through the real Envoy: an RBAC filter after ext_proc on
//! one upstream's route only lets requests through whose `x-mcp-toolname` is allowed (a stand-in
//! for the seed's AuthPolicy `tool-access-check`). Upstream initializes go back through the
//! gateway (`--mcp-gateway-private-host`), so the policy judges them too: by the tool of the call
//! that needs the session, which the router sets from the signed hairpin key, never from the
//! client.

use crate::common::fixture::{Fixture, Seen};
use crate::common::{start_gateway_with_envoy, Client, Reply, Upstream};
use serde_json::{json, Value};

fn header(seen: &Seen, name: &str) -> Option<String> {
    seen.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// What the fixture received through the gateway (discovery goes straight to it and carries
/// no `x-mcp-servername`).
fn through_gateway(fx: &Fixture, method: &str) -> Vec<Seen> {
    fx.state
        .seen
        .lock()
        .expect("lock")
        .iter()
        .filter(|s| s.method == method && s.headers.contains_key("x-mcp-servername"))
        .cloned()
        .collect()
}

async fn call(c: &Client, id: i64, tool: &str, headers: &[(&str, &str)]) -> Reply {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                      "params": {"name": tool, "arguments": {}}});
    c.post_raw(serde_json::to_vec(&body).expect("encode"), headers)
        .await
}

fn assert_forbidden(r: &Reply, id: i64) {
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.content_type(), "application/json", "{}", r.text);
    assert_eq!(r.json["id"], id, "{}", r.text);
    assert_eq!(r.json["error"]["code"], -32006, "{}", r.text);
    let message = r.json["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with("Forbidden") && message.contains("test/fixture"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_after_ext_proc_judges_the_hairpin_initialize_by_the_calls_tool() {
    let fx = Fixture::start(&["echo", "add"]).await;
    let open = Fixture::start(&["ping"]).await;
    open.state
        .resources
        .lock()
        .expect("lock")
        .push(json!({"uri": "fx://docs/readme", "name": "readme"}));
    let g = start_gateway_with_envoy(
        "policy-hairpin",
        &[
            Upstream::new("test/fixture", "fx_", fx.port),
            Upstream::new("test/open", "op_", open.port),
        ],
        &["--mcp-gateway-private-host=127.0.0.1:{envoy_port}"],
        // Only test/fixture's route is guarded; the broker's and test/open's are not.
        &["--allow-tools=test/fixture=echo"],
    )
    .await;

    // The broker's route is not guarded: initialize and lists work.
    let mut alice = Client::new(&g.url());
    alice.initialize().await;
    let list = alice.request(json!(1), "tools/list", json!({})).await;
    assert_eq!(list.status, 200, "{}", list.text);
    // Three tools, and the broker's discover_tools and select_tools (on by default).
    assert_eq!(
        list.json["result"]["tools"].as_array().map(Vec::len),
        Some(5),
        "{}",
        list.text
    );

    // An allowed tool's first call: the initialize it triggers goes through Envoy, where the
    // policy sees the call's tool, and passes. The client's own x-mcp-toolname is ignored.
    let r = call(
        &alice,
        2,
        "fx_echo",
        &[
            ("x-tenant", "acme"),
            ("x-mcp-toolname", "spoofed"),
            ("x-forwarded-for", "203.0.113.9"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["id"], 2);
    assert!(r.json["result"].is_object(), "{}", r.text);
    let inits = through_gateway(&fx, "initialize");
    assert_eq!(inits.len(), 1, "one initialize went through the gateway");
    let init = &inits[0];
    for (name, want) in [
        ("x-mcp-method", Some("initialize")),
        ("x-mcp-servername", Some("test/fixture")),
        ("x-mcp-toolname", Some("echo")),
        // The client's end-to-end headers go along, as on the call itself.
        ("x-tenant", Some("acme")),
        // Never the hairpin's markers, the client's gateway session or the peer headers it sent.
        ("x-mcp-router-key", None),
        ("mcp-init-host", None),
        ("mcp-session-id", None),
    ] {
        assert_eq!(header(init, name).as_deref(), want, "initialize: {name}");
    }
    assert_ne!(
        header(init, "x-forwarded-for").as_deref(),
        Some("203.0.113.9"),
        "the client's x-forwarded-for is not passed on as the gateway's word"
    );
    let notified = through_gateway(&fx, "notifications/initialized");
    assert_eq!(
        notified.len(),
        1,
        "notifications/initialized went through too"
    );
    assert_eq!(
        header(&notified[0], "x-mcp-toolname").as_deref(),
        Some("echo")
    );
    let calls = through_gateway(&fx, "tools/call");
    assert_eq!(calls.len(), 1);
    assert_eq!(header(&calls[0], "x-mcp-toolname").as_deref(), Some("echo"));
    assert_eq!(header(&calls[0], "x-tenant").as_deref(), Some("acme"));

    // A tool the policy does not allow, in the session that now exists: the call itself is
    // refused (RBAC's bare 403 becomes a JSON-RPC error with the request's id).
    let r = call(&alice, 3, "fx_add", &[("x-mcp-toolname", "echo")]).await;
    assert_forbidden(&r, 3);

    // A tool the policy does not allow as the first call of a session: its initialize is
    // refused by the policy, even with a client-sent x-mcp-toolname that the policy allows.
    let mut bob = Client::new(&g.url());
    bob.initialize().await;
    let r = call(&bob, 4, "fx_add", &[("x-mcp-toolname", "echo")]).await;
    assert_forbidden(&r, 4);
    assert!(
        r.json["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("initialize")),
        "{}",
        r.text
    );
    assert_eq!(
        through_gateway(&fx, "initialize").len(),
        1,
        "bob's initialize never reached the upstream"
    );
    assert!(
        fx.calls()
            .iter()
            .all(|c| !String::from_utf8_lossy(&c.body).contains("\"add\"")),
        "no call of the refused tool reached the upstream"
    );
    // The refused initialize is not remembered: an allowed tool then opens bob's session.
    let r = call(&bob, 5, "fx_echo", &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(through_gateway(&fx, "initialize").len(), 2);

    // Two refused tools and an allowed one as concurrent first calls of a session: whichever
    // starts the initialize they share, the allowed one is served (a call that waited on an
    // initialize refused for another call's tool tries again, until it runs its own), and the
    // refused ones are refused.
    for round in 0..5 {
        let mut dave = Client::new(&g.url());
        dave.initialize().await;
        let (add, echo, add_again) = tokio::join!(
            call(&dave, 100 + round, "fx_add", &[]),
            call(&dave, 200 + round, "fx_echo", &[]),
            call(&dave, 300 + round, "fx_add", &[]),
        );
        assert_forbidden(&add, 100 + round);
        assert_forbidden(&add_again, 300 + round);
        assert_eq!(echo.status, 200, "round {round}: {}", echo.text);
        assert_eq!(echo.json["id"], 200 + round, "{}", echo.text);
    }
    assert_eq!(
        through_gateway(&fx, "initialize").len(),
        7,
        "each round opened one session"
    );

    // A route the policy does not guard, and a resource: its initialize names the URI, as the
    // call does.
    let r = alice
        .request(
            json!(6),
            "resources/read",
            json!({"uri": "fx://docs/readme"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["id"], 6);
    let inits = through_gateway(&open, "initialize");
    assert_eq!(inits.len(), 1);
    for (name, want) in [
        ("x-mcp-method", Some("initialize")),
        ("x-mcp-servername", Some("test/open")),
        ("x-mcp-resourceuri", Some("fx://docs/readme")),
        ("x-mcp-toolname", None),
    ] {
        assert_eq!(
            header(&inits[0], name).as_deref(),
            want,
            "initialize: {name}"
        );
    }
    let reads: Vec<Value> = through_gateway(&open, "resources/read")
        .iter()
        .map(|s| json!(header(s, "x-mcp-resourceuri")))
        .collect();
    assert_eq!(reads, [json!("fx://docs/readme")]);

    // A stateless (2026-07-28) caller: its upstream session is kept per caller, and what changes
    // with every request (trace context, baggage, Mcp-Param-*) makes no new caller; a header
    // that says who it is (a tenant) does.
    let stateless = Client::new(&g.url());
    let before = through_gateway(&open, "initialize").len();
    for (id, tenant, trace) in [(7, "acme", "a"), (8, "acme", "b"), (9, "globex", "c")] {
        let baggage = format!("request={trace}");
        let tracestate = format!("vendor={trace}");
        let r = call(
            &stateless,
            id,
            "op_ping",
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "op_ping"),
                ("x-tenant", tenant),
                ("baggage", &baggage),
                ("tracestate", &tracestate),
                ("mcp-param-region", trace),
            ],
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["id"], id, "{}", r.text);
        assert_eq!(r.json["result"]["resultType"], "complete", "{}", r.text);
    }
    assert_eq!(
        through_gateway(&open, "initialize").len() - before,
        2,
        "one upstream session per tenant, not one per request"
    );
}
