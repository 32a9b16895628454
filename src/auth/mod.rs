//! Identity and credentials: the gateway's own session tokens and hairpin key ([`session`]),
//! bearer token validation against an OIDC issuer ([`oidc`]), what a caller may use
//! ([`access`], [`trusted_header`]), RFC 8693 token exchange ([`exchange`]) and the RFC 9728
//! metadata the gateway publishes ([`metadata`]). [`Gatekeeper`] holds them for the router and
//! the broker.

pub mod access;
pub mod elicitation;
pub mod exchange;
pub mod metadata;
pub mod oidc;
pub mod session;
pub mod trusted_header;
pub mod user_tokens;

use std::sync::{Arc, Mutex};

use crate::config::auth::Auth;
use access::Permissions;
use exchange::Exchanger;
use metadata::MetadataEnv;
use oidc::{AuthError, Identity, Validator};
use trusted_header::TrustedHeader;

/// The auth state shared by the router and the broker of one process.
pub struct Gatekeeper {
    http: reqwest::Client,
    /// The validator of the current `auth:` config; rebuilt when the config changes it.
    current: Mutex<Option<Arc<Validator>>>,
    pub exchanger: Exchanger,
    pub trusted: Option<TrustedHeader>,
    /// `--enforce-capability-filtering`: without a valid `x-mcp-authorized` header, lists are
    /// empty (the seed's flag).
    pub enforce_capability_filtering: bool,
    pub metadata_env: MetadataEnv,
}

/// A request's caller, as far as auth goes.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// Set when native auth verified a bearer token.
    pub identity: Option<Identity>,
    /// The bearer token itself (to exchange); never logged.
    pub token: Option<Arc<str>>,
}

/// Whether a server's static `credential` is what the upstream sees as `Authorization` on a
/// client's call (discovery, the gateway's own call, always uses it). With native auth the
/// client's verified token is for the gateway and must not be passed on, so the credential
/// replaces it. Without native auth, never: a policy engine behind the router (the seed's
/// setup) must see what the client sent, and an anonymous caller must not be presented to it as
/// the gateway's service account; the credential is for the gateway's own calls, as in the seed.
pub fn credential_applies(native_auth: bool) -> bool {
    native_auth
}

/// What a client's request to an upstream carries as `Authorization`.
#[derive(Debug, Clone, Copy)]
pub enum UpstreamAuth<'a> {
    /// The caller's token exchanged for the server's audience (RFC 8693).
    Exchange(&'a crate::config::auth::TokenExchange),
    /// The server's static `credential` ([`credential_applies`]).
    Credential(&'a str),
    /// The client's own header, as it is (the seed's behaviour).
    Callers,
}

/// Which of [`UpstreamAuth`] a request of a caller (`verified`: native auth verified its token)
/// to `server` carries: the router's calls, and the lists the broker reads for a client. Pure.
pub fn upstream_auth(server: &crate::config::Server, verified: bool) -> UpstreamAuth<'_> {
    match (&server.token_exchange, &server.credential) {
        (Some(te), _) => UpstreamAuth::Exchange(te),
        (None, Some(c)) if credential_applies(verified) => UpstreamAuth::Credential(c),
        (None, _) => UpstreamAuth::Callers,
    }
}

impl Caller {
    /// What this caller's gateway sessions are bound to (native auth only).
    pub fn binding(&self) -> Option<&str> {
        self.identity.as_ref().map(|id| &*id.binding)
    }
}

