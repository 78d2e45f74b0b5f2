//! Importers: the policy languages users already have, translated into [`NormalPolicy`].
//!
//! | kind | module | semantics kept |
//! |---|---|---|
//! | `signet.dev/v1alpha1` ClusterImagePolicy | [`signet`] | policy-controller's, plus node fields |
//! | `policy.sigstore.dev/v1alpha1,v1beta1` ClusterImagePolicy | [`sigstore`] | AND across policies, OR across authorities, warn mode |
//! | `signing.apps.tanzu.vmware.com/v1beta1` ClusterImagePolicy | [`tanzu`] | `*` crosses `/`, keys by name, excluded namespaces |
//! | `portieris.cloud.ibm.com/v1` ClusterImagePolicy, ImagePolicy | [`portieris`] | most specific repository wins, namespace policy over cluster policy |
//! | `kyverno.io/v1` ClusterPolicy, Policy (verifyImages rules) | [`kyverno`] | attestor sets with counts, skipped references, audit mode, a Policy only in its namespace |
//! | `policies.kyverno.io/v1,v1beta1,v1alpha1` ImageValidatingPolicy, NamespacedImageValidatingPolicy | [`kyverno_ivp`] | CEL validations over attestors, evaluated on the node where exact |
//!
//! Whatever the node cannot check becomes an authority that never passes, with the reason
//! spelt out: an imported policy may be stricter on the node than in admission, never looser.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::normal::{Check, KeyCheck, KeyRef, NormalAuthority, NormalPolicy};

pub mod kyverno;
pub mod kyverno_ivp;
pub mod portieris;
pub mod signet;
pub mod sigstore;
pub mod tanzu;

/// A policy kind signet reads, as the watcher needs to find it in the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
}

impl Kind {
    pub fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }
}

pub const KINDS: &[Kind] = &[
    Kind {
        group: "signet.dev",
        version: "v1alpha1",
        kind: "ClusterImagePolicy",
        plural: "clusterimagepolicies",
        namespaced: false,
    },
    Kind {
        group: "policy.sigstore.dev",
        version: "v1beta1",
        kind: "ClusterImagePolicy",
        plural: "clusterimagepolicies",
        namespaced: false,
    },
    Kind {
        group: "policy.sigstore.dev",
        version: "v1alpha1",
        kind: "ClusterImagePolicy",
        plural: "clusterimagepolicies",
        namespaced: false,
    },
    Kind {
        group: "signing.apps.tanzu.vmware.com",
        version: "v1beta1",
        kind: "ClusterImagePolicy",
        plural: "clusterimagepolicies",
        namespaced: false,
    },
    Kind {
        group: "portieris.cloud.ibm.com",
        version: "v1",
        kind: "ClusterImagePolicy",
        plural: "clusterimagepolicies",
        namespaced: false,
    },
    Kind {
        group: "portieris.cloud.ibm.com",
        version: "v1",
        kind: "ImagePolicy",
        plural: "imagepolicies",
        namespaced: true,
    },
    Kind { group: "kyverno.io", version: "v1", kind: "ClusterPolicy", plural: "clusterpolicies", namespaced: false },
    Kind { group: "kyverno.io", version: "v1", kind: "Policy", plural: "policies", namespaced: true },
    // Every served version is watched: a cluster may still store objects under an older one.
    Kind {
        group: "policies.kyverno.io",
        version: "v1",
        kind: "ImageValidatingPolicy",
        plural: "imagevalidatingpolicies",
        namespaced: false,
    },
    Kind {
        group: "policies.kyverno.io",
        version: "v1beta1",
        kind: "ImageValidatingPolicy",
        plural: "imagevalidatingpolicies",
        namespaced: false,
    },
    Kind {
        group: "policies.kyverno.io",
        version: "v1alpha1",
        kind: "ImageValidatingPolicy",
        plural: "imagevalidatingpolicies",
        namespaced: false,
    },
    Kind {
        group: "policies.kyverno.io",
        version: "v1",
        kind: "NamespacedImageValidatingPolicy",
        plural: "namespacedimagevalidatingpolicies",
        namespaced: true,
    },
    Kind {
        group: "policies.kyverno.io",
        version: "v1beta1",
        kind: "NamespacedImageValidatingPolicy",
        plural: "namespacedimagevalidatingpolicies",
        namespaced: true,
    },
];

/// What an importer made of one object.
#[derive(Debug, Default)]
pub struct Imported {
    pub policies: Vec<NormalPolicy>,
    /// Things worth knowing that do not change what is enforced (an ignored pull secret,
    /// a Kyverno policy with no verifyImages rule).
    pub notes: Vec<String>,
}

