//! The integration harness: the real Envoy 1.40 (from `deploy/local`), the real mcp-router
//! binary, real or fixture MCP servers, all on 127.0.0.1 with ports picked here.
//!
//! Tools come from `scripts/install-tools.sh` (run by `make test`); a missing tool fails the test
//! with a message that says how to install it.

#![allow(dead_code, unreachable_pub)]

pub mod fixture;
pub mod otlp_collector;
pub mod tls;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A tool installed under `.tools/`, or a failure that says how to get it.
pub fn tool(rel: &str) -> PathBuf {
    let p = repo().join(rel);
    assert!(
        p.exists(),
        "{} is missing: run `make tools` (scripts/install-tools.sh all) first; `make test` does it for you",
        p.display()
    );
    p
}

pub fn envoy_bin() -> PathBuf {
    tool(".tools/bin/envoy")
}

pub fn node_bin(name: &str) -> PathBuf {
    tool(&format!(".tools/node/node_modules/.bin/{name}"))
}

/// A port for a server the test starts, free when picked.
///
/// Ports come from 20000-32767, below the kernel's ephemeral range (32768-60999 by default), so
/// no outgoing connection of another test can take a port between the pick and the server's bind
/// (which is what asking the kernel for port 0 and closing it again allowed). Each test process
/// walks the range from its own offset and never hands out a port twice.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_768;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = (LOW + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000-32767 on 127.0.0.1");
}

/// Where a test's process logs go (kept after the test for debugging).
pub fn log_dir(test: &str) -> PathBuf {
    let d = repo()
        .join("target/test-logs")
        .join(format!("{test}-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("log dir");
    d
}

/// A child process in its own process group, killed (with its children) on drop.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command, logs: &Path) -> Proc {
        use std::os::unix::process::CommandExt;
        let log = logs.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            name: name.into(),
            child,
            log,
        }
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// The whole log once it contains `needle`, waiting up to 10 s for it: lines reach the file
    /// in batches, a few milliseconds after they are logged. Fails with the log tail.
    pub async fn wait_for_log(&self, needle: &str) -> String {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < until,
                "{} never logged {needle:?}; log {}:\n{}",
                self.name,
                self.log.display(),
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Fails with the log tail if the process has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited ({status}); log {}:\n{}",
                self.name,
                self.log.display(),
                self.log_tail()
            );
        }
    }

    pub fn kill(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // Signal the process group (the child and what it started) by its id, never with the
        // `kill` command: procps-ng 4.0.2 turns `kill -KILL -PGID` into kill(-1), every process.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            if pid > 1 {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until something accepts TCP connections on 127.0.0.1:port.
pub async fn wait_port(port: u16, proc: &mut Proc, timeout: Duration) {
    let start = Instant::now();
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        proc.assert_running();
        assert!(
            start.elapsed() < timeout,
            "{} did not listen on {port} within {timeout:?}; log:\n{}",
            proc.name,
            proc.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One upstream as the gateway config and the Envoy bootstrap see it.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub name: String,
    pub hostname: String,
    pub prefix: String,
    pub port: u16,
    pub path: String,
}

impl Upstream {
    pub fn new(name: &str, prefix: &str, port: u16) -> Upstream {
        let host = name.replace('/', "-");
        Upstream {
            name: name.into(),
            hostname: format!("{host}.mcp.local"),
            prefix: prefix.into(),
            port,
            path: "/mcp".into(),
        }
    }
}

pub const PUBLIC_HOST: &str = "mcp-gateway.local";
pub const SIGNING_KEY: &str = "test-signing-key-0123456789abcdef-0123";

/// Envoy + mcp-router in front of the given upstreams.
pub struct Gateway {
    pub envoy: Proc,
    pub router: Proc,
    pub other_routers: Vec<Proc>,
    pub metrics_ports: Vec<u16>,
    pub broker_ports: Vec<u16>,
    pub port: u16,
    pub router_port: u16,
    pub broker_port: u16,
    pub metrics_port: u16,
    pub config_path: PathBuf,
    pub logs: PathBuf,
    pub upstreams: Vec<Upstream>,
    /// Each replica's command line, to start it again.
    pub router_args: Vec<Vec<String>>,
    /// Extra environment of the mcp-router processes (for restarts).
    pub router_env: Vec<(String, String)>,
}

fn spawn_router(name: &str, args: &[String], env: &[(String, String)], logs: &Path) -> Proc {
    Proc::spawn(
        name,
        Command::new(env!("CARGO_BIN_EXE_mcp-router"))
            .args(args)
            .env("GATEWAY_SIGNING_KEY", SIGNING_KEY)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        logs,
    )
}

pub fn config_yaml(upstreams: &[Upstream]) -> String {
    let mut y = String::from("servers:\n");
    for u in upstreams {
        y.push_str(&format!(
            "  - name: {}\n    url: http://127.0.0.1:{}{}\n    hostname: {}\n    prefix: \"{}\"\n",
            u.name, u.port, u.path, u.hostname, u.prefix
        ));
    }
    y.push_str("virtualServers:\n  - name: test/only-echo\n    tools: [ev_echo, fx_echo]\n");
    y
}

/// Starts mcp-router with `extra` flags (`{envoy_port}` in them is replaced by Envoy's port) and the
/// real Envoy from the deploy/local bootstrap.
pub async fn start_gateway(test: &str, upstreams: &[Upstream], extra: &[&str]) -> Gateway {
    start_replicas(test, upstreams, extra, 1).await
}

/// Like [`start_gateway`] with `replicas` mcp-router processes (same config and signing key)
/// that Envoy balances round robin, for both ext_proc and the broker.
pub async fn start_replicas(
    test: &str,
    upstreams: &[Upstream],
    extra: &[&str],
    replicas: usize,
) -> Gateway {
    start_with(
        test,
        upstreams,
        extra,
        replicas,
        &config_yaml(upstreams),
        &[],
        &[],
    )
    .await
}

/// Like [`start_gateway`] with extra `render_envoy.py` options for the Envoy bootstrap (such as
/// `--allow-tools`).
pub async fn start_gateway_with_envoy(
    test: &str,
    upstreams: &[Upstream],
    extra: &[&str],
    envoy_extra: &[&str],
) -> Gateway {
    start_with(
        test,
        upstreams,
        extra,
        1,
        &config_yaml(upstreams),
        &[],
        envoy_extra,
    )
    .await
}

/// Like [`start_gateway`] with a config file of the test's own and extra environment variables
/// for mcp-router.
pub async fn start_gateway_with(
    test: &str,
    upstreams: &[Upstream],
    extra: &[&str],
    config: &str,
    env: &[(&str, &str)],
) -> Gateway {
    start_with(test, upstreams, extra, 1, config, env, &[]).await
}

/// Everything a start of the gateway can vary; see [`launch`].
pub struct Launch<'a> {
    /// mcp-router flags (`{envoy_port}` is replaced by Envoy's port).
    pub extra: &'a [&'a str],
    pub replicas: usize,
    /// The config file; `None`: [`config_yaml`] of the upstreams.
    pub config: Option<String>,
    pub env: &'a [(&'a str, &'a str)],
    /// `render_envoy.py` options.
    pub envoy_extra: &'a [&'a str],
    /// Wait until every upstream is discovered (not for one that cannot be).
    pub wait_discovered: bool,
}

