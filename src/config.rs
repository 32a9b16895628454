//! The gateway config file (the seed gateway's schema), its validation, and the immutable snapshot
//! every component reads. Reloading lives in [`reload`].
//!
//! ```yaml
//! servers:
//!   - name: mcp-test/kubernetes-mcp     # value of x-mcp-servername
//!     url: http://kmcp.mcp-test.svc.cluster.local:9999/mcp
//!     hostname: kubernetes-mcp.example.com
//!     prefix: kube_
//!     credential: "Bearer …"           # optional Authorization for the broker's own calls
//!     caCert: "-----BEGIN CERTIFICATE-----…"   # CA bundle for an https url (PEM)
//!     state: Enabled                   # Enabled | Disabled ("" = Enabled)
//! virtualServers:
//!   - name: mcp-test/dev-tools
//!     tools: [kube_pods_list]
//! gatewayCACertPEM: "…"               # CA bundle trusted for every upstream and the gateway
//! ```

pub mod auth;
pub mod reload;

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;

/// The whole file as written.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConfigFile {
    #[serde(default)]
    pub servers: Vec<ServerConfig>,
    #[serde(default)]
    pub virtual_servers: Vec<VirtualServerConfig>,
    #[serde(default, rename = "gatewayCACertPEM")]
    pub gateway_ca_cert_pem: Option<String>,
    /// Native token validation and per-tool authorization (an extension of the seed's schema).
    #[serde(default)]
    pub auth: Option<auth::AuthFile>,
}

/// One upstream MCP server.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServerConfig {
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub credential: Option<String>,
    #[serde(default)]
    pub ca_cert: Option<String>,
    #[serde(default)]
    pub state: ServerState,
    /// RFC 8693 token exchange for calls to this server (an extension of the seed's schema).
    #[serde(default)]
    pub token_exchange: Option<auth::TokenExchangeFile>,
    /// Per-user credentials asked of each user by URL elicitation (the seed's key; acted on with
    /// `--enable-url-elicitation`).
    #[serde(default, rename = "tokenURLElicitation")]
    pub token_url_elicitation: Option<TokenUrlElicitationFile>,
    /// Tools listed per user, with the user's own credentials (the seed's key).
    #[serde(default)]
    pub user_specific_list: bool,
}

/// `tokenURLElicitation: {url?}`: where users give their credential for a server; empty or
/// absent, the gateway's own `/tokens` page.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TokenUrlElicitationFile {
    #[serde(default)]
    pub url: String,
}

/// Whether a server takes part in routing and aggregation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum ServerState {
    #[default]
    #[serde(alias = "")]
    Enabled,
    Disabled,
}

/// A named subset of the gateway's (prefixed) tools, chosen with `x-mcp-virtualserver`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VirtualServerConfig {
    pub name: String,
    #[serde(default)]
    pub tools: Vec<String>,
    #[serde(default)]
    pub prompts: Vec<String>,
}

/// A config file that cannot be used, with the path of the offending field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "{}: {}", self.field, self.reason)
        }
    }
}

impl std::error::Error for ConfigError {}

fn err(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// A validated upstream server, as routing and discovery use it.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    pub name: Arc<str>,
    pub url: reqwest::Url,
    /// The request path at the upstream (`:path` of routed calls), from `url`.
    pub path: Arc<str>,
    pub hostname: Arc<str>,
    pub prefix: Arc<str>,
    pub credential: Option<String>,
    /// The server's own CA bundle (`caCert`), trusted for its connections; checked PEM.
    pub ca_cert: Option<Arc<str>>,
    /// The config's `gatewayCACertPEM`, trusted for this server's connections too (and for the
    /// hairpin through the gateway); a copy, so that a change of it reconnects the server.
    pub gateway_ca_cert: Option<Arc<str>>,
    pub enabled: bool,
    pub token_exchange: Option<Arc<auth::TokenExchange>>,
    /// `tokenURLElicitation`: `Some(None)` for the gateway's own `/tokens` page, `Some(Some(url))`
    /// for the server's page.
    pub token_url_elicitation: Option<Option<reqwest::Url>>,
    /// `userSpecificList`: not discovered by the gateway; listed per user.
    pub user_specific_list: bool,
}

