//! The warm path of a routed call, in Envoy's worker thread: safe Rust over a [`Stream`].
//!
//! A POST to the MCP endpoint with a gateway session is held until its body is complete; the
//! body is parsed and decided by the router's own code ([`mcp_router::jsonrpc::parse`],
//! [`mcp_router::router::decide::decide_body`]) and, when it is a call to an upstream whose
//! upstream session this module knows, rewritten with the router's own mutation
//! ([`mcp_router::router::mutation::upstream_call`]): `:authority`, `:path`, the `x-mcp-*`
//! headers, the upstream's `mcp-session-id`, the name without its prefix, `content-length`;
//! then the route cache is cleared and [`ROUTED_MARK`] set, which selects a route on which the
//! ext_proc filter is disabled.
//!
//! Everything else is left untouched for the ext_proc filter after this one: other methods and
//! paths, a session or server this module does not know, anything needing authentication or
//! token exchange (`auth` in the config, a server credential or token exchange, an
//! `x-mcp-authorized` header), browsers (`Origin`), hairpin initializes, resumptions, parse
//! errors and rejections (so that their error replies are the router's).

use std::collections::HashMap;
use std::sync::Arc;

use mcp_router::catalog::{Catalog, Health, ServerLists};
use mcp_router::config::Config;
use mcp_router::jsonrpc;
use mcp_router::mcp::header;
use mcp_router::router::decide::{self, Decision, HeadersDecision};
use mcp_router::router::facts::RequestFacts as HeaderFacts;
use mcp_router::router::mutation;
use mcp_router::router::respond;
use serde::Deserialize;

/// Set on a request this module routed; the upstream's route matching it disables ext_proc
/// and removes it. A client's copy is always removed first.
pub const ROUTED_MARK: &str = "x-mcp-module-routed";

/// What one stream of Envoy lends the filter.
pub trait Stream {
    fn request_headers(&self) -> Vec<(Vec<u8>, Vec<u8>)>;
    fn set_request_header(&mut self, name: &str, value: &[u8]);
    fn remove_request_header(&mut self, name: &str);
    fn response_headers(&self) -> Vec<(Vec<u8>, Vec<u8>)>;
    fn set_response_header(&mut self, name: &str, value: &[u8]);
    fn remove_response_header(&mut self, name: &str);
    /// The whole request body buffered so far (at the end of the stream: all of it).
    fn request_body(&self) -> Vec<u8>;
    fn replace_request_body(&mut self, body: &[u8]);
    fn clear_route_cache(&mut self);
}

/// The filter's configuration, the JSON string of its `filter_config`.
///
/// This first version (for measuring) takes the catalog's tools and the (gateway session,
/// server) → upstream session map as given; shipping it would need them learnt from
/// mcp-router (see BENCHMARKS.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterConfigFile {
    /// The gateway's config file (the one mcp-router reads).
    gateway_config: String,
    #[serde(default = "default_max_body")]
    max_body: usize,
    /// Server name → its tools as the upstream lists them (`{"name": …, "annotations": …}`).
    #[serde(default)]
    tools: HashMap<String, Vec<serde_json::Value>>,
    #[serde(default)]
    sessions: Vec<SessionEntry>,
}

