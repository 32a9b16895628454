//! RFC 9728 protected resource metadata, and the `WWW-Authenticate` challenge that points to it.
//!
//! Each field comes from the seed's `OAUTH_*` environment variable when set, else from the
//! config's `auth.resourceMetadata`, else from defaults (the resource is `https://<public
//! host>/mcp`, the authorization server the configured issuer).

use serde_json::{json, Value};

use crate::config::auth::{Auth, ResourceMetadataFile};

/// The seed gateway's `OAUTH_*` variables, read once at startup.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetadataEnv {
    pub resource_name: Option<String>,
    pub resource: Option<String>,
    pub authorization_servers: Option<Vec<String>>,
    pub bearer_methods_supported: Option<Vec<String>>,
    pub scopes_supported: Option<Vec<String>>,
}

fn list(v: Option<String>) -> Option<Vec<String>> {
    v.filter(|s| !s.trim().is_empty()).map(|s| {
        s.split(',')
            .map(|x| x.trim().to_owned())
            .filter(|x| !x.is_empty())
            .collect()
    })
}

impl MetadataEnv {
    /// Reads `OAUTH_RESOURCE_NAME`, `OAUTH_RESOURCE`, `OAUTH_AUTHORIZATION_SERVERS`,
    /// `OAUTH_BEARER_METHODS_SUPPORTED` and `OAUTH_SCOPES_SUPPORTED` (lists comma-separated).
    pub fn from_env() -> MetadataEnv {
        let var = |k: &str| std::env::var(k).ok().filter(|s| !s.trim().is_empty());
        MetadataEnv {
            resource_name: var("OAUTH_RESOURCE_NAME"),
            resource: var("OAUTH_RESOURCE"),
            authorization_servers: list(var("OAUTH_AUTHORIZATION_SERVERS")),
            bearer_methods_supported: list(var("OAUTH_BEARER_METHODS_SUPPORTED")),
            scopes_supported: list(var("OAUTH_SCOPES_SUPPORTED")),
        }
    }

    /// Whether anything was set (the document is served then even without native auth).
    pub fn is_set(&self) -> bool {
        *self != MetadataEnv::default()
    }
}

/// The metadata document, or `None` when neither auth nor the environment asks for one.
pub fn document(env: &MetadataEnv, auth: Option<&Auth>, public_host: &str) -> Option<Value> {
    if auth.is_none() && !env.is_set() {
        return None;
    }
    let empty = ResourceMetadataFile::default();
    let file = auth.map(|a| &a.resource_metadata).unwrap_or(&empty);
    let resource = resource(env, auth, public_host);
    let servers = env
        .authorization_servers
        .clone()
        .or_else(|| file.authorization_servers.clone())
        .or_else(|| auth.map(|a| vec![a.issuer.clone()]))
        .unwrap_or_default();
    let bearer = env
        .bearer_methods_supported
        .clone()
        .or_else(|| file.bearer_methods_supported.clone())
        .unwrap_or_else(|| vec!["header".to_owned()]);
    let mut doc = json!({
        "resource": resource,
        "authorization_servers": servers,
        "bearer_methods_supported": bearer,
    });
    if let Some(s) = env
        .scopes_supported
        .clone()
        .or_else(|| file.scopes_supported.clone())
    {
        doc["scopes_supported"] = json!(s);
    }
    if let Some(n) = env
        .resource_name
        .clone()
        .or_else(|| file.resource_name.clone())
    {
        doc["resource_name"] = json!(n);
    }
    Some(doc)
}

/// The protected resource's identifier.
pub fn resource(env: &MetadataEnv, auth: Option<&Auth>, public_host: &str) -> String {
    env.resource
        .clone()
        .or_else(|| auth.and_then(|a| a.resource_metadata.resource.clone()))
        .unwrap_or_else(|| format!("https://{public_host}/mcp"))
}

/// Where the metadata of `resource` lives (RFC 9728 §3.1: the well-known path is inserted
/// between the host and the resource's path).
pub fn metadata_url(resource: &str) -> String {
    match reqwest::Url::parse(resource) {
        Ok(u) => {
            let mut origin = u.origin().ascii_serialization();
            origin.push_str("/.well-known/oauth-protected-resource");
            let path = u.path().trim_end_matches('/');
            origin.push_str(path);
            origin
        }
        Err(_) => format!("{resource}/.well-known/oauth-protected-resource"),
    }
}

/// The `WWW-Authenticate` value of a 401.
pub fn challenge(resource: &str, error: Option<&str>) -> String {
    let mut v = format!("Bearer resource_metadata=\"{}\"", metadata_url(resource));
    if let Some(e) = error {
        v.push_str(", error=\"invalid_token\", error_description=\"");
        v.extend(
            e.chars()
                .filter(|c| *c != '"' && *c != '\\' && !c.is_control()),
        );
        v.push('"');
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_urls_insert_the_well_known_path() {
        for (resource, url) in [
            (
                "https://mcp.example.com/mcp",
                "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
            ),
            (
                "http://127.0.0.1:8888/mcp",
                "http://127.0.0.1:8888/.well-known/oauth-protected-resource/mcp",
            ),
            (
                "https://mcp.example.com/",
                "https://mcp.example.com/.well-known/oauth-protected-resource",
            ),
        ] {
            assert_eq!(metadata_url(resource), url);
        }
    }

    #[test]
    fn challenges_quote_safely() {
        assert_eq!(
            challenge("https://h/mcp", None),
            "Bearer resource_metadata=\"https://h/.well-known/oauth-protected-resource/mcp\""
        );
        assert_eq!(
            challenge("https://h/mcp", Some("bad \"x\"\n")),
            "Bearer resource_metadata=\"https://h/.well-known/oauth-protected-resource/mcp\", error=\"invalid_token\", error_description=\"bad x\""
        );
    }

    #[test]
    fn env_wins_over_config_and_defaults() {
        assert_eq!(document(&MetadataEnv::default(), None, "h"), None);
        let env = MetadataEnv {
            resource: Some("https://env/mcp".into()),
            scopes_supported: list(Some("a, b".into())),
            ..Default::default()
        };
        let d = document(&env, None, "h").expect("doc");
        assert_eq!(d["resource"], "https://env/mcp");
        assert_eq!(d["scopes_supported"], json!(["a", "b"]));
        assert_eq!(d["bearer_methods_supported"], json!(["header"]));
    }
}
