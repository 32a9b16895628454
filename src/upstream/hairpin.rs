//! Where an upstream initialize goes when it is sent back through the gateway (the "hairpin"):
//! `--mcp-gateway-private-host`, plain or TLS.
//!
//! `host:port` and `http://host:port` are the gateway's plain listener: the initialize goes to
//! `http://host:port<server path>`, as the seed's does. With `https://host:port` it goes to that
//! listener over TLS the way the seed's does: TLS SNI and the certificate's name are the
//! server's `hostname` (the route the initialize is for, whose listener certificate names it),
//! the connection goes to `host:port`. Here that is done by asking for
//! `https://<server hostname>:port<server path>` with every name resolved to `host:port`, so
//! the `Host` is the server's hostname too (the router gives the initialize that `:authority`
//! anyway). A server hostname that is an IP address is no TLS name: then the URL is
//! `https://host:port<server path>` and the certificate must name `host`.

use std::net::SocketAddr;

/// A parsed `--mcp-gateway-private-host`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PrivateHost {
    /// `https://`: the hairpin speaks TLS.
    pub tls: bool,
    /// `host[:port]` as a URL authority (IPv6 in brackets, the scheme's default port left out).
    pub authority: String,
    /// The host to resolve (IPv6 without brackets).
    pub host: String,
    pub port: u16,
}

