//! Artifacts attached to an image as OCI 1.1 referrers (SBOMs, scan reports), with the
//! notation signatures attached to each of them: what Kyverno's referrer attestations
//! (`attestations[].referrer`, verified by a notary attestor) read.
//!
//! For one image digest, on the first of containerd's hosts that has any: the referrers list
//! (the API, else the fallback tag), the entries of the artifact type asked for, each entry's
//! manifest checked against its digest, the notation envelopes among that manifest's own
//! referrers, and, when the policy reads it and a signature is there to verify, its one
//! layer. Bounded as every signature fetch is: at most `max_signatures` artifacts, manifests
//! under `max_manifest_bytes`, a payload under `max_artifact_bytes` also after
//! decompression, all of it within the verification's byte budget and deadline.
//!
//! Nothing is trusted here. That an artifact names the image as its subject and that a
//! signature names the artifact are the verifier's checks ([`crate::verify::referred`]).

use std::io::Read;

use futures::{StreamExt, TryStreamExt};

use super::client::{FetchError, Repository};
use super::layers::parse_manifest;
use super::manifest::{Descriptor, Index, Manifest, OCI_MANIFEST};
use super::source::{malformed, missing, sha256, Asked, OciSignatureSource, Progress};
use super::{
    prefixed_artifact_reference, Artifact, Form, PayloadError, Referred, ReferredArtifact, RegistryError, Signatures,
};
use crate::body::{self, Budget};
use crate::reference::Reference;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

impl OciSignatureSource {
    /// [`super::SignatureSource::referred`] from the registry and its mirrors.
    pub(super) async fn fetch_referred(
        &self,
        image: &Reference,
        digest: &str,
        artifact_type: &str,
        payloads: bool,
    ) -> Result<Referred, RegistryError> {
        let budget = Budget::in_pool(self.limits.max_total_bytes, &self.pool);
        // The digest's referrers fallback tag names where they are (and checks the digest).
        let location = prefixed_artifact_reference(image, digest, Artifact::Notary, "")?.whole();
        let progress = std::sync::Mutex::new(Progress::default());
        let fetch = async {
            let registry = image.registry();
            let mut asked = Asked::default();
            for endpoint in self.mirrors.endpoints(registry) {
                let repo = self.repository(&endpoint, image.repository(), registry, &progress);
                match self.referred_on(&repo, digest, artifact_type, &location, payloads, &budget).await {
                    Ok(Some(artifacts)) => return Ok(Referred { location: location.clone(), artifacts }),
                    outcome => asked.note(&endpoint.host, outcome, &progress)?,
                }
            }
            asked.finish(&location)?;
            Ok(Referred { location: location.clone(), artifacts: Vec::new() })
        };
        self.within_deadline(&location, &progress, fetch).await
    }

    /// The artifacts of `artifact_type` on one host; `None` when it lists none.
    async fn referred_on(
        &self,
        repo: &Repository<'_>,
        digest: &str,
        artifact_type: &str,
        location: &str,
        payloads: bool,
        budget: &Budget,
    ) -> Result<Option<Vec<ReferredArtifact>>, RegistryError> {
        let Some(raw) = self.referrers_index(repo, digest, location, budget).await? else {
            return Ok(None);
        };
        let index: Index = serde_json::from_slice(&raw).map_err(|e| malformed(location, &e.to_string()))?;
        // Kyverno picks referrers by the artifact type their index entry carries. One listed
        // twice is one artifact.
        let mut seen = std::collections::BTreeSet::new();
        let entries: Vec<Descriptor> = index
            .manifests
            .into_iter()
            .filter(|d| d.artifact_type.as_deref() == Some(artifact_type))
            .filter(|d| seen.insert(d.digest.clone()))
            .collect();
        if entries.is_empty() {
            return Ok(None);
        }
        if entries.len() > self.limits.max_signatures {
            return Err(RegistryError::TooManySignatures {
                location: location.to_string(),
                count: entries.len(),
                limit: self.limits.max_signatures,
            });
        }
        let artifacts = futures::stream::iter(entries)
            .map(|entry| self.artifact(repo, entry, location, payloads, budget))
            .buffered(self.limits.max_concurrent.max(1))
            .try_collect()
            .await?;
        Ok(Some(artifacts))
    }

