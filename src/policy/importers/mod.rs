//! Importers: the policy languages users already have, translated into [`NormalPolicy`].
//!
//! | kind | module | semantics kept |
//! |---|---|---|
//! | `signet.dev/v1alpha1` ClusterImagePolicy | [`signet`] | policy-controller's, plus node fields |
//! | `policy.sigstore.dev/v1alpha1,v1beta1` ClusterImagePolicy | [`sigstore`] | AND across policies, OR across authorities, warn mode, globs as `glob.Match`, its validation |
//! | `signing.apps.tanzu.vmware.com/v1beta1` ClusterImagePolicy | [`tanzu`] | `*` crosses `/`, keys by name, excluded namespaces |
//! | `portieris.cloud.ibm.com/v1` ClusterImagePolicy, ImagePolicy | [`portieris`] | host-anchored names, best match wins, a namespace's ImagePolicies never fall back to cluster policy, no match denies |
//! | `kyverno.io/v1`, `v2beta1` ClusterPolicy, Policy (verifyImages rules) | [`kyverno`] | patterns on Kyverno's names, attestor sets with counts, skipped references, audit mode, pod kinds only, a Policy only in its namespace |
//! | `policies.kyverno.io/v1,v1beta1,v1alpha1` ImageValidatingPolicy, NamespacedImageValidatingPolicy | [`kyverno_ivp`] | CEL validations over attestors, evaluated on the node where exact |
//!
//! Whatever the node cannot check becomes an authority that never passes, with the reason
//! spelt out: an imported policy may be stricter on the node than in admission, never looser.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::normal::{Check, KeyCheck, KeyRef, NormalAuthority, NormalPolicy};

#[cfg(test)]
mod ivp_referrer_tests;
pub mod kyverno;
pub mod kyverno_ivp;
pub mod portieris;
pub mod signet;
pub mod sigstore;
pub mod tanzu;

/// A policy kind signet reads, as the watcher needs to find it in the API, and the
/// importer that reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
    pub language: Language,
}

/// The policy languages, one importer each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Language {
    Signet,
    Sigstore,
    Tanzu,
    Portieris,
    Kyverno,
    KyvernoIvp,
}

impl Kind {
    pub fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }

    const fn namespaced(self) -> Kind {
        Kind { namespaced: true, ..self }
    }

    fn is(&self, api_version: &str, kind: &str) -> bool {
        self.kind == kind && api_version.split_once('/') == Some((self.group, self.version))
    }
}

/// A cluster-scoped kind; [`Kind::namespaced`] makes it a namespaced one.
const fn cluster(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    language: Language,
) -> Kind {
    Kind { group, version, kind, plural, namespaced: false, language }
}

/// Every kind signet reads: the one table the watcher, `policy check` and [`import`] use.
pub const KINDS: &[Kind] = &[
    cluster("signet.dev", "v1alpha1", "ClusterImagePolicy", "clusterimagepolicies", Language::Signet),
    cluster("policy.sigstore.dev", "v1beta1", "ClusterImagePolicy", "clusterimagepolicies", Language::Sigstore),
    cluster("policy.sigstore.dev", "v1alpha1", "ClusterImagePolicy", "clusterimagepolicies", Language::Sigstore),
    cluster("signing.apps.tanzu.vmware.com", "v1beta1", "ClusterImagePolicy", "clusterimagepolicies", Language::Tanzu),
    cluster("portieris.cloud.ibm.com", "v1", "ClusterImagePolicy", "clusterimagepolicies", Language::Portieris),
    cluster("portieris.cloud.ibm.com", "v1", "ImagePolicy", "imagepolicies", Language::Portieris).namespaced(),
    cluster("kyverno.io", "v1", "ClusterPolicy", "clusterpolicies", Language::Kyverno),
    cluster("kyverno.io", "v1", "Policy", "policies", Language::Kyverno).namespaced(),
    // The same objects as v1 (the watcher takes the first version a group serves); files
    // written for v2beta1 are read as they are.
    cluster("kyverno.io", "v2beta1", "ClusterPolicy", "clusterpolicies", Language::Kyverno),
    cluster("kyverno.io", "v2beta1", "Policy", "policies", Language::Kyverno).namespaced(),
    // Newest first: the watcher takes the first version a group serves (the same objects).
    cluster("policies.kyverno.io", "v1", "ImageValidatingPolicy", "imagevalidatingpolicies", Language::KyvernoIvp),
    cluster("policies.kyverno.io", "v1beta1", "ImageValidatingPolicy", "imagevalidatingpolicies", Language::KyvernoIvp),
    cluster(
        "policies.kyverno.io",
        "v1alpha1",
        "ImageValidatingPolicy",
        "imagevalidatingpolicies",
        Language::KyvernoIvp,
    ),
    cluster(
        "policies.kyverno.io",
        "v1",
        "NamespacedImageValidatingPolicy",
        "namespacedimagevalidatingpolicies",
        Language::KyvernoIvp,
    )
    .namespaced(),
    cluster(
        "policies.kyverno.io",
        "v1beta1",
        "NamespacedImageValidatingPolicy",
        "namespacedimagevalidatingpolicies",
        Language::KyvernoIvp,
    )
    .namespaced(),
];