impl Default for Launch<'_> {
    fn default() -> Self {
        Launch {
            extra: &[],
            replicas: 1,
            config: None,
            env: &[],
            envoy_extra: &[],
            wait_discovered: true,
        }
    }
}

/// Envoy + mcp-router as `l` says.
pub async fn launch(test: &str, upstreams: &[Upstream], l: Launch<'_>) -> Gateway {
    let config = l.config.clone().unwrap_or_else(|| config_yaml(upstreams));
    start_inner(test, upstreams, &l, &config).await
}

async fn start_with(
    test: &str,
    upstreams: &[Upstream],
    extra: &[&str],
    replicas: usize,
    config: &str,
    env: &[(&str, &str)],
    envoy_extra: &[&str],
) -> Gateway {
    let l = Launch {
        extra,
        replicas,
        config: None,
        env,
        envoy_extra,
        wait_discovered: true,
    };
    start_inner(test, upstreams, &l, config).await
}

async fn start_inner(test: &str, upstreams: &[Upstream], l: &Launch<'_>, config: &str) -> Gateway {
    let Launch {
        extra,
        replicas,
        env,
        envoy_extra,
        ..
    } = *l;
    let logs = log_dir(test);
    let config_path = logs.join("config.yaml");
    let port = free_port();
    // `{envoy_port}` in the config too (a protected resource's URL names the gateway's port).
    std::fs::write(
        &config_path,
        config.replace("{envoy_port}", &port.to_string()),
    )
    .expect("config");
    let mut routers = Vec::new();
    let mut router_args = Vec::new();
    let router_env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let (mut router_ports, mut broker_ports, mut metrics_ports) =
        (Vec::new(), Vec::new(), Vec::new());
    for i in 0..replicas {
        let (router_port, broker_port, metrics_port) = (free_port(), free_port(), free_port());
        let name = if i == 0 {
            "mcp-router".to_owned()
        } else {
            format!("mcp-router-{i}")
        };
        let mut args = vec![
            "--mcp-gateway-config".to_owned(),
            config_path.display().to_string(),
            format!("--mcp-router-address=127.0.0.1:{router_port}"),
            format!("--mcp-broker-public-address=127.0.0.1:{broker_port}"),
            format!("--metrics-addr=127.0.0.1:{metrics_port}"),
            format!("--mcp-gateway-public-host={PUBLIC_HOST}"),
            "--mcp-check-interval=2".to_owned(),
            "--log-level=debug".to_owned(),
        ];
        args.extend(
            extra
                .iter()
                .map(|a| a.replace("{envoy_port}", &port.to_string())),
        );
        routers.push(spawn_router(&name, &args, &router_env, &logs));
        router_args.push(args);
        router_ports.push(router_port);
        broker_ports.push(broker_port);
        metrics_ports.push(metrics_port);
    }
    let join = |v: &[u16]| v.iter().map(u16::to_string).collect::<Vec<_>>().join(",");
    let bootstrap = logs.join("envoy.yaml");
    let mut render = Command::new("python3");
    render
        .arg(repo().join("deploy/local/render_envoy.py"))
        .arg("--out")
        .arg(&bootstrap)
        .arg(format!("--listen-port={port}"))
        .arg("--admin-port=0")
        .arg(format!("--router-port={}", join(&router_ports)))
        .arg(format!("--broker-port={}", join(&broker_ports)))
        .arg(format!("--public-host={PUBLIC_HOST}"));
    for u in upstreams {
        render.arg(format!(
            "--upstream={}={}=127.0.0.1:{}",
            u.name, u.hostname, u.port
        ));
    }
    render.args(envoy_extra);
    let status = render
        .status()
        .expect("python3 to render the Envoy bootstrap");
    assert!(status.success(), "render_envoy.py failed");
    let mut envoy = Proc::spawn(
        "envoy",
        Command::new(envoy_bin())
            .arg("-c")
            .arg(&bootstrap)
            .arg("--use-dynamic-base-id")
            .arg("--log-level")
            .arg("warn"),
        &logs,
    );
    for (r, p) in routers.iter_mut().zip(&broker_ports) {
        wait_port(*p, r, Duration::from_secs(20)).await;
    }
    wait_port(port, &mut envoy, Duration::from_secs(30)).await;
    let router = routers.remove(0);
    let g = Gateway {
        envoy,
        router,
        other_routers: routers,
        port,
        router_port: router_ports[0],
        broker_port: broker_ports[0],
        metrics_port: metrics_ports[0],
        metrics_ports,
        broker_ports,
        config_path,
        logs,
        upstreams: upstreams.to_vec(),
        router_args,
        router_env,
    };
    if l.wait_discovered {
        for p in g.broker_ports.clone() {
            g.wait_discovered_on(p, Duration::from_secs(30)).await;
        }
    }
    g
}

