//! HTTP client to upstream MCP servers (Streamable HTTP, 2025 protocol generation).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use super::hairpin::PrivateHost;
use crate::config::Server;
use crate::mcp::{self, header, method};

mod answer;
mod modern;
mod tls;

use answer::{
    into_result, read_bounded, read_sse_response, transport_error, HAIRPIN_UNTRUSTED_HINT,
    UNTRUSTED_HINT,
};
pub use modern::modern_envelope;
use modern::unsupported_version;
use tls::builder;

/// Why an upstream exchange failed. None of these carries a token or a body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot reach upstream: {0}")]
    Unreachable(String),
    #[error("upstream did not answer in time")]
    Timeout,
    #[error("{limit} initializes to this upstream are already in progress")]
    Busy { limit: usize },
    #[error("initializes of this session kept being abandoned by their callers")]
    Abandoned,
    #[error("upstream answered HTTP {status}")]
    Status { status: u16 },
    #[error("upstream no longer knows the session")]
    SessionGone,
    #[error("upstream answered something that is not MCP: {0}")]
    Protocol(String),
    #[error("upstream error {code}: {message}")]
    Rpc { code: i64, message: String },
    #[error("cannot get a token for the upstream: {0}")]
    Token(String),
    #[error("upstream does not speak this protocol version (it speaks {supported:?})")]
    UnsupportedVersion { supported: Vec<String> },
}

/// An initialized upstream session.
#[derive(Debug, Clone, PartialEq)]
pub struct Established {
    /// `None` for servers that run without sessions.
    pub session_id: Option<String>,
    pub protocol_version: String,
    pub result: Value,
}

/// Where an initialize is sent.
#[derive(Debug, Clone)]
pub enum Via {
    /// Straight to the server's URL.
    Direct,
    /// Back through the gateway (`--mcp-gateway-private-host`, see [`PrivateHost::url`]) with a
    /// signed hairpin key, so that gateway policies apply to the initialize too, and with the
    /// end-to-end headers of the client's request that triggered it (see [`hairpin_headers`]).
    Gateway {
        private_host: PrivateHost,
        key: String,
        client_headers: reqwest::header::HeaderMap,
    },
}

/// The headers of a client's request that go with the upstream initialize it triggers when
/// that is sent back through the gateway: those [`header::goes_on_hairpin`] lets through, in
/// order, repeated ones kept; a name or value HTTP does not allow is left out.
pub fn hairpin_headers<'a>(
    client: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> reqwest::header::HeaderMap {
    use reqwest::header::{HeaderName, HeaderValue};
    let mut out = reqwest::header::HeaderMap::new();
    for (name, value) in client {
        let name = name.to_ascii_lowercase();
        if !header::goes_on_hairpin(&name) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            out.append(n, v);
        }
    }
    out
}

/// Adds the client's headers to `ours`, every value of each, except under the names `ours`
/// already has.
fn add_client_headers(ours: &mut reqwest::header::HeaderMap, client: &reqwest::header::HeaderMap) {
    let set: Vec<reqwest::header::HeaderName> = ours.keys().cloned().collect();
    for (name, value) in client {
        if !set.contains(name) {
            ours.append(name.clone(), value.clone());
        }
    }
}

/// Shared HTTP clients (one per distinct set of trusted CA bundles and way of connecting) and a
/// request id counter.
///
/// What a connection trusts, besides the public (webpki) roots: the `--gateway-ca-cert` file
/// always; the config's `gatewayCACertPEM` always; a server's own `caCert` on connections to
/// that server (not on the hairpin, which goes to the gateway).
pub struct UpstreamClient {
    /// No CA bundle of the config: the public roots and `--gateway-ca-cert`.
    default: reqwest::Client,
    /// `--gateway-ca-cert`, parsed.
    gateway_flag_ca: Vec<reqwest::Certificate>,
    with_ca: Mutex<HashMap<ClientKey, reqwest::Client>>,
    next_id: AtomicU64,
    user_agent: String,
}

/// What tells one shared HTTP client from another.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    server_ca: Option<Arc<str>>,
    gateway_ca: Option<Arc<str>>,
    /// Every connection goes to this private host (a TLS hairpin).
    pinned: Option<PrivateHost>,
}

