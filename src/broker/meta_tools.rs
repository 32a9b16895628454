//! The broker's own tools for large catalogs, as the seed gateway offers them:
//! `discover_tools` (servers, categories, hints and tool names, without schemas), `select_tools`
//! (scope a gateway session's `tools/list` to chosen tools, then a `tools/list_changed` to that
//! session only), and, when any server has `tags`, `list_tags` and `filter_tools_by_tags`.
//!
//! `--discovery-tools-enabled` (default true) offers the first two; `--discovery-tool-threshold`
//! (default 0: never) hides the real tools from a session's `tools/list` while there are more of
//! them than that and the session has selected none (calls to them still route). They are
//! offered to 2025 sessions only, never to 2026-07-28 (stateless) clients, as in the seed. The
//! virtual server and the caller's permissions limit them as any tool; what they tell of is what
//! the caller could list. Scopes live in this replica's memory (bounded, a day at most), as the
//! seed keeps them.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::Broker;
use crate::auth::access::Permissions;
use crate::catalog::Catalog;
use crate::config::Config;

pub const DISCOVER_TOOLS: &str = "discover_tools";
pub const SELECT_TOOLS: &str = "select_tools";
pub const LIST_TAGS: &str = "list_tags";
pub const FILTER_TOOLS_BY_TAGS: &str = "filter_tools_by_tags";

/// Most tools one `select_tools` may name.
const MAX_SELECT: usize = 250;
/// Sessions whose scope is kept, and for how long after it was set.
const MAX_SCOPES: u64 = 10_000;
const SCOPE_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// What the initialize result says when the discovery tools are offered.
pub const INSTRUCTIONS: &str = "An MCP gateway: the tools of several MCP servers, each server's under its own prefix. The tool set may be large. To keep it small: call discover_tools for the servers, their categories and tool names (no schemas); then call select_tools with the names your task needs. The gateway then sends notifications/tools/list_changed, and the next tools/list has only those (plus these helpers). Call select_tools with an empty list to see every tool again.";

/// The meta-tools the broker offers for this config: none, the discovery pair, and the tags
/// pair when a server has tags (whatever `--discovery-tools-enabled` says, as in the seed).
pub fn offered(discovery_tools: bool, config: &Config) -> Vec<&'static str> {
    let mut v = Vec::new();
    if discovery_tools {
        v.extend([DISCOVER_TOOLS, SELECT_TOOLS]);
    }
    if config.enabled_servers().any(|s| !s.tags.is_empty()) {
        v.extend([LIST_TAGS, FILTER_TOOLS_BY_TAGS]);
    }
    v
}

/// The `tools/list` entry of a meta-tool.
pub fn definition(name: &str) -> Value {
    let strings = |description: &str| json!({"type": "array", "description": description, "items": {"type": "string"}});
    match name {
        DISCOVER_TOOLS => json!({
            "name": DISCOVER_TOOLS,
            "description": "List the servers behind this gateway with their categories, hints and tool names (no schemas). Optionally only the servers of one category.",
            "inputSchema": {"type": "object", "properties": {"category": {
                "type": "string",
                "description": "Only servers with this category (case-insensitive)",
            }}},
        }),
        SELECT_TOOLS => json!({
            "name": SELECT_TOOLS,
            "description": "Limit this session's tools/list to the named tools (with their full schemas). An empty list shows every tool again.",
            "inputSchema": {"type": "object", "properties": {
                "tools": strings("Names of the tools to keep in this session's tools/list; empty for all of them"),
            }, "required": ["tools"]},
        }),
        LIST_TAGS => json!({
            "name": LIST_TAGS,
            "description": "List the tags of the servers behind this gateway",
            "inputSchema": {"type": "object"},
        }),
        _ => json!({
            "name": FILTER_TOOLS_BY_TAGS,
            "description": "List the tools of the servers that have every one of the given tags",
            "inputSchema": {"type": "object", "properties": {
                "tags": strings("Tags the server must all have (at least one)"),
            }, "required": ["tags"]},
        }),
    }
}

/// A session's choice.
#[derive(Debug, Clone, PartialEq)]
enum Scope {
    /// Reset by an empty `select_tools`: every tool, the threshold applying.
    All,
    Selected(Arc<HashSet<String>>),
}

/// The per-session scopes and the threshold.
pub struct MetaTools {
    threshold: usize,
    scopes: moka::sync::Cache<Arc<str>, Scope>,
}

