//! The catalog: an immutable snapshot of what every enabled upstream offers, under its prefix.
//!
//! The broker's discovery tasks publish each server's lists; [`Catalog::build`] turns the config
//! plus those lists into lookup maps (prefixed name → server and upstream name) that routing reads
//! without locks, and into the prefixed list entries the broker serves.

use std::collections::{HashMap, HashSet};

use foldhash::HashMap as FastMap;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;

use crate::config::{Config, Server};

/// Where a prefixed tool, prompt or resource lives.
#[derive(Debug, Clone)]
pub struct Route {
    pub server: Arc<Server>,
    /// The name (or URI) the upstream knows it by.
    pub name: Arc<str>,
    /// `x-mcp-annotation-hints`, for tools that declare annotations.
    pub hints: Option<Arc<str>>,
}

/// The outcome of looking a name up for routing.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved<'a> {
    pub server: &'a Arc<Server>,
    pub name: std::borrow::Cow<'a, str>,
    pub hints: Option<&'a str>,
}

/// What discovery last learnt about one upstream.
#[derive(Debug, Clone, Default)]
pub struct ServerLists {
    pub tools: Vec<Value>,
    pub prompts: Vec<Value>,
    pub resources: Vec<Value>,
    pub resource_templates: Vec<Value>,
    pub health: Health,
    pub protocol_version: Option<String>,
    pub server_info: Option<Value>,
    pub updated: Option<SystemTime>,
    /// Tools `--invalid-tool-policy` left out (already removed from `tools`).
    pub invalid_tools: Vec<crate::tool_validation::InvalidTool>,
    /// `RejectServer` and an invalid tool: none of its tools are served.
    pub tools_rejected: bool,
    /// What the server says to a 2026-07-28 (stateless) client when it also speaks that
    /// revision and says something else there (more tools, say): its own lists, served and
    /// routed for clients of that revision only, whose calls then go to it natively.
    pub modern: Option<Box<ServerLists>>,
    /// How many times the server has said its tools, prompts and resources lists changed
    /// (`*/list_changed` on its GET or listen stream): told on to the gateway's clients even when
    /// the lists read after it look the same.
    pub told: Told,
    /// The server lists more tools to a client that declares capabilities the gateway relays
    /// (`broker::capable_view`): a session that declared some gets its own list of this server.
    pub tools_vary_by_capabilities: bool,
}

/// Counts of `notifications/{tools,prompts,resources}/list_changed` a server sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Told {
    pub tools: u64,
    pub prompts: u64,
    pub resources: u64,
}

impl Told {
    fn add(&mut self, other: Told) {
        self.tools = self.tools.wrapping_add(other.tools);
        self.prompts = self.prompts.wrapping_add(other.prompts);
        self.resources = self.resources.wrapping_add(other.resources);
    }
}

/// Discovery state of one upstream, as `/status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum Health {
    /// Not reached yet.
    #[default]
    Pending,
    /// Lists are current.
    Ready,
    /// The last attempts failed; lists are kept until `dropped`.
    Failing { attempts: u32, last_error: String },
    /// Failed too often: its entries are no longer offered.
    Dropped { attempts: u32, last_error: String },
}

impl Health {
    /// Whether this server's entries are offered and routed by catalog lookup.
    pub fn serves(&self) -> bool {
        matches!(self, Health::Ready | Health::Failing { .. })
    }
}

/// One list entry as the broker serves it (already prefixed).
#[derive(Debug, Clone)]
pub struct Entry {
    pub server: Arc<str>,
    /// The prefixed name (tools, prompts) or URI (resources) clients see.
    pub key: Arc<str>,
    pub value: Arc<Value>,
}

