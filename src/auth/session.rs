//! Gateway session ids: HS256 JWTs (`iss`/`aud` `mcp-gateway`, `jti`, `exp`) like the seed
//! gateway's, so that any replica holding the signing key can verify any session, and the short
//! signed key that marks an upstream initialize sent back through the gateway (the hairpin).

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::mcp::{CallKind, CallTarget};

mod ask_state;
mod recent;
pub use ask_state::AskedIn;

const ISSUER: &str = "mcp-gateway";
const HAIRPIN_AUDIENCE: &str = "mcp-router-hairpin";
/// How long a hairpin key is good for: one initialize round trip.
const HAIRPIN_TTL: Duration = Duration::from_secs(30);
/// Verified session ids remembered (about 400 bytes each).
const VERIFIED_CACHE: u64 = 100_000;
/// Clock skew tolerated between replicas.
const LEEWAY_SECS: u64 = 5;

#[derive(Serialize, Deserialize)]
struct SessionClaims {
    iss: String,
    aud: String,
    jti: String,
    iat: u64,
    exp: u64,
    /// The client's capabilities the gateway relays to upstreams (JSON), when it has any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cap: Option<String>,
    /// The owner: [`subject_binding`] of the verified caller that initialized the session, when
    /// native auth is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sbj: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct HairpinClaims {
    iss: String,
    aud: String,
    exp: u64,
    /// The upstream server name the initialize is for.
    srv: String,
    /// The call that needs the initialize: its method, what it names, and the name the
    /// upstream knows. Signed here so that the policy headers of the initialize cannot be
    /// forged; absent in keys of older replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mth: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    knd: Option<CallKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nam: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hnt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vsb: Option<String>,
}

/// What a valid hairpin key vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hairpin {
    /// The upstream server the initialize is for.
    pub server: String,
    /// The call that triggered the initialize (`None` from a replica that did not sign one).
    pub call: Option<CallTarget>,
}

/// A verified gateway session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewaySession {
    /// Unique per session; keys upstream sessions and logs (never the token itself).
    pub jti: Arc<str>,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// The client's capabilities that upstream sessions declare for it (sampling, elicitation,
    /// roots), as JSON; `None` when it declared none of them.
    pub client_capabilities: Option<Arc<str>>,
    /// Its owner's tag ([`SessionKeys::owner_tag`] of a [`subject_binding`]); `None` for a
    /// session made without native auth.
    pub owner: Option<Arc<str>>,
}

impl GatewaySession {
    /// Time left until the session expires.
    pub fn remaining(&self) -> Duration {
        Duration::from_secs(self.exp.saturating_sub(now_secs()))
    }
}

/// Why a session id was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("session expired")]
    Expired,
    #[error("session was terminated")]
    Terminated,
    #[error("session id is not valid")]
    Invalid,
    /// A valid session presented by another caller than the one that made it. Told to the client
    /// as "not found", like an unknown id, so it learns nothing about other users' sessions.
    #[error("session belongs to another caller")]
    NotOwner,
}

impl SessionError {
    /// What the client is told (HTTP 404, JSON-RPC -32001).
    pub fn client_message(&self) -> &'static str {
        match self {
            SessionError::Expired => "Session expired: initialize a new session",
            SessionError::Terminated => "Session terminated: initialize a new session",
            SessionError::Invalid | SessionError::NotOwner => {
                "Session not found: initialize a new session"
            }
        }
    }
}

/// What a session is bound to for a verified caller: the first 128 bits of SHA-256 over the
/// issuer and subject, base64url. A digest, so the session id does not carry the subject.
pub fn subject_binding(issuer: &str, subject: &str) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(issuer.as_bytes());
    h.update([0]);
    h.update(subject.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&h.finalize()[..16])
}

