//! The OCI fetch behind [`super::SignatureSource`]: for one image digest, which hosts are
//! asked in what order (containerd's mirrors, then the registry), with which credentials,
//! for `.sig`/`.att` tags, OCI referrers and their fallback tag, and lookaside stores;
//! every answer bounded by the verification's budget and deadline and checked against its
//! digest.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};

use super::client::{self, FetchError, Repository};
use super::layers::{artifact_layers, bundle_attestation, bundle_layers, notary_layers};
use super::manifest::{Descriptor, Index};
use super::{
    auth, dns, hosts, lookaside, manifest, prefixed_artifact_reference, Artifact, Form, Limits, RegistryError,
    SignatureLayer, SignatureSource, Signatures, NOTARY_SIGNATURE_ARTIFACT_TYPE, SIGSTORE_BUNDLE_MEDIA_TYPE,
};
use crate::body::{self, Budget};
use crate::reference::Reference;

/// How the node reaches registries: plain-HTTP hosts, mirrors, credentials.
#[derive(Clone, Debug, Default)]
pub struct Access {
    /// `host:port` registries spoken to over plain HTTP (tests, local mirrors).
    pub insecure: Vec<String>,
    pub mirrors: hosts::Mirrors,
    /// The node's own credentials (docker config files).
    pub credentials: auth::Credentials,
    /// Pull Secrets named by cluster policies, kept current by the cluster watcher.
    pub cluster_credentials: Arc<std::sync::RwLock<auth::Credentials>>,
    /// Lookaside stores for GPG simple-signing signatures (registries.d).
    pub lookaside: lookaside::Lookaside,
}

/// How far a fetch got across the hosts, for the message should its deadline pass.
#[derive(Default)]
pub(super) struct Progress {
    asking: String,
    failed: Vec<String>,
}

/// What the hosts asked so far said, for a fetch that asks them in containerd's order
/// until one answers.
#[derive(Default)]
pub(super) struct Asked {
    errors: Vec<String>,
    absent: Vec<String>,
}

impl Asked {
    /// Note a host's answer that was not the one wanted: nothing there, or a request that
    /// failed (the next host is asked). Any other error is the answer, and ends the fetch.
    pub(super) fn note<T>(
        &mut self,
        host: &str,
        outcome: Result<Option<T>, RegistryError>,
        progress: &std::sync::Mutex<Progress>,
    ) -> Result<(), RegistryError> {
        match outcome {
            Ok(_) => self.absent.push(host.to_string()),
            Err(RegistryError::Request { message, .. }) => {
                progress.lock().unwrap_or_else(|e| e.into_inner()).failed.push(message.clone());
                self.errors.push(message)
            }
            Err(other) => return Err(other.via(host)),
        }
        Ok(())
    }

    /// Every host asked: `Ok` when each said there is nothing, else why they could not say.
    pub(super) fn finish(mut self, location: &str) -> Result<(), RegistryError> {
        if self.errors.is_empty() {
            return Ok(());
        }
        if !self.absent.is_empty() {
            self.errors.push(format!("not found at {}", self.absent.join(", ")));
        }
        Err(RegistryError::Request { location: location.to_string(), message: self.errors.join("; ") })
    }
}

/// What a host's referrers hold for one digest: bundle layers, `None` for no list at all.
type ReferredLayers = Result<Option<Vec<SignatureLayer>>, RegistryError>;
/// Host (with the registry it stands in for), repository and digest of a referrers fetch.
type ReferrersKey = (String, String, String);
/// Each with the number of fetches holding it.
type ReferrersInFlight =
    std::sync::Mutex<std::collections::HashMap<ReferrersKey, (usize, Arc<tokio::sync::OnceCell<ReferredLayers>>)>>;

/// One fetch's hold on a shared referrers answer; the last to let go removes it, also when
/// its fetch is cancelled (the deadline), so entries never outlive their fetches.
struct InFlight<'a> {
    map: &'a ReferrersInFlight,
    key: ReferrersKey,
}

