//! A small OpenID provider for tests and local demos (never for production): OIDC discovery,
//! a JWKS with key rotation, a token endpoint with the password, client-credentials and
//! RFC 8693 token-exchange grants, and the authorization-code flow with PKCE (S256) for browsers:
//! dynamic client registration (RFC 7591), a login page for the configured users, single-use
//! codes (see `authorization_code.rs`). Two instances make two OIDC domains: an instance trusts
//! subject tokens of the issuers in `trust` when their audience names it (cross-domain).
//!
//! Shared by `examples/test_idp/main.rs` (`make run-auth`) and the integration tests
//! (`#[path]`-included), so that both run the same provider.

#![allow(dead_code, unreachable_pub, clippy::expect_used, clippy::unwrap_used)]

#[path = "authorization_code.rs"]
pub mod authorization_code;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use base64::Engine;
use jsonwebtoken::jwk::{Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Deserialize;
use serde_json::{json, Value};

use authorization_code::{AuthRequest, AuthorizeError, Grant};

/// A user who can log in with the password grant.
#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub username: String,
    pub password: String,
    pub sub: String,
    /// Copied into tokens as `resource_access` (`{"<server>": {"roles": [...]}}`).
    #[serde(default)]
    pub resource_access: Value,
}

/// How an instance is set up.
#[derive(Debug, Clone, Deserialize)]
pub struct IdpOptions {
    /// `(kid, PEM path or PEM text)`; the first signs, the others are published too after a
    /// rotation.
    pub keys: Vec<(String, String)>,
    #[serde(default)]
    pub users: Vec<User>,
    /// `(client_id, secret)` of confidential clients.
    #[serde(default)]
    pub clients: Vec<(String, String)>,
    /// Issuers whose tokens this instance accepts as subject tokens when their `aud` names this
    /// issuer (their JWKS is read from `<issuer>/jwks`).
    #[serde(default)]
    pub trust: Vec<String>,
    /// Audiences tokens may be exchanged for; empty: any.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// `aud` of tokens from the password grant.
    #[serde(default = "default_user_audience")]
    pub user_audience: String,
    #[serde(default = "default_ttl")]
    pub token_ttl: u64,
}

fn default_user_audience() -> String {
    "mcp-gateway".into()
}

fn default_ttl() -> u64 {
    300
}

/// What the endpoint has done, for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub password: usize,
    pub client_credentials: usize,
    pub token_exchange: usize,
    pub jwks: usize,
    /// Codes redeemed at the token endpoint (browser logins).
    pub authorization_code: usize,
    /// Clients registered at `/register`.
    pub registrations: usize,
}

struct Key {
    kid: String,
    encoding: EncodingKey,
    jwk: Jwk,
}

struct Inner {
    issuer: String,
    opts: IdpOptions,
    keys: Vec<Key>,
    /// Index of the signing key; keys before it stay published.
    active: Mutex<usize>,
    published: Mutex<usize>,
    password: AtomicUsize,
    client_credentials: AtomicUsize,
    token_exchange: AtomicUsize,
    jwks: AtomicUsize,
    authorization_code: AtomicUsize,
    registrations: AtomicUsize,
    /// Clients registered at `/register`, by client id.
    registered: Mutex<HashMap<String, authorization_code::Client>>,
    /// Login pages shown and not yet submitted: id → (request, expiry).
    pending: Mutex<HashMap<String, (AuthRequest, u64)>>,
    /// Codes issued and not yet redeemed.
    codes: Mutex<HashMap<String, Grant>>,
    /// Delays before answering a token exchange or client-credentials grant, and the JWKS, in
    /// milliseconds (a slow provider, for tests).
    grant_delay_ms: AtomicU64,
    jwks_delay_ms: AtomicU64,
    http: reqwest::Client,
}

