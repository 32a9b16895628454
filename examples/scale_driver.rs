//! Load driver for `make bench-scale` (scripts/bench-scale.sh): many gateway sessions through
//! Envoy + mcp-router, each calling tools on several upstreams.
//!
//! ```text
//! scale_driver --url http://127.0.0.1:PORT/mcp --sessions N --concurrency C \
//!     --tools a_echo,b_echo [--calls K] [--cold] [--rss-pid PID] [--deadline-secs T]
//! ```
//!
//! - `--cold`: every session starts at the same moment (a barrier): initialize, initialized, then
//!   one call of each tool, all `N` at once (a cold-start storm).
//! - otherwise: `N` sessions are created `C` at a time and all kept; then every session calls
//!   every tool `K` times, `C` requests in flight at once.
//!
//! Prints one JSON object: errors (with the first few), latencies, and the router's RSS (from
//! `/proc/PID/status`) before, after the sessions were made and at the end. Bounded in count
//! (`N`, `K`) and time (`--deadline-secs`, default 600).

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::Semaphore;

struct Args {
    url: String,
    sessions: usize,
    concurrency: usize,
    tools: Vec<String>,
    calls: usize,
    cold: bool,
    rss_pid: Option<u32>,
    deadline: Duration,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        url: String::new(),
        sessions: 100,
        concurrency: 100,
        tools: vec![],
        calls: 1,
        cold: false,
        rss_pid: None,
        deadline: Duration::from_secs(600),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--cold" {
            a.cold = true;
            continue;
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--url" => a.url = value,
            "--sessions" => a.sessions = num(&value)?,
            "--concurrency" => a.concurrency = num(&value)?.max(1),
            "--tools" => a.tools = value.split(',').map(str::to_owned).collect(),
            "--calls" => a.calls = num(&value)?,
            "--rss-pid" => a.rss_pid = Some(num(&value)? as u32),
            "--deadline-secs" => a.deadline = Duration::from_secs(num(&value)? as u64),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.url.is_empty() || a.tools.is_empty() {
        return Err("--url and --tools are required".into());
    }
    Ok(a)
}

fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Errors and latencies, shared by every task.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    errors: AtomicU64,
    first_errors: Mutex<Vec<String>>,
    latencies_us: Mutex<Vec<u64>>,
}

impl Tally {
    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut f = self.first_errors.lock().unwrap_or_else(|p| p.into_inner());
        if f.len() < 10 {
            f.push(what);
        }
    }

    fn ok(&self, took: Duration) {
        self.ok.fetch_add(1, Ordering::Relaxed);
        self.latencies_us
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(took.as_micros() as u64);
    }

    fn summary(&self) -> Value {
        let mut l = self
            .latencies_us
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        l.sort_unstable();
        let q = |p: f64| {
            l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
                .map_or(0.0, |v| *v as f64 / 1000.0)
        };
        json!({
            "ok": self.ok.load(Ordering::Relaxed),
            "errors": self.errors.load(Ordering::Relaxed),
            "first_errors": *self.first_errors.lock().unwrap_or_else(|p| p.into_inner()),
            "p50_ms": q(0.5), "p99_ms": q(0.99), "max_ms": q(1.0),
        })
    }
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    session: Option<&str>,
    body: Value,
) -> Result<(u16, Option<String>, Value), String> {
    let mut req = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .timeout(Duration::from_secs(30))
        .body(body.to_string());
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    let resp = req.send().await.map_err(|e| format!("send: {e}"))?;
    let status = resp.status().as_u16();
    let sid = resp
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = resp.text().await.map_err(|e| format!("body: {e}"))?;
    let json = if text.is_empty() {
        Value::Null
    } else if text.starts_with('{') {
        serde_json::from_str(&text).unwrap_or(Value::Null)
    } else {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|m| m.get("result").is_some() || m.get("error").is_some())
            .unwrap_or(Value::Null)
    };
    Ok((status, sid, json))
}

/// initialize + notifications/initialized: the new gateway session id.
async fn open_session(http: &reqwest::Client, url: &str, tally: &Tally) -> Option<String> {
    let started = Instant::now();
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "scale-driver", "version": "1"}}});
    let sid = match post(http, url, None, init).await {
        Ok((200, Some(sid), v)) if v["result"].is_object() => sid,
        Ok((s, _, v)) => {
            tally.error(format!("initialize: HTTP {s} {v}"));
            return None;
        }
        Err(e) => {
            tally.error(format!("initialize: {e}"));
            return None;
        }
    };
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    match post(http, url, Some(&sid), note).await {
        Ok((202, _, _)) => {
            tally.ok(started.elapsed());
            Some(sid)
        }
        Ok((s, _, v)) => {
            tally.error(format!("initialized: HTTP {s} {v}"));
            None
        }
        Err(e) => {
            tally.error(format!("initialized: {e}"));
            None
        }
    }
}

