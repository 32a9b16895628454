//! In-process conversations: the [`RouterService`](super::service::RouterService) served by tonic
//! over a `tokio::io::duplex` pipe, a fake Envoy peer sending `ProcessingRequest`s and reading the
//! `ProcessingResponse`s, against a [`Router`] whose upstream sessions are seeded, so that no
//! upstream is called. Sub-second; the tests through the real Envoy (tests/integration) stay the
//! truth about Envoy itself.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::ext_proc::v3::{
    body_mutation, external_processor_client::ExternalProcessorClient, processing_request,
    processing_response::Response as Answer, HttpBody, HttpHeaders, ProcessingRequest,
    ProcessingResponse,
};
use tokio::sync::{mpsc, watch};
use tonic::transport::{Channel, Endpoint, Server};

use super::{origin, Router, RouterSettings};
use crate::auth::session::SessionKeys;
use crate::catalog::{Catalog, Health, ServerLists};
use crate::config::Config;
use crate::telemetry::Metrics;
use crate::upstream::{Established, InitLimits, SessionKey, UpstreamClient, UpstreamSessions};

mod asks;
mod edges;
mod reload;
mod streams;
mod tasks;

const KEY: &[u8] = b"conversation test key, 32 bytes!";

/// A router served in process, and the handles a test turns.
pub(super) struct Gateway {
    pub(super) router: Arc<Router>,
    config: watch::Sender<Arc<Config>>,
    client: ExternalProcessorClient<Channel>,
}

fn config(yaml: &str) -> Arc<Config> {
    Arc::new(Config::from_yaml(yaml).expect("config"))
}

/// Servers `ns/kube` (tools `pods_list`, `secrets_list`, prefix `kube_`) and `ns/ev`.
pub(super) const SERVERS: &str = r#"
servers:
  - {name: ns/kube, url: 'http://127.0.0.1:9/mcp', hostname: kube.local, prefix: kube_}
  - {name: ns/ev, url: 'http://127.0.0.1:9/mcp', hostname: ev.local, prefix: ev_}
"#;

fn catalog(config: &Config) -> Catalog {
    let tools = |names: &[&str]| {
        names
            .iter()
            .map(|n| serde_json::json!({"name": n}))
            .collect()
    };
    let mut d = HashMap::new();
    for (server, names) in [
        ("ns/kube", &["pods_list", "secrets_list"][..]),
        ("ns/ev", &["echo"][..]),
    ] {
        d.insert(
            server.into(),
            ServerLists {
                tools: tools(names),
                health: Health::Ready,
                ..Default::default()
            },
        );
    }
    Catalog::build(config, &d)
}

impl Gateway {
    pub(super) async fn start(yaml: &str) -> Gateway {
        Gateway::start_with(yaml, crate::router::response_phase::Mode::Always).await
    }

