//! A minimal MCP server for benchmarks: answers `initialize`, `tools/list` and `tools/call` of one
//! tool (`echo`) in microseconds, so that a benchmark measures the gateway, not the upstream.
//!
//! `cargo run --release --example bench_upstream -- 127.0.0.1:PORT`

#![forbid(unsafe_code)]

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

fn reply(id: &serde_json::value::RawValue, result: &str) -> Response {
    let body = format!(r#"{{"jsonrpc":"2.0","id":{},"result":{result}}}"#, id.get());
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn mcp(_headers: HeaderMap, body: Bytes) -> Response {
    let Ok(msg) = mcp_router::jsonrpc::parse(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let Some(id) = msg.id else {
        return StatusCode::ACCEPTED.into_response();
    };
    match msg.method.as_deref().unwrap_or("") {
        "initialize" => {
            let mut r = reply(
                id,
                r#"{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"bench-upstream","version":"1"}}"#,
            );
            r.headers_mut()
                .insert("mcp-session-id", HeaderValue::from_static("bench-session"));
            r
        }
        "tools/list" => reply(
            id,
            r#"{"tools":[{"name":"echo","description":"echo","inputSchema":{"type":"object"}}]}"#,
        ),
        "tools/call" => reply(id, r#"{"content":[{"type":"text","text":"ok"}]}"#),
        _ => reply(id, "{}"),
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3101".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("bench upstream listening on {}", listener.local_addr()?);
    axum::serve(listener, axum::Router::new().route("/mcp", post(mcp))).await
}