/// A running provider.
pub struct Idp {
    pub issuer: String,
    pub port: u16,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn pem_text(p: &str) -> String {
    if p.contains("-----BEGIN") {
        p.to_owned()
    } else {
        std::fs::read_to_string(p).unwrap_or_else(|e| panic!("cannot read key {p}: {e}"))
    }
}

impl Idp {
    /// Serves on `listener` (issuer `http://<its address>`).
    pub async fn start(listener: tokio::net::TcpListener, opts: IdpOptions) -> Idp {
        let addr = listener.local_addr().expect("local addr");
        let issuer = format!("http://{addr}");
        let keys = opts
            .keys
            .iter()
            .map(|(kid, pem)| {
                let encoding =
                    EncodingKey::from_rsa_pem(pem_text(pem).as_bytes()).expect("RSA PEM");
                let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256).expect("jwk");
                jwk.common.key_id = Some(kid.clone());
                jwk.common.key_algorithm = Some(KeyAlgorithm::RS256);
                jwk.common.public_key_use = Some(PublicKeyUse::Signature);
                Key {
                    kid: kid.clone(),
                    encoding,
                    jwk,
                }
            })
            .collect();
        let inner = Arc::new(Inner {
            issuer: issuer.clone(),
            opts,
            keys,
            active: Mutex::new(0),
            published: Mutex::new(1),
            password: AtomicUsize::new(0),
            client_credentials: AtomicUsize::new(0),
            token_exchange: AtomicUsize::new(0),
            jwks: AtomicUsize::new(0),
            authorization_code: AtomicUsize::new(0),
            registrations: AtomicUsize::new(0),
            registered: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            codes: Mutex::new(HashMap::new()),
            grant_delay_ms: AtomicU64::new(0),
            jwks_delay_ms: AtomicU64::new(0),
            http: reqwest::Client::new(),
        });
        let app = axum::Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/.well-known/oauth-authorization-server", get(discovery))
            .route("/jwks", get(jwks))
            .route("/token", post(token))
            .route("/register", post(register))
            .route("/authorize", get(authorize_page).post(authorize_login))
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Idp {
            issuer,
            port: addr.port(),
            inner,
            task,
        }
    }

    /// Signs `claims` (completed with `iss`, `iat`, `exp` when missing) with the signing key.
    pub fn mint(&self, claims: Value) -> String {
        self.inner.sign(claims)
    }

    /// Starts signing with the next key; both stay published.
    pub fn rotate(&self) {
        let mut a = self.inner.active.lock().expect("lock");
        *a = (*a + 1).min(self.inner.keys.len() - 1);
        let mut p = self.inner.published.lock().expect("lock");
        *p = (*a + 1).max(*p);
    }

    pub fn stats(&self) -> Stats {
        let i = &self.inner;
        Stats {
            password: i.password.load(Ordering::SeqCst),
            client_credentials: i.client_credentials.load(Ordering::SeqCst),
            token_exchange: i.token_exchange.load(Ordering::SeqCst),
            jwks: i.jwks.load(Ordering::SeqCst),
            authorization_code: i.authorization_code.load(Ordering::SeqCst),
            registrations: i.registrations.load(Ordering::SeqCst),
        }
    }