/// The identity of the object being imported, for names and messages.
#[derive(Clone, Debug)]
pub struct Meta {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
}

impl Meta {
    pub fn origin(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {} {ns}/{}", self.api_version, self.kind, self.name),
            None => format!("{} {} {}", self.api_version, self.kind, self.name),
        }
    }
}

/// Read an object's type and name; the message says what is missing.
pub fn meta(obj: &Value) -> Result<Meta, String> {
    let s = |v: &Value| v.as_str().map(str::to_string);
    let api_version = obj.get("apiVersion").and_then(s).ok_or("apiVersion is missing")?;
    let kind = obj.get("kind").and_then(s).ok_or("kind is missing")?;
    let metadata = obj.get("metadata").ok_or("metadata is missing")?;
    let name = metadata.get("name").and_then(s).filter(|n| !n.is_empty()).ok_or("metadata.name is missing")?;
    let namespace = metadata.get("namespace").and_then(s).filter(|n| !n.is_empty());
    Ok(Meta { api_version, kind, name, namespace })
}

/// Is this a kind signet reads?
pub fn is_supported(api_version: &str, kind: &str) -> bool {
    KINDS.iter().any(|k| k.api_version() == api_version && k.kind == kind)
}

/// Translate one object. Errors list every problem found; each names the field.
pub fn import(obj: &Value) -> Result<Imported, Vec<String>> {
    let meta = meta(obj).map_err(|e| vec![e])?;
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    match (meta.api_version.as_str(), meta.kind.as_str()) {
        ("signet.dev/v1alpha1", "ClusterImagePolicy") => signet::import(&meta, spec),
        ("policy.sigstore.dev/v1alpha1" | "policy.sigstore.dev/v1beta1", "ClusterImagePolicy") => {
            sigstore::import(&meta, spec)
        }
        ("signing.apps.tanzu.vmware.com/v1beta1", "ClusterImagePolicy") => tanzu::import(&meta, spec),
        ("portieris.cloud.ibm.com/v1", "ClusterImagePolicy" | "ImagePolicy") => portieris::import(&meta, spec),
        ("kyverno.io/v1", "ClusterPolicy" | "Policy") => kyverno::import(&meta, spec),
        (
            "policies.kyverno.io/v1" | "policies.kyverno.io/v1beta1" | "policies.kyverno.io/v1alpha1",
            "ImageValidatingPolicy",
        )
        | ("policies.kyverno.io/v1" | "policies.kyverno.io/v1beta1", "NamespacedImageValidatingPolicy") => {
            kyverno_ivp::import(&meta, spec)
        }
        (api, kind) => Err(vec![format!(
            "{api} {kind} is not a policy kind signet reads (supported: {})",
            KINDS.iter().map(|k| format!("{} {}", k.api_version(), k.kind)).collect::<Vec<_>>().join(", ")
        )]),
    }
}

/// Deserialize a spec, turning serde's message into one that names the object part.
pub(crate) fn parse_spec<T: DeserializeOwned>(spec: Value) -> Result<T, Vec<String>> {
    if spec.is_null() {
        return Err(vec!["spec is missing".into()]);
    }
    serde_json::from_value(spec).map_err(|e| vec![format!("spec: {e}")])
}

/// One key authority per PEM key; with several, each is named `label#n`.
pub(crate) fn pem_authorities(label: &str, pems: &[String], rekor: Option<String>) -> Vec<NormalAuthority> {
    pems.iter()
        .enumerate()
        .map(|(n, pem)| {
            let name = if pems.len() == 1 { label.to_string() } else { format!("{label}#{n}") };
            NormalAuthority::new(name, Check::Key(KeyCheck::new(KeyRef::Pem(pem.clone()), rekor.clone())))
        })
        .collect()
}

/// Split PEM text holding several public keys into one text per key (Kyverno and Tanzu
/// allow several keys in one field).
pub(crate) fn split_pem_keys(text: &str) -> Result<Vec<String>, String> {
    let blocks = pem::parse_many(text).map_err(|e| format!("not PEM: {e}"))?;
    if blocks.is_empty() {
        return Err("no PEM public key found".into());
    }
    let lf = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    Ok(blocks.iter().map(|b| pem::encode_config(b, lf)).collect())
}

#[cfg(test)]
mod golden;

/// The semantics each importer promises, checked end to end: import, compile, match,
/// evaluate against real signatures.
#[cfg(test)]
mod semantics {
    use std::path::Path;
    use std::sync::Arc;

