//! Resolving an image name to the digest containerd will run (an I/O seam, with a fake).
//!
//! The CRI annotation gives a name, usually a tag. Asking the registry what the tag points
//! to *now* is a time-of-check/time-of-use hole: the tag may have moved since the node
//! pulled it. containerd's own image store records what was pulled, so that is the only
//! place signet asks. The content and snapshot reads here are what [`crate::rootfs`] needs to
//! tie that digest to the container's root filesystem.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::introspection_client::IntrospectionClient;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::snapshots::StatSnapshotRequest;
use containerd_client::services::v1::{GetImageRequest, ListImagesRequest, PluginsRequest, ReadContentRequest};
use containerd_client::tonic::metadata::AsciiMetadataValue;
use containerd_client::tonic::{transport::Channel, Code, Request};

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("image {name} is not in containerd's image store (namespace {namespace})")]
    NotFound { name: String, namespace: String },
    #[error("containerd image store at {socket} is unavailable: {message}")]
    Unavailable { socket: String, message: String },
    #[error("containerd image store entry for {name} has no usable target digest ({digest:?})")]
    BadTarget { name: String, digest: String },
    #[error("containerd namespace {namespace:?} cannot be sent to containerd: {message}")]
    BadNamespace { namespace: String, message: String },
    #[error("content {digest} is not in containerd's content store")]
    NoContent { digest: String },
    #[error("content {digest} in containerd's content store is over the {limit} byte limit")]
    ContentTooLarge { digest: String, limit: usize },
}

/// A snapshot as containerd's snapshot service states it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub snapshotter: String,
    /// The snapshot it was prepared from (a layer chain ID for an image's top layer).
    pub parent: String,
    /// `containerd.io/snapshot/uidmapping` and `gidmapping` (`ctr:host:size,…`): set on a
    /// user-namespaced container's snapshot, whose parent is then a remapped copy.
    pub uid_mapping: Option<String>,
    pub gid_mapping: Option<String>,
}

/// The labels of a user-namespaced container's snapshot.
pub const UID_MAPPING_LABEL: &str = "containerd.io/snapshot/uidmapping";
pub const GID_MAPPING_LABEL: &str = "containerd.io/snapshot/gidmapping";

/// Where images are looked up.
#[async_trait]
pub trait ImageStore: Send + Sync {
    /// The target digest (manifest or index) recorded for `name`.
    async fn resolve(&self, name: &str) -> Result<String, StoreError>;
    /// Repository names (`registry/repo`) recorded for images with this target digest;
    /// used when the runtime names an image only by its ID.
    async fn names_for_digest(&self, digest: &str) -> Result<Vec<String>, StoreError>;
    /// The blob `digest` from the content store, at most `limit` bytes.
    async fn read_content(&self, digest: &str, limit: usize) -> Result<Vec<u8>, StoreError>;
    /// The snapshot `key` in `snapshotter`, or in whichever snapshotter holds it (`None`).
    async fn snapshot(&self, snapshotter: Option<&str>, key: &str) -> Result<Option<Snapshot>, StoreError>;
}

/// containerd's image service over its gRPC socket.
pub struct ContainerdImageStore {
    socket: PathBuf,
    namespace: String,
    /// `namespace` as the request header every call carries, checked once at startup.
    namespace_header: AsciiMetadataValue,
    timeout: Duration,
    channel: tokio::sync::Mutex<Option<Channel>>,
    /// The snapshotters containerd loaded, asked again when a snapshot is found in none.
    snapshotters: tokio::sync::Mutex<Option<Vec<String>>>,
}

impl ContainerdImageStore {
    /// Refuses a namespace that cannot be a gRPC header value, so no request can fail on it.
    pub fn new(socket: PathBuf, namespace: String, timeout: Duration) -> Result<Self, StoreError> {
        let namespace_header =
            namespace.parse().map_err(|e: containerd_client::tonic::metadata::errors::InvalidMetadataValue| {
                StoreError::BadNamespace { namespace: namespace.clone(), message: e.to_string() }
            })?;
        Ok(Self {
            socket,
            namespace,
            namespace_header,
            timeout,
            channel: tokio::sync::Mutex::new(None),
            snapshotters: tokio::sync::Mutex::new(None),
        })
    }