    /// Answers token exchange and client-credentials grants only after `delay` (the password
    /// grant, which users log in with, stays fast).
    pub fn slow_down_grants(&self, delay: Duration) {
        self.inner
            .grant_delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Answers JWKS requests only after `delay`.
    pub fn slow_down_keys(&self, delay: Duration) {
        self.inner
            .jwks_delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Stops serving (the port is free again).
    pub fn stop(&self) {
        self.task.abort();
    }

    /// A token for `username` by the password grant, as a client would get it.
    pub async fn login(&self, username: &str, password: &str) -> String {
        let r: Value = reqwest::Client::new()
            .post(format!("{}/token", self.issuer))
            .form(&[
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
                ("client_id", "mcp-client"),
            ])
            .send()
            .await
            .expect("token endpoint")
            .json()
            .await
            .expect("token json");
        r["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("login failed: {r}"))
            .to_owned()
    }
}

impl Inner {
    fn sign(&self, mut claims: Value) -> String {
        let active = *self.active.lock().expect("lock");
        let key = &self.keys[active];
        let t = now();
        if let Some(o) = claims.as_object_mut() {
            o.entry("iss").or_insert_with(|| json!(self.issuer));
            o.entry("iat").or_insert_with(|| json!(t));
            o.entry("exp")
                .or_insert_with(|| json!(t + self.opts.token_ttl));
            o.entry("jti")
                .or_insert_with(|| json!(format!("{:x}", rand_u64())));
        }
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some(key.kid.clone());
        h.typ = Some("JWT".into());
        jsonwebtoken::encode(&h, &claims, &key.encoding).expect("sign")
    }

    /// Verifies a subject token: ours, or a trusted issuer's addressed to us.
    async fn verify_subject(&self, token: &str) -> Result<Value, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| "not a JWT".to_owned())?;
        let unverified: Value = {
            let payload = token.split('.').nth(1).ok_or("not a JWT")?;
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .map_err(|_| "not a JWT")?;
            serde_json::from_slice(&bytes).map_err(|_| "not a JWT")?
        };
        let iss = unverified["iss"].as_str().unwrap_or("").to_owned();
        let jwks: Vec<Jwk> = if iss == self.issuer {
            let published = *self.published.lock().expect("lock");
            self.keys[..published]
                .iter()
                .map(|k| k.jwk.clone())
                .collect()
        } else if self.opts.trust.contains(&iss) {
            let set: Value = self
                .http
                .get(format!("{iss}/jwks"))
                .send()
                .await
                .map_err(|_| format!("cannot reach trusted issuer {iss}"))?
                .json()
                .await
                .map_err(|_| "bad JWKS".to_owned())?;
            serde_json::from_value(set["keys"].clone()).map_err(|_| "bad JWKS".to_owned())?
        } else {
            return Err(format!("issuer {iss} is not trusted"));
        };
        let key = jwks
            .iter()
            .find(|k| k.common.key_id == header.kid)
            .ok_or("unknown signing key")?;
        let mut v = Validation::new(Algorithm::RS256);
        v.set_issuer(&[iss.as_str()]);
        if iss == self.issuer {
            v.validate_aud = false;
        } else {
            v.set_audience(&[self.issuer.as_str()]);
        }
        let dk = DecodingKey::from_jwk(key).map_err(|_| "bad key".to_owned())?;
        jsonwebtoken::decode::<Value>(token, &dk, &v)
            .map(|d| d.claims)
            .map_err(|e| format!("subject token rejected: {e}"))
    }

    fn client_ok(&self, headers: &HeaderMap, form: &HashMap<String, String>) -> Option<String> {
        let (id, secret) = match headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
        {
            Some(b) => {
                let decoded = base64::engine::general_purpose::STANDARD.decode(b).ok()?;
                let text = String::from_utf8(decoded).ok()?;
                let (i, s) = text.split_once(':')?;
                let dec = |x: &str| {
                    url::form_urlencoded::parse(format!("x={x}").as_bytes())
                        .next()
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default()
                };
                (dec(i), dec(s))
            }
            None => (
                form.get("client_id")?.clone(),
                form.get("client_secret")?.clone(),
            ),
        };
        self.opts
            .clients
            .iter()
            .any(|(i, s)| *i == id && *s == secret)
            .then_some(id)
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now());
    h.finish()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

async fn discovery(State(i): State<Arc<Inner>>) -> Json<Value> {
    Json(json!({
        "issuer": i.issuer,
        "jwks_uri": format!("{}/jwks", i.issuer),
        "token_endpoint": format!("{}/token", i.issuer),
        "authorization_endpoint": format!("{}/authorize", i.issuer),
        "registration_endpoint": format!("{}/register", i.issuer),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "profile"],
        "grant_types_supported": [
            "authorization_code",
            "password",
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:token-exchange"
        ],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
    }))
}

async fn pause(ms: &AtomicU64) {
    let ms = ms.load(Ordering::SeqCst);
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

async fn jwks(State(i): State<Arc<Inner>>) -> Json<Value> {
    pause(&i.jwks_delay_ms).await;
    i.jwks.fetch_add(1, Ordering::SeqCst);
    let published = *i.published.lock().expect("lock");
    let keys: Vec<&Jwk> = i.keys[..published].iter().map(|k| &k.jwk).collect();
    Json(json!({ "keys": keys }))
}

async fn token(State(i): State<Arc<Inner>>, headers: HeaderMap, body: String) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let grant = form.get("grant_type").map(String::as_str).unwrap_or("");
    match grant {
        "password" => {
            let user = i.opts.users.iter().find(|u| {
                Some(&u.username) == form.get("username")
                    && Some(&u.password) == form.get("password")
            });
            let Some(u) = user else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "bad credentials");
            };
            i.password.fetch_add(1, Ordering::SeqCst);
            let token = i.sign(json!({
                "sub": u.sub,
                "aud": i.opts.user_audience,
                "azp": form.get("client_id").cloned().unwrap_or_default(),
                "preferred_username": u.username,
                "resource_access": u.resource_access,
                "scope": "openid profile",
            }));
            issued(&token, i.opts.token_ttl).into_response()
        }
        "client_credentials" => {
            pause(&i.grant_delay_ms).await;
            let Some(client) = i.client_ok(&headers, &form) else {
                return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "bad client");
            };
            let aud = form
                .get("audience")
                .cloned()
                .unwrap_or_else(|| client.clone());
            if !i.opts.audiences.is_empty() && !i.opts.audiences.contains(&aud) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_target",
                    "unknown audience",
                );
            }
            i.client_credentials.fetch_add(1, Ordering::SeqCst);
            let token = i.sign(
                json!({"sub": format!("service-account-{client}"), "aud": aud, "azp": client}),
            );
            issued(&token, i.opts.token_ttl).into_response()
        }
        "urn:ietf:params:oauth:grant-type:token-exchange" => {
            pause(&i.grant_delay_ms).await;
            let Some(client) = i.client_ok(&headers, &form) else {
                return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "bad client");
            };
            let Some(subject) = form.get("subject_token") else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "no subject_token",
                );
            };
            let Some(aud) = form.get("audience").cloned() else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "no audience");
            };
            if !i.opts.audiences.is_empty() && !i.opts.audiences.contains(&aud) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_target",
                    "unknown audience",
                );
            }
            let claims = match i.verify_subject(subject).await {
                Ok(c) => c,
                Err(e) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", &e),
            };
            i.token_exchange.fetch_add(1, Ordering::SeqCst);
            // Our own users get their roles from us; others keep what their token carried.
            let username = claims["preferred_username"].as_str().unwrap_or("");
            let roles = i
                .opts
                .users
                .iter()
                .find(|u| u.username == username)
                .map(|u| u.resource_access.clone())
                .unwrap_or_else(|| claims["resource_access"].clone());
            let token = i.sign(json!({
                "sub": claims["sub"],
                "aud": aud,
                "azp": client,
                "preferred_username": username,
                "resource_access": roles,
                "scope": form.get("scope").cloned().unwrap_or_default(),
                "act": {"sub": client},
            }));
            let mut r = issued(&token, i.opts.token_ttl);
            if let Some(o) = r.0.as_object_mut() {
                o.insert(
                    "issued_token_type".into(),
                    json!("urn:ietf:params:oauth:token-type:access_token"),
                );
            }
            r.into_response()
        }
        "authorization_code" => redeem_code(&i, &headers, &form),
        _ => oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", grant),
    }
}

