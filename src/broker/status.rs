//! `/healthz`, `/readyz` and `/status`.

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use super::Broker;

pub(super) async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready once a valid config is loaded, which happens before any port is bound.
pub(super) async fn readyz() -> &'static str {
    "ready\n"
}

/// Per-upstream discovery state and counts, conflicts, and session counts, as JSON.
pub(super) async fn status(State(b): State<Arc<Broker>>) -> impl IntoResponse {
    let catalog = b.catalog.borrow().clone();
    let servers: Vec<Value> = catalog
        .servers
        .iter()
        .map(|(s, l)| {
            json!({
                "name": &*s.name,
                "url": s.url.as_str(),
                "hostname": &*s.hostname,
                "prefix": &*s.prefix,
                "health": l.health,
                "tools": l.tools.len(),
                "prompts": l.prompts.len(),
                "resources": l.resources.len(),
                "resourceTemplates": l.resource_templates.len(),
                "protocolVersion": l.protocol_version,
                "serverInfo": l.server_info,
                "updated": l.updated.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs()),
            })
        })
        .collect();
    let config = b.config.borrow().clone();
    let disabled: Vec<&str> = config
        .servers
        .iter()
        .filter(|s| !s.enabled)
        .map(|s| &*s.name)
        .collect();
    Json(json!({
        "servers": servers,
        "disabledServers": disabled,
        "conflicts": catalog.conflicts,
        "tools": catalog.tool_list.len(),
        "upstreamSessions": b.sessions.len(),
        "version": env!("CARGO_PKG_VERSION"),
    }))
}
