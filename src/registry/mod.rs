//! Fetching cosign signatures from the image's registry (an I/O seam, with a fake for tests).
//!
//! Signatures live in the image's own repository under the tag `sha256-<hex>.sig`: an OCI
//! manifest whose layers are simple-signing payloads, each carrying its base64 signature in
//! the `dev.cosignproject.cosign/signature` annotation. The registry is hostile input here,
//! so every fetch is bounded (manifest size, number of layers, payload size, total time) and
//! every blob is checked against its digest. A registry failure is reported as a failure,
//! never as "no signatures", so it cannot be mistaken for an unsigned image or vice versa.
//!
//! This file holds the evidence vocabulary (artifacts, signature layers, limits, errors) and
//! the [`SignatureSource`] seam.
//!
//! - [`source`]: the OCI fetch behind the seam: hosts in order, tags, referrers, lookaside.
//! - [`referred`]: artifacts attached as referrers (SBOMs, reports) with their notation
//!   signatures.
//! - [`layers`]: manifests read into signature layers (cosign, bundles, notation).
//! - [`client`]: signet's own OCI distribution client (tokens, pooled connections).
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
pub mod layers;
pub mod lookaside;
pub mod manifest;
pub mod redirect;
pub mod referred;
pub mod source;

use std::time::Duration;

use async_trait::async_trait;

use crate::reference::Reference;
use client::FetchError;
pub use layers::{artifact_layers, bundle_attestation, bundle_layers, notary_layers, signature_layers};
pub use manifest::Descriptor;
pub use source::{Access, OciSignatureSource};

pub const SIGNATURE_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const ATTESTATION_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
/// cosign's RFC 3161 timestamp of the signature: `{"SignedRFC3161Timestamp": "<base64 DER>"}`.
pub const TIMESTAMP_ANNOTATION: &str = "dev.sigstore.cosign/rfc3161timestamp";
/// At most this many RFC 3161 timestamps of one bundle are kept (sigstore-go needs one).
pub const MAX_TIMESTAMPS: usize = 4;
/// Sigstore bundles attached as OCI 1.1 referrers (`cosign attest --new-bundle-format`).
pub const SIGSTORE_BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle";
/// The artifact type (and config media type) of notation's signature manifests.
pub const NOTARY_SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.cncf.notary.signature";
/// The media type of a notation signature manifest's JWS layer.
pub const NOTARY_JWS_MEDIA_TYPE: &str = "application/jose+json";
/// The media type of its COSE_Sign1 layer (`notation sign --signature-format cose`).
pub const NOTARY_COSE_MEDIA_TYPE: &str = "application/cose";

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
    /// The payload of an artifact attached as a referrer (an SBOM read by `extractPayload`),
    /// after decompression.
    pub max_artifact_bytes: usize,
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
            // SBOMs of ordinary images are tens to hundreds of KiB; the per-verification
            // total still bounds what several of them hold.
            max_artifact_bytes: 1 << 20,
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
    /// RFC 3161 timestamps the signer obtained for the signature.
    pub timestamps: Timestamps,
}

/// RFC 3161 timestamps of a layer, unverified, and the bytes they cover.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Timestamps {
    /// Each a DER `TimeStampResp`, base64.
    pub tokens: Vec<String>,
    pub over: Stamped,
}

/// What a layer's timestamps were made over, as cosign makes them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Stamped {
    /// The raw signature bytes of a `.sig` layer.
    #[default]
    Signature,
    /// The payload of a legacy `.att` layer (it has no detached signature).
    Payload,
    /// The raw bytes of a sigstore bundle's DSSE signature. A bundle verified against a TSA
    /// must carry a timestamp that verifies (sigstore-go's `WithSignedTimestamps(1)`).
    BundleSignature,
}

impl SignatureLayer {
    /// The bytes it holds in memory.
    pub fn held_bytes(&self) -> usize {
        let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        self.payload.len()
            + self.signature.len()
            + text(&self.certificate)
            + text(&self.chain)
            + text(&self.bundle)
            + self.timestamps.tokens.iter().map(String::len).sum::<usize>()
    }
}

/// What was found at the signature location for one image digest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Signatures {
    /// Where we looked (`registry/repo:sha256-<hex>.sig`), for messages.
    pub location: String,
    /// Empty when the registry says the signature tag does not exist.
    pub layers: Vec<SignatureLayer>,
}

/// An artifact attached to an image digest as an OCI 1.1 referrer (an SBOM, a scan report),
/// with the notation signatures attached to it in turn. Nothing in it is trusted yet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReferredArtifact {
    /// The referrer manifest's digest: what a signature over the artifact names.
    pub digest: String,
    /// The type its manifest says it is (`artifactType`, else the config's media type).
    pub artifact_type: Option<String>,
    /// The digest the manifest's `subject` names: the image it says it is attached to.
    pub subject: Option<String>,
    /// Its one layer's bytes (decompressed), when asked for and the filter accepted it; or
    /// why it cannot be read.
    pub payload: Option<Result<Vec<u8>, PayloadError>>,
    /// The notation envelopes among the artifact's own referrers.
    pub signatures: Signatures,
    /// The signed manifest spells a top-level `predicate` or `type` of its own: Kyverno's
    /// notary verifier reads those in place of the payload and the artifact type.
    pub spells_statement: bool,
}