    /// With `--response-phase` set to `response_phase`.
    pub(super) async fn start_with(
        yaml: &str,
        response_phase: crate::router::response_phase::Mode,
    ) -> Gateway {
        let config_now = config(yaml);
        let (config_tx, config_rx) = watch::channel(config_now.clone());
        let (_catalog_tx, catalog_rx) = watch::channel(Arc::new(catalog(&config_now)));
        let metrics = Arc::new(Metrics::new());
        let router = Arc::new(Router {
            config: config_rx,
            catalog: catalog_rx,
            sessions: Arc::new(UpstreamSessions::new(1000, Duration::from_secs(600))),
            keys: Arc::new(SessionKeys::new(KEY, Duration::from_secs(3600))),
            client: Arc::new(UpstreamClient::new()),
            gatekeeper: Arc::new(crate::auth::Gatekeeper::new(
                None,
                false,
                Default::default(),
                None,
            )),
            updates: Arc::new(crate::upstream::updates::Updates::new(None)),
            init_limits: Arc::new(InitLimits::new(4)),
            settings: RouterSettings {
                public_host: "gw.example.com".into(),
                private_host: None,
                origins: origin::AllowedOrigins::new("gw.example.com", &[]),
                max_body: 64 * 1024,
                init_timeout: Duration::from_millis(500),
                processing_budget: Duration::from_secs(2),
                enable_a2a: false,
                response_phase,
            },
            metrics,
            answer_kinds: Default::default(),
            user_tokens: None,
        });
        let (near, far) = tokio::io::duplex(1 << 16);
        let service = super::processor_server::ProcessorServer::new(
            super::service::RouterService::new(router.clone()),
        );
        tokio::spawn(
            Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::once(Ok::<_, std::io::Error>(far))),
        );
        let mut near = Some(near);
        let channel = Endpoint::try_from("http://in-process")
            .expect("endpoint")
            .connect_with_connector(tower::service_fn(move |_| {
                let io = near.take();
                async move {
                    io.map(hyper_util::rt::TokioIo::new)
                        .ok_or_else(|| std::io::Error::other("one connection only"))
                }
            }))
            .await
            .expect("connect");
        Gateway {
            router,
            config: config_tx,
            client: ExternalProcessorClient::new(channel),
        }
    }

    /// The config and catalog reloaded (discovery is not running: the catalog follows at once).
    pub(super) fn reload(&self, yaml: &str) {
        self.config.send_replace(config(yaml));
    }

    /// A gateway session for `owner` (a verified caller's binding), its token.
    pub(super) fn session(&self, owner: Option<&str>) -> (String, Arc<str>) {
        let (token, session) = self.router.keys.mint_for(None, owner).expect("mint");
        (token, session.jti)
    }

    /// An upstream session of gateway session `jti` with `server`, as if initialized.
    pub(super) async fn seed(&self, jti: &Arc<str>, server: &str, upstream_id: &str) {
        self.seed_as(jti, server, Some(upstream_id), "2025-11-25")
            .await;
    }

    /// Like [`Gateway::seed`], with the upstream's session id (`None`: a stateless upstream)
    /// and protocol version.
    pub(super) async fn seed_as(
        &self,
        jti: &Arc<str>,
        server: &str,
        upstream_id: Option<&str>,
        version: &str,
    ) {
        self.router
            .sessions
            .get_or_create(
                SessionKey::new(jti.clone(), server.into()),
                Duration::from_secs(600),
                async {
                    Ok(Established {
                        session_id: upstream_id.map(str::to_owned),
                        protocol_version: version.into(),
                        result: serde_json::Value::Null,
                    })
                },
            )
            .await
            .expect("seed");
    }

    /// One ext_proc stream, as Envoy opens one per HTTP request.
    pub(super) async fn open(&mut self) -> Envoy {
        let (tx, rx) = mpsc::channel(4);
        let responses = self
            .client
            .process(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .expect("process")
            .into_inner();
        Envoy { tx, responses }
    }
}

/// The fake Envoy side of one stream.
pub(super) struct Envoy {
    tx: mpsc::Sender<ProcessingRequest>,
    responses: tonic::Streaming<ProcessingResponse>,
}

/// The request headers of a stateless (2026-07-28) POST naming `method` and `name`.
pub(super) fn stateless<'a>(method: &'a str, name: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        (":method", "POST"),
        (":path", "/mcp"),
        ("content-type", "application/json"),
        ("mcp-protocol-version", crate::mcp::MODERN_VERSION),
        ("mcp-method", method),
        ("mcp-name", name),
    ]
}

pub(super) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    HeaderMap {
        headers: pairs
            .iter()
            .map(|(k, v)| HeaderValue {
                key: (*k).to_owned(),
                raw_value: v.as_bytes().to_vec(),
                ..Default::default()
            })
            .collect(),
    }
}

impl Envoy {
    async fn ask(&mut self, request: processing_request::Request) -> Option<ProcessingResponse> {
        self.tx
            .send(ProcessingRequest {
                request: Some(request),
                ..Default::default()
            })
            .await
            .expect("send");
        tokio::time::timeout(Duration::from_secs(5), self.responses.message())
            .await
            .expect("an answer within 5 s")
            .expect("a stream without error")
    }

    pub(super) async fn request_headers(
        &mut self,
        pairs: &[(&str, &str)],
        end_of_stream: bool,
    ) -> ProcessingResponse {
        self.ask(processing_request::Request::RequestHeaders(HttpHeaders {
            headers: Some(headers(pairs)),
            end_of_stream,
            ..Default::default()
        }))
        .await
        .expect("an answer to the request headers")
    }

    pub(super) async fn request_body(&mut self, body: &str) -> ProcessingResponse {
        self.ask(processing_request::Request::RequestBody(HttpBody {
            body: body.as_bytes().to_vec(),
            end_of_stream: true,
            ..Default::default()
        }))
        .await
        .expect("an answer to the request body")
    }

