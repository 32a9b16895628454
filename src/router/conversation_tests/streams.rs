//! Streams past the request: an upstream's SSE body through the router, the broker's path.

use envoy_types::pb::envoy::service::ext_proc::v3::{
    body_mutation, processing_response::Response as Answer, ProcessingResponse,
};

use super::{call, pairs, post, set_headers, Gateway, SERVERS};

/// A body answer's new body, as text (`None` when the body is left as it is).
pub(super) fn new_body(r: &ProcessingResponse) -> Option<String> {
    let (Some(Answer::RequestBody(b)) | Some(Answer::ResponseBody(b))) = &r.response else {
        return None;
    };
    match b
        .response
        .as_ref()?
        .body_mutation
        .as_ref()?
        .mutation
        .as_ref()?
    {
        body_mutation::Mutation::Body(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

#[tokio::test]
async fn an_upstreams_sse_stream_is_tagged_chunk_by_chunk() {
    let mut gw = Gateway::start(SERVERS).await;
    let (token, jti) = gw.session(None);
    gw.seed(&jti, "ns/kube", "up-1").await;
    let mut envoy = gw.open().await;
    envoy.request_headers(&pairs(&post(&token)), false).await;
    envoy.request_body(&call(6, "kube_pods_list")).await;
    let r = envoy
        .response_headers(&[(":status", "200"), ("content-type", "text/event-stream")])
        .await;
    assert!(
        r.mode_override.is_some(),
        "the body is streamed through the router"
    );
    let chunk = envoy
        .response_body(
            "id: 5\ndata: {\"jsonrpc\":\"2.0\",\"id\":6,\"result\":{}}\n\n",
            false,
        )
        .await;
    let tagged = new_body(&chunk).expect("the event id tagged");
    assert!(tagged.contains("id: mcpgw."), "{tagged}");
    envoy.response_body("", true).await;
    assert!(envoy.still_answers().await, "left for Envoy to end");
    assert!(envoy.ended().await);
}

#[tokio::test]
async fn what_the_broker_answers_goes_there_and_the_stream_ends() {
    let mut gw = Gateway::start(SERVERS).await;
    let mut envoy = gw.open().await;
    let h = envoy
        .request_headers(
            &[
                (":method", "GET"),
                (":path", "/mcp"),
                ("x-mcp-servername", "spoofed"),
            ],
            true,
        )
        .await;
    let set = set_headers(&h);
    assert_eq!(
        set.get("x-mcp-servername").map(String::as_str),
        Some("mcpBroker")
    );
    assert_eq!(
        set.get(":authority").map(String::as_str),
        Some("gw.example.com")
    );
    assert!(envoy.ends_unprompted().await);
}

/// A routed call's response headers are the last message Envoy sends (the response body is not
/// sent, trailers never are): the router leaves the stream for Envoy to end rather than ending
/// it (its trailers and the resets of both sides spared), and still answers whatever comes.
#[tokio::test]
async fn after_the_last_phase_the_stream_is_left_for_envoy_to_end() {
    let mut gw = Gateway::start(SERVERS).await;
    let (token, jti) = gw.session(None);
    gw.seed(&jti, "ns/kube", "up-1").await;
    let mut envoy = gw.open().await;
    envoy.request_headers(&pairs(&post(&token)), false).await;
    envoy.request_body(&call(1, "kube_pods_list")).await;
    let r = envoy
        .response_headers(&[(":status", "200"), ("content-type", "application/json")])
        .await;
    assert!(r.mode_override.is_none(), "the body is not asked for");
    // Still open: a message Envoy would send only if configured to is passed on unchanged.
    assert!(envoy.still_answers().await, "left for Envoy to end");
    assert!(envoy.ended().await, "ends with Envoy's side");
}

/// `--response-phase when-needed`: a call to a server not yet seen answering keeps the response
/// phase (the router learns it answers JSON); the next plain call ends the stream with the body
/// answer and hands Envoy the gateway session id to put on the response.
#[tokio::test]
async fn a_plain_call_to_a_json_server_ends_with_the_body_answer_when_needed_only() {
    use crate::router::response_phase::{Mode, NAMESPACE, SESSION_KEY};
    let mut gw = Gateway::start_with(SERVERS, Mode::WhenNeeded).await;
    let (token, jti) = gw.session(None);
    gw.seed(&jti, "ns/kube", "up-1").await;
    let mut envoy = gw.open().await;
    envoy.request_headers(&pairs(&post(&token)), false).await;
    let b = envoy.request_body(&call(1, "kube_pods_list")).await;
    assert!(b.dynamic_metadata.is_none(), "not known to answer JSON yet");
    let r = envoy
        .response_headers(&[(":status", "200"), ("content-type", "application/json")])
        .await;
    assert_eq!(
        set_headers(&r).get("mcp-session-id").map(String::as_str),
        Some(token.as_str())
    );
    assert!(envoy.ended().await);

    let mut envoy = gw.open().await;
    envoy.request_headers(&pairs(&post(&token)), false).await;
    let b = envoy.request_body(&call(2, "kube_pods_list")).await;
    let metadata = b.dynamic_metadata.expect("the session id for Envoy");
    let Some(envoy_types::pb::google::protobuf::value::Kind::StructValue(ns)) =
        &metadata.fields[NAMESPACE].kind
    else {
        panic!("a struct under {NAMESPACE}: {metadata:?}")
    };
    assert_eq!(
        ns.fields[SESSION_KEY].kind,
        Some(envoy_types::pb::google::protobuf::value::Kind::StringValue(
            token.clone()
        ))
    );
    assert!(envoy.ends_unprompted().await, "no response phase");
}
