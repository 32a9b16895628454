//! What the client does for the 2026-07-28 (stateless) revision: `server/discover`, the
//! `subscriptions/listen` stream, the `_meta` envelope every request carries, and the
//! unsupported-version error.

use serde_json::{json, Value};

use super::{Call, Established, UpstreamClient, UpstreamError};
use crate::config::Server;
use crate::mcp::{self, method};

impl UpstreamClient {
    /// `server/discover` as a 2026-07-28 client asks it (directly, no session): what a server
    /// that speaks both revisions offers to clients of the newer one.
    pub async fn discover_modern(
        &self,
        server: &Server,
        authorization: Option<&str>,
        traceparent: Option<&str>,
    ) -> Result<Established, UpstreamError> {
        let call = Call {
            traceparent,
            ..Call::direct(server, authorization)
        };
        self.discover(&call).await
    }

    /// A stateless (2026-07-28) upstream's `server/discover`, as the "session" of that upstream.
    pub(super) async fn discover(&self, call: &Call<'_>) -> Result<Established, UpstreamError> {
        let id = self.next_id();
        let body = json!({
            "jsonrpc": "2.0",
            "id": id,
            "method": method::SERVER_DISCOVER,
            "params": {"_meta": modern_envelope()},
        });
        let call = Call {
            session: None,
            protocol_version: Some(mcp::MODERN_VERSION),
            mcp_method: Some(method::SERVER_DISCOVER),
            mcp_name: None,
            ..*call
        };
        let (result, _) = self.exchange(&call, id, &body).await?;
        Ok(Established {
            session_id: None,
            protocol_version: mcp::MODERN_VERSION.to_owned(),
            result,
        })
    }

    /// Opens a `subscriptions/listen` stream (2026-07-28) to the server, asking for every list
    /// change. `None` when the server answers something other than a stream (it has none).
    pub async fn listen_modern(
        &self,
        server: &Server,
        authorization: Option<&str>,
    ) -> Result<Option<reqwest::Response>, UpstreamError> {
        let notifications = json!({
            "toolsListChanged": true, "promptsListChanged": true, "resourcesListChanged": true});
        self.listen_for(server, authorization, notifications, json!({}))
            .await
    }

    /// Opens a `subscriptions/listen` stream (2026-07-28) with the `notifications` filter given,
    /// declaring `capabilities` as the client's. `None` when the server answers something other
    /// than a stream (it has none, or refused the filter).
    pub async fn listen_for(
        &self,
        server: &Server,
        authorization: Option<&str>,
        notifications: Value,
        capabilities: Value,
    ) -> Result<Option<reqwest::Response>, UpstreamError> {
        let mut meta = modern_envelope();
        meta[mcp::modern::META_CLIENT_CAPABILITIES] = capabilities;
        let params = json!({"notifications": notifications, "_meta": meta});
        let body = json!({"jsonrpc": "2.0", "id": self.next_id(),
            "method": method::SUBSCRIPTIONS_LISTEN, "params": params});
        let call = Call {
            protocol_version: Some(mcp::MODERN_VERSION),
            mcp_method: Some(method::SUBSCRIPTIONS_LISTEN),
            ..Call::direct(server, authorization)
        };
        let resp = self.post(&call, &body).await?;
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        // An SSE stream, or (as the conformance suite's reference server sends it) JSON
        // messages one per line under a JSON content type.
        let readable = mcp::is_event_stream_content_type(content_type)
            || mcp::is_json_content_type(content_type);
        Ok((resp.status().as_u16() == 200 && readable).then_some(resp))
    }
}

/// The `_meta` envelope every stateless (2026-07-28) request carries: who is asking, how.
pub fn modern_envelope() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": mcp::MODERN_VERSION,
        "io.modelcontextprotocol/clientInfo": {"name": "mcp-router", "version": env!("CARGO_PKG_VERSION")},
        "io.modelcontextprotocol/clientCapabilities": {},
    })
}

/// The versions a -32022 error body names.
pub(super) fn unsupported_version(body: &[u8]) -> Option<UpstreamError> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let e = v.get("error")?;
    if e.get("code")?.as_i64()? != mcp::code::UNSUPPORTED_PROTOCOL_VERSION {
        return None;
    }
    let supported = e
        .pointer("/data/supported")?
        .as_array()?
        .iter()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect();
    Some(UpstreamError::UnsupportedVersion { supported })
}
