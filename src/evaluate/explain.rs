//! `signet policy explain`: which policies and authorities cover an image, offline.

use std::fmt;

use serde::Serialize;

use crate::policy::compile::compile_cel;
use crate::policy::local::Loaded;
use crate::policy::normal::{CelCheck, Check, KeyRef, NormalAuthority, NormalRequirement};
use crate::policy::{AuthorityKind, Mode, NoMatchAction, PolicySet};
use crate::reference::ReferenceError;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// The normalised reference the policies were matched against.
    pub image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Names of the policies that apply, in load order.
    pub matched: Vec<String>,
    /// `allow`, `warn` or `deny` when policy alone decides; `verify` when signatures do.
    pub action: String,
    pub no_match_action: NoMatchAction,
    pub policies: Vec<Matched>,
}

#[derive(Debug, Serialize)]
pub struct Matched {
    pub name: String,
    pub origin: String,
    pub mode: Mode,
    pub requirements: Vec<NormalRequirement>,
    /// Set when the policy's namespaceSelector could not be evaluated: why, and that the
    /// policy therefore applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<String>,
    /// Set when the policy selects pods by their own labels, which explain does not know.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<String>,
}

/// Explain `image` in `namespace` against loaded policies.
pub fn explain(
    loaded: &Loaded,
    node_no_match: NoMatchAction,
    image: &str,
    namespace: Option<&str>,
) -> Result<Explanation, ReferenceError> {
    let reference = crate::reference::parse(image)?;
    let full = reference.whole();
    let repository = crate::reference::repository(&reference);
    let set = PolicySet::assemble(loaded.policies.clone(), node_no_match);
    let matched = set.matching(&full, &repository, namespace);
    let action = if matched.is_empty() {
        set.no_match.to_string()
    } else if super::needs(&matched) != super::Needs::default() {
        "verify".to_string()
    } else {
        // A dummy digest and no trust: without signed authorities neither plays a part.
        let trust = crate::verify::trust::TrustRoot::empty();
        let cx = crate::verify::Context { trust: &trust, now: crate::verify::Context::now_secs() };
        let e = super::evaluate(&matched, &super::Evidence::default(), "sha256:0", cx);
        match (e.allowed, e.warned) {
            (false, _) => "deny",
            (true, true) => "warn",
            (true, false) => "allow",
        }
        .to_string()
    };
    let policies = matched
        .iter()
        .filter_map(|p| loaded.normal.iter().find(|n| n.name == p.name))
        .map(|n| Matched {
            name: n.name.clone(),
            origin: n.origin.clone(),
            mode: n.mode,
            requirements: n.requirements.clone(),
            namespace_selector: n.namespaces.has_selector().then_some(()).and_then(|_| {
                let why = set.namespace_labels.why_unknown(namespace)?;
                Some(format!("namespaceSelector not evaluated ({why}): the policy applies"))
            }),
            pod_selector: n.namespaces.has_pod_selector().then(|| {
                "selector over the pod's labels not evaluated (explain knows no pod; on the node the runtime \
                 reports them): the policy applies"
                    .to_string()
            }),
        })
        .collect();
    Ok(Explanation {
        image: full,
        namespace: namespace.map(String::from),
        matched: matched.iter().map(|p| p.name.clone()).collect(),
        action,
        no_match_action: set.no_match,
        policies,
    })
}

