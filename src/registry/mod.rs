//! Fetching cosign signatures from the image's registry (an I/O seam, with a fake for tests).
//!
//! Signatures live in the image's own repository under the tag `sha256-<hex>.sig`: an OCI
//! manifest whose layers are simple-signing payloads, each carrying its base64 signature in
//! the `dev.cosignproject.cosign/signature` annotation. The registry is hostile input here,
//! so every fetch is bounded (manifest size, number of layers, payload size, total time) and
//! every blob is checked against its digest. A registry failure is reported as a failure,
//! never as "no signatures", so it cannot be mistaken for an unsigned image or vice versa.
//!
//! - [`hosts`]: containerd's mirror configuration, so signatures come the way images do.
//! - [`auth`]: credentials from docker config files, never logged.

pub mod auth;
pub mod challenge;
pub mod client;
pub mod dns;
#[cfg(test)]
mod fake_registry_tests;
#[cfg(test)]
mod hostile_registry_tests;
pub mod hosts;
pub mod lookaside;
pub mod manifest;
pub mod redirect;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};

use crate::body::{self, Budget};
use crate::reference::Reference;
use client::{FetchError, Repository};
pub use manifest::Descriptor;
use manifest::{Index, Manifest};

pub const SIGNATURE_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const ATTESTATION_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
/// Sigstore bundles attached as OCI 1.1 referrers (`cosign attest --new-bundle-format`).
pub const SIGSTORE_BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle";
/// The artifact type (and config media type) of notation's signature manifests.
pub const NOTARY_SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.cncf.notary.signature";
/// The media type of a notation signature manifest's JWS layer.
pub const NOTARY_JWS_MEDIA_TYPE: &str = "application/jose+json";

/// What cosign attaches to an image digest, each under its own tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Artifact {
    /// `sha256-<hex>.sig`: simple-signing payloads, signature in an annotation; and sigstore
    /// bundles attached as OCI 1.1 referrers holding a `https://sigstore.dev/cosign/sign/v1`
    /// statement, which is how cosign 3 signs by default.
    Signatures,
    /// `sha256-<hex>.att`: DSSE envelopes with in-toto statements, signed inside; and
    /// sigstore bundles (v0.3) holding DSSE envelopes, attached as OCI 1.1 referrers.
    Attestations,
    /// GPG simple-signing signatures from the lookaside store (not in the registry).
    SimpleSigning,
    /// Notary Project (notation) signatures: OCI 1.1 referrers of artifact type
    /// `application/vnd.cncf.notary.signature`, each one JWS envelope; no tag of their own
    /// (the location named is the referrers fallback tag `sha256-<hex>`).
    Notary,
}

impl Artifact {
    fn suffix(self) -> &'static str {
        match self {
            Artifact::Signatures => "sig",
            Artifact::Attestations => "att",
            Artifact::SimpleSigning => "lookaside",
            Artifact::Notary => "",
        }
    }
    fn media_type(self) -> &'static str {
        match self {
            Artifact::Signatures => SIGNATURE_MEDIA_TYPE,
            Artifact::Attestations => ATTESTATION_MEDIA_TYPE,
            Artifact::SimpleSigning | Artifact::Notary => "",
        }
    }
}

/// Bounds on what a registry may make us download for one image.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Each manifest, index and referrers list.
    pub max_manifest_bytes: usize,
    pub max_signatures: usize,
    /// Each signature blob, sigstore bundle and lookaside signature.
    pub max_payload_bytes: usize,
    /// A token endpoint's reply.
    pub max_token_bytes: usize,
    /// Everything one verification reads, together: the memory a registry can make it use.
    pub max_total_bytes: usize,
    /// Everything all verifications in flight hold, together; reads past it wait.
    pub max_process_bytes: usize,
    /// Blobs and referrer manifests in flight at once, per verification.
    pub max_concurrent: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // cosign payloads are a few hundred bytes and a busy image has a handful of
        // signatures; these bounds leave two orders of magnitude of headroom. Registry tokens
        // are JWTs of a few KiB. A verification holds at most 4 MiB, and all of them
        // together 32 MiB, well inside the daemon's 128 MiB.
        Self {
            max_manifest_bytes: 1 << 20,
            max_signatures: 64,
            max_payload_bytes: 64 << 10,
            max_token_bytes: 64 << 10,
            max_total_bytes: 4 << 20,
            max_process_bytes: 32 << 20,
            max_concurrent: 8,
        }
    }
}

