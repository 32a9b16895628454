//! The browser path: the MCP Inspector web UI (2.12) in a real headless Chromium (Debian's
//! `chromium`, driven by `playwright-core` from `tests/browser/inspector.mjs`) against the setup
//! `make run` makes (server-everything as `ev_`, the Kubernetes MCP server as `kube_` in front of
//! the stand-in API server, Envoy + mcp-router with `deploy/local`'s config), and against the one
//! `make run-auth` makes, where the user logs in at the test identity provider through the UI's
//! OAuth flow (authorization code + PKCE). The broker's `/status` page is read in the browser too.
//!
//! `UPDATE_SCREENSHOTS=1` also writes `docs/inspector-tools.png` (the README's screenshot).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use crate::common::{
    self, free_port, log_dir, repo, start_everything, start_fake_kube_api, start_gateway_with,
    start_kubernetes_mcp, wait_port, Proc, Upstream,
};
use crate::idp::{Idp, IdpOptions};

const CHROMIUM: &str = "/usr/bin/chromium";

fn playwright() -> PathBuf {
    let p = repo().join(".tools/browser/node_modules/playwright-core");
    assert!(
        p.join("index.mjs").exists() && Path::new(CHROMIUM).exists(),
        "the browser test needs Debian's chromium and npm playwright-core: run `scripts/install-tools.sh browser` (`make test` does it)"
    );
    p
}

/// `${NAME}` in a `deploy/local` template replaced as `make run` does.
fn render(template: &str, vars: &[(&str, String)]) -> String {
    let mut text = std::fs::read_to_string(repo().join("deploy/local").join(template))
        .unwrap_or_else(|e| panic!("{template}: {e}"));
    for (k, v) in vars {
        text = text.replace(&format!("${{{k}}}"), v);
    }
    assert!(
        !text.contains("${"),
        "{template}: unfilled variable:\n{text}"
    );
    text
}

/// The two upstreams under the names, prefixes and hostnames of `deploy/local`'s configs.
fn upstreams(kube_port: u16, ev_port: u16) -> Vec<Upstream> {
    let with_host = |name: &str, prefix: &str, port: u16, host: &str| {
        let mut u = Upstream::new(name, prefix, port);
        u.hostname = host.into();
        u
    };
    vec![
        with_host(
            "mcp-test/everything",
            "ev_",
            ev_port,
            "everything.mcp.local",
        ),
        with_host(
            "mcp-test/kubernetes-mcp",
            "kube_",
            kube_port,
            "kubernetes-mcp.mcp.local",
        ),
    ]
}

/// The Inspector's web server on ports of the test, with a home of its own (its server list is
/// kept there) and secrets in memory. Returns it and the URL with its API token.
async fn start_inspector(logs: &Path) -> (Proc, String) {
    let port = free_port();
    let home = logs.join("inspector-home");
    std::fs::create_dir_all(&home).expect("inspector home");
    let token = uuid::Uuid::new_v4().simple().to_string();
    let mut p = Proc::spawn(
        "inspector-web",
        Command::new(common::node_bin("mcp-inspector"))
            .arg("--web")
            .env("HOME", &home)
            .env("CLIENT_PORT", port.to_string())
            .env("MCP_SANDBOX_PORT", free_port().to_string())
            .env("MCP_APP_ORIGIN_PORT", free_port().to_string())
            .env("MCP_AUTO_OPEN_ENABLED", "false")
            .env("MCP_INSPECTOR_API_TOKEN", &token)
            .env("MCP_INSPECTOR_SECRET_STORE", "memory"),
        logs,
    );
    wait_port(port, &mut p, Duration::from_secs(60)).await;
    (
        p,
        format!("http://127.0.0.1:{port}/?MCP_INSPECTOR_API_TOKEN={token}"),
    )
}

/// Runs `tests/browser/inspector.mjs` with `cfg` (completed with the tools' paths and `out`);
/// returns what it saw, or fails with its error and where its screenshot is.
async fn drive(mut cfg: Value, out: &Path) -> Value {
    cfg["playwright"] = json!(playwright());
    cfg["chromium"] = json!(CHROMIUM);
    cfg["outDir"] = json!(out);
    let script = repo().join("tests/browser/inspector.mjs");
    let arg = cfg.to_string();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .arg(arg)
            .output()
            .expect("run node")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let seen: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "the browser script printed no result ({}):\nstdout: {stdout}\nstderr: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )
        });
    if seen["ok"] != true {
        panic!(
            "in the browser, at \"{}\"; screenshot: {}\npage {}:\n{}\nsteps done: {}\nlogs: {}",
            seen["error"].as_str().unwrap_or("?"),
            seen["screenshot"].as_str().unwrap_or("?"),
            seen["url"],
            seen["pageText"].as_str().unwrap_or(""),
            seen["steps"],
            out.parent().unwrap_or(out).display(),
        );
    }
    seen
}