    fn unavailable(&self, message: impl ToString) -> StoreError {
        StoreError::Unavailable { socket: self.socket.display().to_string(), message: message.to_string() }
    }

    async fn client(&self) -> Result<ImagesClient<Channel>, StoreError> {
        Ok(ImagesClient::new(self.channel().await?))
    }

    async fn channel(&self) -> Result<Channel, StoreError> {
        let mut guard = self.channel.lock().await;
        if let Some(ch) = guard.as_ref() {
            return Ok(ch.clone());
        }
        let ch = tokio::time::timeout(self.timeout, containerd_client::connect(&self.socket))
            .await
            .map_err(|_| self.unavailable("connect timed out"))?
            .map_err(|e| self.unavailable(e))?;
        *guard = Some(ch.clone());
        Ok(ch)
    }

    /// The snapshotters that loaded, the CRI's default (`overlayfs`) first; `fresh` asks
    /// containerd again (a snapshotter may have come up since).
    async fn snapshotters(&self, fresh: bool) -> Result<Vec<String>, StoreError> {
        let mut known = self.snapshotters.lock().await;
        if let Some(ids) = known.as_ref().filter(|_| !fresh) {
            return Ok(ids.clone());
        }
        let mut client = IntrospectionClient::new(self.channel().await?);
        let filters = vec!["type==io.containerd.snapshotter.v1".to_string()];
        let resp = match client.plugins(self.request(PluginsRequest { filters })).await {
            Ok(r) => r.into_inner(),
            Err(s) => {
                self.reset().await;
                return Err(self.unavailable(s.message()));
            }
        };
        let mut ids: Vec<String> = resp.plugins.into_iter().filter(|p| p.init_err.is_none()).map(|p| p.id).collect();
        ids.sort_by_key(|id| id != "overlayfs");
        *known = Some(ids.clone());
        Ok(ids)
    }

    /// `key` in the first of `snapshotters` that holds it. A snapshotter that cannot answer
    /// is passed over; if none holds the key, its failure is the answer.
    async fn find_snapshot(&self, snapshotters: &[String], key: &str) -> Result<Option<Snapshot>, StoreError> {
        let mut client = SnapshotsClient::new(self.channel().await?);
        let mut failed = None;
        for name in snapshotters {
            let request = StatSnapshotRequest { snapshotter: name.clone(), key: key.to_string() };
            match client.stat(self.request(request)).await {
                Ok(r) => {
                    let info = r.into_inner().info.unwrap_or_default();
                    return Ok(Some(Snapshot {
                        snapshotter: name.clone(),
                        parent: info.parent,
                        uid_mapping: info.labels.get(UID_MAPPING_LABEL).cloned(),
                        gid_mapping: info.labels.get(GID_MAPPING_LABEL).cloned(),
                    }));
                }
                Err(s) if s.code() == Code::NotFound => {}
                Err(s) => {
                    if s.code() == Code::Unavailable {
                        self.reset().await;
                    }
                    failed = Some(format!("snapshotter {name}: {}", s.message()));
                }
            }
        }
        match failed {
            Some(message) => Err(self.unavailable(message)),
            None => Ok(None),
        }
    }

    /// Forget the channel after a transport failure so the next call dials again
    /// (containerd restarts take the socket away).
    async fn reset(&self) {
        *self.channel.lock().await = None;
    }

    fn request<T>(&self, msg: T) -> Request<T> {
        let mut req = Request::new(msg);
        req.metadata_mut().insert("containerd-namespace", self.namespace_header.clone());
        req.set_timeout(self.timeout);
        req
    }
}

#[async_trait]
impl ImageStore for ContainerdImageStore {
    async fn resolve(&self, name: &str) -> Result<String, StoreError> {
        let mut client = self.client().await?;
        let resp = match client.get(self.request(GetImageRequest { name: name.to_string() })).await {
            Ok(r) => r.into_inner(),
            Err(s) if s.code() == Code::NotFound => {
                return Err(StoreError::NotFound { name: name.to_string(), namespace: self.namespace.clone() })
            }
            Err(s) => {
                self.reset().await;
                return Err(self.unavailable(s.message()));
            }
        };
        let digest = resp.image.and_then(|i| i.target).map(|t| t.digest).unwrap_or_default();
        check_digest(name, digest)
    }

