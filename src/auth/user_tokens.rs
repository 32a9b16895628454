//! Per-user upstream credentials given through URL elicitation, and the pending elicitations,
//! in the shared store: Redis when `CACHE_CONNECTION_STRING` is set (so every replica, and a
//! restarted one, sees them), else this process's memory.
//!
//! A credential is kept per (server, subject, gateway session) and lives as long as that gateway
//! session. It is encrypted at rest, in Redis and in memory alike: AES-256-GCM with a random
//! 96-bit nonce, under a key derived from the gateway's signing key with HKDF-SHA256 (info
//! `mcp-gateway-user-token-encryption`, as the seed gateway), the entry's name as associated
//! data (a value moved to another name does not decrypt). Subjects appear only as a keyed digest
//! (HMAC-SHA256 under another derived key), never in clear; credentials are never logged.
//!
//! Redis keys: `mcp-router:user-token:<hex server name>:<subject digest>:<jti>` (the value:
//! nonce ‖ ciphertext) and `mcp-router:elicitation:<id>` (a [`Pending`] as JSON, two minutes).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::upstream::shared::SharedSessions;

/// HKDF info of the encryption key (the seed gateway's).
const ENCRYPTION_INFO: &[u8] = b"mcp-gateway-user-token-encryption";
/// HKDF info of the subject digest key.
const SUBJECT_INFO: &[u8] = b"mcp-router-user-token-subject";
const TOKEN_PREFIX: &str = "mcp-router:user-token:";
const PENDING_PREFIX: &str = "mcp-router:elicitation:";
/// Bound of credentials kept in memory (without Redis).
const LOCAL_CAPACITY: u64 = 100_000;
/// Bound of Redis keys one `/status` or revocation walks.
const SCAN_LIMIT: usize = 100_000;

/// An elicitation waiting for its form: whose, for which server, until when its session lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub jti: String,
    pub server: String,
    /// [`UserTokens::subject_digest`] of the caller the credential is for.
    pub subject: String,
    /// The gateway session's expiry (seconds since the epoch): the credential's too.
    pub exp: u64,
}

/// The store could not do what was asked (Redis unreachable).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the credential store is unavailable")]
pub struct Unavailable;

#[derive(Clone)]
struct Sealed {
    bytes: Arc<[u8]>,
    until: Instant,
}

struct SealedExpiry;

impl moka::Expiry<String, Sealed> for SealedExpiry {
    fn expire_after_create(&self, _k: &String, v: &Sealed, now: Instant) -> Option<Duration> {
        Some(v.until.saturating_duration_since(now))
    }
}

/// The encrypted per-user credential store.
pub struct UserTokens {
    cipher: Aes256Gcm,
    subject_key: [u8; 32],
    shared: Option<Arc<SharedSessions>>,
    local: moka::sync::Cache<String, Sealed>,
    pending: moka::sync::Cache<String, Pending>,
}

impl UserTokens {
    /// Keys derived from the gateway's signing key; Redis when `shared` is set.
    pub fn new(signing_key: &[u8], shared: Option<Arc<SharedSessions>>) -> UserTokens {
        let hk = hkdf::Hkdf::<Sha256>::new(None, signing_key);
        let (mut enc, mut sub) = ([0u8; 32], [0u8; 32]);
        // 32 bytes are always a valid HKDF-SHA256 output length.
        let _ = hk.expand(ENCRYPTION_INFO, &mut enc);
        let _ = hk.expand(SUBJECT_INFO, &mut sub);
        UserTokens {
            cipher: Aes256Gcm::new(&enc.into()),
            subject_key: sub,
            shared,
            local: moka::sync::Cache::builder()
                .max_capacity(LOCAL_CAPACITY)
                .expire_after(SealedExpiry)
                .build(),
            pending: moka::sync::Cache::builder()
                .max_capacity(LOCAL_CAPACITY)
                .time_to_live(super::elicitation::PENDING_TTL)
                .build(),
        }
    }