/// The kind of this object type, if signet reads it.
pub fn kind_of(api_version: &str, kind: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.is(api_version, kind))
}

/// Whether an object of this type is namespaced (and so needs a namespace to mean anything).
pub fn is_namespaced(api_version: &str, kind: &str) -> bool {
    kind_of(api_version, kind).is_some_and(|k| k.namespaced)
}

/// Whether an object is plainly not policy: a built-in Kubernetes kind (a Namespace,
/// ConfigMap or Secret shipped in the same file as the policy). Objects of the policy
/// groups, and of any group signet does not know, are never passed over: a misspelt
/// policy must be an error, not a silently missing rule.
pub fn is_not_policy(api_version: &str, kind: &str) -> bool {
    // A `List` may hold policies; an object without a type is malformed.
    if kind.is_empty() || kind.ends_with("List") || api_version.is_empty() {
        return false;
    }
    let group = match api_version.split_once('/') {
        Some((group, _)) => group,
        None => return true, // the core group: `v1`
    };
    const BUILT_IN: &[&str] = &["apps", "batch", "policy", "autoscaling"];
    BUILT_IN.contains(&group) || group.ends_with(".k8s.io")
}

/// Why a namespaced object without a namespace is refused, and how to give one.
pub const NO_NAMESPACE: &str = "metadata.namespace is missing and this kind is namespaced: give the namespace in \
     the object, with a `# signet.dev/namespace: NAME` line in the file, or with `policy check --namespace NAME`";

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

