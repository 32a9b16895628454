//! The Kubernetes files render (`kubectl kustomize`), every object has what its kind needs, and
//! the EnvoyFilter's ext_proc filter (and the sidecar's cluster) are accepted by the real Envoy.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic: that is how they fail

use std::path::PathBuf;
use std::process::Command;

use serde::Deserialize;
use serde_yaml_ng::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tool(env: &str, rel: &str) -> PathBuf {
    let p = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(rel));
    assert!(
        p.exists(),
        "{} is missing: run `make tools` (scripts/install-tools.sh all); `make test` does it",
        p.display()
    );
    p
}

fn render(dir: &str) -> Vec<Value> {
    let out = Command::new(tool("KUBECTL", ".tools/bin/kubectl"))
        .args(["kustomize"])
        .arg(repo().join("deploy/kubernetes").join(dir))
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl kustomize {dir}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf8");
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).expect("rendered YAML parses"))
        .collect()
}

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for p in path {
        cur = match p.parse::<usize>() {
            Ok(i) => cur.get(i)?,
            Err(_) => cur.get(*p)?,
        };
    }
    Some(cur)
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    s(v, path).and_then(Value::as_str).unwrap_or("")
}

fn find<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter()
        .filter(|d| str_at(d, &["kind"]) == kind)
        .collect()
}

fn check_common(docs: &[Value]) {
    for d in docs {
        for f in ["apiVersion", "kind"] {
            assert!(!str_at(d, &[f]).is_empty(), "{f} missing: {d:?}");
        }
        assert!(
            !str_at(d, &["metadata", "name"]).is_empty(),
            "metadata.name missing: {d:?}"
        );
        if str_at(d, &["kind"]) != "Namespace" {
            assert!(
                !str_at(d, &["metadata", "namespace"]).is_empty(),
                "namespace missing: {d:?}"
            );
        }
    }
}

fn check_ext_proc(filter: &Value, cluster: &str) {
    let c = s(filter, &["typed_config"]).expect("typed_config");
    assert_eq!(
        str_at(c, &["@type"]),
        "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor"
    );
    assert_eq!(
        s(c, &["failure_mode_allow"]).and_then(Value::as_bool),
        Some(false)
    );
    assert_eq!(
        s(c, &["allow_mode_override"]).and_then(Value::as_bool),
        Some(true)
    );
    assert_eq!(
        s(c, &["mutation_rules", "allow_all_routing"]).and_then(Value::as_bool),
        Some(true)
    );
    assert_eq!(str_at(c, &["message_timeout"]), "10s");
    for (k, v) in [
        ("request_header_mode", "SEND"),
        ("response_header_mode", "SEND"),
        ("request_body_mode", "BUFFERED"),
        ("response_body_mode", "NONE"),
        ("request_trailer_mode", "SKIP"),
        ("response_trailer_mode", "SKIP"),
    ] {
        assert_eq!(str_at(c, &["processing_mode", k]), v, "{k}");
    }
    assert_eq!(
        str_at(c, &["grpc_service", "envoy_grpc", "cluster_name"]),
        cluster
    );
}

/// Builds a bootstrap around the EnvoyFilter's filter (and cluster) and runs `envoy --mode validate`.
fn envoy_validates(filter: &Value, cluster: serde_json::Value, name: &str) {
    let filter_json: serde_json::Value = serde_json::to_value(filter).expect("to json");
    let bootstrap = serde_json::json!({
        "static_resources": {
            "listeners": [{
                "name": "gw",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "gw",
                        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "backend"}}]}]},
                        "http_filters": [filter_json, {"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
                    }
                }]}],
            }],
            "clusters": [cluster, {
                "name": "backend", "type": "STATIC",
                "load_assignment": {"cluster_name": "backend", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 1}}}}]}]},
            }],
        }
    });
    let dir = repo().join("target/test-logs");
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(format!("deploy-{name}-{}.json", std::process::id()));
    std::fs::write(&path, serde_json::to_vec_pretty(&bootstrap).expect("json")).expect("write");
    let out = Command::new(tool("ENVOY", ".tools/bin/envoy"))
        .args([
            "--mode",
            "validate",
            "--use-dynamic-base-id",
            "-l",
            "error",
            "-c",
        ])
        .arg(&path)
        .output()
        .expect("run envoy");
    assert!(
        out.status.success(),
        "envoy rejected the {name} EnvoyFilter config:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn http2_cluster(name: &str) -> serde_json::Value {
    serde_json::json!({
        "name": name, "type": "STATIC",
        "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}}}},
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 50051}}}}]}]},
    })
}

fn patch<'a>(ef: &'a Value, apply_to: &str) -> &'a Value {
    s(ef, &["spec", "configPatches"])
        .and_then(Value::as_sequence)
        .and_then(|p| p.iter().find(|p| str_at(p, &["applyTo"]) == apply_to))
        .unwrap_or_else(|| panic!("no {apply_to} patch"))
}