    /// The keyed digest a subject is stored under (hex, 128 bits).
    pub fn subject_digest(&self, subject: &str) -> String {
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(&self.subject_key) {
            Ok(m) => m,
            Err(_) => return String::new(),
        };
        mac.update(subject.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    fn server_part(server: &str) -> String {
        hex::encode(server.as_bytes())
    }

    fn token_key(server: &str, subject_digest: &str, jti: &str) -> String {
        format!(
            "{TOKEN_PREFIX}{}:{subject_digest}:{jti}",
            Self::server_part(server)
        )
    }

    fn seal(&self, key: &str, token: &str) -> Option<Vec<u8>> {
        let nonce: [u8; 12] = rand::random();
        let ct = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: token.as_bytes(),
                    aad: key.as_bytes(),
                },
            )
            .ok()?;
        let mut out = Vec::with_capacity(12 + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Some(out)
    }

    fn open(&self, key: &str, sealed: &[u8]) -> Option<String> {
        if sealed.len() < 12 {
            return None;
        }
        let (nonce, ct) = sealed.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().ok()?;
        let plain = self
            .cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ct,
                    aad: key.as_bytes(),
                },
            )
            .ok()?;
        String::from_utf8(plain).ok()
    }

    /// The credential `subject` gave for `server` in gateway session `jti`; a JWT past its
    /// `exp` is forgotten and not returned.
    pub async fn get(&self, jti: &str, server: &str, subject: &str) -> Option<String> {
        let key = Self::token_key(server, &self.subject_digest(subject), jti);
        let sealed: Vec<u8> = match &self.shared {
            Some(shared) => {
                let k = key.clone();
                shared
                    .run("user_token_get", |mut c| async move {
                        redis::cmd("GET")
                            .arg(k)
                            .query_async::<Option<Vec<u8>>>(&mut c)
                            .await
                    })
                    .await??
            }
            None => self.local.get(&key)?.bytes.to_vec(),
        };
        let token = self.open(&key, &sealed)?;
        if super::elicitation::expired(&token, super::oidc::now_secs()) {
            self.remove_key(key).await;
            return None;
        }
        Some(token)
    }

    /// Stores a credential until `exp` (the gateway session's expiry, seconds since the epoch).
    pub async fn put(
        &self,
        jti: &str,
        server: &str,
        subject_digest: &str,
        token: &str,
        exp: u64,
    ) -> Result<(), Unavailable> {
        let lifetime = Duration::from_secs(exp.saturating_sub(super::oidc::now_secs()));
        if lifetime.is_zero() {
            return Err(Unavailable);
        }
        let key = Self::token_key(server, subject_digest, jti);
        let sealed = self.seal(&key, token).ok_or(Unavailable)?;
        match &self.shared {
            Some(shared) => {
                let ms = u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX);
                shared
                    .run("user_token_put", |mut c| async move {
                        redis::cmd("SET")
                            .arg(key)
                            .arg(sealed)
                            .arg("PX")
                            .arg(ms)
                            .query_async::<()>(&mut c)
                            .await
                    })
                    .await
                    .ok_or(Unavailable)
            }
            None => {
                self.local.insert(
                    key,
                    Sealed {
                        bytes: sealed.into(),
                        until: Instant::now() + lifetime,
                    },
                );
                Ok(())
            }
        }
    }

    /// Forgets one credential (the upstream answered 401 with it).
    pub async fn forget(&self, jti: &str, server: &str, subject: &str) {
        let key = Self::token_key(server, &self.subject_digest(subject), jti);
        self.remove_key(key).await;
    }

    async fn remove_key(&self, key: String) {
        match &self.shared {
            Some(shared) => {
                shared
                    .run("user_token_del", |mut c| async move {
                        redis::cmd("DEL").arg(key).query_async::<()>(&mut c).await
                    })
                    .await;
            }
            None => self.local.invalidate(&key),
        }
    }

    /// Forgets every credential `subject` gave for `server`, in all its gateway sessions;
    /// returns how many there were.
    pub async fn revoke(&self, server: &str, subject: &str) -> Result<usize, Unavailable> {
        let prefix = format!(
            "{TOKEN_PREFIX}{}:{}:",
            Self::server_part(server),
            self.subject_digest(subject)
        );
        match &self.shared {
            Some(shared) => {
                let keys = self.scan(shared, &format!("{prefix}*")).await?;
                let n = keys.len();
                for chunk in keys.chunks(500) {
                    let chunk = chunk.to_vec();
                    shared
                        .run("user_token_revoke", |mut c| async move {
                            redis::cmd("DEL").arg(chunk).query_async::<()>(&mut c).await
                        })
                        .await
                        .ok_or(Unavailable)?;
                }
                Ok(n)
            }
            None => {
                let keys: Vec<String> = self
                    .local
                    .iter()
                    .map(|(k, _)| (*k).clone())
                    .filter(|k| k.starts_with(&prefix))
                    .collect();
                for k in &keys {
                    self.local.invalidate(k);
                }
                Ok(keys.len())
            }
        }
    }

    /// Forgets every credential of gateway session `jti` (it was ended).
    pub async fn forget_session(&self, jti: &str) {
        let suffix = format!(":{jti}");
        let keys: Vec<String> = match &self.shared {
            Some(shared) => {
                let pattern = format!("{TOKEN_PREFIX}*:*:{}", glob_escape(jti));
                match self.scan(shared, &pattern).await {
                    Ok(keys) => keys,
                    Err(_) => return,
                }
            }
            None => self
                .local
                .iter()
                .map(|(k, _)| (*k).clone())
                .filter(|k| k.ends_with(&suffix))
                .collect(),
        };
        for k in keys.into_iter().filter(|k| token_key_jti(k) == Some(jti)) {
            self.remove_key(k).await;
        }
    }

    /// Per server name, how many distinct subjects hold a credential (never who).
    pub async fn holders(&self) -> Result<HashMap<String, usize>, Unavailable> {
        let keys: Vec<String> = match &self.shared {
            Some(shared) => self.scan(shared, &format!("{TOKEN_PREFIX}*")).await?,
            None => self.local.iter().map(|(k, _)| (*k).clone()).collect(),
        };
        Ok(count_holders(&keys))
    }

    async fn scan(
        &self,
        shared: &SharedSessions,
        pattern: &str,
    ) -> Result<Vec<String>, Unavailable> {
        let mut cursor: u64 = 0;
        let mut out = Vec::new();
        loop {
            let p = pattern.to_owned();
            let (next, keys): (u64, Vec<String>) = shared
                .run("user_token_scan", |mut c| async move {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(p)
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(&mut c)
                        .await
                })
                .await
                .ok_or(Unavailable)?;
            out.extend(keys);
            cursor = next;
            if cursor == 0 || out.len() >= SCAN_LIMIT {
                return Ok(out);
            }
        }
    }

    /// Records a pending elicitation; returns its id (a random UUID).
    pub async fn begin(&self, pending: &Pending) -> Result<String, Unavailable> {
        let id = uuid::Uuid::new_v4().to_string();
        match &self.shared {
            Some(shared) => {
                let value = serde_json::to_string(pending).map_err(|_| Unavailable)?;
                let key = format!("{PENDING_PREFIX}{id}");
                let ms = super::elicitation::PENDING_TTL.as_millis() as u64;
                shared
                    .run("elicitation_put", |mut c| async move {
                        redis::cmd("SET")
                            .arg(key)
                            .arg(value)
                            .arg("PX")
                            .arg(ms)
                            .query_async::<()>(&mut c)
                            .await
                    })
                    .await
                    .ok_or(Unavailable)?;
            }
            None => self.pending.insert(id.clone(), pending.clone()),
        }
        Ok(id)
    }

    /// The pending elicitation `id`, left in place (the form's page).
    pub async fn peek(&self, id: &str) -> Result<Option<Pending>, Unavailable> {
        self.pending_op(id, "GET").await
    }

    /// Takes the pending elicitation `id` (once: a second claim finds nothing).
    pub async fn claim(&self, id: &str) -> Result<Option<Pending>, Unavailable> {
        self.pending_op(id, "GETDEL").await
    }

    async fn pending_op(&self, id: &str, op: &'static str) -> Result<Option<Pending>, Unavailable> {
        match &self.shared {
            Some(shared) => {
                let key = format!("{PENDING_PREFIX}{id}");
                let raw: Option<String> = shared
                    .run("elicitation_get", |mut c| async move {
                        redis::cmd(op).arg(key).query_async(&mut c).await
                    })
                    .await
                    .ok_or(Unavailable)?;
                Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
            }
            None if op == "GETDEL" => Ok(self.pending.remove(id)),
            None => Ok(self.pending.get(id)),
        }
    }
}

