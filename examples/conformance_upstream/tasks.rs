//! The fixture's side of the Tasks extension (`io.modelcontextprotocol/tasks`, SEP-2663), for
//! 2026-07-28 requests that declare it in their `_meta` client capabilities: the tools the
//! suite's `tasks-*` scenarios call (`greet`, sync; `slow_compute`, `failing_job`,
//! `protocol_error_job`, `confirm_delete`, `multi_input`, task-supporting; `test_tool_with_task`,
//! an input-required round before its task), and `tasks/get`, `tasks/update`, `tasks/cancel`.
//! Tasks live in this process, for their ttl, bound to the `Authorization` their creating
//! request carried (their "authorization context"): another caller's `tasks/*` or listen does
//! not find them. Each status change is told as `notifications/tasks` (a full `DetailedTask`)
//! on the `subscriptions/listen` streams that asked for that task in `notifications.taskIds`
//! ([`super::listen`], [`Tasks::listened`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use tokio::sync::{broadcast, Notify};

use super::modern::complete;
use super::{header_str, lock, reply, rpc_error};

pub(super) const EXTENSION: &str = "io.modelcontextprotocol/tasks";
const TTL: Duration = Duration::from_secs(300);
const POLL_MS: u64 = 200;
/// The longest a `slow_compute` sleeps.
const MAX_SECONDS: u64 = 120;

/// Whether a request's `_meta` client capabilities declare the extension.
pub(super) fn declared(params: &Value) -> bool {
    params
        .pointer("/_meta")
        .and_then(|m| m.get("io.modelcontextprotocol/clientCapabilities"))
        .and_then(|c| c.get("extensions"))
        .and_then(|e| e.get(EXTENSION))
        .is_some()
}

struct Task {
    status: &'static str,
    created: String,
    updated: String,
    expires: Instant,
    result: Option<Value>,
    error: Option<Value>,
    /// Pending input requests, by key.
    asks: Map<String, Value>,
    /// Answers received, by key.
    answers: Map<String, Value>,
    /// Wakes the task's runner: an answer came, or it was cancelled.
    wake: Arc<Notify>,
    /// The `Authorization` of the request that created it.
    owner: Option<String>,
}

pub(super) struct Tasks {
    tasks: Mutex<HashMap<String, Task>>,
    next: AtomicU64,
    /// Status changes: (task id, the task as `tasks/get` would answer it).
    changes: broadcast::Sender<(String, Value)>,
}

impl Default for Tasks {
    fn default() -> Tasks {
        Tasks {
            tasks: Mutex::default(),
            next: AtomicU64::default(),
            changes: broadcast::channel(256).0,
        }
    }
}

/// Now as ISO-8601 UTC (`2026-07-28T12:00:00.000Z`).
fn now_iso() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let (secs, ms) = (d.as_secs() as i64, d.subsec_millis());
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn elicit(message: &str, field: &str, kind: &str) -> Value {
    json!({"method": "elicitation/create", "params": {"message": message,
        "requestedSchema": {"type": "object", "properties": {field: {"type": kind}},
            "required": [field]}}})
}

fn text(t: &str) -> Value {
    json!({"content": [{"type": "text", "text": t}]})
}

pub(super) fn tools() -> Vec<Value> {
    let obj = |props: Value| json!({"type": "object", "properties": props});
    let tool = |name: &str, description: &str, schema: Value, support: Option<&str>| {
        let mut t = json!({"name": name, "description": description, "inputSchema": schema});
        if let Some(s) = support {
            t["execution"] = json!({"taskSupport": s});
        }
        t
    };
    vec![
        tool(
            "greet",
            "Says hello (never a task)",
            obj(json!({"name": {"type": "string"}})),
            None,
        ),
        tool(
            "slow_compute",
            "Sleeps `seconds`, then answers (a task when the client declares tasks)",
            obj(json!({"seconds": {"type": "number"}, "label": {"type": "string"}})),
            Some("optional"),
        ),
        tool(
            "failing_job",
            "A task whose tool reports an error after a second",
            obj(json!({})),
            Some("required"),
        ),
        tool(
            "protocol_error_job",
            "A task that fails with a protocol error",
            obj(json!({})),
            Some("optional"),
        ),
        tool(
            "confirm_delete",
            "A task that asks for a confirmation first",
            obj(json!({"filename": {"type": "string"}})),
            Some("optional"),
        ),
        tool(
            "multi_input",
            "A task that asks two questions at once",
            obj(json!({})),
            Some("optional"),
        ),
        tool(
            "test_tool_with_task",
            "Asks the user's name (input-required result), then works as a task",
            obj(json!({})),
            Some("optional"),
        ),
    ]
}