impl Default for UpstreamClient {
    fn default() -> Self {
        Self::new()
    }
}

impl UpstreamClient {
    /// A client trusting the public roots (and the config's CA bundles where they apply).
    pub fn new() -> UpstreamClient {
        let user_agent = format!("mcp-router/{}", env!("CARGO_PKG_VERSION"));
        UpstreamClient {
            default: builder(&user_agent).build().unwrap_or_default(),
            gateway_flag_ca: Vec::new(),
            with_ca: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            user_agent,
        }
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// `initialize` + `notifications/initialized`, declaring no client capabilities.
    pub async fn initialize(
        &self,
        server: &Server,
        via: &Via,
        authorization: Option<&str>,
        protocol_version: &str,
        traceparent: Option<&str>,
    ) -> Result<Established, UpstreamError> {
        self.initialize_for(
            server,
            via,
            authorization,
            protocol_version,
            traceparent,
            None,
        )
        .await
    }

    /// `initialize` + `notifications/initialized` on behalf of a client, declaring the client
    /// capabilities the gateway relays for it (`capabilities`, a JSON object).
    pub async fn initialize_for(
        &self,
        server: &Server,
        via: &Via,
        authorization: Option<&str>,
        protocol_version: &str,
        traceparent: Option<&str>,
        capabilities: Option<&str>,
    ) -> Result<Established, UpstreamError> {
        let mut capabilities: Value = capabilities
            .and_then(|c| serde_json::from_str(c).ok())
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({}));
        if let Some(c) = capabilities.as_object_mut() {
            c.retain(|k, _| mcp::RELAYED_CLIENT_CAPABILITIES.contains(&k.as_str()));
        }
        let id = self.next_id();
        let body = json!({
            "jsonrpc": "2.0",
            "id": id,
            "method": method::INITIALIZE,
            "params": {
                "protocolVersion": protocol_version,
                "capabilities": capabilities,
                "clientInfo": {"name": "mcp-router", "version": env!("CARGO_PKG_VERSION")},
            }
        });
        let call = Call {
            via,
            traceparent,
            ..Call::direct(server, authorization)
        };
        let (result, session_id) = match self.exchange(&call, id, &body).await {
            Err(UpstreamError::UnsupportedVersion { supported })
                if supported.iter().any(|v| mcp::is_modern(Some(v))) =>
            {
                // A server of the stateless generation only: no session to open; what it
                // offers comes from server/discover.
                return self.discover(&call).await;
            }
            other => other?,
        };
        let negotiated = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or(protocol_version)
            .to_owned();
        let notify = Call {
            session: session_id.as_deref(),
            protocol_version: Some(&negotiated),
            ..call
        };
        self.notify(&notify, method::INITIALIZED).await?;
        Ok(Established {
            session_id,
            protocol_version: negotiated,
            result,
        })
    }

