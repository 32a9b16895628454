//! Per-user upstream credentials by URL elicitation (`--enable-url-elicitation`, server key
//! `tokenURLElicitation`) and `userSpecificList` servers, through the real Envoy: two users of
//! the test IdP (native auth), a fixture that wants each user's own bearer token, the `/tokens`
//! form posted as a browser would (cookie + hidden CSRF field), Redis and a restart of both
//! replicas in between.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::fixture::Fixture;
use crate::common::{launch, log_dir, start_redis, Client, Gateway, Launch, Upstream};
use crate::idp::{Idp, IdpOptions, User};

const PER_USER: &str = "test/per-user";
const LISTS: &str = "test/user-lists";
const EVERYONE: &str = "test/everyone";

fn users() -> Vec<User> {
    ["alice", "bob"]
        .into_iter()
        .map(|u| User {
            username: u.into(),
            password: format!("{u}-pw"),
            sub: format!("{u}-sub"),
            // Native auth's per-tool roles: both may use every tool; the upstreams decide.
            resource_access: json!({
                PER_USER: {"roles": ["echo"]},
                LISTS: {"roles": ["alpha", "beta", "shared"]},
                EVERYONE: {"roles": ["echo"]},
            }),
        })
        .collect()
}

async fn idp() -> Idp {
    let key = crate::common::repo().join("examples/test_idp/keys/a1.pem");
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    Idp::start(
        l,
        IdpOptions {
            keys: vec![("a1".into(), key.to_string_lossy().into_owned())],
            users: users(),
            clients: vec![],
            trust: vec![],
            audiences: vec![],
            user_audience: "mcp-gateway".into(),
            token_ttl: 600,
        },
    )
    .await
}

fn server_yaml(u: &Upstream, extra: &str) -> String {
    format!(
        "  - name: {}\n    url: http://127.0.0.1:{}{}\n    hostname: {}\n    prefix: \"{}\"\n{extra}",
        u.name, u.port, u.path, u.hostname, u.prefix
    )
}

fn auth_yaml(idp: &Idp) -> String {
    format!(
        "auth:\n  issuer: {}\n  audience: mcp-gateway\n  resourceMetadata:\n    resource: https://mcp.example.com/mcp\nservers:\n",
        idp.issuer
    )
}

/// A client of `user`, initialized with (or without) the elicitation capability.
async fn client(g: &Gateway, idp: &Idp, user: &str, elicits: bool) -> Client {
    client_with(g, idp.login(user, &format!("{user}-pw")).await, elicits).await
}

async fn client_with(g: &Gateway, token: String, elicits: bool) -> Client {
    let mut c = Client::new(&g.url());
    c.bearer = Some(token);
    let caps = if elicits {
        json!({"elicitation": {"form": {}, "url": {}}})
    } else {
        json!({})
    };
    c.initialize_with(caps).await;
    c
}

/// The elicitation a -32042 reply carries: (id, url).
fn elicitation_of(r: &crate::common::Reply) -> (String, String) {
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["error"]["code"], -32042, "{}", r.text);
    assert_eq!(r.json["error"]["message"], "URL elicitation required");
    let e = &r.json["error"]["data"]["elicitations"][0];
    assert_eq!(e["mode"], "url", "{}", r.text);
    let id = e["elicitationId"].as_str().expect("id").to_owned();
    let url = e["url"].as_str().expect("url").to_owned();
    assert!(
        url.contains("/tokens?elicitation_id="),
        "the gateway's own page: {url}"
    );
    (id, url)
}

