//! What the router changes in a request: header sets and removals ([`Mutation`]), the routing
//! header set of an upstream ([`route_to`]), and the whole change of a routed call
//! ([`upstream_call`]) or of an upstream initialize sent back through the gateway
//! ([`hairpin_initialize`]). Pure: `respond` turns them into Envoy messages.

use std::borrow::Cow;

use super::decide::UpstreamCall;
use super::facts::RequestFacts;
use crate::config::Server;
use crate::jsonrpc;
use crate::mcp::{self, header, CallTarget};

/// Header changes for one phase: the headers to set (in order) and the names to remove.
///
/// Held in the router's own form, which `answer_wire` writes straight into Envoy's
/// `HeaderMutation`: a set header is its (static) name and a range of one buffer of values, so
/// a call's dozen headers cost two allocations, not a `String` and a `Vec` each (measured with
/// callgrind: building, encoding and dropping Envoy's own types was about 10k instructions of
/// each call).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Mutation {
    set: Vec<SetHeader>,
    values: Vec<u8>,
    removals: Vec<Cow<'static, str>>,
}

/// One header to set: its name, where its value lies in [`Mutation::values`], and whether it is
/// added beside an existing one (`true`) or overwrites it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct SetHeader {
    name: &'static str,
    start: u32,
    end: u32,
    append: bool,
}

/// A header to set, as the encoder reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeaderSet<'a> {
    pub name: &'static str,
    pub value: &'a [u8],
    /// Added beside a header of the same name instead of overwriting it.
    pub append: bool,
}

impl Mutation {
    /// Room for `n` headers to set (and about 32 bytes of value each).
    pub fn with_capacity(n: usize) -> Mutation {
        Mutation {
            set: Vec::with_capacity(n),
            values: Vec::with_capacity(n * 32),
            removals: Vec::new(),
        }
    }

    /// Sets `name` to `value`, overwriting the request's (or response's) own.
    pub fn set(&mut self, name: &'static str, value: impl AsRef<[u8]>) -> &mut Self {
        self.push(name, value.as_ref(), false)
    }

    /// Adds `name: value` beside any header of that name.
    pub fn append(&mut self, name: &'static str, value: impl AsRef<[u8]>) -> &mut Self {
        self.push(name, value.as_ref(), true)
    }

    fn push(&mut self, name: &'static str, value: &[u8], append: bool) -> &mut Self {
        // Header values are far below 4 GiB (Envoy's limit is 60 KiB for all headers); a value
        // that is not is cut at the range's end rather than wrapping.
        let start = self.values.len();
        self.values.extend_from_slice(value);
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        self.set.push(SetHeader {
            name,
            start: clamp(start),
            end: clamp(self.values.len()),
            append,
        });
        self
    }

    /// Marks `name` for removal.
    pub fn remove(&mut self, name: impl Into<Cow<'static, str>>) -> &mut Self {
        self.removals.push(name.into());
        self
    }

    /// A mutation that removes `names` (and sets nothing yet).
    pub fn removing(names: Vec<Cow<'static, str>>) -> Mutation {
        Mutation {
            removals: names,
            ..Default::default()
        }
    }

    /// Whether nothing is set or removed.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.removals.is_empty()
    }

    /// The headers set, in order.
    pub fn sets(&self) -> impl Iterator<Item = HeaderSet<'_>> + '_ {
        self.set.iter().map(|h| HeaderSet {
            name: h.name,
            value: self
                .values
                .get(h.start as usize..h.end as usize)
                .unwrap_or_default(),
            append: h.append,
        })
    }

    /// The headers set, in order, as (name, value).
    pub fn headers_set(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.sets().map(|h| (h.name, h.value))
    }

    /// The names to remove, leaving out those also set (a client's spoofed copy is overwritten
    /// by the set anyway).
    pub fn removed(&self) -> impl Iterator<Item = &str> + '_ {
        self.removals
            .iter()
            .map(|r| r.as_ref())
            .filter(|r| !self.set.iter().any(|h| h.name == *r))
    }
}

/// The upstream session a request goes over.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamSession<'a> {
    /// Its `Mcp-Session-Id`; `None` for a stateless upstream.
    pub id: Option<&'a str>,
    pub protocol_version: &'a str,
}