/// The gateway session a credential key belongs to. Pure.
fn token_key_jti(key: &str) -> Option<&str> {
    let mut parts = key.strip_prefix(TOKEN_PREFIX)?.splitn(3, ':');
    let (_, _) = (parts.next()?, parts.next()?);
    parts.next()
}

/// `s` with Redis glob characters escaped. Pure.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Distinct subject digests per server, from store keys. Pure.
fn count_holders(keys: &[String]) -> HashMap<String, usize> {
    let mut seen: HashMap<String, HashSet<&str>> = HashMap::new();
    for k in keys {
        let Some(rest) = k.strip_prefix(TOKEN_PREFIX) else {
            continue;
        };
        let mut parts = rest.splitn(3, ':');
        let (Some(server), Some(subject)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Some(name) = hex::decode(server)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
        else {
            continue;
        };
        seen.entry(name).or_default().insert(subject);
    }
    seen.into_iter().map(|(k, v)| (k, v.len())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exp_in(secs: u64) -> u64 {
        super::super::oidc::now_secs() + secs
    }

    #[tokio::test]
    async fn credentials_are_kept_per_session_subject_and_server_and_revoked_per_subject() {
        let s = UserTokens::new(b"0123456789abcdef0123456789abcdef", None);
        let alice = s.subject_digest("alice");
        assert_ne!(alice, s.subject_digest("bob"));
        s.put("j1", "ns/a", &alice, "Bearer A1", exp_in(60))
            .await
            .expect("put");
        s.put("j2", "ns/a", &alice, "Bearer A2", exp_in(60))
            .await
            .expect("put");
        s.put(
            "j3",
            "ns/a",
            &s.subject_digest("bob"),
            "Bearer B",
            exp_in(60),
        )
        .await
        .expect("put");
        assert_eq!(
            s.get("j1", "ns/a", "alice").await.as_deref(),
            Some("Bearer A1")
        );
        // Another subject on the same session, another server: nothing.
        assert_eq!(s.get("j1", "ns/a", "bob").await, None);
        assert_eq!(s.get("j1", "ns/b", "alice").await, None);
        s.local.run_pending_tasks();
        assert_eq!(s.holders().await.expect("holders").get("ns/a"), Some(&2));
        s.forget("j1", "ns/a", "alice").await;
        assert_eq!(s.get("j1", "ns/a", "alice").await, None);
        s.put("j9", "ns/b", &alice, "Bearer A9", exp_in(60))
            .await
            .expect("put");
        s.forget_session("j9").await;
        assert_eq!(s.get("j9", "ns/b", "alice").await, None);
        assert_eq!(s.revoke("ns/a", "alice").await, Ok(1));
        assert_eq!(s.get("j2", "ns/a", "alice").await, None);
        assert_eq!(
            s.get("j3", "ns/a", "bob").await.as_deref(),
            Some("Bearer B")
        );
        // An expired session stores nothing.
        assert_eq!(s.put("j4", "ns/a", &alice, "x", 1).await, Err(Unavailable));
    }

    #[test]
    fn sealed_values_are_bound_to_their_key_and_signing_key() {
        let s = UserTokens::new(b"0123456789abcdef0123456789abcdef", None);
        let sealed = s.seal("k1", "Bearer secret").expect("seal");
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(s.open("k1", &sealed).as_deref(), Some("Bearer secret"));
        assert_eq!(s.open("k2", &sealed), None);
        let other = UserTokens::new(b"another signing key, 32 bytes long", None);
        assert_eq!(other.open("k1", &sealed), None);
        assert_ne!(s.seal("k1", "Bearer secret"), Some(sealed));
    }

    #[tokio::test]
    async fn a_pending_elicitation_is_claimed_once() {
        let s = UserTokens::new(b"0123456789abcdef0123456789abcdef", None);
        let p = Pending {
            jti: "j".into(),
            server: "ns/a".into(),
            subject: s.subject_digest("alice"),
            exp: exp_in(60),
        };
        let id = s.begin(&p).await.expect("begin");
        assert_eq!(s.peek(&id).await, Ok(Some(p.clone())));
        assert_eq!(s.claim(&id).await, Ok(Some(p)));
        assert_eq!(s.claim(&id).await, Ok(None));
        assert_eq!(s.peek("nope").await, Ok(None));
    }

    #[test]
    fn holders_count_distinct_subjects_per_server() {
        let k = |server: &str, sub: &str, jti: &str| UserTokens::token_key(server, sub, jti);
        let keys = vec![
            k("ns/a", "s1", "j1"),
            k("ns/a", "s1", "caller:sub:x"),
            k("ns/a", "s2", "j2"),
            k("ns/b", "s1", "j1"),
            "mcp-router:user-token:zz:s:j".into(),
            "other".into(),
        ];
        assert_eq!(token_key_jti(&keys[1]), Some("caller:sub:x"));
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
        let h = count_holders(&keys);
        assert_eq!(h.get("ns/a"), Some(&2));
        assert_eq!(h.get("ns/b"), Some(&1));
        assert_eq!(h.len(), 2);
    }
}
