//! `/healthz`, `/readyz` and `/status`.

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::Broker;

pub(super) async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready once a valid config is loaded (before any port is bound) until shutdown begins.
pub(super) async fn readyz(State(b): State<Arc<Broker>>) -> Response {
    if *b.ready.borrow() {
        "ready\n".into_response()
    } else {
        (http::StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    }
}

/// Per-upstream discovery state and counts, conflicts, and session counts: JSON, or a small HTML
/// page when a browser asks for one.
pub(super) async fn status(State(b): State<Arc<Broker>>, headers: HeaderMap) -> Response {
    let mut doc = status_json(&b);
    super::tokens_page::add_to_status(&b, &mut doc).await;
    let wants_html = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if wants_html {
        Html(status_html(&doc)).into_response()
    } else {
        Json(doc).into_response()
    }
}

fn status_json(b: &Broker) -> Value {
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
    json!({
        "servers": servers,
        "disabledServers": disabled,
        "conflicts": catalog.conflicts,
        "tools": catalog.tool_list.len(),
        "upstreamSessions": b.sessions.len(),
        "version": env!("CARGO_PKG_VERSION"),
    })
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn status_html(doc: &Value) -> String {
    let text = |v: &Value| escape(v.as_str().unwrap_or(""));
    let mut rows = String::new();
    for s in doc["servers"].as_array().into_iter().flatten() {
        let health = &s["health"];
        let state = health["state"].as_str().unwrap_or("");
        let error = health["last_error"]
            .as_str()
            .map(escape)
            .unwrap_or_default();
        rows.push_str(&format!(
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td class=\"{state}\">{state}</td><td>{}</td><td>{}</td><td>{}</td><td>{error}</td></tr>\n",
            text(&s["name"]),
            text(&s["prefix"]),
            text(&s["url"]),
            s["tools"], s["prompts"], s["resources"],
        ));
    }
    let conflicts: String = doc["conflicts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| format!("<li>{}</li>", text(c)))
        .collect();
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>mcp-router status</title><style>\
         body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px}}\
         .ready{{color:green}}.failing{{color:orange}}.dropped,.pending{{color:#a00}}</style></head><body>\
         <h1>mcp-router {}</h1><p>{} tools from {} servers; {} upstream sessions.</p>\
         <table><tr><th>server</th><th>prefix</th><th>url</th><th>state</th><th>tools</th><th>prompts</th><th>resources</th><th>last error</th></tr>\n{rows}</table>\
         <h2>Conflicts</h2><ul>{conflicts}</ul></body></html>",
        text(&doc["version"]),
        doc["tools"],
        doc["servers"].as_array().map_or(0, Vec::len),
        doc["upstreamSessions"],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_html_page_shows_each_servers_state_and_last_error_escaped() {
        let health = serde_json::to_value(crate::catalog::Health::Failing {
            attempts: 3,
            last_error: "refused <tls>".into(),
        })
        .expect("json");
        let doc = serde_json::json!({
            "servers": [{"name": "ns/a", "prefix": "a_", "url": "https://a/mcp",
                         "health": health, "tools": 0, "prompts": 0, "resources": 0}],
            "conflicts": [],
        });
        let html = status_html(&doc);
        assert!(html.contains("refused &lt;tls&gt;"), "{html}");
        assert!(html.contains("class=\"failing\""), "{html}");
    }
}
