//! Bearer token validation against an OIDC issuer: signature from the issuer's JWKS (found by
//! OIDC discovery unless configured), `iss`, `exp`/`nbf` with a small skew, and `aud` when the
//! config names audiences.
//!
//! Keys are cached. A token whose key is cached is verified at once, even when the keys are
//! stale ([`JWKS_MAX_AGE`]): that starts a refresh in the background, one at a time, and after a
//! failed fetch not again before [`FAILED_REFRESH_BACKOFF`]. Only a token whose key the cache
//! does not know waits for a fetch: the one under way, else a new one. For an unknown `kid`
//! that is at most every [`REFETCH_MIN_INTERVAL`], which is how key rotation is followed while
//! a flood of forged kids costs nothing; before any keys were fetched, whenever none is under
//! way. Verified tokens are remembered by their SHA-256 until they expire, so a token is
//! checked once, not per call.
//!
//! A fetch runs in its own task, bounded only by its requests' own limit ([`HTTP_TIMEOUT`]);
//! the requests waiting for it share its outcome. Inside an ext_proc message only the waiting
//! is bounded by the message's [`Deadline`]: a caller whose deadline passes gets
//! [`AuthError::ProviderTimeout`], naming the URL the fetch is waiting for, and the fetch goes
//! on, so that a provider slower than the budget still fills the cache for the next request.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::config::auth::Auth;
use crate::deadline::Deadline;

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 30;
/// A JWKS older than this is refreshed in the background on its next use (its keys still
/// serve meanwhile, and if that fails).
pub const JWKS_MAX_AGE: Duration = Duration::from_secs(600);
/// An unknown `kid` refetches the JWKS at most this often (a flood of forged kids costs nothing).
pub const REFETCH_MIN_INTERVAL: Duration = Duration::from_secs(1);
/// After a failed fetch, stale keys are not refreshed again before this.
pub const FAILED_REFRESH_BACKOFF: Duration = Duration::from_secs(30);
const VERIFIED_CACHE: u64 = 100_000;
/// The most one request to the identity provider may take. A fetch's requests (discovery,
/// JWKS) are bounded by this alone; a caller stops waiting for them at its own deadline.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// A verified caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub sub: String,
    /// What gateway sessions are bound to: a digest of the issuer and subject
    /// ([`crate::auth::session::subject_binding`]), so a session id is no use to another user.
    pub binding: Arc<str>,
    pub claims: Arc<Value>,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
}

/// Why a bearer token was not accepted. The message is safe to show the client: it never
/// carries the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("token is not a valid JWT")]
    Malformed,
    #[error("token signing algorithm {0} is not accepted")]
    Algorithm(String),
    #[error("token signed with an unknown key")]
    UnknownKey,
    #[error("token signature is invalid")]
    Signature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token issuer is not trusted")]
    Issuer,
    #[error("token audience is not accepted")]
    Audience,
    #[error("token has no subject")]
    NoSubject,
    /// The identity provider could not be asked for its keys: a 503, not the caller's fault.
    #[error("cannot fetch the identity provider's keys: {0}")]
    Provider(String),
    /// The identity provider (the URL named) did not answer in time: a 504.
    #[error("cannot fetch the identity provider's keys: {0} timed out")]
    ProviderTimeout(String),
}

impl AuthError {
    /// The caller's fault (401) or the provider's (503, 504 when it was too slow).
    pub fn is_provider(&self) -> bool {
        matches!(self, AuthError::Provider(_) | AuthError::ProviderTimeout(_))
    }
}

/// How the key cache ages, refetches for unknown kids, and backs off after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Timing {
    max_age: Duration,
    refetch_min_interval: Duration,
    failed_backoff: Duration,
}

const TIMING: Timing = Timing {
    max_age: JWKS_MAX_AGE,
    refetch_min_interval: REFETCH_MIN_INTERVAL,
    failed_backoff: FAILED_REFRESH_BACKOFF,
};

/// What the key cache knows when a token asks for its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Facts {
    /// The cached keys include the token's.
    found: bool,
    /// Since the keys were fetched; `None` before the first fetch that succeeded.
    age: Option<Duration>,
    /// Since the last fetch ended, and whether it failed; `None` before any ended.
    last: Option<(Duration, bool)>,
    /// A fetch is under way.
    in_flight: bool,
}