/// What a meta-tool call asks of the caller of [`MetaTools::call`] besides its result.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    pub result: Value,
    /// The session's `tools/list` changed: send it `notifications/tools/list_changed`.
    pub list_changed: bool,
}

impl MetaTools {
    /// `threshold`: `--discovery-tool-threshold` (0: never hide).
    pub fn new(threshold: usize) -> MetaTools {
        MetaTools {
            threshold,
            scopes: moka::sync::Cache::builder()
                .max_capacity(MAX_SCOPES)
                .time_to_live(SCOPE_TTL)
                .build(),
        }
    }

    /// Forgets a session's scope (it ended).
    pub fn forget(&self, jti: &str) {
        self.scopes.invalidate(jti);
    }

    /// Shapes a 2025 session's `tools/list` result (`{"tools": [...]}`, already limited to what
    /// the caller may see): adds the meta-tools offered (when `listed` says the caller may see
    /// them), then applies the session's scope or, without one, the threshold.
    pub fn shape_list(
        &self,
        mut result: Value,
        jti: &str,
        catalog: &Catalog,
        listed: impl Fn(&str) -> bool,
    ) -> Value {
        let Some(tools) = result.get_mut("tools").and_then(Value::as_array_mut) else {
            return result;
        };
        let metas: Vec<Value> = catalog
            .broker_tools
            .iter()
            .filter(|n| listed(n))
            .map(|n| definition(n))
            .collect();
        match self.scopes.get(jti) {
            Some(Scope::Selected(chosen)) => {
                tools.retain(|t| name_of(t).is_some_and(|n| chosen.contains(n)));
            }
            Some(Scope::All) | None => {
                if self.threshold > 0 && tools.len() > self.threshold {
                    tools.clear();
                }
            }
        }
        tools.extend(metas);
        result
    }

    /// Answers a `tools/call` of a meta-tool `name` with `arguments`; `visible` is the
    /// session's `tools/list` before scope and threshold (what the caller may see).
    pub fn call(
        &self,
        jti: &str,
        name: &str,
        arguments: Option<&Value>,
        catalog: &Catalog,
        config: &Config,
        visible: &[Value],
    ) -> Outcome {
        let empty = Map::new();
        let args = match arguments {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(o)) => o,
            Some(_) => return error("invalid arguments"),
        };
        let visible_names: HashSet<&str> = visible.iter().filter_map(name_of).collect();
        match name {
            DISCOVER_TOOLS => discover(args, catalog, config, &visible_names),
            SELECT_TOOLS => self.select(jti, args, catalog, &visible_names),
            LIST_TAGS => list_tags(catalog, config, &visible_names),
            _ => filter_by_tags(args, catalog, config, &visible_names),
        }
    }

    fn select(
        &self,
        jti: &str,
        args: &Map<String, Value>,
        catalog: &Catalog,
        visible: &HashSet<&str>,
    ) -> Outcome {
        let Some(names) = args.get("tools").and_then(strings) else {
            return error("invalid tools parameter");
        };
        if names.len() > MAX_SELECT {
            return error(&format!("too many tools requested (max {MAX_SELECT})"));
        }
        if names.is_empty() {
            self.scopes.insert(jti.into(), Scope::All);
            return Outcome {
                result: text(&json!({"status": "scope reset to all tools"})),
                list_changed: true,
            };
        }
        let unavailable = |n: &&str| {
            *n == DISCOVER_TOOLS
                || *n == SELECT_TOOLS
                || catalog.broker_tools.contains(n)
                || !visible.contains(n)
        };
        if names.iter().any(unavailable) {
            return error("tool not available");
        }
        let count = names.len();
        let chosen: HashSet<String> = names.iter().map(|n| (*n).to_owned()).collect();
        self.scopes
            .insert(jti.into(), Scope::Selected(Arc::new(chosen)));
        Outcome {
            result: text(&json!({"status": format!("scope set to {count} tools"), "tools": names})),
            list_changed: true,
        }
    }
}

/// Whether a caller may see meta-tool `name`: as any tool, it must be in the virtual server
/// chosen, and a caller whose tools are limited (`x-mcp-authorized`, per-tool authorization)
/// sees none of them (they belong to no upstream), as in the seed.
fn may_list(config: &Config, vs: Option<&str>, permissions: &Permissions, name: &str) -> bool {
    permissions.unrestricted()
        && vs
            .and_then(|v| config.virtual_server(v))
            .is_none_or(|v| v.tools.contains(name))
}

