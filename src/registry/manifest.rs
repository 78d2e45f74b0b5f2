//! The few OCI manifest and index fields signature fetches read, as untrusted JSON.
//!
//! Own types rather than oci-spec's: these are all that is read, and a descriptor's `urls`
//! is deliberately absent, so nothing can follow it.

use std::collections::BTreeMap;

use serde::Deserialize;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The empty descriptor media type (OCI 1.1), also used as an artifact type.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// A content descriptor: what a manifest says a layer or an index entry is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: i64,
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    /// Only `sha256:<64 hex>`: the digest becomes part of a request path, and the payload is
    /// checked against it.
    pub fn has_valid_digest(&self) -> bool {
        is_sha256(&self.digest)
    }
}

pub fn is_sha256(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// An image manifest (OCI or Docker schema 2), as signatures and referrers are stored.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    // Required as the spec requires them: JSON without them is not a manifest.
    #[serde(rename = "schemaVersion")]
    _schema_version: u8,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    /// OCI 1.1 artifact manifests name their kind here (else the config media type does).
    #[serde(default)]
    pub artifact_type: Option<String>,
    /// OCI 1.1: the manifest this one is attached to.
    #[serde(default)]
    pub subject: Option<Descriptor>,
}

/// An image index: the referrers API's answer and its fallback tag.
#[derive(Clone, Debug, Deserialize)]
pub struct Index {
    pub manifests: Vec<Descriptor>,
}
