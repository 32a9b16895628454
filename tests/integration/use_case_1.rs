//! The seed's use case 1 ("No auth") end to end: the MCP Inspector CLI, through the real Envoy and
//! mcp-router, lists the tools of the Kubernetes MCP server and of server-everything under their
//! prefixes, and calls them.

use crate::common;
use crate::common::{
    inspector, log_dir, start_everything, start_fake_kube_api, start_gateway, start_kubernetes_mcp,
    Upstream,
};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inspector_lists_and_calls_tools_of_both_servers_through_the_gateway() {
    let logs = log_dir("use-case-1-servers");
    let (_api, _api_port, kubeconfig) = start_fake_kube_api(&logs).await;
    let (_kube, kube_port) = start_kubernetes_mcp(&logs, &kubeconfig, "").await;
    let (_ev, ev_port) = start_everything(&logs).await;
    let g = start_gateway(
        "use-case-1",
        &[
            Upstream::new("mcp-test/kubernetes-mcp", "kube_", kube_port),
            Upstream::new("mcp-test/everything", "ev_", ev_port),
        ],
        &[],
    )
    .await;
    let url = g.url();
    let url2 = url.clone();

    let listed = tokio::task::spawn_blocking(move || inspector(&url2, &["--method", "tools/list"]))
        .await
        .expect("join");
    let v: Value = serde_json::from_str(&listed)
        .unwrap_or_else(|e| panic!("tools/list output is not JSON ({e}): {listed}"));
    let names: Vec<&str> = v["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for expected in [
        "kube_namespaces_list",
        "kube_pods_list",
        "ev_echo",
        "ev_get-sum",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    // Besides the two servers' tools, the broker's discovery meta-tools (on by default, as in
    // the seed).
    assert!(
        names.iter().all(|n| n.starts_with("kube_")
            || n.starts_with("ev_")
            || ["discover_tools", "select_tools"].contains(n)),
        "{names:?}"
    );

    // The same client on server-everything directly lists the same tools: through the gateway
    // they have the prefix, and those the server lists only to a client with the capabilities
    // the Inspector declares (`roots`: `get-roots-list`) are there too.
    let direct_url = format!("http://127.0.0.1:{ev_port}/mcp");
    let direct =
        tokio::task::spawn_blocking(move || inspector(&direct_url, &["--method", "tools/list"]))
            .await
            .expect("join");
    let direct: Value = serde_json::from_str(&direct)
        .unwrap_or_else(|e| panic!("tools/list output is not JSON ({e}): {direct}"));
    let direct: std::collections::BTreeSet<String> = direct["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .map(|n| format!("ev_{n}"))
        .collect();
    let through: std::collections::BTreeSet<String> = names
        .iter()
        .filter(|n| n.starts_with("ev_"))
        .map(|n| (*n).to_owned())
        .collect();
    assert!(
        direct.contains("ev_get-roots-list"),
        "the Inspector declares roots: {direct:?}"
    );
    assert_eq!(through, direct, "through the gateway and directly");

    let u = url.clone();
    let ns = tokio::task::spawn_blocking(move || {
        inspector(
            &u,
            &[
                "--method",
                "tools/call",
                "--tool-name",
                "kube_namespaces_list",
            ],
        )
    })
    .await
    .expect("join");
    for expected in ["default", "kube-system", "mcp-test"] {
        assert!(
            ns.contains(expected),
            "namespaces_list through the gateway: {ns}"
        );
    }

    let u = url.clone();
    let echo = tokio::task::spawn_blocking(move || {
        inspector(
            &u,
            &[
                "--method",
                "tools/call",
                "--tool-name",
                "ev_echo",
                "--tool-arg",
                "message=hello gateway",
            ],
        )
    })
    .await
    .expect("join");
    assert!(echo.contains("Echo: hello gateway"), "{echo}");

    let u = url.clone();
    let sum = tokio::task::spawn_blocking(move || {
        inspector(
            &u,
            &[
                "--method",
                "tools/call",
                "--tool-name",
                "ev_get-sum",
                "--tool-arg",
                "a=20",
                "--tool-arg",
                "b=22",
            ],
        )
    })
    .await
    .expect("join");
    assert!(sum.contains("42"), "{sum}");

    // One rejection, so that its family has a sample.
    let bad = common::Client::new(&url).post_raw("{not json", &[]).await;
    assert_eq!(bad.status, 400);
    let metrics = g.metrics().await;
    // Every metric the shipped Grafana dashboard charts is exported.
    let dashboard =
        std::fs::read_to_string(common::repo().join("deploy/grafana/mcp-router-dashboard.json"))
            .expect("dashboard");
    let mut charted: Vec<&str> = dashboard
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("mcp_router_"))
        .collect();
    charted.sort_unstable();
    charted.dedup();
    assert!(charted.len() >= 8, "{charted:?}");
    for name in charted {
        if name == "mcp_router_upstream_sessions_lost_total" {
            continue; // only after an upstream forgets a session: checked in tests/integration/routing.rs
        }
        let base = name.trim_end_matches("_bucket").trim_end_matches("_total");
        assert!(
            metrics.contains(&format!("# HELP {base} ")),
            "{name} is charted but not described in the exposition:\n{metrics}"
        );
    }
    assert!(metrics.contains("mcp_router_requests_total{method=\"tools/call\",decision=\"upstream\",server=\"mcp-test/kubernetes-mcp\"}"), "{metrics}");
}