/// Mints and verifies session ids and hairpin keys with one HS256 key.
pub struct SessionKeys {
    /// Keys the owner digest in session ids ([`SessionKeys::owner_tag`]).
    owner_key: Box<[u8]>,
    encoding: EncodingKey,
    decoding: DecodingKey,
    session_validation: Validation,
    hairpin_validation: Validation,
    length: Duration,
    /// Sessions ended with DELETE, until they would have expired anyway.
    terminated: moka::sync::Cache<Arc<str>, (), foldhash::fast::RandomState>,
    /// Tokens already verified: a session id is checked on every routed call, and the HMAC and
    /// claims parsing were a fifth of the router's instructions per call (callgrind). Expiry is
    /// still checked on every hit. Both caches hash with foldhash (randomly seeded): SipHash
    /// over a ~280-byte token was most of a hit's cost.
    verified: moka::sync::Cache<Box<str>, GatewaySession, foldhash::fast::RandomState>,
    /// In front of `verified`, each thread's last verified ids ([`recent`]): which instance
    /// filled a slot, how many sessions had been ended then, and the hash that picks the slot.
    id: u64,
    terminations: AtomicU64,
    hasher: foldhash::fast::RandomState,
}

/// Tells apart the [`SessionKeys`] whose ids a thread remembers (tests make many per thread).
static NEXT_KEYS_ID: AtomicU64 = AtomicU64::new(1);

