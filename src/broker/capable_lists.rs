//! The tools lists servers give clients of some capabilities ([`super::capable_view`]), read on
//! one-off sessions, kept so that they are not read for every client's `tools/list`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::Server;

/// What servers listed on one-off sessions declaring some capabilities, kept so that clients
/// that declare the same and whose reads carry the same credential do not each make the server
/// open, list and close a session (a stateless client's lists are never cached by the client:
/// `ttlMs` 0). A list holds while discovery finds the server's usual list the same (the names
/// it lists and its count of `tools/list_changed`: [`crate::catalog::Catalog::tools_generation`]) and
/// [`LISTED_FOR`] at most; failed reads are not kept, and concurrent reads of one key are made
/// once.
pub struct CapableLists(moka::future::Cache<ListKey, Arc<Vec<Value>>>);

/// Tools kept at most, over all lists.
const MAX_TOOLS: u64 = 100_000;

/// How long a list read for some capabilities is kept at most.
const LISTED_FOR: Duration = Duration::from_secs(300);

impl Default for CapableLists {
    fn default() -> Self {
        CapableLists(
            moka::future::Cache::builder()
                .weigher(|_, tools: &Arc<Vec<Value>>| {
                    u32::try_from(tools.len())
                        .unwrap_or(u32::MAX)
                        .saturating_add(1)
                })
                .max_capacity(MAX_TOOLS)
                .time_to_live(LISTED_FOR)
                .build(),
        )
    }
}

impl CapableLists {
    /// The list kept for `key`, else what `read` reads (kept when it succeeds; reads of one key
    /// at the same time are made once).
    pub(super) async fn get_or_read<E>(
        &self,
        key: ListKey,
        read: impl std::future::Future<Output = Result<Vec<Value>, E>>,
    ) -> Result<Vec<Value>, String>
    where
        E: std::fmt::Display + Send + Sync + 'static,
    {
        self.0
            .try_get_with(key, async { read.await.map(Arc::new) })
            .await
            .map(|tools| tools.as_ref().clone())
            .map_err(|e| e.to_string())
    }
}

/// Which read a kept list answers for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct ListKey {
    server: Arc<str>,
    /// The server's URL (a reloaded config may point the name elsewhere).
    url: Arc<str>,
    capabilities: String,
    /// SHA-256 of the `Authorization` the read carries (of nothing when none): the credential
    /// itself is not kept.
    credential: [u8; 32],
    /// The server's usual tools when the list was read ([`crate::catalog::Catalog::tools_generation`]).
    generation: Option<u64>,
}

impl ListKey {
    pub(super) fn new(
        server: &Server,
        capabilities: &str,
        credential: Option<&str>,
        generation: Option<u64>,
    ) -> ListKey {
        let mut digest = Sha256::new();
        if let Some(c) = credential {
            digest.update([1]);
            digest.update(c.as_bytes());
        }
        ListKey {
            server: server.name.clone(),
            url: server.url.as_str().into(),
            capabilities: capabilities.to_owned(),
            credential: digest.finalize().into(),
            generation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(name: &str, url: &str) -> Server {
        let config = crate::config::Config::from_yaml(&format!(
            "servers:\n- {{name: {name}, url: '{url}', prefix: v_}}\n"
        ))
        .expect("config");
        config.servers[0].as_ref().clone()
    }

    #[test]
    fn a_kept_list_answers_only_for_its_server_capabilities_credential_and_generation() {
        let (v, w, moved) = (
            server("ns/v", "http://v/mcp"),
            server("ns/w", "http://v/mcp"),
            server("ns/v", "http://elsewhere/mcp"),
        );
        let round = Some(7);
        let key = |server, caps, credential, round| ListKey::new(server, caps, credential, round);
        let base = key(&v, r#"{"roots":{}}"#, Some("Bearer a"), round);
        assert_eq!(base, key(&v, r#"{"roots":{}}"#, Some("Bearer a"), round));
        for other in [
            key(&w, r#"{"roots":{}}"#, Some("Bearer a"), round),
            key(&moved, r#"{"roots":{}}"#, Some("Bearer a"), round),
            key(&v, r#"{"sampling":{}}"#, Some("Bearer a"), round),
            key(&v, r#"{"roots":{}}"#, Some("Bearer b"), round),
            key(&v, r#"{"roots":{}}"#, None, round),
            key(&v, r#"{"roots":{}}"#, Some(""), round),
            key(&v, r#"{"roots":{}}"#, Some("Bearer a"), None),
            key(&v, r#"{"roots":{}}"#, Some("Bearer a"), Some(8)),
        ] {
            assert_ne!(base, other);
        }
        // The credential is kept as a digest only.
        assert!(!format!("{base:?}").contains("Bearer"));
    }

    #[tokio::test]
    async fn a_list_is_read_once_per_key_and_a_failed_read_is_not_kept() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let lists = CapableLists::default();
        let reads = AtomicUsize::new(0);
        let read = |ok: bool| {
            let reads = &reads;
            async move {
                reads.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
                if ok {
                    Ok(vec![serde_json::json!({"name": "t"})])
                } else {
                    Err("down")
                }
            }
        };
        let v = server("ns/v", "http://v/mcp");
        let key = |caps: &str| ListKey::new(&v, caps, None, None);
        // Two reads of one key at the same time: one read.
        let (a, b) = tokio::join!(
            lists.get_or_read(key("a"), read(true)),
            lists.get_or_read(key("a"), read(true))
        );
        assert_eq!(a, b);
        assert_eq!(a.expect("list").len(), 1);
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        // Kept.
        lists.get_or_read(key("a"), read(true)).await.expect("kept");
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        // Another key reads; a failure is not kept.
        assert_eq!(
            lists.get_or_read(key("b"), read(false)).await,
            Err("down".to_owned())
        );
        lists
            .get_or_read(key("b"), read(true))
            .await
            .expect("read again");
        assert_eq!(reads.load(Ordering::SeqCst), 3);
    }
}
