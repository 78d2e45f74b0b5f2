//! Sigstore trust roots served by TUF repositories (Kyverno ImageValidatingPolicy
//! `cosign.tuf`), fetched and verified off the request path.
//!
//! A private Sigstore deployment publishes its `trusted_root.json` (CAs, Rekor and CT log
//! keys, timestamp authorities) as a target of a TUF repository; the policy names the
//! repository (`mirror`) and the root.json a client starts from (`root.data`, base64, or
//! `root.path`, a file on the node or a URL). The node walks the repository as any TUF
//! client does (root rotation, timestamp → snapshot → targets, versions, expiry, hashes and
//! lengths) with [`tough`], the maintained Rust TUF client, over a transport of our own
//! that reads every file capped ([`client`]); [`store`] holds the last good trust root per
//! repository, refreshes it on a timer, and keeps it in a cache file so a node that boots
//! with the mirror unreachable still enforces what it last verified.
//!
//! - [`client`]: one verified fetch of a repository's `trusted_root.json` (the I/O seam).
//! - [`store`]: what is held per repository, the refresh and the cache file.

pub mod client;
pub mod store;

use serde::{Deserialize, Serialize};
use sha2::Digest;

pub use self::store::Store;

/// Where Kyverno's TUF client looks when a policy names no mirror: Sigstore's public CDN.
pub const DEFAULT_MIRROR: &str = "https://tuf-repo-cdn.sigstore.dev";
/// The target that holds the trust root, as sigstore-go asks for it.
pub const TRUSTED_ROOT_TARGET: &str = "trusted_root.json";

/// A TUF repository a policy trusts, and the root it is entered through.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TufRepo {
    /// Base URL: metadata at it, targets under `targets/`.
    pub mirror: String,
    pub root: TufRoot,
}

/// The first trusted `root.json`; the client updates from it to the repository's newest.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum TufRoot {
    /// The bytes, base64 (Kyverno `root.data`).
    Data(String),
    /// A file on the node, or an `http(s)` URL (Kyverno `root.path`).
    Path(String),
}

/// Why a repository's trust root is not available. Messages name the mirror.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TufError {
    #[error("TUF repository {mirror:?}: the mirror is not an http, https or file URL: {message}")]
    Mirror { mirror: String, message: String },
    #[error("TUF repository {mirror}: root.data is not base64: {message}")]
    RootData { mirror: String, message: String },
    #[error("TUF repository {mirror}: root {path}: {message}")]
    RootPath { mirror: String, path: String, message: String },
    /// The repository did not verify, or could not be read (tough's reason).
    #[error("TUF repository {mirror}: {message}")]
    Fetch { mirror: String, message: String },
    #[error("TUF repository {mirror}: no target {TRUSTED_ROOT_TARGET}")]
    NoTrustedRoot { mirror: String },
    #[error("TUF repository {mirror}: {TRUSTED_ROOT_TARGET}: {message}")]
    TrustedRoot { mirror: String, message: String },
    /// Looked up where nothing fetches (an offline `policy check`) and not in the cache.
    #[error("TUF repository {mirror} is not fetched: no network access here and not in the cache")]
    NoAccess { mirror: String },
    /// Asked for, and fetched off the request path.
    #[error("TUF repository {mirror} is not fetched yet")]
    Pending { mirror: String },
    /// What was last verified has expired (its earliest role expiry) and no newer copy could
    /// be fetched: TUF's bound on a freeze, kept through outages as well.
    #[error("TUF repository {mirror}: the trust root last verified expired at {at} and could not be fetched again")]
    Expired { mirror: String, at: String },
    #[error("TUF repository {mirror}: more than {MAX_REPOSITORIES} TUF repositories are named on this node")]
    TooMany { mirror: String },
}

/// Most repositories one node fetches and holds (each costs up to a few files of
/// [`client::MAX_FILE`] and a refresh).
pub const MAX_REPOSITORIES: usize = 32;

impl TufError {
    /// Whether the repository itself answered that it serves no usable trust root (signed
    /// metadata that lists none, or one that does not parse): the held root is dropped then,
    /// while outages and refused updates keep it until it expires.
    pub fn is_authoritative(&self) -> bool {
        matches!(self, TufError::NoTrustedRoot { .. } | TufError::TrustedRoot { .. })
    }
}