/// How a layer carries its signature.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Form {
    /// A payload with a detached signature (cosign's `.sig` layers, GPG lookaside blobs).
    #[default]
    Detached,
    /// A DSSE envelope with its signatures inside (`.att` layers, sigstore bundles).
    Envelope,
    /// A notation JWS envelope (`application/jose+json`), certificate chain inside.
    Notary,
}

/// One signature layer as found in the registry, not yet trusted in any way.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignatureLayer {
    /// The layer bytes exactly as signed: a simple-signing payload, or a DSSE envelope.
    pub payload: Vec<u8>,
    pub form: Form,
    /// The base64 signature from the layer annotation (empty for attestations).
    pub signature: String,
    /// Keyless: the signing certificate (PEM) and the chain that helps build its path.
    pub certificate: Option<String>,
    pub chain: Option<String>,
    /// The transparency-log entry with its signed timestamp (JSON).
    pub bundle: Option<String>,
}

impl SignatureLayer {
    /// The bytes it holds in memory.
    pub fn held_bytes(&self) -> usize {
        let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        self.payload.len() + self.signature.len() + text(&self.certificate) + text(&self.chain) + text(&self.bundle)
    }
}

/// What was found at the signature location for one image digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signatures {
    /// Where we looked (`registry/repo:sha256-<hex>.sig`), for messages.
    pub location: String,
    /// Empty when the registry says the signature tag does not exist.
    pub layers: Vec<SignatureLayer>,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RegistryError {
    #[error("registry request for {location} failed: {message}")]
    Request { location: String, message: String },
    #[error("registry request for {location} took longer than {timeout:?}")]
    Timeout { location: String, timeout: Duration },
    #[error("signature manifest {location} is {size} bytes, over the {limit} byte limit")]
    ManifestTooLarge { location: String, size: usize, limit: usize },
    #[error("signature manifest {location} is malformed: {message}")]
    Malformed { location: String, message: String },
    #[error("signature manifest {location} lists {count} signatures, over the limit of {limit}")]
    TooManySignatures { location: String, count: usize, limit: usize },
    #[error("signature payload {digest} in {location} is over the {limit} byte limit")]
    PayloadTooLarge { location: String, digest: String, limit: usize },
    #[error("signature payload in {location} does not match its digest {digest}")]
    PayloadDigestMismatch { location: String, digest: String },
    #[error("image reference {0:?} cannot name a signature location")]
    BadReference(String),
    /// The registry broke a bound (an oversized or endless body): hostile or broken, so the
    /// next mirror is not asked to make up for it.
    #[error("registry answer for {location} refused: {message}")]
    Refused { location: String, message: String },
}

impl RegistryError {
    /// Name the host that answered, when it is a mirror the location does not name.
    fn via(mut self, host: &str) -> Self {
        use RegistryError::*;
        match &mut self {
            ManifestTooLarge { location, .. }
            | Malformed { location, .. }
            | TooManySignatures { location, .. }
            | PayloadTooLarge { location, .. }
            | PayloadDigestMismatch { location, .. }
            | Refused { location, .. }
                if !location.contains(host) =>
            {
                location.push_str(&format!(" (from {host})"));
            }
            _ => {}
        }
        self
    }

    fn fetch(location: &str, e: FetchError) -> Self {
        let (location, message) = (location.to_string(), e.to_string());
        if e.is_refusal() {
            RegistryError::Refused { location, message }
        } else {
            RegistryError::Request { location, message }
        }
    }
}

