//! The trust root each TUF repository last served, kept current off the request path.
//!
//! Policy compiles from what is held ([`Store::lookup`] never does I/O and records what
//! was asked for); [`Store::refresh`], on the daemon's timer and in `policy check`, fetches
//! what is missing or due. An outage or a refused update (metadata expired, badly signed, a
//! rollback) keeps the last verified root in use, but never past the expiry of the
//! metadata it was verified under: a frozen mirror fails closed within a refresh of it. A
//! repository whose signed metadata lists no usable trust root drops the held one. With
//! nothing held, the attestor fails closed with the reason. Repositories no policy looked
//! up for [`FORGET_AFTER`] are forgotten, and at most [`super::MAX_REPOSITORIES`] are held.
//!
//! Every root fetched is written to a cache file under the state directory, so a node
//! that boots with the mirror unreachable enforces the roots it had.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Fetcher, HeldRoot, TufError, TufRepo};

/// How often a held root is fetched again: key rotations in the repository reach the node
/// within this.
const GOOD_TTL: Duration = Duration::from_secs(3600);
/// A failure is held this long before the mirror is asked again.
const ERROR_TTL: Duration = Duration::from_secs(30);
/// One repository's whole fetch (tough's walk: several files, each with its own timeout).
const FETCH_DEADLINE: Duration = Duration::from_secs(60);
/// A repository no policy looked up for this long is no longer refreshed or held (local
/// policy is compiled every poll, cluster policy at least every sync refresh).
pub const FORGET_AFTER: Duration = Duration::from_secs(3600);

#[derive(Default)]
struct Entry {
    good: Option<HeldRoot>,
    error: Option<TufError>,
    checked: Option<Instant>,
}

#[derive(Default, Serialize, Deserialize)]
struct CacheFile {
    format: u32,
    /// By [`TufRepo::id`].
    roots: BTreeMap<String, HeldRoot>,
    /// The repositories they came from, by the same id.
    #[serde(default)]
    repositories: BTreeMap<String, TufRepo>,
}

pub struct Store {
    fetcher: Option<Arc<dyn Fetcher>>,
    cache_file: Option<PathBuf>,
    /// Whether the cache file is written (the daemon) or only read (`policy check`).
    write_cache: bool,
    entries: Mutex<HashMap<String, Entry>>,
    /// Every repository a policy looked up, and when last, so the timer refreshes them.
    wanted: Mutex<BTreeMap<String, (TufRepo, Instant)>>,
    /// One refresh at a time.
    refreshing: tokio::sync::Mutex<()>,
    /// Counts refreshes that changed a held root, so policy recompiles when one arrives.
    changes: tokio::sync::watch::Sender<u64>,
    pub(crate) good_ttl: Duration,
    pub(crate) error_ttl: Duration,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("cache_file", &self.cache_file).finish()
    }
}

impl Store {
    /// Nothing fetches: every TUF attestor fails closed unless the cache holds its root.
    pub fn offline() -> Self {
        Self::new(None, None)
    }

