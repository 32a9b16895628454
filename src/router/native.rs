//! A 2026-07-28 (stateless) client's call to a server that speaks both generations and offers
//! that revision something else than its sessions ([`crate::catalog::ServerLists::modern`]): it
//! goes to the server natively, as the client sent it, with no upstream session, so that the
//! client gets what the server says to a client of its revision (tools listed only there,
//! input-required results and their retries). Results still get `resultType` when the server
//! left it out.

use std::sync::Arc;
use std::time::Instant;

use crate::catalog::Catalog;
use crate::mcp;
use crate::upstream::UpstreamSession;

use super::facts::RequestFacts;

/// The stand-in upstream session of a native 2026-07-28 call, or `None` to go the usual way.
pub(super) fn native_modern(
    catalog: &Catalog,
    facts: &RequestFacts,
    server: &str,
) -> Option<Arc<UpstreamSession>> {
    goes_native(catalog, facts.protocol_version.as_deref(), server).then(|| {
        Arc::new(UpstreamSession {
            id: None,
            protocol_version: mcp::MODERN_VERSION.into(),
            deadline: Instant::now(),
        })
    })
}

/// Whether a client of `version` reaches `server` natively. Pure.
pub(super) fn goes_native(catalog: &Catalog, version: Option<&str>, server: &str) -> bool {
    mcp::is_modern(version)
        && catalog
            .servers
            .iter()
            .any(|(s, l)| &*s.name == server && l.modern.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Health, ServerLists};
    use crate::config::Config;
    use serde_json::json;
    use std::collections::HashMap;

    #[test]
    fn only_stateless_clients_of_servers_with_a_2026_view_go_natively() {
        let config = Config::from_yaml(
            "servers:\n  - {name: ns/both, url: 'http://both/mcp', prefix: ''}\n  - {name: ns/old, url: 'http://old/mcp', prefix: o_}\n",
        )
        .expect("config");
        let ready = |tools: Vec<serde_json::Value>| ServerLists {
            tools,
            health: Health::Ready,
            ..Default::default()
        };
        let mut both = ready(vec![json!({"name": "a"})]);
        both.modern = Some(Box::new(ready(vec![
            json!({"name": "a"}),
            json!({"name": "b"}),
        ])));
        let mut d = HashMap::new();
        d.insert("ns/both".into(), both);
        d.insert("ns/old".into(), ready(vec![json!({"name": "x"})]));
        let c = Catalog::build(&config, &d);
        for (version, server, native) in [
            (Some("2026-07-28"), "ns/both", true),
            (Some("2025-11-25"), "ns/both", false),
            (None, "ns/both", false),
            (Some("2026-07-28"), "ns/old", false),
            (Some("2026-07-28"), "ns/unknown", false),
        ] {
            assert_eq!(
                goes_native(&c, version, server),
                native,
                "{version:?} {server}"
            );
        }
    }
}
