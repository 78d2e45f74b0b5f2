//! Which public key each KMS URI stands for on this node, kept current off the request path.
//!
//! Sources, first match wins: the config's `kms_keys` (URI → PEM file, for nodes that never
//! reach the provider), then the last key the provider served. A lookup never does I/O:
//! policy compiles from what is held, and [`Resolver::refresh`] (at load, at sync, and on a
//! timer) asks the providers for what is missing or due. A provider that is down or
//! throttling is retried with backoff and its failure held briefly; the last good key
//! stays in use meanwhile. A provider that answers that the key is gone (not found,
//! disabled, denied) takes it out of use: the authority then fails closed with that reason.
//!
//! Every key served is written to a cache file under the state directory (0600, atomic
//! rename), so a node that boots with the provider unreachable enforces the keys it had.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{KeyProvider, KmsError, KmsUri, ResolvedKey};

/// KMS public keys do not change for a version; this bounds how long a key URI without a
/// version may lag a newly enabled one, and how soon a disabled key stops verifying.
const GOOD_TTL: Duration = Duration::from_secs(3600);
/// A failure is held this long before the provider is asked again.
const ERROR_TTL: Duration = Duration::from_secs(30);
/// Retries of a transient failure within one refresh.
const BACKOFF: [Duration; 2] = [Duration::from_millis(250), Duration::from_secs(1)];

#[derive(Debug, thiserror::Error)]
pub enum ResolverError {
    #[error("kms_keys {uri:?}: {message}")]
    Pinned { uri: String, message: String },
}

#[derive(Default)]
struct Entry {
    good: Option<ResolvedKey>,
    error: Option<KmsError>,
    checked: Option<Instant>,
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    format: u32,
    keys: BTreeMap<String, ResolvedKey>,
}

pub struct Resolver {
    provider: Option<Arc<dyn KeyProvider>>,
    pinned: BTreeMap<String, ResolvedKey>,
    cache_file: Option<PathBuf>,
    /// Whether the cache file is written (the daemon) or only read (`policy check`).
    write_cache: bool,
    entries: Mutex<HashMap<String, Entry>>,
    /// Every URI a policy looked up, so the timer refreshes them.
    wanted: Mutex<BTreeSet<String>>,
    /// One refresh at a time: the sync and the timer would ask the provider twice.
    refreshing: tokio::sync::Mutex<()>,
    /// Counts refreshes that changed a held key, so policy recompiles when one arrives.
    changes: tokio::sync::watch::Sender<u64>,
    pub(crate) good_ttl: Duration,
    pub(crate) error_ttl: Duration,
    pub(crate) backoff: Vec<Duration>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver").field("pinned", &self.pinned.keys()).field("cache_file", &self.cache_file).finish()
    }
}

impl Resolver {
    /// No provider and nothing pinned: every KMS authority fails closed ("not resolved").
    pub fn offline() -> Self {
        Self::new(None, BTreeMap::new(), None)
    }

