//! TLS through the real Envoy and mcp-router, with a CA and certificates made here:
//! - an https upstream whose CA is its `caCert`: discovery, and a routed call (Envoy speaks TLS to
//!   it too, `render_envoy.py --upstream-tls`);
//! - the same upstream with no CA: reported on `/status` and a clear JSON-RPC error on a call;
//!   then the CA given only as `gatewayCACertPEM` (a config reload) makes it work;
//! - the initialize sent back through the gateway's HTTPS listener (`--mcp-gateway-private-host
//!   https://…`): with the listener's CA in `--gateway-ca-cert`, or in `gatewayCACertPEM`, and
//!   refused without it. The listener only takes the TLS names it routes (like Istio's), so a
//!   working hairpin also shows that its TLS name is the server's hostname.

use crate::common;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::common::fixture::Fixture;
use crate::common::tls::TestCa;
use crate::common::{launch, log_dir, Client, Gateway, Launch, Upstream, PUBLIC_HOST};
use serde_json::{json, Value};

/// A YAML (JSON) string.
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// The config of one https upstream, with `ca_cert` and `gateway_ca` when given.
fn https_config(u: &Upstream, ca_cert: Option<&str>, gateway_ca: Option<&str>) -> String {
    let mut y = format!(
        "servers:\n  - name: {}\n    url: https://127.0.0.1:{}{}\n    hostname: {}\n    prefix: \"{}\"\n",
        u.name, u.port, u.path, u.hostname, u.prefix
    );
    if let Some(ca) = ca_cert {
        y.push_str(&format!("    caCert: {}\n", quoted(ca)));
    }
    if let Some(ca) = gateway_ca {
        y.push_str(&format!("gatewayCACertPEM: {}\n", quoted(ca)));
    }
    y
}

