//! The config file's auth parts: the gateway's `auth:` block (native OIDC token validation and
//! per-tool authorization) and a server's `tokenExchange:` (RFC 8693, one or two steps).
//!
//! ```yaml
//! auth:
//!   issuer: https://keycloak.example.com/realms/mcp   # tokens must carry this `iss`
//!   jwksUri: https://…/certs                         # optional: else OIDC discovery at the issuer
//!   audience: mcp-gateway                            # optional: string or list; checked when set
//!   rolesClaim: "resource_access.{server}.roles"     # optional: where a user's tools are listed
//!   resourceMetadata:                                # optional: RFC 9728 document (OAUTH_* env wins)
//!     resource: https://mcp.example.com/mcp
//!     authorizationServers: [https://keycloak.example.com/realms/mcp]
//!     scopesSupported: [openid]
//! servers:
//!   - name: mcp-test/kubernetes-mcp
//!     tokenExchange:
//!       tokenUrl: https://keycloak.example.com/realms/mcp/protocol/openid-connect/token
//!       clientId: mcp-gateway
//!       clientSecretEnv: TOKEN_EXCHANGE_SECRET         # or clientSecretFile: /path
//!       audience: mcp-test/kubernetes-mcp              # default: the server name
//!       scopes: [openid]
//!       via:                                           # optional first step (another domain)
//!         tokenUrl: https://idp-a.example.com/token
//!         clientId: mcp-gateway
//!         clientSecretEnv: DOMAIN_A_SECRET
//!         audience: https://idp-b.example.com          # what domain B accepts
//! ```

use std::fmt;
use std::sync::Arc;

use serde::Deserialize;

use super::{err, ConfigError};

/// `audience: x` or `audience: [x, y]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// The `auth:` block as written.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthFile {
    pub issuer: String,
    #[serde(default)]
    pub jwks_uri: Option<String>,
    #[serde(default)]
    pub audience: Option<OneOrMany>,
    #[serde(default)]
    pub roles_claim: Option<String>,
    #[serde(default)]
    pub resource_metadata: Option<ResourceMetadataFile>,
}

/// RFC 9728 fields the gateway publishes (each may also come from the seed's `OAUTH_*` env).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceMetadataFile {
    #[serde(default)]
    pub resource: Option<String>,
    #[serde(default)]
    pub resource_name: Option<String>,
    #[serde(default)]
    pub authorization_servers: Option<Vec<String>>,
    #[serde(default)]
    pub scopes_supported: Option<Vec<String>>,
    #[serde(default)]
    pub bearer_methods_supported: Option<Vec<String>>,
}

/// A server's `tokenExchange:` as written.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenExchangeFile {
    pub token_url: String,
    pub client_id: String,
    #[serde(default)]
    pub client_secret_env: Option<String>,
    #[serde(default)]
    pub client_secret_file: Option<String>,
    #[serde(default)]
    pub audience: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub via: Option<Box<TokenExchangeFile>>,
}

/// One segment of the roles claim path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimSegment {
    Key(String),
    /// `{server}`: the server's name, as one key (names contain `/`).
    Server,
}

/// Where in a token's claims the names a user may use are listed, per server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPath(pub Vec<ClaimSegment>);

/// The seed's rule: `resource_access[<server name>].roles`.
pub const DEFAULT_ROLES_CLAIM: &str = "resource_access.{server}.roles";

impl ClaimPath {
    pub fn parse(text: &str) -> Result<ClaimPath, String> {
        let segments: Vec<ClaimSegment> = text
            .split('.')
            .map(|s| match s {
                "" => Err(format!("{text:?} has an empty segment")),
                "{server}" => Ok(ClaimSegment::Server),
                s if s.contains(['{', '}']) => Err(format!(
                    "{text:?}: only the whole segment {{server}} may be a placeholder"
                )),
                s => Ok(ClaimSegment::Key(s.to_owned())),
            })
            .collect::<Result<_, _>>()?;
        Ok(ClaimPath(segments))
    }

    /// The names listed for `server` in `claims`; empty when the path leads nowhere.
    pub fn names<'a>(&self, claims: &'a serde_json::Value, server: &str) -> Vec<&'a str> {
        let mut at = claims;
        for seg in &self.0 {
            let key = match seg {
                ClaimSegment::Key(k) => k.as_str(),
                ClaimSegment::Server => server,
            };
            match at.get(key) {
                Some(v) => at = v,
                None => return Vec::new(),
            }
        }
        match at {
            serde_json::Value::Array(items) => items.iter().filter_map(|v| v.as_str()).collect(),
            // A space-separated string, as `scope` claims are written.
            serde_json::Value::String(s) => s.split_whitespace().collect(),
            _ => Vec::new(),
        }
    }
}

