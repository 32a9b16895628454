//! Use cases 2 and 3 through the real Envoy: native OIDC token validation, per-tool
//! authorization, RFC 8693 token exchange within one domain (the Kubernetes MCP server as an
//! OAuth resource server in front of a stand-in API server) and across two domains, the trusted
//! `x-mcp-authorized` header, and the failures around them.
//!
//! The identity providers are two instances of `examples/test_idp` (OIDC discovery, JWKS with
//! rotation, password / client-credentials / token-exchange grants), started in this process.

use crate::common;
use std::path::Path;
use std::time::Duration;

use crate::common::fixture::Fixture;
use crate::common::{start_gateway_with, Client, Gateway, Upstream};
use crate::idp::{Idp, IdpOptions, User};
use base64::Engine;
use serde_json::{json, Value};

const KUBE: &str = "mcp-test/kubernetes-mcp";
const FIXTURE: &str = "test/fixture";
const REMOTE: &str = "test/remote";
/// The protected resource the gateway's metadata names.
const RESOURCE: &str = "https://mcp.example.com/mcp";

fn key(name: &str) -> String {
    crate::common::repo()
        .join("examples/test_idp/keys")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn users() -> Vec<User> {
    vec![
        User {
            username: "alice".into(),
            password: "alice-pw".into(),
            sub: "alice-sub".into(),
            resource_access: json!({
                KUBE: {"roles": ["namespaces_list"]},
                FIXTURE: {"roles": ["echo"]},
                REMOTE: {"roles": ["echo"]},
            }),
        },
        User {
            username: "bob".into(),
            password: "bob-pw".into(),
            sub: "bob-sub".into(),
            resource_access: json!({FIXTURE: {"roles": ["add"]}}),
        },
    ]
}

async fn start_idp(opts: IdpOptions) -> Idp {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    Idp::start(l, opts).await
}

/// Domain A: where users log in; the gateway validates its tokens and exchanges them.
fn domain_a_options() -> IdpOptions {
    IdpOptions {
        keys: vec![("a1".into(), key("a1.pem")), ("a2".into(), key("a2.pem"))],
        users: users(),
        clients: vec![("mcp-gateway".into(), "secret-a".into())],
        trust: vec![],
        audiences: vec![],
        user_audience: "mcp-gateway".into(),
        token_ttl: 300,
    }
}

async fn domain_a() -> Idp {
    start_idp(domain_a_options()).await
}

/// Domain B: trusts tokens of A addressed to it, issues tokens for its own servers.
async fn domain_b(a: &Idp) -> Idp {
    start_idp(IdpOptions {
        keys: vec![("b1".into(), key("b1.pem"))],
        users: vec![],
        clients: vec![("mcp-gateway-b".into(), "secret-b".into())],
        trust: vec![a.issuer.clone()],
        audiences: vec![REMOTE.into()],
        user_audience: "mcp-gateway".into(),
        token_ttl: 300,
    })
    .await
}

fn server_yaml(u: &Upstream, extra: &str) -> String {
    format!(
        "  - name: {}\n    url: http://127.0.0.1:{}{}\n    hostname: {}\n    prefix: \"{}\"\n{extra}",
        u.name, u.port, u.path, u.hostname, u.prefix
    )
}

fn exchange_at(idp: &Idp, client: &str, secret_env: &str, indent: &str) -> String {
    format!(
        "{indent}tokenUrl: {}/token\n{indent}clientId: {client}\n{indent}clientSecretEnv: {secret_env}\n",
        idp.issuer
    )
}

/// The world of these tests: domain A and B, two fixtures, the gateway with native auth.
struct World {
    a: Idp,
    b: Idp,
    fixture: Fixture,
    remote: Fixture,
    gateway: Gateway,
}

async fn world(test: &str, kube: Option<(u16, &Path)>) -> World {
    world_with(test, kube, &[]).await
}

/// [`world`] with extra mcp-router flags.
async fn world_with(test: &str, kube: Option<(u16, &Path)>, extra: &[&str]) -> World {
    let a = domain_a().await;
    let b = domain_b(&a).await;
    let fixture = Fixture::start(&["echo", "add"]).await;
    let remote = Fixture::start(&["echo"]).await;
    let fx = Upstream::new(FIXTURE, "fx_", fixture.port);
    let rm = Upstream::new(REMOTE, "rm_", remote.port);
    let mut upstreams = vec![fx.clone(), rm.clone()];
    let mut yaml = format!(
        "auth:\n  issuer: {}\n  audience: mcp-gateway\n  resourceMetadata:\n    resource: {RESOURCE}\n    scopesSupported: [openid]\nservers:\n",
        a.issuer
    );
    yaml.push_str(&server_yaml(
        &fx,
        &format!(
            "    tokenExchange:\n{}",
            exchange_at(&a, "mcp-gateway", "SECRET_A", "      ")
        ),
    ));
    // Cross-domain: A's token is exchanged at A for one B accepts (audience = B's issuer), then
    // at B for the server's audience.
    yaml.push_str(&server_yaml(
        &rm,
        &format!(
            "    tokenExchange:\n{}      via:\n{}        audience: {}\n",
            exchange_at(&b, "mcp-gateway-b", "SECRET_B", "      "),
            exchange_at(&a, "mcp-gateway", "SECRET_A", "        "),
            b.issuer
        ),
    ));
    if let Some((port, _)) = kube {
        let k = Upstream::new(KUBE, "kube_", port);
        yaml.push_str(&server_yaml(
            &k,
            &format!(
                "    tokenExchange:\n{}",
                exchange_at(&a, "mcp-gateway", "SECRET_A", "      ")
            ),
        ));
        upstreams.push(k);
    }
    let env = [("SECRET_A", "secret-a"), ("SECRET_B", "secret-b")];
    let gateway = start_gateway_with(test, &upstreams, extra, &yaml, &env).await;
    World {
        a,
        b,
        fixture,
        remote,
        gateway,
    }
}

impl World {
    async fn client_for(&self, user: &str) -> Client {
        let mut c = Client::new(&self.gateway.url());
        c.bearer = Some(self.a.login(user, &format!("{user}-pw")).await);
        c.initialize().await;
        c
    }
}

fn tool_names(r: &common::Reply) -> Vec<String> {
    let mut names: Vec<String> = r.json["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools: {}", r.text))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// The claims of a JWT, read without verifying (the test checks what was sent where).
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("jwt");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("b64"),
    )
    .expect("json")
}