fn default_max_body() -> usize {
    5 * 1024 * 1024
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionEntry {
    /// The gateway session id (`Mcp-Session-Id` the client sends).
    gateway: String,
    server: String,
    /// The upstream's session id (`None`: a stateless upstream).
    upstream: Option<String>,
    protocol_version: String,
}

/// The upstream session of one (gateway session, server).
#[derive(Debug)]
struct Upstream {
    id: Option<String>,
    protocol_version: String,
}

/// Read once on the main thread, then shared read-only by every worker.
#[derive(Debug)]
pub struct FilterConfig {
    config: Config,
    catalog: Catalog,
    max_body: usize,
    sessions: HashMap<(String, String), Upstream>,
}

impl FilterConfig {
    pub fn from_json(bytes: &[u8]) -> Result<FilterConfig, String> {
        let file: FilterConfigFile = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let text = std::fs::read_to_string(&file.gateway_config)
            .map_err(|e| format!("{}: {e}", file.gateway_config))?;
        let config = Config::from_yaml(&text).map_err(|e| e.to_string())?;
        Ok(Self::new(config, file.max_body, file.tools, file.sessions))
    }

    fn new(
        config: Config,
        max_body: usize,
        tools: HashMap<String, Vec<serde_json::Value>>,
        sessions: Vec<SessionEntry>,
    ) -> FilterConfig {
        let discovered: HashMap<Arc<str>, ServerLists> = tools
            .into_iter()
            .map(|(server, tools)| {
                let lists = ServerLists {
                    tools,
                    health: Health::Ready,
                    ..Default::default()
                };
                (Arc::from(server.as_str()), lists)
            })
            .collect();
        let catalog = Catalog::build(&config, &discovered);
        let sessions = sessions
            .into_iter()
            .map(|s| {
                (
                    (s.gateway, s.server),
                    Upstream {
                        id: s.upstream,
                        protocol_version: s.protocol_version,
                    },
                )
            })
            .collect();
        FilterConfig {
            config,
            catalog,
            max_body,
            sessions,
        }
    }
}

/// One stream's state.
#[derive(Debug)]
pub struct PerStream {
    config: &'static FilterConfig,
    /// Held for its body: the facts of its headers, and the internal headers the client sent
    /// (removed when routed here, as the router removes them).
    pending: Option<(HeaderFacts, Vec<String>)>,
    /// Routed here: the gateway session to give back in the response.
    routed_session: Option<String>,
}

impl PerStream {
    pub fn new(config: &'static FilterConfig) -> PerStream {
        PerStream {
            config,
            pending: None,
            routed_session: None,
        }
    }

    /// Returns true to hold the headers until the body is complete.
    pub fn on_request_headers(&mut self, s: &mut dyn Stream, end_of_stream: bool) -> bool {
        let headers = s.request_headers();
        if headers.iter().any(|(k, _)| k == ROUTED_MARK.as_bytes()) {
            s.remove_request_header(ROUTED_MARK);
        }
        let Some(facts) = eligible_facts(self.config, &headers, end_of_stream) else {
            return false;
        };
        let internal = headers
            .iter()
            .filter_map(|(k, _)| std::str::from_utf8(k).ok())
            .filter(|k| header::is_internal(k) && *k != ROUTED_MARK)
            .map(str::to_owned)
            .collect();
        self.pending = Some((facts, internal));
        true
    }

    /// Returns true to keep buffering.
    pub fn on_request_body(&mut self, s: &mut dyn Stream, end_of_stream: bool) -> bool {
        if self.pending.is_none() {
            return false;
        }
        if !end_of_stream {
            return true;
        }
        let Some((facts, internal)) = self.pending.take() else {
            return false;
        };
        let body = s.request_body();
        if body.len() > self.config.max_body {
            return false;
        }
        let Some(route) = route(self.config, &facts, &body) else {
            return false;
        };
        // Internal headers a client sent (the router strips them too), then the routing.
        for name in &internal {
            s.remove_request_header(name);
        }
        for name in route.mutation.removed() {
            s.remove_request_header(name);
        }
        for (name, value) in route.mutation.headers_set() {
            s.set_request_header(name, value);
        }
        s.set_request_header(ROUTED_MARK, b"1");
        if let Some(b) = &route.body {
            s.replace_request_body(b);
        }
        s.clear_route_cache();
        self.routed_session = facts.session_id;
        false
    }

    /// Request trailers end a body this filter was holding: it is left to ext_proc.
    pub fn on_request_trailers(&mut self, _s: &mut dyn Stream) {
        self.pending = None;
    }

    /// The client sees its gateway session, never the upstream's (as the router does).
    pub fn on_response_headers(&mut self, s: &mut dyn Stream) {
        if let Some(gateway) = &self.routed_session {
            s.set_response_header(header::SESSION_ID, gateway.as_bytes());
        }
    }
}

/// The facts of a request this module may route, or `None` (left to ext_proc).
fn eligible_facts(
    config: &FilterConfig,
    headers: &[(Vec<u8>, Vec<u8>)],
    end_of_stream: bool,
) -> Option<HeaderFacts> {
    if config.config.auth.is_some() || end_of_stream {
        return None;
    }
    let mut facts = HeaderFacts {
        end_of_stream,
        ..Default::default()
    };
    for (k, v) in headers {
        let value = || String::from_utf8(v.clone()).ok();
        let slot = match k.as_slice() {
            b":method" => {
                facts.method = http::Method::from_bytes(v).ok()?;
                continue;
            }
            b":path" => {
                facts.path = value()?;
                continue;
            }
            b"content-type" => &mut facts.content_type,
            b"mcp-session-id" => &mut facts.session_id,
            b"mcp-protocol-version" => &mut facts.protocol_version,
            b"x-mcp-virtualserver" => &mut facts.virtual_server,
            b"mcp-method" => &mut facts.mcp_method,
            b"mcp-name" => &mut facts.mcp_name,
            b"authorization" => &mut facts.authorization,
            // Needs the router: capability verdicts, browsers, hairpin initializes,
            // resumptions.
            b"x-mcp-authorized" | b"origin" | b"x-mcp-router-key" | b"last-event-id" => {
                return None
            }
            _ => continue,
        };
        if slot.is_none() {
            *slot = value();
        }
    }
    if let Some(end) = facts.path.find(['?', '#']) {
        facts.path.truncate(end);
    }
    // Only calls in a gateway session this module knows (a stateless client's upstream
    // sessions are per caller: the router's).
    facts.session_id.as_ref().filter(|s| !s.is_empty())?;
    (decide::decide_headers(&config.config, &facts) == HeadersDecision::NeedBody).then_some(facts)
}

/// A call this module routes: the router's mutation and the new body (when it changes).
#[derive(Debug)]
struct Route {
    mutation: respond::Mutation,
    body: Option<Vec<u8>>,
}

fn route(config: &FilterConfig, facts: &HeaderFacts, body: &[u8]) -> Option<Route> {
    let msg = jsonrpc::parse(body).ok()?;
    let Decision::Upstream(call) =
        decide::decide_body(&config.config, &config.catalog, facts, &msg)
    else {
        return None;
    };
    if call.server.credential.is_some() || call.server.token_exchange.is_some() {
        return None;
    }
    let gateway = facts.session_id.as_ref()?;
    let upstream = config
        .sessions
        .get(&(gateway.clone(), call.server.name.to_string()))?;
    let (mutation, body) = mutation::upstream_call(
        &call,
        mutation::UpstreamSession {
            id: upstream.id.as_deref(),
            protocol_version: &upstream.protocol_version,
        },
        facts,
        None,
        body,
    );
    Some(Route { mutation, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Fake {
        req: Vec<(Vec<u8>, Vec<u8>)>,
        resp: Vec<(Vec<u8>, Vec<u8>)>,
        body: Vec<u8>,
        cleared: bool,
    }

    fn set(map: &mut Vec<(Vec<u8>, Vec<u8>)>, name: &str, value: Option<&[u8]>) {
        map.retain(|(k, _)| k != name.as_bytes());
        if let Some(v) = value {
            map.push((name.as_bytes().to_vec(), v.to_vec()));
        }
    }

    impl Stream for Fake {
        fn request_headers(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
            self.req.clone()
        }
        fn set_request_header(&mut self, name: &str, value: &[u8]) {
            set(&mut self.req, name, Some(value));
        }
        fn remove_request_header(&mut self, name: &str) {
            set(&mut self.req, name, None);
        }
        fn response_headers(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
            self.resp.clone()
        }
        fn set_response_header(&mut self, name: &str, value: &[u8]) {
            set(&mut self.resp, name, Some(value));
        }
        fn remove_response_header(&mut self, name: &str) {
            set(&mut self.resp, name, None);
        }
        fn request_body(&self) -> Vec<u8> {
            self.body.clone()
        }
        fn replace_request_body(&mut self, body: &[u8]) {
            self.body = body.to_vec();
        }
        fn clear_route_cache(&mut self) {
            self.cleared = true;
        }
    }

    fn config(yaml: &str) -> &'static FilterConfig {
        let config = Config::from_yaml(yaml).expect("config");
        let mut tools = HashMap::new();
        tools.insert(
            "ns/ev".to_owned(),
            vec![serde_json::json!({"name": "echo", "annotations": {"readOnlyHint": true}})],
        );
        Box::leak(Box::new(FilterConfig::new(
            config,
            default_max_body(),
            tools,
            vec![SessionEntry {
                gateway: "gw-session".into(),
                server: "ns/ev".into(),
                upstream: Some("up-session".into()),
                protocol_version: "2025-11-25".into(),
            }],
        )))
    }

    const YAML: &str =
        "servers:\n  - {name: ns/ev, url: 'http://ev:3001/mcp/x', hostname: ev.local, prefix: ev_}\n";

    fn request(session: &str, name: &str) -> Fake {
        let h = |k: &str, v: &str| (k.as_bytes().to_vec(), v.as_bytes().to_vec());
        Fake {
            req: vec![
                h(":method", "POST"),
                h(":path", "/mcp"),
                h(":authority", "gw.local:8080"),
                h("content-type", "application/json"),
                h("mcp-session-id", session),
                h("x-mcp-toolname", "spoofed"),
                h(ROUTED_MARK, "spoofed"),
            ],
            body: format!(
                r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"{name}","arguments":{{"n":1.50}}}}}}"#
            )
            .into_bytes(),
            ..Default::default()
        }
    }

    fn header<'a>(map: &'a [(Vec<u8>, Vec<u8>)], name: &str) -> Option<&'a str> {
        map.iter()
            .find(|(k, _)| k == name.as_bytes())
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    #[test]
    fn a_warm_call_is_routed_as_the_router_routes_it() {
        let c = config(YAML);
        let mut s = request("gw-session", "ev_echo");
        let mut p = PerStream::new(c);
        assert!(p.on_request_headers(&mut s, false));
        assert!(p.on_request_body(&mut s, false), "buffers until the end");
        assert!(!p.on_request_body(&mut s, true));
        let want = [
            (":authority", "ev.local"),
            (":path", "/mcp/x"),
            ("x-mcp-method", "tools/call"),
            ("x-mcp-servername", "ns/ev"),
            ("x-mcp-toolname", "echo"),
            ("mcp-session-id", "up-session"),
            (
                "x-mcp-annotation-hints",
                "readOnly=true,destructive=unspecified,idempotent=unspecified,openWorld=unspecified",
            ),
            (ROUTED_MARK, "1"),
        ];
        for (k, v) in want {
            assert_eq!(header(&s.req, k), Some(v), "{k}");
        }
        let body = String::from_utf8(s.body.clone()).expect("utf-8");
        assert_eq!(
            body,
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"n":1.50}}}"#
        );
        assert_eq!(
            header(&s.req, "content-length"),
            Some(body.len().to_string().as_str())
        );
        assert!(s.cleared);
        s.resp
            .push((b"mcp-session-id".to_vec(), b"up-session".to_vec()));
        p.on_response_headers(&mut s);
        assert_eq!(header(&s.resp, "mcp-session-id"), Some("gw-session"));
    }

    #[test]
    fn what_it_cannot_decide_alone_is_left_untouched() {
        let c = config(YAML);
        let auth = config(
            "servers:\n  - {name: ns/ev, url: 'http://ev:3001/mcp', hostname: ev.local, prefix: ev_, credential: 'Bearer x'}\n",
        );
        type Change = fn(&mut Fake);
        let cases: Vec<(&str, &'static FilterConfig, Change)> = vec![
            ("unknown session", c, |s| {
                set(&mut s.req, "mcp-session-id", Some(b"other"))
            }),
            ("no session", c, |s| set(&mut s.req, "mcp-session-id", None)),
            ("other path", c, |s| {
                set(&mut s.req, ":path", Some(b"/other"))
            }),
            ("GET", c, |s| set(&mut s.req, ":method", Some(b"GET"))),
            ("browser", c, |s| {
                set(&mut s.req, "origin", Some(b"http://x"))
            }),
            ("verdict", c, |s| {
                set(&mut s.req, "x-mcp-authorized", Some(b"jwt"))
            }),
            ("unknown tool", c, |s| {
                s.body = request("gw-session", "zz_nope").body
            }),
            ("broker method", c, |s| {
                s.body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#.to_vec()
            }),
            ("parse error", c, |s| s.body = b"{".to_vec()),
            ("credential", auth, |_| {}),
        ];
        for (what, config, change) in cases {
            let mut s = request("gw-session", "ev_echo");
            change(&mut s);
            let before = (s.body.clone(), s.req.clone());
            let mut p = PerStream::new(config);
            let held = p.on_request_headers(&mut s, false);
            let buffering = p.on_request_body(&mut s, true);
            assert!(!buffering, "{what}");
            // Only the module's own mark is ever removed.
            let mut want = before.1.clone();
            want.retain(|(k, _)| k != ROUTED_MARK.as_bytes());
            assert_eq!(
                (s.body.clone(), s.req.clone()),
                (before.0, want),
                "{what} (held: {held})"
            );
            assert!(!s.cleared, "{what}");
        }
    }
}