    /// A request in an established session; returns its `result`.
    pub async fn request(
        &self,
        server: &Server,
        session: &Established,
        authorization: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, UpstreamError> {
        let id = self.next_id();
        let modern = mcp::is_modern(Some(&session.protocol_version));
        let mut params = params;
        if modern {
            if let Some(p) = params.as_object_mut() {
                p.insert("_meta".into(), modern_envelope());
            }
        }
        let name = params
            .get("name")
            .or_else(|| params.get("uri"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let call = Call {
            mcp_method: modern.then_some(method),
            mcp_name: if modern { name.as_deref() } else { None },
            ..Call::direct(server, authorization).in_session(session)
        };
        self.exchange(&call, id, &body).await.map(|(r, _)| r)
    }

    /// Ends an upstream session (DELETE); a server that does not support it is fine.
    pub async fn close(&self, server: &Server, session_id: &str, authorization: Option<&str>) {
        let Ok(client) = self.client(server, &Via::Direct) else {
            return;
        };
        let mut req = client
            .delete(server.url.clone())
            .header(header::SESSION_ID, session_id)
            .timeout(Duration::from_secs(5));
        if let Some(a) = authorization {
            req = req.header(header::AUTHORIZATION, a);
        }
        let _ = req.send().await;
    }

    /// Opens the server's GET stream in a session, for its notifications. `None` when the server
    /// offers no stream (405).
    pub async fn open_stream(
        &self,
        server: &Server,
        session: &Established,
        authorization: Option<&str>,
    ) -> Result<Option<reqwest::Response>, UpstreamError> {
        if mcp::is_modern(Some(&session.protocol_version)) {
            // Stateless servers have no GET stream (2026-07-28 has subscriptions/listen).
            return Ok(None);
        }
        let client = self.client(server, &Via::Direct)?;
        let mut req = client
            .get(server.url.clone())
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .header(header::PROTOCOL_VERSION, &session.protocol_version);
        if let Some(id) = &session.session_id {
            req = req.header(header::SESSION_ID, id);
        }
        if let Some(a) = authorization {
            req = req.header(header::AUTHORIZATION, a);
        }
        let resp = req.send().await.map_err(transport_error)?;
        match resp.status().as_u16() {
            200 => Ok(Some(resp)),
            404 if session.session_id.is_some() => Err(UpstreamError::SessionGone),
            _ => Ok(None),
        }
    }

    /// A notification in an established session.
    pub async fn notify_in(
        &self,
        server: &Server,
        session: &Established,
        authorization: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<(), UpstreamError> {
        let body = json!({"jsonrpc": "2.0", "method": method, "params": params});
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        self.send_in(server, session, authorization, bytes).await
    }

    /// A message (raw JSON-RPC, e.g. the answer to the upstream's request) in an established
    /// session.
    pub async fn send_in(
        &self,
        server: &Server,
        session: &Established,
        authorization: Option<&str>,
        message: Vec<u8>,
    ) -> Result<(), UpstreamError> {
        let call = Call::direct(server, authorization).in_session(session);
        let status = self.post_bytes(&call, message).await?.status().as_u16();
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(UpstreamError::Status { status })
        }
    }

    async fn notify(&self, call: &Call<'_>, method: &str) -> Result<(), UpstreamError> {
        let body = json!({"jsonrpc": "2.0", "method": method});
        let resp = self.post(call, &body).await?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(UpstreamError::Status { status })
        }
    }

    async fn post(
        &self,
        call: &Call<'_>,
        body: &Value,
    ) -> Result<reqwest::Response, UpstreamError> {
        self.post_bytes(call, serde_json::to_vec(body).unwrap_or_default())
            .await
    }

    async fn post_bytes(
        &self,
        call: &Call<'_>,
        body: Vec<u8>,
    ) -> Result<reqwest::Response, UpstreamError> {
        let client = self.client(call.server, call.via)?;
        let (url, hairpin) = match call.via {
            Via::Direct => (call.server.url.clone(), None),
            Via::Gateway {
                private_host,
                key,
                client_headers,
            } => {
                let url = private_host
                    .url(&call.server.hostname, &call.server.path)
                    .map_err(UpstreamError::Unreachable)?;
                (url, Some((key.as_str(), client_headers)))
            }
        };
        let mut req = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                reqwest::header::ACCEPT,
                "application/json, text/event-stream",
            )
            .header(
                header::PROTOCOL_VERSION,
                call.protocol_version.unwrap_or(mcp::LATEST_VERSION),
            )
            .body(body);
        if let Some(s) = call.session {
            req = req.header(header::SESSION_ID, s);
        }
        if let Some(a) = call.authorization {
            req = req.header(header::AUTHORIZATION, a);
        }
        if let Some(t) = call.traceparent {
            req = req.header("traceparent", t);
        }
        if let Some(m) = call.mcp_method {
            req = req.header(header::MCP_METHOD, m);
        }
        if let Some(n) = call.mcp_name {
            req = req.header(header::MCP_NAME, n);
        }
        if let Some((k, _)) = hairpin {
            req = req
                .header(header::X_MCP_ROUTER_KEY, k)
                .header(header::MCP_INIT_HOST, &*call.server.hostname);
        }
        let sent = async {
            let mut request = req.build()?;
            if let Some((_, client_headers)) = hairpin {
                // Last, and only names the router does not set itself: whatever the exclusion
                // list (header::NOT_ON_HAIRPIN) might miss, the router's own value is the one sent.
                add_client_headers(request.headers_mut(), client_headers);
            }
            client.execute(request).await
        };
        sent.await
            .map_err(|e| match (transport_error(e), call.via) {
                // Over TLS the URL names the server, not where the connection went: say it.
                (UpstreamError::Unreachable(why), Via::Gateway { private_host, .. }) => {
                    UpstreamError::Unreachable(format!(
                        "{} (sent back through the gateway at {})",
                        why.replace(UNTRUSTED_HINT, HAIRPIN_UNTRUSTED_HINT),
                        private_host.authority
                    ))
                }
                (other, _) => other,
            })
    }

    /// POSTs a request and reads its response, from a JSON body or an SSE stream.
    async fn exchange(
        &self,
        call: &Call<'_>,
        id: u64,
        body: &Value,
    ) -> Result<(Value, Option<String>), UpstreamError> {
        let resp = self.post(call, body).await?;
        let status = resp.status().as_u16();
        if status == 404 && call.session.is_some() {
            return Err(UpstreamError::SessionGone);
        }
        if status == 400 {
            // A stateless server names the versions it speaks in a -32022 error.
            let bytes = read_bounded(resp).await.unwrap_or_default();
            return Err(unsupported_version(&bytes).unwrap_or(UpstreamError::Status { status }));
        }
        if !(200..300).contains(&status) {
            return Err(UpstreamError::Status { status });
        }
        let session_id = resp
            .headers()
            .get(header::SESSION_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let is_sse = mcp::is_event_stream_content_type(
            resp.headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
        );
        let message = if is_sse {
            read_sse_response(resp, id).await?
        } else {
            let bytes = read_bounded(resp).await?;
            serde_json::from_slice::<Value>(&bytes)
                .map_err(|e| UpstreamError::Protocol(format!("invalid JSON: {e}")))?
        };
        Ok((into_result(message, id)?, session_id))
    }
}

#[derive(Clone, Copy)]
struct Call<'a> {
    server: &'a Server,
    via: &'a Via,
    authorization: Option<&'a str>,
    session: Option<&'a str>,
    protocol_version: Option<&'a str>,
    traceparent: Option<&'a str>,
    /// `Mcp-Method` / `Mcp-Name` (stateless upstreams require them).
    mcp_method: Option<&'a str>,
    mcp_name: Option<&'a str>,
}

impl<'a> Call<'a> {
    /// A message to `server` directly, outside any session, with nothing but `authorization`.
    fn direct(server: &'a Server, authorization: Option<&'a str>) -> Call<'a> {
        Call {
            server,
            via: &Via::Direct,
            authorization,
            session: None,
            protocol_version: None,
            traceparent: None,
            mcp_method: None,
            mcp_name: None,
        }
    }

