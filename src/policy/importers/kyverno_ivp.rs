//! Kyverno `policies.kyverno.io` ImageValidatingPolicy and NamespacedImageValidatingPolicy
//! (v1alpha1, v1beta1, v1: the same schema).
//!
//! One object becomes one policy with one CEL authority ([`CelCheck`]): its attestors
//! become the checks signet already performs (cosign keys, keyless identities, pinned
//! certificates with their chains, notary certificates; Kyverno's cosign defaults kept: a
//! Rekor entry unless `ctlog.insecureIgnoreTlog`, an SCT for keyless and for a certificate
//! with a chain unless `ctlog.insecureIgnoreSCT`), its validations are evaluated on the node by
//! [`crate::evaluate::cel`] where [`crate::policy::cel`] can prove the per-container result
//! is not looser than Kyverno's. `matchImageReferences` globs are wildcards (`*` crosses
//! `/`, as gobwas/glob without separators), expressions are evaluated on the image.
//! `validationActions` without `Deny` is warn mode.
//!
//! Admission filters the node cannot see are widened, never narrowed: `namespaceSelector`
//! narrows by its `kubernetes.io/metadata.name` requirements (the namespace name is always
//! known) and by the namespace's labels where the cluster sync knows them; with the labels
//! unknown the selector selects ([`crate::policy::labels`]). Where the policy's object is
//! the pod (its `resourceRules` name pods, or none are given), `objectSelector` selects by
//! the pod's labels as NRI carries them; otherwise it, `resourceRules` and
//! `excludeResourceRules` are not applied. Failures are always failures
//! (`failurePolicy: Ignore` admits on errors in Kyverno; not on the node).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::{parse_spec, split_pem_keys, Imported, Meta};
use crate::policy::labels::{self, Operator, NAME_LABEL};
use crate::policy::model::{Mode, Namespaces};
use crate::policy::normal::{CelAttestation, CelCheck, CelValidation, NamedExpression};
use crate::policy::normal::{
    CertificateCheck, Check, KeyCheck, KeyRef, KeylessCheck, NormalAuthority, NormalIdentity, NormalPolicy,
    NormalRequirement, NotaryCheck, Pattern, SecretName,
};
use crate::tuf::{TufRepo, TufRoot};

const PUBLIC_REKOR: &str = "https://rekor.sigstore.dev";
/// Kyverno reads `credentials.secrets` from its own namespace.
const KYVERNO_NAMESPACE: &str = "kyverno";