/// The immutable catalog snapshot.
#[derive(Debug, Default)]
pub struct Catalog {
    // Looked up on every call: hashed with foldhash (randomly seeded), not SipHash.
    tools: FastMap<Arc<str>, Route>,
    prompts: FastMap<Arc<str>, Route>,
    resources: FastMap<Arc<str>, Route>,
    /// Non-empty prefixes of enabled servers, longest first, for names discovery has not seen.
    prefixes: Vec<Arc<Server>>,
    /// In the 2026-07-28 view only: the one enabled server without a prefix, when it answers
    /// 2026-07-28 itself. A name no server lists and no prefix claims goes to it as it is, and
    /// it answers as it would a client connected to it directly (a server may serve tools it
    /// does not list). Not for 2025 sessions, whose unknown names the gateway refuses.
    unprefixed: Option<Arc<Server>>,
    /// Resource templates (`uriTemplate`) in config order, for URIs no resource list names.
    templates: Vec<(Arc<str>, Arc<Server>)>,
    pub tool_list: Vec<Entry>,
    pub prompt_list: Vec<Entry>,
    pub resource_list: Vec<Entry>,
    pub resource_template_list: Vec<Entry>,
    /// Names that more than one server offers: the first server in config order keeps them.
    pub conflicts: Vec<String>,
    /// Per enabled server, in config order: its config and what discovery knows.
    pub servers: Vec<(Arc<Server>, ServerLists)>,
    /// Prefixed names of tools `--invalid-tool-policy` left out: not routed by prefix either.
    invalid_tools: HashSet<Arc<str>>,
    /// Servers whose tools are all refused (`RejectServer`).
    rejected: HashSet<Arc<str>>,
    /// The broker's own tools offered to 2025 sessions (`discover_tools`, …): their calls go
    /// to the broker. Set by discovery after [`Catalog::build`].
    pub broker_tools: Vec<&'static str>,
    /// Prefixed tools that declare an MCP App (`_meta.ui.resourceUri`), with their server's
    /// prefix: their results' `_meta.ui.resourceUri` gets it too.
    ui_tools: FastMap<Arc<str>, Arc<str>>,
    /// Every server's [`Told`] summed: a change in it is a list change to tell clients of.
    pub told: Told,
    /// The catalog a 2026-07-28 client sees, when a server speaks both revisions
    /// ([`ServerLists::modern`]); `None`: the same as this one.
    pub modern: Option<Arc<Catalog>>,
}

impl Catalog {
    /// Builds the snapshot from the config and the latest discovered lists (by server name).
    pub fn build(config: &Config, discovered: &HashMap<Arc<str>, ServerLists>) -> Catalog {
        let mut c = Catalog::default();
        let mut prefixes: Vec<Arc<Server>> = Vec::new();
        for server in config.enabled_servers() {
            let lists = discovered.get(&server.name).cloned().unwrap_or_default();
            if !server.prefix.is_empty() {
                if let Some(other) = prefixes.iter().find(|s| s.prefix == server.prefix) {
                    c.conflicts.push(format!(
                        "prefix {:?} is used by {} and {}; calls go to {}",
                        &*server.prefix, other.name, server.name, other.name
                    ));
                } else {
                    prefixes.push(server.clone());
                }
            }
            for t in &lists.invalid_tools {
                c.invalid_tools
                    .insert(format!("{}{}", server.prefix, t.name).into());
            }
            if lists.tools_rejected {
                c.rejected.insert(server.name.clone());
            }
            if lists.health.serves() {
                c.add_named(server, &lists.tools, Kind::Tool);
                c.add_named(server, &lists.prompts, Kind::Prompt);
                c.add_resources(server, &lists.resources);
                for t in &lists.resource_templates {
                    let key: Arc<str> = t
                        .get("uriTemplate")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .into();
                    if !key.is_empty() {
                        c.templates.push((key.clone(), server.clone()));
                    }
                    c.resource_template_list.push(Entry {
                        server: server.name.clone(),
                        key,
                        value: Arc::new(t.clone()),
                    });
                }
            }
            c.told.add(lists.told);
            c.servers.push((server.clone(), lists));
        }
        prefixes.sort_by_key(|s| std::cmp::Reverse(s.prefix.len()));
        c.prefixes = prefixes;
        if discovered.values().any(|l| l.modern.is_some()) {
            // Each server as a 2026-07-28 client sees it: its own lists for that revision where
            // it has them (and the health discovery saw), else the same lists.
            let modern: HashMap<Arc<str>, ServerLists> = discovered
                .iter()
                .map(|(name, l)| {
                    let view = match &l.modern {
                        Some(m) => ServerLists {
                            health: l.health.clone(),
                            told: l.told,
                            updated: l.updated,
                            modern: None,
                            ..(**m).clone()
                        },
                        None => l.clone(),
                    };
                    (name.clone(), view)
                })
                .collect();
            let mut view = Catalog::build(config, &modern);
            let mut unprefixed = config.enabled_servers().filter(|s| s.prefix.is_empty());
            if let (Some(only), None) = (unprefixed.next(), unprefixed.next()) {
                if discovered
                    .get(&only.name)
                    .is_some_and(|l| l.modern.is_some())
                {
                    view.unprefixed = Some(only.clone());
                }
            }
            c.modern = Some(Arc::new(view));
        }
        c
    }