/// What a token's key lookup does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Verify with the cached key now; `refresh` starts a fetch in the background.
    Cached { refresh: bool },
    /// Wait, by the deadline, for a fetch: the one under way, else a new one.
    Fetch,
    /// The key is unknown and the keys were fetched too recently to ask again.
    Unknown,
}

/// The pure decision behind [`Validator::key_for`].
fn plan(t: Timing, f: Facts) -> Plan {
    if f.found {
        let stale = f.age.is_none_or(|age| age > t.max_age);
        let backing_off = f
            .last
            .is_some_and(|(ago, failed)| failed && ago < t.failed_backoff);
        return Plan::Cached {
            refresh: stale && !f.in_flight && !backing_off,
        };
    }
    // No keys yet: every token needs them (one fetch at a time is the only limit, so that a
    // provider that comes back is used at once).
    if f.age.is_none() || f.in_flight {
        return Plan::Fetch;
    }
    // A key we do not know: the provider may have rotated. Ask, but not too often.
    match f.last {
        Some((ago, _)) if ago < t.refetch_min_interval => Plan::Unknown,
        _ => Plan::Fetch,
    }
}

/// The cached keys, and the one fetch of them that may be under way; shared with that fetch's
/// task.
struct KeyStore {
    auth: Arc<Auth>,
    http: reqwest::Client,
    timing: Timing,
    state: Mutex<KeyState>,
}

#[derive(Default)]
struct KeyState {
    keys: Arc<[Jwk]>,
    /// When the keys were fetched; `None` before the first fetch that succeeded.
    fetched: Option<Instant>,
    /// When the last fetch ended, and its error if it failed.
    last: Option<(Instant, Option<AuthError>)>,
    flight: Option<Flight>,
}

/// A fetch under way: the URL it is waiting for, and its outcome once it ends (`None` until
/// then).
#[derive(Clone)]
struct Flight {
    url: Arc<Mutex<String>>,
    done: watch::Receiver<Option<Result<(), AuthError>>>,
}

impl Flight {
    fn url(&self) -> String {
        lock(&self.url).clone()
    }

    fn is(&self, other: &Flight) -> bool {
        Arc::ptr_eq(&self.url, &other.url)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl KeyStore {
    /// Starts a fetch in its own task and records it in `state` (whose lock the caller holds).
    fn start_fetch(self: &Arc<Self>, state: &mut KeyState) -> Flight {
        let (tx, rx) = watch::channel(None);
        let flight = Flight {
            url: Arc::new(Mutex::new(self.keys_source())),
            done: rx,
        };
        state.flight = Some(flight.clone());
        let landing = Landing {
            store: self.clone(),
            flight: flight.clone(),
            done: Some(tx),
        };
        tokio::spawn(async move {
            let r = landing.store.fetch_keys(&landing.flight).await;
            landing.land(r);
        });
        flight
    }

    /// Where keys come from: the configured JWKS, else the issuer's discovery document.
    fn keys_source(&self) -> String {
        match &self.auth.jwks_uri {
            Some(u) => u.to_string(),
            None => self.discovery_url(),
        }
    }

    fn discovery_url(&self) -> String {
        format!(
            "{}/.well-known/openid-configuration",
            self.auth.issuer.trim_end_matches('/')
        )
    }

    async fn fetch_keys(&self, flight: &Flight) -> Result<Vec<Jwk>, AuthError> {
        let jwks_uri = match &self.auth.jwks_uri {
            Some(u) => u.clone(),
            None => {
                let url = self.discovery_url();
                let doc: Value = self.get_json(&url).await?;
                let uri = doc
                    .get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or_else(|| AuthError::Provider("discovery has no jwks_uri".into()))?;
                reqwest::Url::parse(uri)
                    .map_err(|_| AuthError::Provider("discovery jwks_uri is not a URL".into()))?
            }
        };
        *lock(&flight.url) = jwks_uri.to_string();
        let set: Value = self.get_json(jwks_uri.as_str()).await?;
        let keys = set
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| AuthError::Provider("JWKS has no keys".into()))?;
        // Keys the library cannot use (encryption keys, unknown types) are skipped, not fatal.
        Ok(keys
            .iter()
            .filter(|k| k.get("use").and_then(Value::as_str) != Some("enc"))
            .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
            .collect())
    }

    /// GETs `url` as JSON, within [`HTTP_TIMEOUT`].
    async fn get_json(&self, url: &str) -> Result<Value, AuthError> {
        let resp = self
            .http
            .get(url)
            .timeout(HTTP_TIMEOUT)
            .send()
            .await
            .map_err(|e| unanswered(url, &e))?;
        if !resp.status().is_success() {
            return Err(AuthError::Provider(format!(
                "{url} answered HTTP {}",
                resp.status().as_u16()
            )));
        }
        resp.json().await.map_err(|e| {
            if e.is_timeout() {
                AuthError::ProviderTimeout(url.to_owned())
            } else {
                AuthError::Provider(format!("{url} did not answer JSON"))
            }
        })
    }
}

/// Lands a fetch: records its outcome in the store and wakes the requests waiting for it.
/// Dropped before that (its runtime stopped), it lands the fetch as failed, so that no request
/// waits for it and the next one can start another.
struct Landing {
    store: Arc<KeyStore>,
    flight: Flight,
    done: Option<watch::Sender<Option<Result<(), AuthError>>>>,
}

impl Landing {
    fn land(mut self, r: Result<Vec<Jwk>, AuthError>) {
        self.finish(r);
    }

