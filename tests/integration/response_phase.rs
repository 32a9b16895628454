//! `--response-phase when-needed` through the real Envoy: a plain call to a server known to
//! answer with JSON ends its ext_proc stream with the body answer (two messages), and Envoy puts
//! the gateway session id on the answer from the router's dynamic metadata; what it gives up (an
//! upstream's 404 reaches the client, which starts a new session) still ends in a working call.

use crate::common::fixture::Fixture;
use crate::common::{start_gateway, Client, Upstream};
use serde_json::json;

fn session_header(r: &crate::common::Reply) -> Option<String> {
    r.headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The router's audit lines of routed calls that ended at the body answer (`status=-`).
fn calls_without_response_phase(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("routed call") && l.contains("status=-"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_calls_to_a_json_server_take_two_messages_and_keep_the_gateway_session() {
    let fx = Fixture::start(&["echo"]).await;
    let g = start_gateway(
        "response-phase-when-needed",
        &[Upstream::new("test/fixture", "fx_", fx.port)],
        &["--response-phase", "when-needed"],
    )
    .await;
    let mut c = Client::new(&g.url());
    c.initialize().await;
    let gateway_session = c.session.clone().expect("session");

    // The first call passes the response phase: the router learns that the server answers JSON.
    let r = c.call_tool(1, "fx_echo", json!({"x": 1})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["id"], 1, "{}", r.text);
    assert_eq!(session_header(&r).as_deref(), Some(&*gateway_session));
    g.router.wait_for_log("status=200").await;

    // Later calls end at the body answer; Envoy puts the gateway session id back in place of
    // the upstream's.
    for id in 2..5 {
        let r = c.call_tool(id, "fx_echo", json!({"x": id})).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["id"], id, "{}", r.text);
        assert!(r.json.get("result").is_some(), "{}", r.text);
        assert_eq!(
            session_header(&r).as_deref(),
            Some(&*gateway_session),
            "call {id}: the gateway session id, not the upstream's"
        );
    }
    let log = g.router.wait_for_log("status=-").await;
    assert!(
        calls_without_response_phase(&log) >= 1,
        "no call ended at the body answer:\n{}",
        g.router.log_tail()
    );

    // The upstream forgets its sessions: its 404 reaches the client, which (as MCP says)
    // starts a new gateway session; its calls get a new upstream session.
    fx.forget_sessions();
    let r = c.call_tool(5, "fx_echo", json!({})).await;
    assert_eq!(r.status, 404, "{}", r.text);
    c.initialize().await;
    assert_ne!(c.session.as_deref(), Some(&*gateway_session));
    let r = c.call_tool(6, "fx_echo", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["id"], 6, "{}", r.text);
    assert_eq!(session_header(&r), c.session);
}
