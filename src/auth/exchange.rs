//! RFC 8693 token exchange per upstream server, and the client-credentials tokens the gateway
//! uses for its own calls (discovery) to servers that accept only tokens of their audience.
//!
//! Exchanged tokens are cached until shortly before they expire, keyed by a SHA-256 of the
//! subject token and the exchange step (never the token itself); concurrent misses for one key
//! share one request to the token endpoint. A two-step exchange (`via`) caches each step.
//!
//! A request to the token endpoint runs in its own task, bounded only by its own limit
//! ([`HTTP_TIMEOUT`]). A router call waits for it only until the message's [`Deadline`] (the
//! steps of a `via` exchange share what is left of it) and then gets
//! [`ExchangeError::TimedOut`]; the request goes on (and so does the second step of a `via`
//! exchange whose first step the caller gave up on), so that a token endpoint slower than the
//! budget still fills the cache for the caller's next request. A cached token costs no timer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::oidc::{now_secs, reason};
use crate::config::auth::TokenExchange;
use crate::deadline::Deadline;

pub const GRANT_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const TOKEN_TYPE_ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";
/// A token is refreshed this long before it expires.
const MARGIN: Duration = Duration::from_secs(30);
/// Lifetime assumed when the endpoint says nothing and the token is not a readable JWT.
const DEFAULT_TTL: Duration = Duration::from_secs(60);
/// The most one request to a token endpoint may take. The request is bounded by this alone; a
/// caller stops waiting for it at its own deadline.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an exchange failed; safe to show the client (no tokens, no secrets).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    /// The provider refused the caller's token (`invalid_grant`, `invalid_token`): 401.
    #[error("the identity provider at {endpoint} refused the token: {detail}")]
    Rejected { endpoint: String, detail: String },
    /// The caller may not have a token for that audience: 403.
    #[error("the identity provider at {endpoint} denied a token for {audience}: {detail}")]
    Denied {
        endpoint: String,
        audience: String,
        detail: String,
    },
    /// The gateway's own client is misconfigured, or the provider is down: 502.
    #[error("token exchange at {endpoint} failed: {detail}")]
    Failed { endpoint: String, detail: String },
    /// The token endpoint did not answer within its limit or the message's deadline: 504.
    #[error("token exchange at {endpoint} timed out")]
    TimedOut { endpoint: String },
}

impl ExchangeError {
    /// The HTTP status the client gets.
    pub fn status(&self) -> u16 {
        match self {
            ExchangeError::Rejected { .. } => 401,
            ExchangeError::Denied { .. } => 403,
            ExchangeError::Failed { .. } => 502,
            ExchangeError::TimedOut { .. } => 504,
        }
    }
}

#[derive(Debug, Clone)]
struct Issued {
    token: Arc<str>,
    expires: Instant,
}

struct Expiry;

impl moka::Expiry<[u8; 32], Issued> for Expiry {
    fn expire_after_create(&self, _k: &[u8; 32], v: &Issued, now: Instant) -> Option<Duration> {
        Some(v.expires.saturating_duration_since(now))
    }
}

/// Exchanges and caches tokens. A clone shares the cache.
#[derive(Clone)]
pub struct Exchanger {
    http: reqwest::Client,
    cache: moka::future::Cache<[u8; 32], Issued>,
    metrics: Option<Arc<crate::telemetry::Metrics>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize, Default)]
struct OAuthError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

impl Exchanger {
    pub fn new(
        http: reqwest::Client,
        metrics: Option<Arc<crate::telemetry::Metrics>>,
    ) -> Exchanger {
        Exchanger {
            http,
            cache: moka::future::Cache::builder()
                .max_capacity(100_000)
                .expire_after(Expiry)
                .build(),
            metrics,
        }
    }