/// A 2025 session's `tools/list` result, shaped by the meta-tools (see [`MetaTools::shape_list`]).
pub(super) fn tools_list(
    b: &Broker,
    listed: Value,
    jti: &str,
    vs: Option<&str>,
    permissions: &Permissions,
) -> Value {
    let catalog = b.catalog.borrow().clone();
    let config = b.config.borrow().clone();
    b.meta_tools.shape_list(listed, jti, &catalog, |n| {
        may_list(&config, vs, permissions, n)
    })
}

/// The result of a 2025 session's `tools/call` of a meta-tool it may see, or `None` when the
/// request is something else. `visible` gives the session's `tools/list` before scope and
/// threshold. A `select_tools` that changes the list tells that session's GET stream.
pub(super) async fn answer_call(
    b: &Broker,
    jti: &str,
    method: &str,
    params: Option<&serde_json::value::RawValue>,
    vs: Option<&str>,
    permissions: &Permissions,
    visible: impl FnOnce() -> Value,
) -> Option<Value> {
    if method != crate::mcp::method::TOOLS_CALL {
        return None;
    }
    let catalog = b.catalog.borrow().clone();
    let config = b.config.borrow().clone();
    let params: Value = serde_json::from_str(params?.get()).ok()?;
    let name = params.get("name")?.as_str()?;
    if !catalog.is_broker_tool(name) || !may_list(&config, vs, permissions, name) {
        return None;
    }
    let visible = visible();
    let visible = visible
        .get("tools")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let outcome = b.meta_tools.call(
        jti,
        name,
        params.get("arguments"),
        &catalog,
        &config,
        visible,
    );
    if outcome.list_changed {
        let note = json!({"jsonrpc": "2.0", "method": crate::mcp::method::TOOLS_LIST_CHANGED});
        b.updates
            .deliver(jti, bytes::Bytes::from(note.to_string()))
            .await;
    }
    Some(outcome.result)
}

/// The initialize `instructions` when the discovery tools are offered.
pub(super) fn instructions(b: &Broker) -> Option<&'static str> {
    b.catalog
        .borrow()
        .is_broker_tool(DISCOVER_TOOLS)
        .then_some(INSTRUCTIONS)
}

fn name_of(tool: &Value) -> Option<&str> {
    tool.get("name").and_then(Value::as_str)
}

/// A JSON array of strings, or `None` when it is anything else.
fn strings(v: &Value) -> Option<Vec<&str>> {
    v.as_array()?.iter().map(Value::as_str).collect()
}

/// A tool result whose text is `v` as JSON.
fn text(v: &Value) -> Value {
    json!({"content": [{"type": "text", "text": v.to_string()}]})
}

fn error(message: &str) -> Outcome {
    Outcome {
        result: json!({"content": [{"type": "text", "text": message}], "isError": true}),
        list_changed: false,
    }
}

/// The visible tools of each server (prefixed names, in discovery order), by server name.
fn visible_by_server<'c>(
    catalog: &'c Catalog,
    visible: &HashSet<&str>,
) -> HashMap<&'c str, Vec<&'c crate::catalog::Entry>> {
    let mut by: HashMap<&str, Vec<&crate::catalog::Entry>> = HashMap::new();
    for e in &catalog.tool_list {
        if visible.contains(&*e.key) {
            by.entry(&e.server).or_default().push(e);
        }
    }
    by
}

fn discover(
    args: &Map<String, Value>,
    catalog: &Catalog,
    config: &Config,
    visible: &HashSet<&str>,
) -> Outcome {
    let category = args.get("category").and_then(Value::as_str).unwrap_or("");
    let by = visible_by_server(catalog, visible);
    let mut servers: Vec<Value> = Vec::new();
    for server in config.enabled_servers() {
        let Some(tools) = by.get(&*server.name) else {
            continue;
        };
        if !category.is_empty()
            && !server
                .category
                .iter()
                .any(|c| c.eq_ignore_ascii_case(category))
        {
            continue;
        }
        let categories = if server.category.is_empty() {
            vec!["uncategorised".to_owned()]
        } else {
            server.category.clone()
        };
        let mut s = json!({
            "name": &*server.name,
            "categories": categories,
            "tools": tools.iter().map(|e| &*e.key).collect::<Vec<_>>(),
        });
        if !server.hint.is_empty() {
            s["hint"] = json!(server.hint);
        }
        servers.push(s);
    }
    servers.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Outcome {
        result: text(&json!({ "servers": servers })),
        list_changed: false,
    }
}