impl Gatekeeper {
    pub fn new(
        trusted: Option<TrustedHeader>,
        enforce_capability_filtering: bool,
        metadata_env: MetadataEnv,
        metrics: Option<Arc<crate::telemetry::Metrics>>,
    ) -> Gatekeeper {
        let http = reqwest::Client::builder()
            .user_agent(concat!("mcp-router/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Gatekeeper {
            exchanger: Exchanger::new(http.clone(), metrics),
            http,
            current: Mutex::new(None),
            trusted,
            enforce_capability_filtering,
            metadata_env,
        }
    }

    /// The validator for `auth` (the same one while the config keeps the same block, so its key
    /// and token caches survive unrelated reloads).
    pub fn validator(&self, auth: &Arc<Auth>) -> Arc<Validator> {
        let mut current = match self.current.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        match &*current {
            Some(v) if **v.auth() == **auth => v.clone(),
            _ => {
                let v = Arc::new(Validator::new(auth.clone(), self.http.clone()));
                *current = Some(v.clone());
                v
            }
        }
    }

    /// Verifies the caller's bearer token when `auth` is configured; without it every caller
    /// passes and the token (if any) is kept for exchange. Fetching the provider's keys, when
    /// needed, ends by `deadline`.
    pub async fn authenticate(
        &self,
        auth: Option<&Arc<Auth>>,
        authorization: Option<&str>,
        deadline: crate::deadline::Deadline,
    ) -> Result<Caller, AuthError> {
        let token = oidc::bearer(authorization).map(Arc::<str>::from);
        let Some(auth) = auth else {
            return Ok(Caller {
                identity: None,
                token,
            });
        };
        let Some(t) = token else {
            return Err(AuthError::Missing);
        };
        // Verifying may fetch keys: a large future, boxed so that the router's per-request
        // futures stay small when no auth is configured (moving them showed up as memcpy).
        let identity = Box::pin(self.validator(auth).verify(&t, deadline)).await?;
        Ok(Caller {
            identity: Some(identity),
            token: Some(t),
        })
    }

    /// What a caller may use, from its verified claims and a trusted header.
    pub fn permissions(
        &self,
        auth: Option<&Arc<Auth>>,
        caller: &Caller,
        trusted_header: Option<&str>,
    ) -> Permissions {
        let roles = match (auth, &caller.identity) {
            (Some(a), Some(id)) => Some((a.roles_claim.clone(), id.claims.clone())),
            _ => None,
        };
        let capabilities = match (&self.trusted, trusted_header) {
            (Some(t), Some(h)) => Some(Arc::new(t.verify(h).unwrap_or_else(|| {
                tracing::warn!("x-mcp-authorized header is not validly signed: nothing allowed");
                access::Capabilities::default()
            }))),
            // Enforced: no header that can be verified, nothing listed (as the seed).
            _ if self.enforce_capability_filtering => {
                Some(Arc::new(access::Capabilities::default()))
            }
            _ => None,
        };
        Permissions {
            roles,
            capabilities,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_call_to_an_upstream_carries() {
        let config = crate::config::Config::from_yaml(
            "servers:\n\
             - {name: ns/x, url: 'http://x/mcp', tokenExchange: {tokenUrl: 'http://t/', clientId: c}, credential: 'Bearer s'}\n\
             - {name: ns/c, url: 'http://c/mcp', credential: 'Bearer s'}\n\
             - {name: ns/n, url: 'http://n/mcp'}\n",
        )
        .expect("config");
        let kind = |i: usize, verified: bool| match upstream_auth(&config.servers[i], verified) {
            UpstreamAuth::Exchange(_) => "exchange",
            UpstreamAuth::Credential("Bearer s") => "credential",
            UpstreamAuth::Credential(_) => "another credential",
            UpstreamAuth::Callers => "callers",
        };
        for (server, verified, want) in [
            (0, true, "exchange"),
            (0, false, "exchange"),
            (1, true, "credential"),
            // Without native auth the client's own header goes on (a policy engine sees it).
            (1, false, "callers"),
            (2, true, "callers"),
            (2, false, "callers"),
        ] {
            assert_eq!(
                kind(server, verified),
                want,
                "server {server}, verified {verified}"
            );
        }
    }
    use access::Kind;

    const PUBLIC: &str = include_str!("../../examples/test_idp/keys/trusted-header.pub.pem");
    const PRIVATE: &[u8] = include_bytes!("../../examples/test_idp/keys/trusted-header.pem");

    fn header(caps: &str) -> String {
        let key = jsonwebtoken::EncodingKey::from_ec_pem(PRIVATE).expect("key");
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
            &serde_json::json!({"allowed-capabilities": caps, "exp": 4_000_000_000u64}),
            &key,
        )
        .expect("sign")
    }

    #[test]
    fn a_trusted_headers_subject_is_read_only_from_a_valid_signature() {
        let key = jsonwebtoken::EncodingKey::from_ec_pem(PRIVATE).expect("key");
        let sign = |claims: serde_json::Value| {
            jsonwebtoken::encode(
                &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
                &claims,
                &key,
            )
            .expect("sign")
        };
        let t = TrustedHeader::from_pem(PUBLIC).expect("pem");
        let with_sub = sign(serde_json::json!({"sub": "alice", "exp": 4_000_000_000u64}));
        assert_eq!(t.subject(&with_sub).as_deref(), Some("alice"));
        assert_eq!(t.subject(&header("{}")), None);
        let mut forged = with_sub.clone();
        forged.push('x');
        assert_eq!(t.subject(&forged), None);
    }

    #[test]
    fn a_servers_credential_replaces_a_clients_authorization_only_with_native_auth() {
        for (native_auth, applies) in [(true, true), (false, false)] {
            assert_eq!(credential_applies(native_auth), applies, "{native_auth}");
        }
    }

    #[test]
    fn what_a_list_shows_by_trusted_header_and_enforcement() {
        let granted = header(r#"{"tools":{"ns/a":["echo"]}}"#);
        // (verifying key set, header, enforced) → (echo listed, other listed)
        let cases = [
            (false, None, false, (true, true)),
            (false, None, true, (false, false)),
            (false, Some(granted.as_str()), true, (false, false)),
            (true, None, false, (true, true)),
            (true, None, true, (false, false)),
            (true, Some(granted.as_str()), false, (true, false)),
            (true, Some(granted.as_str()), true, (true, false)),
            (true, Some("forged"), false, (false, false)),
        ];
        for (keyed, h, enforce, (echo, other)) in cases {
            let trusted = keyed.then(|| TrustedHeader::from_pem(PUBLIC).expect("pem"));
            let g = Gatekeeper::new(trusted, enforce, MetadataEnv::default(), None);
            let p = g.permissions(None, &Caller::default(), h);
            assert_eq!(
                (
                    p.allows(Kind::Tool, "ns/a", "echo"),
                    p.allows(Kind::Tool, "ns/a", "other")
                ),
                (echo, other),
                "key {keyed}, header {h:?}, enforced {enforce}"
            );
        }
    }
}
