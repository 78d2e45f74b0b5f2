//! Kyverno `policies.kyverno.io` ImageValidatingPolicy and NamespacedImageValidatingPolicy
//! (v1alpha1, v1beta1, v1: the same schema).
//!
//! One object becomes one policy with one CEL authority ([`CelCheck`]): its attestors
//! become the checks signet already performs (cosign keys, keyless identities; Kyverno's
//! cosign defaults kept: a Rekor entry unless `ctlog.insecureIgnoreTlog`, an SCT for
//! keyless unless `ctlog.insecureIgnoreSCT`), its validations are evaluated on the node by
//! [`crate::verify::cel`] where [`crate::policy::cel`] can prove the per-container result
//! is not looser than Kyverno's. `matchImageReferences` globs are wildcards (`*` crosses
//! `/`, as gobwas/glob without separators), expressions are evaluated on the image.
//! `validationActions` without `Deny` is warn mode.
//!
//! Admission filters the node cannot see are widened, never narrowed: `namespaceSelector`
//! is applied for its `kubernetes.io/metadata.name` requirements (the namespace name is
//! always known) and its other requirements are dropped; `objectSelector`,
//! `resourceRules` and `excludeResourceRules` are not applied. Failures are always
//! failures (`failurePolicy: Ignore` admits on errors in Kyverno; not on the node).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::{parse_spec, split_pem_keys, Imported, Meta};
use crate::policy::cel::{CelAttestation, CelCheck, CelValidation, NamedExpression};
use crate::policy::model::{Mode, Namespaces};
use crate::policy::normal::{
    Check, KeyCheck, KeyRef, KeylessCheck, NormalAuthority, NormalIdentity, NormalPolicy, NormalRequirement, Pattern,
    SecretName,
};