impl TufRepo {
    /// The repository a policy names; `mirror` defaults as Kyverno's does.
    pub fn new(mirror: Option<&str>, root: TufRoot) -> Result<Self, TufError> {
        let mirror = mirror.filter(|m| !m.is_empty()).unwrap_or(DEFAULT_MIRROR).trim_end_matches('/').to_string();
        let bad = |message: String| TufError::Mirror { mirror: mirror.clone(), message };
        let url = url::Url::parse(&mirror).map_err(|e| bad(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https" | "file") {
            return Err(bad(format!("scheme {}", url.scheme())));
        }
        // The root is the trust anchor: fetched in the clear, whoever is on the path would
        // choose it (and a new root starts a fresh walk).
        if let TufRoot::Path(p) = &root {
            if p.starts_with("http://") {
                return Err(TufError::RootPath {
                    mirror,
                    path: p.clone(),
                    message: "a root is read from a file or over https, never over plain http".into(),
                });
            }
        }
        let repo = TufRepo { mirror, root };
        repo.root_bytes_inline()?;
        Ok(repo)
    }

    /// One key per (mirror, root): the same mirror entered through another root is another
    /// trust decision.
    pub fn id(&self) -> String {
        match &self.root {
            TufRoot::Data(d) => format!("{} root sha256:{}", self.mirror, hex::encode(sha2::Sha256::digest(d))),
            TufRoot::Path(p) => format!("{} root {p}", self.mirror),
        }
    }

    /// `root.data` decoded; `None` for a path (read when fetched).
    fn root_bytes_inline(&self) -> Result<Option<Vec<u8>>, TufError> {
        match &self.root {
            TufRoot::Data(d) => {
                use base64::Engine;
                let compact: String = d.split_whitespace().collect();
                base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .map(Some)
                    .map_err(|e| TufError::RootData { mirror: self.mirror.clone(), message: e.to_string() })
            }
            TufRoot::Path(_) => Ok(None),
        }
    }
}

/// A repository's trust root as last verified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeldRoot {
    /// The `trusted_root.json` text.
    pub trusted_root: String,
    /// The targets metadata version it was listed in.
    pub targets_version: u64,
    /// When the metadata it was verified under expires (the earliest of root, timestamp,
    /// snapshot and targets), seconds since the epoch: not used after that.
    pub expires: i64,
    /// Where it came from (the mirror, or the cache file).
    pub source: String,
}

impl HeldRoot {
    /// The trust root text, unless the metadata it came with has expired at `now`.
    pub fn usable(&self, mirror: &str, now: i64) -> Result<&str, TufError> {
        if now >= self.expires {
            let at =
                jiff::Timestamp::from_second(self.expires).map_or_else(|_| self.expires.to_string(), |t| t.to_string());
            return Err(TufError::Expired { mirror: mirror.to_string(), at });
        }
        Ok(&self.trusted_root)
    }
}

/// Seconds since the epoch, now.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// One verified fetch of a repository's trust root. The seam: tests answer from TUF
/// repositories on disk or from canned results.
#[async_trait::async_trait]
pub trait Fetcher: Send + Sync {
    async fn trusted_root(&self, repo: &TufRepo) -> Result<HeldRoot, TufError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repository_is_its_mirror_and_its_root() {
        let data = |s: &str| TufRoot::Data(s.into());
        let a = TufRepo::new(Some("https://tuf.example/"), data("e30=")).unwrap();
        assert_eq!(a.mirror, "https://tuf.example");
        assert_ne!(a.id(), TufRepo::new(Some("https://tuf.example"), data("W10=")).unwrap().id());
        assert_eq!(TufRepo::new(None, data("e30=")).unwrap().mirror, DEFAULT_MIRROR);
        let e = TufRepo::new(Some("ftp://tuf.example"), data("e30=")).unwrap_err().to_string();
        assert!(e.contains("ftp://tuf.example") && e.contains("scheme ftp"), "{e}");
        let e = TufRepo::new(Some("https://tuf.example"), TufRoot::Path("http://tuf.example/root.json".into()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("never over plain http"), "{e}");
        let e = TufRepo::new(Some("https://tuf.example"), data("not base64!")).unwrap_err().to_string();
        assert!(e.contains("root.data is not base64"), "{e}");
    }
}

#[cfg(test)]
mod repo_tests;
