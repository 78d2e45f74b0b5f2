//! Artifacts attached to an image as OCI 1.1 referrers (SBOMs, scan reports), with the
//! notation signatures attached to each of them: what Kyverno's referrer attestations
//! (`attestations[].referrer`, verified by a notary attestor) read.
//!
//! For one image digest, on the first of containerd's hosts that has any: the referrers list
//! (the API, else the fallback tag), the entries of the artifact type asked for, each entry's
//! manifest checked against its digest, the notation envelopes among that manifest's own
//! referrers, and, when the policy reads it and the caller's filter accepts the artifact (a
//! policy's signer verifies it: [`super::PayloadFilter`]), its one layer. Bounded as every
//! signature fetch is: at most `max_signatures` artifacts of the type, the first
//! [`MAX_SIGNATURE_ATTEMPTS`] notation signatures of each (notation-go's Kyverno setting),
//! artifacts `max_concurrent` at a time and each one's requests in turn, manifests under
//! `max_manifest_bytes`, a payload under `max_artifact_bytes` also after decompression, all
//! within a byte budget of its own (one per artifact type) and the deadline. A payload the
//! budget has no room for is unreadable, not a failed fetch: the artifacts before it may be
//! another trusted signer's, and an image whose verified artifact is readable still passes.
//! The manifests and signatures of artifacts no one trusted signed still count against the
//! budget (and past it fail the fetch): the registry's list decides which those are.
//!
//! Nothing is trusted here. That an artifact's signed manifest names the image as its
//! subject and the type asked for, and that a signature names the artifact, are the
//! verifier's checks ([`crate::verify::referred`]).

use std::io::Read;

use futures::{StreamExt, TryStreamExt};

use super::client::{FetchError, Repository};
use super::layers::parse_manifest;
use super::manifest::{Descriptor, Index, Manifest, OCI_MANIFEST};
use super::source::{malformed, missing, sha256, Asked, OciSignatureSource, Progress};
use super::{
    prefixed_artifact_reference, Artifact, Form, PayloadError, PayloadFilter, Referred, ReferredArtifact,
    RegistryError, Signatures, NOTARY_SIGNATURE_ARTIFACT_TYPE,
};
use crate::body::{self, Budget};
use crate::reference::Reference;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// notation signatures tried per artifact, as Kyverno's notation verifier does
/// (`MaxSignatureAttempts`).
pub const MAX_SIGNATURE_ATTEMPTS: usize = 10;

impl OciSignatureSource {
    /// [`super::SignatureSource::referred`] from the registry and its mirrors.
    pub(super) async fn fetch_referred(
        &self,
        image: &Reference,
        digest: &str,
        artifact_type: &str,
        payloads: Option<PayloadFilter<'_>>,
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
        payloads: Option<PayloadFilter<'_>>,
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
            return Err(RegistryError::TooManyReferrers {
                location: location.to_string(),
                artifact_type: artifact_type.to_string(),
                count: entries.len(),
                limit: self.limits.max_signatures,
            });
        }
        let artifacts = futures::stream::iter(entries.into_iter().enumerate())
            .map(|(position, entry)| self.artifact(repo, position, entry, location, payloads, budget))
            .buffered(self.limits.max_concurrent.max(1))
            .try_collect()
            .await?;
        Ok(Some(artifacts))
    }

    /// One listed artifact (at `position` among those of its type): its manifest, its
    /// notation signatures, and maybe its payload.
    async fn artifact(
        &self,
        repo: &Repository<'_>,
        position: usize,
        entry: Descriptor,
        location: &str,
        payloads: Option<PayloadFilter<'_>>,
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
            return Err(RegistryError::ContentDigestMismatch {
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
        // Its notation signatures, one after the other: the artifacts are already fetched
        // `max_concurrent` at a time, and a hostile list must not multiply that.
        let mut layers = Vec::new();
        if let Some(raw) = self.referrers_index(repo, &entry.digest, &own, budget).await? {
            let index: Index = serde_json::from_slice(&raw).map_err(|e| malformed(&own, &e.to_string()))?;
            let signatures = index
                .manifests
                .into_iter()
                .filter(|d| d.artifact_type.as_deref() == Some(NOTARY_SIGNATURE_ARTIFACT_TYPE))
                .take(MAX_SIGNATURE_ATTEMPTS);
            for signature in signatures {
                let found = self.referrer_layers(repo, signature, &own, budget).await?;
                layers.extend(found.into_iter().filter(|l| l.form == Form::Notary));
            }
        }
        // What the signed manifest says it is (OCI 1.1: its artifactType, else its config's
        // media type), not what the unsigned list says.
        let artifact_type = manifest.artifact_type.clone().or(Some(manifest.config.media_type.clone()));
        let mut artifact = ReferredArtifact {
            digest: entry.digest,
            artifact_type: artifact_type.filter(|t| !t.is_empty()),
            subject: manifest.subject.as_ref().map(|s| s.digest.clone()),
            payload: None,
            signatures: Signatures { location: own, layers },
            spells_statement: manifest.spells_statement(),
        };
        // An artifact no signature over which verifies can never be the one read: its
        // payload is not downloaded.
        let wanted =
            payloads.is_some_and(|verified| !artifact.signatures.layers.is_empty() && verified(position, &artifact));
        if wanted {
            let location = artifact.signatures.location.clone();
            artifact.payload = Some(self.artifact_payload(repo, &manifest, &location, budget).await?);
        }
        Ok(artifact)
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
                Err(FetchError::Body(body::BodyError::OverBudget { .. })) => {
                    return Ok(Err(PayloadError::Budget(budget.total())))
                }
                Err(e) => return Err(RegistryError::fetch(location, e)),
            };
        if sha256(&blob) != layer.digest {
            return Err(RegistryError::ContentDigestMismatch {
                location: location.to_string(),
                digest: layer.digest.clone(),
            });
        }
        if !blob.starts_with(&GZIP_MAGIC) {
            return Ok(Ok(blob.to_vec()));
        }
        // Every member, as Go's reader (Kyverno's) reads them; bytes after the last one are
        // an error there and here. What inflation makes is charged as it is made.
        let mut decoder = flate2::read::MultiGzDecoder::new(&blob[..]);
        let (mut out, mut chunk) = (Vec::new(), vec![0u8; 64 << 10]);
        loop {
            let n = match decoder.read(&mut chunk) {
                Ok(0) => return Ok(Ok(out)),
                Ok(n) => n,
                Err(e) => return Ok(Err(PayloadError::Gzip(e.to_string()))),
            };
            if out.len() + n > limit {
                return Ok(Err(PayloadError::Inflated(limit)));
            }
            if !budget.charge(n).await {
                return Ok(Err(PayloadError::Budget(budget.total())));
            }
            out.extend_from_slice(&chunk[..n]);
        }
    }
}
