//! The `x-mcp-authorized` header a policy engine (e.g. Authorino) sets after checking a caller:
//! an ES256 JWT, verified with `TRUSTED_HEADER_PUBLIC_KEY`, whose claim `allowed-capabilities`
//! (a JSON string) lists the tools and prompts the caller may use.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::access::Capabilities;

/// Verifies trusted headers with the policy engine's public key.
pub struct TrustedHeader {
    key: DecodingKey,
    validation: Validation,
}

impl TrustedHeader {
    /// `pem` is an EC P-256 public key (PEM).
    pub fn from_pem(pem: &str) -> Result<TrustedHeader, jsonwebtoken::errors::Error> {
        let key = DecodingKey::from_ec_pem(pem.as_bytes())?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.validate_aud = false;
        validation.set_required_spec_claims::<&str>(&[]);
        validation.leeway = 30;
        Ok(TrustedHeader { key, validation })
    }

    /// The capabilities a header grants; `None` when it is not a valid signed header (the
    /// caller then gets nothing listed, never everything).
    pub fn verify(&self, value: &str) -> Option<Capabilities> {
        let data = jsonwebtoken::decode::<Value>(value, &self.key, &self.validation).ok()?;
        let claim = data.claims.get("allowed-capabilities")?;
        match claim {
            Value::String(s) => Capabilities::parse(s),
            // Tolerate the object written inline rather than as a string.
            Value::Object(_) => Capabilities::parse(&claim.to_string()),
            _ => None,
        }
    }

    /// The `sub` claim of a validly signed header: the caller as the policy engine verified it
    /// (for the `/tokens` page of URL elicitation), when the engine puts one in.
    pub fn subject(&self, value: &str) -> Option<String> {
        let data = jsonwebtoken::decode::<Value>(value, &self.key, &self.validation).ok()?;
        data.claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }
}