    pub fn new(fetcher: Option<Arc<dyn Fetcher>>, cache_file: Option<PathBuf>) -> Self {
        let mut entries = HashMap::new();
        // What the cache holds is wanted from boot, so the first refresh (before any policy
        // looked it up) neither forgets it nor rewrites the cache without it.
        let mut wanted = BTreeMap::new();
        if let Some(path) = &cache_file {
            match read_cache(path) {
                Ok(file) => {
                    for (id, held) in file.roots {
                        if let Some(repo) = file.repositories.get(&id) {
                            wanted.insert(id.clone(), (repo.clone(), Instant::now()));
                        }
                        entries.insert(id, Entry { good: Some(held), error: None, checked: None });
                    }
                }
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "TUF trust-root cache not used"),
            }
        }
        Self {
            fetcher,
            cache_file,
            write_cache: true,
            entries: Mutex::new(entries),
            wanted: Mutex::new(wanted),
            refreshing: tokio::sync::Mutex::new(()),
            changes: tokio::sync::watch::Sender::new(0),
            good_ttl: GOOD_TTL,
            error_ttl: ERROR_TTL,
        }
    }

    /// Read the cache file but never write it: a command-line check must not change what
    /// the daemon boots with.
    pub fn read_only(mut self) -> Self {
        self.write_cache = false;
        self
    }

    /// The root held for `repo`, without I/O; `Err` says why there is none.
    pub fn lookup(&self, repo: &TufRepo) -> Result<HeldRoot, TufError> {
        let id = repo.id();
        {
            let mut wanted = self.wanted.lock().unwrap_or_else(|e| e.into_inner());
            if !wanted.contains_key(&id) && wanted.len() >= super::MAX_REPOSITORIES {
                return Err(TufError::TooMany { mirror: repo.mirror.clone() });
            }
            wanted.insert(id.clone(), (repo.clone(), Instant::now()));
        }
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(&id) {
            Some(Entry { good: Some(held), checked, .. }) => {
                held.usable(&repo.mirror, super::now_secs())?;
                let mut held = held.clone();
                if checked.is_none() {
                    if let Some(path) = &self.cache_file {
                        held.source = format!("{} (cached in {})", held.source, path.display());
                    }
                }
                Ok(held)
            }
            Some(Entry { error: Some(e), .. }) => Err(e.clone()),
            _ if self.fetcher.is_none() => Err(TufError::NoAccess { mirror: repo.mirror.clone() }),
            _ => Err(TufError::Pending { mirror: repo.mirror.clone() }),
        }
    }

    /// Fetch `repos` and every repository looked up so far, where missing or due. Returns
    /// whether any held root changed.
    pub async fn refresh(&self, repos: impl IntoIterator<Item = TufRepo>) -> bool {
        let Some(fetcher) = self.fetcher.clone() else { return false };
        let _one = self.refreshing.lock().await;
        let mut changed = false;
        let due: Vec<(String, TufRepo)> = {
            let mut wanted = self.wanted.lock().unwrap_or_else(|e| e.into_inner());
            for r in repos {
                if wanted.len() < super::MAX_REPOSITORIES || wanted.contains_key(&r.id()) {
                    wanted.insert(r.id(), (r, Instant::now()));
                }
            }
            wanted.retain(|_, (_, at)| at.elapsed() < FORGET_AFTER);
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            let before = entries.len();
            entries.retain(|id, _| wanted.contains_key(id));
            changed |= entries.len() != before;
            // A held root whose metadata expired is no longer used; those who compiled it
            // hear of it now, not at their next reload.
            let now = super::now_secs();
            for (id, e) in entries.iter_mut() {
                if let Some(Err(expired)) = e.good.as_ref().map(|g| g.usable(&wanted[id].0.mirror, now).map(|_| ())) {
                    tracing::error!(tuf = %wanted[id].0.mirror, error = %expired, "TUF trust root expired; its attestors fail closed");
                    e.good = None;
                    e.error = Some(expired);
                    e.checked = None;
                    changed = true;
                }
            }
            wanted
                .iter()
                .filter(|(id, _)| match entries.get(*id).and_then(|e| e.checked.map(|c| (c, e.error.is_some()))) {
                    None => true,
                    Some((at, failed)) => at.elapsed() >= if failed { self.error_ttl } else { self.good_ttl },
                })
                .map(|(id, (r, _))| (id.clone(), r.clone()))
                .collect()
        };
        for (id, repo) in due {
            let result = match tokio::time::timeout(FETCH_DEADLINE, fetcher.trusted_root(&repo)).await {
                Ok(r) => r,
                Err(_) => Err(TufError::Fetch {
                    mirror: repo.mirror.clone(),
                    message: format!("not fetched within {} s", FETCH_DEADLINE.as_secs()),
                }),
            };
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            let entry = entries.entry(id).or_default();
            entry.checked = Some(Instant::now());
            match result {
                Ok(held) => {
                    if entry.good.as_ref().map(|g| &g.trusted_root) != Some(&held.trusted_root) {
                        tracing::info!(tuf = %repo.mirror, targets_version = held.targets_version,
                            "TUF repository trust root fetched and verified");
                        changed = true;
                    }
                    // A renewal with the same root moves its expiry: the cache must say so.
                    changed |= entry.good.as_ref().is_some_and(|g| g.expires != held.expires);
                    changed |= entry.error.is_some() && entry.good.is_none();
                    entry.good = Some(held);
                    entry.error = None;
                }
                Err(e) => {
                    let dropped = e.is_authoritative() && entry.good.is_some();
                    if dropped {
                        entry.good = None;
                    }
                    // Logged when the reason changes, not every retry.
                    if entry.error.as_ref() != Some(&e) {
                        let kept = if entry.good.is_some() {
                            "; the last verified trust root stays in use until it expires"
                        } else {
                            ""
                        };
                        tracing::warn!(tuf = %repo.mirror, root = %repo.id(), error = %e, "TUF repository not refreshed{kept}");
                    }
                    changed |= dropped || (entry.good.is_none() && entry.error.as_ref() != Some(&e));
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

    /// Told each time a refresh changes a held root (fetched, replaced, or failed first).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn write_cache(&self) {
        let Some(path) = self.cache_file.as_ref().filter(|_| self.write_cache) else { return };
        let roots: BTreeMap<String, HeldRoot> = self
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(|(id, e)| e.good.clone().map(|h| (id.clone(), h)))
            .collect();
        let repositories = {
            let wanted = self.wanted.lock().unwrap_or_else(|e| e.into_inner());
            roots.keys().filter_map(|id| wanted.get(id).map(|(r, _)| (id.clone(), r.clone()))).collect()
        };
        let bytes = serde_json::to_vec_pretty(&CacheFile { format: 1, roots, repositories }).expect("roots serialise");
        if let Err(e) = crate::statefile::write_atomic(path, &bytes) {
            tracing::warn!(path = %path.display(), error = %e, "TUF trust-root cache not written");
        }
    }
}

fn read_cache(path: &Path) -> Result<CacheFile, crate::statefile::StateFileError> {
    Ok(crate::statefile::read_versioned::<CacheFile>(path, 1)?.unwrap_or_default())
}