impl<'a> InFlight<'a> {
    fn join(map: &'a ReferrersInFlight, key: ReferrersKey) -> (Self, Arc<tokio::sync::OnceCell<ReferredLayers>>) {
        let mut held = map.lock().unwrap_or_else(|e| e.into_inner());
        let entry = held.entry(key.clone()).or_default();
        entry.0 += 1;
        let cell = Arc::clone(&entry.1);
        (Self { map, key }, cell)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut held = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = held.get_mut(&self.key) {
            entry.0 -= 1;
            if entry.0 == 0 {
                held.remove(&self.key);
            }
        }
    }
}

/// Signature fetches from registries, their mirrors and lookaside stores. One per process:
/// its [`client::Client`] keeps the connection pools and the token cache across verifications.
pub struct OciSignatureSource {
    pub(super) client: client::Client,
    /// Referrers fetches under way, shared by the fetches that want them (see
    /// [`Self::shared_referrers`]).
    referrers_in_flight: ReferrersInFlight,
    pub(super) mirrors: hosts::Mirrors,
    lookaside: lookaside::Lookaside,
    pub(super) limits: Limits,
    timeout: Duration,
    pub(super) pool: body::Pool,
}

const SIGNATURE_ACCEPT: &str =
    "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

impl OciSignatureSource {
    pub fn new(access: Access, limits: Limits, timeout: Duration) -> Self {
        Self::with_lookup(access, limits, timeout, Arc::new(dns::System))
    }

    /// With names resolved by `lookup` (the system's resolver in [`Self::new`]).
    pub fn with_lookup(access: Access, limits: Limits, timeout: Duration, lookup: Arc<dyn dns::Lookup>) -> Self {
        let client = client::Client::new(
            &access.mirrors,
            access.insecure,
            access.credentials,
            access.cluster_credentials,
            timeout,
            limits.max_token_bytes,
            lookup,
        );
        let pool = body::Pool::new(limits.max_process_bytes);
        Self {
            client,
            referrers_in_flight: Default::default(),
            mirrors: access.mirrors,
            lookaside: access.lookaside,
            limits,
            timeout,
            pool,
        }
    }

    /// Try each endpoint containerd would pull from, in its order. The first that answers
    /// wins; "not found" counts only if every endpoint says so, so an unreachable mirror
    /// never turns into "unsigned".
    async fn fetch_via_hosts(
        &self,
        sig_ref: &Reference,
        digest: &str,
        location: &str,
        what: Artifact,
        budget: &Budget,
        progress: &std::sync::Mutex<Progress>,
    ) -> Result<Signatures, RegistryError> {
        let registry = sig_ref.registry();
        let tag = sig_ref.tag().unwrap_or_default();
        let mut asked = Asked::default();
        for endpoint in self.mirrors.endpoints(registry) {
            let repo = self.repository(&endpoint, sig_ref.repository(), registry, progress);
            match self.fetch_endpoint(&repo, tag, digest, location, what, budget).await {
                Ok(Some(found)) => return Ok(found),
                outcome => asked.note(&endpoint.host, outcome, progress)?,
            }
        }
        asked.finish(location)?;
        Ok(Signatures { location: location.to_string(), layers: Vec::new() })
    }