    pub(super) async fn response_headers(&mut self, pairs: &[(&str, &str)]) -> ProcessingResponse {
        self.ask(processing_request::Request::ResponseHeaders(HttpHeaders {
            headers: Some(headers(pairs)),
            ..Default::default()
        }))
        .await
        .expect("an answer to the response headers")
    }

    pub(super) async fn response_body(
        &mut self,
        chunk: &str,
        end_of_stream: bool,
    ) -> ProcessingResponse {
        self.ask(processing_request::Request::ResponseBody(HttpBody {
            body: chunk.as_bytes().to_vec(),
            end_of_stream,
            ..Default::default()
        }))
        .await
        .expect("an answer to the response body")
    }

    /// Whether the router ends the stream by itself, Envoy's side still open (no later phase
    /// matters to it, and Envoy would otherwise send one).
    pub(super) async fn ends_unprompted(&mut self) -> bool {
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.responses.message()).await,
            Ok(Ok(None))
        )
    }

    /// Whether the router still answers on a stream whose last phase it has answered (it leaves
    /// such a stream for Envoy to end): a response body Envoy was not asked for, passed on.
    pub(super) async fn still_answers(&mut self) -> bool {
        let b = self.response_body("", true).await;
        matches!(b.response, Some(Answer::ResponseBody(_)))
            && super::conversation_tests::streams::new_body(&b).is_none()
    }

    /// Whether the stream ends once Envoy has ended its side (as Envoy does when the request is
    /// over), whether or not the router ended it first.
    pub(super) async fn ended(&mut self) -> bool {
        drop(std::mem::replace(&mut self.tx, mpsc::channel(1).0));
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.responses.message()).await,
            Ok(Ok(None))
        )
    }
}

/// The headers an answer sets, by name (its `raw_value`).
pub(super) fn set_headers(r: &ProcessingResponse) -> HashMap<String, String> {
    let mutation = match &r.response {
        Some(Answer::RequestHeaders(h)) | Some(Answer::ResponseHeaders(h)) => {
            h.response.as_ref().and_then(|c| c.header_mutation.as_ref())
        }
        Some(Answer::RequestBody(b)) | Some(Answer::ResponseBody(b)) => {
            b.response.as_ref().and_then(|c| c.header_mutation.as_ref())
        }
        Some(Answer::ImmediateResponse(i)) => i.headers.as_ref(),
        _ => None,
    };
    mutation
        .into_iter()
        .flat_map(|m| &m.set_headers)
        .filter_map(|h| h.header.as_ref())
        .map(|h| {
            (
                h.key.clone(),
                String::from_utf8_lossy(&h.raw_value).into_owned(),
            )
        })
        .collect()
}

/// An immediate answer's status and JSON body; `None` for any other answer.
pub(super) fn immediate(r: &ProcessingResponse) -> Option<(u16, serde_json::Value)> {
    match &r.response {
        Some(Answer::ImmediateResponse(i)) => Some((
            i.status
                .as_ref()
                .map_or(0, |s| u16::try_from(s.code).unwrap_or(0)),
            serde_json::from_slice(&i.body).unwrap_or_default(),
        )),
        _ => None,
    }
}

pub(super) fn call(id: u32, tool: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#
    )
}

pub(super) fn post(session: &str) -> Vec<(&'static str, String)> {
    vec![
        (":method", "POST".into()),
        (":path", "/mcp".into()),
        ("content-type", "application/json".into()),
        ("mcp-protocol-version", "2025-11-25".into()),
        ("mcp-session-id", session.into()),
    ]
}