fn issued(token: &str, ttl: u64) -> Json<Value> {
    Json(json!({"access_token": token, "token_type": "Bearer", "expires_in": ttl}))
}

/// The client of an authorization-code grant: HTTP Basic or the form's `client_id` (and
/// `client_secret`); a registered confidential client must give its secret.
fn code_client(i: &Inner, headers: &HeaderMap, form: &HashMap<String, String>) -> Option<String> {
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|d| String::from_utf8(d).ok())
        .and_then(|t| {
            let (id, secret) = t.split_once(':')?;
            let dec = |x: &str| {
                url::form_urlencoded::parse(format!("x={x}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            Some((dec(id), Some(dec(secret))))
        });
    let (id, secret) = match basic {
        Some(b) => b,
        None => (
            form.get("client_id")?.clone(),
            form.get("client_secret").cloned(),
        ),
    };
    let registered = i.registered.lock().expect("lock");
    let client = registered.get(&id)?;
    match &client.secret {
        Some(s) if secret.as_deref() != Some(s.as_str()) => None,
        _ => Some(id),
    }
}

fn redeem_code(i: &Inner, headers: &HeaderMap, form: &HashMap<String, String>) -> Response {
    let Some(client) = code_client(i, headers, form) else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "bad client");
    };
    let t = now();
    // Taken out before any check: a code is good for one try only.
    let grant = form.get("code").and_then(|c| {
        let mut codes = i.codes.lock().expect("lock");
        authorization_code::prune(&mut codes, t, |g| g.expires_at);
        codes.remove(c)
    });
    let g = match authorization_code::redeem(
        grant,
        t,
        &client,
        form.get("redirect_uri").map(String::as_str),
        form.get("code_verifier").map(String::as_str),
    ) {
        Ok(g) => g,
        Err(e) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", e),
    };
    let Some(u) = i.opts.users.iter().find(|u| u.username == g.username) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "unknown user");
    };
    i.authorization_code.fetch_add(1, Ordering::SeqCst);
    // The same token as the password grant's: the gateway expects its audience (a `resource`
    // parameter is not honoured by this test provider).
    let token = i.sign(json!({
        "sub": u.sub,
        "aud": i.opts.user_audience,
        "azp": client,
        "preferred_username": u.username,
        "resource_access": u.resource_access,
        "scope": if g.request.scope.is_empty() { "openid profile".to_owned() } else { g.request.scope.clone() },
    }));
    let mut r = issued(&token, i.opts.token_ttl).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// RFC 7591 dynamic client registration.
