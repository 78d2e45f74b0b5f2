//! Small signed TUF repositories, made with tough's editor, for signet's tests and the e2e
//! world: one Ed25519 key holds every role (threshold 1), consistent snapshots, targets given
//! as bytes. Test-only: the release binary never links it.
//!
//! [`Repo::publish`] writes a new version of every role over the same directory, so a test
//! can rotate content, let metadata expire, or keep an old copy to replay (a rollback).

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};

use tough::editor::signed::{PathExists, SignedRole};
use tough::editor::RepositoryEditor;
use tough::key_source::{KeySource, LocalKeySource};
use tough::schema::{KeyHolder, RoleKeys, RoleType, Root};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// A repository directory and the key that signs it.
pub struct Repo {
    pub dir: PathBuf,
    key: PathBuf,
    root_path: PathBuf,
    /// The signed root.json a client enters through.
    pub root: Vec<u8>,
    version: u64,
    root_version: u64,
    expires: jiff::Timestamp,
}

fn root_for(key: &tough::schema::key::Key, version: u64, expires: jiff::Timestamp) -> Result<Root, Error> {
    let id = key.key_id()?;
    let roles = [RoleType::Root, RoleType::Snapshot, RoleType::Targets, RoleType::Timestamp]
        .into_iter()
        .map(|r| {
            (r, RoleKeys { keyids: vec![id.clone()], threshold: NonZeroU64::new(1).unwrap(), _extra: HashMap::new() })
        })
        .collect();
    Ok(Root {
        spec_version: "1.0.0".into(),
        consistent_snapshot: true,
        version: NonZeroU64::new(version).unwrap(),
        expires,
        keys: HashMap::from([(id, key.clone())]),
        roles,
        _extra: HashMap::new(),
    })
}

/// A fresh Ed25519 key as a PKCS#8 DER file (tough reads Ed25519 keys as DER, RSA as PEM).
pub fn new_key(path: &Path) -> Result<(), Error> {
    new_key_file(path)
}

fn new_key_file(path: &Path) -> Result<(), Error> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let doc = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| format!("key: {e}"))?;
    std::fs::write(path, doc.as_ref())?;
    Ok(())
}

impl Repo {
    /// A repository at `dir` whose root (version 1) names the key at `key` (made if absent)
    /// for every role; nothing published yet.
    pub async fn create(dir: &Path, key: &Path, expires: jiff::Timestamp) -> Result<Repo, Error> {
        std::fs::create_dir_all(dir)?;
        if !key.exists() {
            if let Some(parent) = key.parent() {
                std::fs::create_dir_all(parent)?;
            }
            new_key(key)?;
        }
        let source = LocalKeySource { path: key.to_path_buf() };
        let root = root_for(&source.as_sign().await?.tuf_key(), 1, expires)?;
        let keys: Vec<Box<dyn KeySource>> = vec![Box::new(source)];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let signed = SignedRole::new(root.clone(), &KeyHolder::Root(root), &keys, &rng).await?;
        signed.write(dir, true).await?;
        let root_path = dir.join("1.root.json");
        Ok(Repo {
            dir: dir.to_path_buf(),
            key: key.to_path_buf(),
            root: signed.buffer().clone(),
            root_path,
            version: 0,
            root_version: 1,
            expires,
        })
    }

    /// Rotate every role to the key at `new_key` (made if absent): the next root version,
    /// signed by the old key and the new, as TUF requires; later publishes sign with it.
    pub async fn rotate(&mut self, new_key: &Path) -> Result<(), Error> {
        if !new_key.exists() {
            new_key_file(new_key)?;
        }
        let old = LocalKeySource { path: self.key.clone() };
        let new = LocalKeySource { path: new_key.to_path_buf() };
        let old_root: Root =
            serde_json::from_slice::<tough::schema::Signed<Root>>(&std::fs::read(&self.root_path)?)?.signed;
        self.root_version += 1;
        let root = root_for(&new.as_sign().await?.tuf_key(), self.root_version, self.expires)?;
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let by_old: Vec<Box<dyn KeySource>> = vec![Box::new(old)];
        let by_new: Vec<Box<dyn KeySource>> = vec![Box::new(new)];
        let old_signed = SignedRole::new(root.clone(), &KeyHolder::Root(old_root), &by_old, &rng).await?;
        let signed = SignedRole::new(root.clone(), &KeyHolder::Root(root), &by_new, &rng)
            .await?
            .add_old_signatures(old_signed.signed().signatures.clone())?;
        signed.write(&self.dir, true).await?;
        self.root_path = self.dir.join(format!("{}.root.json", self.root_version));
        self.key = new_key.to_path_buf();
        Ok(())
    }

    /// Publish the next version of targets, snapshot and timestamp with these targets.
    pub async fn publish(&mut self, targets: &[(&str, &[u8])], expires: jiff::Timestamp) -> Result<(), Error> {
        self.version += 1;
        let v = NonZeroU64::new(self.version).unwrap();
        let staging = self.dir.join(".staging");
        std::fs::create_dir_all(&staging)?;
        let mut editor = RepositoryEditor::new(&self.root_path).await?;
        editor
            .targets_version(v)?
            .targets_expires(expires)?
            .snapshot_version(v)
            .snapshot_expires(expires)
            .timestamp_version(v)
            .timestamp_expires(expires);
        let mut paths = Vec::new();
        for (name, bytes) in targets {
            let p = staging.join(name);
            std::fs::write(&p, bytes)?;
            paths.push(p);
        }
        editor.add_target_paths(paths).await?;
        let keys: Vec<Box<dyn KeySource>> = vec![Box::new(LocalKeySource { path: self.key.clone() })];
        let signed = editor.sign(&keys).await?;
        signed.write(&self.dir).await?;
        signed.copy_targets(&staging, self.dir.join("targets"), PathExists::Replace).await?;
        std::fs::remove_dir_all(&staging)?;
        Ok(())
    }
}