    /// The same in the established session `session`.
    fn in_session(self, session: &'a Established) -> Call<'a> {
        Call {
            session: session.session_id.as_deref(),
            protocol_version: Some(&session.protocol_version),
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream whose every answer is one SSE event carrying a JSON-RPC result for the
    /// request's id, under `content_type`; a session id on the initialize.
    async fn sse_upstream(content_type: &'static str) -> std::net::SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    // Read one request: headers, then content-length bytes of body.
                    let body = loop {
                        let n = socket.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break buf[end + 4..end + 4 + len].to_vec();
                        }
                    };
                    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let reply = match request.get("id") {
                        Some(id) => {
                            let message = json!({"jsonrpc": "2.0", "id": id, "result": {
                                "protocolVersion": "2025-11-25", "capabilities": {},
                                "serverInfo": {"name": "sse", "version": "1"}}});
                            let event = format!("event: message\ndata: {message}\n\n");
                            format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\nmcp-session-id: s1\r\n\
                                 content-length: {}\r\nconnection: close\r\n\r\n{event}",
                                event.len()
                            )
                        }
                        None => "HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                            .to_owned(),
                    };
                    let _ = socket.write_all(reply.as_bytes()).await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn an_event_stream_answer_is_read_whatever_the_case_of_its_media_type() {
        for content_type in [
            "text/event-stream",
            "Text/Event-Stream; charset=utf-8",
            "TEXT/EVENT-STREAM",
        ] {
            let addr = sse_upstream(content_type).await;
            let config = crate::config::Config::from_yaml(&format!(
                "servers:\n  - name: t/sse\n    url: http://{addr}/mcp\n    hostname: sse.local\n    prefix: s_\n"
            ))
            .unwrap();
            let server = config.server("t/sse").unwrap().clone();
            let established = UpstreamClient::new()
                .initialize(&server, &Via::Direct, None, "2025-11-25", None)
                .await
                .unwrap_or_else(|e| panic!("{content_type}: {e}"));
            assert_eq!(
                established.session_id.as_deref(),
                Some("s1"),
                "{content_type}"
            );
            assert_eq!(
                established.result["serverInfo"]["name"], "sse",
                "{content_type}"
            );
        }
    }

    #[test]
    fn the_routers_own_headers_win_over_any_client_header_of_the_same_name() {
        use reqwest::header::{HeaderMap, HeaderValue};
        let mut ours = HeaderMap::new();
        ours.insert(
            "authorization",
            HeaderValue::from_static("Bearer exchanged"),
        );
        ours.insert(
            "mcp-protocol-version",
            HeaderValue::from_static("2025-11-25"),
        );
        let mut client = HeaderMap::new();
        client.append("authorization", HeaderValue::from_static("Bearer client"));
        client.append(
            "mcp-protocol-version",
            HeaderValue::from_static("1999-01-01"),
        );
        client.append("x-tenant", HeaderValue::from_static("a"));
        client.append("x-tenant", HeaderValue::from_static("b"));
        add_client_headers(&mut ours, &client);
        let all = |n: &str| -> Vec<&str> {
            ours.get_all(n)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect()
        };
        assert_eq!(all("authorization"), ["Bearer exchanged"]);
        assert_eq!(all("mcp-protocol-version"), ["2025-11-25"]);
        assert_eq!(
            all("x-tenant"),
            ["a", "b"],
            "every value of the client's own"
        );
    }

    #[test]
    fn a_hairpin_carries_the_clients_end_to_end_headers_only() {
        let client: &[(&str, &[u8])] = &[
            (":authority", b"mcp.example.com"),
            (":path", b"/mcp"),
            ("authorization", b"Bearer user"),
            ("x-api-key", b"k1"),
            ("cookie", b"a=1"),
            ("cookie", b"b=2"),
            ("X-Tenant", b"acme"),
            ("tracestate", b"vendor=x"),
            ("traceparent", b"00-aa-bb-01"),
            ("x-mcp-toolname", b"spoofed"),
            ("x-mcp-router-key", b"spoofed"),
            ("mcp-session-id", b"gateway-session"),
            ("content-length", b"99"),
            ("x-forwarded-for", b"10.0.0.1"),
            ("x-envoy-retry-on", b"5xx"),
            ("x-bad-value", b"line\nbreak"),
            ("bad name", b"v"),
        ];
        let got = hairpin_headers(client.iter().copied());
        let pairs: Vec<(&str, &str)> = got
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap_or("?")))
            .collect();
        assert_eq!(
            pairs,
            [
                ("x-api-key", "k1"),
                ("cookie", "a=1"),
                ("cookie", "b=2"),
                ("x-tenant", "acme"),
                ("tracestate", "vendor=x"),
            ]
        );
        assert!(hairpin_headers(std::iter::empty()).is_empty());
    }

    #[test]
    fn results_and_errors_are_told_apart() {
        assert_eq!(
            into_result(json!({"jsonrpc":"2.0","id":3,"result":{"a":1}}), 3),
            Ok(json!({"a":1}))
        );
        assert_eq!(
            into_result(
                json!({"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"nope"}}),
                3
            ),
            Err(UpstreamError::Rpc {
                code: -32601,
                message: "nope".into()
            })
        );
        assert!(matches!(
            into_result(json!({"jsonrpc":"2.0","id":4,"result":{}}), 3),
            Err(UpstreamError::Protocol(_))
        ));
        assert!(matches!(
            into_result(json!({"jsonrpc":"2.0","id":3}), 3),
            Err(UpstreamError::Protocol(_))
        ));
    }
}