#[test]
fn gateway_mode_renders_and_envoy_accepts_its_filter() {
    let docs = render("base");
    check_common(&docs);
    let dep = find(&docs, "Deployment")[0];
    let labels = s(dep, &["spec", "template", "metadata", "labels"]).expect("labels");
    let selector = s(dep, &["spec", "selector", "matchLabels"])
        .and_then(Value::as_mapping)
        .expect("selector");
    for (k, v) in selector {
        assert_eq!(labels.get(k), Some(v), "selector matches template labels");
    }
    let c = s(dep, &["spec", "template", "spec", "containers", "0"]).expect("container");
    assert!(
        str_at(c, &["image"]).starts_with("ghcr.io/example/mcp-router"),
        "image set by kustomize"
    );
    assert_eq!(str_at(c, &["readinessProbe", "httpGet", "path"]), "/readyz");
    assert_eq!(str_at(c, &["livenessProbe", "httpGet", "path"]), "/healthz");
    assert_eq!(
        s(c, &["securityContext", "readOnlyRootFilesystem"]).and_then(Value::as_bool),
        Some(true)
    );
    assert_eq!(
        s(c, &["securityContext", "allowPrivilegeEscalation"]).and_then(Value::as_bool),
        Some(false)
    );
    assert_eq!(
        s(
            dep,
            &[
                "spec",
                "template",
                "spec",
                "securityContext",
                "runAsNonRoot"
            ]
        )
        .and_then(Value::as_bool),
        Some(true)
    );
    let args: Vec<&str> = s(c, &["args"])
        .and_then(Value::as_sequence)
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        args.iter()
            .any(|a| a.starts_with("--mcp-gateway-public-host=")),
        "{args:?}"
    );

    let svc = find(&docs, "Service")[0];
    let ports: Vec<(&str, u64)> = s(svc, &["spec", "ports"])
        .and_then(Value::as_sequence)
        .expect("ports")
        .iter()
        .map(|p| {
            (
                str_at(p, &["name"]),
                s(p, &["port"]).and_then(Value::as_u64).unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(ports, [("grpc", 50051), ("http", 8080), ("metrics", 9090)]);

    let secrets = find(&docs, "Secret");
    let config = secrets
        .iter()
        .find(|s| str_at(s, &["metadata", "name"]) == "mcp-gateway-config")
        .expect("config secret");
    let yaml = str_at(config, &["stringData", "config.yaml"]);
    let parsed = mcp_router::config::Config::from_yaml(yaml).expect("the shipped config validates");
    assert_eq!(parsed.servers[0].prefix.as_ref(), "kube_");

    let route = find(&docs, "HTTPRoute")[0];
    assert_eq!(
        str_at(route, &["spec", "parentRefs", "0", "name"]),
        "mcp-gateway"
    );

    let ef = find(&docs, "EnvoyFilter")[0];
    assert_eq!(str_at(ef, &["metadata", "namespace"]), "gateway-system");
    let p = patch(ef, "HTTP_FILTER");
    assert_eq!(str_at(p, &["patch", "operation"]), "INSERT_FIRST");
    let filter = s(p, &["patch", "value"]).expect("filter");
    let cluster = "outbound|50051||mcp-router.mcp-system.svc.cluster.local";
    check_ext_proc(filter, cluster);
    envoy_validates(filter, http2_cluster(cluster), "gateway");
}

#[test]
fn sidecar_mode_renders_and_envoy_accepts_its_filter_and_cluster() {
    let docs = render("overlays/sidecar");
    check_common(&docs);
    for d in &docs {
        assert_eq!(
            str_at(d, &["metadata", "namespace"]),
            "gateway-system",
            "{d:?}"
        );
    }
    let options = find(&docs, "ConfigMap")[0];
    let deployment: Value = serde_yaml_ng::from_str(str_at(options, &["data", "deployment"]))
        .expect("deployment overlay parses");
    let c = s(
        &deployment,
        &["spec", "template", "spec", "containers", "0"],
    )
    .expect("container");
    assert_eq!(str_at(c, &["name"]), "mcp-router");
    let ef = find(&docs, "EnvoyFilter")[0];
    let filter = s(patch(ef, "HTTP_FILTER"), &["patch", "value"]).expect("filter");
    check_ext_proc(filter, "mcp-router-local");
    let cluster = s(patch(ef, "CLUSTER"), &["patch", "value"]).expect("cluster");
    envoy_validates(
        filter,
        serde_json::to_value(cluster).expect("json"),
        "sidecar",
    );
}

#[test]
fn the_use_case_1_example_renders() {
    let docs = render("examples/use-case-1");
    check_common(&docs);
    let route = find(&docs, "HTTPRoute")[0];
    assert_eq!(
        str_at(route, &["spec", "hostnames", "0"]),
        "kubernetes-mcp.example.com",
        "matches the config Secret's hostname"
    );
    assert_eq!(find(&docs, "ServiceEntry").len(), 1);
}
