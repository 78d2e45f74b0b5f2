//! Binding the digest signet checks to the root filesystem containerd gives the container.
//!
//! The name in a CreateContainer request is a claim, not the content: containerd >= 2.0 puts
//! the CRI's `user_specified_image` there (any text a CRI caller sends beside the image ID
//! it runs), and even kubelet's honest name can resolve to other content than the ID it sent
//! when the tag moved in between. What runs is the container's rootfs snapshot, which the
//! CRI prepares (key = container ID) from the image's layer chain *before* it asks NRI
//! plugins. So after resolving a name to a digest, the snapshot's parent must be the layer
//! chain (`identity.ChainID` of the config's `rootfs.diff_ids`) of one of the image's
//! manifests held locally; otherwise the request is denied, naming both.
//!
//! A user-namespaced pod on a snapshotter without idmap mounts runs on a remapped copy of
//! the chain, named from the chain and the container snapshot's ID-mapping labels exactly as
//! containerd names it (1.7: `<chain>-<host uid>-<host gid>`; 2.x: the digest of its JSON
//! form), whose own parent is the chain: that one hop is accepted, nothing looser (a
//! snapshot one layer above the chain is another image).
//! Everything is read from containerd (content and snapshots), never from a registry, and
//! every read is bounded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::imagestore::{ImageStore, Snapshot, StoreError};

