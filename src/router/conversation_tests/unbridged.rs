//! A stateless (2026-07-28) client bridged onto a session-era upstream cannot be asked anything:
//! a request that upstream sends on the call's SSE stream becomes an error answer to the
//! client's request, and what follows is dropped.

use super::streams::new_body;
use super::{immediate, Gateway, SERVERS};

#[tokio::test]
async fn an_upstream_request_to_a_stateless_client_is_answered_with_an_error() {
    let mut gw = Gateway::start(SERVERS).await;
    gw.seed_as(
        &"caller:anonymous".into(),
        "ns/kube",
        Some("up-1"),
        "2025-11-25",
    )
    .await;
    let mut envoy = gw.open().await;
    envoy
        .request_headers(
            &[
                (":method", "POST"),
                (":path", "/mcp"),
                ("content-type", "application/json"),
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "kube_pods_list"),
            ],
            false,
        )
        .await;
    let b = envoy
        .request_body(
            r#"{"jsonrpc":"2.0","id":"c-1","method":"tools/call","params":{"name":"kube_pods_list","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"sampling":{}}}}}"#,
        )
        .await;
    assert_eq!(immediate(&b), None, "routed");
    envoy
        .response_headers(&[(":status", "200"), ("content-type", "text/event-stream")])
        .await;
    let asked = envoy
        .response_body(
            "id: 1\ndata: {\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"sampling/createMessage\",\"params\":{}}\n\n",
            false,
        )
        .await;
    let sent = new_body(&asked).expect("the request replaced");
    let msg: serde_json::Value = serde_json::from_str(
        sent.strip_prefix("event: message\ndata: ")
            .and_then(|s| s.strip_suffix("\n\n"))
            .expect("one event"),
    )
    .expect("json");
    assert_eq!(msg["id"], "c-1");
    assert_eq!(msg["error"]["code"], -32603);
    assert_eq!(msg["error"]["data"]["method"], "sampling/createMessage");
    let rest = envoy
        .response_body(
            "data: {\"jsonrpc\":\"2.0\",\"id\":\"c-1\",\"result\":{}}\n\n",
            true,
        )
        .await;
    assert_eq!(new_body(&rest).as_deref(), Some(""), "dropped");
}