const PUBLIC_REKOR: &str = "https://rekor.sigstore.dev";
/// Kyverno reads `credentials.secrets` from its own namespace.
const KYVERNO_NAMESPACE: &str = "kyverno";
/// The label the API server sets on every namespace to its name.
const NAME_LABEL: &str = "kubernetes.io/metadata.name";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Spec {
    #[serde(default)]
    match_constraints: Option<MatchConstraints>,
    #[serde(default)]
    match_conditions: Vec<NamedExpr>,
    #[serde(default)]
    match_image_references: Vec<MatchImageReference>,
    #[serde(default)]
    validation_actions: Vec<String>,
    #[serde(default)]
    failure_policy: Option<String>,
    #[serde(default)]
    validation_configurations: Option<ValidationConfigurations>,
    #[serde(default)]
    credentials: Option<Credentials>,
    #[serde(default)]
    attestors: Vec<Attestor>,
    #[serde(default)]
    attestations: Vec<Attestation>,
    #[serde(default)]
    variables: Vec<NamedExpr>,
    #[serde(default)]
    validations: Vec<Validation>,
    #[serde(default, rename = "images")]
    image_extractors: Vec<NamedExpr>,
    #[serde(default)]
    audit_annotations: Vec<Value>,
    #[serde(default)]
    evaluation: Option<Evaluation>,
    #[serde(default)]
    autogen: Option<Value>,
    #[serde(default)]
    webhook_configuration: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MatchConstraints {
    #[serde(default)]
    namespace_selector: Option<LabelSelector>,
    #[serde(default)]
    object_selector: Option<LabelSelector>,
    #[serde(default)]
    resource_rules: Vec<ResourceRule>,
    #[serde(default)]
    exclude_resource_rules: Vec<Value>,
    #[serde(default)]
    match_policy: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LabelSelector {
    #[serde(default)]
    match_labels: BTreeMap<String, String>,
    #[serde(default)]
    match_expressions: Vec<LabelRequirement>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelRequirement {
    key: String,
    operator: String,
    #[serde(default)]
    values: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceRule {
    #[serde(default)]
    resources: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NamedExpr {
    name: String,
    expression: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MatchImageReference {
    #[serde(default)]
    glob: Option<String>,
    #[serde(default)]
    expression: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ValidationConfigurations {
    #[serde(default)]
    mutate_digest: Option<bool>,
    #[serde(default)]
    verify_digest: Option<bool>,
    #[serde(default)]
    required: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Credentials {
    #[serde(default)]
    allow_insecure_registry: Option<bool>,
    #[serde(default)]
    providers: Vec<String>,
    #[serde(default)]
    secrets: Vec<String>,
}

// Read only so the object parses strictly; background scans do not concern the node.
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Evaluation {
    #[serde(default)]
    admission: Option<Value>,
    #[serde(default)]
    background: Option<Value>,
    #[serde(default)]
    mode: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Validation {
    expression: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    message_expression: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Attestation {
    name: String,
    #[serde(default)]
    intoto: Option<TypeOnly>,
    #[serde(default)]
    referrer: Option<TypeOnly>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TypeOnly {
    #[serde(rename = "type")]
    type_: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Attestor {
    name: String,
    #[serde(default)]
    cosign: Option<Cosign>,
    #[serde(default)]
    notary: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Cosign {
    #[serde(default)]
    key: Option<Key>,
    #[serde(default)]
    keyless: Option<Keyless>,
    #[serde(default)]
    certificate: Option<Value>,
    #[serde(default)]
    ctlog: Option<Ctlog>,
    #[serde(default)]
    tuf: Option<Value>,
    #[serde(default)]
    trusted_root: Option<Value>,
    #[serde(default)]
    source: Option<Source>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Key {
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    kms: Option<String>,
    #[serde(default)]
    expression: Option<String>,
    #[serde(default)]
    hash_algorithm: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Keyless {
    #[serde(default)]
    identities: Vec<Identity>,
    #[serde(default)]
    roots: Option<String>,
    #[serde(default)]
    additional_extensions: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Identity {
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    issuer_reg_exp: Option<String>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    subject_reg_exp: Option<String>,
    #[serde(default)]
    subject_expression: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Ctlog {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    rekor_pub_key: Option<String>,
    #[serde(default, rename = "ctLogPubKey")]
    ct_log_pub_key: Option<String>,
    #[serde(default, rename = "tsaCertChain")]
    tsa_cert_chain: Option<String>,
    #[serde(default)]
    insecure_ignore_tlog: bool,
    #[serde(default, rename = "insecureIgnoreSCT")]
    insecure_ignore_sct: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Source {
    #[serde(default)]
    repository: Option<String>,
    #[serde(default)]
    tag_prefix: Option<String>,
    #[serde(default, rename = "PullSecrets")]
    pull_secrets: Vec<Value>,
}

pub fn import(meta: &Meta, spec: Value) -> Result<Imported, Vec<String>> {
    let own_namespace = match (meta.kind.as_str(), &meta.namespace) {
        ("NamespacedImageValidatingPolicy", Some(ns)) => Some(ns.clone()),
        ("NamespacedImageValidatingPolicy", None) => {
            return Err(vec!["metadata.namespace is missing (a NamespacedImageValidatingPolicy is namespaced)".into()])
        }
        _ => None,
    };
    let spec: Spec = parse_spec(spec)?;
    let mut errors = Vec::new();
    let mut notes = Vec::new();
    let empty = || Imported { policies: Vec::new(), notes: Vec::new() };

    if let Some(mode) = spec.evaluation.as_ref().and_then(|e| e.mode.as_deref()) {
        if mode != "Kubernetes" {
            // Kyverno applies such a policy to HTTP or Envoy requests, never to pods.
            let mut out = empty();
            out.notes.push(format!("spec.evaluation.mode {mode}: not a policy for pods, nothing for the node"));
            return Ok(out);
        }
    }
    if spec.evaluation.as_ref().and_then(|e| e.admission.as_ref()).and_then(|a| a.get("enabled")) == Some(&false.into())
    {
        notes.push("spec.evaluation.admission.enabled is false: the node enforces the policy anyway".into());
    }

    let mode = mode_of(&spec.validation_actions).unwrap_or_else(|e| {
        errors.push(format!("spec.validationActions: {e}"));
        Mode::Enforce
    });
    if spec.failure_policy.as_deref() == Some("Ignore") {
        notes.push("spec.failurePolicy Ignore: on the node an error denies, as with Fail".into());
    }

    let images = image_patterns(&spec.match_image_references, &mut errors, &mut notes);
    let mut namespaces = Namespaces::default();
    let mut selects_none = false;
    if let Some(mc) = &spec.match_constraints {
        if let Some(sel) = &mc.namespace_selector {
            match namespace_selector(sel, &mut notes) {
                Some(ns) => namespaces = ns,
                None => selects_none = true,
            }
        }
        if mc.object_selector.as_ref().is_some_and(|s| !s.match_labels.is_empty() || !s.match_expressions.is_empty()) {
            notes.push("spec.matchConstraints.objectSelector is not applied on the node: every pod is checked".into());
        }
        if !mc.exclude_resource_rules.is_empty() {
            notes.push("spec.matchConstraints.excludeResourceRules are not applied on the node".into());
        }
        let pods = mc.resource_rules.iter().any(|r| r.resources.iter().any(|x| x == "pods" || x == "*"));
        if !mc.resource_rules.is_empty() && !pods {
            notes.push(
                "spec.matchConstraints.resourceRules do not name pods: the node checks pods' containers anyway".into(),
            );
        }
        let _ = &mc.match_policy;
    }
    if let Some(ns) = &own_namespace {
        if (!namespaces.include.is_empty() && !namespaces.include.contains(ns)) || namespaces.exclude.contains(ns) {
            selects_none = true;
        }
        namespaces = Namespaces { include: vec![ns.clone()], exclude: Vec::new() };
    }
    if selects_none {
        let mut out = empty();
        out.notes.push("spec.matchConstraints.namespaceSelector selects no namespace: applies to none".into());
        return Ok(out);
    }

    let config = spec.validation_configurations.as_ref();
    let mutate_digest = config.and_then(|c| c.mutate_digest).unwrap_or(true);
    let verify_digest = config.and_then(|c| c.verify_digest).unwrap_or(true);
    let required = config.and_then(|c| c.required).unwrap_or(true);

    let mut attestors = Vec::new();
    for (i, a) in spec.attestors.iter().enumerate() {
        match attestor(a, &mut notes) {
            Ok(check) => attestors.push(NormalAuthority::new(a.name.clone(), check)),
            Err(e) => errors.push(format!("spec.attestors[{i}]({}): {e}", a.name)),
        }
    }
    let mut attestations = Vec::new();
    for (i, a) in spec.attestations.iter().enumerate() {
        match (&a.intoto, &a.referrer) {
            (Some(t), None) => attestations.push(CelAttestation {
                name: a.name.clone(),
                intoto: Some(t.type_.clone()),
                referrer: None,
            }),
            (None, Some(t)) => attestations.push(CelAttestation {
                name: a.name.clone(),
                intoto: None,
                referrer: Some(t.type_.clone()),
            }),
            _ => errors.push(format!("spec.attestations[{i}]({}): exactly one of intoto or referrer", a.name)),
        }
    }
    if spec.validations.is_empty() {
        errors.push("spec.validations is empty".into());
    }
    if !spec.image_extractors.is_empty() {
        notes.push(
            "spec.images (custom image extractors) read the admission object: expressions using them fail on the node"
                .into(),
        );
    }
    if !spec.audit_annotations.is_empty() {
        notes.push("spec.auditAnnotations are not produced on the node".into());
    }
    let _ = (&spec.autogen, &spec.webhook_configuration);
    let pull_secrets = credentials(spec.credentials.as_ref(), &mut notes);
    if !errors.is_empty() {
        return Err(errors);
    }
    let named = |v: &Vec<NamedExpr>| {
        v.iter().map(|n| NamedExpression { name: n.name.clone(), expression: n.expression.clone() }).collect()
    };
    let check = CelCheck {
        attestors,
        attestations,
        match_conditions: named(&spec.match_conditions),
        variables: named(&spec.variables),
        validations: spec
            .validations
            .iter()
            .map(|v| {
                let _ = &v.reason;
                CelValidation {
                    expression: v.expression.clone(),
                    message: v.message.clone(),
                    message_expression: v.message_expression.clone(),
                }
            })
            .collect(),
        require_verified: required,
        require_digest: verify_digest && !mutate_digest,
    };
    let name = match &own_namespace {
        Some(ns) => format!("kyverno-ivp:{ns}/{}", meta.name),
        None => format!("kyverno-ivp:{}", meta.name),
    };
    let policy = NormalPolicy {
        name,
        origin: meta.origin(),
        images,
        exclude_images: Vec::new(),
        namespaces,
        mode,
        requirements: vec![NormalRequirement::any_of(vec![NormalAuthority::new(
            "validations",
            Check::Cel(Box::new(check)),
        )])],
        exclusive: None,
        no_match_action: None,
        pull_secrets,
    };
    Ok(Imported { policies: vec![policy], notes })
}

fn mode_of(actions: &[String]) -> Result<Mode, String> {
    for a in actions {
        if !matches!(a.as_str(), "Deny" | "Audit" | "Warn") {
            return Err(format!("{a:?} is not one of Deny, Audit, Warn"));
        }
    }
    // Kyverno's default with none listed is Deny.
    Ok(if actions.is_empty() || actions.iter().any(|a| a == "Deny") { Mode::Enforce } else { Mode::Warn })
}

fn image_patterns(refs: &[MatchImageReference], errors: &mut Vec<String>, notes: &mut Vec<String>) -> Vec<Pattern> {
    if refs.is_empty() {
        return vec![Pattern::Wildcard("*".into())];
    }
    let mut out = Vec::new();
    for (i, r) in refs.iter().enumerate() {
        match (&r.glob, &r.expression) {
            (Some(g), None) => {
                // gobwas/glob classes and alternatives would match less as plain wildcards.
                if g.contains(['[', ']', '{', '}', '\\']) {
                    notes.push(format!(
                        "spec.matchImageReferences[{i}].glob {g:?} uses glob syntax the node does not match: \
                         the policy covers every image"
                    ));
                    out.push(Pattern::Wildcard("*".into()));
                } else {
                    out.push(Pattern::Wildcard(g.clone()));
                }
            }
            (None, Some(e)) => out.push(Pattern::Expression(e.clone())),
            _ => errors.push(format!("spec.matchImageReferences[{i}]: exactly one of glob or expression")),
        }
    }
    out
}

/// The namespaces a selector can be narrowed to by name; `None` when it selects none.
fn namespace_selector(sel: &LabelSelector, notes: &mut Vec<String>) -> Option<Namespaces> {
    let mut include: Option<Vec<String>> = None;
    let mut exclude = Vec::new();
    let mut dropped = false;
    let mut narrow = |names: Vec<String>| {
        include = Some(match include.take() {
            None => names,
            Some(prev) => prev.into_iter().filter(|n| names.contains(n)).collect(),
        });
    };
    for (k, v) in &sel.match_labels {
        if k == NAME_LABEL {
            narrow(vec![v.clone()]);
        } else {
            dropped = true;
        }
    }
    for r in &sel.match_expressions {
        match (r.key == NAME_LABEL, r.operator.as_str()) {
            (true, "In") => narrow(r.values.clone()),
            (true, "NotIn") => exclude.extend(r.values.iter().cloned()),
            (true, "Exists") => {}
            (true, "DoesNotExist") => return None,
            _ => dropped = true,
        }
    }
    if dropped {
        notes.push(format!(
            "spec.matchConstraints.namespaceSelector: only {NAME_LABEL} requirements are applied on the node; \
             the policy is enforced regardless of other namespace labels"
        ));
    }
    match include {
        Some(names) if names.is_empty() => None,
        Some(names) => Some(Namespaces { include: names, exclude }),
        None => Some(Namespaces { include: Vec::new(), exclude }),
    }
}

fn credentials(c: Option<&Credentials>, notes: &mut Vec<String>) -> Vec<SecretName> {
    let Some(c) = c else { return Vec::new() };
    if !c.providers.is_empty() {
        notes.push("spec.credentials.providers (cloud credential helpers) are not used on the node".into());
    }
    if c.allow_insecure_registry == Some(true) {
        notes.push("spec.credentials.allowInsecureRegistry is not honoured on the node".into());
    }
    c.secrets.iter().map(|name| SecretName { namespace: KYVERNO_NAMESPACE.into(), name: name.clone() }).collect()
}

/// The check the node performs for one attestor; what it cannot do fails closed.
fn attestor(a: &Attestor, notes: &mut Vec<String>) -> Result<Check, String> {
    let unsupported = |why: &str| Ok(Check::Unsupported(why.to_string()));
    let c = match (&a.cosign, &a.notary) {
        (Some(c), None) => c,
        (None, Some(_)) => return unsupported("Notary signatures are not verified on the node"),
        _ => return Err("exactly one of cosign or notary".into()),
    };
    let set = [c.key.is_some(), c.keyless.is_some(), c.certificate.is_some()];
    if set.iter().filter(|b| **b).count() != 1 {
        return Err("cosign needs exactly one of key, keyless or certificate".into());
    }
    if !c.annotations.is_empty() {
        return unsupported("required signature annotations are not checked on the node");
    }
    if c.tuf.is_some() || c.trusted_root.is_some() {
        return unsupported(
            "a custom sigstore trust root (tuf, trustedRoot): the node verifies with its own trust root only",
        );
    }
    if let Some(s) = &c.source {
        if s.repository.is_some() || s.tag_prefix.is_some() {
            return unsupported("signatures kept in another repository or under a tag prefix are not fetched");
        }
        if !s.pull_secrets.is_empty() {
            notes.push(format!("attestor {}: source.PullSecrets are not used on the node", a.name));
        }
    }
    let ctlog = c.ctlog.as_ref();
    if ctlog.is_some_and(|l| l.tsa_cert_chain.is_some()) {
        return unsupported("RFC 3161 timestamps (ctlog.tsaCertChain) are not verified on the node");
    }
    let (rekor, rekor_keys) = match ctlog {
        Some(l) if l.insecure_ignore_tlog => (None, Vec::new()),
        Some(l) => (
            Some(l.url.clone().unwrap_or_else(|| PUBLIC_REKOR.into())),
            l.rekor_pub_key.iter().cloned().collect::<Vec<_>>(),
        ),
        None => (Some(PUBLIC_REKOR.to_string()), Vec::new()),
    };
    if let Some(k) = &c.key {
        if !matches!(k.hash_algorithm.as_deref(), None | Some("") | Some("sha256")) {
            return unsupported(&format!("key.hashAlgorithm {:?} is not supported (only sha256)", k.hash_algorithm));
        }
        let set = [k.data.is_some(), k.kms.is_some(), k.expression.is_some()];
        if set.iter().filter(|b| **b).count() != 1 {
            return Err("key needs exactly one of data, kms or expression".into());
        }
        if let Some(kms) = &k.kms {
            return unsupported(&format!("KMS key {kms}: KMS keys are not supported on the node"));
        }
        if k.expression.is_some() {
            return unsupported("a key given by a CEL expression is not evaluated on the node");
        }
        let pems = split_pem_keys(k.data.as_deref().unwrap_or_default()).map_err(|e| format!("key.data: {e}"))?;
        if pems.len() != 1 {
            return Err(format!("key.data holds {} keys; Kyverno reads one", pems.len()));
        }
        let mut check = KeyCheck::new(KeyRef::Pem(pems[0].clone()), rekor);
        check.rekor_keys = rekor_keys;
        return Ok(Check::Key(check));
    }
    if c.certificate.is_some() {
        return unsupported("certificate-based verification is not implemented on the node yet");
    }
    let k = c.keyless.as_ref().expect("counted above");
    if !k.additional_extensions.is_empty() {
        return unsupported("keyless.additionalExtensions (certificate extension checks) are not applied on the node");
    }
    if ctlog.is_some_and(|l| l.ct_log_pub_key.is_some() && !l.insecure_ignore_sct) {
        return unsupported("SCTs against a custom CT log key (ctlog.ctLogPubKey) are not verified on the node");
    }
    let mut identities = Vec::new();
    for (i, id) in k.identities.iter().enumerate() {
        if id.subject_expression.is_some() {
            return unsupported("keyless.identities[].subjectExpression is not evaluated on the node");
        }
        let n = NormalIdentity {
            issuer: id.issuer.clone(),
            issuer_reg_exp: id.issuer_reg_exp.clone(),
            subject: id.subject.clone(),
            subject_reg_exp: id.subject_reg_exp.clone(),
        };
        if let Err(e) = n.compile() {
            return unsupported(&format!("keyless.identities[{i}]: {e}"));
        }
        identities.push(n);
    }
    if identities.is_empty() {
        return Err("keyless.identities is empty".into());
    }
    Ok(Check::Keyless(KeylessCheck {
        identities,
        ca: k.roots.clone().map(KeyRef::Pem),
        rekor,
        rekor_keys,
        ignore_sct: ctlog.is_some_and(|l| l.insecure_ignore_sct),
        attestations: Vec::new(),
    }))
}