async fn call(http: &reqwest::Client, url: &str, sid: &str, tool: &str, id: u64, tally: &Tally) {
    let started = Instant::now();
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": tool, "arguments": {}}});
    match post(http, url, Some(sid), body).await {
        Ok((200, _, v)) if v["id"] == id && v["result"].is_object() => tally.ok(started.elapsed()),
        Ok((s, _, v)) => tally.error(format!("{tool}: HTTP {s} {v}")),
        Err(e) => tally.error(format!("{tool}: {e}")),
    }
}

#[tokio::main]
async fn main() {
    let a = match args() {
        Ok(a) => Arc::new(a),
        Err(e) => {
            eprintln!("scale_driver: {e}");
            std::process::exit(2);
        }
    };
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(a.concurrency)
        .build()
        .unwrap_or_default();
    let started = Instant::now();
    let rss_before = rss_kib(a.rss_pid);
    let sessions = Arc::new(Tally::default());
    let calls = Arc::new(Tally::default());
    let next_id = Arc::new(AtomicU64::new(1));

    let out = if a.cold {
        // Everyone at once: a barrier, then initialize and one call of each tool.
        let barrier = Arc::new(tokio::sync::Barrier::new(a.sessions));
        let tasks: Vec<_> = (0..a.sessions)
            .map(|_| {
                let (a, http, barrier) = (a.clone(), http.clone(), barrier.clone());
                let (sessions, calls, next_id) = (sessions.clone(), calls.clone(), next_id.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    let Some(sid) = open_session(&http, &a.url, &sessions).await else {
                        return;
                    };
                    let calls_here: Vec<_> = a
                        .tools
                        .iter()
                        .map(|t| {
                            let id = next_id.fetch_add(1, Ordering::Relaxed);
                            call(&http, &a.url, &sid, t, id, &calls)
                        })
                        .collect();
                    futures_util::future::join_all(calls_here).await;
                })
            })
            .collect();
        let all = futures_util::future::join_all(tasks);
        if tokio::time::timeout(a.deadline, all).await.is_err() {
            calls.error("deadline passed".into());
        }
        json!({"mode": "cold", "sessions": a.sessions, "tools": a.tools,
            "session_setup": sessions.summary(), "calls": calls.summary(),
            "seconds": started.elapsed().as_secs_f64(),
            "rss_kib": {"before": rss_before, "end": rss_kib(a.rss_pid)}})
    } else {
        let limit = Arc::new(Semaphore::new(a.concurrency));
        let ids = Arc::new(Mutex::new(Vec::with_capacity(a.sessions)));
        let mut tasks = Vec::with_capacity(a.sessions);
        for _ in 0..a.sessions {
            let permit = limit.clone().acquire_owned().await;
            let (args, http, tally, ids) = (a.clone(), http.clone(), sessions.clone(), ids.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = permit;
                if let Some(sid) = open_session(&http, &args.url, &tally).await {
                    ids.lock().unwrap_or_else(|p| p.into_inner()).push(sid);
                }
            }));
            if started.elapsed() > a.deadline {
                sessions.error("deadline passed while opening sessions".into());
                break;
            }
        }
        futures_util::future::join_all(tasks).await;
        let made = started.elapsed();
        let ids: Vec<String> = ids.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let rss_sessions = rss_kib(a.rss_pid);

        let calls_started = Instant::now();
        let mut tasks = Vec::new();
        'outer: for round in 0..a.calls {
            for sid in &ids {
                for tool in &a.tools {
                    let permit = limit.clone().acquire_owned().await;
                    let (args, http, tally) = (a.clone(), http.clone(), calls.clone());
                    let (sid, tool) = (sid.clone(), tool.clone());
                    let id = next_id.fetch_add(1, Ordering::Relaxed);
                    tasks.push(tokio::spawn(async move {
                        let _permit = permit;
                        call(&http, &args.url, &sid, &tool, id, &tally).await;
                    }));
                    if started.elapsed() > a.deadline {
                        calls.error(format!("deadline passed in round {round}"));
                        break 'outer;
                    }
                }
            }
        }
        futures_util::future::join_all(tasks).await;
        let call_secs = calls_started.elapsed().as_secs_f64();
        let total = calls.ok.load(Ordering::Relaxed) + calls.errors.load(Ordering::Relaxed);
        json!({"mode": "sessions", "sessions": a.sessions, "sessions_open": ids.len(),
            "concurrency": a.concurrency, "tools": a.tools, "calls_per_tool": a.calls,
            "session_setup": sessions.summary(), "session_setup_seconds": made.as_secs_f64(),
            "calls": calls.summary(), "call_seconds": call_secs,
            "calls_per_second": total as f64 / call_secs.max(1e-9),
            "rss_kib": {"before": rss_before, "after_sessions": rss_sessions, "end": rss_kib(a.rss_pid)}})
    };
    println!("{out}");
}
