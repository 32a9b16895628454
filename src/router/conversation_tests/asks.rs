//! A stateless (2026-07-28) client bridged onto a session-era upstream is asked what that upstream
//! asks during its call through an input-required result; its retry replays the call and the
//! upstream's question is answered from the client's `inputResponses` (`router::asks`).

use super::streams::new_body;
use super::{immediate, stateless, Envoy, Gateway, SERVERS};

/// The stand-in session of an anonymous caller that declares sampling.
const CALLER: &str = r#"caller:anonymous+asks:{"sampling":{}}"#;

fn call(extra: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":"c-1","method":"tools/call","params":{{"name":"kube_pods_list","arguments":{{}}{extra},"_meta":{{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{{"sampling":{{}}}}}}}}}}"#
    )
}

async fn send_call(
    gw: &mut Gateway,
    body: &str,
) -> (
    Envoy,
    envoy_types::pb::envoy::service::ext_proc::v3::ProcessingResponse,
) {
    let mut envoy = gw.open().await;
    envoy
        .request_headers(&stateless("tools/call", "kube_pods_list"), false)
        .await;
    let b = envoy.request_body(body).await;
    (envoy, b)
}

/// The upstream's questions on its stream ([`ASKS`]) are answered by the router and not passed to
/// the client; the result that follows reaches the client marked complete: the call went on.
async fn answered_then_completed(envoy: &mut Envoy) {
    let asked = envoy.response_body(ASKS, false).await;
    assert_eq!(new_body(&asked).as_deref(), Some(""), "not for the client");
    let done = envoy
        .response_body(
            "data: {\"jsonrpc\":\"2.0\",\"id\":\"c-1\",\"result\":{\"content\":[]}}\n\n",
            true,
        )
        .await;
    let body = new_body(&done).expect("marked complete");
    assert!(
        body.contains(r#""resultType":"complete""#),
        "the call went on: {body}"
    );
}

fn one_event(body: &str) -> serde_json::Value {
    serde_json::from_str(
        body.strip_prefix("event: message\ndata: ")
            .and_then(|s| s.strip_suffix("\n\n"))
            .expect("one event"),
    )
    .expect("json")
}

const ASKS: &str = "id: 1\ndata: {\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"sampling/createMessage\",\"params\":{\"maxTokens\":5}}\n\n";

#[tokio::test]
async fn an_upstream_request_is_asked_of_a_stateless_client_and_answered_on_its_retry() {
    let mut gw = Gateway::start(SERVERS).await;
    gw.seed_as(&CALLER.into(), "ns/kube", Some("up-1"), "2025-11-25")
        .await;
    // First round: the upstream asks; the client gets an input-required result.
    let (mut envoy, b) = send_call(&mut gw, &call("")).await;
    assert_eq!(immediate(&b), None, "routed over the caller's session");
    envoy
        .response_headers(&[(":status", "200"), ("content-type", "text/event-stream")])
        .await;
    let asked = envoy.response_body(ASKS, false).await;
    let msg = one_event(&new_body(&asked).expect("the request replaced"));
    assert_eq!(msg["id"], "c-1");
    assert_eq!(msg["result"]["resultType"], "input_required");
    let question = &msg["result"]["inputRequests"]["mcpgw.ask.0"];
    assert_eq!(question["method"], "sampling/createMessage");
    assert_eq!(question["params"]["maxTokens"], 5);
    let state = msg["result"]["requestState"]
        .as_str()
        .expect("requestState")
        .to_owned();
    let rest = envoy
        .response_body(
            "data: {\"jsonrpc\":\"2.0\",\"id\":\"c-1\",\"result\":{}}\n\n",
            true,
        )
        .await;
    assert_eq!(new_body(&rest).as_deref(), Some(""), "dropped");

    // The retry: the same question is answered from inputResponses, the result goes through.
    let answer = r#"{"role":"assistant","content":{"type":"text","text":"hi"},"model":"m"}"#;
    let retry = call(&format!(
        r#","requestState":"{state}","inputResponses":{{"mcpgw.ask.0":{answer}}}"#
    ));
    let (mut envoy, b) = send_call(&mut gw, &retry).await;
    assert_eq!(immediate(&b), None, "routed");
    envoy
        .response_headers(&[(":status", "200"), ("content-type", "text/event-stream")])
        .await;
    answered_then_completed(&mut envoy).await;

    // A state the gateway did not give, or gave for another call, is refused.
    for (bad, why) in [
        (format!("{state}x"), "tampered"),
        ("not-a-state".to_owned(), "made up"),
    ] {
        let (_, b) = send_call(&mut gw, &call(&format!(r#","requestState":"{bad}""#))).await;
        let (status, body) = immediate(&b).expect(why);
        assert_eq!(
            (status, body["error"]["code"].as_i64()),
            (400, Some(-32602)),
            "{why}"
        );
        assert_eq!(body["id"], "c-1");
    }
    // An answer that is not one to the question asked is not passed on.
    let wrong = call(&format!(
        r#","requestState":"{state}","inputResponses":{{"mcpgw.ask.0":{{"content":"hi"}}}}"#
    ));
    let (_, b) = send_call(&mut gw, &wrong).await;
    let (status, body) = immediate(&b).expect("refused");
    assert_eq!(
        (status, body["error"]["code"].as_i64()),
        (400, Some(-32602))
    );
    let message = body["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("sampling/createMessage"), "{message}");
}

#[tokio::test]
async fn what_a_stateless_client_did_not_declare_is_refused_to_the_upstream_not_the_client() {
    let mut gw = Gateway::start(SERVERS).await;
    gw.seed_as(
        &"caller:anonymous".into(),
        "ns/kube",
        Some("up-1"),
        "2025-11-25",
    )
    .await;
    let body = r#"{"jsonrpc":"2.0","id":"c-1","method":"tools/call","params":{"name":"kube_pods_list","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    let (mut envoy, b) = send_call(&mut gw, body).await;
    assert_eq!(immediate(&b), None, "routed");
    envoy
        .response_headers(&[(":status", "200"), ("content-type", "text/event-stream")])
        .await;
    answered_then_completed(&mut envoy).await;
}