    use crate::policy::file::parse_documents;
    use crate::policy::normal::{compile, FilesOnly};
    use crate::policy::{NoMatchAction, PolicySet};
    use crate::registry::Signatures;
    use crate::verify::testkit::TestSigner;
    use crate::verify::{evaluate, Evaluation};

    const D: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn set(yaml: &str) -> Arc<PolicySet> {
        let mut policies = Vec::new();
        for doc in parse_documents(Path::new("t.yaml"), yaml).unwrap() {
            for p in super::import(&doc).unwrap().policies {
                policies.push(compile(&p, &FilesOnly(Path::new("/"))).unwrap().policy);
            }
        }
        PolicySet::assemble(policies, NoMatchAction::Deny)
    }

    fn names(set: &PolicySet, image: &str, ns: Option<&str>) -> Vec<String> {
        let (repo, _) = image.rsplit_once(':').unwrap();
        set.matching(image, repo, ns).iter().map(|p| p.name.clone()).collect()
    }

    fn eval(set: &PolicySet, image: &str, signers: &[&TestSigner]) -> Evaluation {
        let (repo, _) = image.rsplit_once(':').unwrap();
        let layers = signers.iter().map(|s| s.sign_digest(repo, D)).collect();
        let sigs = Ok(Signatures { location: "test".into(), layers });
        let trust = crate::verify::trust::TrustRoot::empty();
        let cx = crate::verify::Context { trust: &trust, now: crate::verify::Context::now_secs() };
        let evidence = crate::verify::Evidence { signatures: Some(sigs), ..Default::default() };
        evaluate(&set.matching(image, repo, None), &evidence, D, cx)
    }

    fn indent(pem: &str, n: usize) -> String {
        pem.lines().map(|l| format!("{}{l}\n", " ".repeat(n))).collect()
    }

    /// Regression (#13.4): a ClusterImagePolicy named like a namespace, with a pattern that
    /// starts like an ImagePolicy name, no longer gets the namespaced policy's name.
    #[test]
    fn portieris_names_of_cluster_and_namespaced_policies_never_collide() {
        let yaml = "apiVersion: portieris.cloud.ibm.com/v1\nkind: ClusterImagePolicy\nmetadata: {name: payments}\nspec:\n  repositories:\n  - {name: \"strict/x\", policy: {}}\n---\napiVersion: portieris.cloud.ibm.com/v1\nkind: ImagePolicy\nmetadata: {name: strict, namespace: payments}\nspec:\n  repositories:\n  - {name: \"x\", policy: {simple: {requirements: [{type: reject}]}}}\n";
        let s = set(yaml);
        let all: Vec<&str> = s.policies.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(all, ["portieris:payments[strict/x]", "portieris:payments/strict[x]"]);
    }

    #[test]
    fn tanzu_star_crosses_slash_and_excluded_namespaces_are_skipped() {
        let k = TestSigner::new(1);
        let yaml = format!(
            "apiVersion: signing.apps.tanzu.vmware.com/v1beta1\nkind: ClusterImagePolicy\nmetadata: {{name: image-policy}}\nspec:\n  verification:\n    exclude: {{resources: {{namespaces: [kube-system]}}}}\n    keys:\n    - name: k\n      publicKey: |\n{}    images:\n    - namePattern: reg.io/proj/*\n      keys: [{{name: k}}]\n",
            indent(&k.public_pem(), 8)
        );
        let s = set(&yaml);
        assert_eq!(names(&s, "reg.io/proj/deep/app:1", Some("default")).len(), 1);
        assert!(names(&s, "reg.io/proj/deep/app:1", Some("kube-system")).is_empty());
        assert!(eval(&s, "reg.io/proj/app:1", &[&k]).allowed);
        assert!(!eval(&s, "reg.io/proj/app:1", &[&TestSigner::new(2)]).allowed);
    }

    #[test]
    fn portieris_namespace_policy_beats_cluster_policy_and_specific_beats_broad() {
        let yaml = "apiVersion: portieris.cloud.ibm.com/v1\nkind: ClusterImagePolicy\nmetadata: {name: default}\nspec:\n  repositories:\n  - {name: \"*\", policy: {}}\n  - {name: \"icr.io/team/*\", policy: {simple: {requirements: [{type: reject}]}}}\n---\napiVersion: portieris.cloud.ibm.com/v1\nkind: ImagePolicy\nmetadata: {name: p, namespace: payments}\nspec:\n  repositories:\n  - {name: \"*\", policy: {simple: {requirements: [{type: insecureAcceptAnything}]}}}\n";
        let s = set(yaml);
        assert_eq!(names(&s, "icr.io/team/app:1", Some("default")), ["portieris:default[icr.io/team/*]"]);
        assert_eq!(names(&s, "quay.io/x/app:1", Some("default")), ["portieris:default[*]"]);
        assert_eq!(names(&s, "icr.io/team/app:1", Some("payments")), ["portieris:payments/p[*]"]);
    }