/// Largest index or manifest read; the registry client uses the same order of size.
const MAX_MANIFEST_BYTES: usize = 4 << 20;
/// Largest image config read (configs carry history, usually well under 100 KiB).
const MAX_CONFIG_BYTES: usize = 8 << 20;
/// Most manifests of one index looked at; more is refused, not cut.
const MAX_MANIFESTS: usize = 256;
/// Digests whose layer chains are remembered (content is immutable, so never stale).
const CACHE_ENTRIES: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("container {container} has no root filesystem snapshot in any snapshotter containerd reports")]
    NoSnapshot { container: String },
    #[error(
        "container {container}'s root filesystem is not the content of {image} ({digest}): its snapshot is made \
         from {parent}, which is no layer chain of that image"
    )]
    Mismatch { container: String, image: String, digest: String, parent: String },
    #[error("image {digest}: {what} in containerd's content store is not valid: {message}")]
    BadContent { digest: String, what: &'static str, message: String },
    #[error("image {digest}: an index of more than {MAX_MANIFESTS} manifests is not read")]
    TooManyManifests { digest: String },
    #[error("image {digest}: no manifest of it is held locally, so its layers cannot be known")]
    NoLocalManifest { digest: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The layer chains of images, by digest, read once.
#[derive(Default)]
pub struct Chains {
    known: Mutex<HashMap<String, Arc<[String]>>>,
}

impl Chains {
    /// Deny unless `container`'s rootfs snapshot is made from a layer chain of `digest`,
    /// the image the request named as `image`.
    pub async fn check(
        &self,
        store: &dyn ImageStore,
        container: &str,
        image: &str,
        digest: &str,
    ) -> Result<(), RootfsError> {
        let snapshot = store
            .snapshot(None, container)
            .await?
            .ok_or_else(|| RootfsError::NoSnapshot { container: container.to_string() })?;
        let chains = self.of(store, digest).await?;
        if chains.contains(&snapshot.parent) {
            return Ok(());
        }
        if let Some(chain) = chains.iter().find(|c| remapped_ids(c, &snapshot).contains(&snapshot.parent)) {
            let copy = store.snapshot(Some(&snapshot.snapshotter), &snapshot.parent).await?;
            if copy.is_some_and(|s| s.parent == *chain) {
                return Ok(());
            }
        }
        Err(RootfsError::Mismatch {
            container: container.to_string(),
            image: image.to_string(),
            digest: digest.to_string(),
            parent: snapshot.parent,
        })
    }

    /// Every layer chain `digest` can be unpacked as: one per manifest held locally.
    async fn of(&self, store: &dyn ImageStore, digest: &str) -> Result<Arc<[String]>, RootfsError> {
        if let Some(c) = self.known.lock().unwrap_or_else(|e| e.into_inner()).get(digest) {
            return Ok(Arc::clone(c));
        }
        let chains: Arc<[String]> = chains_of(store, digest).await?.into();
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if known.len() >= CACHE_ENTRIES {
            known.clear();
        }
        known.insert(digest.to_string(), Arc::clone(&chains));
        Ok(chains)
    }
}

/// The names containerd gives the remapped copy of `chain` for a container snapshot with
/// these ID-mapping labels (none without them).
fn remapped_ids(chain: &str, container: &Snapshot) -> Vec<String> {
    let (Some(uids), Some(gids)) = (container.uid_mapping.as_deref(), container.gid_mapping.as_deref()) else {
        return Vec::new();
    };
    let (Some(uid_map), Some(gid_map)) = (id_mappings(uids), id_mappings(gids)) else { return Vec::new() };
    let mut ids = Vec::new();
    // containerd 1.7: the host IDs container ID 0 maps to.
    let root = |m: &[[u32; 3]]| m.iter().find(|e| e[0] == 0).map(|e| e[1]);
    if let (Some(uid), Some(gid)) = (root(&uid_map), root(&gid_map)) {
        ids.push(format!("{chain}-{uid}-{gid}"));
    }
    // containerd 2.x: the digest of Go's JSON of {Parent, IDMap{UidMap, GidMap}}, each map
    // sorted by container ID (stable), an empty one `null`.
    let json = |m: &[[u32; 3]]| {
        if m.is_empty() {
            return "null".to_string();
        }
        let mut m = m.to_vec();
        m.sort_by_key(|e| e[0]);
        let entries: Vec<String> =
            m.iter().map(|e| format!(r#"{{"containerID":{},"hostID":{},"size":{}}}"#, e[0], e[1], e[2])).collect();
        format!("[{}]", entries.join(","))
    };
    let doc = format!(r#"{{"Parent":"{chain}","IDMap":{{"UidMap":{},"GidMap":{}}}}}"#, json(&uid_map), json(&gid_map));
    ids.push(format!("sha256:{:x}", Sha256::digest(doc.as_bytes())));
    ids
}

/// `ctr:host:size,…` as containerd writes the mapping labels; `None` if any entry is not.
fn id_mappings(label: &str) -> Option<Vec<[u32; 3]>> {
    if label.is_empty() {
        return Some(Vec::new());
    }
    label
        .split(',')
        .map(|entry| {
            let mut parts = entry.split(':').map(|p| p.parse::<u32>().ok());
            match (parts.next()??, parts.next()??, parts.next()??, parts.next()) {
                (c, h, s, None) => Some([c, h, s]),
                _ => None,
            }
        })
        .collect()
}

async fn chains_of(store: &dyn ImageStore, digest: &str) -> Result<Vec<String>, RootfsError> {
    let bad = |what, e: serde_json::Error| RootfsError::BadContent {
        digest: digest.to_string(),
        what,
        message: e.to_string(),
    };
    let top: Document = serde_json::from_slice(&store.read_content(digest, MAX_MANIFEST_BYTES).await?)
        .map_err(|e| bad("the index or manifest", e))?;
    let manifests: Vec<Document> = match top {
        Document { config: Some(_), .. } => vec![top],
        Document { manifests: Some(list), .. } => {
            if list.len() > MAX_MANIFESTS {
                return Err(RootfsError::TooManyManifests { digest: digest.to_string() });
            }
            let mut held = Vec::new();
            for m in list {
                match store.read_content(&m.digest, MAX_MANIFEST_BYTES).await {
                    // Nested indexes are not unpacked by the CRI: only image manifests count.
                    Ok(raw) => match serde_json::from_slice::<Document>(&raw) {
                        Ok(doc) if doc.config.is_some() => held.push(doc),
                        Ok(_) => {}
                        Err(e) => return Err(bad("a manifest of the index", e)),
                    },
                    // Other platforms' manifests are usually not pulled.
                    Err(StoreError::NoContent { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            held
        }
        _ => Vec::new(),
    };
    let mut chains = Vec::new();
    for m in manifests {
        let Some(config) = m.config else { continue };
        let raw = match store.read_content(&config.digest, MAX_CONFIG_BYTES).await {
            Ok(raw) => raw,
            Err(StoreError::NoContent { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        let config: Config = serde_json::from_slice(&raw).map_err(|e| bad("an image config", e))?;
        // An artifact beside the images of an index (its config `{}`) unpacks to nothing.
        if let Some(rootfs) = config.rootfs {
            chains.push(chain_id(&rootfs.diff_ids));
        }
    }
    if chains.is_empty() {
        return Err(RootfsError::NoLocalManifest { digest: digest.to_string() });
    }
    Ok(chains)
}

/// OCI's ChainID: the first diff ID, then `sha256(previous + " " + next)` for each next.
pub fn chain_id(diff_ids: &[String]) -> String {
    let mut chain = match diff_ids.first() {
        Some(first) => first.clone(),
        None => return String::new(),
    };
    for next in &diff_ids[1..] {
        chain = format!("sha256:{:x}", Sha256::digest(format!("{chain} {next}").as_bytes()));
    }
    chain
}

/// The fields of an index or a manifest (OCI or Docker) this module reads.
#[derive(Deserialize)]
struct Document {
    config: Option<Descriptor>,
    manifests: Option<Vec<Descriptor>>,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
}

#[derive(Deserialize)]
struct Config {
    rootfs: Option<RootFs>,
}

#[derive(Deserialize)]
struct RootFs {
    diff_ids: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imagestore::FakeImageStore;

    fn sha(text: &str) -> String {
        format!("sha256:{:x}", Sha256::digest(text.as_bytes()))
    }

    /// An image of these layers in the fake store's content; returns (manifest digest, chain).
    fn image(store: &FakeImageStore, layers: &[&str]) -> (String, String) {
        let diff_ids: Vec<String> = layers.iter().map(|l| sha(l)).collect();
        let config = serde_json::json!({"rootfs": {"type": "layers", "diff_ids": diff_ids}}).to_string();
        let manifest = serde_json::json!({"config": {"digest": store.put_content(&config)}, "layers": []}).to_string();
        (store.put_content(&manifest), chain_id(&diff_ids))
    }

    #[test]
    fn chain_ids_are_oci_identity() {
        // One layer: the diff ID itself; two: sha256 of "a b" (as containerd's identity.ChainID).
        let (a, b) = (sha("a"), sha("b"));
        assert_eq!(chain_id(std::slice::from_ref(&a)), a);
        assert_eq!(chain_id(&[a.clone(), b.clone()]), sha(&format!("{a} {b}")));
    }

    #[tokio::test]
    async fn the_rootfs_must_be_made_from_the_checked_image() {
        let store = FakeImageStore::new();
        let (signed, signed_chain) = image(&store, &["base", "app"]);
        let (_unsigned, unsigned_chain) = image(&store, &["base", "evil"]);
        let chains = Chains::default();
        store.put_snapshot("overlayfs", "c1", &signed_chain);
        chains.check(store.as_ref(), "c1", "reg.io/app:v1", &signed).await.unwrap();
        // The request named the signed image; the CRI unpacked other content.
        store.put_snapshot("overlayfs", "c2", &unsigned_chain);
        let err = chains.check(store.as_ref(), "c2", "reg.io/app:v1", &signed).await.unwrap_err();
        assert!(matches!(err, RootfsError::Mismatch { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains("container c2") && text.contains("reg.io/app:v1") && text.contains(&signed), "{text}");
        let err = chains.check(store.as_ref(), "c3", "reg.io/app:v1", &signed).await.unwrap_err();
        assert!(matches!(err, RootfsError::NoSnapshot { .. }), "{err}");
    }

    #[tokio::test]
    async fn an_index_counts_each_manifest_held_locally() {
        let store = FakeImageStore::new();
        let (amd64, amd64_chain) = image(&store, &["amd64"]);
        let missing = sha("a manifest of another platform, never pulled");
        let index = serde_json::json!({"manifests": [{"digest": missing}, {"digest": amd64}]}).to_string();
        let index = store.put_content(&index);
        store.put_snapshot("native", "c1", &amd64_chain);
        Chains::default().check(store.as_ref(), "c1", "reg.io/app:v1", &index).await.unwrap();
        let (_, other_chain) = image(&store, &["other"]);
        store.put_snapshot("overlayfs", "c2", &other_chain);
        assert!(Chains::default().check(store.as_ref(), "c2", "reg.io/app:v1", &index).await.is_err());
    }

    /// A user-namespaced container's snapshot: its parent, and the mapping labels.
    fn userns(parent: &str) -> Snapshot {
        Snapshot {
            snapshotter: "overlayfs".into(),
            parent: parent.into(),
            uid_mapping: Some("0:65536:65536".into()),
            gid_mapping: Some("0:65536:65536".into()),
        }
    }

    #[tokio::test]
    async fn a_containerd_1_7_remapped_copy_counts_only_when_made_from_the_chain() {
        let store = FakeImageStore::new();
        let (signed, chain) = image(&store, &["app"]);
        let (_, evil_chain) = image(&store, &["evil"]);
        let copy = format!("{chain}-65536-65536");
        store.put_snapshot("overlayfs", &copy, &chain);
        store.put_snapshot_as("c1", userns(&copy));
        Chains::default().check(store.as_ref(), "c1", "reg.io/app:v1", &signed).await.unwrap();
        // Named like the copy, made from something else.
        let fake_copy = format!("{chain}-1-1");
        store.put_snapshot("overlayfs", &fake_copy, &evil_chain);
        store.put_snapshot_as(
            "c2",
            Snapshot { uid_mapping: Some("0:1:1".into()), gid_mapping: Some("0:1:1".into()), ..userns(&fake_copy) },
        );
        assert!(Chains::default().check(store.as_ref(), "c2", "reg.io/app:v1", &signed).await.is_err());
        // The copy's name without the labels that make it: not accepted.
        store.put_snapshot("overlayfs", "c3", &copy);
        assert!(Chains::default().check(store.as_ref(), "c3", "reg.io/app:v1", &signed).await.is_err());
    }

    /// Review: containerd 2.x names the copy by the digest of its JSON form, which the prefix
    /// rule never matched, so every such user-namespaced pod was denied.
    #[tokio::test]
    async fn a_containerd_2_remapped_copy_counts() {
        let store = FakeImageStore::new();
        let (signed, chain) = image(&store, &["app"]);
        let m = r#"[{"containerID":0,"hostID":65536,"size":65536}]"#;
        let copy = sha(&format!(r#"{{"Parent":"{chain}","IDMap":{{"UidMap":{m},"GidMap":{m}}}}}"#));
        store.put_snapshot("overlayfs", &copy, &chain);
        store.put_snapshot_as("c1", userns(&copy));
        Chains::default().check(store.as_ref(), "c1", "reg.io/app:v1", &signed).await.unwrap();
    }

    /// Guard: a snapshot one layer above the signed chain is another image, not a copy.
    #[tokio::test]
    async fn the_signed_layers_plus_one_are_no_copy() {
        let store = FakeImageStore::new();
        let (signed, chain) = image(&store, &["app"]);
        let (_, evil_chain) = image(&store, &["app", "evil"]);
        store.put_snapshot("overlayfs", &evil_chain, &chain);
        store.put_snapshot_as("c1", userns(&evil_chain));
        assert!(Chains::default().check(store.as_ref(), "c1", "reg.io/app:v1", &signed).await.is_err());
    }

    /// Review: an index may hold an artifact beside its images (config `{}`); it made the
    /// whole image fail.
    #[tokio::test]
    async fn an_artifact_beside_the_images_of_an_index_is_passed_over() {
        let store = FakeImageStore::new();
        let (amd64, amd64_chain) = image(&store, &["amd64"]);
        let empty = store.put_content("{}");
        let artifact = store.put_content(&serde_json::json!({"config": {"digest": empty}, "layers": []}).to_string());
        let index =
            store.put_content(&serde_json::json!({"manifests": [{"digest": artifact}, {"digest": amd64}]}).to_string());
        store.put_snapshot("overlayfs", "c1", &amd64_chain);
        Chains::default().check(store.as_ref(), "c1", "reg.io/app:v1", &index).await.unwrap();
    }

    #[tokio::test]
    async fn content_that_is_not_an_image_is_refused_with_its_digest() {
        let store = FakeImageStore::new();
        let junk = store.put_content("not json");
        store.put_snapshot("overlayfs", "c1", &sha("x"));
        let err = Chains::default().check(store.as_ref(), "c1", "reg.io/app:v1", &junk).await.unwrap_err();
        assert!(matches!(err, RootfsError::BadContent { .. }) && err.to_string().contains(&junk), "{err}");
    }
}
