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
    /// A top-level `predicate` and `type`, which Kyverno's notary verifier reads as the
    /// statement in place of the payload and the artifact type; only whether they are there
    /// matters.
    #[serde(default)]
    predicate: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "type")]
    type_: Option<serde::de::IgnoredAny>,
}

impl Manifest {
    /// Does it spell a `predicate` or `type` of its own?
    pub fn spells_statement(&self) -> bool {
        self.predicate.is_some() || self.type_.is_some()
    }
}

/// An image index: the referrers API's answer and its fallback tag.
#[derive(Clone, Debug, Deserialize)]
pub struct Index {
    /// Without their annotations: nothing reads them, and a list of a MiB full of small
    /// annotation maps would take ten times that once parsed.
    #[serde(deserialize_with = "entries")]
    pub manifests: Vec<Descriptor>,
}

/// An index entry as read: a descriptor, its annotations skipped unparsed.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    #[serde(default)]
    media_type: String,
    digest: String,
    size: i64,
    #[serde(default)]
    artifact_type: Option<String>,
}

fn entries<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Descriptor>, D::Error> {
    let read: Vec<Entry> = Vec::deserialize(d)?;
    Ok(read
        .into_iter()
        .map(|e| Descriptor {
            media_type: e.media_type,
            digest: e.digest,
            size: e.size,
            annotations: None,
            artifact_type: e.artifact_type,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Second review: index entries' annotations were parsed into maps nothing reads.
    #[test]
    fn index_entries_keep_no_annotations() {
        let raw = r#"{"manifests":[{"mediaType":"m","digest":"sha256:x","size":1,"artifactType":"t",
            "annotations":{"a":"1","b":"2"}}]}"#;
        let index: Index = serde_json::from_str(raw).unwrap();
        assert_eq!(index.manifests[0].annotations, None);
        assert_eq!(index.manifests[0].artifact_type.as_deref(), Some("t"));
        // A manifest's layers keep theirs (cosign's signature is one).
        let m = r#"{"schemaVersion":2,"config":{"digest":"sha256:c","size":1},
            "layers":[{"digest":"sha256:l","size":1,"annotations":{"a":"1"}}]}"#;
        let m: Manifest = serde_json::from_str(m).unwrap();
        assert_eq!(m.layers[0].annotations.as_ref().unwrap()["a"], "1");
    }

    #[test]
    fn a_manifest_spelling_its_own_statement_is_noticed() {
        let spells = |extra: &str| {
            let raw = format!(r#"{{"schemaVersion":2,"config":{{"digest":"sha256:c","size":1}},"layers":[]{extra}}}"#);
            serde_json::from_str::<Manifest>(&raw).unwrap().spells_statement()
        };
        assert!(!spells(r#","artifactType":"sbom/cyclone-dx""#));
        assert!(spells(r#","predicate":{"bomFormat":"CycloneDX"}"#));
        assert!(spells(r#","type":"other""#));
    }
}
