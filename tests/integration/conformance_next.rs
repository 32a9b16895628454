//! The conformance suite's 0.2.0 alpha line (`@modelcontextprotocol/conformance@0.2.0-alpha.12`
//! in `.tools/conformance-next`, installed by `scripts/install-tools.sh conformance`) at both
//! frozen requirement sets (`--requirements 2025-11-25`, `--requirements 2026-07-28`) and, for
//! our own fixture, `--suite all` (the extensions too), against servers that others wrote and
//! against ours, each first alone and then as the only upstream of the gateway (real Envoy +
//! mcp-router, empty prefix). Any check that passes against the server alone and not through the
//! gateway fails the test; so does any scenario of our fixture that does not pass through the
//! gateway, at either revision and in `--suite all`. `scripts/conformance-compare.sh` prints the same comparison as tables.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::{
    free_port, log_dir, python_bin, repo, start_everything, start_gateway, wait_port, Proc,
    Upstream,
};
use crate::conformance::{run_suite_of, start_upstream, SuiteRun};

const SUITE: &str = ".tools/conformance-next";
/// Per scenario: a scenario a server does not implement may wait for what never comes.
const SCENARIO_TIMEOUT_MS: &str = "15000";

/// What the suite calls that server-everything does not list (it subscribes to any URI and
/// answers an unknown tool with an `isError` result; server-sse-polling calls the unlisted
/// `test_reconnection` and reads the stream of that error).
const EVERYTHING_UNLISTED: &[&str] = &[
    "test_simple_text",
    "test_error_handling",
    "test://watched-resource",
    "scenario:server-sse-polling",
];
/// What the suite calls that tests/python/upstream.py does not list (the Python SDK answers an
/// unknown tool with an `isError` result).
const PYTHON_UNLISTED: &[&str] = &[
    "test_simple_text",
    "test_error_handling",
    "test_input_required_result_elicitation",
    "test_streaming_elicitation",
    "test_logging_tool",
    "test_missing_capability",
    "slow_compute",
    "greet",
];

/// `run` is a requirement set (`2025-11-25`, `2026-07-28`) or `all` (`--suite all`).
fn suite(url: &str, logs: &Path, label: &str, run: &str) -> SuiteRun {
    let args: Vec<&str> = if run == "all" {
        vec!["--suite", "all", "--timeout", SCENARIO_TIMEOUT_MS]
    } else {
        vec!["--requirements", run, "--timeout", SCENARIO_TIMEOUT_MS]
    };
    run_suite_of(SUITE, &args, url, logs, &format!("{label}-{run}"))
}

/// scenario → check id → (status, message).
fn checks(run: &SuiteRun) -> BTreeMap<&str, BTreeMap<&str, (&str, &str)>> {
    run.scenarios
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.checks
                    .iter()
                    .map(|(id, st, msg)| (id.as_str(), (st.as_str(), msg.as_str())))
                    .collect(),
            )
        })
        .collect()
}

/// The checks that pass directly and not through the gateway: `scenario / check: status message`,
/// but for those whose failure through the gateway names one of `unlisted`: names a server
/// answers although it does not list them (an SDK answers an unknown tool with an `isError`
/// result, server-everything subscribes to any URI). The gateway routes only what a server
/// lists and refuses the rest (-32602 Unknown tool / Unknown resource), so a check that calls
/// such a name passes against the server alone and fails through the gateway by design.
fn lost(direct: &SuiteRun, gateway: &SuiteRun, unlisted: &[&str]) -> Vec<String> {
    let (d, g) = (checks(direct), checks(gateway));
    let mut out = Vec::new();
    for (scenario, cs) in &d {
        for (id, (status, _)) in cs {
            if *status != "SUCCESS" {
                continue;
            }
            let (gs, gm) = g
                .get(scenario)
                .and_then(|c| c.get(id))
                .copied()
                .unwrap_or(("MISSING", "not run through the gateway"));
            let by_design = unlisted.iter().any(|n| match n.strip_prefix("scenario:") {
                // A scenario that calls an unlisted name and checks nothing else.
                Some(name) => name == *scenario,
                None => {
                    gm.contains(&format!("Unknown tool: {n}"))
                        || gm.contains(&format!("Unknown resource: {n}"))
                        || gm.contains(&format!("'{n}'"))
                }
            });
            if gs != "SUCCESS" && !by_design {
                out.push(format!("{scenario} / {id}: {gs} {gm}"));
            }
        }
    }
    out
}