/// The validated `auth:` block.
#[derive(Debug, Clone, PartialEq)]
pub struct Auth {
    pub issuer: String,
    pub jwks_uri: Option<reqwest::Url>,
    pub audiences: Vec<String>,
    pub roles_claim: ClaimPath,
    pub resource_metadata: ResourceMetadataFile,
}

/// A client secret read from the environment or a file when the config was loaded. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// A validated token exchange step.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenExchange {
    pub token_url: reqwest::Url,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub audience: String,
    pub scopes: Vec<String>,
    /// The first step, at another domain's token endpoint: its result is this step's subject token.
    pub via: Option<Arc<TokenExchange>>,
}

pub(super) fn validate_auth(file: AuthFile) -> Result<Auth, ConfigError> {
    let issuer = file.issuer.trim().to_owned();
    if reqwest::Url::parse(&issuer).is_err() {
        return Err(err("auth.issuer", "must be a URL"));
    }
    let jwks_uri = match file.jwks_uri.filter(|u| !u.trim().is_empty()) {
        Some(u) => Some(
            reqwest::Url::parse(u.trim())
                .map_err(|e| err("auth.jwksUri", format!("not a valid URL ({e})")))?,
        ),
        None => None,
    };
    let roles_claim = ClaimPath::parse(file.roles_claim.as_deref().unwrap_or(DEFAULT_ROLES_CLAIM))
        .map_err(|e| err("auth.rolesClaim", e))?;
    Ok(Auth {
        issuer,
        jwks_uri,
        audiences: file
            .audience
            .map(OneOrMany::into_vec)
            .unwrap_or_default()
            .into_iter()
            .filter(|a| !a.is_empty())
            .collect(),
        roles_claim,
        resource_metadata: file.resource_metadata.unwrap_or_default(),
    })
}

pub(super) fn validate_exchange(
    file: TokenExchangeFile,
    server_name: &str,
    at: &str,
) -> Result<TokenExchange, ConfigError> {
    let token_url = reqwest::Url::parse(&file.token_url)
        .map_err(|e| err(format!("{at}.tokenUrl"), format!("not a valid URL ({e})")))?;
    if !matches!(token_url.scheme(), "http" | "https") {
        return Err(err(
            format!("{at}.tokenUrl"),
            "scheme must be http or https",
        ));
    }
    if file.client_id.trim().is_empty() {
        return Err(err(format!("{at}.clientId"), "must not be empty"));
    }
    let client_secret = match (&file.client_secret_env, &file.client_secret_file) {
        (Some(_), Some(_)) => {
            return Err(err(at, "set clientSecretEnv or clientSecretFile, not both"))
        }
        (Some(var), None) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => Some(Secret(v)),
            _ => {
                return Err(err(
                    format!("{at}.clientSecretEnv"),
                    format!("environment variable {var} is not set"),
                ))
            }
        },
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(v) if !v.trim().is_empty() => Some(Secret(v.trim().to_owned())),
            Ok(_) => return Err(err(format!("{at}.clientSecretFile"), "file is empty")),
            Err(e) => {
                return Err(err(
                    format!("{at}.clientSecretFile"),
                    format!("cannot read {path}: {e}"),
                ))
            }
        },
        (None, None) => None,
    };
    let via = match file.via {
        Some(v) => {
            if v.via.is_some() {
                return Err(err(
                    format!("{at}.via.via"),
                    "at most two steps (via, then the server's own)",
                ));
            }
            Some(Arc::new(validate_exchange(
                *v,
                server_name,
                &format!("{at}.via"),
            )?))
        }
        None => None,
    };
    Ok(TokenExchange {
        token_url,
        client_id: file.client_id,
        client_secret,
        audience: file
            .audience
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| server_name.to_owned()),
        scopes: file.scopes,
        via,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn roles_claim_paths() {
        let claims = json!({
            "resource_access": {"mcp-test/kube": {"roles": ["pods_list", "namespaces_list"]}},
            "scope": "openid tools:echo",
            "nested": {"x": {"mcp-test/kube": 3}}
        });
        for (path, server, want) in [
            (
                DEFAULT_ROLES_CLAIM,
                "mcp-test/kube",
                vec!["pods_list", "namespaces_list"],
            ),
            (DEFAULT_ROLES_CLAIM, "mcp-test/other", vec![]),
            ("scope", "any", vec!["openid", "tools:echo"]),
            ("nested.x.{server}", "mcp-test/kube", vec![]),
            ("missing.{server}", "mcp-test/kube", vec![]),
        ] {
            let p = ClaimPath::parse(path).expect(path);
            assert_eq!(p.names(&claims, server), want, "{path} {server}");
        }
        for bad in ["", "a..b", "a.{srv}", "a.x{server}"] {
            assert!(ClaimPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_never_print() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(…)");
    }
}
