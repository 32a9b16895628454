//! Config reloads between a request's phases: a request is judged by the config its headers
//! were, whatever happens before its body.

use super::{call, immediate, pairs, post, set_headers, Gateway, SERVERS};

const ISSUER: &str = "http://issuer.example";

/// A JWKS endpoint on 127.0.0.1 serving the test key (`k1`): its URL.
async fn identity_provider() -> String {
    use jsonwebtoken::jwk::Jwk;
    let mut jwk =
        Jwk::from_encoding_key(&encoding_key(), jsonwebtoken::Algorithm::ES256).expect("jwk");
    jwk.common.key_id = Some("k1".into());
    let jwks = serde_json::json!({ "keys": [jwk] });
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let jwks = jwks.clone();
            async move { axum::Json(jwks) }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/jwks", l.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(l, app).await });
    url
}

fn encoding_key() -> jsonwebtoken::EncodingKey {
    jsonwebtoken::EncodingKey::from_ec_pem(include_bytes!(
        "../../../examples/test_idp/keys/trusted-header.pem"
    ))
    .expect("key")
}

/// A token of `sub` that may use `tools` of `ns/kube`.
fn token(sub: &str, tools: &[&str]) -> String {
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    h.kid = Some("k1".into());
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": sub, "exp": 4_000_000_000u64,
        "resource_access": {"ns/kube": {"roles": tools}},
    });
    jsonwebtoken::encode(&h, &claims, &encoding_key()).expect("sign")
}

fn with_auth(jwks: &str) -> String {
    format!("auth: {{issuer: '{ISSUER}', jwksUri: '{jwks}'}}\n{SERVERS}")
}

/// The defect of issue 12: the stream read the config again at the body, so a reload between a
/// request's headers and its body judged the body by another config than the headers. Here
/// native auth is on when the headers arrive (the caller is verified; it may use `pods_list`
/// only) and off when its body does: the call of a tool it may not use must still be refused,
/// by the config its headers were judged by.
#[tokio::test]
async fn a_reload_between_headers_and_body_does_not_skip_the_permission_check() {
    let jwks = identity_provider().await;
    let mut gw = Gateway::start(&with_auth(&jwks)).await;
    let bearer = format!("Bearer {}", token("alice", &["pods_list"]));
    let binding = crate::auth::session::subject_binding(ISSUER, "alice");
    let (session, jti) = gw.session(Some(&binding));
    gw.seed(&jti, "ns/kube", "up-1").await;

    let mut h = post(&session);
    h.push(("authorization", bearer.clone()));
    // Allowed, as a control.
    let mut envoy = gw.open().await;
    assert_eq!(
        immediate(&envoy.request_headers(&pairs(&h), false).await),
        None
    );
    let b = envoy.request_body(&call(1, "kube_pods_list")).await;
    assert_eq!(immediate(&b), None, "pods_list is allowed");

    let mut envoy = gw.open().await;
    assert_eq!(
        immediate(&envoy.request_headers(&pairs(&h), false).await),
        None
    );
    gw.reload(SERVERS);
    let b = envoy.request_body(&call(2, "kube_secrets_list")).await;
    let (status, body) = immediate(&b).expect("refused, not routed upstream");
    assert_eq!((status, &body["id"]), (403, &serde_json::json!(2)));
    assert_eq!(body["error"]["code"], crate::mcp::code::FORBIDDEN);
}

/// The other direction: native auth turned on between a request's headers (let through without
/// a token) and its body. The request is judged by the config its headers were: it goes on as
/// it started, and the next request meets native auth.
#[tokio::test]
async fn a_reload_that_turns_auth_on_applies_from_the_next_request() {
    let jwks = identity_provider().await;
    let mut gw = Gateway::start(SERVERS).await;
    let (session, jti) = gw.session(None);
    gw.seed(&jti, "ns/kube", "up-1").await;
    let mut envoy = gw.open().await;
    assert_eq!(
        immediate(&envoy.request_headers(&pairs(&post(&session)), false).await),
        None
    );
    gw.reload(&with_auth(&jwks));
    let b = envoy.request_body(&call(1, "kube_pods_list")).await;
    assert_eq!(
        set_headers(&b).get(":authority").map(String::as_str),
        Some("kube.local")
    );

    let mut envoy = gw.open().await;
    let h = envoy.request_headers(&pairs(&post(&session)), false).await;
    let (status, _) = immediate(&h).expect("the next request meets native auth");
    assert_eq!(status, 401);
    assert!(set_headers(&h).contains_key("www-authenticate"));
}