    /// The catalog a client of protocol version `version` sees (see [`Catalog::modern`]).
    pub fn for_version(self: &Arc<Self>, version: Option<&str>) -> Arc<Catalog> {
        match &self.modern {
            Some(m) if crate::mcp::is_modern(version) => m.clone(),
            _ => self.clone(),
        }
    }

    /// Whether `server` answers 2026-07-28 requests itself in this catalog's view, so that a
    /// stateless client's calls go to it as they are, without an upstream session.
    pub fn speaks_modern(&self, server: &str) -> bool {
        self.servers.iter().any(|(s, l)| {
            &*s.name == server && crate::mcp::is_modern(l.protocol_version.as_deref())
        })
    }

    fn add_named(&mut self, server: &Arc<Server>, items: &[Value], kind: Kind) {
        for item in items {
            let Some(name) = item.get("name").and_then(Value::as_str) else {
                continue;
            };
            let prefixed: Arc<str> = format!("{}{}", server.prefix, name).into();
            let (map, list) = match kind {
                Kind::Tool => (&mut self.tools, &mut self.tool_list),
                Kind::Prompt => (&mut self.prompts, &mut self.prompt_list),
            };
            if let Some(existing) = map.get(&prefixed) {
                self.conflicts.push(format!(
                    "{} {:?} is offered by {} and {}; {} keeps it",
                    kind.noun(),
                    &*prefixed,
                    existing.server.name,
                    server.name,
                    existing.server.name
                ));
                continue;
            }
            let mut value = item.clone();
            if let Some(obj) = value.as_object_mut() {
                obj.insert("name".into(), Value::String(prefixed.to_string()));
            }
            if matches!(kind, Kind::Tool)
                && crate::ui_resource::prefix_tool_meta(&mut value, &server.prefix)
                && !server.prefix.is_empty()
            {
                // An MCP App's resource is listed under its prefixed `ui://` URI.
                self.ui_tools
                    .insert(prefixed.clone(), server.prefix.clone());
            }
            let hints = match kind {
                Kind::Tool => annotation_hints(item).map(Into::into),
                Kind::Prompt => None,
            };
            map.insert(
                prefixed.clone(),
                Route {
                    server: server.clone(),
                    name: name.into(),
                    hints,
                },
            );
            list.push(Entry {
                server: server.name.clone(),
                key: prefixed,
                value: Arc::new(value),
            });
        }
    }

    fn add_resources(&mut self, server: &Arc<Server>, items: &[Value]) {
        for item in items {
            let Some(upstream_uri) = item.get("uri").and_then(Value::as_str) else {
                continue;
            };
            // `ui://` resources (MCP Apps) are listed under the server's prefix, as in the seed.
            let (uri, value): (Arc<str>, Value) =
                match crate::ui_resource::inject(upstream_uri, &server.prefix) {
                    Some(prefixed) => {
                        let mut v = item.clone();
                        v["uri"] = Value::String(prefixed.clone());
                        (prefixed.into(), v)
                    }
                    None => (upstream_uri.into(), item.clone()),
                };
            if let Some(existing) = self.resources.get(&uri) {
                self.conflicts.push(format!(
                    "resource {:?} is offered by {} and {}; {} keeps it",
                    &*uri, existing.server.name, server.name, existing.server.name
                ));
                continue;
            }
            self.resources.insert(
                uri.clone(),
                Route {
                    server: server.clone(),
                    name: upstream_uri.into(),
                    hints: None,
                },
            );
            self.resource_list.push(Entry {
                server: server.name.clone(),
                key: uri,
                value: Arc::new(value),
            });
        }
    }

    /// Finds the server of a prefixed tool: the exact name discovery saw first, else the longest
    /// matching prefix (for tools an upstream added since the last discovery).
    /// The prefix to give a `ui://` URI in the results of prefixed tool `name`, when it
    /// declares an MCP App.
    pub fn ui_app_prefix(&self, name: &str) -> Option<Arc<str>> {
        self.ui_tools.get(name).cloned()
    }

