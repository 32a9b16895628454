//! Bearer token validation against an OIDC issuer: signature from the issuer's JWKS (found by
//! OIDC discovery unless configured), `iss`, `exp`/`nbf` with a small skew, and `aud` when the
//! config names audiences.
//!
//! Keys are cached; a token signed with a key the cache does not know triggers one refetch (at
//! most every [`REFETCH_MIN_INTERVAL`]), which is how key rotation is followed. Verified tokens
//! are remembered by their SHA-256 until they expire, so a token is checked once, not per call.
//!
//! Fetching keys happens inside an ext_proc message: each request has its own limit
//! ([`HTTP_TIMEOUT`]) and discovery, JWKS and waiting for another request's fetch share what is
//! left of the message's [`Deadline`]. A provider too slow for either is an
//! [`AuthError::ProviderTimeout`], which names it.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::config::auth::Auth;
use crate::deadline::Deadline;

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 30;
/// A JWKS older than this is refetched on the next use (keys still served if that fails).
const JWKS_MAX_AGE: Duration = Duration::from_secs(600);
/// An unknown `kid` refetches the JWKS at most this often (a flood of forged kids costs nothing).
const REFETCH_MIN_INTERVAL: Duration = Duration::from_secs(1);
const VERIFIED_CACHE: u64 = 100_000;
/// The most one request to the identity provider may take (less when the message's deadline is
/// nearer).
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

struct Keys {
    keys: Vec<Jwk>,
    fetched: Option<Instant>,
}

/// Validates bearer tokens for one `auth:` config.
pub struct Validator {
    auth: Arc<Auth>,
    http: reqwest::Client,
    keys: Mutex<Keys>,
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
        Validator {
            auth,
            http,
            keys: Mutex::new(Keys {
                keys: Vec::new(),
                fetched: None,
            }),
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_CACHE)
                .time_to_live(Duration::from_secs(300))
                .build(),
        }
    }

    /// The config this validator checks against.
    pub fn auth(&self) -> &Arc<Auth> {
        &self.auth
    }

    /// Verifies a bearer token; fetching keys, if that is needed, ends by `deadline`.
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
        let mut v = Validation::new(alg);
        v.leeway = LEEWAY_SECS;
        v.validate_nbf = true;
        v.set_issuer(&[self.auth.issuer.as_str()]);
        v.set_required_spec_claims(&["exp", "iss"]);
        if self.auth.audiences.is_empty() {
            v.validate_aud = false;
        } else {
            v.set_audience(&self.auth.audiences);
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

    /// The key a token names, refetching the JWKS when it is stale or lacks the key.
    async fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        deadline: Deadline,
    ) -> Result<Jwk, AuthError> {
        // Another request may be fetching: waiting for it counts against this one's deadline.
        let mut keys = match self.keys.try_lock() {
            Ok(keys) => keys,
            Err(_) => deadline
                .bound(self.keys.lock())
                .await
                .map_err(|_| AuthError::ProviderTimeout(self.keys_source()))?,
        };
        let stale = keys.fetched.is_none_or(|t| t.elapsed() > JWKS_MAX_AGE);
        if stale {
            match self.fetch_keys(deadline).await {
                Ok(k) => {
                    keys.keys = k;
                    keys.fetched = Some(Instant::now());
                }
                // Keep serving the keys we have while the provider is away.
                Err(e) if keys.fetched.is_none() => return Err(e),
                Err(e) => tracing::warn!(error = %e, "JWKS refresh failed; using cached keys"),
            }
        }
        if let Some(k) = pick(&keys.keys, kid, alg) {
            return Ok(k);
        }
        let recently = keys
            .fetched
            .is_some_and(|t| t.elapsed() < REFETCH_MIN_INTERVAL);
        if stale || recently {
            return Err(AuthError::UnknownKey);
        }
        // A key we do not know: the provider may have rotated. Ask once.
        let k = self.fetch_keys(deadline).await?;
        keys.keys = k;
        keys.fetched = Some(Instant::now());
        pick(&keys.keys, kid, alg).ok_or(AuthError::UnknownKey)
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

    async fn fetch_keys(&self, deadline: Deadline) -> Result<Vec<Jwk>, AuthError> {
        let jwks_uri = match &self.auth.jwks_uri {
            Some(u) => u.clone(),
            None => {
                let url = self.discovery_url();
                let doc: Value = self.get_json(&url, deadline).await?;
                let uri = doc
                    .get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or_else(|| AuthError::Provider("discovery has no jwks_uri".into()))?;
                reqwest::Url::parse(uri)
                    .map_err(|_| AuthError::Provider("discovery jwks_uri is not a URL".into()))?
            }
        };
        let set: Value = self.get_json(jwks_uri.as_str(), deadline).await?;
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

    /// GETs `url` as JSON, by `deadline` and within [`HTTP_TIMEOUT`].
    async fn get_json(&self, url: &str, deadline: Deadline) -> Result<Value, AuthError> {
        let fetch = async {
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
        };
        deadline
            .bound(fetch)
            .await
            .unwrap_or_else(|_| Err(AuthError::ProviderTimeout(url.to_owned())))
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
        let auth = Auth {
            issuer: "http://issuer.example".into(),
            jwks_uri: Some(reqwest::Url::parse(&url).expect("url")),
            audiences: vec![],
            roles_claim: crate::config::auth::ClaimPath::parse("roles").expect("claim"),
            resource_metadata: Default::default(),
        };
        (Validator::new(Arc::new(auth), reqwest::Client::new()), url)
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
}