impl Gateway {
    /// Starts replica `i` again with its original command line (the same ports and signing
    /// key) and waits until its broker listens; its log goes to `<name>-<n>.log`.
    pub async fn spawn_replica(&self, i: usize, n: usize) -> Proc {
        let mut p = spawn_router(
            &format!("mcp-router-{i}-run{n}"),
            &self.router_args[i],
            &self.router_env,
            &self.logs,
        );
        wait_port(self.broker_ports[i], &mut p, Duration::from_secs(20)).await;
        p
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    pub async fn status(&self) -> Value {
        self.status_on(self.broker_port).await
    }

    pub async fn status_on(&self, broker_port: u16) -> Value {
        reqwest::get(format!("http://127.0.0.1:{broker_port}/status"))
            .await
            .expect("status")
            .json()
            .await
            .expect("status json")
    }

    /// Waits until every upstream is discovered (state Ready).
    pub async fn wait_discovered(&self, timeout: Duration) {
        self.wait_discovered_on(self.broker_port, timeout).await;
    }

    pub async fn wait_discovered_on(&self, broker_port: u16, timeout: Duration) {
        let start = Instant::now();
        loop {
            let s = self.status_on(broker_port).await;
            let ready = s["servers"].as_array().is_some_and(|a| {
                a.len() == self.upstreams.len() && a.iter().all(|x| x["health"]["state"] == "ready")
            });
            if ready {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "upstreams not discovered in {timeout:?}: {s:#}\nrouter log:\n{}",
                self.router.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn metrics(&self) -> String {
        self.metrics_on(self.metrics_port).await
    }

    pub async fn metrics_on(&self, port: u16) -> String {
        reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }
}

/// A reply as a test sees it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    /// The JSON-RPC message (from a JSON body or the first SSE data event).
    pub json: Value,
    pub text: String,
}

impl Reply {
    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// A minimal Streamable HTTP client for raw-protocol assertions.
pub struct Client {
    pub http: reqwest::Client,
    pub url: String,
    pub session: Option<String>,
    /// Sent as `Authorization: Bearer …` when set.
    pub bearer: Option<String>,
}

impl Client {
    pub fn new(url: &str) -> Client {
        Client {
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
            url: url.into(),
            session: None,
            bearer: None,
        }
    }

    pub async fn post_raw(
        &self,
        body: impl Into<reqwest::Body>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self
            .http
            .post(&self.url)
            .header("accept", "application/json, text/event-stream");
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("mcp-protocol-version"))
        {
            req = req.header("mcp-protocol-version", "2025-11-25");
        }
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s);
        }
        if let Some(t) = &self.bearer {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let mut has_ct = false;
        for (k, v) in headers {
            has_ct |= k.eq_ignore_ascii_case("content-type");
            req = req.header(*k, *v);
        }
        if !has_ct {
            req = req.header("content-type", "application/json");
        }
        let resp = req.body(body).send().await.expect("post");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let json = final_message(&text, &content_type(&headers));
        Reply {
            status,
            headers,
            json,
            text,
        }
    }

    pub async fn request(&self, id: Value, method: &str, params: Value) -> Reply {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.post_raw(serde_json::to_vec(&body).expect("encode"), &[])
            .await
    }

    /// initialize + notifications/initialized; keeps the session id.
    pub async fn initialize(&mut self) -> Reply {
        self.initialize_with(json!({})).await
    }

    /// [`Client::initialize`] declaring `capabilities`.
    pub async fn initialize_with(&mut self, capabilities: Value) -> Reply {
        let r = self
            .request(json!(0), "initialize", json!({"protocolVersion": "2025-11-25", "capabilities": capabilities, "clientInfo": {"name": "test", "version": "1"}}))
            .await;
        assert_eq!(r.status, 200, "initialize: {}", r.text);
        self.session = r
            .headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        assert!(self.session.is_some(), "initialize returned no session id");
        let n = self
            .post_raw(
                r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
                &[],
            )
            .await;
        assert_eq!(n.status, 202, "initialized: {}", n.text);
        r
    }

    pub async fn call_tool(&self, id: i64, name: &str, args: Value) -> Reply {
        self.request(
            json!(id),
            "tools/call",
            json!({"name": name, "arguments": args}),
        )
        .await
    }
}

/// Runs the MCP Inspector CLI against `url` and returns its stdout (fails on a non-zero exit).
pub fn inspector(url: &str, args: &[&str]) -> String {
    let out = Command::new(node_bin("mcp-inspector"))
        .arg("--cli")
        .arg(url)
        .args(["--transport", "http"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run mcp-inspector");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "mcp-inspector {args:?} failed ({}):\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The reference server (`@modelcontextprotocol/server-everything`) on a free loopback port.
pub async fn start_everything(logs: &Path) -> (Proc, u16) {
    let port = free_port();
    let mut p = Proc::spawn(
        "server-everything",
        Command::new("node")
            .arg("--require")
            .arg(repo().join("deploy/local/loopback.cjs"))
            .arg(tool(
                ".tools/node/node_modules/@modelcontextprotocol/server-everything/dist/index.js",
            ))
            .arg("streamableHttp")
            .env("PORT", port.to_string()),
        logs,
    );
    wait_port(port, &mut p, Duration::from_secs(30)).await;
    (p, port)
}

/// The stand-in Kubernetes API server; returns it and a kubeconfig pointing at it.
pub async fn start_fake_kube_api(logs: &Path) -> (Proc, u16, PathBuf) {
    let port = free_port();
    let kubeconfig = logs.join("kubeconfig");
    let mut p = Proc::spawn(
        "fake-kube-api",
        Command::new("python3")
            .arg(repo().join("deploy/local/fake-kube-api.py"))
            .arg(format!("--port={port}"))
            .arg("--kubeconfig-out")
            .arg(&kubeconfig),
        logs,
    );
    wait_port(port, &mut p, Duration::from_secs(20)).await;
    (p, port, kubeconfig)
}

/// The Kubernetes MCP server (npm `kubernetes-mcp-server-linux-amd64`) on a free loopback port.
pub async fn start_kubernetes_mcp(logs: &Path, kubeconfig: &Path, extra_toml: &str) -> (Proc, u16) {
    let port = free_port();
    let toml = logs.join("kubernetes-mcp.toml");
    std::fs::write(
        &toml,
        format!("bind_address = \"127.0.0.1\"\nlist_output = \"yaml\"\n{extra_toml}"),
    )
    .expect("toml");
    let mut p = Proc::spawn(
        "kubernetes-mcp",
        Command::new(tool(".tools/node/node_modules/kubernetes-mcp-server-linux-amd64/bin/kubernetes-mcp-server-linux-amd64"))
            .arg("--port")
            .arg(port.to_string())
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--config")
            .arg(&toml),
        logs,
    );
    wait_port(port, &mut p, Duration::from_secs(30)).await;
    (p, port)
}

/// A real Redis server on a free loopback port (Debian `redis-server`, installed by `make test`).
pub async fn start_redis(logs: &Path) -> (Proc, u16) {
    let port = free_port();
    (start_redis_on(logs, port).await, port)
}

/// A real Redis server on `port` (to start one again where a stopped one was).
pub async fn start_redis_on(logs: &Path, port: u16) -> Proc {
    let bin = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("redis-server is missing: run `scripts/install-tools.sh redis` (apt-get install redis-server); `make test` does it"));
    let mut p = Proc::spawn(
        &format!(
            "redis-{port}-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
        ),
        Command::new(bin)
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .current_dir(logs),
        logs,
    );
    wait_port(port, &mut p, Duration::from_secs(20)).await;
    p
}

/// A real Redis server speaking only TLS (`rediss://`) on a free loopback port, with the
/// certificate and key files given (PEM) and `ca` as its CA file (clients are not asked for
/// certificates).
pub async fn start_redis_tls(logs: &Path, cert: &Path, key: &Path, ca: &Path) -> (Proc, u16) {
    let port = free_port();
    let bin = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("redis-server is missing: run `scripts/install-tools.sh redis` (apt-get install redis-server); `make test` does it"));
    let path = |p: &Path| p.display().to_string();
    let mut p = Proc::spawn(
        &format!("redis-tls-{port}"),
        Command::new(bin)
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
            ])
            .args(["--tls-cert-file", &path(cert), "--tls-key-file", &path(key)])
            .args(["--tls-ca-cert-file", &path(ca), "--tls-auth-clients", "no"])
            .args(["--save", "", "--appendonly", "no"])
            .current_dir(logs),
        logs,
    );
    wait_port(port, &mut p, Duration::from_secs(20)).await;
    (p, port)
}

/// The venv's Python (with the MCP Python SDK), installed by `make test`.
pub fn python_bin() -> PathBuf {
    tool(".tools/venv/bin/python")
}

/// Runs `tests/python/<script>` with `args` in the venv and reads the JSON object it prints last;
/// fails (saying so, with its output) when the script fails.
pub fn python_json(script: &str, args: &[&str]) -> Value {
    let out = Command::new(python_bin())
        .arg(repo().join("tests/python").join(script))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run the venv's python ({e}): run `scripts/install-tools.sh python` (make test does it)"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python {script} failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("client output")
}

/// A real MCP server built with the official Python SDK (tests/python/upstream.py), which
/// speaks 2026-07-28 and the 2025 session protocol, on a free loopback port.
pub async fn start_python_upstream(logs: &Path) -> (Proc, u16) {
    let port = free_port();
    let mut p = Proc::spawn(
        "python-upstream",
        Command::new(python_bin())
            .arg(repo().join("tests/python/upstream.py"))
            .arg(port.to_string()),
        logs,
    );
    wait_port(port, &mut p, Duration::from_secs(30)).await;
    (p, port)
}

/// A response's `content-type`, or "" without one.
pub fn content_type(headers: &reqwest::header::HeaderMap) -> String {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// The answer in a response body: the JSON body, or the first result or error among the events
/// of an SSE body; `Null` when there is none.
pub fn final_message(text: &str, content_type: &str) -> Value {
    if content_type.starts_with("text/event-stream") {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|m| m.get("result").is_some() || m.get("error").is_some())
            .unwrap_or(Value::Null)
    } else {
        serde_json::from_str(text).unwrap_or(Value::Null)
    }
}