    /// Whether `name` is one of the broker's own tools offered now.
    pub fn is_broker_tool(&self, name: &str) -> bool {
        self.broker_tools.contains(&name)
    }

    /// A tool `--invalid-tool-policy` left out, or any tool of a rejected server, is not found.
    pub fn find_tool<'a>(&'a self, prefixed: &'a str) -> Option<Resolved<'a>> {
        // A duplicate left out has the name of the served first one: that one is found.
        if self.invalid_tools.contains(prefixed) && !self.tools.contains_key(prefixed) {
            return None;
        }
        self.find_named(&self.tools, prefixed)
            .filter(|r| !self.rejected.contains(&r.server.name))
    }

    /// Whether `server` (served) lists more tools to a client with more capabilities
    /// ([`ServerLists::tools_vary_by_capabilities`]).
    /// Ready and not refused (`RejectServer`) only: a failing server would hold up every such
    /// list.
    pub fn tools_vary_by_capabilities(&self, server: &str) -> bool {
        !self.rejected.contains(server)
            && self.servers.iter().any(|(s, l)| {
                &*s.name == server
                    && l.tools_vary_by_capabilities
                    && matches!(l.health, Health::Ready)
            })
    }

    /// `server`'s tools as discovery last read them, as a number that changes when the names
    /// it lists or its count of `tools/list_changed` change; `None` before it was read.
    pub fn tools_generation(&self, server: &str) -> Option<u64> {
        use std::hash::{Hash, Hasher};
        let (_, lists) = self.servers.iter().find(|(s, _)| &*s.name == server)?;
        lists.updated?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        lists.told.tools.hash(&mut h);
        for tool in &lists.tools {
            tool.get("name").and_then(Value::as_str).hash(&mut h);
        }
        Some(h.finish())
    }

    /// Whether discovery listed the prefixed tool `prefixed` (as served).
    pub fn has_tool(&self, prefixed: &str) -> bool {
        self.tools.contains_key(prefixed)
    }

    /// Finds the server of a prefixed prompt, like [`Catalog::find_tool`].
    pub fn find_prompt<'a>(&'a self, prefixed: &'a str) -> Option<Resolved<'a>> {
        self.find_named(&self.prompts, prefixed)
    }

    /// Finds the server of a resource by its exact URI, else (a `ui://` URI) the server whose
    /// prefix its authority carries (the longest), else the first server (in config order)
    /// with a resource template the URI is an expansion of.
    pub fn find_resource<'a>(&'a self, uri: &'a str) -> Option<Resolved<'a>> {
        if let Some(r) = self.resources.get(uri) {
            return Some(Resolved {
                server: &r.server,
                name: (&*r.name).into(),
                hints: None,
            });
        }
        if let Some(server) = self
            .prefixes
            .iter()
            .find(|s| crate::ui_resource::has_prefix(uri, &s.prefix))
        {
            // Not listed (yet): the URI the upstream knows is this one without the prefix.
            let name = crate::ui_resource::strip(uri, &server.prefix)?;
            return Some(Resolved {
                server,
                name: name.into(),
                hints: None,
            });
        }
        self.templates
            .iter()
            .find(|(t, _)| crate::uri_template::matches(t, uri))
            .map(|(_, server)| Resolved {
                server,
                name: uri.into(),
                hints: None,
            })
    }

    fn find_named<'a>(
        &'a self,
        map: &'a FastMap<Arc<str>, Route>,
        prefixed: &'a str,
    ) -> Option<Resolved<'a>> {
        if let Some(r) = map.get(prefixed) {
            return Some(Resolved {
                server: &r.server,
                name: (&*r.name).into(),
                hints: r.hints.as_deref(),
            });
        }
        self.prefixes
            .iter()
            .find(|s| prefixed.len() > s.prefix.len() && prefixed.starts_with(&*s.prefix))
            .or(self.unprefixed.as_ref().filter(|_| !prefixed.is_empty()))
            .map(|s| Resolved {
                server: s,
                name: prefixed[s.prefix.len()..].into(),
                hints: None,
            })
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Tool,
    Prompt,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Tool => "tool",
            Kind::Prompt => "prompt",
        }
    }
}

