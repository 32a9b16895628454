//! The gateway as a client of upstream MCP servers: the HTTP client (initialize, requests, SSE
//! reading) and the store of upstream sessions per (gateway session, server).

pub mod client;
pub mod get_stream;
pub mod hairpin;
pub mod init_limit;
pub mod sessions;
pub mod shared;
pub mod sse;
pub mod task_status;
pub mod updates;

pub use client::{Established, UpstreamClient, UpstreamError, Via};
pub use hairpin::PrivateHost;
pub use init_limit::InitLimits;
pub use sessions::{Closed, SessionKey, UpstreamSession, UpstreamSessions};

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::config::Config;

/// Closes (DELETE) upstream sessions the store let go, and keeps the store's maintenance running
/// so that idle sessions are noticed without traffic.
pub async fn close_idle(
    mut closed: mpsc::UnboundedReceiver<Closed>,
    sessions: Arc<UpstreamSessions>,
    config: watch::Receiver<Arc<Config>>,
    client: Arc<UpstreamClient>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => sessions.maintain().await,
            c = closed.recv() => {
                let Some(c) = c else { return };
                let server = config.borrow().server(&c.server).cloned();
                if let Some(server) = server {
                    tracing::debug!(server = %c.server, "closing an idle upstream session");
                    let client = client.clone();
                    tokio::spawn(async move {
                        client.close(&server, &c.session_id, server.credential.as_deref()).await;
                    });
                }
            }
        }
    }
}