    /// One of containerd's endpoints for `registry` as the repository `name` there; the
    /// endpoint is the one now being asked.
    pub(super) fn repository<'a>(
        &self,
        endpoint: &'a hosts::Endpoint,
        name: &'a str,
        registry: &'a str,
        progress: &std::sync::Mutex<Progress>,
    ) -> Repository<'a> {
        endpoint.host.clone_into(&mut progress.lock().unwrap_or_else(|e| e.into_inner()).asking);
        Repository {
            host: &endpoint.host,
            plain_http: endpoint.plain_http || self.client.is_plain_http(&endpoint.host),
            tls: &endpoint.tls,
            name,
            ns: (endpoint.host != registry).then_some(registry),
        }
    }

    /// `fetch` within the source's deadline; past it, the error names the host still being
    /// asked and why the ones before it failed (a slow mirror uses up the deadline before the
    /// registry is reached).
    pub(super) async fn within_deadline<T>(
        &self,
        location: &str,
        progress: &std::sync::Mutex<Progress>,
        fetch: impl std::future::Future<Output = Result<T, RegistryError>>,
    ) -> Result<T, RegistryError> {
        match tokio::time::timeout(self.timeout, fetch).await {
            Ok(r) => r,
            Err(_) => {
                let p = progress.lock().unwrap_or_else(|e| e.into_inner());
                let mut location = location.to_string();
                if !p.asking.is_empty() {
                    location.push_str(&format!(" (asking {}", p.asking));
                    for f in &p.failed {
                        location.push_str(&format!("; {f}"));
                    }
                    location.push(')');
                }
                Err(RegistryError::Timeout { location, timeout: self.timeout })
            }
        }
    }

    /// Tag-schema artifacts and OCI 1.1 referrer bundles from one host. cosign 2 writes the
    /// first, cosign 3 the second by default, and either may carry the one signature that
    /// satisfies the policy; so the tag, the referrers API and the referrers fallback tag are
    /// asked in the same round rather than the fallback after the API's 404.
    async fn fetch_endpoint(
        &self,
        repo: &Repository<'_>,
        tag: &str,
        digest: &str,
        location: &str,
        what: Artifact,
        budget: &Budget,
    ) -> Result<Option<Signatures>, RegistryError> {
        let tag_path = format!("manifests/{tag}");
        // `location` is the `.sig`/`.att` tag; the referrers belong to neither but to the
        // digest, whose fallback tag is the same name without the suffix. Notary signatures
        // have no tag of their own: their location is that fallback tag.
        let referrers_location = match what {
            Artifact::Notary => location,
            _ => location.rsplit_once('.').map_or(location, |(l, _)| l),
        };
        let (tagged, referred) = tokio::join!(
            async {
                let max = self.limits.max_manifest_bytes;
                if what == Artifact::Notary {
                    return Ok(None);
                }
                match self.client.get(repo, &tag_path, SIGNATURE_ACCEPT, max, budget).await {
                    Ok(Some(raw)) => self.tagged_layers(repo, &raw, location, what, budget).await.map(Some),
                    Ok(None) => Ok(None),
                    Err(e) => Err(RegistryError::fetch(location, e)),
                }
            },
            self.shared_referrers(repo, digest, referrers_location, budget),
        );
        // The shared referrers hold every kind: keep this fetch's own (notation envelopes for
        // Notary, sigstore bundles otherwise). A registry without the referrers API, and no
        // fallback tag: nothing there.
        let wanted = |l: &SignatureLayer| (l.form == Form::Notary) == (what == Artifact::Notary);
        let referred = referred.map(|r| {
            r.map(|layers| layers.into_iter().filter(wanted).collect::<Vec<_>>()).filter(|layers| !layers.is_empty())
        });
        match (tagged, referred) {
            // A registry whose referrers support is broken still serves cosign 2
            // signatures; missing evidence can only lead to a denial.
            (Ok(Some(found)), Err(_)) if !found.is_empty() => {
                Ok(Some(Signatures { location: location.to_string(), layers: found }))
            }
            (Err(e), _) | (_, Err(e)) => Err(e),
            (Ok(None), Ok(None)) => Ok(None),
            (Ok(tagged), Ok(referred)) => {
                let mut layers = tagged.unwrap_or_default();
                layers.extend(referred.unwrap_or_default());
                Ok(Some(Signatures { location: location.to_string(), layers }))
            }
        }
    }

    /// [`Self::referrers`], once for all the fetches in flight that want it: signatures and
    /// attestations of one verification both read the bundles attached to the digest, and
    /// are fetched at the same time. Nothing is kept once the last of them has it.
    pub(super) async fn shared_referrers(
        &self,
        repo: &Repository<'_>,
        digest: &str,
        location: &str,
        budget: &Budget,
    ) -> ReferredLayers {
        // A mirror serves several registries (`?ns=`): the registry is part of the key.
        let host = format!("{}?ns={}", repo.host, repo.ns.unwrap_or_default());
        let key = (host, repo.name.to_string(), digest.to_string());
        let (_held, cell) = InFlight::join(&self.referrers_in_flight, key);
        let mut fetched_here = false;
        let answer = cell
            .get_or_init(|| {
                fetched_here = true;
                self.referrers(repo, digest, location, budget)
            })
            .await
            .clone();
        // A copy of another fetch's answer is memory this verification holds too: it counts
        // against its budget and the process pool as if it had read it.
        if let (false, Ok(Some(layers))) = (fetched_here, &answer) {
            let bytes: usize = layers.iter().map(SignatureLayer::held_bytes).sum();
            if !budget.charge(bytes).await {
                return Err(RegistryError::Refused {
                    location: location.to_string(),
                    message: format!(
                        "the referrers shared with another fetch would take the verification past its {} byte budget",
                        budget.total()
                    ),
                });
            }
        }
        answer
    }

    /// The bundles attached to `digest` as OCI 1.1 referrers on one host (see
    /// [`Self::referrers_index`]).
    pub(super) async fn referrers(
        &self,
        repo: &Repository<'_>,
        digest: &str,
        location: &str,
        budget: &Budget,
    ) -> ReferredLayers {
        match self.referrers_index(repo, digest, location, budget).await? {
            Some(raw) => self.referred_layers(repo, &raw, location, budget).await.map(Some),
            None => Ok(None),
        }
    }

    /// The list of what is attached to `digest` on one host: the referrers API's list when it
    /// has one; its 404 says the registry keeps referrers under the fallback tag instead (OCI
    /// distribution 1.1). Both are asked at once. `None`: neither is there.
    pub(super) async fn referrers_index(
        &self,
        repo: &Repository<'_>,
        digest: &str,
        location: &str,
        budget: &Budget,
    ) -> Result<Option<Bytes>, RegistryError> {
        let max = self.limits.max_manifest_bytes;
        let paths = [format!("referrers/{digest}"), format!("manifests/{}", digest.replace(':', "-"))];
        let (api, fallback) = tokio::join!(
            self.client.get(repo, &paths[0], manifest::OCI_INDEX, max, budget),
            self.client.get(repo, &paths[1], manifest::OCI_INDEX, max, budget),
        );
        match api {
            Ok(Some(list)) => Ok(Some(list)),
            Ok(None) => fallback.map_err(|e| RegistryError::fetch(location, e)),
            Err(e) => Err(RegistryError::fetch(location, e)),
        }
    }

    /// The layers of a `.sig`/`.att` manifest with their payloads, fetched concurrently.
    async fn tagged_layers(
        &self,
        repo: &Repository<'_>,
        raw: &[u8],
        location: &str,
        what: Artifact,
        budget: &Budget,
    ) -> Result<Vec<SignatureLayer>, RegistryError> {
        let layers = artifact_layers(raw, &self.limits, location, what)?;
        futures::stream::iter(layers)
            .map(|(desc, mut layer)| async move {
                layer.payload = self.fetch_blob(repo, &desc, location, budget).await?.to_vec();
                Ok::<_, RegistryError>(layer)
            })
            .buffered(self.limits.max_concurrent.max(1))
            .try_collect()
            .await
    }

    /// Sigstore bundles attached as OCI 1.1 referrers, listed in `raw` (an index): each
    /// entry's manifest, then its bundle blob, all entries at once (bounded).
    async fn referred_layers(
        &self,
        repo: &Repository<'_>,
        raw: &[u8],
        location: &str,
        budget: &Budget,
    ) -> Result<Vec<SignatureLayer>, RegistryError> {
        let index: Index = serde_json::from_slice(raw)
            .map_err(|e| RegistryError::Malformed { location: location.to_string(), message: e.to_string() })?;
        // Other artifacts (SBOMs, scan reports) are never downloaded.
        let entries: Vec<Descriptor> = index
            .manifests
            .into_iter()
            // cosign 3's entries under the fallback tag of a registry without the referrers
            // API (distribution 2.8) carry the empty artifact type: their manifest decides.
            .filter(|d| {
                d.artifact_type.as_deref().is_none_or(|t| {
                    t.starts_with(SIGSTORE_BUNDLE_MEDIA_TYPE)
                        || t == manifest::OCI_EMPTY
                        || t == NOTARY_SIGNATURE_ARTIFACT_TYPE
                })
            })
            .collect();
        if entries.len() > self.limits.max_signatures {
            return Err(RegistryError::TooManySignatures {
                location: location.to_string(),
                count: entries.len(),
                limit: self.limits.max_signatures,
            });
        }
        let per_entry: Vec<Vec<SignatureLayer>> = futures::stream::iter(entries)
            .map(|entry| self.referrer_layers(repo, entry, location, budget))
            .buffered(self.limits.max_concurrent.max(1))
            .try_collect()
            .await?;
        Ok(per_entry.into_iter().flatten().collect())
    }

    /// One referrer listed in an index: its manifest (checked against the entry's digest),
    /// then the sigstore bundle or notation envelope it carries.
    pub(super) async fn referrer_layers(
        &self,
        repo: &Repository<'_>,
        entry: Descriptor,
        location: &str,
        budget: &Budget,
    ) -> Result<Vec<SignatureLayer>, RegistryError> {
        if !entry.has_valid_digest() {
            return Err(malformed(location, &format!("referrer digest {:?} is not sha256", entry.digest)));
        }
        let raw = self
            .client
            .get(
                repo,
                &format!("manifests/{}", entry.digest),
                manifest::OCI_MANIFEST,
                self.limits.max_manifest_bytes,
                budget,
            )
            .await
            .map_err(|e| RegistryError::fetch(location, e))?
            .ok_or_else(|| missing(location, repo, &entry.digest))?;
        if sha256(&raw) != entry.digest {
            return Err(RegistryError::PayloadDigestMismatch {
                location: location.to_string(),
                digest: entry.digest.clone(),
            });
        }
        let mut layers = Vec::new();
        for desc in bundle_layers(&raw, &self.limits, location)? {
            let payload = self.fetch_blob(repo, &desc, location, budget).await?;
            layers.extend(bundle_attestation(&payload));
        }
        for desc in notary_layers(&raw, &self.limits, location)? {
            let payload = self.fetch_blob(repo, &desc, location, budget).await?;
            layers.push(SignatureLayer { payload: payload.to_vec(), form: Form::Notary, ..Default::default() });
        }
        Ok(layers)
    }

    /// A blob by its descriptor, no larger than the descriptor says (and the payload limit),
    /// checked against its digest. The descriptor's `urls` are never followed.
    pub(super) async fn fetch_blob(
        &self,
        repo: &Repository<'_>,
        desc: &Descriptor,
        location: &str,
        budget: &Budget,
    ) -> Result<Bytes, RegistryError> {
        let limit = self.limits.max_payload_bytes;
        if desc.size < 0 || desc.size as usize > limit {
            return Err(RegistryError::PayloadTooLarge {
                location: location.to_string(),
                digest: desc.digest.clone(),
                limit,
            });
        }
        if !desc.has_valid_digest() {
            return Err(malformed(location, &format!("layer digest {:?} is not sha256", desc.digest)));
        }
        let payload = self
            .client
            .get(repo, &format!("blobs/{}", desc.digest), "*/*", desc.size as usize, budget)
            .await
            .map_err(|e| match e {
                FetchError::Body(body::BodyError::TooLarge { .. }) => RegistryError::PayloadTooLarge {
                    location: location.to_string(),
                    digest: desc.digest.clone(),
                    limit,
                },
                e => RegistryError::fetch(location, e),
            })?
            .ok_or_else(|| missing(location, repo, &desc.digest))?;
        if sha256(&payload) != desc.digest {
            return Err(RegistryError::PayloadDigestMismatch {
                location: location.to_string(),
                digest: desc.digest.clone(),
            });
        }
        Ok(payload)
    }

    /// GPG signatures `signature-1`, `-2`, ... from the image's lookaside store, until the
    /// first that does not exist.
    async fn fetch_lookaside(
        &self,
        image: &Reference,
        digest: &str,
        budget: &Budget,
    ) -> Result<Signatures, RegistryError> {
        let repository = format!("{}/{}", image.registry(), image.repository());
        // The digest becomes part of a path or URL: only its one well-formed shape.
        if !manifest::is_sha256(digest) {
            return Err(RegistryError::BadReference(format!("{repository}@{digest}")));
        }
        let Some(base) = self.lookaside.base_for(&repository) else {
            return Err(RegistryError::Request {
                location: repository,
                message: "no lookaside store for GPG signatures is configured for it (registries.d)".into(),
            });
        };
        let location = lookaside::signature_url(base, image.repository(), digest, 1).replace("/signature-1", "");
        let mut layers = Vec::new();
        for n in 1.. {
            if n > self.limits.max_signatures {
                return Err(RegistryError::TooManySignatures { location, count: n, limit: self.limits.max_signatures });
            }
            let url = lookaside::signature_url(base, image.repository(), digest, n);
            match self.read_url(&url, budget).await? {
                Some(payload) => layers.push(SignatureLayer { payload, ..Default::default() }),
                None => break,
            }
        }
        Ok(Signatures { location, layers })
    }

    /// `Ok(None)` when the URL names nothing (file absent, HTTP 404); bounded in size.
    async fn read_url(&self, url: &str, budget: &Budget) -> Result<Option<Vec<u8>>, RegistryError> {
        let limit = self.limits.max_payload_bytes;
        if let Some(path) = url.strip_prefix("file://") {
            return match lookaside::read_file(std::path::Path::new(path), limit, self.timeout).await {
                Ok(found) => Ok(found),
                Err(e @ lookaside::ReadError::TooLarge { .. }) => {
                    Err(RegistryError::Refused { location: url.to_string(), message: e.to_string() })
                }
                Err(e) => Err(RegistryError::Request { location: url.to_string(), message: e.to_string() }),
            };
        }
        match self.client.get_url(url, limit, budget).await {
            Ok(found) => Ok(found.map(|b| b.to_vec())),
            Err(e) => Err(RegistryError::fetch(url, e)),
        }
    }
}