/// Asked of each attached artifact that lists a signature, its manifest read and its
/// signatures fetched, before its payload is downloaded, with its position among the
/// artifacts of its type in the registry's list (0: the first): `true` for one a policy's
/// signer verifies and reads. An artifact signed by no one trusted (which whoever can push may list, as many
/// as the cap allows) then costs no payload download: payloads, the largest part, cannot
/// use up the verification's budget before the one that counts.
pub type PayloadFilter<'a> = &'a (dyn Fn(usize, &ReferredArtifact) -> bool + Send + Sync);

/// Why an attached artifact's payload cannot be read (the artifact may still verify).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("the artifact has {0} layers; only the payload of a one-layer artifact is read")]
    Layers(usize),
    #[error("its payload is {size} bytes, over the {limit} byte limit")]
    TooLarge { size: i64, limit: usize },
    #[error("its payload is larger than its descriptor's {0} bytes")]
    LongerThanSaid(i64),
    #[error("its gzip payload does not decompress: {0}")]
    Gzip(String),
    #[error("its payload is over the {0} byte limit once decompressed")]
    Inflated(usize),
    #[error(
        "its payload would take the fetch past its {0} byte budget (the artifacts listed before it hold the rest)"
    )]
    Budget(usize),
}

/// The artifacts of one type attached to an image digest, in the order the registry lists
/// them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Referred {
    /// Where they were looked up (the referrers fallback tag's name), for messages.
    pub location: String,
    pub artifacts: Vec<ReferredArtifact>,
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
    #[error("the referrers at {location} list {count} artifacts of type {artifact_type}, over the limit of {limit}")]
    TooManyReferrers { location: String, artifact_type: String, count: usize, limit: usize },
    #[error("signature payload {digest} in {location} is over the {limit} byte limit")]
    PayloadTooLarge { location: String, digest: String, limit: usize },
    #[error("signature payload in {location} does not match its digest {digest}")]
    PayloadDigestMismatch { location: String, digest: String },
    #[error("the content the registry serves for {digest} (for {location}) does not match that digest")]
    ContentDigestMismatch { location: String, digest: String },
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
            | TooManyReferrers { location, .. }
            | PayloadTooLarge { location, .. }
            | PayloadDigestMismatch { location, .. }
            | ContentDigestMismatch { location, .. }
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
    /// Signatures or attestations for `digest` in the repository of `image`, their tags
    /// under `tag_prefix` (cosign's `--attachment-tag-prefix`; referrers have no tag).
    async fn attached(
        &self,
        image: &Reference,
        digest: &str,
        what: Artifact,
        tag_prefix: &str,
    ) -> Result<Signatures, RegistryError>;

    /// The artifacts of `artifact_type` attached to `digest` as OCI referrers in the
    /// repository of `image`, with their notation signatures; with `payloads`, the payload
    /// of each that it accepts.
    async fn referred(
        &self,
        image: &Reference,
        digest: &str,
        artifact_type: &str,
        payloads: Option<PayloadFilter<'_>>,
    ) -> Result<Referred, RegistryError>;

    /// [`SignatureSource::attached`] under cosign's own tags.
    async fn signatures(&self, image: &Reference, digest: &str, what: Artifact) -> Result<Signatures, RegistryError> {
        self.attached(image, digest, what, "").await
    }
}

/// The `.sig` tag reference for an image digest.
pub fn signature_reference(image: &Reference, digest: &str) -> Result<Reference, RegistryError> {
    artifact_reference(image, digest, Artifact::Signatures)
}

/// The `.sig` or `.att` tag reference for an image digest.
pub fn artifact_reference(image: &Reference, digest: &str, what: Artifact) -> Result<Reference, RegistryError> {
    prefixed_artifact_reference(image, digest, what, "")
}

/// [`artifact_reference`] with cosign's tag prefix (`<prefix>sha256-<hex>.sig`).
pub fn prefixed_artifact_reference(
    image: &Reference,
    digest: &str,
    what: Artifact,
    tag_prefix: &str,
) -> Result<Reference, RegistryError> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| RegistryError::BadReference(format!("{}@{digest}", image.repository())))?;
    let tag = match what.suffix() {
        "" => format!("sha256-{hex}"),
        suffix => format!("{tag_prefix}sha256-{hex}.{suffix}"),
    };
    Ok(Reference::with_tag(image.registry().to_string(), image.repository().to_string(), tag))
}

#[cfg(test)]
type FakeReferred = std::collections::HashMap<(String, String), Result<Vec<ReferredArtifact>, RegistryError>>;
#[cfg(test)]
type FakeAnswers = std::collections::HashMap<(Artifact, String), Result<Vec<SignatureLayer>, RegistryError>>;