/// A validated virtual server.
#[derive(Debug, Clone, PartialEq)]
pub struct VirtualServer {
    pub name: String,
    pub tools: HashSet<String>,
    pub prompts: HashSet<String>,
}

/// The immutable, validated configuration. Swapped whole on reload.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    pub servers: Vec<Arc<Server>>,
    pub virtual_servers: Vec<VirtualServer>,
    /// `gatewayCACertPEM`, checked PEM; also in each [`Server`].
    pub gateway_ca_cert_pem: Option<Arc<str>>,
    pub auth: Option<Arc<auth::Auth>>,
    /// Keys of the file that were not used (see [`ignored_key_notice`]), logged when loaded.
    pub ignored_keys: Vec<String>,
}

/// Per-server keys of the seed's schema that mcp-router accepts but does not act on.
const SEED_SERVER_KEYS: &[&str] = &["auth", "category", "hint", "tags"];

/// What to tell of a key the file has and mcp-router does not use: a seed setting it does not
/// act on, or a key it does not know (a typo would otherwise go unnoticed).
pub fn ignored_key_notice(path: &str) -> String {
    let key = path.rsplit('.').next().unwrap_or(path);
    let per_server = path.starts_with("servers[") && path.matches('.').count() == 1;
    if per_server && SEED_SERVER_KEYS.contains(&key) {
        format!("{path}: a setting of the seed gateway that mcp-router does not act on")
    } else {
        format!("{path}: not a known setting, ignored (a misspelling?)")
    }
}