/// What is wrong with one part of an ImageValidatingPolicy.
#[derive(Debug, thiserror::Error)]
enum IvpError {
    #[error("{0:?} is not one of Deny, Audit, Warn")]
    Action(String),
    #[error("spec.matchConstraints.namespaceSelector: {0}")]
    NamespaceSelector(#[source] labels::LabelError),
    #[error("spec.matchConstraints.objectSelector: {0}")]
    ObjectSelector(#[source] labels::LabelError),
    #[error("exactly one of cosign or notary")]
    Engine,
    #[error("cosign needs exactly one of key, keyless or certificate")]
    CosignKind,
    #[error("key needs exactly one of data, kms or expression")]
    KeyKind,
    #[error("key.data: {0}")]
    KeyData(String),
    #[error("{0}")]
    Key(String),
    #[error("key.data holds {0} keys; Kyverno reads one")]
    KeyCount(usize),
    #[error("keyless.identities is empty")]
    NoIdentities,
    #[error("notary.certs is missing: a notary attestor needs the certificates it trusts")]
    NotaryCerts,
    #[error("notary.{0} needs exactly one of value or expression")]
    NotaryValue(&'static str),
    #[error("certificate.{0} needs exactly one of value or expression")]
    CertificateValue(&'static str),
    #[error("cosign.trustedRoot needs exactly one of value or expression")]
    TrustedRootValue,
    #[error("certificate needs cert, certChain or both")]
    NoCertificate,
    #[error("cosign.tuf: {0}")]
    Tuf(crate::tuf::TufError),
}

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
    api_groups: Vec<String>,
    #[serde(default)]
    api_versions: Vec<String>,
    #[serde(default)]
    resources: Vec<String>,
}

impl ResourceRule {
    /// Does it cover core `v1` pods? (`apps`' `*` are Deployments and the like, whose own
    /// labels are not the pods'.)
    fn covers_pods(&self) -> bool {
        let has = |list: &[String], want: &str| list.iter().any(|x| x == want || x == "*");
        has(&self.api_groups, "") && has(&self.api_versions, "v1") && has(&self.resources, "pods")
    }
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
    notary: Option<Notary>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Notary {
    #[serde(default)]
    certs: Option<StringOrExpression>,
    #[serde(default)]
    tsa_certs: Option<StringOrExpression>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StringOrExpression {
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    expression: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Cosign {
    #[serde(default)]
    key: Option<Key>,
    #[serde(default)]
    keyless: Option<Keyless>,
    #[serde(default)]
    certificate: Option<Certificate>,
    #[serde(default)]
    ctlog: Option<Ctlog>,
    #[serde(default)]
    tuf: Option<Tuf>,
    #[serde(default)]
    trusted_root: Option<StringOrExpression>,
    #[serde(default)]
    source: Option<Source>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// `cosign.tuf`: the TUF repository Kyverno's sigstore-go client reads `trusted_root.json`
/// from, entered through `root` (`path` first, as Kyverno reads them).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Tuf {
    #[serde(default)]
    mirror: Option<String>,
    #[serde(default)]
    root: Option<TufRootSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TufRootSpec {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    data: Option<String>,
}

/// `cosign.certificate`: Kyverno's JSON names are `cert` and `certChain`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Certificate {
    #[serde(default)]
    cert: Option<StringOrExpression>,
    #[serde(default)]
    cert_chain: Option<StringOrExpression>,
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
    let (mut object_is_pod, mut pod_selector) = (true, None);
    if let Some(mc) = &spec.match_constraints {
        if let Some(sel) = &mc.namespace_selector {
            match namespace_selector(sel, &mut notes) {
                Ok(Some(ns)) => namespaces = ns,
                Ok(None) => selects_none = true,
                Err(e) => errors.push(e.to_string()),
            }
        }
        if !mc.exclude_resource_rules.is_empty() {
            notes.push("spec.matchConstraints.excludeResourceRules are not applied on the node".into());
        }
        let pods = mc.resource_rules.iter().any(ResourceRule::covers_pods);
        if !mc.resource_rules.is_empty() && !pods {
            object_is_pod = false;
            notes.push(
                "spec.matchConstraints.resourceRules do not name pods: the node checks pods' containers anyway".into(),
            );
        }
        if let Some(sel) =
            mc.object_selector.as_ref().filter(|s| !s.match_labels.is_empty() || !s.match_expressions.is_empty())
        {
            // Kyverno selects the object by its own labels; only a pod's are known here.
            if object_is_pod {
                match label_selector(sel) {
                    Ok(sel) => pod_selector = Some(sel),
                    Err(e) => errors.push(IvpError::ObjectSelector(e).to_string()),
                }
            } else {
                notes.push(
                    "spec.matchConstraints.objectSelector selects by the labels of an object that is not the pod: \
                     not applied on the node, every pod is checked"
                        .into(),
                );
            }
        }
        let _ = &mc.match_policy;
    }
    if let Some(ns) = &own_namespace {
        if (!namespaces.include.is_empty() && !namespaces.include.contains(ns)) || namespaces.exclude.contains(ns) {
            selects_none = true;
        }
        namespaces.include = vec![ns.clone()];
        namespaces.exclude.clear();
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
        object_is_pod,
        object_selector: pod_selector,
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

fn mode_of(actions: &[String]) -> Result<Mode, IvpError> {
    for a in actions {
        if !matches!(a.as_str(), "Deny" | "Audit" | "Warn") {
            return Err(IvpError::Action(a.clone()));
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

/// The namespaces a selector covers: narrowed by name where it names them (the name is
/// always known), and the whole selector kept for the namespace's labels (unknown labels
/// select). `Ok(None)` when it selects no namespace at all.
/// A selector of the policy, validated as the API server validates it.
fn label_selector(sel: &LabelSelector) -> Result<labels::LabelSelector, labels::LabelError> {
    let expressions: Vec<(String, String, Vec<String>)> =
        sel.match_expressions.iter().map(|r| (r.key.clone(), r.operator.clone(), r.values.clone())).collect();
    labels::LabelSelector::parse(&sel.match_labels, &expressions)
}

fn namespace_selector(sel: &LabelSelector, notes: &mut Vec<String>) -> Result<Option<Namespaces>, IvpError> {
    let selector = label_selector(sel).map_err(IvpError::NamespaceSelector)?;
    let mut include: Option<Vec<String>> = None;
    let mut exclude = Vec::new();
    let mut by_labels = false;
    let mut narrow = |names: Vec<String>| {
        include = Some(match include.take() {
            None => names,
            Some(prev) => prev.into_iter().filter(|n| names.contains(n)).collect(),
        });
    };
    for (k, v) in &selector.match_labels {
        if k == NAME_LABEL {
            narrow(vec![v.clone()]);
        } else {
            by_labels = true;
        }
    }
    for r in &selector.match_expressions {
        match (r.key == NAME_LABEL, r.operator) {
            (true, Operator::In) => narrow(r.values.clone()),
            (true, Operator::NotIn) => exclude.extend(r.values.iter().cloned()),
            (true, Operator::Exists) => {}
            (true, Operator::DoesNotExist) => return Ok(None),
            (false, _) => by_labels = true,
        }
    }
    if by_labels {
        notes.push(
            "spec.matchConstraints.namespaceSelector: namespace labels come from the cluster; where they are \
             not known (local files, a namespace not seen yet) the policy applies"
                .into(),
        );
    }
    Ok(match include {
        Some(names) if names.is_empty() => None,
        include => Some(Namespaces {
            include: include.unwrap_or_default(),
            exclude,
            selector: by_labels.then_some(selector),
            any: Vec::new(),
            all: Vec::new(),
        }),
    })
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
fn attestor(a: &Attestor, notes: &mut Vec<String>) -> Result<Check, IvpError> {
    let unsupported = |why: &str| Ok(Check::Unsupported(why.to_string()));
    let c = match (&a.cosign, &a.notary) {
        (Some(c), None) => c,
        (None, Some(n)) => return notary(n),
        _ => return Err(IvpError::Engine),
    };
    let set = [c.key.is_some(), c.keyless.is_some(), c.certificate.is_some()];
    if set.iter().filter(|b| **b).count() != 1 {
        return Err(IvpError::CosignKind);
    }
    if !c.annotations.is_empty() {
        return unsupported("required signature annotations are not checked on the node");
    }
    // `tuf`: Kyverno reads no Sigstore infrastructure for a key or certificate with the log
    // ignored (skipSigstoreInfra), so the repository is not used there either.
    let ignore_tlog = c.ctlog.as_ref().is_some_and(|l| l.insecure_ignore_tlog);
    let tuf = match &c.tuf {
        Some(_) if c.keyless.is_none() && ignore_tlog => {
            notes.push(format!(
                "attestor {}: tuf is not used: a key or certificate with the log ignored needs no Sigstore trust root",
                a.name
            ));
            None
        }
        Some(t) => {
            let root = t.root.as_ref();
            let root =
                match (root.and_then(|r| r.path.clone()), root.and_then(|r| r.data.clone())) {
                    (Some(p), _) if !p.is_empty() => TufRoot::Path(p),
                    (_, Some(d)) if !d.is_empty() => TufRoot::Data(d),
                    _ => return unsupported(
                        "tuf without root.data or root.path: the public-good Sigstore TUF root is not built into the \
                         node",
                    ),
                };
            Some(TufRepo::new(t.mirror.as_deref(), root).map_err(IvpError::Tuf)?)
        }
        None => None,
    };
    // `trustedRoot`: a trusted_root.json inline (Kyverno then verifies with it instead of the
    // TUF one); an expression only when it is a string literal.
    let trusted_root = match &c.trusted_root {
        None => None,
        Some(t) => match (&t.value, &t.expression) {
            (Some(v), None) => Some(v.clone()),
            (None, Some(e)) => match crate::policy::cel::string_literal(e) {
                Some(v) => Some(v),
                None => {
                    return unsupported(
                        "cosign.trustedRoot.expression is not a string literal and is not evaluated on the node",
                    )
                }
            },
            _ => return Err(IvpError::TrustedRootValue),
        },
    }
    .filter(|t| !t.trim().is_empty());
    if tuf.is_some() && trusted_root.is_some() {
        notes.push(format!(
            "attestor {}: tuf is not used: its inline trustedRoot replaces the TUF one, as in Kyverno",
            a.name
        ));
    }
    let (mut repository, mut tag_prefix) = (None, None);
    if let Some(s) = &c.source {
        repository = s.repository.clone().filter(|r| !r.is_empty());
        tag_prefix = s.tag_prefix.clone().filter(|p| !p.is_empty());
        if !s.pull_secrets.is_empty() {
            notes.push(format!("attestor {}: source.PullSecrets are not used on the node", a.name));
        }
    }
    if c.ctlog.as_ref().is_some_and(|l| l.ct_log_pub_key.is_some()) {
        notes.push(format!(
            "attestor {}: ctlog.ctLogPubKey is not used: cosign checks an embedded SCT against the trusted root \
             Kyverno hands it, and the node against its trust root's CT logs",
            a.name
        ));
    }
    // `source.repository`: signatures and attestations are read from there.
    attestor_check(c).map(|check| {
        let check = match &repository {
            Some(repo) => check.from_repository(repo),
            None => check,
        };
        // `source.tagPrefix`: the `.sig`/`.att` tags carry it (cosign's WithPrefix).
        let check = match &tag_prefix {
            Some(prefix) => check.with_tag_prefix(prefix),
            None => check,
        };
        // An inline trustedRoot wins (Kyverno's resolveTrustedMaterial): the repository is
        // then not fetched at all.
        let check = match tuf {
            Some(repo) if trusted_root.is_none() => check.with_tuf(repo),
            _ => check,
        };
        match trusted_root {
            Some(json) => check.with_trusted_root(json),
            None => check,
        }
    })
}

/// The check of a cosign attestor, reading signatures from the image's repository.
fn attestor_check(c: &Cosign) -> Result<Check, IvpError> {
    let unsupported = |why: &str| Ok(Check::Unsupported(why.to_string()));
    let ctlog = c.ctlog.as_ref();
    // Kyverno then has cosign verify RFC 3161 timestamps against it (`UseSignedTimestamps`).
    let tsa_cert_chain = ctlog.and_then(|l| l.tsa_cert_chain.clone()).filter(|t| !t.trim().is_empty());
    let (rekor, rekor_keys) = match ctlog {
        Some(l) if l.insecure_ignore_tlog => (None, Vec::new()),
        Some(l) => (
            Some(l.url.clone().unwrap_or_else(|| PUBLIC_REKOR.into())),
            l.rekor_pub_key.iter().cloned().collect::<Vec<_>>(),
        ),
        None => (Some(PUBLIC_REKOR.to_string()), Vec::new()),
    };
    if let Some(k) = &c.key {
        use crate::verify::pubkey::{HashAlgorithm, HashAlgorithmError};
        // Kyverno looks the name up for both PEM and KMS keys (sha224 to sha512, empty for sha256).
        let hash_algorithm = match k.hash_algorithm.as_deref().filter(|h| !h.is_empty()) {
            None => None,
            Some(h) => match HashAlgorithm::parse(h, "key.hashAlgorithm") {
                Ok(h) => Some(h),
                Err(e @ HashAlgorithmError::Unsupported { .. }) => return unsupported(&e.to_string()),
                Err(e) => return Err(IvpError::Key(e.to_string())),
            },
        };
        let set = [k.data.is_some(), k.kms.is_some(), k.expression.is_some()];
        if set.iter().filter(|b| **b).count() != 1 {
            return Err(IvpError::KeyKind);
        }
        if let Some(kms) = &k.kms {
            // The key the KMS holds, resolved as for other policies' KMS keys.
            let key = crate::policy::normal::KmsKey::parse(kms, "key.kms").map_err(|e| IvpError::Key(e.to_string()))?;
            let mut check = KeyCheck::new(KeyRef::Kms(key), rekor);
            check.rekor_keys = rekor_keys;
            check.tsa_cert_chain = tsa_cert_chain;
            check.hash_algorithm = hash_algorithm;
            return Ok(Check::Key(check));
        }
        if k.expression.is_some() {
            return unsupported("a key given by a CEL expression is not evaluated on the node");
        }
        let pems =
            split_pem_keys(k.data.as_deref().unwrap_or_default()).map_err(|e| IvpError::KeyData(e.to_string()))?;
        if pems.len() != 1 {
            return Err(IvpError::KeyCount(pems.len()));
        }
        let mut check = KeyCheck::new(KeyRef::Pem(pems[0].clone()), rekor);
        check.rekor_keys = rekor_keys;
        check.tsa_cert_chain = tsa_cert_chain;
        check.hash_algorithm = hash_algorithm;
        return Ok(Check::Key(check));
    }
    if let Some(cert) = &c.certificate {
        let ignore_sct = ctlog.is_some_and(|l| l.insecure_ignore_sct);
        return certificate(cert, rekor, rekor_keys, ignore_sct, ct_log_keys(ctlog), tsa_cert_chain);
    }
    let k = c.keyless.as_ref().expect("counted above");
    // Kyverno's own IVP verifier does not read additionalExtensions; the node checks them as
    // Kyverno's ClusterPolicy does (each a wildcard over the named Fulcio extension), since a
    // policy naming them means them. Only refusing more than Kyverno.
    let mut extensions = BTreeMap::new();
    for (key, value) in &k.additional_extensions {
        let (Some((oid, _)), Value::String(value)) =
            (crate::verify::keyless::FULCIO_V1_EXTENSIONS.iter().find(|(oid, name)| key == oid || key == name), value)
        else {
            return unsupported(&format!(
                "keyless.additionalExtensions: {key:?} is not a certificate extension with a string value the node checks"
            ));
        };
        if extensions.insert(oid.to_string(), super::kyverno::wildcard_regex(value)).is_some() {
            return unsupported(&format!("keyless.additionalExtensions names {oid} twice (by name and by OID)"));
        }
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
            extensions: extensions.clone(),
        };
        if let Err(e) = n.compile() {
            return unsupported(&format!("keyless.identities[{i}]: {e}"));
        }
        identities.push(n);
    }
    if identities.is_empty() {
        return Err(IvpError::NoIdentities);
    }
    Ok(Check::Keyless(KeylessCheck {
        tag_prefix: None,
        tuf: None,
        conditions: Vec::new(),
        identities,
        ca: k.roots.clone().map(KeyRef::Pem),
        rekor,
        rekor_keys,
        ignore_sct: ctlog.is_some_and(|l| l.insecure_ignore_sct),
        ct_log_keys: ct_log_keys(ctlog),
        attestations: Vec::new(),
        // Kyverno's bundle detection: with the log ignored and no TSA chain of its own, a
        // keyless attestor verifies a sigstore bundle by its signed timestamp, under the
        // trusted root's timestamp authorities (`shouldUseSignedTimestamps`).
        trust_root_timestamps: tsa_cert_chain.is_none() && ctlog.is_some_and(|l| l.insecure_ignore_tlog),
        tsa_cert_chain,
        repository: None,
        trusted_root: None,
    }))
}

/// `ctlog.ctLogPubKey` is handed to cosign as `CTLogPubKeys`, but Kyverno also hands it the
/// trusted root, and cosign then checks an embedded SCT against the trusted root's CT logs
/// and never reads the key: so does the node (its trust root's CT logs; none from the policy).
fn ct_log_keys(_: Option<&Ctlog>) -> Vec<String> {
    Vec::new()
}

/// A `cosign.certificate` attestor, as Kyverno hands it to cosign: with `cert`, signatures
/// verify under its key (and, with `certChain`, it must chain to the chain's root, with an
/// SCT unless `ctlog.insecureIgnoreSCT`); with `certChain` alone, the signature's own
/// certificate must chain to those roots, any holder.
fn certificate(
    c: &Certificate,
    rekor: Option<String>,
    rekor_keys: Vec<String>,
    ignore_sct: bool,
    ct_log_keys: Vec<String>,
    tsa_cert_chain: Option<String>,
) -> Result<Check, IvpError> {
    let (leaf, chain) =
        match (Given::of("cert", &c.cert)?, Given::of("certChain", &c.cert_chain)?) {
            (Given::NotLiteral, _) | (_, Given::NotLiteral) => return Ok(Check::Unsupported(
                "a certificate.cert or certChain expression is not a string literal and is not evaluated on the node"
                    .into(),
            )),
            (leaf, chain) => (leaf.text(), chain.text()),
        };
    Ok(match (leaf, chain) {
        (None, None) => return Err(IvpError::NoCertificate),
        (Some(leaf), chain) => Check::Certificate(CertificateCheck {
            tag_prefix: None,
            tuf: None,
            conditions: Vec::new(),
            certificate: super::certificate_text(&leaf),
            // Kyverno gives cosign its Sigstore trusted root unless the log is ignored, and
            // cosign checks a certificate against that rather than the chain.
            trust_root_cas: chain.is_some() && rekor.is_some(),
            chain,
            rekor,
            rekor_keys,
            ignore_sct,
            ct_log_keys: ct_log_keys.clone(),
            attestations: Vec::new(),
            tsa_cert_chain: tsa_cert_chain.clone(),
            hash_algorithm: None,
            repository: None,
            trusted_root: None,
        }),
        // The chain alone is cosign's roots: the signature's own certificate must chain to
        // them, whoever it names.
        (None, Some(chain)) => Check::Keyless(KeylessCheck {
            tag_prefix: None,
            tuf: None,
            conditions: Vec::new(),
            identities: Vec::new(),
            ca: Some(KeyRef::Pem(chain)),
            rekor,
            rekor_keys,
            ignore_sct,
            ct_log_keys: ct_log_keys.clone(),
            attestations: Vec::new(),
            tsa_cert_chain: tsa_cert_chain.clone(),
            repository: None,
            trust_root_timestamps: false,
            trusted_root: None,
        }),
    })
}

/// A `{value | expression}` field as the node can read it.
enum Given {
    Absent,
    Text(String),
    /// An expression that is not a string literal.
    NotLiteral,
}

impl Given {
    fn of(field: &'static str, v: &Option<StringOrExpression>) -> Result<Self, IvpError> {
        let Some(v) = v else { return Ok(Given::Absent) };
        let text = match (&v.value, &v.expression) {
            (Some(t), None) => t.clone(),
            (None, Some(e)) => match crate::policy::cel::string_literal(e) {
                Some(t) => t,
                None => return Ok(Given::NotLiteral),
            },
            _ => return Err(IvpError::CertificateValue(field)),
        };
        // Kyverno treats an empty value as an absent one.
        Ok(if text.trim().is_empty() { Given::Absent } else { Given::Text(text) })
    }

    fn text(self) -> Option<String> {
        match self {
            Given::Text(t) => Some(t),
            _ => None,
        }
    }
}

/// A notary attestor: its certificates, and its TSA certificates when given, inline (`value`,
/// or an expression that is only a string literal). Kyverno puts `tsaCerts` in the trust
/// policy as a `tsa` store, so notation then requires each signature's timestamp
/// countersignature and checks the signing chain at the time it proves.
fn notary(n: &Notary) -> Result<Check, IvpError> {
    let literal = |v: &StringOrExpression, field: &'static str| match (&v.value, &v.expression) {
        (Some(v), None) => Ok(Ok(v.clone())),
        (None, Some(e)) => Ok(crate::policy::cel::string_literal(e).ok_or_else(|| {
            Check::Unsupported(format!(
                "notary.{field}.expression is not a string literal and is not evaluated on the node"
            ))
        })),
        _ => Err(IvpError::NotaryValue(field)),
    };
    let pem = match literal(n.certs.as_ref().ok_or(IvpError::NotaryCerts)?, "certs")? {
        Ok(pem) => pem,
        Err(unsupported) => return Ok(unsupported),
    };
    let tsa_certs = match n.tsa_certs.as_ref().map(|t| literal(t, "tsaCerts")).transpose()? {
        None => None,
        Some(Ok(pem)) => Some(pem).filter(|p| !p.trim().is_empty()),
        Some(Err(unsupported)) => return Ok(unsupported),
    };
    Ok(Check::Notary(NotaryCheck {
        certs: KeyRef::Pem(pem),
        tsa_certs,
        attestations: Vec::new(),
        conditions: Vec::new(),
    }))
}

/// Kyverno's semantics end to end: import, compile, match, evaluate against real
/// signatures and attestations.
#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use base64::Engine;
    use serde_json::json;

    use crate::evaluate::{evaluate, Evaluation, Evidence};
    use crate::policy::compile::{compile, FilesOnly};
    use crate::policy::file::parse_documents;
    use crate::policy::normal::{Check, KeyRef, NormalPolicy, NotaryCheck};
    use crate::policy::{NoMatchAction, PolicySet};
    use crate::registry::{Form, SignatureLayer, Signatures};
    use crate::testutil::TestSigner;
    use crate::verify::dsse::IN_TOTO_PAYLOAD_TYPE;
    use crate::verify::signer::Attached;
    use crate::verify::trust::TrustRoot;
    use crate::verify::Context;

    const D: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    /// The first document of `yaml`, imported.
    fn import_first(yaml: &str) -> Result<super::Imported, Vec<String>> {
        super::super::import(&parse_documents(Path::new("t.yaml"), yaml).unwrap()[0])
    }

    fn set(yaml: &str) -> (Arc<PolicySet>, Vec<String>) {
        let mut policies = Vec::new();
        let mut warnings = Vec::new();
        for doc in parse_documents(Path::new("t.yaml"), yaml).unwrap() {
            for p in super::super::import(&doc).unwrap().policies {
                let c = compile(&p, &FilesOnly(Path::new("/"))).unwrap();
                warnings.extend(c.warnings);
                policies.push(c.policy);
            }
        }
        (PolicySet::assemble(policies, NoMatchAction::Deny), warnings)
    }

    fn indent(text: &str, n: usize) -> String {
        text.lines().map(|l| format!("{}{l}\n", " ".repeat(n))).collect()
    }

    /// An IVP with one cosign key attestor (no log), `extra` spliced into the spec.
    fn key_policy(k: &TestSigner, extra: &str, validations: &str) -> String {
        format!(
            "apiVersion: policies.kyverno.io/v1\nkind: ImageValidatingPolicy\nmetadata: {{name: p}}\nspec:\n  \
             matchImageReferences: [{{glob: \"reg.io/*\"}}]\n{extra}  attestors:\n  - name: cosign\n    cosign:\n      \
             ctlog: {{insecureIgnoreTlog: true}}\n      key:\n        data: |\n{}  attestations:\n  - name: sbom\n    \
             intoto: {{type: https://cyclonedx.org/bom}}\n  validations:\n{validations}",
            indent(&k.public_pem(), 10)
        )
    }

    const SIGNED: &str = "  - expression: images.containers.map(image, verifyImageSignatures(image, [attestors.cosign])).all(e, e > 0)\n    message: failed the image signature verification\n";

    fn evidence(image: &str, signatures: Vec<SignatureLayer>, attestations: Vec<SignatureLayer>) -> Evidence {
        Evidence {
            reference: image.to_string(),
            signatures: Some(Ok(Signatures { location: "test.sig".into(), layers: signatures })),
            attestations: Some(Ok(Signatures { location: "test.att".into(), layers: attestations })),
            ..Default::default()
        }
    }

    fn eval_with(s: &PolicySet, ev: &Evidence, digest: &str, trust: &TrustRoot) -> Evaluation {
        let repo = ev.reference.split('@').next().unwrap().rsplit_once(':').map_or(ev.reference.as_str(), |(r, _)| r);
        let matched = s.matching(&ev.reference, repo, None);
        assert!(!matched.is_empty(), "no policy matches {}", ev.reference);
        evaluate(&matched, ev, digest, Context { trust, now: Context::now_secs() })
    }

    fn eval(s: &PolicySet, ev: &Evidence) -> Evaluation {
        eval_with(s, ev, D, &TrustRoot::empty())
    }

    fn signed_by(signers: &[&TestSigner]) -> Vec<SignatureLayer> {
        signers.iter().map(|s| s.sign_digest("reg.io/app", D)).collect()
    }

    /// A DSSE envelope with an in-toto statement about `digest`, signed by `signer`.
    fn attestation(
        signer: &TestSigner,
        digest: &str,
        predicate_type: &str,
        predicate: serde_json::Value,
    ) -> SignatureLayer {
        let (_, hex) = digest.split_once(':').unwrap();
        let statement = json!({
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": predicate_type,
            "subject": [{"name": "reg.io/app", "digest": {"sha256": hex}}],
            "predicate": predicate,
        })
        .to_string();
        let pae =
            format!("DSSEv1 {} {IN_TOTO_PAYLOAD_TYPE} {} {statement}", IN_TOTO_PAYLOAD_TYPE.len(), statement.len());
        let sig = signer.sign_raw(pae.as_bytes()).signature;
        let b64 = base64::engine::general_purpose::STANDARD.encode(statement.as_bytes());
        let envelope = json!({"payloadType": IN_TOTO_PAYLOAD_TYPE, "payload": b64, "signatures": [{"sig": sig}]});
        SignatureLayer { payload: envelope.to_string().into_bytes(), form: Form::Envelope, ..Default::default() }
    }

    use crate::testutil::vectors::{notation, notation_digest, notation_signing_time_plus_a_minute};

    /// An IVP with one notary attestor trusting `cert` (as `certs:` YAML), and Kyverno's
    /// own validation over it.
    fn notary_policy(certs: &str, extra: &str) -> String {
        format!(
            "apiVersion: policies.kyverno.io/v1\nkind: ImageValidatingPolicy\nmetadata: {{name: n}}\nspec:\n  \
             matchImageReferences: [{{glob: \"reg.io/*\"}}]\n  attestors:\n  - name: notary\n    notary:\n{certs}{extra}  \
             validations:\n  - expression: images.containers.map(image, verifyImageSignatures(image, \
             [attestors.notary])).all(e, e > 0)\n    message: failed to verify image with notary cert\n"
        )
    }

    fn inline_certs(name: &str) -> String {
        format!("      certs:\n        value: |\n{}", indent(&notation(name), 10))
    }

    /// Evidence holding these notation envelopes among the image's referrers.
    fn notary_evidence(envelopes: &[&str]) -> Evidence {
        let layers = envelopes
            .iter()
            .map(|e| SignatureLayer { payload: notation(e).into_bytes(), form: Form::Notary, ..Default::default() })
            .collect();
        Evidence {
            reference: "reg.io/app:1".into(),
            notary: Some(Ok(Signatures { location: "reg.io/app:sha256-x".into(), layers })),
            ..Default::default()
        }
    }

    fn eval_notary(s: &PolicySet, ev: &Evidence) -> Evaluation {
        let matched = s.matching(&ev.reference, "reg.io/app", None);
        assert_eq!(matched.len(), 1);
        let trust = TrustRoot::empty();
        evaluate(
            &matched,
            ev,
            &notation_digest("image"),
            Context { trust: &trust, now: notation_signing_time_plus_a_minute() },
        )
    }

    /// Regression (#19): a notary attestor imported to "Notary signatures are not verified
    /// on the node"; it now imports to a notary check and verifies real notation signatures.
    #[test]
    fn a_notary_attestor_imports_to_a_notary_check() {
        let doc = notary_policy(&inline_certs("trusted.crt"), "");
        let imported = import_first(&doc).unwrap();
        let Check::Cel(c) = &imported.policies[0].requirements[0].authorities[0].check else { panic!() };
        let Check::Notary(n) = &c.attestors[0].check else { panic!("{:?}", c.attestors[0].check) };
        assert_eq!(n.certs, KeyRef::Pem(notation("trusted.crt")));
        let (_, warnings) = set(&doc);
        assert!(warnings.is_empty(), "nothing fails closed: {warnings:?}");
    }

    #[test]
    fn a_notary_attestor_admits_a_real_notation_signature_and_refuses_the_rest() {
        let (s, _) = set(&notary_policy(&inline_certs("trusted.crt"), ""));
        let e = eval_notary(&s, &notary_evidence(&["good.jws"]));
        assert!(e.allowed, "{e:?}");
        // Among others that do not verify, the good one still counts.
        assert!(eval_notary(&s, &notary_evidence(&["untrusted.jws", "other-digest.jws", "good.jws"])).allowed);
        let refused = |envelopes: &[&str], why: &str| {
            let e = eval_notary(&s, &notary_evidence(envelopes));
            assert!(!e.allowed, "{envelopes:?} admitted");
            assert!(e.failures[0].contains(why), "{envelopes:?}: {e:?}");
        };
        refused(&["untrusted.jws"], "notary signing certificate is not trusted");
        refused(&["other-digest.jws"], &format!("is for {}, not for the image", notation_digest("other-image")));
        refused(&[], "no notation signatures found at reg.io/app:sha256-x");
        // The other image's payload under the good envelope's signature.
        let mut forged: serde_json::Value = serde_json::from_str(&notation("good.jws")).unwrap();
        let other: serde_json::Value = serde_json::from_str(&notation("other-digest.jws")).unwrap();
        forged["payload"] = other["payload"].clone();
        let mut ev = notary_evidence(&[]);
        ev.notary.as_mut().unwrap().as_mut().unwrap().layers =
            vec![SignatureLayer { payload: forged.to_string().into_bytes(), form: Form::Notary, ..Default::default() }];
        let e = eval_notary(&s, &ev);
        assert!(!e.allowed && e.failures[0].contains("does not verify with its signing certificate"), "{e:?}");
        // Cosign signatures are no notation signatures, whoever made them.
        let k = TestSigner::new(1);
        let cosign_only = Evidence {
            signatures: Some(Ok(Signatures { location: "test.sig".into(), layers: signed_by(&[&k]) })),
            ..notary_evidence(&[])
        };
        assert!(!eval_notary(&s, &cosign_only).allowed);
        // A registry error stays one: never "unsigned".
        let ev = Evidence {
            notary: Some(Err(crate::registry::RegistryError::Request {
                location: "reg.io/app:sha256-x".into(),
                message: "connection refused".into(),
            })),
            ..notary_evidence(&[])
        };
        let e = eval_notary(&s, &ev);
        assert!(!e.allowed && e.failures[0].contains("connection refused"), "{e:?}");
        assert!(!e.failures[0].contains("no notation signatures"), "{e:?}");
        // The policy trusting the other certificate admits that signer, not this one.
        let (other, _) = set(&notary_policy(&inline_certs("other.crt"), ""));
        assert!(eval_notary(&other, &notary_evidence(&["untrusted.jws"])).allowed);
        assert!(!eval_notary(&other, &notary_evidence(&["good.jws"])).allowed);
    }

    #[test]
    fn notary_fetches_only_what_the_attestors_need() {
        let (s, _) = set(&notary_policy(&inline_certs("trusted.crt"), ""));
        let matched = s.matching("reg.io/app:1", "reg.io/app", None);
        let needs = crate::evaluate::needs(&matched);
        assert!(needs.notary && !needs.signatures && !needs.attestations, "{needs:?}");
    }

    #[test]
    fn notary_certs_and_timestamps() {
        let doc = |certs: &str, extra: &str| {
            let doc = notary_policy(certs, extra);
            import_first(&doc)
        };
        let attestor = |i: &crate::policy::importers::Imported| {
            let Check::Cel(c) = &i.policies[0].requirements[0].authorities[0].check else { panic!() };
            c.attestors[0].check.clone()
        };
        // tsaCerts: the node's tsa store, under which a signature needs a countersignature.
        let tsa = format!("      tsaCerts:\n        value: |\n{}", indent(&notation("tsa-root.crt"), 10));
        let i = doc(&inline_certs("timestamped.crt"), &tsa).unwrap();
        assert!(
            matches!(attestor(&i), Check::Notary(n) if n.tsa_certs.as_deref() == Some(notation("tsa-root.crt").as_str()))
        );
        let compiled = compile(&i.policies[0], &FilesOnly(Path::new("/"))).unwrap().policy;
        let digest = notation("digests").lines().find_map(|l| l.strip_prefix("image ")).unwrap().to_string();
        let layer = |name: &str| SignatureLayer {
            payload: std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/notation").join(name)).unwrap(),
            form: Form::Notary,
            ..Default::default()
        };
        let ev = |name: &str| Evidence {
            reference: "registry.example/team/app:v1".into(),
            notary: Some(Ok(Signatures { location: "l".into(), layers: vec![layer(name)] })),
            ..Default::default()
        };
        // Long after the one-day test certificate expired: only the timestamp makes it valid.
        let later = {
            use x509_cert::der::DecodePem;
            let c = x509_cert::Certificate::from_pem(notation("timestamped.crt")).unwrap();
            c.tbs_certificate().validity().not_after.to_unix_duration().as_secs() as i64 + 86_400
        };
        let trust = TrustRoot::empty();
        let cx = Context { trust: &trust, now: later };
        assert!(crate::evaluate::evaluate(&[&compiled], &ev("timestamped.jws"), &digest, cx).allowed);
        assert!(crate::evaluate::evaluate(&[&compiled], &ev("timestamped.cose"), &digest, cx).allowed);
        // Without tsaCerts the same signature is held to now, and refused.
        let i = doc(&inline_certs("timestamped.crt"), "").unwrap();
        let plain = compile(&i.policies[0], &FilesOnly(Path::new("/"))).unwrap().policy;
        assert!(!crate::evaluate::evaluate(&[&plain], &ev("timestamped.jws"), &digest, cx).allowed);
        // With tsaCerts a signature without a countersignature is refused, even while valid.
        let i = doc(&inline_certs("trusted.crt"), &tsa).unwrap();
        let stamped_policy = compile(&i.policies[0], &FilesOnly(Path::new("/"))).unwrap().policy;
        let cx_then = Context { trust: &trust, now: notation_signing_time_plus_a_minute() };
        let i = doc(&inline_certs("trusted.crt"), "").unwrap();
        let plain_trusted = compile(&i.policies[0], &FilesOnly(Path::new("/"))).unwrap().policy;
        assert!(crate::evaluate::evaluate(&[&plain_trusted], &ev("good.jws"), &digest, cx_then).allowed);
        assert!(!crate::evaluate::evaluate(&[&stamped_policy], &ev("good.jws"), &digest, cx_then).allowed);
        // An expression that is only a string literal is that string; any other is not evaluated.
        let pem = notation("trusted.crt");
        let literal =
            format!("      certs:\n        expression: {}\n", serde_json::to_string(&format!("{pem:?}")).unwrap());
        let i = doc(&literal, "").unwrap();
        assert_eq!(
            attestor(&i),
            Check::Notary(NotaryCheck {
                certs: KeyRef::Pem(pem),
                tsa_certs: None,
                attestations: Vec::new(),
                conditions: Vec::new(),
            })
        );
        let i = doc("      certs: {expression: variables.certs}\n", "").unwrap();
        assert!(matches!(attestor(&i), Check::Unsupported(why) if why.contains("not a string literal")));
        // No certificates, or both forms: the policy is refused, naming the field.
        let e = doc("      tsaCerts: {value: x}\n", "").unwrap_err();
        assert!(e.iter().any(|e| e.to_string().contains("notary.certs is missing")), "{e:?}");
        let e = doc("      certs: {value: x, expression: \"'x'\"}\n", "").unwrap_err();
        assert!(
            e.iter().any(|e| e.to_string().contains("notary.certs needs exactly one of value or expression")),
            "{e:?}"
        );
        // Certificates that are not certificates refuse the policy when it compiles.
        let i = doc("      certs: {value: not a certificate}\n", "").unwrap();
        assert!(compile(&i.policies[0], &FilesOnly(Path::new("/"))).is_err());
    }

    #[test]
    fn cosign_key_admits_the_signed_image_and_rejects_unsigned_or_foreign_signatures() {
        let k = TestSigner::new(1);
        let (s, warnings) = set(&key_policy(&k, "", SIGNED));
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(eval(&s, &evidence("reg.io/app:1", signed_by(&[&k]), vec![])).allowed);
        let unsigned = eval(&s, &evidence("reg.io/app:1", vec![], vec![]));
        assert!(!unsigned.allowed);
        assert!(
            unsigned.failures[0].contains("validations[0]: failed the image signature verification"),
            "{unsigned:?}"
        );
        let foreign = eval(&s, &evidence("reg.io/app:1", signed_by(&[&TestSigner::new(2)]), vec![]));
        assert!(!foreign.allowed);
        assert!(foreign.failures[0].contains("(attestor cosign: 1 signature(s)"), "says why: {foreign:?}");
        // Images the policy does not select are left to the node's no-match action.
        assert!(s.matching("quay.io/app:1", "quay.io/app", None).is_empty());
    }

    /// Kyverno reads a keyless attestor's bundles by their signed timestamp, under the trusted
    /// root's authorities, when the log is ignored and it has no TSA chain of its own.
    #[test]
    fn keyless_without_the_log_uses_the_trust_roots_timestamp_authorities() {
        let keyless = |ctlog: &str| {
            let yaml = format!(
                "apiVersion: policies.kyverno.io/v1\nkind: ImageValidatingPolicy\nmetadata: {{name: k}}\nspec:\n  \
                 matchImageReferences: [{{glob: \"registry.example/*\"}}]\n  attestors:\n  - name: ci\n    cosign:\n      \
                 ctlog: {ctlog}\n      keyless:\n        identities:\n        - {{issuer: i, subject: s}}\n  validations:\n  - \
                 expression: images.containers.map(i, verifyImageSignatures(i, [attestors.ci])).all(e, e > 0)\n"
            );
            let doc = &parse_documents(Path::new("t.yaml"), &yaml).unwrap()[0];
            let i = super::super::import(doc).unwrap();
            let Check::Cel(c) = &i.policies[0].requirements[0].authorities[0].check else { panic!() };
            match &c.attestors[0].check {
                Check::Keyless(k) => k.clone(),
                other => panic!("{other:?}"),
            }
        };
        assert!(keyless("{insecureIgnoreTlog: true}").trust_root_timestamps);
        assert!(!keyless("{insecureIgnoreTlog: false}").trust_root_timestamps);
        assert!(!keyless("{insecureIgnoreTlog: true, tsaCertChain: x}").trust_root_timestamps);
        // ctLogPubKey: cosign checks an embedded SCT against the trusted root Kyverno hands it,
        // never this key (review finding); the node keeps its trust root's CT logs too.
        assert!(keyless("{ctLogPubKey: x}").ct_log_keys.is_empty());
    }

    /// `source.repository`: the attestor's signatures (and attestations) are read from that
    /// repository, normalised; `source.tagPrefix`: under tags with that prefix (cosign's
    /// WithPrefix), there or in the image's own repository. Before, both failed closed.
    #[test]
    fn an_attestors_source_repository_is_where_its_signatures_are_read() {
        let k = TestSigner::new(1);
        let yaml = key_policy(&k, "", SIGNED).replace(
            "    cosign:\n      ctlog:",
            "    cosign:\n      source: {repository: sigs.example/team/signatures}\n      ctlog:",
        );
        let (s, _) = set(&yaml);
        let p = s.matching("reg.io/app:1", "reg.io/app", None);
        let needs = crate::evaluate::needs(&p);
        let repo = Attached { repository: Some("sigs.example/team/signatures".into()), ..Default::default() };
        assert_eq!(needs.elsewhere.get(&repo), Some(&(true, false)), "{needs:?}");
        assert!(!needs.signatures, "{needs:?}");
        // Signed in the signature repository: admitted; signed in the image's own only: refused.
        let mut there = evidence("reg.io/app:1", vec![], vec![]);
        there.elsewhere.insert(
            repo.clone(),
            crate::evaluate::Elsewhere {
                signatures: Some(Ok(Signatures { location: "sigs.sig".into(), layers: signed_by(&[&k]) })),
                attestations: Some(Ok(Signatures { location: "sigs.att".into(), layers: vec![] })),
            },
        );
        assert!(eval(&s, &there).allowed);
        assert!(!eval(&s, &evidence("reg.io/app:1", signed_by(&[&k]), vec![])).allowed);
        let prefixed = key_policy(&k, "", SIGNED)
            .replace("    cosign:\n      ctlog:", "    cosign:\n      source: {tagPrefix: v1-}\n      ctlog:");
        let (s, _) = set(&prefixed);
        let p = s.matching("reg.io/app:1", "reg.io/app", None);
        let at = Attached { repository: None, tag_prefix: "v1-".into() };
        assert_eq!(crate::evaluate::needs(&p).elsewhere.get(&at), Some(&(true, false)));
        let mut under = evidence("reg.io/app:1", vec![], vec![]);
        under.elsewhere.insert(
            at,
            crate::evaluate::Elsewhere {
                signatures: Some(Ok(Signatures { location: "v1-.sig".into(), layers: signed_by(&[&k]) })),
                attestations: None,
            },
        );
        assert!(eval(&s, &under).allowed);
        assert!(!eval(&s, &evidence("reg.io/app:1", signed_by(&[&k]), vec![])).allowed);
        // A prefix that cannot start a tag refuses the policy, naming it.
        let bad = prefixed.replace("tagPrefix: v1-", "tagPrefix: \"-x/\"");
        let doc = &parse_documents(Path::new("t.yaml"), &bad).unwrap()[0];
        let err = compile(&super::super::import(doc).unwrap().policies[0], &FilesOnly(Path::new("/"))).unwrap_err();
        assert!(err.iter().any(|e| e.to_string().contains("signature tag prefix \"-x/\"")), "{err:?}");
    }

    #[test]
    fn keyless_identity_must_match_and_chain_to_the_roots() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cosign");
        let vector = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap();
        let digest = "sha256:479b4d26d48a0d046ea38ef2715bfa9bdc1ddff89de923a682848412d511d3a5";
        let policy = |subject: &str| {
            format!(
                "apiVersion: policies.kyverno.io/v1beta1\nkind: ImageValidatingPolicy\nmetadata: {{name: k}}\nspec:\n  \
                 matchImageReferences: [{{glob: \"registry.example/*\"}}]\n  attestors:\n  - name: ci\n    cosign:\n      \
                 ctlog: {{insecureIgnoreTlog: true, insecureIgnoreSCT: true}}\n      keyless:\n        identities:\n        \
                 - {{issuer: \"https://issuer.example\", subject: \"{subject}\"}}\n        roots: |\n{}  validations:\n  - \
                 expression: images.containers.map(i, verifyImageSignatures(i, [attestors.ci])).all(e, e > 0)\n",
                indent(&vector("root.pem"), 10)
            )
        };
        let layer = SignatureLayer {
            payload: vector("payload.json").into_bytes(),
            signature: vector("payload-leaf.sig").trim().into(),
            certificate: Some(vector("leaf-email.pem")),
            chain: Some(vector("chain.pem")),
            ..Default::default()
        };
        let ev = evidence("registry.example/team/app:v1", vec![layer], vec![]);
        let trust = TrustRoot::empty();
        let (good, _) = set(&policy("builder@example.com"));
        assert!(eval_with(&good, &ev, digest, &trust).allowed);
        let (other, _) = set(&policy("someone@example.com"));
        assert!(!eval_with(&other, &ev, digest, &trust).allowed);
    }

    /// `key.kms` (and `key.hashAlgorithm`): a KMS key as other policies' KMS keys are, asked
    /// for by the resolver and inlined into the attestor; the key the KMS holds then verifies.
    /// Before, such an attestor failed closed.
    #[test]
    fn a_kms_key_attestor_is_resolved_like_other_kms_keys() {
        use crate::kms::{ResolvedKey, Resolver};
        use crate::policy::normal::NormalPolicy;
        let k = TestSigner::new(1);
        let uri = "awskms:///arn:aws:kms:us-east-1:111122223333:key/k";
        let yaml = key_policy(&k, "", SIGNED).replacen(
            "      key:\n        data: |\n",
            &format!("      key:\n        kms: \"{uri}\"\n        hashAlgorithm: sha256\n      unused: |\n"),
            1,
        );
        // (the key's PEM lines now hang under an ignored block; drop them)
        let yaml: String = yaml.lines().filter(|l| !l.starts_with("          ")).map(|l| format!("{l}\n")).collect();
        let yaml = yaml.replace("      unused: |\n", "");
        let doc = &parse_documents(Path::new("t.yaml"), &yaml).unwrap()[0];
        let mut p = super::super::import(doc).unwrap().policies.remove(0);
        assert_eq!(NormalPolicy::kms_uris(std::slice::from_ref(&p)).into_iter().collect::<Vec<_>>(), [uri]);
        let held =
            ResolvedKey { pem: k.public_pem(), version: "v1".into(), signing: Default::default(), source: "t".into() };
        p.inline_held(&crate::held::Held::new(
            Resolver::new(None, std::collections::BTreeMap::from([(uri.to_string(), held)]), None),
            crate::tuf::Store::offline(),
        ));
        let c = compile(&p, &FilesOnly(Path::new("/"))).unwrap();
        let s = PolicySet::new(vec![c.policy], NoMatchAction::Deny, b"kms");
        assert!(eval(&s, &evidence("reg.io/app:1", signed_by(&[&k]), vec![])).allowed);
        assert!(!eval(&s, &evidence("reg.io/app:1", signed_by(&[&TestSigner::new(2)]), vec![])).allowed);
    }

    /// `cosign.trustedRoot` (an inline trusted_root.json): it replaces the node's trust root for
    /// that attestor, its CAs and its CT logs among them. Before, the attestor failed closed.
    #[test]
    fn an_inline_trusted_root_replaces_the_nodes() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cosign");
        let vector = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap();
        let digest = "sha256:479b4d26d48a0d046ea38ef2715bfa9bdc1ddff89de923a682848412d511d3a5";
        let policy = |trusted_root: Option<&str>| {
            let root = trusted_root
                .map(|t| format!("      trustedRoot:\n        value: {}\n", serde_json::to_string(t).unwrap()))
                .unwrap_or_default();
            format!(
                "apiVersion: policies.kyverno.io/v1\nkind: ImageValidatingPolicy\nmetadata: {{name: k}}\nspec:\n  \
                 matchImageReferences: [{{glob: \"registry.example/*\"}}]\n  attestors:\n  - name: ci\n    cosign:\n      \
                 ctlog: {{insecureIgnoreTlog: true}}\n{root}      keyless:\n        identities:\n        \
                 - {{issuer: \"https://issuer.example\", subject: builder@example.com}}\n  validations:\n  - \
                 expression: images.containers.map(i, verifyImageSignatures(i, [attestors.ci])).all(e, e > 0)\n"
            )
        };
        // A certificate with an SCT from the test CT log, under the test CA: both named by the
        // vectors' trusted root, neither by the (empty) node trust root.
        let layer = SignatureLayer {
            payload: vector("payload.json").into_bytes(),
            signature: vector("payload-leaf.sig").trim().into(),
            certificate: Some(vector("leaf-sct.pem")),
            chain: Some(vector("chain.pem")),
            ..Default::default()
        };
        let ev = evidence("registry.example/team/app:v1", vec![layer], vec![]);
        let node = TrustRoot::empty();
        let (with_root, _) = set(&policy(Some(&vector("trusted_root.json"))));
        let e = eval_with(&with_root, &ev, digest, &node);
        assert!(e.allowed, "{e:?}");
        let (without, _) = set(&policy(None));
        assert!(!eval_with(&without, &ev, digest, &node).allowed);
        // A trusted root that does not parse refuses the policy, naming it.
        let doc = &parse_documents(Path::new("t.yaml"), &policy(Some("{\"tlogs\": 3}"))).unwrap()[0];
        let i = super::super::import(doc).unwrap();
        let err = compile(&i.policies[0], &FilesOnly(Path::new("/"))).unwrap_err();
        assert!(err.iter().any(|e| e.to_string().contains("trustedRoot")), "{err:?}");
    }

    /// `cosign.tuf`: the trusted_root.json a TUF repository serves (verified by tough through
    /// the policy's root) replaces the node trust root for that attestor; fetched off the
    /// request path, so until it is held the attestor fails closed naming the mirror, and the
    /// root inlined at the last load enforces on a node without the mirror. Before, every
    /// `tuf` attestor failed closed.
    #[tokio::test]
    async fn a_tuf_repositorys_trusted_root_replaces_the_nodes() {
        use crate::held::Held;
        use crate::policy::compile::WithHeld;
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cosign");
        let vector = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap();
        let digest = "sha256:479b4d26d48a0d046ea38ef2715bfa9bdc1ddff89de923a682848412d511d3a5";
        let tmp = tempfile::tempdir().unwrap();
        let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24);
        let mut repo =
            tuf_testrepo::Repo::create(&tmp.path().join("repo"), &tmp.path().join("key"), expires).await.unwrap();
        repo.publish(&[("trusted_root.json", vector("trusted_root.json").as_bytes())], expires).await.unwrap();
        let root = base64::engine::general_purpose::STANDARD.encode(&repo.root);
        let yaml = format!(
            "apiVersion: policies.kyverno.io/v1\nkind: ImageValidatingPolicy\nmetadata: {{name: k}}\nspec:\n  \
             matchImageReferences: [{{glob: \"registry.example/*\"}}]\n  attestors:\n  - name: ci\n    cosign:\n      \
             ctlog: {{insecureIgnoreTlog: true}}\n      tuf:\n        mirror: file://{}\n        root: {{data: {root}}}\n      \
             keyless:\n        identities:\n        - {{issuer: \"https://issuer.example\", subject: builder@example.com}}\n  \
             validations:\n  - expression: images.containers.map(i, verifyImageSignatures(i, [attestors.ci])).all(e, e > 0)\n",
            repo.dir.display()
        );
        let layer = SignatureLayer {
            payload: vector("payload.json").into_bytes(),
            signature: vector("payload-leaf.sig").trim().into(),
            certificate: Some(vector("leaf-sct.pem")),
            chain: Some(vector("chain.pem")),
            ..Default::default()
        };
        let ev = evidence("registry.example/team/app:v1", vec![layer], vec![]);
        let node = TrustRoot::empty();
        let doc = &parse_documents(Path::new("t.yaml"), &yaml).unwrap()[0];
        let normal = super::super::import(doc).unwrap().policies.remove(0);
        let compiled = |held: &Held, p: &NormalPolicy| {
            let c = compile(p, &WithHeld { keys: &FilesOnly(Path::new("/")), held }).unwrap();
            (PolicySet::assemble(vec![c.policy], NoMatchAction::Deny), c.warnings)
        };
        let fetcher = crate::tuf::client::ToughFetcher::new(None).unwrap();
        let held = Held::new(crate::kms::Resolver::offline(), crate::tuf::Store::new(Some(Arc::new(fetcher)), None));
        // Looked up before any fetch: the attestor fails closed, naming the mirror.
        let (before, warnings) = compiled(&held, &normal);
        assert!(!eval_with(&before, &ev, digest, &node).allowed);
        assert!(warnings.iter().any(|w| w.contains("is not fetched yet") && w.contains("file://")), "{warnings:?}");
        assert_eq!(NormalPolicy::tuf_repos(std::slice::from_ref(&normal)).len(), 1);
        assert!(held.tuf.refresh(std::iter::empty()).await, "the repository looked up is fetched");
        let (after, warnings) = compiled(&held, &normal);
        assert!(warnings.is_empty(), "{warnings:?}");
        let e = eval_with(&after, &ev, digest, &node);
        assert!(e.allowed, "{e:?}");
        // Review finding: the compiled policy does not outlive the TUF metadata (here a day):
        // verified two days on, the same policy refuses, naming the expiry.
        let matched = after.matching(&ev.reference, "registry.example/team/app", None);
        let late = evaluate(&matched, &ev, digest, Context { trust: &node, now: Context::now_secs() + 2 * 86400 });
        assert!(!late.allowed && format!("{late:?}").contains("TUF trust root expired"), "{late:?}");
        // Inlined at that load, the root enforces where nothing fetches (the last-known-good file).
        let mut inlined = normal.clone();
        inlined.inline_held(&held);
        let (offline, warnings) = compiled(&Held::offline(), &inlined);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(eval_with(&offline, &ev, digest, &node).allowed);
        // A repository serving another trust root (one that names neither the test CA nor its
        // CT log) does not vouch for the certificate.
        repo.publish(
            &[("trusted_root.json", b"{\"mediaType\": \"application/vnd.dev.sigstore.trustedroot+json;version=0.1\"}")],
            expires,
        )
        .await
        .unwrap();
        let fresh = crate::tuf::client::ToughFetcher::new(None).unwrap();
        let other = Held::new(crate::kms::Resolver::offline(), crate::tuf::Store::new(Some(Arc::new(fresh)), None));
        compiled(&other, &normal);
        other.tuf.refresh(std::iter::empty()).await;
        let (other_root, warnings) = compiled(&other, &normal);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(!eval_with(&other_root, &ev, digest, &node).allowed);
    }

    /// `cosign.tuf` with no root: the public-good TUF root is not built in, so the attestor
    /// fails closed; on a key with the log ignored Kyverno reads no TUF at all, nor does the node.
    #[test]
    fn tuf_without_a_root_fails_closed_and_a_key_without_the_log_needs_none() {
        let policy = |cosign: &str| {
            format!(
                "apiVersion: policies.kyverno.io/v1\nkind: ImageValidatingPolicy\nmetadata: {{name: k}}\nspec:\n  \
                 matchImageReferences: [{{glob: \"registry.example/*\"}}]\n  attestors:\n  - name: ci\n    cosign: {cosign}\n  \
                 validations:\n  - expression: images.containers.map(i, verifyImageSignatures(i, [attestors.ci])).all(e, e > 0)\n"
            )
        };
        let keyless = "{tuf: {mirror: \"https://tuf.example\"}, keyless: {identities: [{issuer: i, subject: s}]}}";
        let (_, warnings) = set(&policy(keyless));
        assert!(warnings.iter().any(|w| w.contains("public-good Sigstore TUF root")), "{warnings:?}");
        let key = format!(
            "{{tuf: {{mirror: \"https://tuf.example\", root: {{data: e30=}}}}, ctlog: {{insecureIgnoreTlog: true}}, key: {{data: {}}}}}",
            serde_json::to_string(crate::testutil::TEST_PUB).unwrap()
        );
        let doc = &parse_documents(Path::new("t.yaml"), &policy(&key)).unwrap()[0];
        let i = super::super::import(doc).unwrap();
        assert!(i.notes.iter().any(|n| n.contains("tuf is not used")), "{:?}", i.notes);
        assert_eq!(NormalPolicy::tuf_repos(&i.policies).len(), 0);
        // A mirror that is not a URL the node reads refuses the policy, naming it.
        let bad = policy("{tuf: {mirror: \"ftp://tuf.example\", root: {data: e30=}}, keyless: {identities: [{issuer: i, subject: s}]}}");
        let doc = &parse_documents(Path::new("t.yaml"), &bad).unwrap()[0];
        let err = super::super::import(doc).unwrap_err();
        assert!(err.iter().any(|e| e.contains("cosign.tuf") && e.contains("ftp://tuf.example")), "{err:?}");
    }

    const SBOM: &str = "  - expression: images.containers.map(image, verifyAttestationSignatures(image, attestations.sbom, [attestors.cosign])).all(e, e > 0)\n    message: failed to verify the SBOM attestation\n  - expression: images.containers.map(image, extractPayload(image, attestations.sbom).predicate.bomFormat == 'CycloneDX').all(e, e)\n    message: the SBOM is not CycloneDX\n";

    #[test]
    fn an_attestation_payload_condition_reads_the_verified_statement() {
        let k = TestSigner::new(1);
        let (s, _) = set(&key_policy(&k, "", SBOM));
        let sbom = |by: &TestSigner, format: &str| {
            attestation(by, D, "https://cyclonedx.org/bom", json!({"bomFormat": format, "specVersion": "1.5"}))
        };
        assert!(eval(&s, &evidence("reg.io/app:1", vec![], vec![sbom(&k, "CycloneDX")])).allowed);
        let spdx = eval(&s, &evidence("reg.io/app:1", vec![], vec![sbom(&k, "SPDX")]));
        assert!(!spdx.allowed);
        assert!(spdx.failures[0].contains("validations[1]: the SBOM is not CycloneDX"), "{spdx:?}");
        // Another signer's statement is neither verified nor read.
        let foreign = eval(&s, &evidence("reg.io/app:1", vec![], vec![sbom(&TestSigner::new(2), "CycloneDX")]));
        assert!(foreign.failures[0].contains("validations[0]: failed to verify the SBOM attestation"), "{foreign:?}");
        // An attestation about another digest does not count.
        let other =
            attestation(&k, &D.replace('1', "2"), "https://cyclonedx.org/bom", json!({"bomFormat": "CycloneDX"}));
        assert!(!eval(&s, &evidence("reg.io/app:1", vec![], vec![other])).allowed);
    }

    #[test]
    fn a_payload_is_not_read_before_it_is_verified() {
        let k = TestSigner::new(1);
        let only_extract = "  - expression: images.containers.all(i, extractPayload(i, attestations.sbom).predicate.bomFormat == 'CycloneDX')\n";
        let (s, _) = set(&key_policy(&k, "", only_extract));
        let att = attestation(&k, D, "https://cyclonedx.org/bom", json!({"bomFormat": "CycloneDX"}));
        let e = eval(&s, &evidence("reg.io/app:1", vec![], vec![att]));
        assert!(!e.allowed);
        assert!(e.failures[0].contains("cannot be read before it is verified"), "{e:?}");
    }

    #[test]
    fn audit_and_warn_without_deny_are_warn_mode() {
        let k = TestSigner::new(1);
        for (actions, enforced) in [("[Audit]", false), ("[Warn]", false), ("[Audit, Deny]", true), ("[]", true)] {
            let (s, _) = set(&key_policy(&k, &format!("  validationActions: {actions}\n"), SIGNED));
            let e = eval(&s, &evidence("reg.io/app:1", vec![], vec![]));
            assert_eq!(e.allowed, !enforced, "{actions}: {e:?}");
            assert_eq!(e.warned, !enforced, "{actions}");
        }
    }

    fn namespaces(list: &[(&str, &[(&str, &str)])]) -> Arc<crate::policy::labels::NamespaceLabels> {
        Arc::new(crate::policy::labels::NamespaceLabels::listed(
            list.iter().map(|(n, l)| (n.to_string(), l.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())),
        ))
    }

    #[test]
    fn a_namespace_selector_narrows_by_name_and_by_the_labels_the_cluster_reports() {
        let k = TestSigner::new(1);
        let selector = "  matchConstraints:\n    namespaceSelector:\n      matchLabels: {team: payments}\n      matchExpressions:\n      - {key: kubernetes.io/metadata.name, operator: In, values: [payments, checkout]}\n";
        let (s, _) = set(&key_policy(&k, selector, SIGNED));
        let covered = |s: &PolicySet, ns: Option<&str>| !s.matching("reg.io/app:1", "reg.io/app", ns).is_empty();
        // Labels unknown (local files): the name requirement narrows, the label one applies.
        assert!(covered(&s, Some("payments")) && covered(&s, Some("checkout")));
        assert!(!covered(&s, Some("default")));
        assert!(!covered(&s, None), "a policy confined to named namespaces does not apply to an unknown one");
        // Labels known: only the namespace labelled team=payments.
        let s = s.with_namespace_labels(namespaces(&[
            ("payments", &[("team", "payments")]),
            ("checkout", &[("team", "web")]),
        ]));
        assert!(covered(&s, Some("payments")));
        assert!(!covered(&s, Some("checkout")), "checkout is not labelled team=payments");
        let not_in = "  matchConstraints:\n    namespaceSelector:\n      matchExpressions:\n      - {key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system]}\n";
        let (s, _) = set(&key_policy(&k, not_in, SIGNED));
        assert!(s.matching("reg.io/app:1", "reg.io/app", Some("kube-system")).is_empty());
        assert!(!s.matching("reg.io/app:1", "reg.io/app", Some("default")).is_empty());
    }

    #[test]
    fn unknown_namespace_labels_make_the_selector_apply() {
        let k = TestSigner::new(1);
        let selector = "  matchConstraints:\n    namespaceSelector:\n      matchExpressions:\n      - {key: env, operator: In, values: [prod]}\n      - {key: exempt, operator: DoesNotExist}\n";
        let (s, _) = set(&key_policy(&k, selector, SIGNED));
        let covered = |s: &PolicySet, ns: Option<&str>| !s.matching("reg.io/app:1", "reg.io/app", ns).is_empty();
        for ns in [None, Some("prod"), Some("dev")] {
            assert!(covered(&s, ns), "no labels known: the policy applies in {ns:?}");
        }
        let s = s.with_namespace_labels(namespaces(&[
            ("prod", &[("env", "prod")]),
            ("dev", &[("env", "dev")]),
            ("exempt", &[("env", "prod"), ("exempt", "yes")]),
        ]));
        assert!(covered(&s, Some("prod")));
        assert!(!covered(&s, Some("dev")));
        assert!(!covered(&s, Some("exempt")));
        assert!(covered(&s, Some("new-namespace")), "a namespace not seen yet: the policy applies");
        assert!(covered(&s, None), "the pod's namespace unknown: the policy applies");
    }

    #[test]
    fn a_selector_the_api_server_would_refuse_is_an_error() {
        let k = TestSigner::new(1);
        let bad = "  matchConstraints:\n    namespaceSelector:\n      matchExpressions:\n      - {key: env, operator: Equals, values: [prod]}\n";
        let doc = serde_yaml::from_str::<serde_json::Value>(&key_policy(&k, bad, SIGNED)).unwrap();
        let err = super::super::import(&doc).unwrap_err();
        assert!(err.iter().any(|e| e.contains("namespaceSelector") && e.contains("Equals")), "{err:?}");
    }

    #[test]
    fn request_fields_and_unknown_functions_fail_closed_naming_the_expression() {
        let k = TestSigner::new(1);
        let v = format!(
            "{SIGNED}  - expression: request.userInfo.username != 'intruder'\n  - expression: images.containers.all(i, getImageData(i).config.user != 'root')\n"
        );
        let (s, warnings) = set(&key_policy(&k, "", &v));
        assert!(
            warnings.iter().any(|w| w.contains("validations[1]: request is not known on the node")),
            "{warnings:?}"
        );
        assert!(
            warnings.iter().any(|w| w.contains("validations[2]: function getImageData is not available")),
            "{warnings:?}"
        );
        let e = eval(&s, &evidence("reg.io/app:1", signed_by(&[&k]), vec![]));
        assert!(!e.allowed);
        assert!(e.failures[0].contains("validations[1]: request is not known on the node"), "{e:?}");
    }

    #[test]
    fn required_verification_and_digest_settings() {
        let k = TestSigner::new(1);
        let trivially = "  - expression: \"true\"\n";
        let (s, _) = set(&key_policy(&k, "", trivially));
        let e = eval(&s, &evidence("reg.io/app:1", signed_by(&[&k]), vec![]));
        assert!(!e.allowed && e.failures[0].contains("is not verified"), "required by default: {e:?}");
        let (s, _) = set(&key_policy(&k, "  validationConfigurations: {required: false}\n", trivially));
        assert!(eval(&s, &evidence("reg.io/app:1", vec![], vec![])).allowed);
        let by_tag = "  validationConfigurations: {mutateDigest: false}\n";
        let (s, _) = set(&key_policy(&k, by_tag, SIGNED));
        let e = eval(&s, &evidence("reg.io/app:1", signed_by(&[&k]), vec![]));
        assert!(!e.allowed && e.failures[0].contains("does not have a digest"), "{e:?}");
        let pinned = format!("reg.io/app@{D}");
        assert!(eval(&s, &evidence(&pinned, signed_by(&[&k]), vec![])).allowed);
    }

    #[test]
    fn match_image_expressions_and_conditions() {
        let k = TestSigner::new(1);
        let refs = &format!("apiVersion: policies.kyverno.io/v1\nkind: ImageValidatingPolicy\nmetadata: {{name: e}}\nspec:\n  matchImageReferences:\n  - expression: ref.startsWith('reg.io/signed/')\n  attestors:\n  - name: c\n    notary:\n      certs:\n        value: |\n{}  validations:\n  - expression: \"false\"\n", indent(&notation("trusted.crt"), 10));
        let (s, _) = set(refs);
        assert_eq!(s.matching("reg.io/signed/app:1", "reg.io/signed/app", None).len(), 1);
        assert!(s.matching("reg.io/other/app:1", "reg.io/other/app", None).is_empty());
        // Kyverno sees the name as the pod spec wrote it; Docker Hub's short forms are tried.
        let hub = refs.replace("ref.startsWith('reg.io/signed/')", "ref == 'nginx:1.27'");
        let (s, _) = set(&hub);
        assert_eq!(s.matching("docker.io/library/nginx:1.27", "docker.io/library/nginx", None).len(), 1);
        assert!(s.matching("docker.io/library/nginx:1.28", "docker.io/library/nginx", None).is_empty());
        // A condition that is exactly false leaves the image alone, as in Kyverno.
        let (s, _) = set(&key_policy(&k, "  matchConditions:\n  - {name: never, expression: \"1 == 2\"}\n", SIGNED));
        assert!(eval(&s, &evidence("reg.io/app:1", vec![], vec![])).allowed);
        // One the node cannot evaluate is taken as true: the validations apply.
        let on_spec = "  matchConditions:\n  - {name: prod, expression: \"has(object.spec.hostNetwork)\"}\n";
        let (s, warnings) = set(&key_policy(&k, on_spec, SIGNED));
        assert!(warnings.iter().any(|w| w.contains("object is not known on the node")), "{warnings:?}");
        assert!(!eval(&s, &evidence("reg.io/app:1", vec![], vec![])).allowed);
        // Glob syntax wildcards cannot express covers every image.
        let braces = key_policy(&k, "", SIGNED).replace("glob: \"reg.io/*\"", "glob: \"reg.io/{a,b}\"");
        let (s, _) = set(&braces);
        assert_eq!(s.matching("quay.io/x:1", "quay.io/x", None).len(), 1);
    }

    #[test]
    fn only_the_image_being_created_can_be_verified() {
        let k = TestSigner::new(1);
        let v = "  - expression: verifyImageSignatures('reg.io/other:1', [attestors.cosign]) > 0\n";
        let (s, _) = set(&key_policy(&k, "", v));
        let e = eval(&s, &evidence("reg.io/app:1", signed_by(&[&k]), vec![]));
        assert!(!e.allowed && e.failures[0].contains("only the image being created"), "{e:?}");
    }

    #[test]
    fn every_served_version_of_both_kinds_is_read_and_watched() {
        for v in ["v1", "v1beta1", "v1alpha1"] {
            assert!(super::super::is_supported(&format!("policies.kyverno.io/{v}"), "ImageValidatingPolicy"));
        }
        for v in ["v1", "v1beta1"] {
            assert!(super::super::is_supported(&format!("policies.kyverno.io/{v}"), "NamespacedImageValidatingPolicy"));
        }
        // Discovery takes the first served version listed: the newest must come first.
        let ivp: Vec<&str> =
            super::super::KINDS.iter().filter(|k| k.kind == "ImageValidatingPolicy").map(|k| k.version).collect();
        assert_eq!(ivp, ["v1", "v1beta1", "v1alpha1"]);
        let rbac =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/kubernetes/rbac.yaml"))
                .unwrap();
        assert!(rbac.contains("imagevalidatingpolicies") && rbac.contains("namespacedimagevalidatingpolicies"));
    }

    #[test]
    fn a_namespaced_policy_governs_only_its_namespace() {
        let k = TestSigner::new(1);
        let yaml = key_policy(&k, "", SIGNED).replace(
            "kind: ImageValidatingPolicy\nmetadata: {name: p}",
            "kind: NamespacedImageValidatingPolicy\nmetadata: {name: p, namespace: team}",
        );
        let (s, _) = set(&yaml);
        assert_eq!(s.policies[0].name, "kyverno-ivp:team/p");
        assert_eq!(s.matching("reg.io/app:1", "reg.io/app", Some("team")).len(), 1);
        assert!(s.matching("reg.io/app:1", "reg.io/app", Some("other")).is_empty());
        assert!(s.matching("reg.io/app:1", "reg.io/app", None).is_empty());
    }

    #[test]
    fn the_normalised_form_round_trips_through_yaml() {
        let k = TestSigner::new(1);
        let doc = &parse_documents(Path::new("t.yaml"), &key_policy(&k, "", SBOM)).unwrap()[0];
        let p = &super::super::import(doc).unwrap().policies[0];
        let text = serde_yaml::to_string(p).unwrap();
        assert_eq!(&serde_yaml::from_str::<crate::policy::normal::NormalPolicy>(&text).unwrap(), p, "{text}");
        // The last-known-good file stores JSON.
        let json = serde_json::to_string(p).unwrap();
        assert_eq!(&serde_json::from_str::<crate::policy::normal::NormalPolicy>(&json).unwrap(), p, "{json}");
    }

    #[test]
    fn explain_and_check_say_which_parts_the_node_evaluates() {
        let k = TestSigner::new(1);
        let v = format!("{SIGNED}  - expression: request.userInfo.username != 'intruder'\n");
        let d = tempfile::tempdir().unwrap();
        let selected = "  matchConstraints:\n    objectSelector: {matchLabels: {verify: 'true'}}\n";
        std::fs::write(d.path().join("ivp.yaml"), key_policy(&k, selected, &v)).unwrap();
        let loaded = crate::policy::local::load_dir(d.path()).unwrap();
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        assert!(loaded.warnings[0].contains("validations[1]: request is not known on the node"));
        let x = crate::evaluate::explain::explain(&loaded, NoMatchAction::Deny, "reg.io/app:1", None).unwrap();
        assert_eq!(x.action, "verify");
        let text = x.to_string();
        assert!(text.contains("validations[0] evaluated on the node: images.containers.map("), "{text}");
        assert!(text.contains("fails closed: validations[1]: request is not known on the node"), "{text}");
        assert!(text.contains("the image must pass a signature or attestation check"), "{text}");
        assert!(
            text.contains("matchConstraints.objectSelector evaluated on the node over the pod's labels")
                && text.contains(r#"{"matchLabels":{"verify":"true"}}"#),
            "{text}"
        );
    }

    #[test]
    fn the_namespace_name_is_known_to_conditions_and_validations() {
        let k = TestSigner::new(1);
        let skip_system =
            "  matchConditions:\n  - {name: not-system, expression: \"object.metadata.namespace != 'kube-system'\"}\n";
        let (s, warnings) = set(&key_policy(&k, skip_system, SIGNED));
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(s.policies[0].depends_on_request());
        let in_ns =
            |ns: Option<&str>| Evidence { namespace: ns.map(String::from), ..evidence("reg.io/app:1", vec![], vec![]) };
        assert!(eval(&s, &in_ns(Some("kube-system"))).allowed, "the condition is false: not applied");
        assert!(!eval(&s, &in_ns(Some("default"))).allowed);
        assert!(!eval(&s, &in_ns(None)).allowed, "an unknown namespace cannot make the condition false");
        let e = eval(&s, &in_ns(None));
        assert!(
            e.failures[0].contains("matchConditions[not-system]: "),
            "an error denies, as failurePolicy Fail: {e:?}"
        );
        // Attestors are not bound when Kyverno evaluates conditions: not a way to narrow.
        let on_attestors = "  matchConditions:\n  - {name: a, expression: \"attestors.cosign.name == 'x'\"}\n";
        let (s, warnings) = set(&key_policy(&k, on_attestors, SIGNED));
        assert!(warnings.iter().any(|w| w.contains("matchConditions[a]")), "{warnings:?}");
        assert!(!eval(&s, &in_ns(Some("default"))).allowed);
        let guarded = "  - expression: request.namespace == 'dev' || images.containers.all(i, verifyImageSignatures(i, [attestors.cosign]) > 0)\n";
        let e = eval(&set(&key_policy(&k, "", guarded)).0, &in_ns(Some("dev")));
        assert!(!e.allowed && e.failures[0].contains("is not verified"), "required by default: {e:?}");
        let (s, _) = set(&key_policy(&k, "  validationConfigurations: {required: false}\n", guarded));
        assert!(eval(&s, &in_ns(Some("dev"))).allowed);
        assert!(!eval(&s, &in_ns(Some("prod"))).allowed);
        let (s, _) = set(&key_policy(&k, "", SIGNED));
        assert!(!s.policies[0].depends_on_request(), "verdicts are shared across namespaces");
    }

    fn on_pod(labels: &[(&str, &str)], annotations: &[(&str, &str)], ev: Evidence) -> Evidence {
        let map = |m: &[(&str, &str)]| m.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let pod = crate::decision::PodMetadata { labels: map(labels), annotations: map(annotations) };
        Evidence { namespace: Some("default".into()), pod: Some(Arc::new(pod)), ..ev }
    }

    /// #19: `object.metadata.labels` and `.annotations` are the pod's, as NRI carries them,
    /// where the policy's object is the pod; they failed closed before.
    #[test]
    fn the_pods_labels_and_annotations_reach_cel() {
        let k = TestSigner::new(1);
        let verified_only =
            "  matchConditions:\n  - {name: opted-in, expression: \"object.metadata.labels.verify == 'true'\"}\n";
        let (s, warnings) = set(&key_policy(&k, verified_only, SIGNED));
        assert!(warnings.is_empty(), "evaluated on the node: {warnings:?}");
        assert!(s.policies[0].depends_on_request(), "verdicts differ by pod");
        let unsigned = || evidence("reg.io/app:1", vec![], vec![]);
        assert!(eval(&s, &on_pod(&[("verify", "false")], &[], unsigned())).allowed, "the condition is false");
        let e = eval(&s, &on_pod(&[("verify", "true")], &[], unsigned()));
        assert!(!e.allowed && e.failures[0].contains("failed the image signature verification"), "{e:?}");
        assert!(
            eval(&s, &on_pod(&[("verify", "true")], &[], evidence("reg.io/app:1", signed_by(&[&k]), vec![]))).allowed
        );
        // A pod without labels has none in the API's JSON: reading one is an error there too.
        let e = eval(&s, &on_pod(&[], &[], unsigned()));
        assert!(!e.allowed && e.failures[0].contains("matchConditions[opted-in]"), "{e:?}");
        // With no pod (`signet verify`), the condition cannot be false.
        assert!(!eval(&s, &unsigned()).allowed);

        let waiver = "  - expression: \"object.metadata.annotations['example.com/waiver'] == 'granted' || \
                      images.containers.all(i, verifyImageSignatures(i, [attestors.cosign]) > 0)\"\n";
        let (s, warnings) = set(&key_policy(&k, "  validationConfigurations: {required: false}\n", waiver));
        assert!(warnings.is_empty(), "{warnings:?}");
        let waived = on_pod(&[], &[("example.com/waiver", "granted")], unsigned());
        assert!(eval(&s, &waived).allowed, "the annotation satisfies the validation");
        assert!(!eval(&s, &on_pod(&[], &[("example.com/waiver", "no")], unsigned())).allowed);
        assert!(
            !eval(&s, &on_pod(&[("example.com/waiver", "granted")], &[], unsigned())).allowed,
            "labels are not annotations"
        );
    }

    /// The pod's creator chooses how many labels it has, and CEL's comprehensions cost the
    /// square of that: over the cap they are not bound, so what reads them fails closed,
    /// naming the cap; an object selector still reads them (in linear time).
    #[test]
    fn pod_metadata_over_the_cap_is_not_bound() {
        let k = TestSigner::new(1);
        let any_team = "  matchConditions:\n  - {name: teams, expression: \"object.metadata.labels.exists(l, l.startsWith('team'))\"}\n";
        let (s, _) = set(&key_policy(&k, any_team, SIGNED));
        let many: Vec<(String, String)> = (0..300).map(|i| (format!("k{i}"), "v".to_string())).collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let e = eval(&s, &on_pod(&many, &[], evidence("reg.io/app:1", signed_by(&[&k]), vec![])));
        assert!(!e.allowed, "signed, but the condition cannot be evaluated: {e:?}");
        assert!(e.failures[0].contains("the pod's labels are not known on the node: 300 entries"), "{e:?}");
        let few = &many[..crate::evaluate::cel::MAX_POD_METADATA_ENTRIES];
        assert!(eval(&s, &on_pod(few, &[], evidence("reg.io/app:1", vec![], vec![]))).allowed, "no team label");
        let big = "x".repeat(crate::evaluate::cel::MAX_POD_METADATA_BYTES);
        let e = eval(&s, &on_pod(&[("team", &big)], &[], evidence("reg.io/app:1", signed_by(&[&k]), vec![])));
        assert!(!e.allowed && e.failures[0].contains("bytes, over the cap"), "{e:?}");
        let selected = "  matchConstraints:\n    objectSelector: {matchLabels: {verify: 'true'}}\n";
        let (s, _) = set(&key_policy(&k, selected, SIGNED));
        assert!(eval(&s, &on_pod(&many, &[], evidence("reg.io/app:1", vec![], vec![]))).allowed, "not selected");
    }

    /// For a policy whose object is not the pod, `object.metadata.labels` are that object's,
    /// which the node never sees: they fail closed, naming why.
    #[test]
    fn object_metadata_fails_closed_when_the_object_is_not_the_pod() {
        let k = TestSigner::new(1);
        let deployments = "  matchConstraints:\n    resourceRules:\n    - {apiGroups: [apps], apiVersions: [v1], operations: [CREATE], resources: [deployments]}\n  \
                           matchConditions:\n  - {name: opted-in, expression: \"object.metadata.labels.verify == 'true'\"}\n";
        let (s, warnings) = set(&key_policy(&k, deployments, SIGNED));
        assert!(
            warnings
                .iter()
                .any(|w| w
                    .contains("object.metadata.labels is not known on the node: the policy's object is not the pod")),
            "{warnings:?}"
        );
        assert!(
            !eval(&s, &on_pod(&[("verify", "false")], &[], evidence("reg.io/app:1", vec![], vec![]))).allowed,
            "not narrowed"
        );
    }

    /// #19: `matchConstraints.objectSelector` selects by the pod's labels; it was not applied.
    #[test]
    fn the_object_selector_selects_by_the_pods_labels() {
        let k = TestSigner::new(1);
        let selector = |rules: &str| {
            format!("  matchConstraints:\n{rules}    objectSelector:\n      matchLabels: {{verify: 'true'}}\n      matchExpressions:\n      - {{key: tier, operator: NotIn, values: [test]}}\n")
        };
        let pods =
            "    resourceRules:\n    - {apiGroups: [''], apiVersions: [v1], operations: [CREATE], resources: [pods]}\n";
        for rules in ["", pods] {
            let (s, warnings) = set(&key_policy(&k, &selector(rules), SIGNED));
            assert!(warnings.is_empty(), "{warnings:?}");
            assert!(s.policies[0].depends_on_request(), "verdicts differ by pod labels");
            let unsigned = || evidence("reg.io/app:1", vec![], vec![]);
            assert!(!eval(&s, &on_pod(&[("verify", "true")], &[], unsigned())).allowed, "selected");
            assert!(!eval(&s, &on_pod(&[("verify", "true"), ("tier", "prod")], &[], unsigned())).allowed, "selected");
            assert!(
                eval(&s, &on_pod(&[("verify", "true"), ("tier", "test")], &[], unsigned())).allowed,
                "not selected"
            );
            assert!(eval(&s, &on_pod(&[], &[], unsigned())).allowed, "not selected");
            assert!(!eval(&s, &unsigned()).allowed, "labels unknown: selected");
        }
        // A selector over another object's labels is not applied: every pod is checked. All
        // of `apps`' resources are Deployments and the like, not pods.
        let apps_any = "    resourceRules:\n    - {apiGroups: [apps], apiVersions: [v1], operations: [CREATE], resources: ['*']}\n";
        let (s, _) = set(&key_policy(&k, &selector(apps_any), SIGNED));
        assert!(!eval(&s, &on_pod(&[], &[], evidence("reg.io/app:1", vec![], vec![]))).allowed, "not narrowed");
        let any = "    resourceRules:\n    - {apiGroups: ['*'], apiVersions: ['*'], operations: [CREATE], resources: ['*']}\n";
        let (s, _) = set(&key_policy(&k, &selector(any), SIGNED));
        assert!(eval(&s, &on_pod(&[], &[], evidence("reg.io/app:1", vec![], vec![]))).allowed, "pods are among them");
        let deployments = "    resourceRules:\n    - {apiGroups: [apps], apiVersions: [v1], operations: [CREATE], resources: [deployments]}\n";
        let yaml = key_policy(&k, &selector(deployments), SIGNED);
        let notes = import_first(&yaml).unwrap().notes;
        assert!(
            notes.iter().any(|n| n.contains("objectSelector selects by the labels of an object that is not the pod")),
            "{notes:?}"
        );
        let (s, _) = set(&yaml);
        assert!(!eval(&s, &on_pod(&[], &[], evidence("reg.io/app:1", vec![], vec![]))).allowed);
        // A selector the API server would refuse is refused.
        let bad = "  matchConstraints:\n    objectSelector:\n      matchExpressions:\n      - {key: tier, operator: In, values: []}\n";
        let errors = import_first(&key_policy(&k, bad, SIGNED)).expect_err("refused");
        assert!(errors.iter().any(|e| e.contains("spec.matchConstraints.objectSelector: ")), "{errors:?}");
    }

    #[test]
    fn namespace_labels_reach_cel_where_known_and_fail_closed_where_not() {
        let k = TestSigner::new(1);
        let prod_only =
            "  matchConditions:\n  - {name: prod, expression: \"namespaceObject.metadata.labels.env == 'prod'\"}\n";
        let (s, warnings) = set(&key_policy(&k, prod_only, SIGNED));
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(s.policies[0].depends_on_request());
        let labelled = |ns: &str, labels: Option<&[(&str, &str)]>| Evidence {
            namespace: Some(ns.into()),
            namespace_labels: labels.map(|l| Arc::new(l.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())),
            ..evidence("reg.io/app:1", vec![], vec![])
        };
        assert!(eval(&s, &labelled("dev", Some(&[("env", "dev")]))).allowed, "the condition is false: not applied");
        assert!(!eval(&s, &labelled("prod", Some(&[("env", "prod")]))).allowed, "unsigned in prod");
        let unknown = eval(&s, &labelled("prod", None));
        assert!(!unknown.allowed, "labels unknown: the condition cannot be false");
        assert!(unknown.failures[0].contains("matchConditions[prod]"), "{unknown:?}");
        // A label the namespace does not carry is an error in CEL too: it denies.
        assert!(!eval(&s, &labelled("x", Some(&[]))).allowed);
        let e = eval(&s, &labelled("prod", Some(&[("env", "prod")])));
        assert!(e.failures[0].contains("failed the image signature verification"), "{e:?}");
    }

    /// An IVP with one cosign certificate attestor (`certificate` YAML at 6 spaces), over
    /// `registry.example/*`, `ctlog` its ctlog mapping.
    fn certificate_policy(certificate: &str, ctlog: &str) -> String {
        format!(
            "apiVersion: policies.kyverno.io/v1\nkind: ImageValidatingPolicy\nmetadata: {{name: c}}\nspec:\n  \
             matchImageReferences: [{{glob: \"registry.example/*\"}}]\n  attestors:\n  - name: pinned\n    cosign:\n{ctlog}      \
             certificate:\n{certificate}  validations:\n  - expression: images.containers.map(i, \
             verifyImageSignatures(i, [attestors.pinned])).all(e, e > 0)\n"
        )
    }

    fn cert_value(field: &str, name: &str) -> String {
        format!("        {field}:\n          value: |\n{}", indent(&crate::testutil::vector(name), 12))
    }

    const NO_TLOG: &str = "      ctlog: {insecureIgnoreTlog: true, insecureIgnoreSCT: true}\n";

    fn pinned(doc: &str) -> Check {
        let imported = import_first(doc).unwrap();
        let Check::Cel(c) = &imported.policies[0].requirements[0].authorities[0].check else { panic!() };
        c.attestors[0].check.clone()
    }

    /// #19: a certificate attestor imported to "certificate-based verification is not
    /// implemented"; it is the certificate's key, with its chain, Kyverno's defaults kept.
    #[test]
    fn a_certificate_attestor_imports_to_a_certificate_check() {
        use crate::policy::normal::CertificateCheck;
        let leaf = crate::testutil::vector("leaf-email.pem");
        let chain = crate::testutil::vector("chain.pem");
        let want = CertificateCheck {
            tag_prefix: None,
            tuf: None,
            conditions: Vec::new(),
            certificate: leaf.clone(),
            chain: None,
            rekor: Some(super::PUBLIC_REKOR.into()),
            rekor_keys: Vec::new(),
            ignore_sct: false,
            ct_log_keys: Vec::new(),
            trust_root_cas: false,
            attestations: Vec::new(),
            tsa_cert_chain: None,
            hash_algorithm: None,
            repository: None,
            trusted_root: None,
        };
        assert_eq!(
            pinned(&certificate_policy(&cert_value("cert", "leaf-email.pem"), "")),
            Check::Certificate(want.clone())
        );
        let both = format!("{}{}", cert_value("cert", "leaf-email.pem"), cert_value("certChain", "chain.pem"));
        let got = pinned(&certificate_policy(&both, NO_TLOG));
        let want_both = CertificateCheck { chain: Some(chain.clone()), rekor: None, ignore_sct: true, ..want.clone() };
        assert_eq!(got, Check::Certificate(want_both));
        // With the log required, Kyverno has cosign check the certificate against its
        // Sigstore trusted root: so must the node, beside the chain.
        let Check::Certificate(logged) = pinned(&certificate_policy(&both, "")) else { panic!() };
        assert!(logged.trust_root_cas && logged.rekor.is_some() && !logged.ignore_sct, "{logged:?}");
        // A string-literal expression is that string; any other expression is not evaluated.
        let literal =
            format!("        cert: {{expression: {}}}\n", serde_json::to_string(&format!("{leaf:?}")).unwrap());
        assert_eq!(pinned(&certificate_policy(&literal, "")), Check::Certificate(want));
        let got = pinned(&certificate_policy("        cert: {expression: variables.cert}\n", ""));
        assert!(matches!(&got, Check::Unsupported(why) if why.contains("not a string literal")), "{got:?}");
        // The chain alone: roots for the signature's own certificate.
        let got = pinned(&certificate_policy(&cert_value("certChain", "chain.pem"), NO_TLOG));
        assert!(
            matches!(&got, Check::Keyless(k) if k.ca == Some(KeyRef::Pem(chain.clone())) && k.identities.is_empty())
        );
        // Neither, or both forms of one field: refused, naming the field.
        let doc = certificate_policy("        cert: {value: \"\"}\n", "");
        let e = import_first(&doc).unwrap_err();
        assert!(e.iter().any(|e| e.contains("certificate needs cert, certChain or both")), "{e:?}");
        let doc = certificate_policy("        certChain: {value: x, expression: \"'x'\"}\n", "");
        let e = import_first(&doc).unwrap_err();
        assert!(
            e.iter().any(|e| e.contains("certificate.certChain needs exactly one of value or expression")),
            "{e:?}"
        );
    }

    #[test]
    fn a_certificate_attestor_admits_only_its_keys_signature_for_the_digest() {
        let vector = crate::testutil::vector;
        let digest = "sha256:479b4d26d48a0d046ea38ef2715bfa9bdc1ddff89de923a682848412d511d3a5";
        let signed = SignatureLayer {
            payload: vector("payload.json").into_bytes(),
            signature: vector("payload-leaf.sig").trim().into(),
            ..Default::default()
        };
        let ev = |layers| evidence("registry.example/team/app:v1", layers, vec![]);
        let trust = TrustRoot::empty();
        let both = format!("{}{}", cert_value("cert", "leaf-email.pem"), cert_value("certChain", "chain.pem"));
        for certificate in [cert_value("cert", "leaf-email.pem"), both] {
            let (s, warnings) = set(&certificate_policy(&certificate, NO_TLOG));
            assert!(warnings.is_empty(), "{warnings:?}");
            assert!(eval_with(&s, &ev(vec![signed.clone()]), digest, &trust).allowed);
            let stranger = TestSigner::new(4).sign_raw(&signed.payload);
            assert!(!eval_with(&s, &ev(vec![stranger]), digest, &trust).allowed);
            let other = digest.replace("479b", "0000");
            assert!(!eval_with(&s, &ev(vec![signed.clone()]), &other, &trust).allowed);
        }
        // A certificate not chaining to its chain's root does not compile.
        let bad = format!("{}{}", cert_value("cert", "leaf-email.pem"), cert_value("certChain", "other-root.pem"));
        let doc = certificate_policy(&bad, NO_TLOG);
        let imported = import_first(&doc).unwrap();
        let err = compile(&imported.policies[0], &FilesOnly(Path::new("/"))).err().unwrap();
        let err = err.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        assert!(err.contains("does not chain to the root of its certificate chain"), "{err}");
        // Kyverno's default needs a Rekor entry: with no log key on the node, refused.
        let (s, _) = set(&certificate_policy(&cert_value("cert", "leaf-email.pem"), ""));
        assert!(!eval_with(&s, &ev(vec![signed]), digest, &trust).allowed);
    }

    /// `keyless.additionalExtensions`: before, the attestor failed closed; Kyverno's IVP
    /// verifier ignores them; the node checks them, as Kyverno's ClusterPolicy does.
    #[test]
    fn keyless_additional_extensions_become_identity_checks() {
        let doc = "apiVersion: policies.kyverno.io/v1\nkind: ImageValidatingPolicy\nmetadata: {name: k}\nspec:\n  \
                   matchImageReferences: [{glob: \"reg.io/*\"}]\n  attestors:\n  - name: ci\n    cosign:\n      keyless:\n        \
                   identities: [{issuer: i, subject: s}, {issuer: j, subject: t}]\n        additionalExtensions: \
                   {githubWorkflowRef: refs/heads/main}\n  validations:\n  - expression: images.containers.all(i, \
                   verifyImageSignatures(i, [attestors.ci]) > 0)\n";
        let imported = import_first(doc).unwrap();
        let Check::Cel(c) = &imported.policies[0].requirements[0].authorities[0].check else { panic!() };
        let Check::Keyless(k) = &c.attestors[0].check else { panic!("{:?}", c.attestors[0].check) };
        for id in &k.identities {
            assert_eq!(id.extensions.get("1.3.6.1.4.1.57264.1.6").map(String::as_str), Some("^refs/heads/main$"));
        }
        let odd = doc.replace("githubWorkflowRef: refs/heads/main", "sourceRepositoryUri: x");
        let imported = import_first(&odd).unwrap();
        let Check::Cel(c) = &imported.policies[0].requirements[0].authorities[0].check else { panic!() };
        assert!(matches!(&c.attestors[0].check, Check::Unsupported(why) if why.contains("sourceRepositoryUri")));
    }
}