    async fn names_for_digest(&self, digest: &str) -> Result<Vec<String>, StoreError> {
        let mut client = self.client().await?;
        let filter = format!("target.digest=={digest}");
        let resp = match client.list(self.request(ListImagesRequest { filters: vec![filter] })).await {
            Ok(r) => r.into_inner(),
            Err(s) => {
                self.reset().await;
                return Err(self.unavailable(s.message()));
            }
        };
        Ok(resp.images.into_iter().map(|i| i.name).filter(|n| !n.starts_with("sha256:")).collect())
    }

    async fn read_content(&self, digest: &str, limit: usize) -> Result<Vec<u8>, StoreError> {
        let mut client = ContentClient::new(self.channel().await?);
        let request = ReadContentRequest { digest: digest.to_string(), offset: 0, size: 0 };
        let mut stream = match client.read(self.request(request)).await {
            Ok(r) => r.into_inner(),
            Err(s) if s.code() == Code::NotFound => return Err(StoreError::NoContent { digest: digest.to_string() }),
            Err(s) => {
                self.reset().await;
                return Err(self.unavailable(s.message()));
            }
        };
        let mut out = Vec::new();
        loop {
            match stream.message().await {
                Ok(Some(chunk)) => {
                    if out.len() + chunk.data.len() > limit {
                        return Err(StoreError::ContentTooLarge { digest: digest.to_string(), limit });
                    }
                    out.extend_from_slice(&chunk.data);
                }
                Ok(None) => return Ok(out),
                Err(s) if s.code() == Code::NotFound => {
                    return Err(StoreError::NoContent { digest: digest.to_string() })
                }
                Err(s) => return Err(self.unavailable(s.message())),
            }
        }
    }

    async fn snapshot(&self, snapshotter: Option<&str>, key: &str) -> Result<Option<Snapshot>, StoreError> {
        if let Some(s) = snapshotter {
            return self.find_snapshot(&[s.to_string()], key).await;
        }
        if let Some(found) = self.find_snapshot(&self.snapshotters(false).await?, key).await? {
            return Ok(Some(found));
        }
        self.find_snapshot(&self.snapshotters(true).await?, key).await
    }
}

fn check_digest(name: &str, digest: String) -> Result<String, StoreError> {
    let ok = digest
        .strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    if ok {
        Ok(digest)
    } else {
        Err(StoreError::BadTarget { name: name.to_string(), digest })
    }
}

#[cfg(test)]
pub use fake::FakeImageStore;

/// In-memory image store for tests (not in the release binary).
#[cfg(test)]
mod fake {
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    use std::time::Duration;

    use async_trait::async_trait;

    use super::{check_digest, ImageStore, Snapshot, StoreError};

    #[derive(Default)]
    pub struct FakeImageStore {
        /// By name, in name order: containerd lists images in its metadata bucket's order.
        images: Mutex<BTreeMap<String, String>>,
        content: Mutex<BTreeMap<String, Vec<u8>>>,
        /// (snapshotter, key) -> the snapshot.
        snapshots: Mutex<BTreeMap<(String, String), Snapshot>>,
        unavailable: Mutex<bool>,
        delay: Mutex<Duration>,
    }