impl SessionKeys {
    /// `key` is the HS256 secret (GATEWAY_SIGNING_KEY); `length` the session lifetime.
    pub fn new(key: &[u8], length: Duration) -> SessionKeys {
        let mut session_validation = Validation::new(Algorithm::HS256);
        session_validation.set_issuer(&[ISSUER]);
        session_validation.set_audience(&[ISSUER]);
        session_validation.leeway = LEEWAY_SECS;
        session_validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let mut hairpin_validation = Validation::new(Algorithm::HS256);
        hairpin_validation.set_issuer(&[ISSUER]);
        hairpin_validation.set_audience(&[HAIRPIN_AUDIENCE]);
        hairpin_validation.leeway = LEEWAY_SECS;
        hairpin_validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        SessionKeys {
            owner_key: key.into(),
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            session_validation,
            hairpin_validation,
            length,
            terminated: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(length + Duration::from_secs(LEEWAY_SECS))
                .build_with_hasher(foldhash::fast::RandomState::default()),
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_CACHE)
                .time_to_idle(Duration::from_secs(600))
                .build_with_hasher(foldhash::fast::RandomState::default()),
            id: NEXT_KEYS_ID.fetch_add(1, Ordering::Relaxed),
            terminations: AtomicU64::new(0),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    /// The configured session lifetime.
    pub fn length(&self) -> Duration {
        self.length
    }

    /// A new session id and its verified form.
    pub fn mint(&self) -> Result<(String, GatewaySession), jsonwebtoken::errors::Error> {
        self.mint_for(None, None)
    }

    /// A new session id for a client with these relayed capabilities (JSON; see
    /// [`GatewaySession::client_capabilities`]), owned by `owner` (a [`subject_binding`]).
    pub fn mint_for(
        &self,
        client_capabilities: Option<String>,
        owner: Option<&str>,
    ) -> Result<(String, GatewaySession), jsonwebtoken::errors::Error> {
        let now = now_secs();
        let claims = SessionClaims {
            iss: ISSUER.into(),
            aud: ISSUER.into(),
            jti: uuid::Uuid::new_v4().to_string(),
            iat: now,
            exp: now + self.length.as_secs(),
            cap: client_capabilities,
            sbj: match owner {
                Some(o) => Some(self.owner_tag(o).ok_or_else(|| {
                    jsonwebtoken::errors::Error::from(
                        jsonwebtoken::errors::ErrorKind::InvalidKeyFormat,
                    )
                })?),
                None => None,
            },
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((
            token,
            GatewaySession {
                jti: claims.jti.into(),
                exp: claims.exp,
                client_capabilities: claims.cap.map(Into::into),
                owner: claims.sbj.map(Into::into),
            },
        ))
    }

    /// Verifies a session id: signature (HS256 only, so `alg: none` and other algorithms fail),
    /// issuer, audience, expiry, and that it was not terminated.
    pub fn verify(&self, token: &str) -> Result<GatewaySession, SessionError> {
        // The count of ended sessions is read before any check against them: a slot filled
        // after this verification holds only while no session is ended after that check.
        let at = recent::Lookup {
            keys: self.id,
            terminations: self.terminations.load(Ordering::Acquire),
            hash: self.hasher.hash_one(token),
            token,
        };
        if let Some(session) = recent::get(at, now_secs(), LEEWAY_SECS) {
            return Ok(session);
        }
        let session = self.verify_shared(token)?;
        recent::put(at, &session);
        Ok(session)
    }

    /// [`SessionKeys::verify`] without this thread's slots: the shared cache, else the JWT.
    fn verify_shared(&self, token: &str) -> Result<GatewaySession, SessionError> {
        if let Some(session) = self.verified.get(token) {
            if !recent::fresh(session.exp, now_secs(), LEEWAY_SECS) {
                self.verified.invalidate(token);
                return Err(SessionError::Expired);
            }
            if self.terminated.contains_key(&session.jti) {
                return Err(SessionError::Terminated);
            }
            return Ok(session);
        }
        let data = decode::<SessionClaims>(token, &self.decoding, &self.session_validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => SessionError::Expired,
                _ => SessionError::Invalid,
            })?;
        let session = GatewaySession {
            jti: data.claims.jti.into(),
            exp: data.claims.exp,
            client_capabilities: data.claims.cap.map(Into::into),
            owner: data.claims.sbj.map(Into::into),
        };
        if self.terminated.contains_key(&session.jti) {
            return Err(SessionError::Terminated);
        }
        self.verified.insert(token.into(), session.clone());
        Ok(session)
    }

    /// Verifies a session id presented by a caller with this [`subject_binding`] (`None` without
    /// native auth): the session must be owned by the same caller. A session made without auth is
    /// refused once auth is on (and the other way round), so the client initializes again.
    pub fn verify_owned(
        &self,
        token: &str,
        caller: Option<&str>,
    ) -> Result<GatewaySession, SessionError> {
        let session = self.verify(token)?;
        let caller = match caller {
            Some(binding) => Some(self.owner_tag(binding).ok_or(SessionError::NotOwner)?),
            None => None,
        };
        if session.owner.as_deref() != caller.as_deref() {
            // Debug, not warn: any client can present any id it has seen, as often as it likes.
            tracing::debug!(
                session = %session.jti,
                "a gateway session was presented by another caller than its owner: refused"
            );
            return Err(SessionError::NotOwner);
        }
        Ok(session)
    }

    /// What a session id says of its owner: HMAC-SHA-256 of the owner's [`subject_binding`] under
    /// the signing key (128 bits, base64url), so that the id, readable by whoever sees it, does
    /// not let anyone test guesses of the subject. `None` only if HMAC refused the key (it takes
    /// any length).
    fn owner_tag(&self, binding: &str) -> Option<String> {
        use base64::Engine;
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.owner_key).ok()?;
        mac.update(binding.as_bytes());
        let tag = mac.finalize().into_bytes();
        Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&tag[..16]))
    }

    /// Ends a session on this replica.
    pub fn terminate(&self, session: &GatewaySession) {
        self.terminate_jti(&session.jti);
    }

    /// Ends a session by its `jti` (announced by another replica). Counted after it is recorded,
    /// so that every thread's remembered ids are checked against it again ([`recent`]).
    pub fn terminate_jti(&self, jti: &str) {
        self.terminated.insert(jti.into(), ());
        self.terminations.fetch_add(1, Ordering::Release);
    }

    /// A short-lived key naming `server` and the `call` that needs its session, for an
    /// upstream initialize sent through the gateway.
    pub fn mint_hairpin(
        &self,
        server: &str,
        call: Option<&CallTarget>,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let claims = HairpinClaims {
            iss: ISSUER.into(),
            aud: HAIRPIN_AUDIENCE.into(),
            exp: now_secs() + HAIRPIN_TTL.as_secs(),
            srv: server.into(),
            mth: call.map(|c| c.method.clone()),
            knd: call.map(|c| c.kind),
            nam: call.map(|c| c.name.clone()),
            hnt: call.and_then(|c| c.hints.clone()),
            vsb: call.and_then(|c| c.verified_sub.clone()),
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    /// What a valid hairpin key names: the server, and the triggering call when the key
    /// carries all of it.
    pub fn verify_hairpin(&self, key: &str) -> Option<Hairpin> {
        let c = decode::<HairpinClaims>(key, &self.decoding, &self.hairpin_validation)
            .ok()?
            .claims;
        let call = match (c.mth, c.knd, c.nam) {
            (Some(method), Some(kind), Some(name)) => Some(CallTarget {
                method,
                kind,
                name,
                hints: c.hnt,
                verified_sub: c.vsb,
            }),
            _ => None,
        };
        Some(Hairpin {
            server: c.srv,
            call,
        })
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn keys() -> SessionKeys {
        SessionKeys::new(KEY, Duration::from_secs(3600))
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn relayed_client_capabilities_travel_in_the_session_id() {
        let k = keys();
        let (token, minted) = k
            .mint_for(Some(r#"{"elicitation":{}}"#.into()), None)
            .expect("mint");
        let other_replica = keys();
        let verified = other_replica.verify(&token).expect("verify");
        assert_eq!(verified, minted);
        assert_eq!(
            verified.client_capabilities.as_deref(),
            Some(r#"{"elicitation":{}}"#)
        );
        let (plain, _) = k.mint().expect("mint");
        assert_eq!(k.verify(&plain).expect("verify").client_capabilities, None);
    }

    #[test]
    fn sessions_are_usable_only_by_their_owner() {
        let k = keys();
        let alice = subject_binding("https://idp.example", "alice");
        let alice_elsewhere = subject_binding("https://other.example", "alice");
        let bob = subject_binding("https://idp.example", "bob");
        assert_ne!(alice, alice_elsewhere, "the issuer is part of the binding");
        assert_eq!(alice.len(), 22, "128 bits, base64url");
        let (owned, _) = k.mint_for(None, Some(&alice)).expect("mint");
        let (anonymous, _) = k.mint().expect("mint");
        let cases: [(&str, Option<&str>, Result<(), SessionError>); 6] = [
            (&owned, Some(&alice), Ok(())),
            (&owned, Some(&bob), Err(SessionError::NotOwner)),
            (&owned, Some(&alice_elsewhere), Err(SessionError::NotOwner)),
            (&owned, None, Err(SessionError::NotOwner)),
            (&anonymous, None, Ok(())),
            (&anonymous, Some(&alice), Err(SessionError::NotOwner)),
        ];
        for (token, caller, expected) in cases {
            let got = k.verify_owned(token, caller).map(|s| {
                assert_eq!(s.owner.is_some(), caller.is_some());
            });
            assert_eq!(got, expected, "{caller:?}");
        }
        // Another replica reads the owner from the session id itself.
        let tag = keys().verify(&owned).expect("verify").owner.expect("owner");
        assert_eq!(Some(&*tag), k.owner_tag(&alice).as_deref());
        // The id says who owns it only to those holding the key: not the binding itself, and
        // another key gives another tag.
        let payload = owned.split('.').nth(1).expect("payload");
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("b64");
        let claims = String::from_utf8(claims).expect("utf8");
        assert!(!claims.contains(&alice), "{claims}");
        let other = SessionKeys::new(b"another key another key another!", Duration::from_secs(60));
        assert_ne!(other.owner_tag(&alice), k.owner_tag(&alice));
        assert_eq!(
            SessionError::NotOwner.client_message(),
            SessionError::Invalid.client_message(),
            "the client cannot tell another user's session from an unknown one"
        );
    }

    #[test]
    fn minted_sessions_verify_on_any_replica_with_the_key() {
        let (token, session) = keys().mint().expect("mint");
        let other_replica = keys();
        assert_eq!(other_replica.verify(&token), Ok(session.clone()));
        assert!(session.remaining() > Duration::from_secs(3500));
    }

    #[test]
    fn bad_sessions_are_refused() {
        let k = keys();
        let (good, _) = k.mint().expect("mint");
        let other_key =
            SessionKeys::new(b"another key another key another!", Duration::from_secs(60));
        let (foreign, _) = other_key.mint().expect("mint");
        let expired = encode(
            &Header::new(Algorithm::HS256),
            &SessionClaims {
                iss: ISSUER.into(),
                aud: ISSUER.into(),
                jti: "j".into(),
                iat: 1,
                exp: 2,
                cap: None,
                sbj: None,
            },
            &EncodingKey::from_secret(KEY),
        )
        .expect("encode");
        let wrong_aud = encode(
            &Header::new(Algorithm::HS256),
            &SessionClaims {
                iss: ISSUER.into(),
                aud: "other".into(),
                jti: "j".into(),
                iat: 1,
                exp: now_secs() + 60,
                cap: None,
                sbj: None,
            },
            &EncodingKey::from_secret(KEY),
        )
        .expect("encode");
        let payload = good.split('.').nth(1).expect("payload");
        let alg_none = format!("{}.{payload}.", b64(r#"{"alg":"none","typ":"JWT"}"#));
        let hairpin = k.mint_hairpin("ns/a", None).expect("mint");
        for (token, expected) in [
            (foreign.as_str(), SessionError::Invalid),
            (expired.as_str(), SessionError::Expired),
            (wrong_aud.as_str(), SessionError::Invalid),
            (alg_none.as_str(), SessionError::Invalid),
            (hairpin.as_str(), SessionError::Invalid),
            ("", SessionError::Invalid),
            ("not.a.jwt", SessionError::Invalid),
            ("9f3c-uuid-like", SessionError::Invalid),
        ] {
            assert_eq!(k.verify(token), Err(expected), "{token}");
        }
    }

    #[test]
    fn terminated_sessions_stop_verifying() {
        let k = keys();
        let (token, session) = k.mint().expect("mint");
        assert!(k.verify(&token).is_ok(), "verified once, so remembered");
        k.terminate(&session);
        assert_eq!(k.verify(&token), Err(SessionError::Terminated));
    }

    /// The ids a thread remembers (`recent`) answer only for the keys that verified them, and
    /// not after a session is ended, wherever it was ended from.
    #[test]
    fn remembered_ids_follow_their_keys_and_every_termination() {
        let k = Arc::new(keys());
        let other_key =
            SessionKeys::new(b"another key another key another!", Duration::from_secs(60));
        let (foreign, _) = other_key.mint().expect("mint");
        assert!(other_key.verify(&foreign).is_ok());
        assert!(other_key.verify(&foreign).is_ok(), "remembered");
        assert_eq!(k.verify(&foreign), Err(SessionError::Invalid));

        let (token, session) = k.mint().expect("mint");
        let (other, _) = k.mint().expect("mint");
        let on_a_thread = |k: &Arc<SessionKeys>, token: &str| {
            let (k, token) = (k.clone(), token.to_string());
            std::thread::spawn(move || k.verify(&token))
                .join()
                .expect("thread")
        };
        // Remembered by this thread and by another; then ended as another replica announces it.
        assert!(k.verify(&token).is_ok());
        assert!(k.verify(&other).is_ok());
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let worker = {
            let (k, token) = (k.clone(), token.clone());
            std::thread::spawn(move || {
                let first = k.verify(&token);
                let _ = done_tx.send(());
                let _ = rx.recv();
                (first, k.verify(&token))
            })
        };
        done_rx.recv().expect("verified on the worker");
        k.terminate_jti(&session.jti);
        tx.send(()).expect("worker waits");
        let (first, after) = worker.join().expect("worker");
        assert!(first.is_ok());
        assert_eq!(
            after,
            Err(SessionError::Terminated),
            "on the thread that remembered it"
        );
        assert_eq!(
            k.verify(&token),
            Err(SessionError::Terminated),
            "on this thread"
        );
        assert_eq!(on_a_thread(&k, &token), Err(SessionError::Terminated));
        // Ending one session leaves the others verifying.
        assert!(k.verify(&other).is_ok());
        assert!(on_a_thread(&k, &other).is_ok());
    }

    #[test]
    fn hairpin_keys_name_their_server_and_call_and_are_not_sessions() {
        let k = keys();
        let tool = CallTarget {
            method: "tools/call".into(),
            kind: CallKind::Tool,
            name: "pods_list".into(),
            hints: Some("readOnly=true".into()),
            verified_sub: Some("alice-sub".into()),
        };
        let resource = CallTarget {
            method: "resources/read".into(),
            kind: CallKind::Resource,
            name: "k8s://pods/a b?c=\"d\"".into(),
            hints: None,
            verified_sub: None,
        };
        let completion = CallTarget {
            method: "completion/complete".into(),
            kind: CallKind::Prompt,
            name: "greet".into(),
            hints: None,
            verified_sub: Some("bob".into()),
        };
        for call in [None, Some(&tool), Some(&resource), Some(&completion)] {
            let key = k
                .mint_hairpin("mcp-test/kubernetes-mcp", call)
                .expect("mint");
            assert_eq!(
                keys().verify_hairpin(&key),
                Some(Hairpin {
                    server: "mcp-test/kubernetes-mcp".into(),
                    call: call.cloned(),
                }),
                "{call:?}: any replica reads the call back"
            );
        }
        let (session, _) = k.mint().expect("mint");
        assert_eq!(k.verify_hairpin(&session), None);
        assert_eq!(k.verify_hairpin("forged"), None);
    }

    #[test]
    fn a_hairpin_key_names_a_call_only_with_all_of_it_and_only_when_signed() {
        let sign = |claims: serde_json::Value, key: &[u8]| {
            encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(key),
            )
            .expect("encode")
        };
        let base = || {
            serde_json::json!({
                "iss": ISSUER, "aud": HAIRPIN_AUDIENCE, "exp": now_secs() + 30, "srv": "ns/a",
            })
        };
        let with = |extra: serde_json::Value| {
            let mut c = base();
            if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
                c.extend(e.clone());
            }
            c
        };
        let k = keys();
        let full = with(serde_json::json!({"mth": "prompts/get", "knd": "prompt", "nam": "p"}));
        type Case<'a> = (serde_json::Value, &'a [u8], Option<Option<CallTarget>>);
        let cases: [Case; 6] = [
            (
                full.clone(),
                KEY,
                Some(Some(CallTarget {
                    method: "prompts/get".into(),
                    kind: CallKind::Prompt,
                    name: "p".into(),
                    hints: None,
                    verified_sub: None,
                })),
            ),
            // A key of an older replica: the server only.
            (base(), KEY, Some(None)),
            // Part of a call is no call.
            (
                with(serde_json::json!({"mth": "tools/call", "nam": "t"})),
                KEY,
                Some(None),
            ),
            (
                with(serde_json::json!({"knd": "tool", "nam": "t"})),
                KEY,
                Some(None),
            ),
            // A kind that does not exist is no key at all.
            (
                with(serde_json::json!({"mth": "tools/call", "knd": "header", "nam": "t"})),
                KEY,
                None,
            ),
            // Signed with another key: refused whatever it names.
            (full, b"another key another key another!", None),
        ];
        for (claims, key, expected) in cases {
            let got = k.verify_hairpin(&sign(claims.clone(), key));
            assert_eq!(got.map(|h| h.call), expected, "{claims}");
        }
    }
}
