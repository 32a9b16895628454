//! CORS through the real Envoy and mcp-router: browsers on an allowed origin get their
//! preflights answered by the router (204) and `Access-Control-*` headers on every answer (the
//! broker's, an upstream's JSON or SSE, the router's own errors); other origins get 403, and
//! requests without `Origin` get no CORS headers at all.

use crate::common;
use std::sync::atomic::Ordering;

use crate::common::fixture::Fixture;
use crate::common::{start_gateway, start_gateway_with, Client, Reply, Upstream};
use reqwest::header::HeaderMap;
use serde_json::json;

const APP: &str = "https://app.example.org";
const INSPECTOR: &str = "http://localhost:6274";
const EVIL: &str = "https://evil.example.com";

fn one<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let all: Vec<&str> = h
        .get_all(name)
        .iter()
        .map(|v| v.to_str().expect("ascii"))
        .collect();
    assert!(all.len() <= 1, "{name} more than once: {all:?}");
    all.first().copied()
}

/// Every value of `vary`, split at commas, lower case.
fn vary(h: &HeaderMap) -> Vec<String> {
    h.get_all("vary")
        .iter()
        .flat_map(|v| v.to_str().expect("ascii").split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .collect()
}

/// The headers of an answer to a browser on `origin`.
#[track_caller]
fn assert_cors(h: &HeaderMap, origin: &str, what: &str) {
    assert_eq!(
        one(h, "access-control-allow-origin"),
        Some(origin),
        "{what}: {h:?}"
    );
    let exposed = one(h, "access-control-expose-headers").unwrap_or("");
    for name in ["mcp-session-id", "mcp-protocol-version", "www-authenticate"] {
        assert!(
            exposed
                .split(',')
                .any(|e| e.trim().eq_ignore_ascii_case(name)),
            "{what}: {name} not exposed: {h:?}"
        );
    }
    assert!(vary(h).contains(&"origin".to_owned()), "{what}: {h:?}");
    assert_eq!(
        one(h, "access-control-allow-credentials"),
        None,
        "{what}: {h:?}"
    );
}

#[track_caller]
fn assert_no_cors(h: &HeaderMap, what: &str) {
    for (k, _) in h {
        assert!(
            !k.as_str().starts_with("access-control-"),
            "{what}: {k} on a request without CORS: {h:?}"
        );
    }
    assert!(!vary(h).contains(&"origin".to_owned()), "{what}: {h:?}");
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

/// `tools/call fx_echo` on `c`'s session, from `origin` when given.
async fn call(c: &Client, id: i64, origin: Option<&str>) -> Reply {
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"fx_echo","arguments":{{}}}}}}"#
    );
    match origin {
        Some(o) => c.post_raw(body, &[("origin", o)]).await,
        None => c.post_raw(body, &[]).await,
    }
}