fn list_tags(catalog: &Catalog, config: &Config, visible: &HashSet<&str>) -> Outcome {
    let by = visible_by_server(catalog, visible);
    let tags: BTreeSet<&str> = config
        .enabled_servers()
        .filter(|s| by.contains_key(&*s.name))
        .flat_map(|s| s.tags.iter().map(String::as_str))
        .collect();
    Outcome {
        result: text(&json!(tags)),
        list_changed: false,
    }
}

fn filter_by_tags(
    args: &Map<String, Value>,
    catalog: &Catalog,
    config: &Config,
    visible: &HashSet<&str>,
) -> Outcome {
    let Some(raw) = args.get("tags") else {
        return error("missing required parameter: tags");
    };
    let Some(items) = raw.as_array() else {
        return error("tags must be an array");
    };
    if items.is_empty() {
        return error("tags must not be empty");
    }
    let Some(wanted) = strings(raw) else {
        return error("tags must be an array of strings");
    };
    if wanted.iter().any(|t| t.is_empty()) {
        return error("tags must not contain empty strings");
    }
    let by = visible_by_server(catalog, visible);
    let mut matched: Vec<&Value> = Vec::new();
    for server in config.enabled_servers() {
        if !wanted.iter().all(|w| server.tags.iter().any(|t| t == w)) {
            continue;
        }
        if let Some(tools) = by.get(&*server.name) {
            matched.extend(tools.iter().map(|e| &*e.value));
        }
    }
    Outcome {
        result: text(&json!(matched)),
        list_changed: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Health, ServerLists};

    fn setup() -> (Config, Catalog) {
        let config = Config::from_yaml(
            r#"
servers:
  - {name: ns/kube, url: 'http://k/mcp', prefix: kube_, category: [Infra, k8s], hint: "cluster things", tags: [ops, k8s]}
  - {name: ns/git, url: 'http://g/mcp', prefix: git_, tags: [dev]}
  - {name: ns/plain, url: 'http://p/mcp', prefix: p_}
"#,
        )
        .expect("config");
        let tools = |names: &[&str]| ServerLists {
            tools: names
                .iter()
                .map(|n| json!({"name": n, "inputSchema": {"type": "object"}}))
                .collect(),
            health: Health::Ready,
            ..Default::default()
        };
        let mut d = HashMap::new();
        d.insert("ns/kube".into(), tools(&["pods", "nodes"]));
        d.insert("ns/git".into(), tools(&["log"]));
        d.insert("ns/plain".into(), tools(&["echo"]));
        let mut catalog = Catalog::build(&config, &d);
        catalog.broker_tools = offered(true, &config);
        (config, catalog)
    }

    fn all_visible(catalog: &Catalog) -> Vec<Value> {
        catalog
            .tool_list
            .iter()
            .map(|e| (*e.value).clone())
            .collect()
    }

    fn result_json(o: &Outcome) -> Value {
        let t = o.result["content"][0]["text"].as_str().expect("text");
        serde_json::from_str(t).unwrap_or_else(|_| json!(t))
    }

    fn names(list: &Value) -> Vec<&str> {
        list["tools"]
            .as_array()
            .expect("tools")
            .iter()
            .filter_map(name_of)
            .collect()
    }

    #[test]
    fn what_is_offered_follows_the_flag_and_the_tags() {
        let (config, _) = setup();
        assert_eq!(
            offered(true, &config),
            [
                DISCOVER_TOOLS,
                SELECT_TOOLS,
                LIST_TAGS,
                FILTER_TOOLS_BY_TAGS
            ]
        );
        assert_eq!(offered(false, &config), [LIST_TAGS, FILTER_TOOLS_BY_TAGS]);
        let untagged = Config::from_yaml("servers: [{name: a, url: 'http://a/mcp'}]\n").expect("c");
        assert_eq!(offered(true, &untagged), [DISCOVER_TOOLS, SELECT_TOOLS]);
        assert!(offered(false, &untagged).is_empty());
        for n in [
            DISCOVER_TOOLS,
            SELECT_TOOLS,
            LIST_TAGS,
            FILTER_TOOLS_BY_TAGS,
        ] {
            let d = definition(n);
            assert_eq!(d["name"], n);
            assert!(crate::tool_validation::tool_errors(&d).is_empty(), "{n}");
        }
    }

    #[test]
    fn discover_tools_tells_servers_categories_hints_and_visible_names() {
        let (config, catalog) = setup();
        let m = MetaTools::new(0);
        let visible = all_visible(&catalog);
        for (args, expected) in [
            (
                json!({}),
                json!({"servers": [
                    {"name": "ns/git", "categories": ["uncategorised"], "tools": ["git_log"]},
                    {"name": "ns/kube", "categories": ["Infra", "k8s"], "hint": "cluster things", "tools": ["kube_pods", "kube_nodes"]},
                    {"name": "ns/plain", "categories": ["uncategorised"], "tools": ["p_echo"]},
                ]}),
            ),
            (
                json!({"category": "infra"}),
                json!({"servers": [
                    {"name": "ns/kube", "categories": ["Infra", "k8s"], "hint": "cluster things", "tools": ["kube_pods", "kube_nodes"]},
                ]}),
            ),
            (json!({"category": "none"}), json!({"servers": []})),
        ] {
            let o = m.call(
                "s",
                DISCOVER_TOOLS,
                Some(&args),
                &catalog,
                &config,
                &visible,
            );
            assert_eq!(result_json(&o), expected, "{args}");
            assert!(!o.list_changed);
        }
        // Only what the caller may see.
        let some = vec![json!({"name": "kube_pods"})];
        let o = m.call("s", DISCOVER_TOOLS, None, &catalog, &config, &some);
        assert_eq!(
            result_json(&o)["servers"],
            json!([{"name": "ns/kube", "categories": ["Infra", "k8s"], "hint": "cluster things", "tools": ["kube_pods"]}])
        );
    }

    #[test]
    fn select_tools_scopes_one_session_and_bad_selections_are_tool_errors() {
        let (config, catalog) = setup();
        let m = MetaTools::new(0);
        let visible = all_visible(&catalog);
        let list = || json!({"tools": visible.clone()});
        let everything = [
            "kube_pods",
            "kube_nodes",
            "git_log",
            "p_echo",
            DISCOVER_TOOLS,
            SELECT_TOOLS,
            LIST_TAGS,
            FILTER_TOOLS_BY_TAGS,
        ];
        let shaped = |jti: &str| m.shape_list(list(), jti, &catalog, |_| true);
        assert_eq!(names(&shaped("a")), everything);

        for (args, err) in [
            (json!({}), "invalid tools parameter"),
            (json!({"tools": "kube_pods"}), "invalid tools parameter"),
            (json!({"tools": [1]}), "invalid tools parameter"),
            (json!({"tools": ["nope"]}), "tool not available"),
            (
                json!({"tools": ["kube_pods", "select_tools"]}),
                "tool not available",
            ),
            (json!({"tools": ["list_tags"]}), "tool not available"),
            (
                json!({"tools": vec!["kube_pods"; 251]}),
                "too many tools requested (max 250)",
            ),
        ] {
            let o = m.call("a", SELECT_TOOLS, Some(&args), &catalog, &config, &visible);
            assert_eq!(o.result["isError"], true, "{args}");
            assert_eq!(o.result["content"][0]["text"], err, "{args}");
            assert!(!o.list_changed);
        }
        let o = m.call(
            "a",
            SELECT_TOOLS,
            Some(&json!(7)),
            &catalog,
            &config,
            &visible,
        );
        assert_eq!(o.result["content"][0]["text"], "invalid arguments");

        let o = m.call(
            "a",
            SELECT_TOOLS,
            Some(&json!({"tools": ["git_log", "kube_pods"]})),
            &catalog,
            &config,
            &visible,
        );
        assert!(o.list_changed);
        assert_eq!(
            result_json(&o),
            json!({"status": "scope set to 2 tools", "tools": ["git_log", "kube_pods"]})
        );
        assert_eq!(
            names(&shaped("a")),
            [
                "kube_pods",
                "git_log",
                DISCOVER_TOOLS,
                SELECT_TOOLS,
                LIST_TAGS,
                FILTER_TOOLS_BY_TAGS
            ]
        );
        // Another session is not scoped.
        assert_eq!(names(&shaped("b")), everything);

        let o = m.call(
            "a",
            SELECT_TOOLS,
            Some(&json!({"tools": []})),
            &catalog,
            &config,
            &visible,
        );
        assert!(o.list_changed);
        assert_eq!(
            result_json(&o),
            json!({"status": "scope reset to all tools"})
        );
        assert_eq!(names(&shaped("a")), everything);

        m.call(
            "a",
            SELECT_TOOLS,
            Some(&json!({"tools": ["p_echo"]})),
            &catalog,
            &config,
            &visible,
        );
        m.forget("a");
        assert_eq!(names(&shaped("a")), everything);
    }

    #[test]
    fn above_the_threshold_only_the_meta_tools_are_listed_until_a_selection() {
        let (config, catalog) = setup();
        let visible = all_visible(&catalog);
        let list = || json!({"tools": visible.clone()});
        let metas = [
            DISCOVER_TOOLS,
            SELECT_TOOLS,
            LIST_TAGS,
            FILTER_TOOLS_BY_TAGS,
        ];
        for (threshold, hidden) in [(0, false), (3, true), (4, false), (100, false)] {
            let m = MetaTools::new(threshold);
            let shaped = m.shape_list(list(), "a", &catalog, |_| true);
            assert_eq!(names(&shaped).len() == metas.len(), hidden, "{threshold}");
        }
        let m = MetaTools::new(1);
        m.call(
            "a",
            SELECT_TOOLS,
            Some(&json!({"tools": ["p_echo"]})),
            &catalog,
            &config,
            &visible,
        );
        assert_eq!(
            names(&m.shape_list(list(), "a", &catalog, |_| true)),
            [
                "p_echo",
                DISCOVER_TOOLS,
                SELECT_TOOLS,
                LIST_TAGS,
                FILTER_TOOLS_BY_TAGS
            ]
        );
        // A reset brings the threshold back.
        m.call(
            "a",
            SELECT_TOOLS,
            Some(&json!({"tools": []})),
            &catalog,
            &config,
            &visible,
        );
        assert_eq!(names(&m.shape_list(list(), "a", &catalog, |_| true)), metas);
        // The meta-tools follow what the caller may list.
        assert_eq!(
            names(&m.shape_list(list(), "b", &catalog, |n| n == LIST_TAGS)),
            [LIST_TAGS]
        );
    }

    #[test]
    fn tags_are_listed_and_filter_tools() {
        let (config, catalog) = setup();
        let m = MetaTools::new(0);
        let visible = all_visible(&catalog);
        let o = m.call("s", LIST_TAGS, None, &catalog, &config, &visible);
        assert_eq!(result_json(&o), json!(["dev", "k8s", "ops"]));
        let only_git = vec![json!({"name": "git_log"})];
        let o = m.call("s", LIST_TAGS, None, &catalog, &config, &only_git);
        assert_eq!(result_json(&o), json!(["dev"]));

        for (args, expected) in [
            (
                json!({"tags": ["ops"]}),
                Ok(vec!["kube_pods", "kube_nodes"]),
            ),
            (
                json!({"tags": ["ops", "k8s"]}),
                Ok(vec!["kube_pods", "kube_nodes"]),
            ),
            (json!({"tags": ["ops", "dev"]}), Ok(vec![])),
            (json!({"tags": ["OPS"]}), Ok(vec![])),
            (json!({}), Err("missing required parameter: tags")),
            (json!({"tags": "ops"}), Err("tags must be an array")),
            (json!({"tags": []}), Err("tags must not be empty")),
            (
                json!({"tags": [3]}),
                Err("tags must be an array of strings"),
            ),
            (
                json!({"tags": [""]}),
                Err("tags must not contain empty strings"),
            ),
        ] {
            let o = m.call(
                "s",
                FILTER_TOOLS_BY_TAGS,
                Some(&args),
                &catalog,
                &config,
                &visible,
            );
            match expected {
                Ok(names) => {
                    let got: Vec<String> = result_json(&o)
                        .as_array()
                        .expect("array")
                        .iter()
                        .map(|t| t["name"].as_str().unwrap_or("").to_owned())
                        .collect();
                    assert_eq!(got, names, "{args}");
                    assert!(o.result.get("isError").is_none());
                }
                Err(e) => {
                    assert_eq!(o.result["isError"], true, "{args}");
                    assert_eq!(o.result["content"][0]["text"], e, "{args}");
                }
            }
        }
    }
}