pub(super) fn pairs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[tokio::test]
async fn a_call_on_a_seeded_session_goes_to_its_upstream_renamed() {
    let mut gw = Gateway::start(SERVERS).await;
    let (token, jti) = gw.session(None);
    gw.seed(&jti, "ns/kube", "up-1").await;
    let mut envoy = gw.open().await;
    let h = envoy.request_headers(&pairs(&post(&token)), false).await;
    assert_eq!(immediate(&h), None);
    let b = envoy.request_body(&call(1, "kube_pods_list")).await;
    let set = set_headers(&b);
    assert_eq!(
        set.get(":authority").map(String::as_str),
        Some("kube.local")
    );
    assert_eq!(set.get("mcp-session-id").map(String::as_str), Some("up-1"));
    assert_eq!(
        set.get("x-mcp-toolname").map(String::as_str),
        Some("pods_list")
    );
    let Some(Answer::RequestBody(body)) = &b.response else {
        panic!("a body answer: {b:?}");
    };
    let new_body = match body
        .response
        .as_ref()
        .and_then(|c| c.body_mutation.as_ref())
        .and_then(|m| m.mutation.as_ref())
    {
        Some(body_mutation::Mutation::Body(b)) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("the body renamed: {other:?}"),
    };
    assert!(new_body.contains(r#""name":"pods_list""#), "{new_body}");
    // The upstream answers: its session id goes back as the gateway's.
    let r = envoy
        .response_headers(&[(":status", "200"), ("content-type", "application/json")])
        .await;
    assert_eq!(set_headers(&r).get("mcp-session-id"), Some(&token));
    assert!(envoy.ended().await);
}

/// Whether an answer asks Envoy to match the route again.
fn clears_route(r: &ProcessingResponse) -> bool {
    match &r.response {
        Some(Answer::RequestHeaders(h)) => h.response.as_ref().is_some_and(|c| c.clear_route_cache),
        Some(Answer::RequestBody(b)) => b.response.as_ref().is_some_and(|c| c.clear_route_cache),
        _ => false,
    }
}

#[tokio::test]
async fn a_post_is_routed_once_by_its_bodys_answer_to_the_upstream_or_the_broker() {
    let mut gw = Gateway::start(SERVERS).await;
    let (token, jti) = gw.session(None);
    gw.seed(&jti, "ns/kube", "up-1").await;
    // The client names an upstream's host: neither answer keeps it.
    let mut aimed = post(&token);
    aimed.push((":authority", "kube.local".into()));
    for (body, host) in [
        (call(1, "kube_pods_list"), "kube.local"),
        (
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#.to_owned(),
            "gw.example.com",
        ),
    ] {
        let mut envoy = gw.open().await;
        let h = envoy.request_headers(&pairs(&aimed), false).await;
        assert_eq!(immediate(&h), None);
        // Envoy buffers the body and forwards nothing before its answer: no route yet.
        assert_eq!(set_headers(&h).get(":authority"), None, "{h:?}");
        assert!(!clears_route(&h), "{h:?}");
        let b = envoy.request_body(&body).await;
        assert_eq!(
            set_headers(&b).get(":authority").map(String::as_str),
            Some(host),
            "{body}"
        );
        assert!(clears_route(&b), "{body}: {b:?}");
    }
}

#[tokio::test]
async fn refusals_carry_the_requests_id_and_end_the_stream() {
    let mut gw = Gateway::start(SERVERS).await;
    let (token, _) = gw.session(None);
    let mut envoy = gw.open().await;
    envoy.request_headers(&pairs(&post(&token)), false).await;
    let b = envoy.request_body(&call(9, "nope")).await;
    let (status, body) = immediate(&b).expect("an immediate answer");
    assert_eq!((status, &body["id"]), (200, &serde_json::json!(9)));
    assert_eq!(body["error"]["code"], crate::mcp::code::INVALID_PARAMS);
    assert!(envoy.ends_unprompted().await);

    // No session: 400 with the id, from the one reply module.
    let mut envoy = gw.open().await;
    let mut h = post("");
    h.retain(|(k, _)| *k != "mcp-session-id");
    envoy.request_headers(&pairs(&h), false).await;
    let (status, body) = immediate(&envoy.request_body(&call(3, "kube_pods_list")).await)
        .expect("an immediate answer");
    assert_eq!((status, &body["id"]), (400, &serde_json::json!(3)));
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("Mcp-Session-Id")));
}

#[tokio::test]
async fn an_upstream_that_lost_the_session_is_forgotten_and_the_client_told_to_retry() {
    let mut gw = Gateway::start(SERVERS).await;
    let (token, jti) = gw.session(None);
    gw.seed(&jti, "ns/kube", "up-1").await;
    let mut envoy = gw.open().await;
    envoy.request_headers(&pairs(&post(&token)), false).await;
    envoy.request_body(&call(4, "kube_pods_list")).await;
    let r = envoy.response_headers(&[(":status", "404")]).await;
    let (status, body) = immediate(&r).expect("an immediate answer");
    assert_eq!((status, &body["id"]), (502, &serde_json::json!(4)));
    let key = SessionKey::new(jti.clone(), "ns/kube".into());
    assert!(gw.router.sessions.get(&key).await.is_none());
}