    fn finish(&mut self, r: Result<Vec<Jwk>, AuthError>) {
        let Some(done) = self.done.take() else {
            return;
        };
        let (outcome, had_keys) = {
            let mut state = lock(&self.store.state);
            let now = Instant::now();
            let had_keys = state.fetched.is_some();
            let outcome = match r {
                Ok(keys) => {
                    state.keys = keys.into();
                    state.fetched = Some(now);
                    state.last = Some((now, None));
                    Ok(())
                }
                Err(e) => {
                    state.last = Some((now, Some(e.clone())));
                    Err(e)
                }
            };
            if state.flight.as_ref().is_some_and(|f| f.is(&self.flight)) {
                state.flight = None;
            }
            (outcome, had_keys)
        };
        if let Err(e) = &outcome {
            if had_keys {
                tracing::warn!(error = %e, "JWKS refresh failed; using cached keys");
            } else {
                tracing::debug!(error = %e, "JWKS fetch failed");
            }
        }
        // After the keys are in place, so that a woken request finds them.
        done.send_replace(Some(outcome));
    }
}

impl Drop for Landing {
    fn drop(&mut self) {
        if self.done.is_some() {
            let url = self.flight.url();
            self.finish(Err(AuthError::Provider(format!(
                "{url}: the fetch was stopped"
            ))));
        }
    }
}

/// Validates bearer tokens for one `auth:` config.
pub struct Validator {
    store: Arc<KeyStore>,
    verified: moka::sync::Cache<[u8; 32], Identity>,
}

/// The token of an `Authorization: Bearer …` value.
pub fn bearer(authorization: Option<&str>) -> Option<&str> {
    let v = authorization?.trim();
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Validator {
    pub fn new(auth: Arc<Auth>, http: reqwest::Client) -> Validator {
        Validator::with_timing(auth, http, TIMING)
    }

    fn with_timing(auth: Arc<Auth>, http: reqwest::Client, timing: Timing) -> Validator {
        Validator {
            store: Arc::new(KeyStore {
                auth,
                http,
                timing,
                state: Mutex::new(KeyState::default()),
            }),
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_CACHE)
                .time_to_live(Duration::from_secs(300))
                .build(),
        }
    }

    /// The config this validator checks against.
    pub fn auth(&self) -> &Arc<Auth> {
        &self.store.auth
    }

    /// Verifies a bearer token; waiting for keys, if that is needed, ends by `deadline`.
    pub async fn verify(&self, token: &str, deadline: Deadline) -> Result<Identity, AuthError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(id) = self.verified.get(&digest) {
            if id.exp + LEEWAY_SECS > now_secs() {
                return Ok(id);
            }
            self.verified.invalidate(&digest);
            return Err(AuthError::Expired);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        let alg = header.alg;
        if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
            // A shared-secret token could be forged with the public key as the secret.
            return Err(AuthError::Algorithm(format!("{alg:?}")));
        }
        let key = self.key_for(header.kid.as_deref(), alg, deadline).await?;
        let decoding = DecodingKey::from_jwk(&key).map_err(|_| AuthError::UnknownKey)?;
        let auth = &self.store.auth;
        let mut v = Validation::new(alg);
        v.leeway = LEEWAY_SECS;
        v.validate_nbf = true;
        v.set_issuer(&[auth.issuer.as_str()]);
        v.set_required_spec_claims(&["exp", "iss"]);
        if auth.audiences.is_empty() {
            v.validate_aud = false;
        } else {
            v.set_audience(&auth.audiences);
        }
        let data = jsonwebtoken::decode::<Value>(token, &decoding, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => AuthError::Expired,
                K::ImmatureSignature => AuthError::NotYetValid,
                K::InvalidIssuer => AuthError::Issuer,
                K::InvalidAudience => AuthError::Audience,
                K::InvalidSignature | K::InvalidAlgorithm => AuthError::Signature,
                K::MissingRequiredClaim(c) if c == "iss" => AuthError::Issuer,
                K::MissingRequiredClaim(c) if c == "exp" => AuthError::Expired,
                _ => AuthError::Malformed,
            }
        })?;
        let claims = data.claims;
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(AuthError::NoSubject)?
            .to_owned();
        let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        let issuer = claims
            .get("iss")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let id = Identity {
            binding: super::session::subject_binding(issuer, &sub).into(),
            sub,
            claims: Arc::new(claims),
            exp,
        };
        self.verified.insert(digest, id.clone());
        Ok(id)
    }

    /// The key a token names: a cached one at once (refreshing stale keys in the background),
    /// else after a fetch, waited for by `deadline`.
    async fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        deadline: Deadline,
    ) -> Result<Jwk, AuthError> {
        let flight = {
            let mut state = lock(&self.store.state);
            let now = Instant::now();
            let found = pick(&state.keys, kid, alg);
            let facts = Facts {
                found: found.is_some(),
                age: state.fetched.map(|t| now.saturating_duration_since(t)),
                last: state
                    .last
                    .as_ref()
                    .map(|(t, e)| (now.saturating_duration_since(*t), e.is_some())),
                in_flight: state.flight.is_some(),
            };
            match (plan(self.store.timing, facts), found) {
                (Plan::Cached { refresh }, Some(key)) => {
                    if refresh {
                        self.store.start_fetch(&mut state);
                    }
                    return Ok(key);
                }
                (Plan::Fetch, _) => match &state.flight {
                    Some(f) => f.clone(),
                    None => self.store.start_fetch(&mut state),
                },
                // Asked too recently: say why the last fetch failed, if it did.
                (Plan::Unknown | Plan::Cached { .. }, _) => {
                    return Err(state
                        .last
                        .as_ref()
                        .and_then(|(_, e)| e.clone())
                        .unwrap_or(AuthError::UnknownKey));
                }
            }
        };
        let mut done = flight.done.clone();
        let outcome = deadline
            .bound(async move {
                done.wait_for(Option::is_some)
                    .await
                    .ok()
                    .and_then(|r| (*r).clone())
            })
            .await;
        let outcome = match outcome {
            // The fetch goes on and fills the cache for the next request.
            Err(_) => return Err(AuthError::ProviderTimeout(flight.url())),
            Ok(Some(r)) => r,
            Ok(None) => Err(AuthError::Provider(format!(
                "{}: the fetch was stopped",
                flight.url()
            ))),
        };
        let state = lock(&self.store.state);
        match pick(&state.keys, kid, alg) {
            Some(k) => Ok(k),
            None => outcome.and(Err(AuthError::UnknownKey)),
        }
    }
}

