//! Keeps the config snapshot in step with its file.
//!
//! The file is polled rather than watched with inotify: Kubernetes updates a mounted Secret by
//! swapping a symlink, which inotify watches on the file itself miss, and a poll of one small file a
//! second costs nothing. A change is parsed and validated before it is published; a bad file keeps
//! the previous snapshot and says why in the log (and in the reload counter).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{Config, ConfigError};

/// Why the config file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {source}")]
    Invalid { path: String, source: ConfigError },
    #[error("config {path} has settings mcp-router does not act on, refused with --strict-compat: {}", keys.join(", "))]
    Strict { path: String, keys: Vec<String> },
}

/// With `--strict-compat`, a config whose unused keys include anything but the seed's own
/// unread ones is refused (at start and on reload), naming them.
fn check_strict(config: &Config, strict: bool, path: &Path) -> Result<(), LoadError> {
    let keys = config.strict_violations();
    if !strict || keys.is_empty() {
        return Ok(());
    }
    Err(LoadError::Strict {
        path: path.display().to_string(),
        keys: keys.into_iter().map(str::to_owned).collect(),
    })
}

/// Reads and validates the file once (`strict`: `--strict-compat`).
pub fn load(path: &Path, strict: bool) -> Result<(Config, Vec<u8>), LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let config = Config::from_yaml(&text).map_err(|source| LoadError::Invalid {
        path: path.display().to_string(),
        source,
    })?;
    check_strict(&config, strict, path)?;
    warn_ignored_keys(&config);
    Ok((config, bytes))
}

/// One warning per key of the file that is not used, so that a misspelt setting is seen.
fn warn_ignored_keys(config: &Config) {
    for path in &config.ignored_keys {
        tracing::warn!("config: {}", super::ignored_key_notice(path));
    }
}

/// Counters a reload loop reports to.
pub trait ReloadObserver: Send + Sync + 'static {
    fn reloaded(&self, ok: bool);
}

impl ReloadObserver for () {
    fn reloaded(&self, _ok: bool) {}
}

/// Polls `path` every `every` and publishes each new valid config on `tx`, until `tx` has no
/// receivers left. `strict` (`--strict-compat`): a config with settings not acted on is refused.
pub async fn watch_file(
    path: PathBuf,
    mut last: Vec<u8>,
    every: Duration,
    tx: watch::Sender<Arc<Config>>,
    observer: Arc<dyn ReloadObserver>,
    strict: bool,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if tx.is_closed() {
            return;
        }
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) => {
                // A Secret update briefly removes the file; the next tick sees the new one.
                tracing::debug!(path = %path.display(), error = %e, "config file not readable");
                continue;
            }
        };
        if bytes == last {
            continue;
        }
        let text = String::from_utf8_lossy(&bytes);
        let checked = Config::from_yaml(&text)
            .map_err(|e| e.to_string())
            .and_then(|c| {
                check_strict(&c, strict, &path)
                    .map(|()| c)
                    .map_err(|e| e.to_string())
            });
        match checked {
            Ok(config) => {
                tracing::info!(
                    path = %path.display(),
                    servers = config.servers.len(),
                    "config reloaded"
                );
                warn_ignored_keys(&config);
                observer.reloaded(true);
                tx.send_replace(Arc::new(config));
            }
            Err(e) => {
                tracing::error!(
                    path = %path.display(),
                    error = %e,
                    "config file is invalid; keeping the previous config"
                );
                observer.reloaded(false);
            }
        }
        last = bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct Count {
        ok: AtomicUsize,
        failed: AtomicUsize,
    }
    impl ReloadObserver for Count {
        fn reloaded(&self, ok: bool) {
            if ok { &self.ok } else { &self.failed }.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_bad_file_keeps_the_old_config_and_a_good_one_replaces_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, "servers: [{name: a, url: 'http://a/mcp'}]").expect("write");
        let (config, bytes) = load(&path, false).expect("valid");
        let (tx, mut rx) = watch::channel(Arc::new(config));
        let count = Arc::new(Count::default());
        let task = tokio::spawn(watch_file(
            path.clone(),
            bytes,
            Duration::from_millis(20),
            tx,
            count.clone(),
            false,
        ));

        std::fs::write(
            &path,
            "servers: [{name: a, url: 'http://a/mcp', prefix: BAD}]",
        )
        .expect("write");
        while count.failed.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(&*rx.borrow_and_update().servers[0].name, "a");
        // A CA bundle that trusts nothing is refused like any other bad field.
        std::fs::write(
            &path,
            "servers: [{name: c, url: 'https://c/mcp', caCert: 'not a pem'}]",
        )
        .expect("write");
        while count.failed.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(&*rx.borrow_and_update().servers[0].name, "a");

        std::fs::write(&path, "servers: [{name: b, url: 'http://b/mcp'}]").expect("write");
        tokio::time::timeout(Duration::from_secs(5), rx.changed())
            .await
            .expect("reload in time")
            .expect("sender alive");
        assert_eq!(&*rx.borrow().servers[0].name, "b");
        assert_eq!(count.ok.load(Ordering::SeqCst), 1);
        task.abort();
    }

    #[tokio::test]
    async fn strict_compat_refuses_seed_settings_not_acted_on_at_start_and_on_reload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.yaml");
        let seed_only = "servers: [{name: a, url: 'http://a/mcp', guardrailsConfigIDs: [g]}]";
        std::fs::write(&path, seed_only).expect("write");
        // Without the flag: loaded with a warning.
        assert!(load(&path, false).is_ok());
        let e = load(&path, true).expect_err("refused");
        assert!(
            e.to_string().contains("servers[0].guardrailsConfigIDs"),
            "{e}"
        );
        assert!(e.to_string().contains("--strict-compat"), "{e}");

        std::fs::write(&path, "servers: [{name: a, url: 'http://a/mcp'}]").expect("write");
        let (config, bytes) = load(&path, true).expect("clean file");
        let (tx, mut rx) = watch::channel(Arc::new(config));
        let count = Arc::new(Count::default());
        let task = tokio::spawn(watch_file(
            path.clone(),
            bytes,
            Duration::from_millis(20),
            tx,
            count.clone(),
            true,
        ));
        std::fs::write(
            &path,
            "servers: [{name: b, url: 'http://b/mcp', guardrailsConfigIDs: [g]}]",
        )
        .expect("write");
        tokio::time::timeout(Duration::from_secs(10), async {
            while count.failed.load(Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the reload is refused in time");
        assert_eq!(&*rx.borrow_and_update().servers[0].name, "a");
        std::fs::write(&path, "servers: [{name: b, url: 'http://b/mcp'}]").expect("write");
        tokio::time::timeout(Duration::from_secs(10), rx.changed())
            .await
            .expect("reload in time")
            .expect("sender alive");
        assert_eq!(&*rx.borrow().servers[0].name, "b");
        task.abort();
    }
}