/// A part of an object that every policy needs and this one lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} is missing")]
pub struct Missing(pub &'static str);

/// Read an object's type and name; the error says what is missing.
pub fn meta(obj: &Value) -> Result<Meta, Missing> {
    let s = |v: &Value| v.as_str().map(str::to_string);
    let api_version = obj.get("apiVersion").and_then(s).ok_or(Missing("apiVersion"))?;
    let kind = obj.get("kind").and_then(s).ok_or(Missing("kind"))?;
    let metadata = obj.get("metadata").ok_or(Missing("metadata"))?;
    let name = metadata.get("name").and_then(s).filter(|n| !n.is_empty()).ok_or(Missing("metadata.name"))?;
    let namespace = metadata.get("namespace").and_then(s).filter(|n| !n.is_empty());
    Ok(Meta { api_version, kind, name, namespace })
}

/// Is this a kind signet reads?
pub fn is_supported(api_version: &str, kind: &str) -> bool {
    kind_of(api_version, kind).is_some()
}

/// Translate one object. Errors list every problem found; each names the field.
pub fn import(obj: &Value) -> Result<Imported, Vec<String>> {
    let meta = meta(obj).map_err(|e| vec![e.to_string()])?;
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    let Some(kind) = kind_of(&meta.api_version, &meta.kind) else {
        return Err(vec![format!(
            "{} {} is not a policy kind signet reads (supported: {})",
            meta.api_version,
            meta.kind,
            KINDS.iter().map(|k| format!("{} {}", k.api_version(), k.kind)).collect::<Vec<_>>().join(", ")
        )]);
    };
    match kind.language {
        Language::Signet => signet::import(&meta, spec),
        Language::Sigstore => sigstore::import(&meta, spec),
        Language::Tanzu => tanzu::import(&meta, spec),
        Language::Portieris => portieris::import(&meta, spec),
        Language::Kyverno => kyverno::import(&meta, spec),
        Language::KyvernoIvp => kyverno_ivp::import(&meta, spec),
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

/// PEM text that holds no public key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemKeysError {
    #[error("not PEM: {0}")]
    NotPem(String),
    #[error("no PEM public key found")]
    Empty,
}

/// Split PEM text holding several public keys into one text per key (Kyverno and Tanzu
/// allow several keys in one field).
pub(crate) fn split_pem_keys(text: &str) -> Result<Vec<String>, PemKeysError> {
    let blocks = pem::parse_many(text).map_err(|e| PemKeysError::NotPem(e.to_string()))?;
    if blocks.is_empty() {
        return Err(PemKeysError::Empty);
    }
    let lf = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    Ok(blocks.iter().map(|b| pem::encode_config(b, lf)).collect())
}

/// A certificate as Kyverno reads one (`certificates.cert`, IVP `certificate.cert`): PEM,
/// or PEM that was base64-encoded once more.
pub(crate) fn certificate_text(text: &str) -> String {
    use base64::Engine;
    match base64::engine::general_purpose::STANDARD.decode(text.trim()) {
        Ok(bytes) => String::from_utf8(bytes).unwrap_or_else(|_| text.to_string()),
        Err(_) => text.to_string(),
    }
}

#[cfg(test)]
mod golden;

/// The semantics each importer promises, checked end to end: import, compile, match,
/// evaluate against real signatures.
#[cfg(test)]
mod semantics {
    use std::path::Path;
    use std::sync::Arc;

    use crate::evaluate::{evaluate, Evaluation};
    use crate::policy::compile::{compile, FilesOnly};
    use crate::policy::file::parse_documents;
    use crate::policy::{NoMatchAction, PolicySet};
    use crate::registry::Signatures;
    use crate::testutil::TestSigner;

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
        let evidence = crate::evaluate::Evidence { signatures: Some(sigs), ..Default::default() };
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
        assert_eq!(
            all,
            [
                "portieris:payments[strict/x]",
                "portieris:payments",
                "portieris:payments/strict[x]",
                "portieris:payments/strict"
            ]
        );
    }

    /// Regression (#15): in a namespace with an ImagePolicy, an image none of its
    /// repositories match is denied; it used to fall back to the ClusterImagePolicy.
    #[test]
    fn portieris_denies_what_a_namespaces_image_policies_do_not_match() {
        let yaml = "apiVersion: portieris.cloud.ibm.com/v1\nkind: ClusterImagePolicy\nmetadata: {name: default}\nspec:\n  repositories:\n  - {name: \"*\", policy: {}}\n---\napiVersion: portieris.cloud.ibm.com/v1\nkind: ImagePolicy\nmetadata: {name: p, namespace: payments}\nspec:\n  repositories:\n  - {name: \"icr.io/payments/*\", policy: {}}\n";
        let s = set(yaml);
        assert_eq!(names(&s, "quay.io/x/app:1", Some("payments")), ["portieris:payments/p"]);
        assert!(!eval_in(&s, "quay.io/x/app:1", Some("payments")), "no repository of payments matches: denied");
        assert!(eval_in(&s, "icr.io/payments/app:1", Some("payments")));
        assert!(eval_in(&s, "quay.io/x/app:1", Some("default")), "the cluster policy where there is no ImagePolicy");
        let only_cluster = set("apiVersion: portieris.cloud.ibm.com/v1\nkind: ClusterImagePolicy\nmetadata: {name: default}\nspec:\n  repositories:\n  - {name: \"icr.io/*\", policy: {}}\n");
        assert!(!eval_in(&only_cluster, "quay.io/x/app:1", None), "no repository matches: denied");
    }

    /// Regression (#15): a pod may name a Docker Hub image several ways and Portieris
    /// applies the best match for the name written; the node applies every spelling's best
    /// match, so an allow-all for one spelling does not admit what another spelling rejects.
    #[test]
    fn portieris_applies_the_best_match_of_every_spelling() {
        let yaml = "apiVersion: portieris.cloud.ibm.com/v1\nkind: ClusterImagePolicy\nmetadata: {name: default}\nspec:\n  repositories:\n  - {name: \"*\", policy: {simple: {requirements: [{type: reject}]}}}\n  - {name: \"docker.io/library/nginx\", policy: {}}\n";
        let s = set(yaml);
        assert_eq!(names(&s, "docker.io/library/nginx:latest", None).len(), 2);
        assert!(!eval_in(&s, "docker.io/library/nginx:latest", None), "`nginx` as written gets the `*` rule");
    }

    /// The names of the policies covering `image`, matched on its canonical reference.
    fn covering(set: &PolicySet, image: &str, ns: Option<&str>) -> Vec<String> {
        let r = crate::reference::parse(image).unwrap();
        set.matching(&r.whole(), &crate::reference::repository(&r), ns).iter().map(|p| p.name.clone()).collect()
    }

    /// Regression (#15): a Portieris wildcard host covered images hosted anywhere whose
    /// path embeds the trusted host name (Portieris' own bypass fix of 2026-06-30).
    #[test]
    fn portieris_wildcard_hosts_are_anchored_to_the_registry() {
        let yaml = "apiVersion: portieris.cloud.ibm.com/v1\nkind: ClusterImagePolicy\nmetadata: {name: default}\nspec:\n  repositories:\n  - {name: \"*.registry.example.com/myorg/*\", policy: {}}\n";
        let s = set(yaml);
        let trusted = "portieris:default[*.registry.example.com/myorg/*]";
        assert_eq!(covering(&s, "us.registry.example.com/myorg/foo:latest", None), [trusted]);
        let attack = covering(&s, "attacker.com/x.registry.example.com/myorg/malware:latest", None);
        assert!(!attack.iter().any(|n| n == trusted), "{attack:?}");
        assert!(!eval_in(&s, "attacker.com/x.registry.example.com/myorg/malware:latest", None));
    }

    fn kyverno_refs(refs: &str, skip: &str) -> Arc<PolicySet> {
        set(&format!("apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {{name: p}}\nspec:\n  validationFailureAction: Enforce\n  rules:\n  - name: r\n    verifyImages:\n    - imageReferences: {refs}\n      skipImageReferences: {skip}\n      attestors:\n      - entries:\n        - keys: {{kms: \"awskms:///arn:aws:kms:us-east-2:111122223333:key/k\"}}\n"))
    }

    /// Regression (#15): Kyverno skips an image when its own name (`docker.io/<path as
    /// written>:<tag>`) matches; a raw or expanded match skipped images Kyverno verifies.
    #[test]
    fn kyverno_skip_lists_skip_only_what_kyverno_skips() {
        let s = kyverno_refs("[\"*\"]", "[\"myorg/*\", \"ghcr.io/org/base\"]");
        for verified in [
            "myorg/app:v1",
            "ghcr.io/org/base:v1",
            "ghcr.io/org/base@sha256:5504f2a95018e3d8a52d80d9e1a128c6ea337581808ff9fe96f5628ce2336350",
        ] {
            assert_eq!(covering(&s, verified, None), ["kyverno:p/r"], "{verified} is verified by Kyverno");
        }
        let s = kyverno_refs("[\"docker.io/nginx:*\"]", "[]");
        assert_eq!(
            covering(&s, "nginx:1.25", None),
            ["kyverno:p/r"],
            "Kyverno's name of nginx:1.25 is docker.io/nginx:1.25"
        );
    }

    fn pc_glob(glob: &str) -> Arc<PolicySet> {
        set(&format!("apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata: {{name: p}}\nspec:\n  images: [{{glob: \"{glob}\"}}]\n  authorities: [{{static: {{action: fail}}}}]\n"))
    }

    /// Regression (#15): globs policy-controller's own tests match, and a policy that fails
    /// must then apply; signet matched none of these.
    #[test]
    fn policy_controller_globs_cover_what_policy_controller_covers() {
        let digest = "sha256:5504f2a95018e3d8a52d80d9e1a128c6ea337581808ff9fe96f5628ce2336350";
        let cases = [
            ("*", "nginx".to_string()),
            ("*/*", "myuser/myapp".to_string()),
            ("ghc**", "ghcr.io/foo".to_string()),
            ("index.docker.**", "foo".to_string()),
            ("ghcr.io/foo@*", format!("ghcr.io/foo@{digest}")),
        ];
        for (glob, image) in cases {
            assert_eq!(covering(&pc_glob(glob), &image, None), ["sigstore:p"], "{glob} covers {image}");
        }
    }

    fn eval_in(set: &PolicySet, image: &str, ns: Option<&str>) -> bool {
        let (repo, _) = image.rsplit_once(':').unwrap();
        let trust = crate::verify::trust::TrustRoot::empty();
        let cx = crate::verify::Context { trust: &trust, now: crate::verify::Context::now_secs() };
        let matched = set.matching(image, repo, ns);
        !matched.is_empty() && evaluate(&matched, &crate::evaluate::Evidence::default(), D, cx).allowed
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