fn with_evidence(
    signer: String,
    rekor: &Option<String>,
    tsa: &Option<String>,
    repository: &Option<String>,
    attestations: &[String],
) -> String {
    let mut out = signer;
    if let Some(r) = repository {
        out.push_str(&format!(", signatures read from repository {r}"));
    }
    if let Some(r) = rekor {
        out.push_str(&format!(", in transparency log {r}"));
    }
    if tsa.is_some() {
        out.push_str(", RFC 3161 timestamps verified against the inline TSA chain (a bundle must carry one)");
    }
    if !attestations.is_empty() {
        out.push_str(&format!(", attestations {}", attestations.join(", ")));
    }
    out
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.namespace.as_deref().map(|n| format!(" in namespace {n}")).unwrap_or_default();
        writeln!(f, "image {}{ns}: {}", self.image, self.action)?;
        if self.matched.is_empty() {
            return writeln!(f, "  no policy matches; the no-match action is {}", self.no_match_action);
        }
        for p in &self.policies {
            writeln!(f, "  policy {} ({}, {})", p.name, p.mode, p.origin)?;
            for why in p.namespace_selector.iter().chain(&p.pod_selector) {
                writeln!(f, "    {why}")?;
            }
            for (i, r) in p.requirements.iter().enumerate() {
                writeln!(f, "    requirement {i}: {} of {}", r.count, r.authorities.len())?;
                for a in &r.authorities {
                    let what = match &a.check {
                        Check::Key(k) => {
                            let key = match &k.key {
                                KeyRef::Pem(_) => "inline key".to_string(),
                                KeyRef::Path(p) => format!("key file {}", p.display()),
                                KeyRef::Secret { namespace, name, .. } => format!("key in Secret {namespace}/{name}"),
                                KeyRef::Kms(kms) => match &kms.resolved {
                                    Some(r) => format!(
                                        "KMS key {} (resolved: version {}, from {})",
                                        kms.uri, r.version, r.source
                                    ),
                                    None => format!("KMS key {} (not resolved on this node: fails closed)", kms.uri),
                                },
                            };
                            with_evidence(key, &k.rekor, &k.tsa_cert_chain, &k.repository, &k.attestations)
                        }
                        Check::Keyless(k) => {
                            let ca = match &k.ca {
                                None => "the node trust root's CAs".to_string(),
                                Some(KeyRef::Pem(_)) => "an inline CA".to_string(),
                                Some(KeyRef::Path(p)) => format!("CA file {}", p.display()),
                                Some(KeyRef::Secret { namespace, name, .. }) => {
                                    format!("CA in Secret {namespace}/{name}")
                                }
                                Some(KeyRef::Kms(k)) => format!("KMS key {} (not a CA: fails closed)", k.uri),
                            };
                            let ids = serde_json::to_string(&k.identities).unwrap_or_default();
                            let sct = if k.ignore_sct { ", SCT not checked" } else { ", SCT required" };
                            with_evidence(
                                format!("keyless from {ca}, identities {ids}{sct}"),
                                &k.rekor,
                                &k.tsa_cert_chain,
                                &k.repository,
                                &k.attestations,
                            )
                        }
                        Check::Certificate(c) => {
                            let cas = if c.trust_root_cas { " and to the node trust root's CAs" } else { "" };
                            let sct = if c.ignore_sct { "SCT not checked" } else { "SCT required" };
                            let chain = match &c.chain {
                                None => "its key only (no chain, so no SCT)".to_string(),
                                Some(_) => format!("chaining to its inline chain's root{cas}, {sct}"),
                            };
                            with_evidence(
                                format!("inline certificate, {chain}"),
                                &c.rekor,
                                &c.tsa_cert_chain,
                                &c.repository,
                                &c.attestations,
                            )
                        }
                        Check::Gpg(g) => {
                            let key = match &g.key {
                                KeyRef::Pem(_) => "inline OpenPGP key".to_string(),
                                KeyRef::Path(p) => format!("OpenPGP key file {}", p.display()),
                                KeyRef::Secret { namespace, name, .. } => {
                                    format!("OpenPGP key in Secret {namespace}/{name}")
                                }
                                KeyRef::Kms(k) => format!("KMS key {} (not an OpenPGP key: fails closed)", k.uri),
                            };
                            let rule = g.signed_identity.as_deref().unwrap_or("matchRepoDigestOrExact");
                            format!("GPG simple signing (lookaside) by {key}, identity {rule}")
                        }
                        Check::Notary(n) => {
                            let certs = match &n.certs {
                                KeyRef::Pem(_) => "inline certificates".to_string(),
                                KeyRef::Path(p) => format!("certificate file {}", p.display()),
                                KeyRef::Secret { namespace, name, .. } => {
                                    format!("certificates in Secret {namespace}/{name}")
                                }
                                KeyRef::Kms(k) => format!("KMS key {} (not a certificate: fails closed)", k.uri),
                            };
                            let over = match n.attestations.as_slice() {
                                [] => "among the image's OCI referrers".to_string(),
                                types => format!(
                                    "over the first artifact of type {} among the image's OCI referrers (its manifest \
                                     naming the image and that type, its one layer a JSON object)",
                                    types.join(", ")
                                ),
                            };
                            format!(
                                "Notary (notation) signature {over}, chain to {certs}; the signing certificate must \
                                 be valid now (timestamps not used)"
                            )
                        }
                        Check::Static(s) => format!("static {}", serde_json::to_string(s).unwrap_or_default()),
                        Check::Unsupported(why) => format!("fails closed: {why}"),
                        Check::Cel(c) => {
                            let parts: Vec<String> =
                                describe(c).into_iter().map(|l| format!("\n        {l}")).collect();
                            format!("CEL validations over attestors {:?}:{}", attestor_names(c), parts.concat())
                        }
                    };
                    writeln!(f, "      authority {}: {what}", a.name)?;
                    if !a.check.conditions().is_empty() {
                        // Conditions that cannot be evaluated fail the authority closed when
                        // read, so any shown here are evaluated on the node.
                        let written = serde_json::to_string(a.check.conditions()).unwrap_or_default();
                        writeln!(
                            f,
                            "        every statement attested must satisfy (evaluated on the node): {written}"
                        )?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// One line per part, saying whether the node evaluates it: for `explain`.
fn describe(c: &CelCheck) -> Vec<String> {
    // Attestors are only told apart by whether they can ever verify: no keys are read here.
    let mut compile_attestor = |a: &NormalAuthority| {
        Ok(match &a.check {
            Check::Unsupported(why) => AuthorityKind::Unsupported(why.clone()),
            _ => AuthorityKind::StaticPass,
        })
    };
    let compiled = match compile_cel(c, &mut compile_attestor) {
        Ok(c) => c,
        Err(e) => return vec![format!("fails closed: {e}")],
    };
    let mut out = Vec::new();
    for (i, v) in compiled.validations.iter().enumerate() {
        match &v.check {
            Ok(e) => out.push(format!("validations[{i}] evaluated on the node: {}", e.source.trim())),
            Err(e) => out.push(format!("fails closed: {e}")),
        }
    }
    if let Some(selector) = &compiled.object_selector {
        let selector = serde_json::to_string(selector).unwrap_or_default();
        out.push(format!(
            "matchConstraints.objectSelector evaluated on the node over the pod's labels (a pod it does not select \
             is left alone; where the labels are unknown it selects): {selector}"
        ));
    }
    for m in &compiled.match_conditions {
        match m {
            Ok(e) => out.push(format!("{} evaluated on the node: {}", e.field, e.source.trim())),
            Err(e) => out.push(format!("not evaluated, the validations always apply: {e}")),
        }
    }
    for (_, v) in &compiled.variables {
        match v {
            Ok(e) => out.push(format!("{} evaluated on the node: {}", e.field, e.source.trim())),
            Err(e) => out.push(format!("not evaluated, expressions using it fail: {e}")),
        }
    }
    for a in &c.attestors {
        if let Check::Unsupported(why) = &a.check {
            out.push(format!("attestor {} never verifies: {why}", a.name));
        }
    }
    for a in &c.attestations {
        match (&a.intoto, &a.referrer) {
            (Some(t), _) => out.push(format!(
                "attestation {}: in-toto statements of predicate type {t} about the digest, verified by cosign attestors (a notary attestor asked about it is an error)",
                a.name
            )),
            (_, Some(t)) => out.push(format!(
                "attestation {}: artifacts of type {t} attached to the image as OCI referrers, verified by notary attestors (a notation signature over the artifact, whose manifest must name the image as subject; cosign attestors do not count); extractPayload reads the verified one's JSON",
                a.name
            )),
            (None, None) => {}
        }
    }
    if c.require_verified {
        out.push("the image must pass a signature or attestation check (validationConfigurations.required)".into());
    }
    if c.require_digest {
        out.push("the pod must name the image by digest (verifyDigest without mutateDigest)".into());
    }
    out
}

fn attestor_names(c: &CelCheck) -> Vec<&str> {
    c.attestors.iter().map(|a| a.name.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::local::load_dir;

    const POLICIES: &str = "apiVersion: signet.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: team}
spec:
  images: [{glob: \"reg.io/team/*\"}]
  namespaces: {exclude: [kube-system]}
  authorities: [{name: k, key: {path: k.pub}}]
---
apiVersion: signet.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: public}
spec:
  images: [{glob: \"reg.io/public/**\"}]
  authorities: [{static: {action: pass}}]
";

    fn loaded() -> (tempfile::TempDir, Loaded) {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("p.yaml"), POLICIES).unwrap();
        std::fs::write(d.path().join("k.pub"), crate::testutil::TEST_PUB).unwrap();
        let l = load_dir(d.path()).unwrap();
        (d, l)
    }

    #[test]
    fn matched_policies_and_action() {
        let (_d, l) = loaded();
        let x = explain(&l, NoMatchAction::Deny, "reg.io/team/app:v1", Some("default")).unwrap();
        assert_eq!(x.matched, ["team"]);
        assert_eq!(x.action, "verify");
        let json = serde_json::to_value(&x).unwrap();
        assert_eq!(json["matched"][0], "team");
        assert_eq!(json["action"], "verify");
        let x = explain(&l, NoMatchAction::Deny, "reg.io/public/a/b:1", None).unwrap();
        assert_eq!((x.matched.as_slice(), x.action.as_str()), (&["public".to_string()][..], "allow"));
    }

    #[test]
    fn namespace_exclusion_and_no_match() {
        let (_d, l) = loaded();
        let x = explain(&l, NoMatchAction::Warn, "reg.io/team/app:v1", Some("kube-system")).unwrap();
        assert!(x.matched.is_empty());
        assert_eq!(x.action, "warn");
        assert!(x.to_string().contains("no policy matches"));
    }

    #[test]
    fn bad_reference_is_named() {
        let (_d, l) = loaded();
        assert!(explain(&l, NoMatchAction::Deny, "UPPER/Case:x", None).unwrap_err().to_string().contains("UPPER/Case"));
    }

    /// #19: offline, namespace labels are unknown; explain says the selector was not
    /// evaluated and that the policy applies.
    #[test]
    fn an_unevaluated_namespace_selector_is_named() {
        let d = tempfile::tempdir().unwrap();
        let ivp = format!(
            "apiVersion: policies.kyverno.io/v1\nkind: ImageValidatingPolicy\nmetadata: {{name: p}}\nspec:\n  \
             matchConstraints:\n    namespaceSelector: {{matchLabels: {{env: prod}}}}\n  \
             matchImageReferences: [{{glob: \"reg.io/*\"}}]\n  attestors: [{}]\n  \
             validations: [{{expression: \"false\"}}]\n",
            crate::testutil::vectors::notary_attestor("none")
        );
        std::fs::write(d.path().join("p.yaml"), ivp).unwrap();
        let l = load_dir(d.path()).unwrap();
        let x = explain(&l, NoMatchAction::Deny, "reg.io/app:v1", Some("dev")).unwrap();
        assert_eq!(x.matched, ["kyverno-ivp:p"]);
        let text = x.to_string();
        assert!(
            text.contains("namespaceSelector not evaluated (namespace labels are not known on this node")
                && text.contains("the policy applies"),
            "{text}"
        );
    }

    /// A rule that selects pods by their own labels says explain does not know them, and
    /// that it applies.
    #[test]
    fn an_unevaluated_pod_selector_is_named() {
        let d = tempfile::tempdir().unwrap();
        let cpol = format!(
            "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {{name: p}}\nspec:\n  rules:\n  - name: r\n    \
             match: {{any: [{{resources: {{kinds: [Pod], selector: {{matchLabels: {{verify: 'true'}}}}}}}}]}}\n    \
             verifyImages:\n    - imageReferences: ['reg.io/*']\n      attestors:\n      - entries:\n        \
             - keys: {{publicKeys: {:?}}}\n",
            crate::testutil::TEST_PUB
        );
        std::fs::write(d.path().join("p.yaml"), cpol).unwrap();
        let l = load_dir(d.path()).unwrap();
        let x = explain(&l, NoMatchAction::Deny, "reg.io/app:v1", Some("dev")).unwrap();
        assert_eq!(x.matched, ["kyverno:p/r"]);
        let text = x.to_string();
        assert!(
            text.contains("selector over the pod's labels not evaluated") && text.contains("the policy applies"),
            "{text}"
        );
    }

    /// #19: certificate attestors and ClusterPolicy Notary rules are shown for what they
    /// check; a certificate that does not chain to its chain refuses the file.
    #[test]
    fn certificate_and_notary_attestors_are_described() {
        let indent = |t: &str| t.lines().map(|l| format!("              {l}\n")).collect::<String>();
        let v = crate::testutil::vector;
        let rule = |name: &str, ty: &str, cert: &str, chain: Option<&str>| {
            let chain = chain.map(|c| format!("            certChain: |\n{}", indent(c))).unwrap_or_default();
            format!(
                "  - name: {name}\n    verifyImages:\n    - imageReferences: [\"reg.io/{name}/*\"]\n{ty}      attestors:\n      \
                 - entries:\n        - certificates:\n            cert: |\n{}{chain}",
                indent(cert)
            )
        };
        let doc = |rules: String| {
            let d = tempfile::tempdir().unwrap();
            let doc = format!(
                "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {{name: c}}\nspec:\n  \
                 validationFailureAction: Enforce\n  rules:\n{rules}"
            );
            std::fs::write(d.path().join("p.yaml"), doc).unwrap();
            d
        };
        let d = doc(rule("pinned", "", &v("leaf-email.pem"), Some(&v("chain.pem")))
            + &rule("notation", "      type: Notary\n", &crate::testutil::vectors::notation("trusted.crt"), None));
        let l = load_dir(d.path()).unwrap();
        let text = explain(&l, NoMatchAction::Deny, "reg.io/pinned/app:v1", None).unwrap().to_string();
        assert!(
            text.contains(
                "inline certificate, chaining to its inline chain's root, SCT required, in transparency log \
                 https://rekor.sigstore.dev"
            ),
            "{text}"
        );
        let text = explain(&l, NoMatchAction::Deny, "reg.io/notation/app:v1", None).unwrap().to_string();
        assert!(text.contains("Notary (notation) signature among the image's OCI referrers, chain to inline certificates; the signing"), "{text}");
        // The same rule's entries as an attestation's attestors.
        let notation =
            rule("notation", "      type: Notary\n", &crate::testutil::vectors::notation("trusted.crt"), None);
        let (head, entries) = notation.split_once("      attestors:\n").unwrap();
        let entries: String = entries.lines().map(|l| format!("  {l}\n")).collect();
        let attested =
            format!("{head}      attestations:\n      - type: sbom/cyclone-dx\n        attestors:\n{entries}");
        let d = doc(attested);
        let text = explain(&load_dir(d.path()).unwrap(), NoMatchAction::Deny, "reg.io/notation/app:v1", None)
            .unwrap()
            .to_string();
        assert!(text.contains("Notary (notation) signature over the first artifact of type sbom/cyclone-dx among the image's OCI referrers"), "{text}");
        // An IVP's referrer attestation says how the node verifies it (it said nothing before).
        let d = tempfile::tempdir().unwrap();
        let ivp = format!(
            "apiVersion: policies.kyverno.io/v1\nkind: ImageValidatingPolicy\nmetadata: {{name: s}}\nspec:\n  \
             matchImageReferences: [{{glob: \"reg.io/*\"}}]\n  attestors:\n  - {}\n  attestations:\n  - {{name: sbom, \
             referrer: {{type: sbom/cyclone-dx}}}}\n  validations:\n  - expression: \"images.containers.all(i, \
             verifyAttestationSignatures(i, attestations.sbom, [attestors.notary]) > 0)\"\n",
            crate::testutil::vectors::notary_attestor("notary")
        );
        std::fs::write(d.path().join("p.yaml"), ivp).unwrap();
        let text =
            explain(&load_dir(d.path()).unwrap(), NoMatchAction::Deny, "reg.io/app:v1", None).unwrap().to_string();
        assert!(
            text.contains("attestation sbom: artifacts of type sbom/cyclone-dx attached to the image as OCI referrers, verified by notary attestors"),
            "{text}"
        );
        // `policy check` refuses the file, naming the policy and why.
        let d = doc(rule("astray", "", &v("leaf-email.pem"), Some(&v("other-root.pem"))));
        let err = load_dir(d.path()).err().unwrap().to_string();
        assert!(err.contains("kyverno:c/astray") && err.contains("does not chain to the root"), "{err}");
    }
}