/// A request to the identity provider that got no answer.
fn unanswered(url: &str, e: &reqwest::Error) -> AuthError {
    if e.is_timeout() {
        AuthError::ProviderTimeout(url.to_owned())
    } else {
        AuthError::Provider(format!("{url}: {}", reason(e)))
    }
}

/// What went wrong with a request, in a few words (the caller names the URL).
pub fn reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    }
    .to_owned()
}

/// The key for `kid` (or the only key usable for `alg` when the token names none).
fn pick(keys: &[Jwk], kid: Option<&str>, alg: Algorithm) -> Option<Jwk> {
    let fits = |k: &&Jwk| match k.common.key_algorithm {
        Some(ka) => key_alg_matches(ka, alg),
        None => true,
    };
    match kid {
        Some(kid) => keys
            .iter()
            .filter(|k| k.common.key_id.as_deref() == Some(kid))
            .find(fits)
            .cloned(),
        None => {
            let mut usable = keys.iter().filter(fits);
            match (usable.next(), usable.next()) {
                (Some(k), None) => Some(k.clone()),
                _ => None,
            }
        }
    }
}

fn key_alg_matches(ka: KeyAlgorithm, alg: Algorithm) -> bool {
    // Both enums name the JOSE algorithms the same way ("RS256", …).
    format!("{ka:?}") == format!("{alg:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_values() {
        for (v, want) in [
            (Some("Bearer abc"), Some("abc")),
            (Some("bearer  abc "), Some("abc")),
            (Some("Basic abc"), None),
            (Some("Bearer "), None),
            (Some("Bearer"), None),
            (None, None),
        ] {
            assert_eq!(bearer(v), want, "{v:?}");
        }
    }

    /// A validator whose JWKS endpoint accepts connections and never answers.
    async fn validator_of_a_silent_provider() -> (Validator, String) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/jwks", l.local_addr().expect("addr"));
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = l.accept().await {
                held.push(socket);
            }
        });
        let v = Validator::new(Arc::new(auth_at(&url)), reqwest::Client::new());
        (v, url)
    }

    const ISSUER: &str = "http://issuer.example";

    fn auth_at(jwks_url: &str) -> Auth {
        Auth {
            issuer: ISSUER.into(),
            jwks_uri: Some(reqwest::Url::parse(jwks_url).expect("url")),
            audiences: vec![],
            roles_claim: crate::config::auth::ClaimPath::parse("roles").expect("claim"),
            resource_metadata: Default::default(),
        }
    }

    /// An RS256 token naming key `a1` (its signature is never reached).
    const TOKEN: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImExIn0.eyJzdWIiOiJ4In0.c2ln";

    #[tokio::test]
    async fn a_slow_key_fetch_ends_by_the_deadline_and_names_the_url() {
        let (v, url) = validator_of_a_silent_provider().await;
        let started = Instant::now();
        let r = v
            .verify(TOKEN, Deadline::after(Duration::from_millis(300)))
            .await;
        let took = started.elapsed();
        assert_eq!(r, Err(AuthError::ProviderTimeout(url.clone())));
        assert!(r.as_ref().is_err_and(AuthError::is_provider));
        assert!(
            took >= Duration::from_millis(290) && took < Duration::from_secs(2),
            "{took:?}"
        );
        assert_eq!(
            AuthError::ProviderTimeout(url.clone()).to_string(),
            format!("cannot fetch the identity provider's keys: {url} timed out")
        );
    }

    #[tokio::test]
    async fn waiting_for_another_requests_key_fetch_ends_by_the_deadline() {
        let (v, url) = validator_of_a_silent_provider().await;
        let v = Arc::new(v);
        let first = {
            let v = v.clone();
            tokio::spawn(async move {
                v.verify(TOKEN, Deadline::after(Duration::from_millis(1500)))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        let second = v
            .verify(TOKEN, Deadline::after(Duration::from_millis(200)))
            .await;
        assert_eq!(second, Err(AuthError::ProviderTimeout(url.clone())));
        assert!(started.elapsed() < Duration::from_millis(1000));
        assert_eq!(
            first.await.expect("join"),
            Err(AuthError::ProviderTimeout(url))
        );
    }

    fn jwk(kid: &str, alg: &str) -> Jwk {
        serde_json::from_value(serde_json::json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "alg": alg,
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
        }))
        .expect("jwk")
    }

    #[test]
    fn keys_are_picked_by_kid_and_algorithm() {
        let keys = vec![jwk("a", "ES256"), jwk("b", "ES256")];
        let kid = |k: Option<Jwk>| k.and_then(|k| k.common.key_id);
        assert_eq!(
            kid(pick(&keys, Some("b"), Algorithm::ES256)),
            Some("b".into())
        );
        assert_eq!(kid(pick(&keys, Some("c"), Algorithm::ES256)), None);
        assert_eq!(
            kid(pick(&keys, Some("a"), Algorithm::RS256)),
            None,
            "alg must fit"
        );
        assert_eq!(kid(pick(&keys, None, Algorithm::ES256)), None, "ambiguous");
        assert_eq!(
            kid(pick(&keys[..1], None, Algorithm::ES256)),
            Some("a".into())
        );
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn what_a_key_lookup_does() {
        let t = Timing {
            max_age: Duration::from_secs(600),
            refetch_min_interval: Duration::from_secs(1),
            failed_backoff: Duration::from_secs(30),
        };
        let s = Duration::from_secs;
        let cached = |refresh| Plan::Cached { refresh };
        // (key cached, keys' age, last fetch (ago, failed), fetch under way) → plan
        let cases = [
            // A known key is used at once, fresh or stale...
            (true, Some(s(5)), Some((s(5), false)), false, cached(false)),
            (
                true,
                Some(s(601)),
                Some((s(601), false)),
                false,
                cached(true),
            ),
            // ...refreshing stale keys, one fetch at a time...
            (
                true,
                Some(s(601)),
                Some((s(601), false)),
                true,
                cached(false),
            ),
            // ...and not again soon after a failed one.
            (
                true,
                Some(s(700)),
                Some((s(10), true)),
                false,
                cached(false),
            ),
            (
                true,
                Some(s(700)),
                Some((s(29), true)),
                false,
                cached(false),
            ),
            (true, Some(s(700)), Some((s(31), true)), false, cached(true)),
            // A failing provider does not stop fresh keys from serving.
            (
                true,
                Some(s(100)),
                Some((ms(1), true)),
                false,
                cached(false),
            ),
            // No keys yet: wait for a fetch, the one under way or a new one, even right after
            // one failed (the provider may be back).
            (false, None, None, false, Plan::Fetch),
            (false, None, Some((ms(1), true)), false, Plan::Fetch),
            (false, None, None, true, Plan::Fetch),
            // A key we do not know: refetch, at most once per interval...
            (
                false,
                Some(ms(500)),
                Some((ms(500), false)),
                false,
                Plan::Unknown,
            ),
            (false, Some(s(2)), Some((s(2), false)), false, Plan::Fetch),
            (
                false,
                Some(s(300)),
                Some((ms(500), true)),
                false,
                Plan::Unknown,
            ),
            (false, Some(s(700)), Some((s(2), true)), false, Plan::Fetch),
            // ...and a fetch under way (a background refresh too) may bring it.
            (
                false,
                Some(ms(500)),
                Some((ms(500), false)),
                true,
                Plan::Fetch,
            ),
            (
                false,
                Some(s(700)),
                Some((s(700), false)),
                true,
                Plan::Fetch,
            ),
        ];
        for (found, age, last, in_flight, want) in cases {
            let f = Facts {
                found,
                age,
                last,
                in_flight,
            };
            assert_eq!(plan(t, f), want, "{f:?}");
        }
    }

    /// A JWKS endpoint serving the test key (`k1`), answering after `delay_ms`, and with HTTP
    /// 500 while `failing`; `requests` counts requests as they arrive.
    #[derive(Default)]
    struct TestIdp {
        delay_ms: std::sync::atomic::AtomicU64,
        failing: std::sync::atomic::AtomicBool,
        requests: std::sync::atomic::AtomicUsize,
    }

    impl TestIdp {
        fn requests(&self) -> usize {
            self.requests.load(std::sync::atomic::Ordering::SeqCst)
        }

        fn slow_down(&self, delay: Duration) {
            let ms = u64::try_from(delay.as_millis()).expect("ms");
            self.delay_ms.store(ms, std::sync::atomic::Ordering::SeqCst);
        }

        fn fail(&self, failing: bool) {
            self.failing
                .store(failing, std::sync::atomic::Ordering::SeqCst);
        }
    }

    const PRIVATE: &[u8] = include_bytes!("../../examples/test_idp/keys/trusted-header.pem");

    fn encoding_key() -> jsonwebtoken::EncodingKey {
        jsonwebtoken::EncodingKey::from_ec_pem(PRIVATE).expect("key")
    }

    /// An ES256 token of `sub` signed with the test key, naming `kid`.
    fn signed(kid: &str, sub: &str) -> String {
        let mut h = jsonwebtoken::Header::new(Algorithm::ES256);
        h.kid = Some(kid.into());
        let claims = serde_json::json!({"iss": ISSUER, "sub": sub, "exp": 4_000_000_000u64});
        jsonwebtoken::encode(&h, &claims, &encoding_key()).expect("sign")
    }

    async fn test_idp() -> (Arc<TestIdp>, String) {
        use std::sync::atomic::Ordering;
        let mut jwk = Jwk::from_encoding_key(&encoding_key(), Algorithm::ES256).expect("jwk");
        jwk.common.key_id = Some("k1".into());
        let jwks = serde_json::json!({ "keys": [jwk] });
        let idp = Arc::new(TestIdp::default());
        let state = idp.clone();
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let (idp, jwks) = (state.clone(), jwks.clone());
                async move {
                    idp.requests.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(ms(idp.delay_ms.load(Ordering::SeqCst))).await;
                    if idp.failing.load(Ordering::SeqCst) {
                        (
                            http::StatusCode::INTERNAL_SERVER_ERROR,
                            axum::Json(Value::Null),
                        )
                    } else {
                        (http::StatusCode::OK, axum::Json(jwks))
                    }
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/jwks", l.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(l, app).await });
        (idp, url)
    }

    fn validator(url: &str, timing: Timing) -> Validator {
        Validator::with_timing(Arc::new(auth_at(url)), reqwest::Client::new(), timing)
    }

    #[tokio::test]
    async fn stale_keys_with_a_known_kid_verify_at_once_while_the_provider_is_slow() {
        let (idp, url) = test_idp().await;
        let timing = Timing {
            max_age: ms(200),
            ..TIMING
        };
        let v = validator(&url, timing);
        let r = v
            .verify(&signed("k1", "a"), Deadline::after(ms(2000)))
            .await;
        assert_eq!(r.map(|id| id.sub), Ok("a".into()));
        assert_eq!(idp.requests(), 1);

        // The keys go stale and the provider becomes slower than any budget.
        idp.slow_down(ms(3000));
        tokio::time::sleep(ms(250)).await;
        let started = Instant::now();
        let r = v.verify(&signed("k1", "b"), Deadline::after(ms(500))).await;
        let took = started.elapsed();
        assert_eq!(r.map(|id| id.sub), Ok("b".into()));
        assert!(took < ms(150), "verified without waiting: {took:?}");
        // A refresh started behind it, and only one.
        tokio::time::sleep(ms(100)).await;
        assert_eq!(idp.requests(), 2, "one refresh in the background");
        let started = Instant::now();
        let r = v.verify(&signed("k1", "c"), Deadline::after(ms(500))).await;
        assert_eq!(r.map(|id| id.sub), Ok("c".into()));
        assert!(started.elapsed() < ms(150), "{:?}", started.elapsed());
        assert_eq!(idp.requests(), 2, "one refresh at a time");

        // An unknown kid waits for that refresh (it may bring the key), by its deadline.
        let started = Instant::now();
        let r = v.verify(&signed("k9", "d"), Deadline::after(ms(200))).await;
        let took = started.elapsed();
        assert_eq!(r, Err(AuthError::ProviderTimeout(url.clone())));
        assert!(took >= ms(190) && took < ms(1000), "{took:?}");
        assert_eq!(idp.requests(), 2, "it joined the refresh under way");
    }

    #[tokio::test]
    async fn a_failed_refresh_is_retried_only_after_the_back_off() {
        let (idp, url) = test_idp().await;
        let timing = Timing {
            max_age: ms(100),
            failed_backoff: ms(700),
            ..TIMING
        };
        let v = validator(&url, timing);
        let ok = |r: Result<Identity, AuthError>| r.map(|id| id.sub);
        let d = || Deadline::after(ms(1000));
        assert_eq!(ok(v.verify(&signed("k1", "a"), d()).await), Ok("a".into()));
        assert_eq!(idp.requests(), 1);

        // The provider fails: stale keys still serve; one refresh fails...
        idp.fail(true);
        tokio::time::sleep(ms(150)).await;
        assert_eq!(ok(v.verify(&signed("k1", "b"), d()).await), Ok("b".into()));
        tokio::time::sleep(ms(100)).await;
        assert_eq!(idp.requests(), 2);
        // ...and the next tokens do not ask again before the back-off...
        for sub in ["c", "d", "e"] {
            assert_eq!(ok(v.verify(&signed("k1", sub), d()).await), Ok(sub.into()));
        }
        tokio::time::sleep(ms(100)).await;
        assert_eq!(idp.requests(), 2, "backing off");
        // ...after which one does.
        tokio::time::sleep(ms(650)).await;
        assert_eq!(ok(v.verify(&signed("k1", "f"), d()).await), Ok("f".into()));
        tokio::time::sleep(ms(100)).await;
        assert_eq!(idp.requests(), 3, "retried after the back-off");
    }

    #[tokio::test]
    async fn a_key_fetch_slower_than_the_deadline_still_fills_the_cache() {
        // The first caller's deadline: a budget shorter than the provider, and one already
        // past when the request arrives.
        for first_deadline in [ms(200), ms(0)] {
            let (idp, url) = test_idp().await;
            idp.slow_down(ms(600));
            let v = validator(&url, TIMING);
            let token = signed("k1", "a");
            let started = Instant::now();
            let r = v.verify(&token, Deadline::after(first_deadline)).await;
            let took = started.elapsed();
            assert_eq!(r, Err(AuthError::ProviderTimeout(url.clone())));
            assert!(
                took >= first_deadline && took < first_deadline + ms(150),
                "{first_deadline:?}: stopped waiting at its deadline: {took:?}"
            );
            // The fetch went on: the next caller is served from the cache.
            tokio::time::sleep(ms(800)).await;
            let started = Instant::now();
            let r = v.verify(&token, Deadline::after(ms(200))).await;
            assert_eq!(r.map(|id| id.sub), Ok("a".into()), "{first_deadline:?}");
            assert!(started.elapsed() < ms(150), "{:?}", started.elapsed());
            assert_eq!(idp.requests(), 1, "{first_deadline:?}: one fetch");
        }
    }

    #[tokio::test]
    async fn an_unknown_kid_refetches_at_most_once_per_interval() {
        let (idp, url) = test_idp().await;
        let timing = Timing {
            refetch_min_interval: ms(300),
            ..TIMING
        };
        let v = validator(&url, timing);
        let d = || Deadline::after(ms(1000));
        assert!(v.verify(&signed("k1", "a"), d()).await.is_ok());
        assert_eq!(idp.requests(), 1);
        // Just fetched: a forged kid costs nothing.
        for sub in ["x", "y", "z"] {
            assert_eq!(
                v.verify(&signed("k2", sub), d()).await,
                Err(AuthError::UnknownKey)
            );
        }
        assert_eq!(idp.requests(), 1);
        // Later, one refetch, in case the provider rotated.
        tokio::time::sleep(ms(350)).await;
        assert_eq!(
            v.verify(&signed("k2", "w"), d()).await,
            Err(AuthError::UnknownKey)
        );
        assert_eq!(
            v.verify(&signed("k2", "v"), d()).await,
            Err(AuthError::UnknownKey)
        );
        assert_eq!(idp.requests(), 2);
        // The provider fails: the refetch says so, and so do tokens right after it, without
        // asking again; known keys still verify.
        idp.fail(true);
        tokio::time::sleep(ms(350)).await;
        let failed = Err(AuthError::Provider(format!("{url} answered HTTP 500")));
        assert_eq!(v.verify(&signed("k2", "u"), d()).await, failed);
        assert_eq!(v.verify(&signed("k2", "t"), d()).await, failed);
        assert_eq!(idp.requests(), 3);
        assert!(v.verify(&signed("k1", "b"), d()).await.is_ok());
    }
}
