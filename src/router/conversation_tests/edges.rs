//! The other ways through the router, one conversation each: refusals before the body, the
//! hairpin, relayed traffic, a stateless client on a session-era upstream, browsers.

use super::{call, immediate, pairs, post, set_headers, stateless, Gateway, SERVERS};
use crate::router::relay::tag;

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let mut gw = Gateway::start(SERVERS).await;
    let (token, _) = gw.session(None);
    let mut envoy = gw.open().await;
    envoy.request_headers(&pairs(&post(&token)), false).await;
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{}"}}}}"#,
        "x".repeat(65 * 1024)
    );
    let (status, body) = immediate(&envoy.request_body(&big).await).expect("refused");
    assert_eq!(status, 413);
    assert_eq!(body["error"]["code"], crate::mcp::code::REQUEST_TOO_LARGE);
    assert!(envoy.ends_unprompted().await);
}

#[tokio::test]
async fn a_hairpin_initialize_goes_straight_to_its_server() {
    let mut gw = Gateway::start(SERVERS).await;
    let key = gw.router.keys.mint_hairpin("ns/kube", None).expect("key");
    let mut envoy = gw.open().await;
    let h = envoy
        .request_headers(
            &[
                (":method", "POST"),
                (":path", "/mcp"),
                ("content-type", "application/json"),
                ("x-mcp-router-key", &key),
            ],
            false,
        )
        .await;
    let set = set_headers(&h);
    assert_eq!(
        set.get(":authority").map(String::as_str),
        Some("kube.local")
    );
    assert_eq!(
        set.get("x-mcp-method").map(String::as_str),
        Some("initialize")
    );
    assert!(envoy.ends_unprompted().await);
}

#[tokio::test]
async fn a_clients_answer_to_an_upstreams_request_goes_back_to_that_upstream() {
    let mut gw = Gateway::start(SERVERS).await;
    let (token, jti) = gw.session(None);
    gw.seed(&jti, "ns/kube", "up-1").await;
    let mut envoy = gw.open().await;
    envoy.request_headers(&pairs(&post(&token)), false).await;
    let answer = format!(
        r#"{{"jsonrpc":"2.0","id":"{}","result":{{}}}}"#,
        tag("ns/kube", "7")
    );
    let b = envoy.request_body(&answer).await;
    assert_eq!(immediate(&b), None);
    let set = set_headers(&b);
    assert_eq!(
        set.get(":authority").map(String::as_str),
        Some("kube.local")
    );
    assert_eq!(set.get("mcp-session-id").map(String::as_str), Some("up-1"));
    assert_eq!(set.get("content-length").map(String::as_str), Some("36"));
}

#[tokio::test]
async fn a_get_with_a_tagged_last_event_id_resumes_at_its_upstream() {
    let mut gw = Gateway::start(SERVERS).await;
    let (token, jti) = gw.session(None);
    gw.seed(&jti, "ns/kube", "up-1").await;
    let mut envoy = gw.open().await;
    let last = tag("ns/kube", "3-1");
    let h = envoy
        .request_headers(
            &[
                (":method", "GET"),
                (":path", "/mcp"),
                ("mcp-session-id", &token),
                ("last-event-id", &last),
            ],
            true,
        )
        .await;
    let set = set_headers(&h);
    assert_eq!(
        set.get(":authority").map(String::as_str),
        Some("kube.local")
    );
    assert_eq!(set.get("last-event-id").map(String::as_str), Some("3-1"));
    // Without its session, nothing to resume: 404 from the one reply module.
    let mut envoy = gw.open().await;
    let h = envoy
        .request_headers(
            &[
                (":method", "GET"),
                (":path", "/mcp"),
                ("mcp-session-id", "forged"),
                ("last-event-id", &last),
            ],
            true,
        )
        .await;
    assert_eq!(immediate(&h).map(|(s, _)| s), Some(404));
}

#[tokio::test]
async fn a_stateless_clients_json_result_from_a_session_era_upstream_is_marked_complete() {
    let mut gw = Gateway::start(SERVERS).await;
    // Without auth or a private host, stateless callers without credentials are one caller.
    gw.seed(&"caller:anonymous".into(), "ns/kube", "up-1").await;
    let mut envoy = gw.open().await;
    envoy
        .request_headers(&stateless("tools/call", "kube_pods_list"), false)
        .await;
    let b = envoy.request_body(&call(5, "kube_pods_list")).await;
    assert_eq!(immediate(&b), None);
    let r = envoy
        .response_headers(&[(":status", "200"), ("content-type", "application/json")])
        .await;
    assert!(
        r.mode_override.is_some(),
        "the body is buffered to be bridged"
    );
    let body = envoy
        .response_body(r#"{"jsonrpc":"2.0","id":5,"result":{"content":[]}}"#, true)
        .await;
    let bridged = super::streams::new_body(&body).expect("the body rewritten");
    assert!(bridged.contains(r#""resultType":"complete""#), "{bridged}");
    assert!(envoy.still_answers().await, "left for Envoy to end");
    assert!(envoy.ended().await);
}

#[tokio::test]
async fn browsers_get_preflights_answered_and_foreign_origins_refused() {
    let mut gw = Gateway::start(SERVERS).await;
    let mut envoy = gw.open().await;
    let h = envoy
        .request_headers(
            &[
                (":method", "OPTIONS"),
                (":path", "/mcp"),
                ("origin", "http://localhost:6274"),
                ("access-control-request-headers", "content-type"),
            ],
            true,
        )
        .await;
    let (status, _) = immediate(&h).expect("answered here");
    assert_eq!(status, 204);
    assert_eq!(
        set_headers(&h)
            .get("access-control-allow-origin")
            .map(String::as_str),
        Some("http://localhost:6274")
    );
    // The broker's answer to a browser gets the CORS headers on its response headers; then the
    // router ends the stream itself: the broker's event stream may be long-lived.
    let mut envoy = gw.open().await;
    let h = envoy
        .request_headers(
            &[
                (":method", "GET"),
                (":path", "/mcp"),
                ("origin", "http://localhost:6274"),
            ],
            true,
        )
        .await;
    assert_eq!(immediate(&h), None);
    let r = envoy
        .response_headers(&[(":status", "200"), ("content-type", "text/event-stream")])
        .await;
    assert_eq!(
        set_headers(&r)
            .get("access-control-allow-origin")
            .map(String::as_str),
        Some("http://localhost:6274")
    );
    assert!(
        envoy.ends_unprompted().await,
        "not held for the broker's stream"
    );
    let mut envoy = gw.open().await;
    let h = envoy
        .request_headers(
            &[
                (":method", "POST"),
                (":path", "/mcp"),
                ("content-type", "application/json"),
                ("origin", "https://evil.example.com"),
            ],
            false,
        )
        .await;
    assert_eq!(immediate(&h).map(|(s, _)| s), Some(403));
    assert!(envoy.ends_unprompted().await);
}