pub(super) fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

pub(super) fn malformed(location: &str, message: &str) -> RegistryError {
    RegistryError::Malformed { location: location.to_string(), message: message.to_string() }
}

pub(super) fn missing(location: &str, repo: &Repository<'_>, digest: &str) -> RegistryError {
    RegistryError::Request {
        location: location.to_string(),
        message: format!("{} lists {digest} in {} but answers 404 for it", repo.host, repo.name),
    }
}

#[async_trait]
impl SignatureSource for OciSignatureSource {
    async fn referred(
        &self,
        image: &Reference,
        digest: &str,
        artifact_type: &str,
        payloads: Option<super::PayloadFilter<'_>>,
    ) -> Result<super::Referred, RegistryError> {
        self.fetch_referred(image, digest, artifact_type, payloads).await
    }

    async fn attached(
        &self,
        image: &Reference,
        digest: &str,
        what: Artifact,
        tag_prefix: &str,
    ) -> Result<Signatures, RegistryError> {
        let budget = Budget::in_pool(self.limits.max_total_bytes, &self.pool);
        if what == Artifact::SimpleSigning {
            return match tokio::time::timeout(self.timeout, self.fetch_lookaside(image, digest, &budget)).await {
                Ok(r) => r,
                Err(_) => Err(RegistryError::Timeout { location: image.whole(), timeout: self.timeout }),
            };
        }
        let sig_ref = prefixed_artifact_reference(image, digest, what, tag_prefix)?;
        let location = sig_ref.whole();
        let progress = std::sync::Mutex::new(Progress::default());
        let fetch = self.fetch_via_hosts(&sig_ref, digest, &location, what, &budget, &progress);
        self.within_deadline(&location, &progress, fetch).await
    }
}