impl PrivateHost {
    /// `host[:port]` (plain HTTP), `http://host[:port]` or `https://host[:port]`, with at most a
    /// trailing `/`: no user, path, query or fragment.
    pub fn parse(value: &str) -> Result<PrivateHost, String> {
        let v = value.trim();
        let lower = v.to_ascii_lowercase();
        let (tls, rest) = if lower.starts_with("https://") {
            (true, &v["https://".len()..])
        } else if lower.starts_with("http://") {
            (false, &v["http://".len()..])
        } else if v.contains("://") {
            return Err(format!(
                "{value:?}: the scheme must be http:// or https:// (or none, for http)"
            ));
        } else {
            (false, v)
        };
        let bad = |why: &str| {
            format!("{value:?}: {why}; expected host:port, http://host:port or https://host:port")
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() {
            return Err(bad("no host"));
        }
        if rest.contains(['/', '?', '#', '@']) || rest.contains(char::is_whitespace) {
            return Err(bad("only a host and port may be given"));
        }
        let scheme = if tls { "https" } else { "http" };
        let url =
            url::Url::parse(&format!("{scheme}://{rest}/")).map_err(|e| bad(&e.to_string()))?;
        let (host, shown) = match url.host() {
            Some(url::Host::Domain(d)) => (d.to_owned(), d.to_owned()),
            Some(url::Host::Ipv4(a)) => (a.to_string(), a.to_string()),
            Some(url::Host::Ipv6(a)) => (a.to_string(), format!("[{a}]")),
            None => return Err(bad("no host")),
        };
        let port = url
            .port_or_known_default()
            .unwrap_or(if tls { 443 } else { 80 });
        let authority = match url.port() {
            Some(p) => format!("{shown}:{p}"),
            None => shown,
        };
        Ok(PrivateHost {
            tls,
            authority,
            host,
            port,
        })
    }

    /// The URL an initialize for the server with `hostname` and request `path` is sent to.
    pub fn url(&self, hostname: &str, path: &str) -> Result<reqwest::Url, String> {
        let text = if !self.tls {
            format!("http://{}{path}", self.authority)
        } else {
            match tls_name(hostname) {
                Some(name) if self.port == 443 => format!("https://{name}{path}"),
                Some(name) => format!("https://{name}:{}{path}", self.port),
                None => format!("https://{}{path}", self.authority),
            }
        };
        reqwest::Url::parse(&text).map_err(|e| format!("bad hairpin URL {text:?}: {e}"))
    }
}

/// The DNS name in a server's `hostname` (a port after it dropped), or `None` for an IP address
/// or something that is no host.
fn tls_name(hostname: &str) -> Option<String> {
    let url = url::Url::parse(&format!("https://{hostname}/")).ok()?;
    match url.host()? {
        url::Host::Domain(d) if !d.is_empty() => Some(d.to_owned()),
        _ => None,
    }
}

/// Resolves every name to the private host: the hairpin client's connections all go to the
/// gateway, whatever server the URL (and so the TLS name) is for.
#[derive(Debug)]
pub struct PinnedResolver {
    pub host: String,
    pub port: u16,
}

impl reqwest::dns::Resolve for PinnedResolver {
    fn resolve(&self, _name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let target = (self.host.clone(), self.port);
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host(target)
                .await
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?
                .collect();
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_hosts_take_a_bare_host_or_an_http_or_https_url() {
        for (value, want) in [
            (
                "gw.example:8080",
                Ok((false, "gw.example:8080", "gw.example", 8080)),
            ),
            ("gw.example", Ok((false, "gw.example", "gw.example", 80))),
            (
                "127.0.0.1:9000",
                Ok((false, "127.0.0.1:9000", "127.0.0.1", 9000)),
            ),
            ("http://gw:8080", Ok((false, "gw:8080", "gw", 8080))),
            ("HTTP://GW:8080/", Ok((false, "gw:8080", "gw", 8080))),
            (
                "https://gw.example:8443",
                Ok((true, "gw.example:8443", "gw.example", 8443)),
            ),
            (
                "https://gw.example",
                Ok((true, "gw.example", "gw.example", 443)),
            ),
            (
                "https://gw.example:443/",
                Ok((true, "gw.example", "gw.example", 443)),
            ),
            (
                "  https://10.0.0.1:8443  ",
                Ok((true, "10.0.0.1:8443", "10.0.0.1", 8443)),
            ),
            ("[::1]:8080", Ok((false, "[::1]:8080", "::1", 8080))),
            ("https://[::1]:8443", Ok((true, "[::1]:8443", "::1", 8443))),
            (
                "mcp-gateway-istio.gateway-system.svc.cluster.local:8080",
                Ok((
                    false,
                    "mcp-gateway-istio.gateway-system.svc.cluster.local:8080",
                    "mcp-gateway-istio.gateway-system.svc.cluster.local",
                    8080,
                )),
            ),
            ("", Err("no host")),
            ("https://", Err("no host")),
            ("ftp://gw:21", Err("scheme must be http:// or https://")),
            ("grpc://gw", Err("scheme must be http:// or https://")),
            ("https://gw:8443/mcp", Err("only a host and port")),
            ("gw:8080/x", Err("only a host and port")),
            ("https://user@gw", Err("only a host and port")),
            ("https://gw?x=1", Err("only a host and port")),
            ("gw:notaport", Err("expected host:port")),
            ("gw:99999", Err("expected host:port")),
            ("g w:80", Err("only a host and port")),
        ] {
            let got = PrivateHost::parse(value);
            match (&got, want) {
                (Ok(p), Ok((tls, authority, host, port))) => {
                    assert_eq!(
                        (p.tls, p.authority.as_str(), p.host.as_str(), p.port),
                        (tls, authority, host, port),
                        "{value:?}"
                    );
                }
                (Err(e), Err(why)) => assert!(e.contains(why), "{value:?}: {e}"),
                _ => panic!("{value:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn hairpin_urls_name_the_gateway_over_http_and_the_server_over_https() {
        for (private, hostname, path, want) in [
            (
                "gw:8080",
                "kube.mcp.example.com",
                "/mcp",
                "http://gw:8080/mcp",
            ),
            (
                "http://gw:8080",
                "kube.mcp.example.com",
                "/mcp?x=1",
                "http://gw:8080/mcp?x=1",
            ),
            ("gw", "kube.mcp.example.com", "/", "http://gw/"),
            // TLS: the server's hostname is the TLS name; connections are pinned to gw:8443.
            (
                "https://gw:8443",
                "kube.mcp.example.com",
                "/mcp",
                "https://kube.mcp.example.com:8443/mcp",
            ),
            (
                "https://gw",
                "kube.mcp.example.com",
                "/mcp",
                "https://kube.mcp.example.com/mcp",
            ),
            (
                "https://gw:8443",
                "kube.mcp.example.com:9999",
                "/mcp",
                "https://kube.mcp.example.com:8443/mcp",
            ),
            (
                "https://gw:8443",
                "KUBE.example.com",
                "/mcp",
                "https://kube.example.com:8443/mcp",
            ),
            // An IP address is no TLS name: the private host's is used.
            ("https://gw:8443", "10.1.2.3", "/mcp", "https://gw:8443/mcp"),
            (
                "https://[::1]:8443",
                "::1",
                "/mcp",
                "https://[::1]:8443/mcp",
            ),
            (
                "https://[::1]:8443",
                "[::1]",
                "/mcp",
                "https://[::1]:8443/mcp",
            ),
        ] {
            let p = PrivateHost::parse(private).expect(private);
            let got = p.url(hostname, path).map(|u| u.to_string());
            assert_eq!(got.as_deref(), Ok(want), "{private} {hostname} {path}");
        }
    }

    #[tokio::test]
    async fn the_pinned_resolver_sends_every_name_to_the_private_host() {
        use reqwest::dns::Resolve;
        use std::str::FromStr;
        let r = PinnedResolver {
            host: "127.0.0.1".into(),
            port: 8443,
        };
        for name in ["kube.mcp.example.com", "other.example"] {
            let addrs: Vec<SocketAddr> = r
                .resolve(reqwest::dns::Name::from_str(name).expect("name"))
                .await
                .expect("resolves")
                .collect();
            assert_eq!(
                addrs,
                ["127.0.0.1:8443".parse::<SocketAddr>().expect("addr")]
            );
        }
    }
}
