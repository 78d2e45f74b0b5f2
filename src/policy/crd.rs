//! signet's own `ClusterImagePolicy` (group `signet.dev`, v1alpha1, cluster-scoped).
//!
//! The spec keeps sigstore policy-controller v1beta1's field names so a policy can move
//! between the two by changing `apiVersion`, and adds what only a node needs: `key.path`
//! (a key file on the node), `namespaces` (include/exclude) and `noMatchAction`.
//! The CRD YAML under `packaging/kubernetes/` is generated from these types (`signet crd`)
//! and CI fails when the checked-in copy drifts.
//!
//! Unknown fields are errors: a misspelt field in a security policy must not silently
//! weaken it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::model::{Mode, Namespaces, NoMatchAction};

pub const GROUP: &str = "signet.dev";
pub const VERSION: &str = "v1alpha1";
pub const API_VERSION: &str = "signet.dev/v1alpha1";
pub const KIND: &str = "ClusterImagePolicy";

/// Image-signature policy enforced by signet on every node, before a container starts.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[kube(
    group = "signet.dev",
    version = "v1alpha1",
    kind = "ClusterImagePolicy",
    status = "ClusterImagePolicyStatus",
    shortname = "sigpol",
    category = "signet",
    printcolumn = r#"{"name":"Mode","type":"string","jsonPath":".spec.mode"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterImagePolicySpec {
    /// Images the policy covers: policy-controller globs (`*` within one path segment,
    /// `**` across segments; a glob without tag or digest covers every tag).
    pub images: Vec<ImagePattern>,
    /// Any one of these must be satisfied (OR). Every matching policy must pass (AND).
    #[serde(default)]
    pub authorities: Vec<AuthoritySpec>,
    /// `enforce` (default) denies; `warn` admits and reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// Limit the policy to pods in these namespaces, or exclude some.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<NamespaceScope>,
    /// What the node does with images no policy matches (default: the node's setting,
    /// which defaults to deny). When several policies set it, the strictest wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_match_action: Option<NoMatchAction>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NamespaceScope {
    /// Only pods in these namespaces (empty: all namespaces).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Never pods in these namespaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

impl From<NamespaceScope> for Namespaces {
    fn from(s: NamespaceScope) -> Self {
        Namespaces { include: s.include, exclude: s.exclude, selector: None, any: Vec::new(), all: Vec::new() }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImagePattern {
    pub glob: String,
}

/// One way an image can satisfy the policy: exactly one of key, keyless or static.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthoritySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<KeySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyless: Option<KeylessSpec>,
    #[serde(default, rename = "static", skip_serializing_if = "Option::is_none")]
    pub static_: Option<StaticSpec>,
    /// GPG simple signing (signet only): an OpenPGP key, signatures from the lookaside store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpg: Option<GpgSpec>,
    /// A transparency log (Rekor) the signature must be in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctlog: Option<TlogSpec>,
    /// Where signatures live, when not beside the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source: Vec<SourceSpec>,
    /// Signed attestations that must be present.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attestations: Vec<AttestationSpec>,
}

/// A public key: inline PEM, a file on the node, a Secret, or a KMS URI.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Path of a PEM file on the node (relative paths: relative to the policy file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub path: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_algorithm: Option<String>,
}

/// An ASCII-armored OpenPGP public key: inline, a file on the node, or a Secret.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GpgSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Path of an armored key file on the node (relative paths: relative to the policy file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub path: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
    /// containers/image rule for the signed reference: matchRepoDigestOrExact (default),
    /// matchRepository or matchExact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_identity: Option<String>,
}

/// A Secret holding a PEM public key.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    pub name: String,
    /// Defaults to signet's own namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeylessSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identities: Vec<IdentitySpec>,
    #[serde(default, rename = "ca-cert", skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<KeySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_root_ref: Option<String>,
    #[serde(default, rename = "insecureIgnoreSCT", skip_serializing_if = "Option::is_none")]
    pub insecure_ignore_sct: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdentitySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_reg_exp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_reg_exp: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StaticSpec {
    /// `pass` or `fail`.
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlogSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_root_ref: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signature_pull_secrets: Vec<LocalObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_prefix: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LocalObjectRef {
    pub name: String,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttestationSpec {
    pub name: String,
    pub predicate_type: String,
}

/// What each node made of the policy. Each node writes only its own entry (server-side
/// apply, one field manager per node), so thousands of nodes never contend for one field.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterImagePolicyStatus {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub nodes: BTreeMap<String, NodeStatus>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// True when the node enforces this generation of the policy as written.
    pub accepted: bool,
    /// Why not, or which parts fail closed on this node.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    pub observed_generation: i64,
}

/// The CRD manifest, as checked in under `packaging/kubernetes/crd.yaml`.
pub fn crd_yaml() -> String {
    use kube::CustomResourceExt;
    let crd = ClusterImagePolicy::crd();
    format!(
        "# Generated by `signet crd` from src/policy/crd.rs; CI fails when this copy drifts.\n{}",
        serde_yaml::to_string(&crd).expect("a CRD always serialises")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crd_is_cluster_scoped_with_status_subresource() {
        let yaml = crd_yaml();
        assert!(yaml.contains("scope: Cluster"), "{yaml}");
        assert!(yaml.contains("name: clusterimagepolicies.signet.dev"));
        assert!(yaml.contains("status: {}"), "status subresource: {yaml}");
        assert!(yaml.contains("noMatchAction"));
    }
}

#[cfg(test)]
mod drift {
    /// The checked-in CRD must be what the types generate; regenerate with
    /// `cargo run -q -- crd > packaging/kubernetes/crd.yaml`.
    #[test]
    fn checked_in_crd_matches_the_types() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/kubernetes/crd.yaml");
        let checked_in = std::fs::read_to_string(path).unwrap();
        assert!(
            checked_in == super::crd_yaml(),
            "{path} is stale: run `cargo run -q -- crd > packaging/kubernetes/crd.yaml`"
        );
    }
}