/// Where signatures come from.
#[async_trait]
pub trait SignatureSource: Send + Sync {
    /// Signatures or attestations for `digest` in the repository of `image`.
    async fn signatures(&self, image: &Reference, digest: &str, what: Artifact) -> Result<Signatures, RegistryError>;
}

/// The `.sig` tag reference for an image digest.
pub fn signature_reference(image: &Reference, digest: &str) -> Result<Reference, RegistryError> {
    artifact_reference(image, digest, Artifact::Signatures)
}

/// The `.sig` or `.att` tag reference for an image digest.
pub fn artifact_reference(image: &Reference, digest: &str, what: Artifact) -> Result<Reference, RegistryError> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| RegistryError::BadReference(format!("{}@{digest}", image.repository())))?;
    let tag = match what.suffix() {
        "" => format!("sha256-{hex}"),
        suffix => format!("sha256-{hex}.{suffix}"),
    };
    Ok(Reference::with_tag(image.registry().to_string(), image.repository().to_string(), tag))
}

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
struct Progress {
    asking: String,
    failed: Vec<String>,
}

/// What a host's referrers hold for one digest: bundle layers, `None` for no list at all.
type Referred = Result<Option<Vec<SignatureLayer>>, RegistryError>;
/// Host (with the registry it stands in for), repository and digest of a referrers fetch.
type ReferrersKey = (String, String, String);
/// Each with the number of fetches holding it.
type ReferrersInFlight =
    std::sync::Mutex<std::collections::HashMap<ReferrersKey, (usize, Arc<tokio::sync::OnceCell<Referred>>)>>;

/// One fetch's hold on a shared referrers answer; the last to let go removes it, also when
/// its fetch is cancelled (the deadline), so entries never outlive their fetches.
struct InFlight<'a> {
    map: &'a ReferrersInFlight,
    key: ReferrersKey,
}

