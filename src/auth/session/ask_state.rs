//! The `requestState` the gateway gives a 2026-07-28 client when it asks it a session-era
//! upstream's question ([`crate::mcp::input_required`]): an HS256 JWT under the session signing
//! key, so that the retry may reach any replica, bound to the caller, the server and the name
//! called, and short-lived. The client can read it (its own answers); it cannot change it. The
//! caller is named by a keyed digest of its key ([`SessionKeys::owner_tag`]), never the key itself
//! (which may be a digest of its `Authorization`).

use std::time::Duration;

use jsonwebtoken::{decode, encode, Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};

use super::{now_secs, SessionKeys, ISSUER, LEEWAY_SECS};
use crate::mcp::input_required::AskState;

const AUDIENCE: &str = "mcp-router-ask-state";
/// How long a client has to answer (a person may be answering an elicitation).
const TTL: Duration = Duration::from_secs(15 * 60);

/// Which call a state belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AskedIn<'a> {
    /// The caller's key (its stand-in session's `jti`).
    pub owner: &'a str,
    pub server: &'a str,
    /// The name (or URI) called, as the upstream knows it.
    pub name: &'a str,
}

#[derive(Serialize, Deserialize)]
struct AskClaims {
    iss: String,
    aud: String,
    exp: u64,
    own: String,
    srv: String,
    nam: String,
    /// Not flattened: a raw JSON value cannot be read through serde's flatten buffer.
    st: AskState,
}

impl SessionKeys {
    /// The signed `requestState` for `state`, asked in `call`.
    pub fn mint_ask_state(
        &self,
        call: AskedIn<'_>,
        state: &AskState,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let own = self.owner_tag(call.owner).ok_or_else(|| {
            jsonwebtoken::errors::Error::from(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat)
        })?;
        let claims = AskClaims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            exp: now_secs() + TTL.as_secs(),
            own,
            srv: call.server.into(),
            nam: call.name.into(),
            st: state.clone(),
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    /// What a `requestState` this gateway issued for `call` says; `None` for one it did not
    /// issue, for another call, or expired.
    pub fn verify_ask_state(&self, token: &str, call: AskedIn<'_>) -> Option<AskState> {
        let mut v = Validation::new(Algorithm::HS256);
        v.set_issuer(&[ISSUER]);
        v.set_audience(&[AUDIENCE]);
        v.leeway = LEEWAY_SECS;
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        let c = decode::<AskClaims>(token, &self.decoding, &v).ok()?.claims;
        let own = self.owner_tag(call.owner)?;
        (c.own == own && c.srv == call.server && c.nam == call.name).then_some(c.st)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::input_required::Answered;
    use serde_json::value::RawValue;

    #[test]
    fn a_state_verifies_for_its_own_call_only() {
        let keys = SessionKeys::new(b"k", Duration::from_secs(60));
        let call = AskedIn {
            owner: "caller:sub:a",
            server: "ns/s",
            name: "t",
        };
        let state = AskState {
            answers: vec![Answered {
                method: "roots/list".into(),
                result: RawValue::from_string(r#"{"roots":[{"uri":"file:///x"}],"n":1.50}"#.into())
                    .expect("json"),
            }],
            asking: "elicitation/create".into(),
        };
        let token = keys.mint_ask_state(call, &state).expect("mint");
        assert_eq!(keys.verify_ask_state(&token, call), Some(state));
        // The caller's key is not readable in the state.
        let payload = token.split('.').nth(1).expect("payload");
        let claims =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
                .expect("base64");
        assert!(
            !String::from_utf8_lossy(&claims).contains("caller:sub:a"),
            "{}",
            String::from_utf8_lossy(&claims)
        );
        for other in [
            AskedIn {
                owner: "caller:sub:b",
                ..call
            },
            AskedIn {
                server: "ns/t",
                ..call
            },
            AskedIn { name: "u", ..call },
        ] {
            assert_eq!(keys.verify_ask_state(&token, other), None, "{other:?}");
        }
        let elsewhere = SessionKeys::new(b"other", Duration::from_secs(60));
        assert_eq!(elsewhere.verify_ask_state(&token, call), None);
        assert_eq!(keys.verify_ask_state("x.y.z", call), None);
        // A session id is not a state.
        let (session, _) = keys.mint().expect("mint");
        assert_eq!(keys.verify_ask_state(&session, call), None);
    }
}