/// Polls `/status` until the server's health satisfies `done`; returns that health.
async fn wait_health(g: &Gateway, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let s = g.status().await;
        if let Some(h) = s["servers"][0].get("health").filter(|h| done(h)) {
            return h.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "status never got there: {s:#}\nrouter log:\n{}",
            g.router.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn text_of(r: &common::Reply) -> String {
    r.json["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_upstream_is_discovered_and_called_with_its_ca_cert() {
    let dir = log_dir("tls-ca-cert");
    let ca = TestCa::new("upstream CA");
    let mut up = Upstream::new("test/secure", "sec_", 0);
    let fx = Fixture::start_tls(
        &["echo"],
        ca.issue(&[&up.hostname, "127.0.0.1"]).server_config(),
    )
    .await;
    up.port = fx.port;
    let ca_file = ca.write(&dir, "upstream-ca.pem");
    let envoy_tls = format!("--upstream-tls={}={}", up.name, ca_file.display());
    let g = launch(
        "tls-ca-cert",
        std::slice::from_ref(&up),
        Launch {
            config: Some(https_config(&up, Some(&ca.pem), None)),
            envoy_extra: &[&envoy_tls],
            ..Launch::default()
        },
    )
    .await;
    assert!(fx.initializes() >= 1, "discovery initialized over TLS");

    let mut c = Client::new(&g.url());
    c.initialize().await;
    let list = c.request(json!(1), "tools/list", json!({})).await;
    assert!(list.text.contains("sec_echo"), "{}", list.text);
    let r = c.call_tool(2, "sec_echo", json!({"x": 1})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(text_of(&r).starts_with("echo got"), "{}", r.text);
    assert_eq!(
        fx.calls().len(),
        1,
        "the call reached the upstream over TLS"
    );
    assert_eq!(fx.state.tls_failures.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_upstream_is_a_clear_error_until_gateway_ca_cert_pem_trusts_it() {
    let dir = log_dir("tls-gateway-ca");
    let ca = TestCa::new("upstream CA");
    let mut up = Upstream::new("test/secure", "sec_", 0);
    let fx = Fixture::start_tls(
        &["echo"],
        ca.issue(&[&up.hostname, "127.0.0.1"]).server_config(),
    )
    .await;
    up.port = fx.port;
    let ca_file = ca.write(&dir, "upstream-ca.pem");
    let envoy_tls = format!("--upstream-tls={}={}", up.name, ca_file.display());
    let mut g = launch(
        "tls-gateway-ca",
        std::slice::from_ref(&up),
        Launch {
            config: Some(https_config(&up, None, None)),
            envoy_extra: &[&envoy_tls],
            wait_discovered: false,
            ..Launch::default()
        },
    )
    .await;

    // No CA: discovery fails and says why.
    let health = wait_health(&g, |h| {
        h["state"] != "ready" && h.get("last_error").is_some()
    })
    .await;
    let why = health["last_error"].as_str().unwrap_or("");
    assert!(
        why.contains("invalid peer certificate") && why.contains("caCert"),
        "{health}"
    );
    // A call: a JSON-RPC error with the id, naming the server and the cause.
    let mut c = Client::new(&g.url());
    c.initialize().await;
    let r = c.call_tool(7, "sec_echo", json!({})).await;
    assert_eq!(r.status, 502, "{}", r.text);
    assert_eq!(r.json["id"], 7, "{}", r.text);
    assert_eq!(r.json["error"]["code"], -32002, "{}", r.text);
    let msg = r.json["error"]["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("test/secure") && msg.contains("unreachable") && msg.contains("UnknownIssuer"),
        "{msg}"
    );
    g.router.assert_running();
    assert_eq!(fx.initializes(), 0, "nothing got past the handshake");
    assert!(fx.state.tls_failures.load(Ordering::SeqCst) > 0);

    // The CA only as gatewayCACertPEM (a reload): discovered, and the call works.
    std::fs::write(&g.config_path, https_config(&up, None, Some(&ca.pem))).unwrap();
    wait_health(&g, |h| h["state"] == "ready").await;
    let r = c.call_tool(8, "sec_echo", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(text_of(&r).starts_with("echo got"), "{}", r.text);
    assert_eq!(fx.calls().len(), 1);
}

/// The gateway's HTTPS listener: a certificate for the public host and the upstream's hostname
/// (not for 127.0.0.1) by the gateway's own CA; returns the render_envoy.py options and the CA.
fn https_listener(dir: &std::path::Path, up: &Upstream, port: u16) -> (Vec<String>, TestCa) {
    let ca = TestCa::new("gateway CA");
    let (cert, key) = ca
        .issue(&[&up.hostname, PUBLIC_HOST])
        .write(dir, "gateway-listener");
    (
        vec![
            format!("--tls-listen-port={port}"),
            format!("--tls-cert={}", cert.display()),
            format!("--tls-key={}", key.display()),
        ],
        ca,
    )
}

fn assert_hairpinned(fx: &Fixture) {
    let seen = fx.state.seen.lock().unwrap().clone();
    let init = seen
        .iter()
        .rev()
        .find(|s| s.method == "initialize")
        .expect("an initialize reached the upstream");
    let h = |k: &str| {
        init.headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(
        h("x-mcp-servername"),
        "test/fixture",
        "through Envoy and the router"
    );
    assert_eq!(h("x-mcp-method"), "initialize");
    assert_eq!(h("x-mcp-toolname"), "echo");
    assert_eq!(
        h("x-mcp-router-key"),
        "",
        "the key does not leave the gateway"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hairpin_goes_through_the_gateways_https_listener_trusting_gateway_ca_cert() {
    let dir = log_dir("tls-hairpin-flag");
    let fx = Fixture::start(&["echo"]).await;
    let up = Upstream::new("test/fixture", "fx_", fx.port);
    let tls_port = common::free_port();
    let (envoy, ca) = https_listener(&dir, &up, tls_port);
    let ca_file = ca.write(&dir, "gateway-ca.pem");
    let private = format!("--mcp-gateway-private-host=https://127.0.0.1:{tls_port}");
    let flag = format!("--gateway-ca-cert={}", ca_file.display());
    let envoy: Vec<&str> = envoy.iter().map(String::as_str).collect();
    let g = launch(
        "tls-hairpin-flag",
        std::slice::from_ref(&up),
        Launch {
            extra: &[&private, &flag],
            envoy_extra: &envoy,
            ..Launch::default()
        },
    )
    .await;
    let mut c = Client::new(&g.url());
    c.initialize().await;
    let r = c.call_tool(1, "fx_echo", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_hairpinned(&fx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_https_listener_refuses_the_hairpin_until_gateway_ca_cert_pem_trusts_it() {
    let dir = log_dir("tls-hairpin-config");
    let fx = Fixture::start(&["echo"]).await;
    let up = Upstream::new("test/fixture", "fx_", fx.port);
    let tls_port = common::free_port();
    let (envoy, ca) = https_listener(&dir, &up, tls_port);
    let private = format!("--mcp-gateway-private-host=https://127.0.0.1:{tls_port}");
    let envoy: Vec<&str> = envoy.iter().map(String::as_str).collect();
    let mut g = launch(
        "tls-hairpin-config",
        std::slice::from_ref(&up),
        Launch {
            extra: &[&private],
            envoy_extra: &envoy,
            ..Launch::default()
        },
    )
    .await;
    let mut c = Client::new(&g.url());
    c.initialize().await;
    let before = fx.initializes();
    let r = c.call_tool(1, "fx_echo", json!({})).await;
    assert_eq!(r.status, 502, "{}", r.text);
    assert_eq!(r.json["id"], 1);
    let msg = r.json["error"]["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("test/fixture")
            && msg.contains("UnknownIssuer")
            && msg.contains("the gateway listener's CA must be in --gateway-ca-cert")
            && msg.contains(&format!(
                "sent back through the gateway at 127.0.0.1:{tls_port}"
            )),
        "{msg}"
    );
    assert_eq!(fx.initializes(), before, "no initialize got through");
    g.router.assert_running();

    // The listener's CA as gatewayCACertPEM (a reload): the next call's initialize gets through.
    let mut config = common::config_yaml(std::slice::from_ref(&up));
    config.push_str(&format!("gatewayCACertPEM: {}\n", quoted(&ca.pem)));
    std::fs::write(&g.config_path, config).unwrap();
    let start = Instant::now();
    let r = loop {
        let r = c.call_tool(2, "fx_echo", json!({})).await;
        if r.status == 200 || start.elapsed() > Duration::from_secs(15) {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(r.status, 200, "{}", r.text);
    assert_hairpinned(&fx);
}
