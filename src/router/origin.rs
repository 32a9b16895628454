//! DNS-rebinding protection: Streamable HTTP servers must validate the `Origin` header and answer
//! 403 when it is present and not allowed. A page on another site could otherwise drive a
//! browser to call the gateway (a rebound DNS name pointing at it) with the user's network
//! position. Requests without `Origin` (non-browser clients) are not affected. Pure.
//!
//! Allowed: origins on a loopback host (`localhost`, `127.0.0.1`, `[::1]`, any port), on the
//! gateway's public host (any scheme and port), and those given with `--allowed-origins`: an
//! exact origin (`https://app.example.com`), a host (`app.example.com`, any scheme and port), or
//! `*` (every origin).

use crate::mcp::code;
use crate::reply::Reject;

const LOOPBACK: &[&str] = &["localhost", "127.0.0.1", "[::1]"];

/// The origins the gateway accepts requests from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedOrigins {
    any: bool,
    /// Lower-case hosts, any scheme and port.
    hosts: Vec<String>,
    /// Lower-case exact origins (`scheme://host[:port]`).
    origins: Vec<String>,
}

/// The host of an authority (`host[:port]`, `[v6]:port`), lower case.
fn host_of(authority: &str) -> String {
    let a = authority.to_ascii_lowercase();
    match a.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((h, _)) => format!("[{h}]"),
            None => a,
        },
        None => a.split(':').next().unwrap_or("").to_owned(),
    }
}

impl AllowedOrigins {
    /// Loopback hosts, the public host and `extra` (values of `--allowed-origins`).
    pub fn new(public_host: &str, extra: &[String]) -> AllowedOrigins {
        let mut a = AllowedOrigins {
            hosts: LOOPBACK.iter().map(|h| (*h).to_owned()).collect(),
            ..Default::default()
        };
        if !public_host.is_empty() {
            a.hosts.push(host_of(public_host));
        }
        for e in extra.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            if e == "*" {
                a.any = true;
            } else if e.contains("://") {
                a.origins.push(e.trim_end_matches('/').to_ascii_lowercase());
            } else {
                a.hosts.push(host_of(e));
            }
        }
        a
    }

    /// Whether a request with this `Origin` header value may proceed.
    pub fn allows(&self, origin: &str) -> bool {
        if self.any {
            return true;
        }
        let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
        if self.origins.contains(&origin) {
            return true;
        }
        // `null` (opaque origins: sandboxed frames, file:) and anything unparsable are refused.
        let Some((_, authority)) = origin.split_once("://") else {
            return false;
        };
        let authority = authority.split('/').next().unwrap_or("");
        !authority.is_empty() && self.hosts.contains(&host_of(authority))
    }

    /// The 403 for a request whose `Origin` is not allowed; `None` when it may proceed.
    pub fn check(&self, origin: Option<&str>) -> Option<Reject> {
        let origin = origin?;
        (!self.allows(origin)).then(|| {
            Reject::new(
                403,
                code::INVALID_REQUEST,
                format!("Origin {origin:?} is not allowed (see --allowed-origins)"),
                None,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked() {
        let a = AllowedOrigins::new(
            "mcp.example.com:8080",
            &[
                "https://app.example.org".into(),
                "tools.example.net".into(),
                " ".into(),
            ],
        );
        for (origin, allowed) in [
            ("http://localhost:6274", true),
            ("http://127.0.0.1:8888", true),
            ("http://[::1]:3000", true),
            ("HTTP://LOCALHOST", true),
            ("https://mcp.example.com", true),
            ("http://mcp.example.com:9999", true),
            ("https://app.example.org", true),
            ("https://app.example.org/", true),
            ("http://app.example.org", false),
            ("https://app.example.org:444", false),
            ("https://tools.example.net:1234", true),
            ("http://evil.example.com", false),
            ("http://localhost.evil.com", false),
            ("http://127.0.0.1.nip.io", false),
            ("null", false),
            ("", false),
            ("http://", false),
        ] {
            assert_eq!(a.allows(origin), allowed, "{origin}");
        }
        assert!(AllowedOrigins::new("gw", &["*".into()]).allows("https://anything.example"));
        assert_eq!(a.check(None), None);
        assert_eq!(a.check(Some("http://localhost")), None);
        let r = a.check(Some("http://evil.example.com")).expect("reject");
        assert_eq!((r.status, r.code, r.id), (403, code::INVALID_REQUEST, None));
    }
}