/// A key path as the field errors name them: `servers[0].prefix`.
fn key_path(p: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match p {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", key_path(parent)),
        Path::Map { parent, key } => {
            let parent = key_path(parent);
            if parent.is_empty() {
                key.clone()
            } else {
                format!("{parent}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => key_path(parent),
    }
}

impl Config {
    /// Parses and validates YAML text.
    pub fn from_yaml(text: &str) -> Result<Config, ConfigError> {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let mut ignored = Vec::new();
        let mut note = |p: serde_ignored::Path<'_>| ignored.push(key_path(&p));
        let de = serde_ignored::Deserializer::new(de, &mut note);
        let file: ConfigFile = match serde_path_to_error::deserialize(de) {
            Ok(file) => file,
            Err(e) => {
                let path = e.path().to_string();
                let field = if path == "." { String::new() } else { path };
                return Err(err(field, e.into_inner().to_string()));
            }
        };
        let mut config = Config::validate(file)?;
        config.ignored_keys = ignored;
        Ok(config)
    }

    /// Checks every rule the file must follow and builds the snapshot.
    pub fn validate(file: ConfigFile) -> Result<Config, ConfigError> {
        let gateway_ca_cert = ca_bundle(file.gateway_ca_cert_pem, "gatewayCACertPEM")?;
        let mut names = HashSet::new();
        let mut servers = Vec::with_capacity(file.servers.len());
        for (i, s) in file.servers.into_iter().enumerate() {
            let at = |f: &str| format!("servers[{i}].{f}");
            if s.name.trim().is_empty() {
                return Err(err(at("name"), "must not be empty"));
            }
            if !names.insert(s.name.clone()) {
                return Err(err(
                    at("name"),
                    format!("duplicate server name {:?}", s.name),
                ));
            }
            let url = reqwest::Url::parse(&s.url)
                .map_err(|e| err(at("url"), format!("not a valid URL ({e})")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(err(at("url"), "scheme must be http or https"));
            }
            let Some(url_host) = url.host_str().map(str::to_owned) else {
                return Err(err(at("url"), "must have a host"));
            };
            if !is_valid_prefix(&s.prefix) {
                return Err(err(
                    at("prefix"),
                    "must match ^[a-z0-9][a-z0-9_]*$ or be empty",
                ));
            }
            let hostname = if s.hostname.trim().is_empty() {
                url_host
            } else {
                s.hostname.trim().to_owned()
            };
            if hostname.contains(['/', ' ']) {
                return Err(err(at("hostname"), "must be a host name"));
            }
            if let Some(c) = &s.credential {
                if c.contains(['\r', '\n']) {
                    return Err(err(at("credential"), "must not contain line breaks"));
                }
            }
            let ca_cert = ca_bundle(s.ca_cert, &at("caCert"))?;
            let token_exchange = match s.token_exchange {
                Some(te) => Some(Arc::new(auth::validate_exchange(
                    te,
                    &s.name,
                    &at("tokenExchange"),
                )?)),
                None => None,
            };
            let token_url_elicitation = match s.token_url_elicitation {
                None => None,
                Some(t) if t.url.trim().is_empty() => Some(None),
                Some(t) => {
                    let at = at("tokenURLElicitation.url");
                    let u = reqwest::Url::parse(t.url.trim())
                        .map_err(|e| err(&at, format!("not a valid URL ({e})")))?;
                    if !matches!(u.scheme(), "http" | "https") {
                        return Err(err(at, "scheme must be http or https"));
                    }
                    Some(Some(u))
                }
            };
            let mut path = url.path().to_owned();
            if let Some(q) = url.query() {
                path.push('?');
                path.push_str(q);
            }
            servers.push(Arc::new(Server {
                name: s.name.into(),
                path: path.into(),
                url,
                hostname: hostname.into(),
                prefix: s.prefix.into(),
                credential: s.credential.filter(|c| !c.is_empty()),
                ca_cert,
                gateway_ca_cert: gateway_ca_cert.clone(),
                enabled: s.state == ServerState::Enabled,
                token_exchange,
                token_url_elicitation,
                user_specific_list: s.user_specific_list,
            }));
        }
        let mut vs_names = HashSet::new();
        let mut virtual_servers = Vec::with_capacity(file.virtual_servers.len());
        for (i, v) in file.virtual_servers.into_iter().enumerate() {
            if v.name.trim().is_empty() {
                return Err(err(
                    format!("virtualServers[{i}].name"),
                    "must not be empty",
                ));
            }
            if !vs_names.insert(v.name.clone()) {
                return Err(err(
                    format!("virtualServers[{i}].name"),
                    format!("duplicate virtual server name {:?}", v.name),
                ));
            }
            virtual_servers.push(VirtualServer {
                name: v.name,
                tools: v.tools.into_iter().collect(),
                prompts: v.prompts.into_iter().collect(),
            });
        }
        Ok(Config {
            servers,
            virtual_servers,
            gateway_ca_cert_pem: gateway_ca_cert,
            auth: match file.auth {
                Some(a) => Some(Arc::new(auth::validate_auth(a)?)),
                None => None,
            },
            ignored_keys: Vec::new(),
        })
    }

    /// The enabled servers, in file order.
    pub fn enabled_servers(&self) -> impl Iterator<Item = &Arc<Server>> {
        self.servers.iter().filter(|s| s.enabled)
    }

    /// A server by its name.
    pub fn server(&self, name: &str) -> Option<&Arc<Server>> {
        self.servers.iter().find(|s| &*s.name == name)
    }

    /// A virtual server by its name.
    pub fn virtual_server(&self, name: &str) -> Option<&VirtualServer> {
        self.virtual_servers.iter().find(|v| v.name == name)
    }
}

/// A CA bundle field: absent or blank is none (the seed's ""), anything else must be PEM with at
/// least one certificate ([`crate::tls::ca_bundle`]).
fn ca_bundle(pem: Option<String>, field: &str) -> Result<Option<Arc<str>>, ConfigError> {
    match pem.filter(|p| !p.trim().is_empty()) {
        None => Ok(None),
        Some(p) => {
            crate::tls::ca_bundle(&p).map_err(|reason| err(field, reason))?;
            Ok(Some(p.into()))
        }
    }
}

/// `^[a-z0-9][a-z0-9_]*$` or empty.
pub fn is_valid_prefix(prefix: &str) -> bool {
    let mut bytes = prefix.bytes();
    match bytes.next() {
        None => true,
        Some(first) => {
            (first.is_ascii_lowercase() || first.is_ascii_digit())
                && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_not_used_are_reported_with_their_path() {
        let c = Config::from_yaml(
            r#"
servers:
  - name: ns/a
    url: http://a:9999/mcp
    prefx: a_
    category: [k8s]
    tokenURLElicitation: {url: "https://x"}
    userSpecificList: true
    tags: [t]
  - name: ns/b
    url: http://b:9999/mcp
virtualServers:
  - name: ns/v
    tools: [a_x]
    tool: [a_y]
gatewayCACertPem: "x"
auth:
  issuer: https://idp.example
"#,
        )
        .expect("valid");
        assert_eq!(
            c.ignored_keys,
            [
                "servers[0].prefx",
                "servers[0].category",
                "servers[0].tags",
                "virtualServers[0].tool",
                "gatewayCACertPem",
            ]
        );
        for (path, says) in [
            ("servers[0].prefx", "not a known setting"),
            ("servers[0].category", "seed gateway"),
            ("servers[3].hint", "seed gateway"),
            ("servers[0].auth", "seed gateway"),
            ("auth.tags", "not a known setting"),
            ("tags", "not a known setting"),
            ("servers[0].tokenExchange.tags", "not a known setting"),
        ] {
            assert!(ignored_key_notice(path).contains(says), "{path}");
        }
        let clean =
            Config::from_yaml("servers: [{name: s, url: 'http://s/mcp'}]\n").expect("valid");
        assert!(clean.ignored_keys.is_empty());
    }

    const SEED_EXAMPLE: &str = r#"
servers:
  - name: mcp-test/kubernetes-mcp
    url: http://kmcp.mcp-test.svc.cluster.local:9999/mcp
    hostname: kubernetes-mcp.example.com
    prefix: kube_
    credential: "Bearer abc"
    state: Enabled
  - name: mcp-test/everything
    url: http://everything:3001/mcp?x=1
    prefix: ""
    state: ""
  - name: mcp-test/off
    url: https://off.example.com/
    hostname: off.example.com
    state: Disabled
virtualServers:
  - name: mcp-test/dev-tools
    tools: [kube_pods_list]
gatewayCACertPEM: ""
"#;

    #[test]
    fn the_seed_schema_parses() {
        let c = Config::from_yaml(SEED_EXAMPLE).expect("valid");
        assert_eq!(c.servers.len(), 3);
        let k = &c.servers[0];
        assert_eq!(&*k.name, "mcp-test/kubernetes-mcp");
        assert_eq!(&*k.path, "/mcp");
        assert_eq!(&*k.hostname, "kubernetes-mcp.example.com");
        assert_eq!(&*k.prefix, "kube_");
        assert_eq!(k.credential.as_deref(), Some("Bearer abc"));
        assert!(k.enabled);
        let e = &c.servers[1];
        assert_eq!(
            &*e.hostname, "everything",
            "hostname defaults to the url's host"
        );
        assert_eq!(&*e.path, "/mcp?x=1");
        assert!(e.enabled, "empty state means Enabled");
        assert!(!c.servers[2].enabled);
        assert_eq!(c.enabled_servers().count(), 2);
        assert!(c
            .virtual_server("mcp-test/dev-tools")
            .is_some_and(|v| v.tools.contains("kube_pods_list")));
        assert_eq!(c.gateway_ca_cert_pem, None);
    }

    #[test]
    fn empty_file_is_an_empty_config() {
        assert_eq!(Config::from_yaml("{}"), Ok(Config::default()));
        assert_eq!(Config::from_yaml("servers: []"), Ok(Config::default()));
    }

    #[test]
    fn bad_files_name_the_field() {
        for (yaml, field, reason) in [
            (
                "servers: [{name: a, url: 'http://a/mcp', prefix: Kube_}]",
                "servers[0].prefix",
                "must match",
            ),
            (
                "servers: [{name: a, url: 'http://a/mcp', prefix: _x}]",
                "servers[0].prefix",
                "must match",
            ),
            (
                "servers: [{name: a, url: 'not a url'}]",
                "servers[0].url",
                "not a valid URL",
            ),
            (
                "servers: [{name: a, url: 'ftp://a/'}]",
                "servers[0].url",
                "scheme",
            ),
            (
                "servers: [{name: '', url: 'http://a/'}]",
                "servers[0].name",
                "empty",
            ),
            (
                "servers: [{name: a, url: 'http://a/'}, {name: a, url: 'http://b/'}]",
                "servers[1].name",
                "duplicate",
            ),
            (
                "servers: [{name: a, url: 'http://a/', state: Sleeping}]",
                "servers[0].state",
                "unknown variant",
            ),
            ("servers: [{name: a}]", "servers[0]", "missing field `url`"),
            (
                "servers: [{name: a, url: 'http://a/', credential: \"x\\ny\"}]",
                "servers[0].credential",
                "line breaks",
            ),
            ("servers: {name: a}", "servers", "expected a sequence"),
            (
                "virtualServers: [{name: v}, {name: v}]",
                "virtualServers[1].name",
                "duplicate",
            ),
            ("servers: [", "servers", "did not find expected node"),
        ] {
            let e = Config::from_yaml(yaml).expect_err(yaml);
            assert_eq!(e.field, field, "{yaml}: {e}");
            assert!(e.reason.contains(reason), "{yaml}: {e}");
        }
    }

    #[test]
    fn ca_bundles_must_hold_a_certificate_and_name_the_field() {
        let ca = crate::tls::tests::test_ca_pem();
        let yaml_str = |s: &str| serde_json::to_string(s).expect("json string is yaml");
        let (ca_y, garbage) = (yaml_str(&ca), yaml_str("not a pem at all"));
        let frame = yaml_str("-----BEGIN CERTIFICATE-----\ntest\n-----END CERTIFICATE-----");
        let server = |ca: &str| format!("{{name: a, url: 'https://a/mcp', caCert: {ca}}}");
        for (yaml, want) in [
            // Good bundles, and blank meaning none (the seed writes "").
            (format!("servers: [{}]", server(&ca_y)), Ok((true, false))),
            (
                format!("gatewayCACertPEM: {ca_y}\nservers: [{{name: a, url: 'https://a/'}}]"),
                Ok((false, true)),
            ),
            (
                format!("gatewayCACertPEM: {ca_y}\nservers: [{}]", server(&ca_y)),
                Ok((true, true)),
            ),
            (
                "gatewayCACertPEM: ''\nservers: [{name: a, url: 'https://a/', caCert: '  '}]"
                    .to_owned(),
                Ok((false, false)),
            ),
            // Bad ones name the field.
            (
                format!("servers: [{}]", server(&garbage)),
                Err(("servers[0].caCert", "at least one certificate")),
            ),
            (
                format!(
                    "servers: [{}, {{name: b, url: 'https://b/', caCert: {frame}}}]",
                    server(&ca_y)
                ),
                Err(("servers[1].caCert", "certificate 1")),
            ),
            (
                format!("gatewayCACertPEM: {garbage}"),
                Err(("gatewayCACertPEM", "at least one certificate")),
            ),
            (
                format!("gatewayCACertPEM: {frame}\nservers: [{}]", server(&ca_y)),
                Err((
                    "gatewayCACertPEM",
                    "certificate 1 is not a usable CA certificate",
                )),
            ),
            (
                "servers: [{name: a, url: 'https://a/', caCert: [x]}]".to_owned(),
                Err(("servers[0].caCert", "invalid type")),
            ),
        ] {
            match (Config::from_yaml(&yaml), want) {
                (Ok(c), Ok((own, gateway))) => {
                    let s = &c.servers[0];
                    assert_eq!(s.ca_cert.is_some(), own, "{yaml}");
                    assert_eq!(s.gateway_ca_cert.is_some(), gateway, "{yaml}");
                    assert_eq!(c.gateway_ca_cert_pem.is_some(), gateway, "{yaml}");
                    if own {
                        assert_eq!(s.ca_cert.as_deref(), Some(ca.as_str()));
                    }
                }
                (Err(e), Err((field, reason))) => {
                    assert_eq!(e.field, field, "{yaml}: {e}");
                    assert!(e.reason.contains(reason), "{yaml}: {e}");
                }
                (got, want) => panic!("{yaml}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn auth_and_token_exchange_parse_and_validate() {
        std::env::set_var("MCP_ROUTER_TEST_SECRET", "s3cret");
        let c = Config::from_yaml(
            r#"
auth:
  issuer: https://idp-a.example.com/realms/mcp
  audience: [mcp-gateway, account]
servers:
  - name: ns/kube
    url: http://kube:9999/mcp
    tokenExchange:
      tokenUrl: https://idp-b.example.com/token
      clientId: gw-b
      clientSecretEnv: MCP_ROUTER_TEST_SECRET
      scopes: [openid]
      via:
        tokenUrl: https://idp-a.example.com/token
        clientId: gw-a
        audience: https://idp-b.example.com
"#,
        )
        .expect("valid");
        let a = c.auth.as_ref().expect("auth");
        assert_eq!(a.audiences, ["mcp-gateway", "account"]);
        assert_eq!(a.jwks_uri, None);
        let te = c.servers[0].token_exchange.as_ref().expect("exchange");
        assert_eq!(te.audience, "ns/kube", "defaults to the server name");
        assert_eq!(
            te.client_secret.as_ref().map(|s| s.expose()),
            Some("s3cret")
        );
        let via = te.via.as_ref().expect("via");
        assert_eq!(via.audience, "https://idp-b.example.com");
        assert!(via.client_secret.is_none());
        for (yaml, field, reason) in [
            ("auth: {issuer: 'not a url'}", "auth.issuer", "URL"),
            ("auth: {issuer: 'https://i', rolesClaim: 'a..b'}", "auth.rolesClaim", "empty segment"),
            ("auth: {issuer: 'https://i', extra: 1}", "auth", "unknown field"),
            (
                "servers: [{name: a, url: 'http://a/', tokenExchange: {tokenUrl: 'http://t/', clientId: c, clientSecretEnv: MCP_ROUTER_NO_SUCH_VAR}}]",
                "servers[0].tokenExchange.clientSecretEnv",
                "not set",
            ),
            (
                "servers: [{name: a, url: 'http://a/', tokenExchange: {tokenUrl: 'x', clientId: c}}]",
                "servers[0].tokenExchange.tokenUrl",
                "not a valid URL",
            ),
            (
                "servers: [{name: a, url: 'http://a/', tokenExchange: {tokenUrl: 'http://t/', clientId: c, via: {tokenUrl: 'http://t/', clientId: c, via: {tokenUrl: 'http://t/', clientId: c}}}}]",
                "servers[0].tokenExchange.via.via",
                "at most two steps",
            ),
        ] {
            let e = Config::from_yaml(yaml).expect_err(yaml);
            assert!(e.field.starts_with(field), "{yaml}: {e}");
            assert!(e.reason.contains(reason), "{yaml}: {e}");
        }
    }

    #[test]
    fn prefixes() {
        for (p, ok) in [
            ("", true),
            ("kube_", true),
            ("k8s", true),
            ("0a", true),
            ("_a", false),
            ("A", false),
            ("a-b", false),
            ("a.b", false),
        ] {
            assert_eq!(is_valid_prefix(p), ok, "{p}");
        }
    }
}