    /// One listed artifact: its manifest, its notation signatures, and maybe its payload.
    async fn artifact(
        &self,
        repo: &Repository<'_>,
        entry: Descriptor,
        location: &str,
        payloads: bool,
        budget: &Budget,
    ) -> Result<ReferredArtifact, RegistryError> {
        if !entry.has_valid_digest() {
            return Err(malformed(location, &format!("referrer digest {:?} is not sha256", entry.digest)));
        }
        let raw = self
            .client
            .get(repo, &format!("manifests/{}", entry.digest), OCI_MANIFEST, self.limits.max_manifest_bytes, budget)
            .await
            .map_err(|e| RegistryError::fetch(location, e))?
            .ok_or_else(|| missing(location, repo, &entry.digest))?;
        if sha256(&raw) != entry.digest {
            return Err(RegistryError::PayloadDigestMismatch {
                location: location.to_string(),
                digest: entry.digest.clone(),
            });
        }
        let manifest = parse_manifest(&raw, &self.limits, location)?;
        // The artifact's own referrers, where notation keeps the signatures over it.
        let own = match location.rsplit_once(':') {
            Some((repository, _)) => format!("{repository}:{}", entry.digest.replace(':', "-")),
            None => location.to_string(),
        };
        let layers: Vec<_> = self
            .referrers(repo, &entry.digest, &own, budget)
            .await?
            .unwrap_or_default()
            .into_iter()
            .filter(|l| l.form == Form::Notary)
            .collect();
        // An unsigned artifact can never be the one read: its payload is not downloaded.
        let payload = match payloads && !layers.is_empty() {
            true => Some(self.artifact_payload(repo, &manifest, &own, budget).await?),
            false => None,
        };
        Ok(ReferredArtifact {
            digest: entry.digest,
            subject: manifest.subject.map(|s| s.digest),
            payload,
            signatures: Signatures { location: own, layers },
        })
    }

    /// The artifact's one layer, as Kyverno reads it (gzip is undone). What makes it
    /// unreadable is the inner error; a registry that breaks a bound or the digest is the
    /// outer one.
    async fn artifact_payload(
        &self,
        repo: &Repository<'_>,
        manifest: &Manifest,
        location: &str,
        budget: &Budget,
    ) -> Result<Result<Vec<u8>, PayloadError>, RegistryError> {
        let limit = self.limits.max_artifact_bytes;
        let [layer] = manifest.layers.as_slice() else {
            return Ok(Err(PayloadError::Layers(manifest.layers.len())));
        };
        if layer.size < 0 || layer.size as usize > limit {
            return Ok(Err(PayloadError::TooLarge { size: layer.size, limit }));
        }
        if !layer.has_valid_digest() {
            return Err(malformed(location, &format!("layer digest {:?} is not sha256", layer.digest)));
        }
        let blob =
            match self.client.get(repo, &format!("blobs/{}", layer.digest), "*/*", layer.size as usize, budget).await {
                Ok(Some(blob)) => blob,
                Ok(None) => return Err(missing(location, repo, &layer.digest)),
                Err(FetchError::Body(body::BodyError::TooLarge { .. })) => {
                    return Ok(Err(PayloadError::LongerThanSaid(layer.size)))
                }
                Err(e) => return Err(RegistryError::fetch(location, e)),
            };
        if sha256(&blob) != layer.digest {
            return Err(RegistryError::PayloadDigestMismatch {
                location: location.to_string(),
                digest: layer.digest.clone(),
            });
        }
        if !blob.starts_with(&GZIP_MAGIC) {
            return Ok(Ok(blob.to_vec()));
        }
        let mut out = Vec::new();
        let read = flate2::read::GzDecoder::new(&blob[..]).take(limit as u64 + 1).read_to_end(&mut out);
        match read {
            Err(e) => Ok(Err(PayloadError::Gzip(e.to_string()))),
            Ok(n) if n > limit => Ok(Err(PayloadError::Inflated(limit))),
            // What decompression made is memory the verification holds.
            Ok(n) if !budget.charge(n).await => Err(RegistryError::Refused {
                location: location.to_string(),
                message: format!(
                    "the decompressed payload would take the verification past its {} byte budget",
                    budget.total()
                ),
            }),
            Ok(_) => Ok(Ok(out)),
        }
    }
}
