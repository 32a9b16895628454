//! Which TLS roots a connection to an upstream trusts: the public roots, `--gateway-ca-cert`,
//! the config's `gatewayCACertPEM` and the server's `caCert`; one reqwest client per set, built
//! once and kept.

use std::sync::Arc;
use std::time::Duration;

use super::{ClientKey, UpstreamClient, UpstreamError, Via};
use crate::config::Server;
use crate::upstream::hairpin::PinnedResolver;

impl UpstreamClient {
    /// Like [`UpstreamClient::new`], trusting `pem` (`--gateway-ca-cert`) too on every
    /// connection; an error says why the bundle cannot be used.
    pub fn with_gateway_ca(pem: Option<&str>) -> Result<UpstreamClient, String> {
        let mut c = UpstreamClient::new();
        if let Some(pem) = pem {
            c.gateway_flag_ca = certificates(pem)?;
            c.default = c
                .trusting(builder(&c.user_agent), &c.gateway_flag_ca)
                .build()
                .map_err(|e| format!("TLS setup failed: {e}"))?;
        }
        Ok(c)
    }

    fn trusting(
        &self,
        mut b: reqwest::ClientBuilder,
        certs: &[reqwest::Certificate],
    ) -> reqwest::ClientBuilder {
        for c in certs {
            b = b.add_root_certificate(c.clone());
        }
        b
    }

    /// The client for a call to `server` by way of `via`.
    pub(super) fn client(
        &self,
        server: &Server,
        via: &Via,
    ) -> Result<reqwest::Client, UpstreamError> {
        let key = match via {
            Via::Direct => ClientKey {
                server_ca: server.ca_cert.clone(),
                gateway_ca: server.gateway_ca_cert.clone(),
                pinned: None,
            },
            Via::Gateway { private_host, .. } => ClientKey {
                server_ca: None,
                gateway_ca: server.gateway_ca_cert.clone(),
                pinned: private_host.tls.then(|| private_host.clone()),
            },
        };
        if key.server_ca.is_none() && key.gateway_ca.is_none() && key.pinned.is_none() {
            return Ok(self.default.clone());
        }
        // A std mutex: held only to look up or insert, never across an await.
        let mut map = self.with_ca.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = map.get(&key) {
            return Ok(c.clone());
        }
        let mut b = self.trusting(builder(&self.user_agent), &self.gateway_flag_ca);
        // Checked when the config was loaded; an error here is not expected.
        if let Some(pem) = &key.gateway_ca {
            let certs = certificates(pem)
                .map_err(|e| UpstreamError::Unreachable(format!("gatewayCACertPEM: {e}")))?;
            b = self.trusting(b, &certs);
        }
        if let Some(pem) = &key.server_ca {
            let certs = certificates(pem)
                .map_err(|e| UpstreamError::Unreachable(format!("caCert: {e}")))?;
            b = self.trusting(b, &certs);
        }
        if let Some(p) = &key.pinned {
            b = b.dns_resolver(Arc::new(PinnedResolver {
                host: p.host.clone(),
                port: p.port,
            }));
        }
        let c = b
            .build()
            .map_err(|e| UpstreamError::Unreachable(format!("TLS setup failed: {e}")))?;
        map.insert(key, c.clone());
        Ok(c)
    }
}

pub(super) fn builder(user_agent: &str) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(user_agent)
        .connect_timeout(Duration::from_secs(5))
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .no_proxy()
}

/// The certificates of a CA bundle, for reqwest.
fn certificates(pem: &str) -> Result<Vec<reqwest::Certificate>, String> {
    crate::tls::ca_bundle(pem)?
        .iter()
        .map(|c| reqwest::Certificate::from_der(c).map_err(|e| e.to_string()))
        .collect()
}