impl<'a> InFlight<'a> {
    fn join(map: &'a ReferrersInFlight, key: ReferrersKey) -> (Self, Arc<tokio::sync::OnceCell<Referred>>) {
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
    client: client::Client,
    /// Referrers fetches under way, shared by the fetches that want them (see
    /// [`Self::shared_referrers`]).
    referrers_in_flight: ReferrersInFlight,
    mirrors: hosts::Mirrors,
    lookaside: lookaside::Lookaside,
    limits: Limits,
    timeout: Duration,
    pool: body::Pool,
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
        let (mut errors, mut absent) = (Vec::new(), Vec::new());
        for endpoint in self.mirrors.endpoints(registry) {
            let repo = Repository {
                host: &endpoint.host,
                plain_http: endpoint.plain_http || self.client.is_plain_http(&endpoint.host),
                tls: &endpoint.tls,
                name: sig_ref.repository(),
                ns: (endpoint.host != registry).then_some(registry),
            };
            endpoint.host.clone_into(&mut progress.lock().unwrap_or_else(|e| e.into_inner()).asking);
            match self.fetch_endpoint(&repo, tag, digest, location, what, budget).await {
                Ok(Some(found)) => return Ok(found),
                Ok(None) => absent.push(endpoint.host),
                Err(RegistryError::Request { message, .. }) => {
                    progress.lock().unwrap_or_else(|e| e.into_inner()).failed.push(message.clone());
                    errors.push(message)
                }
                Err(other) => return Err(other.via(&endpoint.host)),
            }
        }
        if errors.is_empty() {
            return Ok(Signatures { location: location.to_string(), layers: Vec::new() });
        }
        if !absent.is_empty() {
            errors.push(format!("not found at {}", absent.join(", ")));
        }
        Err(RegistryError::Request { location: location.to_string(), message: errors.join("; ") })
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
    async fn shared_referrers(&self, repo: &Repository<'_>, digest: &str, location: &str, budget: &Budget) -> Referred {
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

    /// The bundles attached to `digest` as OCI 1.1 referrers on one host: the referrers API's
    /// list when it has one; its 404 says the registry keeps referrers under the fallback tag
    /// instead (OCI distribution 1.1). Both are asked at once.
    async fn referrers(&self, repo: &Repository<'_>, digest: &str, location: &str, budget: &Budget) -> Referred {
        let max = self.limits.max_manifest_bytes;
        let paths = [format!("referrers/{digest}"), format!("manifests/{}", digest.replace(':', "-"))];
        let (api, fallback) = tokio::join!(
            self.client.get(repo, &paths[0], manifest::OCI_INDEX, max, budget),
            self.client.get(repo, &paths[1], manifest::OCI_INDEX, max, budget),
        );
        let index = match api {
            Ok(Some(list)) => Some(list),
            Ok(None) => fallback.map_err(|e| RegistryError::fetch(location, e))?,
            Err(e) => return Err(RegistryError::fetch(location, e)),
        };
        match index {
            Some(raw) => self.referred_layers(repo, &raw, location, budget).await.map(Some),
            None => Ok(None),
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
            .map(|entry| async move {
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
            })
            .buffered(self.limits.max_concurrent.max(1))
            .try_collect()
            .await?;
        Ok(per_entry.into_iter().flatten().collect())
    }

    /// A blob by its descriptor, no larger than the descriptor says (and the payload limit),
    /// checked against its digest. The descriptor's `urls` are never followed.
    async fn fetch_blob(
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

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn malformed(location: &str, message: &str) -> RegistryError {
    RegistryError::Malformed { location: location.to_string(), message: message.to_string() }
}

fn missing(location: &str, repo: &Repository<'_>, digest: &str) -> RegistryError {
    RegistryError::Request {
        location: location.to_string(),
        message: format!("{} lists {digest} in {} but answers 404 for it", repo.host, repo.name),
    }
}

/// The signature layers of a `.sig` manifest, with their signatures, within the limits.
pub fn signature_layers(
    raw: &[u8],
    limits: &Limits,
    location: &str,
) -> Result<Vec<(Descriptor, SignatureLayer)>, RegistryError> {
    artifact_layers(raw, limits, location, Artifact::Signatures)
}

/// The layers of a `.sig` or `.att` manifest with their annotations (payloads not yet
/// fetched), within the limits. Pure over untrusted bytes (fuzzed): size first, then parse,
/// then the count cap. A signature layer without a signature annotation cannot satisfy
/// anything and is skipped, not downloaded.
pub fn artifact_layers(
    raw: &[u8],
    limits: &Limits,
    location: &str,
    what: Artifact,
) -> Result<Vec<(Descriptor, SignatureLayer)>, RegistryError> {
    let manifest = parse_manifest(raw, limits, location)?;
    let sig_layers: Vec<Descriptor> =
        manifest.layers.into_iter().filter(|l| l.media_type == what.media_type()).collect();
    if sig_layers.len() > limits.max_signatures {
        return Err(RegistryError::TooManySignatures {
            location: location.to_string(),
            count: sig_layers.len(),
            limit: limits.max_signatures,
        });
    }
    Ok(sig_layers
        .into_iter()
        .filter_map(|d| {
            let get = |k: &str| d.annotations.as_ref().and_then(|a| a.get(k)).cloned();
            let signature = match (what, get(SIGNATURE_ANNOTATION)) {
                (Artifact::Signatures, None) => return None,
                (_, sig) => sig.unwrap_or_default(),
            };
            let form = if what == Artifact::Attestations { Form::Envelope } else { Form::Detached };
            let layer = SignatureLayer {
                payload: Vec::new(),
                form,
                signature,
                certificate: get(CERTIFICATE_ANNOTATION).filter(|c| !c.is_empty()),
                chain: get(CHAIN_ANNOTATION).filter(|c| !c.is_empty()),
                bundle: get(BUNDLE_ANNOTATION).filter(|c| !c.is_empty()),
            };
            Some((d, layer))
        })
        .collect())
}

/// An untrusted manifest: size first, then parse.
fn parse_manifest(raw: &[u8], limits: &Limits, location: &str) -> Result<Manifest, RegistryError> {
    if raw.len() > limits.max_manifest_bytes {
        return Err(RegistryError::ManifestTooLarge {
            location: location.to_string(),
            size: raw.len(),
            limit: limits.max_manifest_bytes,
        });
    }
    let manifest: Manifest = serde_json::from_slice(raw)
        .map_err(|e| RegistryError::Malformed { location: location.to_string(), message: e.to_string() })?;
    Ok(manifest)
}

/// The sigstore-bundle layers of a referrer manifest (other artifact types are skipped).
pub fn bundle_layers(raw: &[u8], limits: &Limits, location: &str) -> Result<Vec<Descriptor>, RegistryError> {
    let manifest = parse_manifest(raw, limits, location)?;
    Ok(manifest.layers.into_iter().filter(|l| l.media_type.starts_with(SIGSTORE_BUNDLE_MEDIA_TYPE)).take(1).collect())
}

/// The JWS envelope layer of a notation signature manifest (artifact type, or config media
/// type as notation 1.x writes it, `application/vnd.cncf.notary.signature`); none for a
/// manifest of any other kind. notation writes one envelope per manifest.
pub fn notary_layers(raw: &[u8], limits: &Limits, location: &str) -> Result<Vec<Descriptor>, RegistryError> {
    let manifest = parse_manifest(raw, limits, location)?;
    let notary = manifest.artifact_type.as_deref() == Some(NOTARY_SIGNATURE_ARTIFACT_TYPE)
        || manifest.config.media_type == NOTARY_SIGNATURE_ARTIFACT_TYPE;
    if !notary {
        return Ok(Vec::new());
    }
    Ok(manifest.layers.into_iter().filter(|l| l.media_type == NOTARY_JWS_MEDIA_TYPE).take(1).collect())
}

/// A sigstore bundle's DSSE envelope (and its certificate, for keyless) as a layer: an
/// attestation, or a cosign 3 image signature (a statement of the sign predicate type). Bundles
/// holding a message signature yield none; cosign signs images with statements.
pub fn bundle_attestation(bundle: &[u8]) -> Option<SignatureLayer> {
    let v: serde_json::Value = serde_json::from_slice(bundle).ok()?;
    let envelope = v.get("dsseEnvelope")?;
    let material = v.get("verificationMaterial");
    let pem_of = |c: &serde_json::Value| {
        let der = crate::encoding::b64(c.get("rawBytes")?.as_str()?).ok()?;
        Some(pem::encode(&pem::Pem::new("CERTIFICATE", der)))
    };
    let mut certs: Vec<String> = material
        .and_then(|m| {
            m.get("certificate")
                .map(|c| vec![c.clone()])
                .or_else(|| m.get("x509CertificateChain")?.get("certificates")?.as_array().cloned())
        })
        .unwrap_or_default()
        .iter()
        .filter_map(pem_of)
        .collect();
    let certificate = (!certs.is_empty()).then(|| certs.remove(0));
    let chain = (!certs.is_empty()).then(|| certs.concat());
    Some(SignatureLayer {
        payload: serde_json::to_vec(envelope).ok()?,
        form: Form::Envelope,
        certificate,
        chain,
        bundle: material.and_then(log_entry),
        ..Default::default()
    })
}

/// A bundle's first transparency-log entry in the shape of cosign's bundle annotation, whose
/// signed entry timestamp (SET) covers the same fields, so that one verifier checks both.
/// An entry without an inclusion promise (Rekor v2: only an inclusion proof and a checkpoint,
/// which the node does not verify) is passed on as it is, for the verifier to name.
fn log_entry(material: &serde_json::Value) -> Option<String> {
    let entry = material.get("tlogEntries")?.as_array()?.first()?;
    if entry.get("inclusionPromise").is_none() {
        return Some(entry.to_string());
    }
    let number = |key: &str| {
        let v = entry.get(key)?;
        v.as_i64().or_else(|| v.as_str()?.parse().ok())
    };
    let log_id = crate::encoding::b64(entry.get("logId")?.get("keyId")?.as_str()?).ok()?;
    let legacy = sigstore::cosign::bundle::Bundle {
        signed_entry_timestamp: entry.get("inclusionPromise")?.get("signedEntryTimestamp")?.as_str()?.to_string(),
        payload: sigstore::cosign::bundle::Payload {
            body: entry.get("canonicalizedBody")?.as_str()?.to_string(),
            integrated_time: number("integratedTime")?,
            log_index: number("logIndex")?,
            log_id: hex::encode(log_id),
        },
    };
    serde_json::to_string(&legacy).ok()
}

#[async_trait]
impl SignatureSource for OciSignatureSource {
    async fn signatures(&self, image: &Reference, digest: &str, what: Artifact) -> Result<Signatures, RegistryError> {
        let budget = Budget::in_pool(self.limits.max_total_bytes, &self.pool);
        if what == Artifact::SimpleSigning {
            return match tokio::time::timeout(self.timeout, self.fetch_lookaside(image, digest, &budget)).await {
                Ok(r) => r,
                Err(_) => Err(RegistryError::Timeout { location: image.whole(), timeout: self.timeout }),
            };
        }
        let sig_ref = artifact_reference(image, digest, what)?;
        let location = sig_ref.whole();
        let progress = std::sync::Mutex::new(Progress::default());
        let fetch = self.fetch_via_hosts(&sig_ref, digest, &location, what, &budget, &progress);
        match tokio::time::timeout(self.timeout, fetch).await {
            Ok(r) => r,
            Err(_) => {
                // Name the host still being asked, and why the ones before it failed (a slow
                // mirror uses up the deadline before the registry is reached).
                let p = progress.into_inner().unwrap_or_else(|e| e.into_inner());
                let mut location = location;
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
}

#[cfg(test)]
type FakeAnswers = std::collections::HashMap<(Artifact, String), Result<Vec<SignatureLayer>, RegistryError>>;

/// In-memory signature source for tests: canned answers per digest, and a call counter.
#[cfg(test)]
#[derive(Default)]
pub struct FakeSignatureSource {
    answers: std::sync::Mutex<FakeAnswers>,
    delay: std::sync::Mutex<Duration>,
    pub calls: std::sync::atomic::AtomicUsize,
}

#[cfg(test)]
impl FakeSignatureSource {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
    pub fn set(&self, digest: &str, answer: Result<Vec<SignatureLayer>, RegistryError>) {
        self.set_artifact(Artifact::Signatures, digest, answer)
    }
    pub fn set_artifact(&self, what: Artifact, digest: &str, answer: Result<Vec<SignatureLayer>, RegistryError>) {
        self.answers.lock().unwrap().insert((what, digest.to_string()), answer);
    }
    /// Make every fetch take this long (to exercise deadlines).
    pub fn set_delay(&self, d: Duration) {
        *self.delay.lock().unwrap() = d;
    }
}

#[cfg(test)]
#[async_trait]
impl SignatureSource for FakeSignatureSource {
    async fn signatures(&self, image: &Reference, digest: &str, what: Artifact) -> Result<Signatures, RegistryError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let delay = *self.delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let location = artifact_reference(image, digest, what)?.whole();
        let answer = self.answers.lock().unwrap().get(&(what, digest.to_string())).cloned().unwrap_or(Ok(Vec::new()));
        answer.map(|layers| Signatures { location, layers })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_tag_is_derived_from_the_digest() {
        let image: Reference = "127.0.0.1:5000/probe/signed:v1".parse().unwrap();
        let d = format!("sha256:{}", "ab".repeat(32));
        let r = signature_reference(&image, &d).unwrap();
        assert_eq!(r.whole(), format!("127.0.0.1:5000/probe/signed:sha256-{}.sig", "ab".repeat(32)));
    }

    #[test]
    fn malformed_digests_are_refused() {
        let image: Reference = "reg.io/a:v1".parse().unwrap();
        assert!(signature_reference(&image, "sha256:xyz").is_err());
        assert!(signature_reference(&image, "sha512:00").is_err());
        assert!(signature_reference(&image, &format!("sha256:{}/../x", "a".repeat(58))).is_err());
    }

    fn manifest(layers: usize, annotated: bool) -> Vec<u8> {
        let layer = |i: usize| {
            let ann = if annotated {
                format!(r#","annotations":{{"{SIGNATURE_ANNOTATION}":"sig{i}"}}"#)
            } else {
                String::new()
            };
            format!(r#"{{"mediaType":"{SIGNATURE_MEDIA_TYPE}","digest":"sha256:{:064x}","size":10{ann}}}"#, i)
        };
        let layers: Vec<String> = (0..layers).map(layer).collect();
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{:064x}","size":2}},"layers":[{}]}}"#,
            0,
            layers.join(",")
        )
        .into_bytes()
    }

    #[test]
    fn signature_layers_within_limits() {
        let limits = Limits::default();
        let got = signature_layers(&manifest(3, true), &limits, "loc").unwrap();
        assert_eq!(got.iter().map(|(_, s)| s.signature.as_str()).collect::<Vec<_>>(), ["sig0", "sig1", "sig2"]);
        assert!(signature_layers(&manifest(3, false), &limits, "loc").unwrap().is_empty(), "unannotated skipped");
        let too_many = signature_layers(&manifest(limits.max_signatures + 1, true), &limits, "loc").unwrap_err();
        assert!(matches!(too_many, RegistryError::TooManySignatures { .. }), "{too_many}");
        let small = Limits { max_manifest_bytes: 10, ..Limits::default() };
        assert!(matches!(
            signature_layers(&manifest(1, true), &small, "loc"),
            Err(RegistryError::ManifestTooLarge { .. })
        ));
        assert!(matches!(signature_layers(b"{not json", &limits, "loc"), Err(RegistryError::Malformed { .. })));
    }

    #[test]
    fn a_cosign_v03_bundle_becomes_an_attestation_layer() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cosign/bundle-v03-slsa.json");
        let layer = bundle_attestation(&std::fs::read(path).unwrap()).expect("a DSSE bundle");
        let key = crate::testutil::vector("cosign.pub");
        let key = crate::policy::TrustedKey::from_pem(key.as_bytes()).unwrap().key;
        let digest = "sha256:479b4d26d48a0d046ea38ef2715bfa9bdc1ddff89de923a682848412d511d3a5";
        crate::verify::dsse::verify(&layer.payload, &key, digest, "slsaprovenance").unwrap();
        assert!(layer.certificate.is_none());
        assert!(bundle_attestation(br#"{"messageSignature": {}}"#).is_none(), "not an attestation");
        assert!(bundle_attestation(b"garbage").is_none());
    }

    #[test]
    fn referrer_manifests_yield_only_bundle_layers_within_limits() {
        let m = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": "sha256:44", "size": 2},
            "layers": [{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "digest": "sha256:75", "size": 847},
                       {"mediaType": "application/spdx+json", "digest": "sha256:11", "size": 9}]});
        let raw = m.to_string().into_bytes();
        let got = bundle_layers(&raw, &Limits::default(), "loc").unwrap();
        assert_eq!(got.len(), 1);
        let small = Limits { max_manifest_bytes: 10, ..Limits::default() };
        assert!(matches!(bundle_layers(&raw, &small, "loc"), Err(RegistryError::ManifestTooLarge { .. })));
    }
}