    pub fn new(
        provider: Option<Arc<dyn KeyProvider>>,
        pinned: BTreeMap<String, ResolvedKey>,
        cache_file: Option<PathBuf>,
    ) -> Self {
        let mut entries = HashMap::new();
        if let Some(path) = &cache_file {
            match read_cache(path) {
                Ok(keys) => {
                    for (uri, key) in keys {
                        entries.insert(uri, Entry { good: Some(key), error: None, checked: None });
                    }
                }
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "KMS key cache not used"),
            }
        }
        Self {
            provider,
            pinned,
            cache_file,
            write_cache: true,
            entries: Mutex::new(entries),
            wanted: Mutex::new(BTreeSet::new()),
            refreshing: tokio::sync::Mutex::new(()),
            changes: tokio::sync::watch::Sender::new(0),
            good_ttl: GOOD_TTL,
            error_ttl: ERROR_TTL,
            backoff: BACKOFF.to_vec(),
        }
    }

    /// Read the cache file but never write it: a command-line check must not change what
    /// the daemon boots with.
    pub fn read_only(mut self) -> Self {
        self.write_cache = false;
        self
    }

    /// The config's `kms_keys`: each URI must parse and each file hold a public key.
    pub fn pinned_from_files(map: &BTreeMap<String, PathBuf>) -> Result<BTreeMap<String, ResolvedKey>, ResolverError> {
        let mut out = BTreeMap::new();
        for (uri, path) in map {
            let fail = |message: String| ResolverError::Pinned { uri: uri.clone(), message };
            let parsed = KmsUri::parse(uri).map_err(|e| fail(e.message))?;
            let pem = std::fs::read_to_string(path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
            crate::verify::signer::TrustedKey::from_pem(pem.as_bytes())
                .map_err(|e| fail(format!("{}: {e}", path.display())))?;
            let key = ResolvedKey {
                pem,
                version: parsed.to_string(),
                signing: Default::default(),
                source: format!("config kms_keys ({})", path.display()),
            };
            out.insert(parsed.to_string(), key);
        }
        Ok(out)
    }

    /// The key held for `uri`, without I/O; `Err` says why there is none.
    pub fn lookup(&self, uri: &str) -> Result<ResolvedKey, KmsError> {
        let canonical = KmsUri::parse(uri)?.to_string();
        if let Some(k) = self.pinned.get(&canonical) {
            return Ok(k.clone());
        }
        self.wanted.lock().unwrap_or_else(|e| e.into_inner()).insert(canonical.clone());
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(&canonical) {
            Some(Entry { good: Some(k), checked, .. }) => {
                let mut k = k.clone();
                if checked.is_none() {
                    if let Some(path) = &self.cache_file {
                        k.source = format!("{} (cached in {})", k.source, path.display());
                    }
                }
                Ok(k)
            }
            Some(Entry { error: Some(e), .. }) => Err(e.clone()),
            _ if self.provider.is_none() => Err(KmsError::NoAccess { uri: canonical }),
            _ => Err(KmsError::Pending { uri: canonical }),
        }
    }

    /// Ask the providers for `uris` and every URI looked up so far, where missing or due.
    /// Returns whether any held key changed.
    pub async fn refresh(&self, uris: impl IntoIterator<Item = String>) -> bool {
        let Some(provider) = self.provider.clone() else { return false };
        let _one = self.refreshing.lock().await;
        let due: Vec<String> = {
            let mut wanted = self.wanted.lock().unwrap_or_else(|e| e.into_inner());
            wanted.extend(uris);
            let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            wanted
                .iter()
                .filter(|u| !self.pinned.contains_key(*u))
                .filter(|u| match entries.get(*u).and_then(|e| e.checked.map(|c| (c, e.error.is_some()))) {
                    None => true,
                    Some((at, failed)) => at.elapsed() >= if failed { self.error_ttl } else { self.good_ttl },
                })
                .cloned()
                .collect()
        };
        let mut changed = false;
        for uri in due {
            let Ok(parsed) = KmsUri::parse(&uri) else { continue };
            let result = self.resolve_with_retry(&*provider, &parsed).await;
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            let entry = entries.entry(uri.clone()).or_default();
            entry.checked = Some(Instant::now());
            match result {
                Ok(key) => {
                    if entry.good.as_ref() != Some(&key) {
                        tracing::info!(kms_key = %uri, version = %key.version, source = %key.source, "KMS key resolved");
                        changed = true;
                    }
                    entry.good = Some(key);
                    entry.error = None;
                }
                Err(e) if e.is_transient() => {
                    let kept = if entry.good.is_some() { "; the last good key stays in use" } else { "" };
                    tracing::warn!(kms_key = %uri, error = %e, "KMS key not refreshed{kept}");
                    changed |= entry.good.is_none() && entry.error.as_ref() != Some(&e);
                    entry.error = Some(e);
                }
                Err(e) => {
                    tracing::error!(kms_key = %uri, error = %e, "KMS key refused by its provider; its authorities fail closed");
                    changed |= entry.good.is_some() || entry.error.as_ref() != Some(&e);
                    entry.good = None;
                    entry.error = Some(e);
                }
            }
        }
        if changed {
            self.write_cache();
            self.changes.send_modify(|n| *n += 1);
        }
        changed
    }

    /// Told each time a refresh changes a held key (resolved, replaced or refused).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    async fn resolve_with_retry(&self, provider: &dyn KeyProvider, uri: &KmsUri) -> Result<ResolvedKey, KmsError> {
        let mut attempt = 0;
        loop {
            match provider.public_key(uri).await {
                Err(e) if e.is_transient() && attempt < self.backoff.len() => {
                    tokio::time::sleep(self.backoff[attempt]).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn write_cache(&self) {
        let Some(path) = self.cache_file.as_ref().filter(|_| self.write_cache) else { return };
        let keys: BTreeMap<String, ResolvedKey> = self
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(|(u, e)| e.good.clone().map(|k| (u.clone(), k)))
            .collect();
        if let Err(e) = write_atomic(path, &CacheFile { format: 1, keys }) {
            tracing::warn!(path = %path.display(), error = %e, "KMS key cache not written");
        }
    }
}

fn read_cache(path: &Path) -> Result<BTreeMap<String, ResolvedKey>, crate::statefile::StateFileError> {
    Ok(crate::statefile::read_versioned::<CacheFile>(path, 1)?.map(|f| f.keys).unwrap_or_default())
}

fn write_atomic(path: &Path, file: &CacheFile) -> std::io::Result<()> {
    crate::statefile::write_atomic(path, &serde_json::to_vec_pretty(file).expect("keys serialise"))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::testutil::TEST_PUB;

    const URI: &str = "awskms:///alias/signer";

    /// Answers in turn (the last repeats), counting calls.
    struct FakeProvider {
        answers: Mutex<Vec<Result<ResolvedKey, KmsError>>>,
        calls: AtomicUsize,
    }

    impl FakeProvider {
        fn new(answers: Vec<Result<ResolvedKey, KmsError>>) -> Arc<Self> {
            Arc::new(Self { answers: Mutex::new(answers), calls: AtomicUsize::new(0) })
        }
        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    #[async_trait::async_trait]
    impl KeyProvider for FakeProvider {
        async fn public_key(&self, _uri: &KmsUri) -> Result<ResolvedKey, KmsError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let mut a = self.answers.lock().unwrap();
            if a.len() > 1 {
                a.remove(0)
            } else {
                a[0].clone()
            }
        }
    }

    fn key(version: &str) -> ResolvedKey {
        ResolvedKey {
            pem: TEST_PUB.into(),
            version: version.into(),
            signing: Default::default(),
            source: "fake".into(),
        }
    }

    fn down() -> KmsError {
        KmsError::unavailable(&KmsUri::parse(URI).unwrap(), "HTTP 429: slow down")
    }

    fn fast(r: Resolver) -> Resolver {
        Resolver { backoff: vec![Duration::ZERO; 2], ..r }
    }

    #[tokio::test]
    async fn lookups_never_do_io_and_refresh_resolves_what_was_looked_up() {
        let p = FakeProvider::new(vec![Ok(key("v1"))]);
        let r = fast(Resolver::new(Some(p.clone()), BTreeMap::new(), None));
        assert!(r.lookup(URI).unwrap_err().to_string().contains("not resolved yet"));
        assert_eq!(p.calls(), 0, "a lookup asks no provider");
        let mut changes = r.subscribe();
        assert!(r.refresh(std::iter::empty()).await, "the looked-up URI is refreshed");
        assert!(changes.has_changed().unwrap(), "subscribers hear of the new key");
        changes.mark_unchanged();
        assert_eq!(r.lookup(URI).unwrap().version, "v1");
        assert!(!r.refresh(std::iter::empty()).await);
        assert!(!changes.has_changed().unwrap());
        assert_eq!(p.calls(), 1, "a good key is held, not asked for again");
    }

    #[tokio::test]
    async fn an_outage_is_retried_then_held_briefly_and_the_last_good_key_stays() {
        let p = FakeProvider::new(vec![Ok(key("v1")), Err(down())]);
        let mut r = fast(Resolver::new(Some(p.clone()), BTreeMap::new(), None));
        r.refresh([URI.to_string()]).await;
        r.good_ttl = Duration::ZERO;
        r.refresh(std::iter::empty()).await;
        assert_eq!(p.calls(), 1 + 3, "one try and two retries");
        assert_eq!(r.lookup(URI).unwrap().version, "v1", "the last good key stays in use");
        r.refresh(std::iter::empty()).await;
        assert_eq!(p.calls(), 4, "the failure is held for the error TTL");

        // With no key ever held, the authority fails closed with the provider's reason.
        let p = FakeProvider::new(vec![Err(down())]);
        let r = fast(Resolver::new(Some(p.clone()), BTreeMap::new(), None));
        r.refresh([URI.to_string()]).await;
        let e = r.lookup(URI).unwrap_err().to_string();
        assert!(e.contains("provider unavailable") && e.contains("HTTP 429"), "{e}");
    }

    #[tokio::test]
    async fn a_provider_refusing_the_key_takes_it_out_of_use() {
        let gone = KmsError::refused(&KmsUri::parse(URI).unwrap(), "NotFoundException: no such alias");
        let p = FakeProvider::new(vec![Ok(key("v1")), Err(gone)]);
        let mut r = fast(Resolver::new(Some(p.clone()), BTreeMap::new(), None));
        r.refresh([URI.to_string()]).await;
        r.good_ttl = Duration::ZERO;
        assert!(r.refresh(std::iter::empty()).await);
        assert!(r.lookup(URI).unwrap_err().to_string().contains("NotFoundException"));
        assert_eq!(p.calls(), 2, "a refusal is not retried");
    }

    #[tokio::test]
    async fn resolved_keys_survive_a_restart_without_the_provider() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("state/kms-keys.json");
        let r = fast(Resolver::new(Some(FakeProvider::new(vec![Ok(key("v7"))])), BTreeMap::new(), Some(cache.clone())));
        r.refresh([URI.to_string()]).await;
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777, 0o600);
        // Boot with the provider down: the cached key is used, and says where it came from.
        let p = FakeProvider::new(vec![Err(down())]);
        let booted = fast(Resolver::new(Some(p.clone()), BTreeMap::new(), Some(cache.clone())));
        let k = booted.lookup(URI).unwrap();
        assert_eq!(k.version, "v7");
        assert!(k.source.contains("cached in") && k.source.contains("kms-keys.json"), "{}", k.source);
        booted.refresh(std::iter::empty()).await;
        assert_eq!(booted.lookup(URI).unwrap().version, "v7", "an outage does not drop the cached key");
        // A command-line check reads the cache but never writes it.
        std::fs::remove_file(&cache).unwrap();
        let ro =
            fast(Resolver::new(Some(FakeProvider::new(vec![Ok(key("v8"))])), BTreeMap::new(), Some(cache.clone())))
                .read_only();
        ro.refresh([URI.to_string()]).await;
        assert!(!cache.exists());
    }

    #[tokio::test]
    async fn config_kms_keys_serve_nodes_that_never_reach_the_provider() {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("signer.pem");
        std::fs::write(&pem, TEST_PUB).unwrap();
        let map = BTreeMap::from([(URI.to_string(), pem.clone())]);
        let pinned = Resolver::pinned_from_files(&map).unwrap();
        let p = FakeProvider::new(vec![Err(down())]);
        let r = Resolver::new(Some(p.clone()), pinned, None);
        let k = r.lookup(URI).unwrap();
        assert!(k.source.starts_with("config kms_keys ("), "{}", k.source);
        r.refresh([URI.to_string()]).await;
        assert_eq!(p.calls(), 0, "a pinned key is never asked for");
        let bad = BTreeMap::from([("awskms://".to_string(), pem.clone())]);
        assert!(Resolver::pinned_from_files(&bad).unwrap_err().to_string().starts_with("kms_keys \"awskms://\""));
        let missing = BTreeMap::from([(URI.to_string(), dir.path().join("nope.pem"))]);
        assert!(Resolver::pinned_from_files(&missing).unwrap_err().to_string().contains("nope.pem"));
    }
}