    impl FakeImageStore {
        pub fn new() -> std::sync::Arc<Self> {
            std::sync::Arc::new(Self::default())
        }
        pub fn put(&self, name: &str, digest: &str) {
            self.images.lock().unwrap().insert(name.to_string(), digest.to_string());
        }
        /// Store a blob; returns its digest.
        pub fn put_content(&self, blob: &str) -> String {
            use sha2::Digest;
            let digest = format!("sha256:{:x}", sha2::Sha256::digest(blob.as_bytes()));
            self.content.lock().unwrap().insert(digest.clone(), blob.as_bytes().to_vec());
            digest
        }
        /// `digest` as a one-layer image manifest in the content store (the fake does not
        /// check that content hashes to its digest); returns its layer chain.
        pub fn put_manifest(&self, digest: &str) -> String {
            use sha2::Digest;
            let layer = format!("sha256:{:x}", sha2::Sha256::digest(digest.as_bytes()));
            let config = self.put_content(&format!(r#"{{"rootfs":{{"type":"layers","diff_ids":["{layer}"]}}}}"#));
            let manifest = format!(r#"{{"config":{{"digest":"{config}"}},"layers":[]}}"#);
            self.content.lock().unwrap().insert(digest.to_string(), manifest.into_bytes());
            layer
        }
        /// The CRI's rootfs for `container`, unpacked from the image at `digest`.
        pub fn unpack_for(&self, container: &str, digest: &str) {
            let chain = self.put_manifest(digest);
            self.put_snapshot("overlayfs", container, &chain);
        }
        pub fn put_snapshot(&self, snapshotter: &str, key: &str, parent: &str) {
            let s = Snapshot { snapshotter: snapshotter.into(), parent: parent.into(), ..Default::default() };
            self.put_snapshot_as(key, s);
        }
        pub fn put_snapshot_as(&self, key: &str, snapshot: Snapshot) {
            self.snapshots.lock().unwrap().insert((snapshot.snapshotter.clone(), key.into()), snapshot);
        }
        pub fn set_unavailable(&self, down: bool) {
            *self.unavailable.lock().unwrap() = down;
        }
        /// Make every lookup take this long (a hung containerd).
        pub fn set_delay(&self, d: Duration) {
            *self.delay.lock().unwrap() = d;
        }
    }

    #[async_trait]
    impl ImageStore for FakeImageStore {
        async fn resolve(&self, name: &str) -> Result<String, StoreError> {
            let delay = *self.delay.lock().unwrap();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if *self.unavailable.lock().unwrap() {
                return Err(StoreError::Unavailable { socket: "fake".into(), message: "down".into() });
            }
            let digest = self.images.lock().unwrap().get(name).cloned();
            match digest {
                Some(d) => check_digest(name, d),
                None => Err(StoreError::NotFound { name: name.to_string(), namespace: "k8s.io".into() }),
            }
        }

        async fn names_for_digest(&self, digest: &str) -> Result<Vec<String>, StoreError> {
            let images = self.images.lock().unwrap();
            Ok(images
                .iter()
                .filter(|(n, d)| *d == digest && !n.starts_with("sha256:"))
                .map(|(n, _)| n.clone())
                .collect())
        }

        async fn read_content(&self, digest: &str, limit: usize) -> Result<Vec<u8>, StoreError> {
            match self.content.lock().unwrap().get(digest) {
                Some(b) if b.len() > limit => Err(StoreError::ContentTooLarge { digest: digest.into(), limit }),
                Some(b) => Ok(b.clone()),
                None => Err(StoreError::NoContent { digest: digest.into() }),
            }
        }

        async fn snapshot(&self, snapshotter: Option<&str>, key: &str) -> Result<Option<Snapshot>, StoreError> {
            let snapshots = self.snapshots.lock().unwrap();
            Ok(snapshots
                .iter()
                .find(|((s, k), _)| k == key && snapshotter.is_none_or(|want| want == s))
                .map(|(_, snapshot)| snapshot.clone()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_sha256_targets_are_accepted() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert_eq!(check_digest("x", good.clone()), Ok(good));
        assert!(check_digest("x", String::new()).is_err());
        assert!(check_digest("x", format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(check_digest("x", format!("sha512:{}", "a".repeat(128))).is_err());
    }

    #[test]
    fn a_namespace_that_is_no_header_value_is_refused_at_startup() {
        let new = |ns: &str| ContainerdImageStore::new("/run/c.sock".into(), ns.into(), Duration::from_secs(1));
        assert!(new("k8s.io").is_ok());
        let err = new("k8s\nio").err().expect("a newline is refused");
        assert!(matches!(err, StoreError::BadNamespace { .. }), "{err}");
        assert!(err.to_string().contains("containerd namespace \"k8s\\nio\""), "{err}");
    }
}