/// What a request already has of the routing headers, each only where it is the request's one
/// value of that header (`None`: unknown, or not the only one).
#[derive(Debug, Clone, Copy, Default)]
pub struct AlreadySent<'a> {
    /// The whole `:path`.
    pub path: Option<&'a str>,
    /// The only `Mcp-Protocol-Version`.
    pub protocol_version: Option<&'a str>,
}

impl<'a> AlreadySent<'a> {
    /// What the request headers in `facts` say.
    pub fn of(facts: &'a RequestFacts) -> AlreadySent<'a> {
        AlreadySent {
            path: facts.path_is_exact.then_some(facts.path.as_str()),
            protocol_version: (facts.protocol_versions == 1)
                .then_some(facts.protocol_version.as_deref())
                .flatten(),
        }
    }
}

/// The routing header set: to `server`, over `upstream` (its session id set, or the client's
/// removed). A header the request already has with the very value (`sent`) is not set again:
/// it would change nothing but Envoy's work (about 2.9k instructions per header change).
pub fn route_to(
    m: &mut Mutation,
    server: &Server,
    upstream: UpstreamSession<'_>,
    sent: AlreadySent<'_>,
) {
    m.set(header::AUTHORITY, server.hostname.as_bytes());
    if sent.path != Some(&*server.path) {
        m.set(header::PATH, server.path.as_bytes());
    }
    m.set(header::X_MCP_SERVERNAME, server.name.as_bytes());
    if sent.protocol_version != Some(upstream.protocol_version) {
        m.set(
            header::PROTOCOL_VERSION,
            upstream.protocol_version.as_bytes(),
        );
    }
    match upstream.id {
        Some(id) => {
            m.set(header::SESSION_ID, id.as_bytes());
        }
        None => {
            m.remove(header::SESSION_ID);
        }
    }
}

/// The header changes and the new body (when it changes) of a call routed to an upstream:
/// routing headers, the upstream's session, the name the upstream knows spliced into the body
/// (every other byte kept), and the 2026-07-28 envelope for a stateless upstream. Pure.
pub fn upstream_call(
    call: &UpstreamCall,
    upstream: UpstreamSession<'_>,
    facts: &RequestFacts,
    replaced_authorization: Option<String>,
    body: &[u8],
) -> (Mutation, Option<Vec<u8>>) {
    // Room for every header a call may set (up to 12), so the list is allocated once.
    let mut m = Mutation::with_capacity(12);
    route_to(&mut m, &call.server, upstream, AlreadySent::of(facts));
    m.set(header::X_MCP_METHOD, call.method);
    m.set(call.kind.policy_header(), call.upstream_name.as_bytes());
    if let Some(a) = replaced_authorization {
        m.set(header::AUTHORIZATION, a.into_bytes());
    }
    if let Some(h) = &call.hints {
        m.set(header::X_MCP_ANNOTATION_HINTS, h.as_bytes());
    }
    // Meant for the broker (which tools a caller sees): an upstream has no use for them, and the
    // verdict lists everything the caller may use elsewhere.
    if facts.virtual_server.is_some() {
        m.remove(header::X_MCP_VIRTUALSERVER);
    }
    if facts.authorized {
        m.remove(header::X_MCP_AUTHORIZED);
    }
    // A browser's Origin was checked here (DNS-rebinding protection, CORS); the upstream is
    // called by the gateway, and its own origin list would refuse the browser's.
    if facts.origin.is_some() {
        m.remove(header::ORIGIN);
    }
    if facts.mcp_name.is_some() {
        // The header names what the upstream knows, like the body.
        m.set(header::MCP_NAME, call.upstream_name.as_bytes());
    }
    let mut new_body = call
        .rename
        .clone()
        .map(|span| jsonrpc::splice_string(body, span, &call.upstream_name));
    let client_modern = mcp::is_modern(facts.protocol_version.as_deref());
    if mcp::is_modern(Some(upstream.protocol_version)) && !client_modern {
        // A session-era client on a stateless upstream: the request must say who asks and name
        // its method and target in headers.
        m.set(header::MCP_METHOD, call.method)
            .set(header::MCP_NAME, call.upstream_name.as_bytes());
        let envelope = crate::upstream::client::modern_envelope().to_string();
        let members = &envelope[1..envelope.len() - 1];
        if let Some(b) = super::bridge::add_envelope(new_body.as_deref().unwrap_or(body), members) {
            new_body = Some(b);
        }
    }
    if let Some(b) = &new_body {
        m.set(header::CONTENT_LENGTH, b.len().to_string());
    }
    (m, new_body)
}

/// The header changes of an upstream initialize sent back through the gateway (it carries a
/// valid hairpin key): to the server, as `initialize`, with the policy headers of the call that
/// triggered it, set as that call gets them (`x-mcp-servername`, and `x-mcp-toolname`,
/// `x-mcp-promptname` or `x-mcp-resourceuri` with the name the upstream knows), so that gateway
/// policies judge the initialize as they judge the call. `x-mcp-method` stays `initialize`, as
/// on the seed's hairpin. Pure; the values come from the signed key, never from the client.
pub fn hairpin_initialize(m: &mut Mutation, server: &Server, call: Option<&CallTarget>) {
    m.set(header::AUTHORITY, server.hostname.as_bytes())
        .set(header::PATH, server.path.as_bytes())
        .set(header::X_MCP_METHOD, mcp::method::INITIALIZE)
        .set(header::X_MCP_SERVERNAME, server.name.as_bytes());
    if let Some(c) = call {
        m.set(c.kind.policy_header(), c.name.as_bytes());
        // The call's other policy headers, so that a policy judges the initialize like the call.
        if let Some(h) = &c.hints {
            m.set(header::X_MCP_ANNOTATION_HINTS, h.as_bytes());
        }
        if let Some(sub) = &c.verified_sub {
            m.set(header::X_MCP_VERIFIED_SUB, sub.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A server at `http://kube:9999/k/mcp`, host `kube.local`.
    fn kube() -> std::sync::Arc<Server> {
        crate::config::Config::from_yaml(
            "servers: [{name: ns/kube, url: 'http://kube:9999/k/mcp', hostname: kube.local, prefix: kube_}]",
        )
        .expect("config")
        .server("ns/kube")
        .expect("server")
        .clone()
    }

    #[test]
    fn a_routing_header_the_request_has_with_the_very_value_is_not_set_again() {
        let server = kube();
        let upstream = UpstreamSession {
            id: Some("up-1"),
            protocol_version: "2025-11-25",
        };
        // (the request's whole `:path`, its only `Mcp-Protocol-Version`; which of the two are set)
        type Case<'a> = (Option<&'a str>, Option<&'a str>, [bool; 2]);
        let cases: &[Case] = &[
            (Some("/k/mcp"), Some("2025-11-25"), [false, false]),
            (Some("/k/mcp"), Some("2025-06-18"), [false, true]),
            (Some("/mcp"), Some("2025-11-25"), [true, false]),
            (Some("/k/mcp/"), None, [true, true]),
            (Some("/K/mcp"), Some("2025-11-25 "), [true, true]),
            (None, None, [true, true]),
        ];
        for (path, version, [sets_path, sets_version]) in cases {
            let mut m = Mutation::default();
            let sent = AlreadySent {
                path: *path,
                protocol_version: *version,
            };
            route_to(&mut m, &server, upstream, sent);
            let set: HashMap<&str, &[u8]> = m.headers_set().collect();
            let case = format!("{path:?} {version:?}");
            assert_eq!(
                set.get(header::PATH).copied(),
                sets_path.then_some(&b"/k/mcp"[..]),
                "{case}"
            );
            assert_eq!(
                set.get(header::PROTOCOL_VERSION).copied(),
                sets_version.then_some(&b"2025-11-25"[..]),
                "{case}"
            );
            // The rest of the routing set is the same either way.
            assert_eq!(
                set.get(header::AUTHORITY).copied(),
                Some(&b"kube.local"[..])
            );
            assert_eq!(
                set.get(header::X_MCP_SERVERNAME).copied(),
                Some(&b"ns/kube"[..])
            );
            assert_eq!(set.get(header::SESSION_ID).copied(), Some(&b"up-1"[..]));
        }
    }

    #[test]
    fn what_a_request_already_has_counts_only_when_it_is_the_only_value() {
        use super::super::facts::read_facts;
        use super::super::wire::HeaderMap;
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>, Option<&'a str>);
        let cases: &[Case] = &[
            (
                &[(":path", "/mcp"), ("mcp-protocol-version", "2025-11-25")],
                Some("/mcp"),
                Some("2025-11-25"),
            ),
            (
                &[
                    (":path", "/mcp?x=1"),
                    ("mcp-protocol-version", "2025-11-25"),
                    ("mcp-protocol-version", "2025-11-25"),
                ],
                None,
                None,
            ),
            (&[(":path", "/mcp")], Some("/mcp"), None),
        ];
        for (headers, path, version) in cases {
            let facts = read_facts(&HeaderMap::of(headers), false);
            let sent = AlreadySent::of(&facts);
            assert_eq!(sent.path, *path, "{headers:?}");
            assert_eq!(sent.protocol_version, *version, "{headers:?}");
        }
    }

    #[test]
    fn a_hairpin_initialize_carries_the_policy_headers_of_its_call() {
        use crate::mcp::CallKind;
        let server = kube();
        let call = |method: &str, kind, name: &str| CallTarget {
            method: method.into(),
            kind,
            name: name.into(),
            hints: None,
            verified_sub: None,
        };
        let routing: &[(&str, &str)] = &[
            (":authority", "kube.local"),
            (":path", "/k/mcp"),
            ("x-mcp-method", "initialize"),
            ("x-mcp-servername", "ns/kube"),
        ];
        type Case<'a> = (Option<CallTarget>, Option<(&'a str, &'a str)>);
        let cases: [Case; 6] = [
            (None, None),
            (
                Some(call("tools/call", CallKind::Tool, "pods_list")),
                Some(("x-mcp-toolname", "pods_list")),
            ),
            (
                Some(call("prompts/get", CallKind::Prompt, "greet")),
                Some(("x-mcp-promptname", "greet")),
            ),
            (
                Some(call("resources/read", CallKind::Resource, "k8s://pods/a")),
                Some(("x-mcp-resourceuri", "k8s://pods/a")),
            ),
            (
                Some(call("resources/subscribe", CallKind::Resource, "k8s://x")),
                Some(("x-mcp-resourceuri", "k8s://x")),
            ),
            (
                Some(call("completion/complete", CallKind::Prompt, "greet")),
                Some(("x-mcp-promptname", "greet")),
            ),
        ];
        for (call, named) in cases {
            // A client's spoofed copies were marked for removal on entry.
            let mut m =
                Mutation::removing(vec!["x-mcp-toolname".into(), "x-mcp-promptname".into()]);
            hairpin_initialize(&mut m, &server, call.as_ref());
            let mut want: Vec<(&str, &str)> = routing.to_vec();
            want.extend(named);
            let got: Vec<(&str, &str)> = m
                .headers_set()
                .map(|(k, v)| (k, std::str::from_utf8(v).expect("utf8")))
                .collect();
            assert_eq!(got, want, "{call:?}");
            // What is set is not removed again; the other spoofed copy still is.
            let removed: Vec<&str> = m.removed().collect();
            let set_here = named.map(|(k, _)| k);
            let want_removed: Vec<&str> = ["x-mcp-toolname", "x-mcp-promptname"]
                .into_iter()
                .filter(|h| Some(*h) != set_here)
                .collect();
            assert_eq!(removed, want_removed, "{call:?}");
        }
        // The call's hints and verified subject go with it.
        let mut full = call("tools/call", CallKind::Tool, "pods_list");
        full.hints = Some("readOnly=true".into());
        full.verified_sub = Some("alice-sub".into());
        let mut m = Mutation::default();
        hairpin_initialize(&mut m, &server, Some(&full));
        let got: Vec<(&str, &str)> = m
            .headers_set()
            .map(|(k, v)| (k, std::str::from_utf8(v).expect("utf8")))
            .collect();
        let mut want = routing.to_vec();
        want.extend([
            ("x-mcp-toolname", "pods_list"),
            ("x-mcp-annotation-hints", "readOnly=true"),
            ("x-mcp-verified-sub", "alice-sub"),
        ]);
        assert_eq!(got, want);
    }
}