/// What the form page gave: (csrf cookie, csrf field).
async fn open_form(g: &Gateway, c: &Client, elicitation: &str) -> (String, String) {
    let page = c
        .http
        .get(format!(
            "http://127.0.0.1:{}/tokens?elicitation_id={elicitation}",
            g.port
        ))
        .bearer_auth(c.bearer.as_deref().unwrap())
        .send()
        .await
        .expect("form");
    assert_eq!(page.status(), 200);
    let cookie = page
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("csrf cookie")
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let html = page.text().await.expect("html");
    let field = html
        .split("name=\"csrf_token\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("csrf field")
        .to_owned();
    (cookie, field)
}

async fn post_form(
    g: &Gateway,
    c: &Client,
    cookie: Option<&str>,
    fields: &[(&str, &str)],
) -> (u16, String) {
    let mut req = c
        .http
        .post(format!("http://127.0.0.1:{}/tokens", g.port))
        .bearer_auth(c.bearer.as_deref().unwrap())
        .form(fields);
    if let Some(k) = cookie {
        req = req.header("cookie", k);
    }
    let r = req.send().await.expect("post form");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// The whole elicitation as a user completes it: the call gets -32042, the user opens the page
/// and posts their token.
async fn give_credential(g: &Gateway, c: &Client, id: i64, token: &str) {
    let r = c.call_tool(id, "pu_echo", json!({})).await;
    let (elicitation, _) = elicitation_of(&r);
    let (cookie, csrf) = open_form(g, c, &elicitation).await;
    let (status, body) = post_form(
        g,
        c,
        Some(&cookie),
        &[
            ("elicitation_id", &elicitation),
            ("token", token),
            ("csrf_token", &csrf),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

fn holders(status: &Value) -> Value {
    status["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == PER_USER)
        .map(|s| s["usersWithCredential"].clone())
        .unwrap_or(Value::Null)
}

fn last_authorization(fx: &Fixture) -> String {
    fx.calls()
        .last()
        .and_then(|c| {
            c.headers
                .get("authorization")?
                .to_str()
                .ok()
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_give_their_own_credential_by_url_elicitation_and_it_survives_a_restart() {
    let logs = log_dir("elicitation");
    let (_redis, redis_port) = start_redis(&logs).await;
    let idp = idp().await;
    let fx = Fixture::start(&["echo"]).await;
    *fx.state.per_user.lock().unwrap() = HashMap::from([
        (
            "Bearer alice-upstream-key".to_owned(),
            vec!["echo".to_owned()],
        ),
        (
            "Bearer bob-upstream-key".to_owned(),
            vec!["echo".to_owned()],
        ),
    ]);
    let up = Upstream::new(PER_USER, "pu_", fx.port);
    let config = auth_yaml(&idp) + &server_yaml(&up, "    tokenURLElicitation: {}\n");
    let redis_url = format!("--cache-connection-string=redis://127.0.0.1:{redis_port}/0");
    let mut g = launch(
        "elicitation",
        std::slice::from_ref(&up),
        Launch {
            extra: &["--enable-url-elicitation", &redis_url],
            replicas: 2,
            config: Some(config),
            // The gateway cannot discover a server that wants each user's credential.
            wait_discovered: false,
            ..Launch::default()
        },
    )
    .await;

    let alice = client(&g, &idp, "alice", true).await;
    let bob = client(&g, &idp, "bob", true).await;
    let bob_cannot_elicit = client(&g, &idp, "bob", false).await;

    // A client that did not declare elicitation gets a tool error saying why; nothing upstream.
    let before = fx.calls().len();
    let r = bob_cannot_elicit.call_tool(1, "pu_echo", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["result"]["isError"], true, "{}", r.text);
    assert!(
        r.text.contains("does not support elicitation"),
        "{}",
        r.text
    );

    // Alice: -32042 with the gateway's /tokens page; the form is refused without its cookie, to
    // another user, and accepted once for her.
    let r = alice.call_tool(2, "pu_echo", json!({})).await;
    let (elicitation, _) = elicitation_of(&r);
    assert_eq!(fx.calls().len(), before, "nothing reached the upstream");
    let (cookie, csrf) = open_form(&g, &alice, &elicitation).await;
    let fields = [
        ("elicitation_id", elicitation.as_str()),
        ("token", "alice-upstream-key"),
        ("csrf_token", csrf.as_str()),
    ];
    let (status, body) = post_form(&g, &alice, None, &fields).await;
    assert_eq!((status, body.contains("CSRF")), (403, true), "{body}");
    let (status, body) = post_form(
        &g,
        &alice,
        Some(&cookie),
        &[
            ("elicitation_id", elicitation.as_str()),
            ("token", "alice-upstream-key"),
            ("csrf_token", "forged"),
        ],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let bob_form = [
        ("elicitation_id", elicitation.as_str()),
        ("token", "bob-upstream-key"),
        ("csrf_token", csrf.as_str()),
    ];
    let (status, body) = post_form(&g, &bob, Some(&cookie), &bob_form).await;
    assert_eq!(
        (status, body.contains("identity mismatch")),
        (403, true),
        "{body}"
    );
    let (status, body) = post_form(&g, &alice, Some(&cookie), &fields).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post_form(&g, &alice, Some(&cookie), &fields).await;
    assert_eq!(status, 400, "claimed once: {body}");

    // Her calls carry her credential; Bob still has none.
    for i in 10..14 {
        let r = alice.call_tool(i, "pu_echo", json!({})).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(r.json["result"]["content"].is_array(), "{}", r.text);
        assert_eq!(last_authorization(&fx), "Bearer alice-upstream-key");
    }
    let r = bob.call_tool(20, "pu_echo", json!({})).await;
    elicitation_of(&r);
    assert_eq!(holders(&g.status().await), json!(1));
    give_credential(&g, &bob, 21, "bob-upstream-key").await;
    let r = bob.call_tool(22, "pu_echo", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(last_authorization(&fx), "Bearer bob-upstream-key");
    assert_eq!(holders(&g.status().await), json!(2));
    let logs_text = std::fs::read_dir(&g.logs)
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .collect::<String>();
    assert!(
        !logs_text.contains("alice-upstream-key"),
        "a credential reached a log"
    );

    // Both replicas restart: the credential lives on in Redis, encrypted.
    g.router.kill();
    for r in &mut g.other_routers {
        r.kill();
    }
    g.router = g.spawn_replica(0, 2).await;
    g.other_routers = vec![g.spawn_replica(1, 2).await];
    let mut ok = false;
    for i in 30..80 {
        let r = alice.call_tool(i, "pu_echo", json!({})).await;
        if r.status == 200 && r.json["result"]["content"].is_array() {
            ok = true;
            break;
        }
        // Envoy's health checks notice the restarted replicas within a second.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "alice's credential after the restart");
    assert_eq!(last_authorization(&fx), "Bearer alice-upstream-key");

    // The upstream stops accepting Alice's key: the 401 forgets it and the next call asks again.
    fx.state
        .per_user
        .lock()
        .unwrap()
        .remove("Bearer alice-upstream-key");
    let r = alice.call_tool(90, "pu_echo", json!({})).await;
    assert_ne!(r.status, 200, "{}", r.text);
    let r = alice.call_tool(91, "pu_echo", json!({})).await;
    elicitation_of(&r);

    // A new key, then revoked by Alice herself: the next call asks again; Bob's is untouched.
    fx.state
        .per_user
        .lock()
        .unwrap()
        .insert("Bearer alice-key-2".into(), vec!["echo".into()]);
    give_credential(&g, &alice, 92, "alice-key-2").await;
    assert_eq!(alice.call_tool(93, "pu_echo", json!({})).await.status, 200);
    let del = alice
        .http
        .delete(format!("http://127.0.0.1:{}/tokens/{PER_USER}", g.port))
        .bearer_auth(alice.bearer.as_deref().unwrap())
        .send()
        .await
        .expect("delete");
    assert_eq!(del.status(), 200);
    let body: Value = del.json().await.expect("json");
    assert_eq!(body["revoked"], 1, "{body}");
    elicitation_of(&alice.call_tool(94, "pu_echo", json!({})).await);
    assert_eq!(bob.call_tool(95, "pu_echo", json!({})).await.status, 200);
    assert_eq!(holders(&g.status().await), json!(1));
    let anonymous = reqwest::Client::new()
        .delete(format!("http://127.0.0.1:{}/tokens/{PER_USER}", g.port))
        .send()
        .await
        .expect("delete");
    assert_eq!(anonymous.status(), 401);

    // Bob ends his gateway session: his credential goes with it.
    let ended = bob
        .http
        .delete(g.url())
        .bearer_auth(bob.bearer.as_deref().unwrap())
        .header("mcp-session-id", bob.session.clone().unwrap())
        .send()
        .await
        .expect("delete");
    assert_eq!(ended.status(), 200);
    assert_eq!(holders(&g.status().await), json!(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_specific_lists_are_fetched_with_each_users_credential() {
    let idp = idp().await;
    let alice_token = idp.login("alice", "alice-pw").await;
    let bob_token = idp.login("bob", "bob-pw").await;
    let fx = Fixture::start(&["alpha", "beta", "shared"]).await;
    *fx.state.per_user.lock().unwrap() = HashMap::from([
        (
            format!("Bearer {alice_token}"),
            vec!["alpha".to_owned(), "shared".to_owned()],
        ),
        (
            format!("Bearer {bob_token}"),
            vec!["beta".to_owned(), "shared".to_owned()],
        ),
    ]);
    let common_fx = Fixture::start(&["echo", "ping"]).await;
    // Both servers list their tools in pages of one: every page is read, by discovery and by
    // the per-user lists (a session's and a stateless client's).
    fx.state.tools_page_size.store(1, Ordering::SeqCst);
    common_fx.state.tools_page_size.store(1, Ordering::SeqCst);
    let us = Upstream::new(LISTS, "us_", fx.port);
    let ev = Upstream::new(EVERYONE, "ev_", common_fx.port);
    let config =
        auth_yaml(&idp) + &server_yaml(&us, "    userSpecificList: true\n") + &server_yaml(&ev, "");
    let g = launch(
        "user-specific-lists",
        &[us.clone(), ev.clone()],
        Launch {
            config: Some(config),
            wait_discovered: false,
            ..Launch::default()
        },
    )
    .await;
    // Only the ordinary server is discovered, both of its pages (its `ping` is not among the
    // users' roles, so they are not listed it).
    let start = std::time::Instant::now();
    loop {
        let s = g.status().await;
        let ev_ready =
            s["servers"].as_array().unwrap().iter().any(|x| {
                x["name"] == EVERYONE && x["health"]["state"] == "ready" && x["tools"] == 2
            });
        if ev_ready {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{s:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let names = |r: &crate::common::Reply| {
        let mut v: Vec<String> = r.json["result"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("{}", r.text))
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    let alice = client_with(&g, alice_token.clone(), false).await;
    let bob = client_with(&g, bob_token.clone(), false).await;
    // With a cookie of the gateway's origin, which must not go upstream.
    let list = alice
        .post_raw(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#,
            &[("cookie", "gateway-session=secret")],
        )
        .await;
    assert_eq!(names(&list), ["ev_echo", "us_alpha", "us_shared"]);
    let list = bob.request(json!(1), "tools/list", json!({})).await;
    assert_eq!(names(&list), ["ev_echo", "us_beta", "us_shared"]);

    // Calls go by prefix, with the caller's own credential, in the session the list opened.
    let inits = fx.initializes();
    let r = alice.call_tool(2, "us_alpha", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json["result"]["content"].is_array(), "{}", r.text);
    assert_eq!(last_authorization(&fx), format!("Bearer {alice_token}"));
    assert_eq!(
        fx.initializes(),
        inits,
        "the list's upstream session is reused"
    );
    let r = bob.call_tool(3, "us_alpha", json!({})).await;
    assert!(r.json["error"].is_object(), "bob may not: {}", r.text);
    let r = bob.call_tool(4, "us_beta", json!({})).await;
    assert!(r.json["result"]["content"].is_array(), "{}", r.text);
    assert_eq!(last_authorization(&fx), format!("Bearer {bob_token}"));
    // A stateless (2026-07-28) client gets its own list too, and a call by prefix.
    let mut modern = Client::new(&g.url());
    modern.bearer = Some(bob_token.clone());
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    let stateless = |method: &str, params: Value| {
        let body = json!({"jsonrpc": "2.0", "id": 5, "method": method, "params": params});
        let headers = vec![
            ("mcp-protocol-version", "2026-07-28".to_owned()),
            ("mcp-method", method.to_owned()),
        ];
        let name = params["name"].as_str().map(str::to_owned);
        let c = &modern;
        async move {
            let mut h: Vec<(&str, String)> = headers;
            if let Some(n) = name {
                h.push(("mcp-name", n));
            }
            let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
            c.post_raw(serde_json::to_vec(&body).unwrap(), &h).await
        }
    };
    let list = stateless("tools/list", json!({"_meta": meta})).await;
    assert_eq!(names(&list), ["ev_echo", "us_beta", "us_shared"]);
    assert_eq!(
        list.json["result"]["cacheScope"], "private",
        "{}",
        list.text
    );
    let r = stateless(
        "tools/call",
        json!({"name": "us_beta", "arguments": {}, "_meta": meta}),
    )
    .await;
    assert!(r.json["result"]["content"].is_array(), "{}", r.text);

    // Gateway-scoped headers never reach the upstream.
    let seen = fx.state.seen.lock().unwrap();
    assert!(seen.iter().any(|s| s.method == "tools/list"));
    assert!(seen.iter().all(|s| !s.headers.contains_key("cookie")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_completes_a_url_elicitation() {
    let idp = idp().await;
    let fx = Fixture::start(&["echo"]).await;
    *fx.state.per_user.lock().unwrap() =
        HashMap::from([("Bearer carol-key".to_owned(), vec!["echo".to_owned()])]);
    let up = Upstream::new(PER_USER, "pu_", fx.port);
    let config = auth_yaml(&idp) + &server_yaml(&up, "    tokenURLElicitation: {}\n");
    let g = launch(
        "elicitation-sdk",
        std::slice::from_ref(&up),
        Launch {
            extra: &["--enable-url-elicitation"],
            config: Some(config),
            wait_discovered: false,
            ..Launch::default()
        },
    )
    .await;
    let bearer = idp.login("alice", "alice-pw").await;
    let modules = crate::common::tool(".tools/node/node_modules");
    let out = tokio::process::Command::new("node")
        .arg(crate::common::repo().join("tests/node/url_elicitation_client.cjs"))
        .args([g.url().as_str(), bearer.as_str(), "pu_echo", "carol-key"])
        .env("NODE_PATH", &modules)
        .output()
        .await
        .expect("node (the TypeScript SDK client): run scripts/install-tools.sh");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(seen["first"], "UrlElicitationRequiredError", "{seen}");
    assert_eq!(seen["mode"], "url", "{seen}");
    assert_eq!(
        (seen["page"].as_u64(), seen["posted"].as_u64()),
        (Some(200), Some(200)),
        "{seen}"
    );
    assert_eq!(seen["isError"], false, "{seen}");
    assert!(
        seen["text"].as_str().unwrap_or("").starts_with("echo got"),
        "{seen}"
    );
    assert_eq!(last_authorization(&fx), "Bearer carol-key");
}

/// Without native auth: the router names the caller by its bearer JWT's `sub` (as the seed), a
/// caller without one gets a tool error, and the page wants a verified subject, which without
/// a trusted header key nobody has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_native_auth_the_subject_comes_from_the_bearer_and_the_page_wants_it_verified() {
    let idp = idp().await;
    let fx = Fixture::start(&["echo"]).await;
    *fx.state.per_user.lock().unwrap() =
        HashMap::from([("Bearer k".to_owned(), vec!["echo".to_owned()])]);
    let up = Upstream::new(PER_USER, "pu_", fx.port);
    let config = "servers:\n".to_owned() + &server_yaml(&up, "    tokenURLElicitation: {}\n");
    let g = launch(
        "elicitation-no-auth",
        std::slice::from_ref(&up),
        Launch {
            extra: &["--enable-url-elicitation"],
            config: Some(config),
            wait_discovered: false,
            ..Launch::default()
        },
    )
    .await;
    let opaque = client_with(&g, "not-a-jwt".into(), true).await;
    let r = opaque.call_tool(1, "pu_echo", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["result"]["isError"], true, "{}", r.text);
    assert!(r.text.contains("no verified subject"), "{}", r.text);

    let alice = client(&g, &idp, "alice", true).await;
    let (elicitation, _) = elicitation_of(&alice.call_tool(2, "pu_echo", json!({})).await);
    let (cookie, csrf) = open_form(&g, &alice, &elicitation).await;
    let (status, body) = post_form(
        &g,
        &alice,
        Some(&cookie),
        &[
            ("elicitation_id", elicitation.as_str()),
            ("token", "k"),
            ("csrf_token", csrf.as_str()),
        ],
    )
    .await;
    assert_eq!(
        (status, body.contains("no identity")),
        (403, true),
        "{body}"
    );
    assert!(fx.calls().is_empty());
}