    /// A token for `step`'s audience in exchange for `subject` (running `step.via` first),
    /// waited for by `deadline`.
    pub async fn exchange(
        &self,
        step: &TokenExchange,
        subject: &str,
        deadline: Deadline,
    ) -> Result<Arc<str>, ExchangeError> {
        let Some(via) = &step.via else {
            return self.one_step(step, subject, deadline).await;
        };
        match self.one_step(via, subject, deadline).await {
            Ok(first) => self.one_step(step, &first, deadline).await,
            // This caller stopped waiting (rather than the request timing out on its own).
            Err(e @ ExchangeError::TimedOut { .. })
                if deadline.expired_at(tokio::time::Instant::now()) =>
            {
                self.finish_in_background(via.clone(), step.clone(), subject.to_owned());
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Completes a `via` exchange whose caller stopped waiting during the first step: its
    /// request goes on anyway, and the second step follows it, so that the caller's next
    /// request finds both cached. These lookups are not the caller's: no metrics.
    fn finish_in_background(&self, via: Arc<TokenExchange>, step: TokenExchange, subject: String) {
        let quiet = Exchanger {
            metrics: None,
            ..self.clone()
        };
        tokio::spawn(async move {
            if let Ok(first) = quiet.one_step(&via, &subject, Deadline::NONE).await {
                // An error here is the next request's to report.
                let _ = quiet.one_step(&step, &first, Deadline::NONE).await;
            }
        });
    }

    async fn one_step(
        &self,
        step: &TokenExchange,
        subject: &str,
        deadline: Deadline,
    ) -> Result<Arc<str>, ExchangeError> {
        let key = cache_key("exchange", step, subject);
        self.cached(key, step, deadline, || {
            let mut form: Vec<(&str, &str)> = vec![
                ("grant_type", GRANT_TOKEN_EXCHANGE),
                ("subject_token", subject),
                ("subject_token_type", TOKEN_TYPE_ACCESS),
                ("requested_token_type", TOKEN_TYPE_ACCESS),
                ("audience", &step.audience),
            ];
            let scope = step.scopes.join(" ");
            if !scope.is_empty() {
                form.push(("scope", &scope));
            }
            let form: Vec<(String, String)> = form
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            request(self.http.clone(), step.clone(), form)
        })
        .await
    }

    /// The gateway's own token for a server's audience (client credentials grant at the
    /// server's token endpoint), for calls made on no user's behalf such as discovery.
    pub async fn service_token(&self, step: &TokenExchange) -> Result<Arc<str>, ExchangeError> {
        let key = cache_key("client_credentials", step, "");
        self.cached(key, step, Deadline::NONE, || {
            let mut form = vec![
                ("grant_type".to_owned(), "client_credentials".to_owned()),
                ("audience".to_owned(), step.audience.clone()),
            ];
            if !step.scopes.is_empty() {
                form.push(("scope".to_owned(), step.scopes.join(" ")));
            }
            request(self.http.clone(), step.clone(), form)
        })
        .await
    }

    /// The cached token of `key`, else one `fetch`ed, waited for by `deadline`. The fetch runs
    /// in its own task (concurrent misses share one), so that it completes and fills the cache
    /// even when every caller waiting for it has given up.
    async fn cached<F, Fut>(
        &self,
        key: [u8; 32],
        step: &TokenExchange,
        deadline: Deadline,
        fetch: F,
    ) -> Result<Arc<str>, ExchangeError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Issued, ExchangeError>> + Send + 'static,
    {
        // A hit: no timer, no request, no task.
        if let Some(issued) = self.cache.get(&key).await {
            if let Some(m) = &self.metrics {
                m.token_cache(true, true);
            }
            return Ok(issued.token);
        }
        let cache = self.cache.clone();
        let fetch = fetch();
        let shared = tokio::spawn(async move {
            let mut fetched = false;
            let r = cache
                .try_get_with(key, async {
                    fetched = true;
                    fetch.await
                })
                .await;
            (r.map(|i| i.token).map_err(|e| (*e).clone()), fetched)
        });
        let endpoint = || step.token_url.to_string();
        let (r, fetched) = match deadline.bound(shared).await {
            Ok(Ok(done)) => done,
            // Its runtime is stopping (or it panicked).
            Ok(Err(_)) => (
                Err(ExchangeError::Failed {
                    endpoint: endpoint(),
                    detail: "the request was stopped".into(),
                }),
                true,
            ),
            // The request goes on and fills the cache for the next caller.
            Err(_) => (
                Err(ExchangeError::TimedOut {
                    endpoint: endpoint(),
                }),
                true,
            ),
        };
        if let Some(m) = &self.metrics {
            m.token_cache(!fetched, r.is_ok());
        }
        r
    }
}

/// One request to `step`'s token endpoint, within [`HTTP_TIMEOUT`]; owns what it needs, to run
/// in its own task.
async fn request(
    client: reqwest::Client,
    step: TokenExchange,
    form: Vec<(String, String)>,
) -> Result<Issued, ExchangeError> {
    let endpoint = step.token_url.to_string();
    let mut req = client
        .post(step.token_url.clone())
        .timeout(HTTP_TIMEOUT)
        .header(http::header::ACCEPT, "application/json");
    req = match &step.client_secret {
        Some(secret) => req.basic_auth(
            form_encode(&step.client_id),
            Some(form_encode(secret.expose())),
        ),
        None => req,
    };
    let mut form = form;
    if step.client_secret.is_none() {
        form.push(("client_id".to_owned(), step.client_id.clone()));
    }
    let resp = req
        .form(&form)
        .send()
        .await
        .map_err(|e| failed(&endpoint, &e))?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.map_err(|e| failed(&endpoint, &e))?;
    if status == 200 {
        let t: TokenResponse =
            serde_json::from_slice(&bytes).map_err(|_| ExchangeError::Failed {
                endpoint: endpoint.clone(),
                detail: "the token endpoint's answer has no access_token".into(),
            })?;
        let ttl = t
            .expires_in
            .map(Duration::from_secs)
            .or_else(|| jwt_ttl(&t.access_token))
            .unwrap_or(DEFAULT_TTL);
        return Ok(Issued {
            token: t.access_token.into(),
            expires: Instant::now() + ttl.saturating_sub(MARGIN),
        });
    }
    let e: OAuthError = serde_json::from_slice(&bytes).unwrap_or_default();
    let detail = match (&*e.error, e.error_description) {
        ("", _) => format!("HTTP {status}"),
        (code, Some(d)) => format!("{code}: {}", printable(&d)),
        (code, None) => printable(code),
    };
    Err(match (status, &*e.error) {
        (_, "invalid_grant" | "invalid_token") => ExchangeError::Rejected { endpoint, detail },
        (_, "unauthorized_client" | "access_denied" | "invalid_target" | "invalid_scope")
        | (403, _) => ExchangeError::Denied {
            endpoint,
            audience: step.audience.clone(),
            detail,
        },
        _ => ExchangeError::Failed { endpoint, detail },
    })
}

/// A request that got no answer: timed out (504) or failed (502).
fn failed(endpoint: &str, e: &reqwest::Error) -> ExchangeError {
    if e.is_timeout() {
        ExchangeError::TimedOut {
            endpoint: endpoint.to_owned(),
        }
    } else {
        ExchangeError::Failed {
            endpoint: endpoint.to_owned(),
            detail: reason(e),
        }
    }
}

/// RFC 6749 §2.3.1: client id and secret are form-encoded before Basic auth.
fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// At most 200 printable characters of a provider's message.
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(200).collect()
}

fn cache_key(kind: &str, step: &TokenExchange, subject: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [
        kind,
        step.token_url.as_str(),
        &step.client_id,
        &step.audience,
        &step.scopes.join(" "),
        subject,
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.finalize().into()
}

/// The time left on a JWT, read without verifying (only to schedule the refresh).
fn jwt_ttl(token: &str) -> Option<Duration> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    let exp = v.get("exp")?.as_u64()?;
    Some(Duration::from_secs(exp.saturating_sub(now_secs())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(aud: &str) -> TokenExchange {
        TokenExchange {
            token_url: reqwest::Url::parse("http://idp/token").expect("url"),
            client_id: "gw".into(),
            client_secret: None,
            audience: aud.into(),
            scopes: vec![],
            via: None,
        }
    }

    #[test]
    fn cache_keys_separate_subjects_audiences_and_grants() {
        let a = cache_key("exchange", &step("s1"), "tok");
        assert_eq!(a, cache_key("exchange", &step("s1"), "tok"));
        assert_ne!(a, cache_key("exchange", &step("s2"), "tok"));
        assert_ne!(a, cache_key("exchange", &step("s1"), "tok2"));
        assert_ne!(a, cache_key("client_credentials", &step("s1"), "tok"));
    }

    #[test]
    fn jwt_lifetimes_are_read_for_scheduling() {
        use base64::Engine;
        let exp = now_secs() + 120;
        let payload =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{{\"exp\":{exp}}}"));
        let ttl = jwt_ttl(&format!("h.{payload}.s")).expect("ttl");
        assert!(ttl <= Duration::from_secs(120) && ttl >= Duration::from_secs(118));
        assert_eq!(jwt_ttl("opaque"), None);
    }

    /// A token endpoint that accepts connections and never answers; counts them.
    async fn silent_endpoint() -> (reqwest::Url, Arc<std::sync::atomic::AtomicUsize>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = reqwest::Url::parse(&format!("http://{}/token", l.local_addr().expect("addr")))
            .expect("url");
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = l.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(socket);
            }
        });
        (url, accepted)
    }

    #[tokio::test]
    async fn the_steps_of_a_via_exchange_share_one_deadline() {
        let (url, _) = silent_endpoint().await;
        let mut first = step("domain-b");
        first.token_url = url.clone();
        let mut te = step("server");
        te.token_url = url.clone();
        te.via = Some(Arc::new(first));
        let x = Exchanger::new(reqwest::Client::new(), None);
        let started = Instant::now();
        let r = x
            .exchange(&te, "subject", Deadline::after(Duration::from_millis(300)))
            .await;
        let took = started.elapsed();
        assert_eq!(
            r,
            Err(ExchangeError::TimedOut {
                endpoint: url.to_string()
            })
        );
        assert!(
            took >= Duration::from_millis(290) && took < Duration::from_secs(2),
            "ended by the deadline, not after a step's {HTTP_TIMEOUT:?}: {took:?}"
        );
        let msg = r.expect_err("timed out").to_string();
        assert!(!msg.contains("subject"), "no token in errors: {msg}");
    }

    #[tokio::test]
    async fn a_caller_sharing_a_slow_exchange_stops_waiting_at_its_own_deadline() {
        let (url, accepted) = silent_endpoint().await;
        let mut te = step("server");
        te.token_url = url.clone();
        let x = Arc::new(Exchanger::new(reqwest::Client::new(), None));
        let first = {
            let (x, te) = (x.clone(), te.clone());
            tokio::spawn(async move {
                x.exchange(&te, "subject", Deadline::after(Duration::from_millis(1500)))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        let second = x
            .exchange(&te, "subject", Deadline::after(Duration::from_millis(200)))
            .await;
        let took = started.elapsed();
        assert!(matches!(second, Err(ExchangeError::TimedOut { .. })));
        assert!(took < Duration::from_millis(1000), "{took:?}");
        assert_eq!(
            accepted.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "the two callers shared one request"
        );
        let first = first.await.expect("join");
        assert!(matches!(first, Err(ExchangeError::TimedOut { .. })));
    }

    /// A token endpoint that answers each request after `delay` with a new token (`t1`, `t2`,
    /// …, in the order they arrived); counts the requests.
    async fn slow_endpoint(delay: Duration) -> (reqwest::Url, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let count = Arc::new(AtomicUsize::new(0));
        let counter = count.clone();
        let app = axum::Router::new().route(
            "/token",
            axum::routing::post(move || {
                let counter = counter.clone();
                async move {
                    let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                    tokio::time::sleep(delay).await;
                    axum::Json(
                        serde_json::json!({"access_token": format!("t{n}"), "expires_in": 300}),
                    )
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = reqwest::Url::parse(&format!("http://{}/token", l.local_addr().expect("addr")))
            .expect("url");
        tokio::spawn(async move { axum::serve(l, app).await });
        (url, count)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test]
    async fn an_exchange_slower_than_the_budget_times_out_the_first_caller_and_serves_the_next_from_the_cache(
    ) {
        // The first caller's deadline: shorter than the endpoint, and already past on arrival.
        for first_deadline in [ms(200), ms(0)] {
            let (url, requests) = slow_endpoint(ms(500)).await;
            let mut te = step("server");
            te.token_url = url.clone();
            let x = Exchanger::new(reqwest::Client::new(), None);
            let started = Instant::now();
            let r = x
                .exchange(&te, "subject", Deadline::after(first_deadline))
                .await;
            let took = started.elapsed();
            assert_eq!(
                r,
                Err(ExchangeError::TimedOut {
                    endpoint: url.to_string()
                }),
                "{first_deadline:?}"
            );
            assert!(
                took >= first_deadline && took < first_deadline + ms(150),
                "{first_deadline:?}: stopped waiting at its deadline: {took:?}"
            );
            // The request went on and filled the cache: the next caller is served at once.
            tokio::time::sleep(ms(700)).await;
            let started = Instant::now();
            let r = x.exchange(&te, "subject", Deadline::after(ms(200))).await;
            assert_eq!(r, Ok(Arc::from("t1")), "{first_deadline:?}");
            assert!(started.elapsed() < ms(100), "{:?}", started.elapsed());
            assert_eq!(
                requests.load(std::sync::atomic::Ordering::SeqCst),
                1,
                "{first_deadline:?}: one request"
            );
        }
    }

    #[tokio::test]
    async fn a_via_exchange_given_up_in_its_first_step_completes_in_the_background() {
        let (url, requests) = slow_endpoint(ms(400)).await;
        let mut first = step("domain-b");
        first.token_url = url.clone();
        let mut te = step("server");
        te.token_url = url.clone();
        te.via = Some(Arc::new(first));
        let x = Exchanger::new(reqwest::Client::new(), None);
        let r = x.exchange(&te, "subject", Deadline::after(ms(250))).await;
        assert!(matches!(r, Err(ExchangeError::TimedOut { .. })), "{r:?}");
        // The first step ends after 400 ms, the second (its token as the subject) 400 ms later.
        tokio::time::sleep(ms(1100)).await;
        assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 2);
        let started = Instant::now();
        let r = x.exchange(&te, "subject", Deadline::after(ms(250))).await;
        assert_eq!(r, Ok(Arc::from("t2")), "both steps cached");
        assert!(started.elapsed() < ms(100), "{:?}", started.elapsed());
        assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[test]
    fn statuses() {
        let e = |s| ExchangeError::Failed {
            endpoint: s,
            detail: String::new(),
        };
        assert_eq!(e("x".into()).status(), 502);
        assert_eq!(
            ExchangeError::TimedOut {
                endpoint: "x".into()
            }
            .status(),
            504
        );
        assert_eq!(
            ExchangeError::Rejected {
                endpoint: "x".into(),
                detail: String::new()
            }
            .status(),
            401
        );
    }
}