fn names(seen: &Value) -> Vec<String> {
    let mut v: Vec<String> = seen["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| t.as_str().unwrap_or("").to_owned())
        .collect();
    v.sort();
    v
}

/// The `/status` page as the browser showed it: each server's row has its state (ready) and its
/// tool count (as the JSON status says).
fn check_status_page(seen: &Value, json_status: &Value) {
    let expect: Vec<(&str, u64)> = json_status["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or(""),
                s["tools"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(expect.len(), 2, "{json_status}");
    let status = &seen["status"];
    assert!(
        status["title"]
            .as_str()
            .unwrap_or("")
            .starts_with("mcp-router"),
        "{status}"
    );
    let rows = status["rows"].as_array().expect("status rows");
    assert_eq!(rows.len(), expect.len(), "{status}");
    for (server, tools) in &expect {
        let row = rows
            .iter()
            .find(|r| r[0] == *server)
            .unwrap_or_else(|| panic!("{server} missing from the status page: {status}"));
        assert_eq!(row[3], "ready", "{server}: {row}");
        assert_eq!(row[4], tools.to_string(), "{server}: {row}");
    }
}

/// Use case 1 in the browser: add the gateway, connect, list, run two tools, read /status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inspector_ui_adds_the_gateway_connects_and_runs_tools() {
    playwright();
    let logs = log_dir("browser-no-auth");
    let (_api, _api_port, kubeconfig) = start_fake_kube_api(&logs).await;
    let (_kube, kube_port) = start_kubernetes_mcp(&logs, &kubeconfig, "").await;
    let (_ev, ev_port) = start_everything(&logs).await;
    let ups = upstreams(kube_port, ev_port);
    let config = render(
        "config.yaml.tmpl",
        &[
            ("EVERYTHING_PORT", ev_port.to_string()),
            ("KUBE_MCP_PORT", kube_port.to_string()),
        ],
    );
    let g = start_gateway_with("browser-no-auth", &ups, &[], &config, &[]).await;
    let status = g.status().await;
    let (_inspector, inspector_url) = start_inspector(&logs).await;

    let docs = std::env::var("UPDATE_SCREENSHOTS")
        .is_ok_and(|v| v == "1")
        .then(|| repo().join("docs/inspector-tools.png"));
    let seen = drive(
        json!({
            "inspectorUrl": inspector_url,
            "gatewayUrl": g.url(),
            "statusUrl": format!("http://127.0.0.1:{}/status", g.broker_port),
            "login": null,
            "calls": [
                {"tool": "kube_namespaces_list", "expect": "kube-system"},
                {"tool": "ev_echo", "args": {"message": "hello from the browser"},
                 "expect": "Echo: hello from the browser"},
            ],
            "docsScreenshot": docs,
        }),
        &logs.join("browser"),
    )
    .await;

    assert!(
        seen["protocol"]
            .as_str()
            .unwrap_or("")
            .starts_with("MCP 20"),
        "{seen}"
    );
    let tools = names(&seen);
    // The broker's own discovery meta-tools are listed too (on by default, as in the seed);
    // `/status` counts the upstreams' tools.
    const META: [&str; 2] = ["discover_tools", "select_tools"];
    for t in META {
        assert!(tools.iter().any(|n| n == t), "{t} missing: {tools:?}");
    }
    // And the tools server-everything lists only to a client with the capabilities the
    // Inspector declares (sampling, elicitation in both modes, roots), as it would directly.
    const CONDITIONAL: [&str; 4] = [
        "ev_get-roots-list",
        "ev_trigger-sampling-request",
        "ev_trigger-elicitation-request",
        "ev_trigger-url-elicitation",
    ];
    for t in CONDITIONAL {
        assert!(tools.iter().any(|n| n == t), "{t} missing: {tools:?}");
    }
    assert_eq!(
        tools
            .iter()
            .filter(|n| !META.contains(&n.as_str()) && !CONDITIONAL.contains(&n.as_str()))
            .count() as u64,
        status["tools"].as_u64().unwrap_or(0),
        "the UI lists every tool of the gateway: {tools:?}"
    );
    for t in [
        "kube_namespaces_list",
        "kube_pods_list",
        "ev_echo",
        "ev_get-sum",
    ] {
        assert!(tools.iter().any(|n| n == t), "{t} missing: {tools:?}");
    }
    assert!(
        tools
            .iter()
            .all(|n| n.starts_with("kube_") || n.starts_with("ev_") || META.contains(&n.as_str())),
        "{tools:?}"
    );
    let ns = seen["results"]["kube_namespaces_list"]
        .as_str()
        .unwrap_or("");
    for n in ["default", "kube-system", "mcp-test"] {
        assert!(ns.contains(n), "kube_namespaces_list in the UI: {ns}");
    }
    check_status_page(&seen, &status);
    if let Some(d) = docs {
        assert!(d.exists(), "{} was not written", d.display());
    }
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

/// A test identity provider from a `deploy/local` template, on a port of the test.
async fn start_idp(
    template: &str,
    listener: tokio::net::TcpListener,
    vars: &[(&str, String)],
) -> Idp {
    let opts: IdpOptions =
        serde_json::from_str(&render(template, vars)).unwrap_or_else(|e| panic!("{template}: {e}"));
    Idp::start(listener, opts).await
}

/// Use cases 2 and 3 in the browser: the UI's OAuth flow logs alice in at domain A (401 →
/// protected resource metadata → registration → authorize → login page → token); she sees her
/// tools only, and her call reaches the stand-in Kubernetes API with a token exchanged for the
/// server's audience.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inspector_ui_logs_in_with_oauth_and_sees_only_the_users_tools() {
    playwright();
    let logs = log_dir("browser-auth");
    let la = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lb = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (a_port, b_port) = (
        la.local_addr().unwrap().port(),
        lb.local_addr().unwrap().port(),
    );
    let root = repo().display().to_string();
    let vars = [
        ("ROOT", root),
        ("IDP_A_PORT", a_port.to_string()),
        ("IDP_B_PORT", b_port.to_string()),
    ];
    let a = start_idp("idp-a.json.tmpl", la, &vars).await;
    let _b = start_idp("idp-b.json.tmpl", lb, &vars).await;

    let (_api, api_port, kubeconfig) = start_fake_kube_api(&logs).await;
    let toml = format!(
        "require_oauth = true\nauthorization_url = \"{}\"\noauth_audience = \"mcp-test/kubernetes-mcp\"\ncluster_auth_mode = \"passthrough\"\n",
        a.issuer
    );
    let (_kube, kube_port) = start_kubernetes_mcp(&logs, &kubeconfig, &toml).await;
    let (_ev, ev_port) = start_everything(&logs).await;
    let ups = upstreams(kube_port, ev_port);
    let mut config_vars = vars.to_vec();
    config_vars.extend([
        ("EVERYTHING_PORT", ev_port.to_string()),
        ("KUBE_MCP_PORT", kube_port.to_string()),
        ("GATEWAY_PORT", "{envoy_port}".to_owned()),
    ]);
    let config = render("config-auth.yaml.tmpl", &config_vars);
    let g = start_gateway_with(
        "browser-auth",
        &ups,
        &[],
        &config,
        &[("IDP_A_SECRET", "secret-a"), ("IDP_B_SECRET", "secret-b")],
    )
    .await;
    let (_inspector, inspector_url) = start_inspector(&logs).await;

    let seen = drive(
        json!({
            "inspectorUrl": inspector_url,
            "gatewayUrl": g.url(),
            "statusUrl": format!("http://127.0.0.1:{}/status", g.broker_port),
            "login": {"username": "alice", "password": "alice"},
            "calls": [
                {"tool": "kube_namespaces_list", "expect": "kube-system"},
                {"tool": "ev_echo", "args": {"message": "hello alice"}, "expect": "Echo: hello alice"},
            ],
            "docsScreenshot": null,
        }),
        &logs.join("browser"),
    )
    .await;

    assert_eq!(
        seen["loginPage"],
        format!("{}/authorize", a.issuer),
        "{seen}"
    );
    // alice's roles in deploy/local/idp-a.json.tmpl, and nothing else.
    assert_eq!(
        names(&seen),
        [
            "ev_echo",
            "ev_get-sum",
            "kube_events_list",
            "kube_namespaces_list",
            "kube_pods_list"
        ],
        "{seen}"
    );
    let stats = a.stats();
    assert_eq!(stats.authorization_code, 1, "{stats:?}");
    assert!(stats.registrations >= 1, "{stats:?}");
    let ns = seen["results"]["kube_namespaces_list"]
        .as_str()
        .unwrap_or("");
    assert!(ns.contains("kube-system"), "{ns}");

    let recorded: Vec<Option<String>> = reqwest::get(format!(
        "http://127.0.0.1:{api_port}/_recorded/authorization"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let tokens: Vec<Value> = recorded
        .iter()
        .flatten()
        .filter_map(|v| v.strip_prefix("Bearer "))
        .map(claims)
        .collect();
    let alices: Vec<&Value> = tokens.iter().filter(|c| c["sub"] == "alice").collect();
    assert!(
        !alices.is_empty(),
        "no token of alice reached the API server: {tokens:?}"
    );
    for c in alices {
        assert_eq!(c["aud"], "mcp-test/kubernetes-mcp", "{c}");
        assert_eq!(
            c["act"]["sub"], "mcp-gateway",
            "exchanged by the gateway: {c}"
        );
    }
    // The status page needs no login (it is the broker's, not behind Envoy's auth).
    check_status_page(&seen, &g.status().await);
}