/// Runs each of `runs` against the server at `direct` and through the gateway at `gateway`;
/// panics naming every check the gateway loses. Returns the gateway runs.
fn compare(
    direct: &str,
    gateway: &str,
    logs: &Path,
    runs: &[&str],
    unlisted: &[&str],
) -> Vec<(String, SuiteRun)> {
    let mut failures = Vec::new();
    let mut out = Vec::new();
    for run in runs {
        let d = suite(direct, logs, "direct", run);
        let g = suite(gateway, logs, "gateway", run);
        println!(
            "{run}: directly {} | through the gateway {}",
            d.summary
                .iter()
                .find(|l| l.starts_with("Total"))
                .map_or("?", |l| l),
            g.summary
                .iter()
                .find(|l| l.starts_with("Total"))
                .map_or("?", |l| l)
        );
        for l in lost(&d, &g, unlisted) {
            failures.push(format!("{run}: {l}"));
        }
        out.push(((*run).to_owned(), g));
    }
    assert!(
        failures.is_empty(),
        "checks that pass against the server alone and fail through the gateway (logs in {}):\n{}",
        logs.display(),
        failures.join("\n")
    );
    out
}

async fn gateway_for(test: &str, port: u16) -> crate::common::Gateway {
    start_gateway(test, &[Upstream::new("test/server", "", port)], &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_fixture_passes_through_the_gateway_at_both_revisions() {
    let (upstream, port) = start_upstream().await;
    let g = gateway_for("conformance-next-fixture", port).await;
    let (url, logs) = (g.url(), g.logs.clone());
    let direct = format!("http://127.0.0.1:{port}/mcp");
    let runs = tokio::task::spawn_blocking(move || {
        compare(
            &direct,
            &url,
            &logs,
            &["2025-11-25", "2026-07-28", "all"],
            &[],
        )
    })
    .await
    .expect("suite");
    upstream.abort();
    // Every scenario of the 2025-11-25 requirement set passes through the gateway.
    let (_, r2025) = &runs[0];
    let bad: Vec<&str> = r2025
        .scenarios
        .iter()
        .filter(|s| !s.failures.is_empty() || !s.warnings.is_empty())
        .map(|s| s.name.as_str())
        .collect();
    assert!(
        bad.is_empty(),
        "2025-11-25 scenarios that do not pass through the gateway: {bad:?} ({})",
        r2025.output.display()
    );
    assert!(r2025.scenarios.len() >= 30, "{}", r2025.scenarios.len());
    // At 2026-07-28 (and in `--suite all`) the fixture answers natively, and every scenario
    // passes through the gateway without a warning: the input-required results (the retry goes
    // to the server that asked), the Tasks extension (each task request reaches the server that
    // made the task), the JSON Schema 2020-12 keywords, the `Mcp-Param-*` headers, and the
    // stateless scenario (its diagnostic tools; the list changes the fixture tells its GET
    // streams reach the gateway's `subscriptions/listen` streams).
    for (run, r) in &runs[1..] {
        for (family, at_least) in [("input-required-result-", 14), ("tasks-", 10)] {
            let n = r
                .scenarios
                .iter()
                .filter(|s| s.name.starts_with(family))
                .count();
            assert!(n >= at_least, "{run}: {n} {family}* scenarios");
        }
        for name in [
            "json-schema-2020-12",
            "http-custom-header-server-validation",
            "server-stateless",
        ] {
            assert!(
                r.scenarios.iter().any(|s| s.name == name),
                "{run}: no scenario {name} ({})",
                r.output.display()
            );
        }
        let bad: Vec<String> = r
            .scenarios
            .iter()
            .filter(|s| !s.failures.is_empty() || !s.warnings.is_empty())
            .map(|s| format!("{}: {:?} {:?}", s.name, s.failures, s.warnings))
            .collect();
        assert!(
            bad.is_empty(),
            "{run}: scenarios that do not pass through the gateway ({}):\n{}",
            r.output.display(),
            bad.join("\n")
        );
    }
}

/// A tool listed under a prefix keeps its schema, `x-mcp-header` included: the client mirrors
/// its parameters under the header names the server expects, the gateway passes the
/// `Mcp-Param-*` headers on untouched (rewriting only `Mcp-Name`), and the fixture's checks of
/// them (Base64 values, mismatches refused with HTTP 400 + -32020) pass through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn param_headers_of_a_prefixed_tool_reach_the_server_that_checks_them() {
    let (upstream, port) = start_upstream().await;
    let g = start_gateway(
        "conformance-next-param-headers",
        &[Upstream::new("test/server", "p_", port)],
        &[],
    )
    .await;
    let (url, logs) = (g.url(), g.logs.clone());
    let run = tokio::task::spawn_blocking(move || {
        run_suite_of(
            SUITE,
            &[
                "--scenario",
                "http-custom-header-server-validation",
                "--spec-version",
                "2026-07-28",
                "--timeout",
                SCENARIO_TIMEOUT_MS,
            ],
            &url,
            &logs,
            "gateway-prefixed",
        )
    })
    .await
    .expect("suite");
    upstream.abort();
    let s = run
        .scenarios
        .iter()
        .find(|s| s.name == "http-custom-header-server-validation");
    assert!(
        s.is_some_and(|s| s.failures.is_empty() && s.warnings.is_empty() && s.checks.len() >= 6),
        "through a prefix: {s:?} ({})",
        run.output.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_everything_loses_no_check_through_the_gateway() {
    let logs = log_dir("conformance-next-everything");
    let (_server, port) = start_everything(&logs).await;
    let g = gateway_for("conformance-next-everything-gw", port).await;
    let (url, logs) = (g.url(), g.logs.clone());
    let direct = format!("http://127.0.0.1:{port}/mcp");
    tokio::task::spawn_blocking(move || {
        compare(
            &direct,
            &url,
            &logs,
            &["2025-11-25", "2026-07-28"],
            EVERYTHING_UNLISTED,
        )
    })
    .await
    .expect("suite");
}

/// An `MCPServer` of the official Python SDK (`mcp` 2.3, tests/python/upstream.py), which speaks
/// 2026-07-28 and the 2025 session protocol.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_sdk_server_loses_no_check_through_the_gateway() {
    let logs = log_dir("conformance-next-python");
    let port = free_port();
    let mut server = Proc::spawn(
        "python-upstream",
        std::process::Command::new(python_bin())
            .arg(repo().join("tests/python/upstream.py"))
            .arg(port.to_string()),
        &logs,
    );
    wait_port(port, &mut server, std::time::Duration::from_secs(30)).await;
    let g = gateway_for("conformance-next-python-gw", port).await;
    let (url, logs) = (g.url(), g.logs.clone());
    let direct = format!("http://127.0.0.1:{port}/mcp");
    tokio::task::spawn_blocking(move || {
        compare(
            &direct,
            &url,
            &logs,
            &["2025-11-25", "2026-07-28"],
            PYTHON_UNLISTED,
        )
    })
    .await
    .expect("suite");
}

/// A server built on the TypeScript SDK 1.x that sends its sampling and elicitation requests on
/// its standalone GET stream (tests/node/get_stream_server.mjs): through the gateway they reach
/// the client's GET stream, and its answers go back to that upstream session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typescript_sdk_server_asking_on_its_get_stream_loses_no_check_through_the_gateway() {
    let logs = log_dir("conformance-next-get-stream");
    let port = free_port();
    let mut server = Proc::spawn(
        "get-stream-server",
        std::process::Command::new("node")
            .arg(repo().join("tests/node/get_stream_server.mjs"))
            .arg(port.to_string()),
        &logs,
    );
    wait_port(port, &mut server, std::time::Duration::from_secs(30)).await;
    let g = gateway_for("conformance-next-get-stream-gw", port).await;
    let (url, logs) = (g.url(), g.logs.clone());
    let direct = format!("http://127.0.0.1:{port}/mcp");
    let runs =
        tokio::task::spawn_blocking(move || compare(&direct, &url, &logs, &["2025-11-25"], &[]))
            .await
            .expect("suite");
    // The two scenarios this server is for pass through the gateway.
    for name in ["tools-call-sampling", "tools-call-elicitation"] {
        let s = runs[0].1.scenarios.iter().find(|s| s.name == name);
        assert!(
            s.is_some_and(|s| s.failures.is_empty() && s.warnings.is_empty()),
            "{name} through the gateway: {s:?}"
        );
    }
}