/// What a task does once created.
enum Job {
    Sleep(u64, String),
    ToolError,
    ProtocolError,
    Ask(Map<String, Value>, String),
    Greet(String),
}

impl Tasks {
    fn envelope(id: &str, t: &Task) -> Value {
        json!({"taskId": id, "status": t.status, "createdAt": t.created,
            "lastUpdatedAt": t.updated, "ttlMs": TTL.as_millis() as u64,
            "pollIntervalMs": POLL_MS})
    }

    /// The task as `tasks/get` answers it (a `DetailedTask`), without `resultType`.
    fn detailed(id: &str, t: &Task) -> Value {
        let mut r = Self::envelope(id, t);
        if let Some(x) = &t.result {
            r["result"] = x.clone();
        }
        if let Some(x) = &t.error {
            r["error"] = x.clone();
        }
        if t.status == "input_required" {
            r["inputRequests"] = Value::Object(t.asks.clone());
        }
        r
    }

    /// Tells the listen streams that `id` changed status.
    fn told(&self, id: &str, t: &Task) {
        let _ = self.changes.send((id.to_owned(), Self::detailed(id, t)));
    }

    /// For a `subscriptions/listen` whose filter names `taskIds`: the ids it will be told about
    /// (tasks that exist and were created with the same `Authorization`) and the changes to
    /// come; `Err` with the answer when the request did not declare the extension; `Ok(None)`
    /// when it asks for no task.
    // The error is the answer itself, built once on a cold path.
    #[allow(clippy::type_complexity, clippy::result_large_err)]
    pub(super) fn listened(
        &self,
        headers: &HeaderMap,
        id: &Value,
        params: &Value,
    ) -> Result<Option<(Vec<String>, broadcast::Receiver<(String, Value)>)>, Response> {
        let Some(asked) = params.pointer("/notifications/taskIds") else {
            return Ok(None);
        };
        if !declared(params) {
            return Err(missing_extension(id, "notifications.taskIds"));
        }
        let owner = header_str(headers, "authorization");
        let rx = self.changes.subscribe();
        let mut map = lock(&self.tasks);
        Self::sweep(&mut map);
        let ids = asked
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|i| map.get(*i).is_some_and(|t| t.owner.as_deref() == owner))
            .map(str::to_owned)
            .collect();
        Ok(Some((ids, rx)))
    }

    fn sweep(map: &mut HashMap<String, Task>) {
        let now = Instant::now();
        map.retain(|_, t| t.expires > now);
    }

    fn set(self: &Arc<Self>, id: &str, f: impl FnOnce(&mut Task)) {
        if let Some(t) = lock(&self.tasks).get_mut(id) {
            if !matches!(t.status, "completed" | "failed" | "cancelled") {
                let before = t.status;
                f(t);
                t.updated = now_iso();
                if t.status != before {
                    self.told(id, t);
                }
            }
        }
    }

    fn status(&self, id: &str) -> Option<&'static str> {
        lock(&self.tasks).get(id).map(|t| t.status)
    }

    /// Creates a task running `job` for the caller presenting `owner`; the create result.
    fn create(self: &Arc<Self>, job: Job, owner: Option<String>) -> Value {
        let id = format!(
            "task-{}-{:08x}",
            self.next.fetch_add(1, Ordering::SeqCst),
            rand::random::<u32>()
        );
        let now = now_iso();
        let wake = Arc::new(Notify::new());
        let asks = match &job {
            Job::Ask(a, _) => a.clone(),
            _ => Map::new(),
        };
        let task = Task {
            status: if asks.is_empty() {
                "working"
            } else {
                "input_required"
            },
            created: now.clone(),
            updated: now,
            expires: Instant::now() + TTL,
            result: None,
            error: None,
            asks,
            answers: Map::new(),
            wake: wake.clone(),
            owner,
        };
        let mut created = Self::envelope(&id, &task);
        created["resultType"] = json!("task");
        {
            let mut map = lock(&self.tasks);
            Self::sweep(&mut map);
            map.insert(id.clone(), task);
        }
        let tasks = self.clone();
        tokio::spawn(async move { tasks.run(id, job, wake).await });
        created
    }

    /// Waits `d` or until woken; whether the task was cancelled meanwhile.
    async fn pause(&self, id: &str, d: Duration, wake: &Notify) -> bool {
        let _ = tokio::time::timeout(d, wake.notified()).await;
        self.status(id) == Some("cancelled")
    }

    async fn run(self: Arc<Self>, id: String, job: Job, wake: Arc<Notify>) {
        match job {
            Job::Sleep(seconds, label) => {
                let until = Instant::now() + Duration::from_secs(seconds.min(MAX_SECONDS));
                while Instant::now() < until {
                    if self.pause(&id, until - Instant::now(), &wake).await {
                        return;
                    }
                }
                let r = complete(text(&format!("Computed {label} after {seconds}s")), false);
                self.set(&id, |t| {
                    t.status = "completed";
                    t.result = Some(r);
                });
            }
            Job::ToolError => {
                if self.pause(&id, Duration::from_secs(1), &wake).await {
                    return;
                }
                let r = json!({"resultType": "complete", "isError": true,
                    "content": [{"type": "text", "text": "the job reported an error"}]});
                self.set(&id, |t| {
                    t.status = "completed";
                    t.result = Some(r);
                });
            }
            Job::ProtocolError => {
                if self.pause(&id, Duration::from_millis(100), &wake).await {
                    return;
                }
                self.set(&id, |t| {
                    t.status = "failed";
                    t.error = Some(json!({"code": -32603, "message": "the job crashed"}));
                });
            }
            Job::Ask(_, what) => loop {
                let answered = lock(&self.tasks).get(&id).map(|t| t.asks.is_empty());
                match answered {
                    None => return,
                    Some(true) => {
                        let answers = lock(&self.tasks)
                            .get(&id)
                            .map(|t| Value::Object(t.answers.clone()))
                            .unwrap_or_default();
                        let r = complete(text(&format!("{what}: {answers}")), false);
                        self.set(&id, |t| {
                            t.status = "completed";
                            t.result = Some(r);
                        });
                        return;
                    }
                    Some(false) => {
                        if self.pause(&id, Duration::from_secs(5), &wake).await {
                            return;
                        }
                    }
                }
            },
            Job::Greet(name) => {
                if self.pause(&id, Duration::from_millis(200), &wake).await {
                    return;
                }
                let r = complete(text(&format!("Hello, {name}!")), false);
                self.set(&id, |t| {
                    t.status = "completed";
                    t.result = Some(r);
                });
            }
        }
    }
}