async fn register(State(i): State<Arc<Inner>>, body: String) -> Response {
    let Ok(v) = serde_json::from_str::<Value>(&body) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client_metadata",
            "the body is not JSON",
        );
    };
    let reg = match authorization_code::check_registration(&v) {
        Ok(r) => r,
        Err((error, d)) => return oauth_error(StatusCode::BAD_REQUEST, error, &d),
    };
    let id = authorization_code::random_id();
    let secret = reg.confidential.then(authorization_code::random_id);
    {
        let mut registered = i.registered.lock().expect("lock");
        if registered.len() >= authorization_code::MAX_CLIENTS {
            return oauth_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "too many clients registered",
            );
        }
        registered.insert(
            id.clone(),
            authorization_code::Client {
                redirect_uris: reg.redirect_uris.clone(),
                secret: secret.clone(),
            },
        );
    }
    i.registrations.fetch_add(1, Ordering::SeqCst);
    let mut out = json!({
        "client_id": id,
        "client_id_issued_at": now(),
        "redirect_uris": reg.redirect_uris,
        "token_endpoint_auth_method": reg.auth_method,
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
    });
    if let (Some(s), Some(o)) = (secret, out.as_object_mut()) {
        o.insert("client_secret".into(), json!(s));
        o.insert("client_secret_expires_at".into(), json!(0));
    }
    if let (Some(name), Some(o)) = (v.get("client_name"), out.as_object_mut()) {
        o.insert("client_name".into(), name.clone());
    }
    (StatusCode::CREATED, Json(out)).into_response()
}

/// An HTML answer that no one caches or frames.
fn page(status: StatusCode, html: String) -> Response {
    let mut r = (status, Html(html)).into_response();
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    r
}

fn see_other(to: &str) -> Response {
    match HeaderValue::from_str(to) {
        Ok(v) => (StatusCode::SEE_OTHER, [(header::LOCATION, v)]).into_response(),
        Err(_) => page(
            StatusCode::BAD_REQUEST,
            authorization_code::error_page("bad redirect"),
        ),
    }
}

/// `GET /authorize`: checks the request and shows the login page.
async fn authorize_page(
    State(i): State<Arc<Inner>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let checked = {
        let registered = i.registered.lock().expect("lock");
        authorization_code::check_authorize(&q, &registered)
    };
    let req = match checked {
        Ok(r) => r,
        Err(e) => {
            return match (authorization_code::error_redirect(&e), e) {
                (Some(to), _) => see_other(&to),
                (None, AuthorizeError::Show(m)) => {
                    page(StatusCode::BAD_REQUEST, authorization_code::error_page(&m))
                }
                (None, _) => page(
                    StatusCode::BAD_REQUEST,
                    authorization_code::error_page("bad request"),
                ),
            }
        }
    };
    let login = authorization_code::random_id();
    let client_id = req.client_id.clone();
    {
        let t = now();
        let mut pending = i.pending.lock().expect("lock");
        authorization_code::prune(&mut pending, t, |p| p.1);
        if pending.len() >= authorization_code::MAX_PENDING {
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                authorization_code::error_page("too many logins in progress"),
            );
        }
        pending.insert(login.clone(), (req, t + authorization_code::LOGIN_TTL_SECS));
    }
    page(
        StatusCode::OK,
        authorization_code::login_page(&i.issuer, &login, &client_id, None),
    )
}

/// `POST /authorize`: the login form. Right credentials: a code, sent to the redirect URI with
/// the state; wrong ones: the page again.
async fn authorize_login(State(i): State<Arc<Inner>>, body: String) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let t = now();
    let req = {
        let mut pending = i.pending.lock().expect("lock");
        authorization_code::prune(&mut pending, t, |p| p.1);
        pending.get(field("login")).map(|p| p.0.clone())
    };
    let Some(req) = req else {
        return page(
            StatusCode::BAD_REQUEST,
            authorization_code::error_page(
                "this login page has expired or was already used: start again from the application",
            ),
        );
    };
    let user = i
        .opts
        .users
        .iter()
        .find(|u| u.username == field("username") && u.password == field("password"));
    let Some(user) = user else {
        return page(
            StatusCode::OK,
            authorization_code::login_page(
                &i.issuer,
                field("login"),
                &req.client_id,
                Some("Wrong username or password."),
            ),
        );
    };
    i.pending.lock().expect("lock").remove(field("login"));
    let code = authorization_code::random_id();
    let mut params = vec![("code", code.as_str())];
    if let Some(s) = &req.state {
        params.push(("state", s));
    }
    let to = authorization_code::redirect_to(&req.redirect_uri, &params);
    {
        let mut codes = i.codes.lock().expect("lock");
        authorization_code::prune(&mut codes, t, |g| g.expires_at);
        if codes.len() >= authorization_code::MAX_PENDING {
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                authorization_code::error_page("too many codes waiting to be redeemed"),
            );
        }
        codes.insert(
            code.clone(),
            Grant {
                request: req,
                username: user.username.clone(),
                expires_at: t + authorization_code::CODE_TTL_SECS,
            },
        );
    }
    see_other(&to)
}