fn bearer_seen(seen: &common::fixture::Seen) -> String {
    seen.headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_else(|| panic!("no bearer token reached the upstream: {:?}", seen.headers))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn users_see_and_call_only_their_tools_with_exchanged_tokens() {
    let w = world("auth-roles", None).await;
    let alice = w.client_for("alice").await;
    let bob = w.client_for("bob").await;

    let list = alice.request(json!(1), "tools/list", json!({})).await;
    assert_eq!(tool_names(&list), ["fx_echo", "rm_echo"]);
    let list = bob.request(json!(1), "tools/list", json!({})).await;
    assert_eq!(tool_names(&list), ["fx_add"]);

    // Allowed: the upstream gets a token for its own audience, never the client's.
    let r = alice.call_tool(7, "fx_echo", json!({"x": 1})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json.get("result").is_some(), "{}", r.text);
    let calls = w.fixture.calls();
    let seen = calls.last().expect("call reached the fixture");
    let token = bearer_seen(seen);
    assert_ne!(
        Some(&token),
        alice.bearer.as_ref(),
        "the client's own token was passed on"
    );
    let c = claims(&token);
    assert_eq!(c["aud"], FIXTURE);
    assert_eq!(c["sub"], "alice-sub");
    assert_eq!(c["iss"], w.a.issuer.as_str());
    assert_eq!(
        seen.headers
            .get("x-mcp-verified-sub")
            .and_then(|v| v.to_str().ok()),
        Some("alice-sub")
    );

    // Not allowed: 403 with a JSON-RPC error that keeps the id; nothing reaches the upstream.
    let before = w.fixture.calls().len();
    let r = alice.call_tool(8, "fx_add", json!({})).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.json["id"], 8);
    assert_eq!(r.json["error"]["code"], -32006);
    assert!(
        r.json["error"]["message"].as_str().unwrap().contains("add"),
        "{}",
        r.text
    );
    let r = bob.call_tool(9, "fx_echo", json!({})).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(w.fixture.calls().len(), before);

    // Bob's call is allowed and his exchanged token is his.
    let r = bob.call_tool(10, "fx_add", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let calls = w.fixture.calls();
    assert_eq!(
        claims(&bearer_seen(calls.last().unwrap()))["sub"],
        "bob-sub"
    );

    // Exchanged tokens are cached: more calls, no more exchanges for the same user and server.
    let exchanges = w.a.stats().token_exchange;
    for id in 20..25 {
        let r = alice.call_tool(id, "fx_echo", json!({})).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    assert_eq!(
        w.a.stats().token_exchange,
        exchanges,
        "exchanged tokens are cached"
    );

    // A client cannot pose as someone else through the identity header.
    let r = alice
        .post_raw(
            r#"{"jsonrpc":"2.0","id":30,"method":"tools/call","params":{"name":"fx_echo"}}"#,
            &[("x-mcp-verified-sub", "mallory")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let calls = w.fixture.calls();
    assert_eq!(
        calls
            .last()
            .unwrap()
            .headers
            .get("x-mcp-verified-sub")
            .and_then(|v| v.to_str().ok()),
        Some("alice-sub")
    );

    // Concurrent first calls of one user to a server share one exchange: a new login (a new
    // token) fires 10 calls at once.
    let mut carol = Client::new(&w.gateway.url());
    carol.bearer = Some(w.a.login("alice", "alice-pw").await);
    carol.initialize().await;
    let before = w.a.stats().token_exchange;
    let calls = (0..10).map(|i| carol.call_tool(100 + i, "fx_echo", json!({})));
    for r in futures_util::future::join_all(calls).await {
        assert_eq!(r.status, 200, "{}", r.text);
    }
    assert_eq!(
        w.a.stats().token_exchange,
        before + 1,
        "concurrent misses share one exchange"
    );

    let metrics = w.gateway.metrics().await;
    assert!(
        metrics
            .contains("mcp_router_cache_lookups_total{cache=\"exchanged_tokens\",result=\"hit\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mcp_router_authentications_total{result=\"ok\"}"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_id_is_no_use_to_another_user() {
    let w = world("auth-session-owner", None).await;
    let alice = w.client_for("alice").await;
    // Mallory has a valid token of her own (bob's login) and alice's session id.
    let mut mallory = Client::new(&w.gateway.url());
    mallory.bearer = Some(w.a.login("bob", "bob-pw").await);
    mallory.session = alice.session.clone();

    let before = w.fixture.calls().len();
    // A routed call (the router), a list (the broker): both answer as for an unknown session.
    for (id, method, params) in [
        (1, "tools/call", json!({"name": "fx_add", "arguments": {}})),
        (2, "tools/list", json!({})),
    ] {
        let r = mallory.request(json!(id), method, params).await;
        assert_eq!(r.status, 404, "{method}: {}", r.text);
        assert_eq!(r.json["id"], id, "{}", r.text);
        assert_eq!(r.json["error"]["code"], -32001, "{}", r.text);
        assert_eq!(
            r.json["error"]["message"],
            "Session not found: initialize a new session"
        );
    }
    assert_eq!(
        w.fixture.calls().len(),
        before,
        "nothing reached the upstream"
    );

    // Nor can she end alice's session.
    let r = mallory
        .http
        .delete(&mallory.url)
        .header("mcp-session-id", mallory.session.as_deref().unwrap())
        .header(
            "authorization",
            format!("Bearer {}", mallory.bearer.as_deref().unwrap()),
        )
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status().as_u16(), 404);

    // Alice, with a fresh token of her own (same subject), keeps using her session.
    let mut alice_again = Client::new(&w.gateway.url());
    alice_again.bearer = Some(w.a.login("alice", "alice-pw").await);
    alice_again.session = alice.session.clone();
    assert_ne!(alice_again.bearer, alice.bearer, "a new token");
    let r = alice_again.call_tool(3, "fx_echo", json!({"x": 1})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json.get("result").is_some(), "{}", r.text);
    let r = alice_again.request(json!(4), "tools/list", json!({})).await;
    assert_eq!(tool_names(&r), ["fx_echo", "rm_echo"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn cross_domain_calls_get_a_token_of_the_servers_domain_in_two_steps() {
    let w = world("auth-cross-domain", None).await;
    let alice = w.client_for("alice").await;
    let (a0, b0) = (w.a.stats().token_exchange, w.b.stats().token_exchange);
    let r = alice.call_tool(1, "rm_echo", json!({"x": "hi"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let calls = w.remote.calls();
    let c = claims(&bearer_seen(
        calls.last().expect("call reached the remote server"),
    ));
    assert_eq!(c["iss"], w.b.issuer.as_str(), "the token is domain B's");
    assert_eq!(c["aud"], REMOTE);
    assert_eq!(c["sub"], "alice-sub");
    assert_eq!(
        w.a.stats().token_exchange,
        a0 + 1,
        "one exchange at A (for B)"
    );
    assert_eq!(
        w.b.stats().token_exchange,
        b0 + 1,
        "one exchange at B (for the server)"
    );
    // The upstream session's initialize carried the same kind of token.
    let inits: Vec<Value> = w
        .remote
        .state
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.method == "initialize")
        .map(|s| claims(&bearer_seen(s)))
        .collect();
    assert!(
        inits.len() >= 2,
        "discovery's and the session's initialize: {inits:?}"
    );
    assert!(
        inits
            .iter()
            .all(|c| c["iss"] == w.b.issuer.as_str() && c["aud"] == REMOTE),
        "{inits:?}"
    );
    // Cached: a second call costs no exchange anywhere.
    let r = alice.call_tool(2, "rm_echo", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (w.a.stats().token_exchange, w.b.stats().token_exchange),
        (a0 + 1, b0 + 1)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_tokens_are_refused_with_a_challenge() {
    let w = world("auth-bad-tokens", None).await;
    let url = w.gateway.url();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let alice_claims = |extra: Value| {
        let mut c = json!({"sub": "alice-sub", "aud": "mcp-gateway", "resource_access": {}});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let rogue = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut o = IdpOptions {
            keys: vec![("a1".into(), key("rogue.pem"))],
            users: vec![],
            clients: vec![],
            trust: vec![],
            audiences: vec![],
            user_audience: String::new(),
            token_ttl: 300,
        };
        o.keys[0].0 = "a1".into(); // the kid of A's real key: only the signature differs
        Idp::start(l, o).await
    };
    let none_token = {
        let b64 = |v: &Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
        };
        format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT"})),
            b64(&alice_claims(json!({"iss": w.a.issuer, "exp": now + 300})))
        )
    };
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("missing", None, "missing bearer token"),
        ("garbage", Some("not-a-jwt".into()), "not a valid JWT"),
        (
            "expired",
            Some(w.a.mint(alice_claims(json!({"exp": now - 3600, "iat": now - 7200})))),
            "expired",
        ),
        (
            "wrong key",
            Some(rogue.mint(alice_claims(json!({"iss": w.a.issuer})))),
            "signature",
        ),
        ("alg none", Some(none_token), "not a valid JWT"),
        (
            "other domain",
            Some(w.b.mint(alice_claims(json!({})))),
            "unknown key",
        ),
        (
            "wrong issuer",
            Some(w.a.mint(alice_claims(json!({"iss": "http://evil.example"})))),
            "issuer",
        ),
        (
            "wrong audience",
            Some(w.a.mint(alice_claims(json!({"aud": "someone-else"})))),
            "audience",
        ),
        (
            "not yet valid",
            Some(w.a.mint(alice_claims(json!({"nbf": now + 3600})))),
            "not valid yet",
        ),
    ];
    for (what, token, says) in cases {
        let mut c = Client::new(&url);
        c.bearer = token;
        let r = c
            .request(json!(5), "initialize", json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}))
            .await;
        assert_eq!(r.status, 401, "{what}: {}", r.text);
        assert_eq!(r.json["error"]["code"], -32005, "{what}: {}", r.text);
        let msg = r.json["error"]["message"].as_str().unwrap_or("");
        assert!(msg.contains(says), "{what}: {msg}");
        let challenge = r
            .headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(
            challenge.starts_with("Bearer resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\""),
            "{what}: {challenge}"
        );
    }

    // The metadata the challenge points to, served by the broker through Envoy.
    let meta: Value = reqwest::get(format!(
        "http://127.0.0.1:{}/.well-known/oauth-protected-resource/mcp",
        w.gateway.port
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(meta["resource"], RESOURCE);
    assert_eq!(meta["authorization_servers"], json!([w.a.issuer]));
    assert_eq!(meta["scopes_supported"], json!(["openid"]));
    assert_eq!(meta["bearer_methods_supported"], json!(["header"]));

    // A session made with a good token still needs a good token on every request.
    let mut alice = w.client_for("alice").await;
    alice.bearer = None;
    let r = alice.call_tool(6, "fx_echo", json!({})).await;
    assert_eq!(r.status, 401, "{}", r.text);
    let r = alice.request(json!(7), "tools/list", json!({})).await;
    assert_eq!(r.status, 401, "{}", r.text);
    rogue.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_rotate_and_an_idp_outage_is_a_clear_error_until_it_returns() {
    let w = world("auth-rotation", None).await;
    let alice = w.client_for("alice").await;
    let r = alice.call_tool(1, "fx_echo", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A rotated key: the gateway refetches the JWKS for the unknown kid (at most once a
    // second, so that forged kids cannot make it hammer the provider).
    w.a.rotate();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let jwks_before = w.a.stats().jwks;
    let mut rotated = Client::new(&w.gateway.url());
    rotated.bearer = Some(w.a.login("alice", "alice-pw").await);
    rotated.initialize().await;
    let r = rotated.call_tool(1, "fx_echo", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(w.a.stats().jwks > jwks_before, "the JWKS was refetched");

    // The provider goes away: tokens still verify with the cached keys, cached exchanged
    // tokens keep working.
    let fresh = w.a.login("bob", "bob-pw").await;
    let port = w.a.port;
    w.a.stop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = alice.call_tool(2, "fx_echo", json!({})).await;
    assert_eq!(r.status, 200, "cached identity and token: {}", r.text);

    // A user whose exchanged token is not cached gets a 502 that names the endpoint and
    // carries no token.
    let mut bob = Client::new(&w.gateway.url());
    bob.bearer = Some(fresh.clone());
    bob.initialize().await;
    let r = bob.call_tool(4, "fx_add", json!({})).await;
    assert_eq!(r.status, 502, "{}", r.text);
    assert_eq!(r.json["id"], 4);
    let msg = r.json["error"]["message"].as_str().unwrap();
    assert!(msg.contains("/token") && !msg.contains(&fresh), "{msg}");

    // The provider returns on the same address: exchanges work again.
    let a2 = start_idp_on(port).await;
    a2.rotate(); // as before the outage: both keys published
    let r = bob.call_tool(5, "fx_add", json!({})).await;
    assert_eq!(r.status, 200, "after recovery: {}", r.text);
    drop(a2);
}

/// Domain A again on its old port (same keys, same users), after an outage.
async fn start_idp_on(port: u16) -> Idp {
    let l = loop {
        match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => break l,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    Idp::start(l, domain_a_options()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn use_case_2_kubernetes_receives_the_exchanged_token_never_the_clients() {
    let logs = common::log_dir("auth-kube-tools");
    let a = domain_a().await;
    let (_api, api_port, kubeconfig) = common::start_fake_kube_api(&logs).await;
    let toml = format!(
        "require_oauth = true\nauthorization_url = \"{}\"\noauth_audience = \"{KUBE}\"\ncluster_auth_mode = \"passthrough\"\n",
        a.issuer
    );
    let (_kube, kube_port) = common::start_kubernetes_mcp(&logs, &kubeconfig, &toml).await;
    let k = Upstream::new(KUBE, "kube_", kube_port);
    let yaml = format!(
        "auth:\n  issuer: {}\nservers:\n{}",
        a.issuer,
        server_yaml(
            &k,
            &format!(
                "    tokenExchange:\n{}",
                exchange_at(&a, "mcp-gateway", "SECRET_A", "      ")
            )
        )
    );
    let g = start_gateway_with("auth-kube", &[k], &[], &yaml, &[("SECRET_A", "secret-a")]).await;
    // Discovery reached the OAuth-protected server with the gateway's own client-credentials token.
    assert!(a.stats().client_credentials >= 1);

    let mut alice = Client::new(&g.url());
    let alice_token = a.login("alice", "alice-pw").await;
    alice.bearer = Some(alice_token.clone());
    alice.initialize().await;
    let list = alice.request(json!(1), "tools/list", json!({})).await;
    assert_eq!(
        tool_names(&list),
        ["kube_namespaces_list"],
        "alice may use namespaces_list only"
    );

    let r = alice.call_tool(2, "kube_namespaces_list", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let text = r.json["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or("");
    assert!(text.contains("kube-system"), "{}", r.text);

    let recorded: Vec<Option<String>> = reqwest::get(format!(
        "http://127.0.0.1:{api_port}/_recorded/authorization"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let tokens: Vec<&str> = recorded
        .iter()
        .flatten()
        .filter_map(|v| v.strip_prefix("Bearer "))
        .collect();
    assert!(
        !tokens.is_empty(),
        "no bearer token reached the API server: {recorded:?}"
    );
    for t in &tokens {
        assert_ne!(*t, alice_token, "the client's token reached Kubernetes");
        let c = claims(t);
        assert_eq!(c["aud"], KUBE, "{c}");
        assert_eq!(c["sub"], "alice-sub", "{c}");
    }

    let r = alice.call_tool(3, "kube_pods_list", json!({})).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.json["id"], 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_engines_signed_header_filters_the_lists() {
    let fixture = Fixture::start(&["echo", "add"]).await;
    let fx = Upstream::new(FIXTURE, "fx_", fixture.port);
    // A server that needs no user identity, with a static credential.
    let yaml = format!(
        "servers:\n{}",
        server_yaml(&fx, "    credential: \"Bearer static-service-token\"\n")
    );
    let public = std::fs::read_to_string(key("trusted-header.pub.pem")).unwrap();
    let g = start_gateway_with(
        "auth-trusted-header",
        &[fx],
        &[],
        &yaml,
        &[("TRUSTED_HEADER_PUBLIC_KEY", public.as_str())],
    )
    .await;
    let sign = |pem: &str, caps: &str| {
        let k = jsonwebtoken::EncodingKey::from_ec_pem(&std::fs::read(key(pem)).unwrap()).unwrap();
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
            &json!({"allowed-capabilities": caps, "exp": 4_000_000_000u64}),
            &k,
        )
        .unwrap()
    };
    let mut c = Client::new(&g.url());
    c.initialize().await;
    let list = |h: String| {
        let c = &c;
        async move {
            let r = c
                .post_raw(
                    r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
                    &[("x-mcp-authorized", h.as_str())],
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
            tool_names(&r)
        }
    };
    let caps = format!(r#"{{"tools":{{"{FIXTURE}":["add"]}}}}"#);
    assert_eq!(list(sign("trusted-header.pem", &caps)).await, ["fx_add"]);
    assert!(
        list(sign("rogue-ec.pem", &caps)).await.is_empty(),
        "a forged header allows nothing"
    );
    // Without the header (no policy engine in front), everything is listed, the broker's
    // discovery tools too (on by default, as in the seed).
    let r = c.request(json!(2), "tools/list", json!({})).await;
    assert_eq!(
        tool_names(&r),
        ["discover_tools", "fx_add", "fx_echo", "select_tools"]
    );

    // No native auth (a policy engine's setup, as the seed's): the credential is the gateway's
    // own (discovery used it); a client's call carries what the client sent, for the policy
    // behind the router to check, and an anonymous one carries nothing.
    let used_by_discovery = fixture.state.seen.lock().unwrap().iter().any(|s| {
        s.method == "tools/list"
            && s.headers.get("authorization").and_then(|v| v.to_str().ok())
                == Some("Bearer static-service-token")
    });
    assert!(used_by_discovery, "discovery lists with the credential");
    let r = c.call_tool(3, "fx_echo", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let calls = fixture.calls();
    assert_eq!(
        calls.last().unwrap().headers.get("authorization"),
        None,
        "an anonymous caller is not presented as the gateway's service"
    );
    c.bearer = Some("the-clients-own-token".into());
    let r = c.call_tool(4, "fx_echo", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let calls = fixture.calls();
    assert_eq!(
        calls.last().unwrap().headers.get("authorization").unwrap(),
        "Bearer the-clients-own-token"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_identity_provider_is_a_503_that_says_so_until_it_returns() {
    let fixture = Fixture::start(&["echo"]).await;
    let fx = Upstream::new(FIXTURE, "fx_", fixture.port);
    let idp_port = common::free_port();
    let yaml = format!(
        "auth:\n  issuer: http://127.0.0.1:{idp_port}\nservers:\n{}",
        server_yaml(&fx, "")
    );
    let g = start_gateway_with("auth-idp-down", &[fx], &[], &yaml, &[]).await;
    let mut c = Client::new(&g.url());
    c.bearer = Some("eyJhbGciOiJSUzI1NiIsImtpZCI6ImExIn0.eyJzdWIiOiJ4In0.c2ln".into());
    let r = c.request(json!(1), "tools/list", json!({})).await;
    assert_eq!(r.status, 503, "{}", r.text);
    let msg = r.json["error"]["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("cannot fetch the identity provider's keys")
            && msg.contains(&format!("127.0.0.1:{idp_port}")),
        "{msg}"
    );
    // It comes up: the next request is checked against its keys.
    let idp = start_idp_on(idp_port).await;
    c.bearer = Some(idp.login("alice", "alice-pw").await);
    c.initialize().await;
    let r = c.call_tool(2, "fx_echo", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// The budget the tests below give the router's work on one ext_proc message; the local Envoy's
/// `message_timeout` is 10 s.
const BUDGET_MS: u64 = 2000;
/// The router answers by its budget; what it waits for would take longer than Envoy waits.
const ANSWERED_WITHIN: Duration = Duration::from_millis(BUDGET_MS + 1500);

fn timed_out(r: &common::Reply, id: i64, names: &str) {
    assert_eq!(r.status, 504, "{}", r.text);
    assert_eq!(
        r.json["id"], id,
        "the router's error, with the request's id: {}",
        r.text
    );
    assert_eq!(r.json["error"]["code"], -32003, "{}", r.text);
    let msg = r.json["error"]["message"].as_str().unwrap_or("");
    assert!(msg.contains(names), "names {names}: {msg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_token_exchange_and_initialize_share_one_budget_and_end_in_the_routers_504() {
    let budget = format!("--processing-budget-ms={BUDGET_MS}");
    let w = world_with("auth-budget", None, &[budget.as_str()]).await;
    let alice = w.client_for("alice").await;

    // Each step alone fits its own limit: 600 ms per exchange step at A then B (the `via`), and
    // an initialize of 4 s (under --upstream-init-timeout-ms, 5 s). Together they do not fit
    // the budget, which ends the initialize: a 504 that names the server, with the call's id.
    w.a.slow_down_grants(Duration::from_millis(600));
    w.b.slow_down_grants(Duration::from_millis(600));
    w.remote
        .state
        .init_delay_ms
        .store(4000, std::sync::atomic::Ordering::SeqCst);
    let started = std::time::Instant::now();
    let r = alice.call_tool(41, "rm_echo", json!({})).await;
    let took = started.elapsed();
    timed_out(&r, 41, REMOTE);
    assert!(r.text.contains("processing budget"), "{}", r.text);
    assert!(took < ANSWERED_WITHIN, "answered after {took:?}");
    assert!(
        took >= Duration::from_millis(BUDGET_MS - 100),
        "the exchange and initialize had the whole budget: {took:?}"
    );

    // A token endpoint slower than the whole budget (2.5 s a step, under each request's own 5 s
    // limit): a 504 that names the endpoint (the first step's), and never the token.
    w.a.slow_down_grants(Duration::from_millis(2500));
    w.b.slow_down_grants(Duration::from_millis(2500));
    let mut carol = Client::new(&w.gateway.url());
    let token = w.a.login("alice", "alice-pw").await;
    carol.bearer = Some(token.clone());
    carol.initialize().await;
    let exchanges = |w: &World| w.a.stats().token_exchange + w.b.stats().token_exchange;
    let before = exchanges(&w);
    let started = std::time::Instant::now();
    let r = carol.call_tool(42, "rm_echo", json!({})).await;
    let took = started.elapsed();
    timed_out(&r, 42, &format!("{}/token", w.a.issuer));
    assert!(!r.text.contains(&token), "{}", r.text);
    assert!(took < ANSWERED_WITHIN, "answered after {took:?}");

    // The exchange went on without the caller (both steps, 5 s in all) and filled the cache:
    // with the token endpoints still slow, carol's next call (the server initializes quickly
    // again) is served without asking them.
    w.remote
        .state
        .init_delay_ms
        .store(0, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(5800).saturating_sub(started.elapsed())).await;
    assert_eq!(exchanges(&w), before + 2, "both steps completed");
    let started = std::time::Instant::now();
    let r = carol.call_tool(43, "rm_echo", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(exchanges(&w), before + 2, "served from the cache");

    // Alice's call, whose initialize the budget ended (her tokens were cached), works now that
    // the server is fast.
    w.a.slow_down_grants(Duration::ZERO);
    w.b.slow_down_grants(Duration::ZERO);
    let r = alice.call_tool(44, "rm_echo", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let metrics = w.gateway.metrics().await;
    assert!(
        metrics.contains("reason=\"upstream\",status=\"504\""),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_identity_provider_key_fetch_is_the_routers_504_within_the_budget() {
    let budget = format!("--processing-budget-ms={BUDGET_MS}");
    let w = world_with("auth-budget-keys", None, &[budget.as_str()]).await;
    // The gateway fetches the provider's keys on the first token it sees: make that slow (4 s,
    // under the request's own 5 s limit, so only the budget ends it).
    w.a.slow_down_keys(Duration::from_millis(4000));
    let mut alice = Client::new(&w.gateway.url());
    alice.bearer = Some(w.a.login("alice", "alice-pw").await);
    let started = std::time::Instant::now();
    let r = alice.request(json!(1), "tools/list", json!({})).await;
    let took = started.elapsed();
    // In the headers phase the body (and so the id) has not arrived: `id: null`, as for a 401.
    assert_eq!(r.status, 504, "{}", r.text);
    assert_eq!(r.json["id"], Value::Null, "{}", r.text);
    assert_eq!(r.json["error"]["code"], -32003, "{}", r.text);
    let msg = r.json["error"]["message"].as_str().unwrap_or("");
    assert!(msg.contains(&format!("{}/jwks", w.a.issuer)), "{msg}");
    assert!(took < ANSWERED_WITHIN, "answered after {took:?}");

    // The fetch went on without the caller (within its own 5 s limit) and filled the cache:
    // with the provider still slow, the same token is accepted without asking it again.
    tokio::time::sleep(Duration::from_millis(4600).saturating_sub(started.elapsed())).await;
    let fetched = w.a.stats().jwks;
    let started = std::time::Instant::now();
    alice.initialize().await;
    let r = alice.call_tool(2, "fx_echo", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(w.a.stats().jwks, fetched, "served from the cache");
    w.a.slow_down_keys(Duration::ZERO);
}