fn missing_extension(id: &Value, what: &str) -> Response {
    let body = json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32021,
        "message": format!("{what} needs the client capability extensions[{EXTENSION:?}]"),
        "data": {"requiredCapabilities": {"extensions": {EXTENSION: {}}}}}});
    (
        StatusCode::BAD_REQUEST,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A `tools/call` of one of [`tools`]; `None` for any other tool.
pub(super) fn call(
    tasks: &Arc<Tasks>,
    headers: &HeaderMap,
    id: &Value,
    params: &Value,
) -> Option<Response> {
    let name = params["name"].as_str()?;
    let args = &params["arguments"];
    let str_arg = |k: &str, d: &str| args[k].as_str().unwrap_or(d).to_owned();
    let with_tasks = declared(params);
    let job = match name {
        "greet" => {
            let r = complete(
                text(&format!("Hello, {}!", str_arg("name", "world"))),
                false,
            );
            return Some(reply(id, r));
        }
        "slow_compute" => {
            let seconds = args["seconds"].as_f64().unwrap_or(0.0).max(0.0) as u64;
            Job::Sleep(seconds, str_arg("label", "job"))
        }
        "failing_job" if !with_tasks => return Some(missing_extension(id, "failing_job")),
        "failing_job" => Job::ToolError,
        "protocol_error_job" => Job::ProtocolError,
        "confirm_delete" => {
            let mut asks = Map::new();
            asks.insert(
                "confirm".into(),
                elicit(
                    &format!("Delete {}?", str_arg("filename", "the file")),
                    "confirm",
                    "boolean",
                ),
            );
            Job::Ask(
                asks,
                format!("Asked about {}", str_arg("filename", "the file")),
            )
        }
        "multi_input" => {
            let mut asks = Map::new();
            asks.insert("name".into(), elicit("Your name?", "name", "string"));
            asks.insert("confirm".into(), elicit("Go on?", "confirm", "boolean"));
            Job::Ask(asks, "Both answered".into())
        }
        "test_tool_with_task" => {
            let answer = params
                .pointer("/inputResponses/user_name/content/name")
                .and_then(Value::as_str);
            match answer {
                None => {
                    return Some(reply(
                        id,
                        json!({"resultType": "input_required",
                        "inputRequests": {"user_name": elicit("What is your name?", "name", "string")}}),
                    ))
                }
                Some(n) => Job::Greet(n.to_owned()),
            }
        }
        _ => return None,
    };
    if !with_tasks {
        // No task without the extension: run it here (the suite only does so for short ones).
        return Some(match job {
            Job::Sleep(0, label) => reply(
                id,
                complete(text(&format!("Computed {label} after 0s")), false),
            ),
            Job::ProtocolError => rpc_error(StatusCode::OK, id, -32603, "the job crashed"),
            Job::Greet(n) => reply(id, complete(text(&format!("Hello, {n}!")), false)),
            _ => reply(
                id,
                complete(
                    json!({"isError": true, "content": [{"type": "text",
                        "text": "this tool runs as a task: declare the tasks extension"}]}),
                    false,
                ),
            ),
        });
    }
    let owner = header_str(headers, "authorization").map(str::to_owned);
    Some(reply(id, tasks.create(job, owner)))
}

/// `tasks/get`, `tasks/update`, `tasks/cancel`; `None` for any other method.
pub(super) fn method(
    tasks: &Arc<Tasks>,
    headers: &HeaderMap,
    method: &str,
    id: &Value,
    params: &Value,
) -> Option<Response> {
    if !matches!(method, "tasks/get" | "tasks/update" | "tasks/cancel") {
        return None;
    }
    if !declared(params) {
        return Some(missing_extension(id, method));
    }
    let Some(task_id) = params["taskId"].as_str() else {
        return Some(rpc_error(
            StatusCode::BAD_REQUEST,
            id,
            -32602,
            "taskId must be a string",
        ));
    };
    if header_str(headers, "mcp-name").map(str::trim) != Some(task_id) {
        return Some(rpc_error(
            StatusCode::BAD_REQUEST,
            id,
            -32020,
            "Mcp-Name must be the body's taskId",
        ));
    }
    let mut map = lock(&tasks.tasks);
    Tasks::sweep(&mut map);
    let owner = header_str(headers, "authorization");
    let Some(t) = map.get_mut(task_id).filter(|t| t.owner.as_deref() == owner) else {
        return Some(rpc_error(StatusCode::OK, id, -32602, "Unknown task"));
    };
    let ack = json!({"resultType": "complete"});
    Some(match method {
        "tasks/get" => {
            let mut r = Tasks::detailed(task_id, t);
            r["resultType"] = json!("complete");
            reply(id, r)
        }
        "tasks/update" => {
            if let Some(given) = params["inputResponses"].as_object() {
                for (k, v) in given {
                    if t.asks.remove(k).is_some() {
                        t.answers.insert(k.clone(), v.clone());
                    }
                }
                t.updated = now_iso();
                if t.asks.is_empty() && t.status == "input_required" {
                    t.status = "working";
                    tasks.told(task_id, t);
                }
                t.wake.notify_one();
            }
            reply(id, ack)
        }
        _ => {
            if !matches!(t.status, "completed" | "failed" | "cancelled") {
                t.status = "cancelled";
                t.updated = now_iso();
                tasks.told(task_id, t);
                t.wake.notify_one();
            }
            reply(id, ack)
        }
    })
}
