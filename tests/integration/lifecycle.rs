//! Process lifecycle: SIGTERM drains and exits 0, the drain bounded by `--drain-timeout`; a bad
//! config exits 64 naming the field; the status page answers browsers with HTML.

use std::process::Command;
use std::time::{Duration, Instant};

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde_json::json;

use crate::common::fixture::Fixture;
use crate::common::{free_port, log_dir, start_gateway, wait_port, Client, Proc, Upstream};

#[tokio::test]
async fn sigterm_stops_the_process_cleanly() {
    let logs = log_dir("lifecycle-sigterm");
    let config = logs.join("config.yaml");
    std::fs::write(&config, "servers: []\n").expect("config");
    let broker = free_port();
    let mut p = Proc::spawn(
        "mcp-router",
        Command::new(env!("CARGO_BIN_EXE_mcp-router"))
            .arg("--mcp-gateway-config")
            .arg(&config)
            .arg(format!("--mcp-router-address=127.0.0.1:{}", free_port()))
            .arg(format!("--mcp-broker-public-address=127.0.0.1:{broker}"))
            .arg(format!("--metrics-addr=127.0.0.1:{}", free_port()))
            .arg("--mcp-gateway-public-host=gw.local")
            .arg("--shutdown-delay=2"),
        &logs,
    );
    wait_port(broker, &mut p, Duration::from_secs(20)).await;
    let ready = |broker: u16| async move {
        reqwest::get(format!("http://127.0.0.1:{broker}/readyz"))
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    assert_eq!(ready(broker).await, 200);
    let html = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{broker}/status"))
        .header("accept", "text/html")
        .send()
        .await
        .expect("status");
    assert!(html.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(html.text().await.unwrap().contains("<h1>mcp-router"));

    let pid = nix::unistd::Pid::from_raw(i32::try_from(p.child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("signal");
    // During the shutdown delay it still serves, saying it is not ready.
    let mut saw_not_ready = false;
    for _ in 0..20 {
        if ready(broker).await == 503 {
            saw_not_ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        saw_not_ready,
        "/readyz never said 503 during the shutdown delay"
    );
    let started = Instant::now();
    let status = loop {
        if let Some(s) = p.child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "did not stop within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0), "log:\n{}", p.log_tail());
    assert!(p.log_tail().contains("shutting down"));
}

/// Through the real Envoy: after SIGTERM a call in flight that ends within the drain gets its
/// answer; one that would take longer is closed when `--drain-timeout` runs out (its client gets
/// an answer then, not at the upstream's pace), and the process exits 0 saying what it closed.
/// A client's event stream on the broker ends when the listeners close (the client reconnects
/// elsewhere), so the broker's drain does not wait for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_calls_in_flight_finish_within_the_drain_timeout_then_closes_the_rest() {
    // Two upstreams: one answers a call after a minute, the other after two seconds.
    let slow = Fixture::start(&["echo"]).await;
    let fast = Fixture::start(&["echo"]).await;
    let mut g = start_gateway(
        "lifecycle-drain",
        &[
            Upstream::new("test/slow", "slow_", slow.port),
            Upstream::new("test/fast", "fast_", fast.port),
        ],
        &["--drain-timeout=5"],
    )
    .await;
    let mut c = Client::new(&g.url());
    c.initialize().await;
    assert_eq!(c.call_tool(1, "slow_echo", json!({})).await.status, 200);
    assert_eq!(c.call_tool(1, "fast_echo", json!({})).await.status, 200);
    slow.state.call_delay_ms.store(60_000, Ordering::SeqCst);
    fast.state.call_delay_ms.store(2_000, Ordering::SeqCst);
    let c = Arc::new(c);
    let arrived = |fx: &Fixture, n: usize| {
        let seen = fx.state.clone();
        async move {
            for _ in 0..200 {
                if seen
                    .seen
                    .lock()
                    .expect("lock")
                    .iter()
                    .filter(|s| s.method == "tools/call")
                    .count()
                    >= n
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            panic!("the upstream never saw call {n}");
        }
    };
    let (url, session) = (g.url(), c.session.clone().expect("session"));
    let long = tokio::spawn(async move {
        let started = Instant::now();
        let answer = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .header("mcp-session-id", session)
            .body(r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"slow_echo","arguments":{}}}"#)
            .send()
            .await;
        let status = match answer {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        };
        (status, started.elapsed())
    });
    let short = {
        let c = c.clone();
        tokio::spawn(async move { c.call_tool(3, "fast_echo", json!({})).await })
    };
    arrived(&slow, 2).await;
    arrived(&fast, 2).await;
    // And the client's event stream (through Envoy to the broker), open and silent.
    let events = reqwest::Client::new()
        .get(g.url())
        .header("accept", "text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .header("mcp-session-id", c.session.clone().expect("session"))
        .send()
        .await
        .expect("event stream");
    assert_eq!(events.status(), 200);
    let events = tokio::spawn(events.bytes());

    let pid = nix::unistd::Pid::from_raw(i32::try_from(g.router.child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("signal");
    let signalled = Instant::now();
    let r = short.await.expect("join");
    assert_eq!(r.status, 200, "the call in flight finishes: {}", r.text);
    assert_eq!(r.json["id"], 3, "{}", r.text);
    let status = loop {
        if let Some(s) = g.router.child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(30),
            "did not stop within 30 s of SIGTERM (drain 5 s)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0), "log:\n{}", g.router.log_tail());
    let log = g.router.log_tail();
    assert!(
        log.contains("still open at the end of the drain"),
        "the closing is logged:\n{log}"
    );
    // The event stream ended when the listeners closed, so the broker drained by itself.
    assert!(
        events.await.expect("join").is_ok(),
        "the event stream ends cleanly"
    );
    assert!(
        !log.contains(r#"closed server="broker""#),
        "the broker's drain did not wait for the event stream:\n{log}"
    );
    let (long_status, took) = long.await.expect("join");
    assert_ne!(long_status, 200, "the long call cannot have its answer");
    assert!(
        took < Duration::from_secs(45),
        "the long call's client is answered when the drain ends, not after the upstream's \
         minute: {took:?}"
    );
}

#[test]
fn a_bad_config_exits_64_and_names_the_field() {
    let logs = log_dir("lifecycle-bad-config");
    let config = logs.join("config.yaml");
    std::fs::write(
        &config,
        "servers:\n  - name: a\n    url: http://a/mcp\n    prefix: Bad-Prefix\n",
    )
    .expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-router"))
        .arg("--mcp-gateway-config")
        .arg(&config)
        .arg("--mcp-gateway-public-host=gw.local")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("servers[0].prefix"), "{stderr}");

    // CA bundles and the private host are checked at start too, each named.
    let good = logs.join("good.yaml");
    std::fs::write(&good, "servers: []\n").expect("config");
    let bad_ca = logs.join("bad-ca.yaml");
    std::fs::write(
        &bad_ca,
        "servers:\n  - name: a\n    url: https://a/mcp\n    caCert: not a pem\n",
    )
    .expect("config");
    let bad_gateway_ca = logs.join("bad-gateway-ca.yaml");
    std::fs::write(&bad_gateway_ca, "gatewayCACertPEM: 'garbage'\n").expect("config");
    let garbage_file = logs.join("garbage.pem");
    std::fs::write(&garbage_file, "garbage").expect("file");
    for (config, extra, names) in [
        (&bad_ca, String::new(), "servers[0].caCert"),
        (&bad_gateway_ca, String::new(), "gatewayCACertPEM"),
        (
            &good,
            format!("--gateway-ca-cert={}", logs.join("missing.pem").display()),
            "--gateway-ca-cert cannot read",
        ),
        (
            &good,
            format!("--gateway-ca-cert={}", garbage_file.display()),
            "at least one certificate",
        ),
        (
            &good,
            "--mcp-gateway-private-host=ftp://gw:21".to_owned(),
            "--mcp-gateway-private-host",
        ),
        (
            &good,
            "--cache-connection-string=rediss://127.0.0.1:1/#insecure".to_owned(),
            "#insecure",
        ),
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcp-router"));
        cmd.arg("--mcp-gateway-config")
            .arg(config)
            .arg("--mcp-gateway-public-host=gw.local");
        if !extra.is_empty() {
            cmd.arg(&extra);
        }
        let out = cmd.output().expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{extra} {names}: {stderr}");
        assert!(stderr.contains(names), "{extra}: {stderr}");
    }

    let out = Command::new(env!("CARGO_BIN_EXE_mcp-router"))
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(64),
        "a missing required flag is a usage error"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-router"))
        .arg("--help")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--mcp-gateway-config",
        "--mcp-router-address",
        "--mcp-broker-public-address",
        "--metrics-addr",
        "--mcp-gateway-public-host",
        "--mcp-gateway-private-host",
        "--gateway-ca-cert",
        "--cache-ca-cert",
        "--session-length",
        "--max-request-body-size",
        "--mcp-check-interval",
        "--log-level",
        "--log-format",
        "GATEWAY_SIGNING_KEY",
        "--otlp-endpoint",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ] {
        assert!(help.contains(flag), "--help documents {flag}");
    }
}

/// The command line the seed's controller (v0.9) gives its broker-router container, with its
/// numeric log level and a flag this gateway does not act on, and the seed's other signing-key
/// variable: it starts, logs at info, and names the flag it ignores.
#[tokio::test]
async fn the_seed_controllers_command_line_starts_it() {
    let logs = log_dir("lifecycle-seed-command");
    let config = logs.join("config.yaml");
    std::fs::write(&config, "servers: []\n").expect("config");
    let broker = free_port();
    let mut p = Proc::spawn(
        "mcp-router",
        Command::new(env!("CARGO_BIN_EXE_mcp-router"))
            .env_remove("GATEWAY_SIGNING_KEY")
            .env("JWT_SESSION_SIGNING_KEY", "a-seed-era-signing-key-of-32-bytes!")
            .arg(format!("--mcp-broker-public-address=127.0.0.1:{broker}"))
            .arg("--mcp-gateway-private-host=mcp-gateway-istio.gateway-system.svc.cluster.local:8080")
            .arg(format!("--mcp-gateway-config={}", config.display()))
            .arg("--mcp-check-interval=30")
            .arg("--mcp-gateway-public-host=mcp.127-0-0-1.sslip.io")
            .arg("--enable-pprof")
            .arg("--log-level=0")
            // Not the controller's, but the ports must be free ones here.
            .arg(format!("--mcp-router-address=127.0.0.1:{}", free_port()))
            .arg(format!("--metrics-addr=127.0.0.1:{}", free_port())),
        &logs,
    );
    wait_port(broker, &mut p, Duration::from_secs(20)).await;
    let ready = reqwest::get(format!("http://127.0.0.1:{broker}/readyz"))
        .await
        .expect("readyz");
    assert_eq!(ready.status().as_u16(), 200);
    // Info lines are logged.
    let log = p.wait_for_log("config loaded").await;
    assert!(
        log.contains("--enable-pprof"),
        "the ignored flag is named:\n{log}"
    );
    assert!(
        !log.contains("GATEWAY_SIGNING_KEY is not set"),
        "JWT_SESSION_SIGNING_KEY is used:\n{log}"
    );
    // The session ids it mints are signed with that key.
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{broker}/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#)
        .send()
        .await
        .expect("initialize");
    assert_eq!(r.status().as_u16(), 200);
    let session = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.set_audience(&["mcp-gateway"]);
    jsonwebtoken::decode::<serde_json::Value>(
        &session,
        &jsonwebtoken::DecodingKey::from_secret(b"a-seed-era-signing-key-of-32-bytes!"),
        &v,
    )
    .expect("signed with JWT_SESSION_SIGNING_KEY");
}