/// `readOnly=true,destructive=false,idempotent=unspecified,openWorld=unspecified` from a tool's
/// `annotations`, or `None` when it declares none.
pub fn annotation_hints(tool: &Value) -> Option<String> {
    let a = tool.get("annotations")?.as_object()?;
    let hint = |key: &str| match a.get(key).and_then(Value::as_bool) {
        Some(true) => "true",
        Some(false) => "false",
        None => "unspecified",
    };
    Some(format!(
        "readOnly={},destructive={},idempotent={},openWorld={}",
        hint("readOnlyHint"),
        hint("destructiveHint"),
        hint("idempotentHint"),
        hint("openWorldHint")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> Config {
        Config::from_yaml(
            r#"
servers:
  - {name: ns/kube, url: 'http://kube:9999/mcp', hostname: kube.local, prefix: kube_}
  - {name: ns/kubex, url: 'http://kubex/mcp', prefix: kube_x_}
  - {name: ns/plain, url: 'http://plain/mcp', prefix: ''}
  - {name: ns/twin, url: 'http://twin/mcp', prefix: kube_}
  - {name: ns/off, url: 'http://off/mcp', prefix: off_, state: Disabled}
"#,
        )
        .expect("config")
    }

    fn ready(tools: Value) -> ServerLists {
        ServerLists {
            tools: serde_json::from_value(tools).expect("list"),
            health: Health::Ready,
            ..Default::default()
        }
    }

    #[test]
    fn tools_left_out_by_the_invalid_tool_policy_are_not_routed_even_by_prefix() {
        use crate::tool_validation::{judge, InvalidToolPolicy};
        let listed = serde_json::from_value::<Vec<Value>>(json!([
            {"name": "good", "inputSchema": {"type": "object"}},
            {"name": "bad", "inputSchema": {"type": "string"}}
        ]))
        .expect("list");
        for (policy, good_found) in [
            (InvalidToolPolicy::FilterOut, true),
            (InvalidToolPolicy::RejectServer, false),
        ] {
            let v = judge(policy, &listed);
            let mut d = HashMap::new();
            d.insert(
                "ns/kube".into(),
                ServerLists {
                    tools: v.tools,
                    invalid_tools: v.invalid,
                    tools_rejected: v.rejected,
                    health: Health::Ready,
                    ..Default::default()
                },
            );
            let c = Catalog::build(&config(), &d);
            assert_eq!(c.find_tool("kube_good").is_some(), good_found, "{policy:?}");
            assert!(c.find_tool("kube_bad").is_none(), "{policy:?}");
            // A tool discovery has not seen yet still routes by prefix, unless rejected.
            assert_eq!(c.find_tool("kube_new").is_some(), good_found, "{policy:?}");
            assert!(c.find_tool("kube_x_thing").is_some(), "{policy:?}");
        }
    }

    #[test]
    fn the_tools_generation_follows_the_names_listed_and_the_list_changed_count() {
        let generation = |lists: Option<ServerLists>| {
            let mut d = HashMap::new();
            if let Some(l) = lists {
                d.insert("ns/kube".into(), l);
            }
            Catalog::build(&config(), &d).tools_generation("ns/kube")
        };
        let read = |tools: Value, told: u64| {
            let mut l = ready(tools);
            l.updated = Some(SystemTime::UNIX_EPOCH);
            l.told.tools = told;
            Some(l)
        };
        let base = generation(read(json!([{"name": "a"}, {"name": "b"}]), 0));
        assert!(base.is_some());
        // The same names (other members, another round): the same.
        let mut later = read(json!([{"name": "a", "title": "A"}, {"name": "b"}]), 0);
        if let Some(l) = later.as_mut() {
            l.updated = Some(SystemTime::now());
        }
        assert_eq!(generation(later), base);
        for other in [
            read(json!([{"name": "a"}]), 0),
            read(json!([{"name": "a"}, {"name": "c"}]), 0),
            read(json!([{"name": "a"}, {"name": "b"}]), 1),
        ] {
            assert_ne!(generation(other), base);
        }
        // Not read yet, or not a server: none.
        assert_eq!(generation(Some(ready(json!([{"name": "a"}])))), None);
        assert_eq!(generation(None), None);
    }

    fn catalog() -> Catalog {
        let mut d = HashMap::new();
        d.insert("ns/kube".into(), ready(json!([
            {"name": "pods_list", "annotations": {"readOnlyHint": true, "destructiveHint": false}},
            {"name": "x_thing"}
        ])));
        d.insert("ns/kubex".into(), ready(json!([{"name": "thing"}])));
        d.insert(
            "ns/plain".into(),
            ready(json!([{"name": "echo"}, {"name": "kube_pods_list"}])),
        );
        d.insert("ns/off".into(), ready(json!([{"name": "hidden"}])));
        Catalog::build(&config(), &d)
    }

    #[test]
    fn a_server_of_both_revisions_shows_each_revision_its_own_lists() {
        let mut d = HashMap::new();
        let mut both = ready(json!([{"name": "echo"}]));
        both.protocol_version = Some("2025-11-25".into());
        both.modern = Some(Box::new(ServerLists {
            protocol_version: Some("2026-07-28".into()),
            ..ready(json!([{"name": "echo"}, {"name": "ask"}]))
        }));
        d.insert("ns/plain".into(), both);
        d.insert("ns/kube".into(), ready(json!([{"name": "pods_list"}])));
        let c = Arc::new(Catalog::build(&config(), &d));
        let names = |c: &Catalog| {
            c.tool_list
                .iter()
                .map(|e| e.key.to_string())
                .collect::<Vec<_>>()
        };
        for (version, tools, ask, native) in [
            (None, vec!["kube_pods_list", "echo"], false, false),
            (
                Some("2025-11-25"),
                vec!["kube_pods_list", "echo"],
                false,
                false,
            ),
            (
                Some("2026-07-28"),
                vec!["kube_pods_list", "echo", "ask"],
                true,
                true,
            ),
        ] {
            let v = c.for_version(version);
            assert_eq!(names(&v), tools, "{version:?}");
            assert_eq!(v.find_tool("ask").is_some(), ask, "{version:?}");
            // A name ns/plain does not list: its own to answer for a 2026-07-28 client (it
            // speaks that revision itself), the gateway's to refuse for a 2025 session.
            assert_eq!(
                v.find_tool("unlisted").map(|r| r.server.name.to_string()),
                ask.then(|| "ns/plain".to_owned()),
                "{version:?}"
            );
            assert_eq!(v.speaks_modern("ns/plain"), native, "{version:?}");
            assert!(!v.speaks_modern("ns/kube"), "{version:?}");
        }
        // No server of both revisions: one catalog for all.
        assert!(catalog().modern.is_none());
    }

    #[test]
    fn lookups_prefer_exact_names_then_the_longest_prefix() {
        let c = catalog();
        for (asked, server, name, hints) in [
            (
                "kube_pods_list",
                Some("ns/kube"),
                "pods_list",
                Some(
                    "readOnly=true,destructive=false,idempotent=unspecified,openWorld=unspecified",
                ),
            ),
            // Exact: the catalog knows kube_x_thing from ns/kube (x_thing) and from ns/kubex (thing).
            ("kube_x_thing", Some("ns/kube"), "x_thing", None),
            // Not discovered: the longest prefix wins.
            ("kube_x_new", Some("ns/kubex"), "new", None),
            ("kube_new", Some("ns/kube"), "new", None),
            ("echo", Some("ns/plain"), "echo", None),
            ("kube_", None, "", None),
            ("off_hidden", None, "", None),
            ("nothing", None, "", None),
        ] {
            let r = c.find_tool(asked);
            assert_eq!(r.as_ref().map(|r| &*r.server.name), server, "{asked}");
            if let Some(r) = r {
                assert_eq!(r.name, name, "{asked}");
                assert_eq!(r.hints, hints, "{asked}");
            }
        }
    }

    #[test]
    fn lists_are_prefixed_and_conflicts_reported() {
        let c = catalog();
        let names: Vec<&str> = c.tool_list.iter().map(|e| &*e.key).collect();
        assert_eq!(names, ["kube_pods_list", "kube_x_thing", "echo"]);
        assert_eq!(c.tool_list[0].value["name"], "kube_pods_list");
        assert!(c
            .conflicts
            .iter()
            .any(|m| m.contains("\"kube_x_thing\"") && m.contains("ns/kubex")));
        assert!(c
            .conflicts
            .iter()
            .any(|m| m.contains("\"kube_pods_list\"") && m.contains("ns/plain")));
        assert!(c
            .conflicts
            .iter()
            .any(|m| m.contains("prefix \"kube_\"") && m.contains("ns/twin")));
        assert_eq!(
            c.servers.len(),
            4,
            "disabled servers are not in the catalog"
        );
    }

    #[test]
    fn dropped_servers_offer_nothing_but_keep_prefix_routing() {
        let mut d = HashMap::new();
        let mut lists = ready(json!([{"name": "pods_list"}]));
        lists.health = Health::Dropped {
            attempts: 5,
            last_error: "down".into(),
        };
        d.insert("ns/kube".into(), lists);
        let c = Catalog::build(&config(), &d);
        assert!(c.tool_list.is_empty());
        assert_eq!(
            c.find_tool("kube_pods_list").map(|r| r.name.into_owned()),
            Some("pods_list".to_owned())
        );
    }

    #[test]
    fn ui_resources_are_listed_and_found_under_the_servers_prefix() {
        let mut d = HashMap::new();
        let mut kube = ready(json!([
            {"name": "chart", "_meta": {"ui": {"resourceUri": "ui://chart.html"}}},
            {"name": "plain"}
        ]));
        kube.resources = vec![
            json!({"uri": "ui://chart.html", "name": "chart app"}),
            json!({"uri": "k8s://cluster", "name": "cluster"}),
        ];
        d.insert("ns/kube".into(), kube);
        let c = Catalog::build(&config(), &d);
        let uris: Vec<&str> = c.resource_list.iter().map(|e| &*e.key).collect();
        assert_eq!(uris, ["ui://kube_chart.html", "k8s://cluster"]);
        assert_eq!(c.resource_list[0].value["uri"], "ui://kube_chart.html");
        assert_eq!(
            c.tool_list[0].value["_meta"]["ui"]["resourceUri"],
            "ui://kube_chart.html"
        );
        assert!(c.tool_list[1].value.get("_meta").is_none());
        assert_eq!(c.ui_app_prefix("kube_chart").as_deref(), Some("kube_"));
        assert_eq!(c.ui_app_prefix("kube_plain"), None);
        for (uri, found) in [
            // Listed: by its exact prefixed URI.
            ("ui://kube_chart.html", Some(("ns/kube", "ui://chart.html"))),
            // Not listed (yet): by the prefix in its authority, the longest that matches.
            ("ui://kube_other.html", Some(("ns/kube", "ui://other.html"))),
            ("ui://kube_x_app.html", Some(("ns/kubex", "ui://app.html"))),
            ("ui://chart.html", None),
            ("k8s://cluster", Some(("ns/kube", "k8s://cluster"))),
        ] {
            let r = c.find_resource(uri);
            assert_eq!(
                r.as_ref().map(|r| (&*r.server.name, &*r.name)),
                found,
                "{uri}"
            );
        }
    }

    #[test]
    fn resources_are_found_by_uri_then_by_template() {
        let mut d = HashMap::new();
        let mut kube = ready(json!([]));
        kube.resources = vec![json!({"uri": "k8s://cluster", "name": "cluster"})];
        kube.resource_templates = vec![json!({"uriTemplate": "k8s://pods/{name}", "name": "pod"})];
        let mut plain = ready(json!([]));
        plain.resource_templates = vec![
            json!({"uriTemplate": "k8s://{+any}", "name": "anything"}),
            json!({"name": "no template"}),
        ];
        d.insert("ns/kube".into(), kube);
        d.insert("ns/plain".into(), plain);
        let c = Catalog::build(&config(), &d);
        for (uri, server) in [
            ("k8s://cluster", Some("ns/kube")),
            ("k8s://pods/web-1", Some("ns/kube")),
            // Not the pod template (a slash in {name}): the catch-all of the next server.
            ("k8s://pods/a/b", Some("ns/plain")),
            ("k8s://nodes", Some("ns/plain")),
            ("file:///etc", None),
        ] {
            let r = c.find_resource(uri);
            assert_eq!(r.as_ref().map(|r| &*r.server.name), server, "{uri}");
            if let Some(r) = r {
                assert_eq!(r.name, uri, "{uri}");
            }
        }
    }

    #[test]
    fn hints() {
        assert_eq!(annotation_hints(&json!({"name": "a"})), None);
        assert_eq!(
            annotation_hints(
                &json!({"annotations": {"idempotentHint": false, "openWorldHint": true}})
            )
            .as_deref(),
            Some("readOnly=unspecified,destructive=unspecified,idempotent=false,openWorld=true")
        );
    }
}