/// In-memory signature source for tests: canned answers per digest, and a call counter.
#[cfg(test)]
#[derive(Default)]
pub struct FakeSignatureSource {
    answers: std::sync::Mutex<FakeAnswers>,
    /// Answers for one repository (`registry/path`); a repository named here answers only
    /// from here.
    by_repository: std::sync::Mutex<std::collections::HashMap<(String, String), FakeAnswers>>,
    /// Referred artifacts by (digest, artifact type).
    referred: std::sync::Mutex<FakeReferred>,
    delay: std::sync::Mutex<Duration>,
    pub calls: std::sync::atomic::AtomicUsize,
}

#[cfg(test)]
impl FakeSignatureSource {
    pub fn new() -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self::default())
    }
    pub fn set(&self, digest: &str, answer: Result<Vec<SignatureLayer>, RegistryError>) {
        self.set_artifact(Artifact::Signatures, digest, answer)
    }
    pub fn set_artifact(&self, what: Artifact, digest: &str, answer: Result<Vec<SignatureLayer>, RegistryError>) {
        self.answers.lock().unwrap().insert((what, digest.to_string()), answer);
    }
    /// An answer that only `repository` (`registry/path`) gives.
    pub fn set_in(
        &self,
        repository: &str,
        what: Artifact,
        digest: &str,
        answer: Result<Vec<SignatureLayer>, RegistryError>,
    ) {
        self.set_in_prefixed(repository, "", what, digest, answer)
    }
    /// An answer that only `repository` gives, under tags with `tag_prefix`.
    pub fn set_in_prefixed(
        &self,
        repository: &str,
        tag_prefix: &str,
        what: Artifact,
        digest: &str,
        answer: Result<Vec<SignatureLayer>, RegistryError>,
    ) {
        let mut by = self.by_repository.lock().unwrap();
        by.entry((repository.to_string(), tag_prefix.to_string()))
            .or_default()
            .insert((what, digest.to_string()), answer);
    }
    /// The artifacts of `artifact_type` attached to `digest`.
    pub fn set_referred(
        &self,
        digest: &str,
        artifact_type: &str,
        answer: Result<Vec<ReferredArtifact>, RegistryError>,
    ) {
        self.referred.lock().unwrap().insert((digest.to_string(), artifact_type.to_string()), answer);
    }
    /// Make every fetch take this long (to exercise deadlines).
    pub fn set_delay(&self, d: Duration) {
        *self.delay.lock().unwrap() = d;
    }
}

#[cfg(test)]
#[async_trait]
impl SignatureSource for FakeSignatureSource {
    async fn attached(
        &self,
        image: &Reference,
        digest: &str,
        what: Artifact,
        tag_prefix: &str,
    ) -> Result<Signatures, RegistryError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let delay = *self.delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let location = prefixed_artifact_reference(image, digest, what, tag_prefix)?.whole();
        let repository = (format!("{}/{}", image.registry(), image.repository()), tag_prefix.to_string());
        let key = (what, digest.to_string());
        let by_repository = self.by_repository.lock().unwrap();
        let answer = match by_repository.get(&repository) {
            // A prefixed tag is no tag of the image's own: nothing there unless set.
            None if !tag_prefix.is_empty() => None,
            Some(answers) => answers.get(&key).cloned(),
            None => self.answers.lock().unwrap().get(&key).cloned(),
        }
        .unwrap_or(Ok(Vec::new()));
        answer.map(|layers| Signatures { location, layers })
    }

    async fn referred(
        &self,
        image: &Reference,
        digest: &str,
        artifact_type: &str,
        payloads: Option<PayloadFilter<'_>>,
    ) -> Result<Referred, RegistryError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let location = prefixed_artifact_reference(image, digest, Artifact::Notary, "")?.whole();
        let key = (digest.to_string(), artifact_type.to_string());
        let answer = self.referred.lock().unwrap().get(&key).cloned().unwrap_or(Ok(Vec::new()));
        answer.map(|mut artifacts| {
            // As the registry source: a payload only where a signature is listed and the
            // filter accepts the artifact without it.
            for (position, a) in artifacts.iter_mut().enumerate() {
                let payload = a.payload.take();
                let wanted = payloads.is_some_and(|f| !a.signatures.layers.is_empty() && f(position, a));
                if wanted {
                    a.payload = payload;
                }
            }
            Referred { location, artifacts }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// notation's manifests, as `notation sign` wrote them (testdata/notation): the envelope
    /// layer is found in either format. Before, a COSE layer was passed over.
    #[test]
    fn notary_envelopes_of_both_formats_are_found() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/notation");
        for (file, media_type) in
            [("good.manifest.json", NOTARY_JWS_MEDIA_TYPE), ("good-cose.manifest.json", NOTARY_COSE_MEDIA_TYPE)]
        {
            let raw = std::fs::read(dir.join(file)).unwrap();
            let found = notary_layers(&raw, &Limits::default(), "loc").unwrap();
            assert_eq!(found.iter().map(|d| d.media_type.as_str()).collect::<Vec<_>>(), [media_type], "{file}");
        }
    }

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