async fn preflight(url: &str, origin: &str, request_headers: &str) -> reqwest::Response {
    http()
        .request(reqwest::Method::OPTIONS, url)
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", request_headers)
        .send()
        .await
        .expect("preflight")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_on_allowed_origins_get_cors_and_others_do_not() {
    let fx = Fixture::start(&["echo"]).await;
    let g = start_gateway(
        "cors",
        &[Upstream::new("test/fixture", "fx_", fx.port)],
        &[&format!("--allowed-origins={APP}")],
    )
    .await;
    let url = g.url();
    let base = format!("http://127.0.0.1:{}", g.port);

    // Preflights: answered by the router, 204, what MCP clients send echoed back.
    let asked = "authorization,content-type,mcp-param-region,mcp-protocol-version,mcp-session-id";
    let r = preflight(&url, APP, asked).await;
    assert_eq!(r.status(), 204, "{:?}", r.headers());
    let h = r.headers().clone();
    assert_cors(&h, APP, "preflight");
    assert_eq!(
        one(&h, "access-control-allow-methods"),
        Some("GET, POST, DELETE, OPTIONS")
    );
    assert_eq!(
        one(&h, "access-control-allow-headers"),
        Some("authorization, content-type, mcp-param-region, mcp-protocol-version, mcp-session-id")
    );
    assert_eq!(one(&h, "access-control-max-age"), Some("7200"));
    assert_eq!(r.text().await.expect("body"), "");
    // A header no client may set: the fixed list, which does not name it (the browser refuses).
    let r = preflight(&url, APP, "content-type,x-mcp-toolname").await;
    assert_eq!(r.status(), 204);
    let allowed = one(r.headers(), "access-control-allow-headers").unwrap_or("");
    assert!(
        allowed.contains("mcp-session-id") && !allowed.contains("x-mcp-toolname"),
        "{allowed}"
    );
    // The metadata document (the TypeScript SDK sends MCP-Protocol-Version with it).
    let r = preflight(
        &format!("{base}/.well-known/oauth-protected-resource/mcp"),
        INSPECTOR,
        "mcp-protocol-version",
    )
    .await;
    assert_eq!(r.status(), 204);
    assert_cors(r.headers(), INSPECTOR, "metadata preflight");
    // Without Origin an OPTIONS is no preflight: the broker's answer as before, no CORS.
    let r = http()
        .request(reqwest::Method::OPTIONS, &url)
        .send()
        .await
        .expect("options");
    assert_eq!(r.status(), 405);
    assert_no_cors(r.headers(), "OPTIONS without Origin");
    // An origin that is not allowed: 403 as before, and nothing that would let a page read it.
    let r = preflight(&url, EVIL, asked).await;
    assert_eq!(r.status(), 403);
    assert_no_cors(r.headers(), "preflight from a foreign origin");

    // initialize and the rest of the broker's answers.
    let mut c = Client::new(&url);
    let o = [("origin", APP)];
    let init = c
        .post_raw(
            serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "browser", "version": "1"}}})).unwrap(),
            &o,
        )
        .await;
    assert_eq!(init.status, 200, "{}", init.text);
    assert_cors(&init.headers, APP, "initialize");
    c.session = init
        .headers
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_owned());
    assert!(c.session.is_some());
    let n = c
        .post_raw(
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            &o,
        )
        .await;
    assert_eq!(n.status, 202, "{}", n.text);
    assert_cors(&n.headers, APP, "notification");
    let list = c
        .post_raw(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#, &o)
        .await;
    assert_eq!(list.json["result"]["tools"][0]["name"], "fx_echo");
    assert_cors(&list.headers, APP, "tools/list");

    // Routed calls: the upstream's answer, JSON, with CORS headers of its own (replaced, its
    // credentials dropped, its Vary kept) …
    fx.state.own_cors.store(true, Ordering::SeqCst);
    let r = call(&c, 2, Some(APP)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json.get("result").is_some(), "{}", r.text);
    assert_cors(&r.headers, APP, "routed call");
    // The gateway checked the browser's Origin; the upstream is not shown it (its own origin
    // list would refuse the browser).
    let calls = fx.calls();
    let seen = calls.last().expect("the call reached the upstream");
    assert_eq!(seen.headers.get("origin"), None, "{:?}", seen.headers);
    assert!(
        vary(&r.headers).contains(&"accept-encoding".to_owned()),
        "{:?}",
        r.headers
    );
    // … and SSE.
    fx.state.own_cors.store(false, Ordering::SeqCst);
    fx.state.sse_calls.store(true, Ordering::SeqCst);
    let r = call(&c, 3, Some(INSPECTOR)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.content_type().starts_with("text/event-stream"), "{r:?}");
    assert_eq!(r.json["id"], 3, "{}", r.text);
    assert!(r.json.get("result").is_some(), "{}", r.text);
    assert_cors(&r.headers, INSPECTOR, "routed SSE call");

    // The router's own errors: an unknown session (404), a parse error (400).
    let stranger = Client {
        session: Some("not-a-session".into()),
        ..Client::new(&url)
    };
    let r = call(&stranger, 4, Some(APP)).await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(r.json["error"]["code"], -32001, "{}", r.text);
    assert_cors(&r.headers, APP, "unknown session");
    let r = c.post_raw("{not json", &o).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_cors(&r.headers, APP, "parse error");

    // The broker's GET stream (headers as soon as it opens) and the metadata document.
    let session = c.session.clone().unwrap();
    let r = http()
        .get(&url)
        .header("origin", APP)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    assert_cors(r.headers(), APP, "GET stream");
    drop(r);
    let r = http()
        .get(format!("{base}/.well-known/oauth-protected-resource/mcp"))
        .header("origin", INSPECTOR)
        .send()
        .await
        .expect("metadata");
    assert_cors(r.headers(), INSPECTOR, "metadata");
    // Not a path browsers call: no CORS.
    let r = http()
        .get(format!("{base}/status"))
        .header("origin", APP)
        .send()
        .await
        .expect("status");
    assert_no_cors(r.headers(), "/status");

    // A foreign origin is refused on actual requests too.
    let r = call(&c, 5, Some(EVIL)).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_no_cors(&r.headers, "call from a foreign origin");

    // Without Origin: nothing added, nothing changed (the upstream's own headers pass as sent).
    fx.state.sse_calls.store(false, Ordering::SeqCst);
    let r = call(&c, 6, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_no_cors(&r.headers, "routed call without Origin");
    let r = call(&stranger, 7, None).await;
    assert_eq!(r.status, 404);
    assert_no_cors(&r.headers, "error without Origin");
    let r = c
        .post_raw(r#"{"jsonrpc":"2.0","id":8,"method":"tools/list"}"#, &[])
        .await;
    assert_eq!(r.status, 200);
    assert_no_cors(&r.headers, "broker without Origin");
    fx.state.own_cors.store(true, Ordering::SeqCst);
    let r = call(&c, 9, None).await;
    assert_eq!(
        one(&r.headers, "access-control-allow-origin"),
        Some("*"),
        "the upstream's own, untouched: {:?}",
        r.headers
    );
    assert_eq!(
        one(&r.headers, "access-control-allow-credentials"),
        Some("true")
    );

    // DELETE ends the session, with CORS.
    let r = http()
        .delete(&url)
        .header("origin", APP)
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .expect("delete");
    assert!(r.status().is_success(), "{}", r.status());
    assert_cors(r.headers(), APP, "DELETE");
}

/// With native auth: preflights carry no credentials and are answered before authentication; a
/// 401 carries CORS headers and exposes its `WWW-Authenticate`; the RFC 9728 metadata is
/// readable cross-origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflights_skip_authentication_and_challenges_are_readable() {
    let key = common::repo().join("examples/test_idp/keys/a1.pem");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let idp = crate::idp::Idp::start(
        listener,
        crate::idp::IdpOptions {
            keys: vec![("a1".into(), key.to_string_lossy().into_owned())],
            users: vec![crate::idp::User {
                username: "alice".into(),
                password: "alice-pw".into(),
                sub: "alice-sub".into(),
                resource_access: json!({"test/fixture": {"roles": ["echo"]}}),
            }],
            clients: vec![],
            trust: vec![],
            audiences: vec![],
            user_audience: "mcp-gateway".into(),
            token_ttl: 300,
        },
    )
    .await;
    let fx = Fixture::start(&["echo"]).await;
    let up = Upstream::new("test/fixture", "fx_", fx.port);
    let yaml = format!(
        "auth:\n  issuer: {}\n  audience: mcp-gateway\n  resourceMetadata:\n    resource: https://mcp.example.com/mcp\nservers:\n  - name: {}\n    url: http://127.0.0.1:{}{}\n    hostname: {}\n    prefix: \"{}\"\n",
        idp.issuer, up.name, up.port, up.path, up.hostname, up.prefix
    );
    let g = start_gateway_with("cors-auth", &[up], &[], &yaml, &[]).await;
    let url = g.url();

    let r = preflight(
        &url,
        INSPECTOR,
        "authorization,content-type,mcp-protocol-version",
    )
    .await;
    assert_eq!(r.status(), 204, "a preflight is not authenticated");
    assert_cors(r.headers(), INSPECTOR, "preflight");

    let mut c = Client::new(&url);
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "browser", "version": "1"}}}).to_string();
    let o = [("origin", INSPECTOR)];
    let r = c.post_raw(init.clone(), &o).await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert_cors(&r.headers, INSPECTOR, "401");
    let challenge = one(&r.headers, "www-authenticate").unwrap_or("");
    assert!(challenge.contains("resource_metadata="), "{challenge}");

    let r = http()
        .get(format!(
            "http://127.0.0.1:{}/.well-known/oauth-protected-resource/mcp",
            g.port
        ))
        .header("origin", INSPECTOR)
        .send()
        .await
        .expect("metadata");
    assert_eq!(r.status(), 200);
    assert_cors(r.headers(), INSPECTOR, "metadata");
    let meta: serde_json::Value = r.json().await.expect("metadata json");
    assert_eq!(meta["authorization_servers"], json!([idp.issuer]));

    c.bearer = Some(idp.login("alice", "alice-pw").await);
    let r = c.post_raw(init, &o).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_cors(&r.headers, INSPECTOR, "authenticated initialize");
}