    #[test]
    fn a_kyverno_policy_governs_only_its_namespace() {
        let k = TestSigner::new(1);
        let policy = |kind: &str, ns: &str| {
            format!(
                "apiVersion: kyverno.io/v1\nkind: {kind}\nmetadata: {{name: p{ns}}}\nspec:\n  validationFailureAction: Enforce\n  rules:\n  - name: r\n    verifyImages:\n    - imageReferences: [\"reg.io/*\"]\n      attestors:\n      - entries:\n        - keys:\n            rekor: {{ignoreTlog: true}}\n            publicKeys: |\n{}",
                indent(&k.public_pem(), 14)
            )
        };
        let s = set(&policy("Policy", ", namespace: payments"));
        assert_eq!(names(&s, "reg.io/app:1", Some("payments")), ["kyverno:payments/p/r"]);
        assert!(names(&s, "reg.io/app:1", Some("default")).is_empty());
        // Unknown namespace (a container the runtime could not place): only cluster-wide
        // policies apply; a namespaced one may not stand in for them (#13.3).
        assert!(names(&s, "reg.io/app:1", None).is_empty());
        // A ClusterPolicy of the same name is another policy, in every namespace.
        let both = set(&format!("{}---\n{}", policy("Policy", ", namespace: payments"), policy("ClusterPolicy", "")));
        assert_eq!(names(&both, "reg.io/app:1", Some("payments")).len(), 2);
        assert_eq!(names(&both, "reg.io/app:1", Some("default")), ["kyverno:p/r"]);
    }

    #[test]
    fn kyverno_count_and_skip_references() {
        let (a, b, c) = (TestSigner::new(1), TestSigner::new(2), TestSigner::new(3));
        let keys = format!("{}{}{}", a.public_pem(), b.public_pem(), c.public_pem());
        let yaml = format!(
            "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {{name: p}}\nspec:\n  validationFailureAction: Enforce\n  rules:\n  - name: r\n    verifyImages:\n    - imageReferences: [\"reg.io/*\"]\n      skipImageReferences: [\"reg.io/public/*\"]\n      attestors:\n      - count: 2\n        entries:\n        - keys:\n            rekor: {{ignoreTlog: true}}\n            publicKeys: |\n{}",
            indent(&keys, 14)
        );
        let s = set(&yaml);
        assert!(names(&s, "reg.io/public/x:1", None).is_empty());
        assert!(eval(&s, "reg.io/app:1", &[&a, &c]).allowed);
        let one = eval(&s, "reg.io/app:1", &[&b]);
        assert!(!one.allowed);
        assert!(one.failures[0].contains("2 of 3"), "{one:?}");
    }

    #[test]
    fn kyverno_default_tlog_is_required_not_key_only() {
        let a = TestSigner::new(1);
        let yaml = format!(
            "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {{name: p}}\nspec:\n  validationFailureAction: Enforce\n  rules:\n  - name: r\n    verifyImages:\n    - imageReferences: [\"reg.io/*\"]\n      attestors:\n      - entries:\n        - keys:\n            publicKeys: |\n{}",
            indent(&a.public_pem(), 14)
        );
        let e = eval(&set(&yaml), "reg.io/app:1", &[&a]);
        assert!(!e.allowed);
        assert!(e.failures[0].contains("transparency-log entry is required"), "{e:?}");
    }

    #[test]
    fn sigstore_policies_are_anded_and_authorities_ored() {
        let (a, b) = (TestSigner::new(1), TestSigner::new(2));
        let doc = |name: &str, glob: &str, pems: &[String]| {
            let auths: String = pems.iter().map(|p| format!("  - key:\n      data: |\n{}", indent(p, 8))).collect();
            format!("apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata: {{name: {name}}}\nspec:\n  images: [{{glob: \"{glob}\"}}]\n  authorities:\n{auths}")
        };
        let yaml = format!(
            "{}---\n{}",
            doc("either", "reg.io/**", &[a.public_pem(), b.public_pem()]),
            doc("only-b", "reg.io/team/*", &[b.public_pem()])
        );
        let s = set(&yaml);
        assert!(eval(&s, "reg.io/other/app:1", &[&a]).allowed, "one policy, one of two keys");
        assert!(!eval(&s, "reg.io/team/app:1", &[&a]).allowed, "both policies match; only-b fails");
        assert!(eval(&s, "reg.io/team/app:1", &[&b]).allowed);
    }
}
