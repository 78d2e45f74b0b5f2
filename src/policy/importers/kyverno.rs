//! Kyverno `kyverno.io/v1` and `v2beta1` ClusterPolicy and Policy: the `verifyImages` rules.
//!
//! Each rule's each `verifyImages` entry becomes one policy: `imageReferences` and
//! `skipImageReferences` are Kyverno wildcards on Kyverno's own image names
//! ([`ImageGlob::kyverno`]), every attestor set must hold, and within a set
//! `count` entries must verify (all of them when `count` is absent, as in Kyverno, after a
//! multi-key `publicKeys` is split into one entry per key). `Audit` maps to warn mode.
//! Kyverno requires a Rekor entry unless `rekor.ignoreTlog: true`, and an SCT for keyless
//! unless `ctlog.ignoreSCT: true`; both defaults are kept (the entry is checked offline with
//! `rekor.pubkey` or the node's trust root). `certificates` entries are cosign's
//! `--certificate [--certificate-chain]` ([`Check::Certificate`]; an SCT is required with a
//! chain unless `ctlog.ignoreSCT`). `type: Notary` entries verify notation signatures with
//! their certificates as the trust store ([`Check::Notary`]). `attestations` become
//! requirements checked with their own attestors (for `type: Notary`, the first OCI 1.1
//! referrer of the attestation's type, notation-signed, as Kyverno's notary verifier reads
//! it). Attestation `conditions` are read into [`Conditions`] and judged on the node over
//! every statement the attestation's attestors verified; a condition the node cannot
//! evaluate (an unknown or deprecated operator, an unknown function, an admission-request
//! variable) makes that attestor set an authority that never passes, naming the condition.
//!
//! A rule whose `match` kinds are neither Pod nor a pod controller checks no pod container
//! and is left out; Kyverno refuses wildcard kinds and `admission: false` with verifyImages,
//! and so does the node. `verifyDigest` with `mutateDigest: false` becomes a policy that
//! refuses references without a digest. Keys given as `{{ }}` variables fail closed.
//! Other resource filters the node cannot see (label selectors, names, preconditions) are
//! not applied, which makes a rule cover more containers, never fewer. Namespaces are
//! applied when they are plain names; each match entry's `namespaceSelector` by the
//! namespace labels the cluster sync knows (unknown labels select), several entries as
//! alternatives of their own names and selector.
//!
//! [`ImageGlob::kyverno`]: crate::policy::matching::ImageGlob::kyverno
//! [`Conditions`]: crate::conditions::Conditions

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::{parse_spec, pem_authorities, split_pem_keys, Imported, Meta, PemKeysError};
use crate::policy::labels::LabelSelector;
use crate::policy::model::{Mode, NamespaceTerm, Namespaces};
use crate::policy::normal::{
    CertificateCheck, Check, KeyCheck, KeyRef, KeylessCheck, KmsKey, NormalAuthority, NormalIdentity, NormalPolicy,
    NormalRequirement, NotaryCheck, Pattern, SecretName, StaticAction,
};
use crate::verify::keyless::{MatcherError, FULCIO_V1_EXTENSIONS};
use crate::verify::pubkey::{HashAlgorithm, HashAlgorithmError};

const PUBLIC_REKOR: &str = "https://rekor.sigstore.dev";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    /// `false`: background scans only. Kyverno refuses verifyImages rules then.
    #[serde(default)]
    admission: Option<bool>,
    #[serde(default)]
    validation_failure_action: Option<String>,
    #[serde(default)]
    validation_failure_action_overrides: Vec<Override>,
    #[serde(default)]
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Override {
    #[serde(default)]
    action: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    name: String,
    #[serde(default, rename = "match")]
    match_: Option<Filter>,
    #[serde(default)]
    exclude: Option<Filter>,
    #[serde(default)]
    verify_images: Vec<VerifyImage>,
    /// Only the names: the node builds no context, and conditions must not read them.
    #[serde(default)]
    context: Vec<ContextEntry>,
}

#[derive(Deserialize)]
struct ContextEntry {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize, Default)]
struct Filter {
    #[serde(default)]
    any: Vec<FilterEntry>,
    #[serde(default)]
    all: Vec<FilterEntry>,
    #[serde(default)]
    resources: Option<BTreeMap<String, Value>>,
    /// The legacy form's `subjects`, `roles`, `clusterRoles` beside `resources`.
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct FilterEntry {
    #[serde(default)]
    resources: Option<BTreeMap<String, Value>>,
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VerifyImage {
    #[serde(default)]
    image_references: Vec<String>,
    #[serde(default)]
    skip_image_references: Vec<String>,
    #[serde(default, rename = "type")]
    type_: Option<String>,
    #[serde(default)]
    attestors: Vec<AttestorSet>,
    #[serde(default)]
    attestations: Vec<Attestation>,
    #[serde(default)]
    failure_action: Option<String>,
    /// Deprecated single-key form.
    #[serde(default)]
    key: Option<String>,
    /// Deprecated single-image form.
    #[serde(default)]
    image: Option<String>,
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Attestation {
    #[serde(default)]
    predicate_type: Option<String>,
    #[serde(default, rename = "type")]
    type_: Option<String>,
    #[serde(default)]
    attestors: Vec<AttestorSet>,
    #[serde(default)]
    conditions: Vec<Value>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Keyless {
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    subject_reg_exp: Option<String>,
    #[serde(default)]
    issuer_reg_exp: Option<String>,
    #[serde(default)]
    roots: Option<String>,
    #[serde(default)]
    rekor: Option<Rekor>,
    #[serde(default)]
    ctlog: Option<Ctlog>,
    #[serde(default)]
    additional_extensions: Option<BTreeMap<String, String>>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Ctlog {
    #[serde(default, rename = "ignoreSCT")]
    ignore_sct: Option<bool>,
    #[serde(default)]
    pubkey: Option<String>,
    #[serde(default)]
    tsa_cert_chain: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttestorSet {
    #[serde(default)]
    count: Option<usize>,
    #[serde(default)]
    entries: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    #[serde(default)]
    keys: Option<Keys>,
    #[serde(default)]
    keyless: Option<Keyless>,
    #[serde(default)]
    certificates: Option<Certificates>,
    #[serde(default)]
    attestor: Option<Value>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    repository: Option<String>,
    #[serde(default, rename = "signatureAlgorithm")]
    signature_algorithm: Option<String>,
}

// Some fields are read only so the object parses strictly; they matter only to checks
// that fail closed today.
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Keys {
    #[serde(default)]
    public_keys: Option<String>,
    #[serde(default)]
    signature_algorithm: Option<String>,
    #[serde(default)]
    kms: Option<String>,
    #[serde(default)]
    secret: Option<SecretRef>,
    #[serde(default)]
    rekor: Option<Rekor>,
    #[serde(default)]
    ctlog: Option<Ctlog>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Certificates {
    #[serde(default)]
    cert: Option<String>,
    #[serde(default)]
    cert_chain: Option<String>,
    #[serde(default)]
    rekor: Option<Rekor>,
    #[serde(default)]
    ctlog: Option<Ctlog>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretRef {
    name: String,
    namespace: String,
}

// Some fields are read only so the object parses strictly; they matter only to checks
// that fail closed today.
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Rekor {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    pubkey: Option<String>,
    #[serde(default)]
    ignore_tlog: Option<bool>,
}

/// What in a Kyverno policy the node refuses, as Kyverno would or because it cannot be
/// read; each names the field.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum KyvernoError {
    #[error("failure action {0:?} is neither Enforce nor Audit")]
    FailureAction(String),
    #[error("rule {rule}: match kinds {kind:?}: Kyverno refuses wildcard kinds in verifyImages rules")]
    WildcardKind { rule: String, kind: String },
    #[error("exactly one of keys, keyless, certificates or attestor must be set")]
    EntryKinds,
    #[error("exactly one of keys.publicKeys, keys.kms or keys.secret must be set")]
    KeySources,
    #[error("certificates needs cert, certChain or both")]
    NoCertificate,
    #[error("keyless: {0}")]
    Identity(MatcherError),
    #[error(transparent)]
    HashAlgorithm(HashAlgorithmError),
    #[error("{0}")]
    Kms(String),
    #[error("keys.publicKeys: {0}")]
    PublicKeys(PemKeysError),
}

fn mode_of(action: Option<&str>) -> Result<Mode, KyvernoError> {
    match action.map(str::to_ascii_lowercase).as_deref() {
        None | Some("audit") => Ok(Mode::Warn),
        Some("enforce") => Ok(Mode::Enforce),
        Some(other) => Err(KyvernoError::FailureAction(other.to_string())),
    }
}

pub fn import(meta: &Meta, spec: Value) -> Result<Imported, Vec<String>> {
    // A namespaced Policy governs its own namespace and no other.
    let own_namespace = match (meta.kind.as_str(), &meta.namespace) {
        ("Policy", Some(ns)) => Some(ns.clone()),
        ("Policy", None) => return Err(vec![super::NO_NAMESPACE.into()]),
        _ => None,
    };
    let spec: Spec = parse_spec(spec)?;
    let mut errors = Vec::new();
    let mut notes = Vec::new();
    if spec.admission == Some(false) && spec.rules.iter().any(|r| !r.verify_images.is_empty()) {
        return Err(vec![
            "spec.admission is false: Kyverno refuses verifyImages rules in a policy not run at admission".into(),
        ]);
    }
    let mut policy_mode = mode_of(spec.validation_failure_action.as_deref()).unwrap_or_else(|e| {
        errors.push(format!("spec.validationFailureAction: {e}"));
        Mode::Enforce
    });
    // An override can only make some namespaces stricter than the default we keep here when
    // it says Enforce; honouring that everywhere errs on the strict side.
    if spec.validation_failure_action_overrides.iter().any(|o| mode_of(o.action.as_deref()) == Ok(Mode::Enforce)) {
        policy_mode = Mode::Enforce;
        notes.push("validationFailureActionOverrides with Enforce: enforced in every namespace on the node".into());
    }
    let object = Object { meta, own_namespace, mode: policy_mode };
    let mut policies = Vec::new();
    for rule in spec.rules.iter().filter(|r| !r.verify_images.is_empty()) {
        match pod_kinds(rule) {
            Err(e) => {
                errors.push(e.to_string());
                continue;
            }
            Ok(false) => {
                notes.push(format!(
                    "rule {}: matches no Pod or pod controller kind; it checks no container on the node",
                    rule.name
                ));
                continue;
            }
            Ok(true) => {}
        }
        for (v, vi) in rule.verify_images.iter().enumerate() {
            match object.verify_image_policies(rule, v, vi, &mut notes) {
                Ok(mut made) => policies.append(&mut made),
                Err(mut e) => errors.append(&mut e),
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if policies.is_empty() {
        notes.push("no verifyImages rule for pod containers: nothing for the node to enforce".into());
    }
    Ok(Imported { policies, notes })
}

/// What every rule of one Kyverno object shares while it is translated.
struct Object<'a> {
    meta: &'a Meta,
    /// A namespaced Policy's namespace: it governs that one.
    own_namespace: Option<String>,
    /// `validationFailureAction`, as a rule's own `failureAction` does not override it.
    mode: Mode,
}

impl Object<'_> {
    /// The policies one `verifyImages` entry becomes: its attestors' and, when it pins
    /// digests, one denying tag-only references. None when it verifies nothing on the node.
    fn verify_image_policies(
        &self,
        rule: &Rule,
        v: usize,
        vi: &VerifyImage,
        notes: &mut Vec<String>,
    ) -> Result<Vec<NormalPolicy>, Vec<String>> {
        let field = format!("spec.rules[{}].verifyImages[{v}]", rule.name);
        let name = self.policy_name(rule, v);
        let context: Vec<&str> = rule.context.iter().map(|c| c.name.as_str()).collect();
        let (images, exclude_images, requirements) = verify_image(vi, &field, &context, notes)?;
        let mode = match vi.failure_action.as_deref() {
            Some(a) => mode_of(Some(a)).map_err(|e| vec![format!("{field}.failureAction: {e}")])?,
            None => self.mode,
        };
        let digest = pins_digest(vi);
        if requirements.is_empty() && !digest {
            notes.push(format!("{field}: no attestors or attestations, nothing to verify on the node"));
            return Ok(Vec::new());
        }
        let Some(namespaces) = self.namespaces(rule, notes) else { return Ok(Vec::new()) };
        let policy = |name: String, exclude_images: Vec<Pattern>, requirements, secrets| NormalPolicy {
            name,
            origin: self.meta.origin(),
            images: images.clone(),
            exclude_images,
            namespaces: namespaces.clone(),
            mode,
            requirements,
            exclusive: None,
            no_match_action: None,
            pull_secrets: secrets,
        };
        let mut out = Vec::new();
        if digest {
            // Tag-only references are refused; a digest (with or without a tag) passes.
            // Excluded by Kyverno's own name, which ends in `@digest` exactly when the
            // reference has one.
            let mut exclude = exclude_images.clone();
            exclude.push(Pattern::KyvernoWildcard("*@*".into()));
            let deny = NormalAuthority::new("verifyDigest", Check::Static(StaticAction::Fail));
            out.push(policy(
                format!("{name}/digest"),
                exclude,
                vec![NormalRequirement::any_of(vec![deny])],
                Vec::new(),
            ));
        }
        if !requirements.is_empty() {
            out.push(policy(name, exclude_images, requirements, pull_secrets(vi, notes)));
        }
        Ok(out)
    }

    /// `kyverno:[ns/]name/rule`, with the entry's index when the rule has several.
    fn policy_name(&self, rule: &Rule, v: usize) -> String {
        let object = match &self.own_namespace {
            Some(ns) => format!("{ns}/{}", self.meta.name),
            None => self.meta.name.clone(),
        };
        if rule.verify_images.len() > 1 {
            format!("kyverno:{object}/{}/{v}", rule.name)
        } else {
            format!("kyverno:{object}/{}", rule.name)
        }
    }

    /// The rule's namespaces, confined to a Policy's own; `None` when that leaves none.
    fn namespaces(&self, rule: &Rule, notes: &mut Vec<String>) -> Option<Namespaces> {
        let mut namespaces = namespaces(rule, notes);
        if let Some(ns) = &self.own_namespace {
            if !namespaces.include.is_empty() && !namespaces.include.contains(ns) {
                notes.push(format!("rule {}: matches only namespaces other than {ns}: applies to none", rule.name));
                return None;
            }
            namespaces.include = vec![ns.clone()];
        }
        Some(namespaces)
    }
}

type Translated = (Vec<Pattern>, Vec<Pattern>, Vec<NormalRequirement>);

/// Kinds whose objects carry pod templates Kyverno checks (its autogen set), and Pod.
const POD_KINDS: [&str; 8] =
    ["Pod", "Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "ReplicationController", "Job", "CronJob"];

/// Whether a rule checks pod containers: its `match` kinds (`Kind`, `version/Kind` or
/// `group/version/Kind`) name a Pod or pod controller, or it names no kinds. Kyverno
/// refuses a verifyImages rule with wildcard kinds.
fn pod_kinds(rule: &Rule) -> Result<bool, KyvernoError> {
    let Some(m) = &rule.match_ else { return Ok(true) };
    let mut kinds = Vec::new();
    let resources = m.any.iter().chain(&m.all).filter_map(|e| e.resources.as_ref()).chain(m.resources.as_ref());
    for r in resources {
        for k in r.get("kinds").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
            kinds.push(k.to_string());
        }
    }
    if let Some(k) = kinds.iter().find(|k| k.contains(['*', '?'])) {
        return Err(KyvernoError::WildcardKind { rule: rule.name.clone(), kind: k.clone() });
    }
    let is_pod_kind = |k: &String| k.split('/').any(|part| POD_KINDS.contains(&part));
    Ok(kinds.is_empty() || kinds.iter().any(is_pod_kind))
}

/// `verifyDigest` (on by default) with `mutateDigest: false`: Kyverno refuses a reference
/// without a digest. With `mutateDigest` (the default) it pins the tag to its digest
/// itself, and on the node the digest that runs is always the one checked.
fn pins_digest(vi: &VerifyImage) -> bool {
    let flag = |key: &str, default: bool| vi.other.get(key).and_then(Value::as_bool).unwrap_or(default);
    flag("verifyDigest", true) && !flag("mutateDigest", true)
}

fn verify_image(
    vi: &VerifyImage,
    field: &str,
    context: &[&str],
    notes: &mut Vec<String>,
) -> Result<Translated, Vec<String>> {
    let mut errors = Vec::new();
    for key in vi.other.keys() {
        if !matches!(
            key.as_str(),
            "mutateDigest" | "verifyDigest" | "required" | "useCache" | "imageRegistryCredentials" | "repository"
        ) {
            notes.push(format!("{field}.{key} is not applied on the node"));
        }
    }
    let mut refs = vi.image_references.clone();
    refs.extend(vi.image.clone());
    if refs.is_empty() {
        errors.push(format!("{field}: imageReferences is empty"));
    }
    // Kyverno's names always end in a tag or digest: a pattern with neither, and no
    // wildcard to stand for one, covers nothing (as in Kyverno), which is rarely meant.
    let last = |p: &str| p.rsplit('/').next().unwrap_or_default().to_string();
    for p in refs.iter().chain(&vi.skip_image_references) {
        if !p.is_empty() && !last(p).contains([':', '@', '*', '?']) {
            notes.push(format!("{field}: {p:?} has no tag, digest or wildcard: Kyverno's names always carry one, so it covers no image (write {p}:* for every tag)"));
        }
    }
    let images = refs.into_iter().map(Pattern::KyvernoWildcard).collect();
    let exclude = vi.skip_image_references.iter().cloned().map(Pattern::KyvernoWildcard).collect();
    let engine = match vi.type_.as_deref() {
        None | Some("Cosign") => Engine::Cosign,
        Some("Notary") => Engine::Notary,
        Some(other) => Engine::Unsupported(format!("{other} signatures are not verified on the node yet")),
    };
    let mut requirements = Vec::new();
    // `repository`: where the rule's signatures and attestations are kept (cosign's
    // COSIGN_REPOSITORY); an attestor's own overrides it.
    let repository = vi.other.get("repository").and_then(Value::as_str).filter(|r| !r.is_empty());
    if let Some(pem) = &vi.key {
        // The deprecated `key` field is one attestor with one key, tlog as Kyverno's default.
        let keys = Keys {
            public_keys: Some(pem.clone()),
            signature_algorithm: None,
            kms: None,
            secret: None,
            rekor: None,
            ctlog: None,
        };
        match key_authorities("key", &keys) {
            Ok(mut a) => {
                if let Some(repo) = repository {
                    for x in &mut a {
                        x.check =
                            std::mem::replace(&mut x.check, Check::Unsupported(String::new())).from_repository(repo);
                    }
                }
                requirements.push(NormalRequirement { count: a.len(), authorities: a })
            }
            Err(e) => errors.push(format!("{field}.key: {e}")),
        }
    }
    attestor_requirements(&vi.attestors, field, &engine, None, repository, &mut requirements, &mut errors);
    for (a, att) in vi.attestations.iter().enumerate() {
        let label = match &att.name {
            Some(n) => format!("attestations[{a}]({n})"),
            None => format!("attestations[{a}]"),
        };
        // `type`, else the deprecated `predicateType`, as Kyverno reads them.
        let nonempty = |t: &&String| !t.is_empty();
        let Some(ty) = att.type_.as_ref().filter(nonempty).or(att.predicate_type.as_ref().filter(nonempty)) else {
            errors.push(format!("{field}.{label}: predicateType is required"));
            continue;
        };
        let unsupported =
            |why: String| NormalRequirement::any_of(vec![NormalAuthority::new(label.clone(), Check::Unsupported(why))]);
        // Conditions are read now so that what the node cannot evaluate fails this
        // attestation closed, naming it; the authorities carry them as written.
        let conditions = match crate::conditions::Conditions::parse_beside(&att.conditions, context) {
            Ok(_) => att.conditions.as_slice(),
            Err(e) => {
                requirements.push(unsupported(format!("conditions on attestations of type {ty}: {e}")));
                continue;
            }
        };
        if att.attestors.is_empty() {
            requirements.push(unsupported(format!("attestation of type {ty} names no attestors to verify it with")));
        } else {
            let field = format!("{field}.{label}");
            attestor_requirements(
                &att.attestors,
                &field,
                &engine,
                Some((ty, conditions)),
                repository,
                &mut requirements,
                &mut errors,
            );
        }
    }
    if errors.is_empty() {
        Ok((images, exclude, requirements))
    } else {
        Err(errors)
    }
}

/// Which verifier a `verifyImages` entry's `type` selects.
#[derive(Debug, PartialEq, Eq)]
enum Engine {
    Cosign,
    /// Notary Project (notation) signatures, trusting `certificates.cert` and `certChain`.
    Notary,
    /// Never satisfied on the node, for this reason.
    Unsupported(String),
}

/// One requirement per attestor set; with `attestation`, its entries must attest that type
/// (every statement of it satisfying the conditions).
fn attestor_requirements(
    sets: &[AttestorSet],
    field: &str,
    engine: &Engine,
    attestation: Option<(&str, &[Value])>,
    repository: Option<&str>,
    requirements: &mut Vec<NormalRequirement>,
    errors: &mut Vec<String>,
) {
    for (s, set) in sets.iter().enumerate() {
        let mut authorities = Vec::new();
        for (e, entry) in set.entries.iter().enumerate() {
            let label = format!("attestors[{s}].entries[{e}]");
            match entry_authorities(&label, entry, engine, repository) {
                Ok(mut a) => authorities.append(&mut a),
                Err(msg) => errors.push(format!("{field}.{label}: {msg}")),
            }
        }
        if authorities.is_empty() {
            errors.push(format!("{field}.attestors[{s}]: no entries"));
            continue;
        }
        if let Some((ty, conditions)) = attestation {
            for a in &mut authorities {
                let (types, with) = match &mut a.check {
                    Check::Key(k) => (&mut k.attestations, &mut k.conditions),
                    Check::Keyless(k) => (&mut k.attestations, &mut k.conditions),
                    Check::Certificate(c) => (&mut c.attestations, &mut c.conditions),
                    Check::Notary(n) => (&mut n.attestations, &mut n.conditions),
                    _ => continue,
                };
                *types = vec![ty.to_string()];
                *with = conditions.to_vec();
            }
        }
        let count = set.count.unwrap_or(authorities.len());
        if count == 0 || count > authorities.len() {
            errors.push(format!("{field}.attestors[{s}].count {count} does not fit {} entries", authorities.len()));
            continue;
        }
        requirements.push(NormalRequirement { count, authorities });
    }
}

/// An entry's authorities, reading signatures from the entry's repository, else the rule's
/// (Kyverno: the attestor's `repository` overrides the verifyImages rule's), else the image's.
fn entry_authorities(
    label: &str,
    e: &Entry,
    engine: &Engine,
    repository: Option<&str>,
) -> Result<Vec<NormalAuthority>, KyvernoError> {
    let mut out = entry_checks(label, e, engine)?;
    if let Some(repo) = e.repository.as_deref().filter(|r| !r.is_empty()).or(repository) {
        for a in &mut out {
            a.check = std::mem::replace(&mut a.check, Check::Unsupported(String::new())).from_repository(repo);
        }
    }
    Ok(out)
}

fn entry_checks(label: &str, e: &Entry, engine: &Engine) -> Result<Vec<NormalAuthority>, KyvernoError> {
    let unsupported = |why: String| Ok(vec![NormalAuthority::new(label, Check::Unsupported(why))]);
    let set = [e.keys.is_some(), e.keyless.is_some(), e.certificates.is_some(), e.attestor.is_some()];
    if set.iter().filter(|b| **b).count() != 1 {
        return Err(KyvernoError::EntryKinds);
    }
    if let Engine::Unsupported(why) = engine {
        return unsupported(why.to_string());
    }
    // The entry's digest: Kyverno's cosign verifier looks it up for every entry (an unknown
    // one fails them all) and uses it for a `certificates.cert` without a chain only; for
    // keys, `keys.signatureAlgorithm` (default sha256) replaces it. Notary ignores it.
    let entry_hash = match e.signature_algorithm.as_deref().filter(|a| !a.is_empty() && *engine != Engine::Notary) {
        None => None,
        Some(a) => match HashAlgorithm::parse(a, "signatureAlgorithm") {
            Ok(h) => Some(h),
            Err(e @ HashAlgorithmError::Unsupported { .. }) => return unsupported(e.to_string()),
            Err(e) => return Err(KyvernoError::HashAlgorithm(e)),
        },
    };
    if e.annotations.as_ref().is_some_and(|a| !a.is_empty()) {
        return unsupported("required signature annotations are not checked on the node yet".into());
    }
    // Before keyless: Kyverno's notary verifier reads only certificates (a keyless entry there
    // never passes), and keyless would otherwise check cosign signatures for a Notary rule.
    if *engine == Engine::Notary {
        return match &e.certificates {
            Some(c) => notary_authority(label, c).map(|a| vec![a]),
            None => unsupported("a Notary attestor names its certificates (certificates.cert, certChain)".into()),
        };
    }
    if let Some(k) = &e.keyless {
        return keyless_authority(label, k).map(|a| vec![a]);
    }
    if let Some(c) = &e.certificates {
        return certificate_authority(label, c, entry_hash).map(|a| vec![a]);
    }
    if e.attestor.is_some() {
        return unsupported("nested attestor sets are not supported on the node yet".into());
    }
    key_authorities(label, e.keys.as_ref().expect("counted above"))
}

fn keyless_authority(label: &str, k: &Keyless) -> Result<NormalAuthority, KyvernoError> {
    let fields = [&k.subject, &k.issuer, &k.subject_reg_exp, &k.issuer_reg_exp, &k.roots];
    if let Some(v) = fields.iter().filter_map(|f| f.as_deref()).find(|v| v.contains("{{")) {
        let why = format!("keyless field {:?} is a Kyverno variable, not resolved on the node", v.trim());
        return Ok(NormalAuthority::new(label, Check::Unsupported(why)));
    }
    // Fulcio's GitHub workflow extensions, by cosign's name or by OID, each value a wildcard
    // as Kyverno matches it; a key Kyverno does not know fails every signature there.
    let mut extensions = BTreeMap::new();
    for (key, value) in k.additional_extensions.iter().flatten() {
        let Some((oid, _)) = FULCIO_V1_EXTENSIONS.iter().find(|(oid, name)| key == oid || key == name) else {
            let why = format!("keyless.additionalExtensions: {key:?} is not a certificate extension Kyverno checks");
            return Ok(NormalAuthority::new(label, Check::Unsupported(why)));
        };
        if value.contains("{{") {
            let why =
                format!("keyless.additionalExtensions.{key} {value:?} is a Kyverno variable, not resolved on the node");
            return Ok(NormalAuthority::new(label, Check::Unsupported(why)));
        }
        // By name and by OID at once: Kyverno requires both; one pattern per OID here.
        if extensions.insert(oid.to_string(), wildcard_regex(value)).is_some() {
            let why = format!("keyless.additionalExtensions names {oid} twice (by name and by OID)");
            return Ok(NormalAuthority::new(label, Check::Unsupported(why)));
        }
    }
    // Kyverno matches `subject` and `issuer` as wildcards (`*`, `?`); carried over as
    // anchored regular expressions so nothing wider than the wildcard passes.
    let split = |exact: &Option<String>, re: &Option<String>| match (exact, re) {
        (Some(w), None) if w.contains(['*', '?']) => (None, Some(wildcard_regex(w))),
        _ => (exact.clone(), re.clone()),
    };
    let (issuer, issuer_reg_exp) = split(&k.issuer, &k.issuer_reg_exp);
    let (subject, subject_reg_exp) = split(&k.subject, &k.subject_reg_exp);
    let identity = NormalIdentity { issuer, issuer_reg_exp, subject, subject_reg_exp, extensions };
    identity.compile().map_err(KyvernoError::Identity)?;
    let (rekor, rekor_keys) = tlog(k.rekor.as_ref());
    Ok(NormalAuthority::new(
        label,
        Check::Keyless(KeylessCheck {
            tag_prefix: None,
            tuf: None,
            conditions: Vec::new(),
            identities: vec![identity],
            ca: k.roots.clone().map(KeyRef::Pem),
            rekor,
            rekor_keys,
            ignore_sct: k.ctlog.as_ref().and_then(|c| c.ignore_sct).unwrap_or(false),
            ct_log_keys: ct_log_keys(k.ctlog.as_ref()),
            attestations: Vec::new(),
            tsa_cert_chain: tsa_chain(k.ctlog.as_ref()),
            repository: None,
            trust_root_timestamps: false,
            trusted_root: None,
        }),
    ))
}

/// A `certificates` entry, as Kyverno hands it to cosign: with `cert`, signatures verify
/// under its key (and, with `certChain`, it must chain to the chain's root, with an SCT
/// unless `ctlog.ignoreSCT`); with `certChain` alone, the signature's own certificate must
/// chain to those roots, any holder. The tlog is required unless `rekor.ignoreTlog`.
fn certificate_authority(
    label: &str,
    c: &Certificates,
    hash_algorithm: Option<HashAlgorithm>,
) -> Result<NormalAuthority, KyvernoError> {
    let unsupported = |why: String| Ok(NormalAuthority::new(label, Check::Unsupported(why)));
    // Kyverno treats an empty field as an absent one.
    let cert = c.cert.as_deref().filter(|t| !t.trim().is_empty());
    let chain = c.cert_chain.as_deref().filter(|t| !t.trim().is_empty());
    if let Some(v) = cert.into_iter().chain(chain).find(|v| v.contains("{{")) {
        return unsupported(format!(
            "certificates field {:?} is a Kyverno variable, not resolved on the node",
            v.trim()
        ));
    }
    let ctlog = c.ctlog.as_ref();
    let tsa_cert_chain = tsa_chain(ctlog);
    let ignore_sct = ctlog.and_then(|l| l.ignore_sct).unwrap_or(false);
    let ct_log_keys = ct_log_keys(ctlog);
    let (rekor, rekor_keys) = tlog(c.rekor.as_ref());
    let check = match (cert, chain) {
        (None, None) => return Err(KyvernoError::NoCertificate),
        (Some(cert), chain) => Check::Certificate(CertificateCheck {
            tag_prefix: None,
            tuf: None,
            conditions: Vec::new(),
            certificate: super::certificate_text(cert),
            chain: chain.map(String::from),
            rekor,
            rekor_keys,
            ignore_sct,
            ct_log_keys: ct_log_keys.clone(),
            trust_root_cas: false,
            attestations: Vec::new(),
            tsa_cert_chain,
            // With a chain, cosign verifies under the certificate's own scheme.
            hash_algorithm: hash_algorithm.filter(|_| chain.is_none()),
            repository: None,
            trusted_root: None,
        }),
        // cosign takes the chain as its roots: the signature's own certificate must chain
        // to them, whoever it names.
        (None, Some(chain)) => Check::Keyless(KeylessCheck {
            tag_prefix: None,
            tuf: None,
            conditions: Vec::new(),
            identities: Vec::new(),
            ca: Some(KeyRef::Pem(chain.to_string())),
            rekor,
            rekor_keys,
            ignore_sct,
            ct_log_keys,
            attestations: Vec::new(),
            tsa_cert_chain,
            repository: None,
            trust_root_timestamps: false,
            trusted_root: None,
        }),
    };
    Ok(NormalAuthority::new(label, check))
}

/// A `type: Notary` entry's certificates: Kyverno puts `cert` and `certChain` together in
/// one notation trust store (`ca`, strict, any identity), so any of them may anchor the
/// signing certificate's chain: the node's [`Check::Notary`]. Its `rekor` and `ctlog` are
/// not read by Kyverno's notary verifier.
fn notary_authority(label: &str, c: &Certificates) -> Result<NormalAuthority, KyvernoError> {
    let parts: Vec<&str> =
        c.cert.iter().chain(&c.cert_chain).map(String::as_str).filter(|t| !t.trim().is_empty()).collect();
    if parts.is_empty() {
        return Err(KyvernoError::NoCertificate);
    }
    if let Some(v) = parts.iter().find(|v| v.contains("{{")) {
        let why = format!("certificates field {:?} is a Kyverno variable, not resolved on the node", v.trim());
        return Ok(NormalAuthority::new(label, Check::Unsupported(why)));
    }
    Ok(NormalAuthority::new(
        label,
        Check::Notary(NotaryCheck {
            certs: KeyRef::Pem(parts.join("\n")),
            tsa_certs: None,
            attestations: Vec::new(),
            conditions: Vec::new(),
        }),
    ))
}

/// Kyverno reads `imageRegistryCredentials.secrets` from its own namespace.
const KYVERNO_NAMESPACE: &str = "kyverno";

fn pull_secrets(vi: &VerifyImage, notes: &mut Vec<String>) -> Vec<SecretName> {
    let Some(creds) = vi.other.get("imageRegistryCredentials") else { return Vec::new() };
    if creds.get("providers").and_then(Value::as_array).is_some_and(|p| !p.is_empty()) {
        notes.push("imageRegistryCredentials.providers (cloud credential helpers) are not used on the node".into());
    }
    creds
        .get("secrets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|name| SecretName { namespace: KYVERNO_NAMESPACE.to_string(), name: name.to_string() })
        .collect()
}

pub(super) fn wildcard_regex(w: &str) -> String {
    let body: String = w
        .chars()
        .map(|c| match c {
            '*' => ".*".to_string(),
            '?' => ".".to_string(),
            c => regex::escape(&c.to_string()),
        })
        .collect();
    format!("^{body}$")
}

/// `ctlog.pubkey`: the CT log key SCTs must verify under instead of the trust root's (Kyverno
/// hands it to cosign as `CTLogPubKeys`); not read when SCTs are ignored.
fn ct_log_keys(c: Option<&Ctlog>) -> Vec<String> {
    c.filter(|c| c.ignore_sct != Some(true))
        .and_then(|c| c.pubkey.clone())
        .filter(|k| !k.trim().is_empty())
        .into_iter()
        .collect()
}

/// `ctlog.tsaCertChain`: Kyverno then has cosign verify RFC 3161 timestamps against it
/// (`UseSignedTimestamps`); Kyverno treats an empty field as an absent one.
fn tsa_chain(c: Option<&Ctlog>) -> Option<String> {
    c.and_then(|c| c.tsa_cert_chain.clone()).filter(|t| !t.trim().is_empty())
}

/// Kyverno's transparency-log default: required, in the public Rekor, unless ignoreTlog.
fn tlog(r: Option<&Rekor>) -> (Option<String>, Vec<String>) {
    match r {
        Some(Rekor { ignore_tlog: Some(true), .. }) => (None, Vec::new()),
        Some(r) => {
            (Some(r.url.clone().unwrap_or_else(|| PUBLIC_REKOR.to_string())), r.pubkey.clone().into_iter().collect())
        }
        None => (Some(PUBLIC_REKOR.to_string()), Vec::new()),
    }
}

fn key_authorities(label: &str, k: &Keys) -> Result<Vec<NormalAuthority>, KyvernoError> {
    let set = [k.public_keys.is_some(), k.kms.is_some(), k.secret.is_some()];
    if set.iter().filter(|b| **b).count() != 1 {
        return Err(KyvernoError::KeySources);
    }
    let unsupported = |why: String| Ok(vec![NormalAuthority::new(label, Check::Unsupported(why))]);
    let hash_algorithm = match k.signature_algorithm.as_deref().map(|a| HashAlgorithm::parse(a, "signatureAlgorithm")) {
        None => None,
        Some(Ok(h)) => Some(h),
        Some(Err(e @ HashAlgorithmError::Unsupported { .. })) => return unsupported(e.to_string()),
        Some(Err(e)) => return Err(KyvernoError::HashAlgorithm(e)),
    };
    let (rekor, rekor_keys) = tlog(k.rekor.as_ref());
    let ctlog = k.ctlog.as_ref();
    // A KMS key or a Secret's is one authority.
    let one_key = match (&k.kms, &k.secret) {
        (Some(kms), _) => {
            Some(KeyRef::Kms(KmsKey::parse(kms, "keys.kms").map_err(|e| KyvernoError::Kms(e.to_string()))?))
        }
        (None, Some(s)) => Some(KeyRef::Secret {
            namespace: s.namespace.clone(),
            name: s.name.clone(),
            key: Some("cosign.pub".into()),
        }),
        (None, None) => None,
    };
    if let Some(key) = one_key {
        let mut check = KeyCheck::new(key, rekor);
        check.rekor_keys = rekor_keys;
        check.hash_algorithm = hash_algorithm;
        check.tsa_cert_chain = tsa_chain(ctlog);
        return Ok(vec![NormalAuthority::new(label, Check::Key(check))]);
    }
    let text = k.public_keys.as_deref().expect("counted above");
    if text.contains("{{") {
        return unsupported(format!(
            "keys.publicKeys {:?} is a Kyverno variable, not resolved on the node",
            text.trim()
        ));
    }
    let pems = if text.trim_start().starts_with("k8s://") {
        return unsupported(format!("key reference {} is not resolved on the node; use keys.secret", text.trim()));
    } else {
        split_pem_keys(text).map_err(KyvernoError::PublicKeys)?
    };
    let mut out = pem_authorities(label, &pems, rekor);
    for a in &mut out {
        if let Check::Key(k) = &mut a.check {
            k.rekor_keys = rekor_keys.clone();
            k.hash_algorithm = hash_algorithm;
            k.tsa_cert_chain = tsa_chain(ctlog);
        }
    }
    Ok(out)
}

/// Namespaces a rule is limited to, from what the node can evaluate.
fn namespaces(rule: &Rule, notes: &mut Vec<String>) -> Namespaces {
    let is_plain = |n: &String| !n.contains(['*', '?']);
    let names = |r: &BTreeMap<String, Value>| -> Vec<String> {
        r.get("namespaces")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
            .unwrap_or_default()
    };
    let mut out = Namespaces::default();
    if let Some(m) = &rule.match_ {
        // Kyverno's engine reads `any` if given, else `all`, else `resources` (its validation
        // refuses them together, but a local file may hold them): what it ignores must not
        // narrow here. `resources` beside `any` is kept as one more alternative, which only
        // widens.
        let (all_entries, resources) = match (m.any.is_empty(), m.all.is_empty()) {
            (true, false) => (&m.all[..], None),
            (false, false) => {
                notes.push(format!("rule {}: match.all beside match.any is ignored, as Kyverno ignores it", rule.name));
                (&[][..], m.resources.as_ref())
            }
            _ => (&m.all[..], m.resources.as_ref()),
        };
        if m.resources.is_some() && resources.is_none() {
            notes.push(format!(
                "rule {}: match.resources beside match.all is ignored, as Kyverno ignores it",
                rule.name
            ));
        }
        // `any`: the rule covers the union; only if every entry names namespaces is it narrower.
        // An entry without `resources` (say, only `subjects`) covers every namespace, so it
        // counts as an empty list: no narrowing.
        let lists: Vec<Vec<String>> = m
            .any
            .iter()
            .map(|e| e.resources.as_ref().map(names).unwrap_or_default())
            .chain(resources.map(names))
            .collect();
        if !lists.is_empty() && lists.iter().all(|l| !l.is_empty()) {
            let all: Vec<String> = lists.into_iter().flatten().collect();
            if all.iter().all(is_plain) {
                out.include = all;
            } else {
                notes.push(format!("rule {}: namespace wildcards in match are applied to all namespaces", rule.name));
            }
        }
        // Each match entry narrows by its own namespaceSelector where the cluster reports the
        // namespace's labels (unknown labels select). With several entries, each is an
        // alternative of its own names and selector; one that names no namespaces and has
        // no selector (or has no resources) covers every namespace, and so does the rule.
        let entries: Vec<Option<&BTreeMap<String, Value>>> =
            m.any.iter().map(|e| e.resources.as_ref()).chain(resources.map(Some)).collect();
        let selectors: Vec<EntrySelectors> =
            entries.iter().map(|r| r.map(|r| entry_selectors(r, &rule.name, notes)).unwrap_or_default()).collect();
        // `all`: each entry must match, so each narrows by its plain names and its selectors.
        // What else an entry asks (object names, other objects' labels, subjects, wildcard
        // names) is not evaluated on the node: the rule then applies where Kyverno's might
        // not, never less.
        let mut widened = false;
        for e in all_entries {
            let Some(r) = e.resources.as_ref() else {
                widened = true;
                continue;
            };
            let include = names(r);
            let include = if include.iter().all(is_plain) {
                include
            } else {
                widened = true;
                Vec::new()
            };
            let EntrySelectors { namespaces: selector, pods } = entry_selectors(r, &rule.name, notes);
            widened |= !e.other.is_empty()
                || r.keys().any(|k| match k.as_str() {
                    "namespaces" | "namespaceSelector" | "kinds" => false,
                    "selector" => pods.is_none(),
                    _ => true,
                });
            let term = NamespaceTerm { include, selector, pods };
            if term.narrows() {
                out.all.push(term);
            }
        }
        if selectors.iter().any(|s| s.namespaces.is_some()) || out.all.iter().any(|t| t.selector.is_some()) {
            notes.push(format!(
                "rule {}: namespaceSelector reads namespace labels from the cluster; where they are not known \
                 (local files, a namespace not seen yet) the rule applies",
                rule.name
            ));
        }
        if selectors.iter().any(|s| s.pods.is_some()) || out.all.iter().any(|t| t.pods.is_some()) {
            notes.push(format!(
                "rule {}: selector reads the pod's labels as the runtime reports them (kubelet copies them from the \
                 pod); where they are not known the rule applies",
                rule.name
            ));
        }
        if widened {
            notes.push(format!(
                "rule {}: match.all conditions other than namespaces, namespaceSelector and a Pod's selector are not \
                 applied on the node (the rule applies wherever those allow)",
                rule.name
            ));
        }
        let by_pods = selectors.iter().any(|s| s.pods.is_some());
        if by_pods || selectors.iter().any(|s| s.namespaces.is_some()) {
            if let ([only], false) = (&selectors[..], by_pods) {
                out.selector = only.namespaces.clone();
            } else {
                let terms: Vec<NamespaceTerm> = entries
                    .iter()
                    .zip(selectors)
                    .map(|(r, EntrySelectors { namespaces: selector, pods })| {
                        let include = r.map(names).unwrap_or_default();
                        // A wildcard is not evaluated: that entry covers every name.
                        let include = if include.iter().all(is_plain) { include } else { Vec::new() };
                        NamespaceTerm { include, selector, pods }
                    })
                    .collect();
                if terms.iter().all(NamespaceTerm::narrows) {
                    out.include.clear();
                    out.any = terms;
                }
            }
        }
    }
    if let Some(x) = &rule.exclude {
        out.exclude = exclusion(x, &rule.name, notes);
    }
    out
}

/// A match entry's selectors the node applies: its `namespaceSelector`, and its `selector`
/// where the entry is for Pods only.
#[derive(Default)]
struct EntrySelectors {
    namespaces: Option<LabelSelector>,
    pods: Option<LabelSelector>,
}

/// Kyverno generates no rules for pod controllers from a rule whose match or exclude has a
/// `selector`, so an entry for Pods only selects by the pod's own labels, which the sandbox
/// carries. A selector of other kinds reads those objects' labels, which the node never
/// sees: not applied. One Kubernetes would refuse, or with wildcards, narrows nothing.
fn entry_selectors(r: &BTreeMap<String, Value>, rule: &str, notes: &mut Vec<String>) -> EntrySelectors {
    let mut parse = |field: &str| match LabelSelector::from_value(r.get(field)?) {
        Ok(sel) if sel.is_empty() => None,
        Ok(sel) => Some(sel),
        Err(e) => {
            notes.push(format!("rule {rule}: match {field}: {e}; that match entry is not narrowed by it"));
            None
        }
    };
    let namespaces = parse("namespaceSelector");
    let pods_only = r.get("kinds").and_then(Value::as_array).is_some_and(|kinds| {
        !kinds.is_empty() && kinds.iter().all(|k| k.as_str().is_some_and(|k| k.rsplit('/').next() == Some("Pod")))
    });
    let pods = match (r.contains_key("selector"), pods_only) {
        (false, _) => None,
        (true, true) => parse("selector"),
        (true, false) => {
            notes.push(format!(
                "rule {rule}: a match selector for kinds other than Pod reads those objects' labels, which the node \
                 does not see: not applied"
            ));
            None
        }
    };
    EntrySelectors { namespaces, pods }
}

/// The namespaces a rule's `exclude` takes out, as far as the node can tell. Kyverno excludes
/// a Pod when any `any` entry matches it, when every `all` entry does, or when the legacy
/// `resources` (with its `subjects`, `roles`, `clusterRoles`) does. The node can evaluate an
/// entry that names plain namespaces and, at most, kinds that include Pods; an entry it
/// cannot evaluate takes nothing out: under `any` that term is dropped, under `all` the whole
/// conjunction is (excluding on the other terms alone would exclude more than Kyverno does).
fn exclusion(x: &Filter, rule: &str, notes: &mut Vec<String>) -> Vec<String> {
    let not_applied = |notes: &mut Vec<String>, what: &str| {
        notes.push(format!("rule {rule}: an exclude {what} the node cannot evaluate is not applied"))
    };
    // Some(namespaces) for an entry the node can evaluate.
    let evaluable = |resources: Option<&BTreeMap<String, Value>>, other: &BTreeMap<String, Value>| {
        let r = resources?;
        if !other.is_empty() || !r.keys().all(|k| k == "namespaces" || k == "kinds") {
            return None;
        }
        let pods = |k: &Value| k.as_str().is_some_and(|k| matches!(k.rsplit('/').next(), Some("Pod" | "*")));
        if r.get("kinds").and_then(Value::as_array).is_some_and(|kinds| !kinds.iter().any(pods)) {
            return None; // an exclusion of other kinds never takes a Pod out
        }
        let ns: Vec<String> =
            r.get("namespaces")?.as_array()?.iter().map(|v| v.as_str().map(String::from)).collect::<Option<_>>()?;
        (!ns.is_empty() && ns.iter().all(|n| !n.contains(['*', '?']))).then_some(ns)
    };
    let mut out: Vec<String> = Vec::new();
    if x.resources.is_some() || !x.other.is_empty() {
        match evaluable(x.resources.as_ref(), &x.other) {
            Some(ns) => out.extend(ns),
            None => not_applied(notes, "entry"),
        }
    }
    for e in &x.any {
        match evaluable(e.resources.as_ref(), &e.other) {
            Some(ns) => out.extend(ns),
            None => not_applied(notes, "entry"),
        }
    }
    if !x.all.is_empty() {
        let sets: Option<Vec<Vec<String>>> = x.all.iter().map(|e| evaluable(e.resources.as_ref(), &e.other)).collect();
        match sets {
            Some(sets) => {
                let mut common = sets[0].clone();
                common.retain(|n| sets.iter().all(|s| s.contains(n)));
                out.extend(common);
            }
            None => not_applied(notes, "`all` conjunction"),
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::labels::Labels;

    fn import(yaml: &str) -> Result<Imported, Vec<String>> {
        super::super::import(&serde_yaml::from_str::<Value>(yaml).unwrap())
    }

    fn policy(api: &str, rule: &str) -> String {
        format!("apiVersion: {api}\nkind: ClusterPolicy\nmetadata: {{name: p}}\nspec:\n  validationFailureAction: Enforce\n  rules:\n  - name: r\n{rule}")
    }

    const VERIFY: &str = "    verifyImages:\n    - imageReferences: [\"reg.io/*\"]\n      attestors: [{entries: [{keys: {kms: \"awskms:///arn:aws:kms:us-east-1:111122223333:key/k\"}}]}]\n";

    #[test]
    fn a_pattern_without_tag_is_noted() {
        let p = import(&policy("kyverno.io/v1", &VERIFY.replace("reg.io/*", "reg.io/app"))).unwrap();
        assert!(p.notes.iter().any(|n| n.contains("covers no image")), "{:?}", p.notes);
    }

    #[test]
    fn v2beta1_is_read_like_v1() {
        let p = import(&policy("kyverno.io/v2beta1", VERIFY)).unwrap();
        assert_eq!(p.policies.len(), 1);
    }

    #[test]
    fn rules_for_other_kinds_check_no_container_and_wildcard_kinds_are_refused() {
        let only = |kinds: &str| format!("    match: {{any: [{{resources: {{kinds: [{kinds}]}}}}]}}\n{VERIFY}");
        let p = import(&policy("kyverno.io/v1", &only("TaskRun"))).unwrap();
        assert!(p.policies.is_empty() && p.notes.iter().any(|n| n.contains("no Pod")), "{:?}", p.notes);
        assert!(import(&policy("kyverno.io/v1", &only("cdi.kubevirt.io/v1beta1/DataVolume")))
            .unwrap()
            .policies
            .is_empty());
        assert_eq!(import(&policy("kyverno.io/v1", &only("Deployment, TaskRun"))).unwrap().policies.len(), 1);
        assert_eq!(import(&policy("kyverno.io/v1", &only("v1/Pod"))).unwrap().policies.len(), 1);
        let err = import(&policy("kyverno.io/v1", &only("\"*\""))).unwrap_err();
        assert!(err[0].contains("wildcard kinds"), "{err:?}");
    }

    #[test]
    fn admission_false_with_verify_images_is_refused() {
        let yaml = policy("kyverno.io/v1", VERIFY).replace("spec:\n", "spec:\n  admission: false\n");
        assert!(import(&yaml).unwrap_err()[0].contains("spec.admission is false"));
    }

    #[test]
    fn keys_given_as_variables_fail_closed() {
        let rule = VERIFY.replace(
            "{kms: \"awskms:///arn:aws:kms:us-east-1:111122223333:key/k\"}",
            "{publicKeys: \"{{ keys.data.production }}\"}",
        );
        let p = import(&policy("kyverno.io/v1", &rule)).unwrap();
        let Check::Unsupported(why) = &p.policies[0].requirements[0].authorities[0].check else { panic!("{p:?}") };
        assert!(why.contains("variable"), "{why}");
        let rule = VERIFY.replace(
            "{keys: {kms: \"awskms:///arn:aws:kms:us-east-1:111122223333:key/k\"}}",
            "{keyless: {subject: \"{{ request.object.subject }}\", issuer: \"https://i\"}}",
        );
        let p = import(&policy("kyverno.io/v1", &rule)).unwrap();
        assert!(matches!(&p.policies[0].requirements[0].authorities[0].check, Check::Unsupported(_)));
    }

    /// `keyless.additionalExtensions` imported to extension checks on the identity (by
    /// cosign's name or OID; values are Kyverno wildcards). Before, the attestor failed closed
    /// ("not applied on the node"); a key Kyverno does not know still does.
    #[test]
    fn keyless_additional_extensions_are_checked() {
        let keyless = |ext: &str| {
            VERIFY.replace(
                "{keys: {kms: \"awskms:///arn:aws:kms:us-east-1:111122223333:key/k\"}}",
                &format!("{{keyless: {{subject: \"https://github.com/*\", issuer: \"https://i\", additionalExtensions: {ext}}}}}"),
            )
        };
        let p = import(&policy(
            "kyverno.io/v1",
            &keyless("{githubWorkflowRepository: \"example/*\", 1.3.6.1.4.1.57264.1.2: push}"),
        ))
        .unwrap();
        let Check::Keyless(k) = &p.policies[0].requirements[0].authorities[0].check else { panic!("{p:?}") };
        let want: BTreeMap<String, String> = [
            ("1.3.6.1.4.1.57264.1.2".to_string(), "^push$".to_string()),
            ("1.3.6.1.4.1.57264.1.5".to_string(), "^example/.*$".to_string()),
        ]
        .into();
        assert_eq!(k.identities[0].extensions, want);
        let id = k.identities[0].compile().unwrap();
        assert_eq!(id.extensions.len(), 2);
        let refused = |ext: &str, why: &str| {
            let p = import(&policy("kyverno.io/v1", &keyless(ext))).unwrap();
            let Check::Unsupported(w) = &p.policies[0].requirements[0].authorities[0].check else { panic!("{p:?}") };
            assert!(w.contains(why), "{w}");
        };
        refused("{buildSignerUri: x}", "\"buildSignerUri\" is not a certificate extension Kyverno checks");
        // Review findings: the same OID by name and by OID kept one of the two patterns
        // (Kyverno requires both); a variable was compared literally.
        refused(
            "{githubWorkflowRef: \"*\", 1.3.6.1.4.1.57264.1.6: refs/heads/main}",
            "names 1.3.6.1.4.1.57264.1.6 twice",
        );
        refused("{githubWorkflowRef: \"{{ request.object.ref }}\"}", "is a Kyverno variable");
    }

    /// Kyverno refuses tag-only references under `verifyDigest` when it does not pin them
    /// itself (`mutateDigest: false`); the node does the same, with or without attestors.
    #[test]
    fn verify_digest_without_mutation_refuses_tag_only_references() {
        let rule = "    verifyImages:\n    - imageReferences: [\"*\"]\n      mutateDigest: false\n";
        let p = import(&policy("kyverno.io/v1", rule)).unwrap();
        assert_eq!(p.policies.len(), 1, "{:?}", p.notes);
        let compiled = crate::policy::compile::compile(
            &p.policies[0],
            &crate::policy::compile::FilesOnly(std::path::Path::new("/")),
        )
        .unwrap()
        .policy;
        let digest = "reg.io/a@sha256:5504f2a95018e3d8a52d80d9e1a128c6ea337581808ff9fe96f5628ce2336350";
        assert!(compiled.matches("reg.io/a:v1", "reg.io/a", None), "a tag-only reference is refused");
        assert!(!compiled.matches(digest, "reg.io/a", None), "a digest passes");
        let rule = "    verifyImages:\n    - imageReferences: [\"*\"]\n      verifyDigest: true\n";
        assert!(import(&policy("kyverno.io/v1", rule)).unwrap().policies.is_empty(), "mutateDigest pins it itself");
    }

    fn rule(yaml: &str) -> Rule {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn pod_at<'a>(namespace: &'a str, pod_labels: Option<&'a Labels>) -> crate::policy::model::PodPlace<'a> {
        crate::policy::model::PodPlace { namespace: Some(namespace), namespace_labels: None, pod_labels }
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// #19: a match entry for Pods with a `selector` (Kyverno then generates no controller
    /// rules) selects by the pod's own labels; it was not applied, so every pod was checked.
    #[test]
    fn a_pod_selector_selects_by_the_pods_labels() {
        let mut notes = Vec::new();
        let r =
            rule("name: r\nmatch: {any: [{resources: {kinds: [Pod], selector: {matchLabels: {verify: 'true'}}}}]}\n");
        let ns = namespaces(&r, &mut notes);
        assert!(ns.has_pod_selector());
        assert!(notes.iter().any(|n| n.contains("selector reads the pod's labels")), "{notes:?}");
        let (yes, no) = (labels(&[("verify", "true")]), labels(&[("verify", "no")]));
        assert!(ns.covers_at(&pod_at("a", Some(&yes))));
        assert!(!ns.covers_at(&pod_at("a", Some(&no))), "not selected");
        assert!(!ns.covers_at(&pod_at("a", Some(&Labels::new()))), "no labels: not selected");
        assert!(ns.covers_at(&pod_at("a", None)), "labels unknown: the rule applies");
        // Alternatives: labelled pods anywhere, or any pod in prod.
        let r = rule("name: r\nmatch: {any: [{resources: {kinds: [v1/Pod], selector: {matchLabels: {verify: 'true'}}}}, {resources: {kinds: [Pod], namespaces: [prod]}}]}\n");
        let ns = namespaces(&r, &mut notes);
        assert!(ns.covers_at(&pod_at("prod", Some(&no))));
        assert!(ns.covers_at(&pod_at("dev", Some(&yes))));
        assert!(!ns.covers_at(&pod_at("dev", Some(&no))));
        // match.all: each entry must hold.
        let r = rule("name: r\nmatch: {all: [{resources: {kinds: [Pod], namespaces: [prod], selector: {matchLabels: {verify: 'true'}}}}]}\n");
        let ns = namespaces(&r, &mut notes);
        assert!(ns.covers_at(&pod_at("prod", Some(&yes))));
        assert!(!ns.covers_at(&pod_at("prod", Some(&no))));
        assert!(!ns.covers_at(&pod_at("dev", Some(&yes))));
    }

    /// Kyverno's engine reads `any`, else `all`, else `resources`: what it ignores in a
    /// combination its validation refuses (a local file may hold one) must not narrow.
    #[test]
    fn what_kyverno_ignores_in_a_match_does_not_narrow() {
        let mut notes = Vec::new();
        let r = rule("name: r\nmatch: {any: [{resources: {kinds: [Pod]}}], all: [{resources: {kinds: [Pod], selector: {matchLabels: {verify: 'true'}}}}]}\n");
        let ns = namespaces(&r, &mut notes);
        assert!(ns.covers_at(&pod_at("a", Some(&labels(&[])))), "all is ignored beside any");
        assert!(notes.iter().any(|n| n.contains("match.all beside match.any is ignored")), "{notes:?}");
        let r = rule(
            "name: r\nmatch: {all: [{resources: {kinds: [Pod]}}], resources: {kinds: [Pod], namespaces: [prod]}}\n",
        );
        let ns = namespaces(&r, &mut notes);
        assert!(ns.covers_at(&pod_at("dev", None)), "resources is ignored beside all");
        assert!(notes.iter().any(|n| n.contains("match.resources beside match.all is ignored")), "{notes:?}");
    }

    /// What the node cannot read the way Kyverno does narrows nothing: a selector of other
    /// kinds (their labels are not the pod's), or with wildcards.
    #[test]
    fn selectors_the_node_cannot_read_as_kyverno_does_narrow_nothing() {
        let none = labels(&[]);
        for (entry, why) in [
            ("{kinds: [Deployment], selector: {matchLabels: {verify: 'true'}}}", "kinds other than Pod"),
            ("{kinds: [Pod, Deployment], selector: {matchLabels: {verify: 'true'}}}", "kinds other than Pod"),
            ("{selector: {matchLabels: {verify: 'true'}}}", "kinds other than Pod"),
            ("{kinds: [Pod], selector: {matchLabels: {app: 'web-*'}}}", "wildcards are not label syntax"),
            ("{kinds: [Pod], namespaceSelector: {matchLabels: {env: 'prod-*'}}}", "wildcards are not label syntax"),
        ] {
            let mut notes = Vec::new();
            let ns = namespaces(&rule(&format!("name: r\nmatch: {{any: [{{resources: {entry}}}]}}\n")), &mut notes);
            assert!(ns.covers_at(&pod_at("a", Some(&none))), "{entry}: the rule applies");
            assert!(notes.iter().any(|n| n.contains(why)), "{entry}: {notes:?}");
            let mut notes = Vec::new();
            let ns = namespaces(&rule(&format!("name: r\nmatch: {{all: [{{resources: {entry}}}]}}\n")), &mut notes);
            assert!(ns.covers_at(&pod_at("a", Some(&none))), "{entry} under all: the rule applies");
        }
        // A wildcard namespaceSelector was taken literally before: `env: prod-*` selected no
        // namespace where Kyverno's expansion selects `env: prod-1`.
        use crate::policy::labels::NamespaceLabels;
        let mut notes = Vec::new();
        let ns = namespaces(&rule("name: r\nmatch: {any: [{resources: {kinds: [Pod], namespaceSelector: {matchLabels: {env: 'prod-*'}}}}]}\n"), &mut notes);
        let known = NamespaceLabels::listed([("p1".to_string(), labels(&[("env", "prod-1")]))]);
        assert!(ns.covers_with(Some("p1"), known.get(Some("p1")).map(|l| l.as_ref())));
    }

    #[test]
    fn namespaces_narrow_only_when_every_match_entry_names_them() {
        let mut notes = Vec::new();
        let r = rule("name: r\nmatch: {any: [{resources: {namespaces: [a]}}, {resources: {namespaces: [b]}}]}\n");
        assert_eq!(namespaces(&r, &mut notes).include, ["a", "b"]);
        let r = rule("name: r\nmatch: {any: [{resources: {namespaces: [a]}}, {subjects: [{kind: User, name: u}]}]}\n");
        assert!(namespaces(&r, &mut notes).include.is_empty(), "an entry without resources covers all");
        let r = rule("name: r\nmatch: {any: [{resources: {namespaces: [\"prod-*\"]}}]}\n");
        assert!(namespaces(&r, &mut notes).include.is_empty(), "wildcards widen to all namespaces");
        let r = rule(
            "name: r\nexclude: {any: [{resources: {namespaces: [kube-system], selector: {matchLabels: {a: b}}}}]}\n",
        );
        assert!(namespaces(&r, &mut notes).exclude.is_empty(), "a partial exclude is not applied");
    }

    /// Review finding: `exclude.all` is a conjunction. Before, each entry excluded on its own
    /// and entries without `resources` were dropped, so an exclusion of one user's pods in
    /// `dev` excluded every pod there; exclusions of other kinds, or with subjects beside a
    /// legacy `resources`, took Pods out too.
    #[test]
    fn exclusions_take_out_no_more_than_kyverno_does() {
        let mut notes = Vec::new();
        let mut excluded = |yaml: &str| namespaces(&rule(yaml), &mut notes).exclude;
        let none: Vec<String> = Vec::new();
        assert_eq!(
            excluded(
                "name: r\nexclude: {all: [{resources: {namespaces: [dev]}}, {subjects: [{kind: User, name: ci}]}]}\n"
            ),
            none,
            "a conjunction with a subject"
        );
        assert_eq!(
            excluded("name: r\nexclude: {all: [{resources: {namespaces: [a]}}, {resources: {namespaces: [b]}}]}\n"),
            none,
            "no namespace is both a and b"
        );
        assert_eq!(
            excluded(
                "name: r\nexclude: {all: [{resources: {namespaces: [a, b]}}, {resources: {namespaces: [b, c]}}]}\n"
            ),
            ["b"]
        );
        assert_eq!(
            excluded("name: r\nexclude: {resources: {namespaces: [dev]}, subjects: [{kind: User, name: ci}]}\n"),
            none
        );
        assert_eq!(
            excluded("name: r\nexclude: {any: [{resources: {kinds: [Deployment], namespaces: [dev]}}]}\n"),
            none
        );
        assert_eq!(excluded("name: r\nexclude: {any: [{resources: {kinds: [v1/Pod], namespaces: [dev]}}]}\n"), ["dev"]);
        assert_eq!(
            excluded(
                "name: r\nexclude: {any: [{resources: {namespaces: [a]}}, {subjects: [{kind: User, name: u}]}]}\n"
            ),
            ["a"],
            "under any, the entry the node cannot evaluate is dropped alone"
        );
        assert_eq!(excluded("name: r\nexclude: {resources: {namespaces: [kube-system]}}\n"), ["kube-system"]);
        assert!(notes.iter().any(|n| n.contains("`all` conjunction the node cannot evaluate")), "{notes:?}");
    }

    /// #19: a ClusterPolicy rule's match namespaceSelector narrows by the labels the cluster
    /// reports; with them unknown the rule applies.
    #[test]
    fn a_match_namespace_selector_narrows_by_labels_where_known() {
        use crate::policy::labels::NamespaceLabels;
        let mut notes = Vec::new();
        let r = rule("name: r\nmatch: {any: [{resources: {kinds: [Pod], namespaceSelector: {matchExpressions: [{key: env, operator: In, values: [prod]}]}}}]}\n");
        let ns = namespaces(&r, &mut notes);
        assert!(notes.iter().any(|n| n.contains("namespaceSelector reads namespace labels")), "{notes:?}");
        let known = NamespaceLabels::listed([
            ("prod".to_string(), [("env".to_string(), "prod".to_string())].into()),
            ("dev".to_string(), [("env".to_string(), "dev".to_string())].into()),
        ]);
        let covers = |n: &str| ns.covers_with(Some(n), known.get(Some(n)).map(|l| l.as_ref()));
        assert!(covers("prod"));
        assert!(!covers("dev"), "dev is not labelled env=prod");
        assert!(covers("unseen"), "a namespace not seen yet: the rule applies");
        assert!(ns.covers(Some("dev")), "labels unknown: the rule applies");
        // An entry without resources covers every namespace, and so the rule.
        let r = rule("name: r\nmatch: {any: [{resources: {namespaceSelector: {matchLabels: {a: b}}}}, {subjects: [{kind: User, name: u}]}]}\n");
        assert!(namespaces(&r, &mut notes).is_all());
        // A selector Kubernetes would refuse narrows nothing.
        let r =
            rule("name: r\nmatch: {resources: {namespaceSelector: {matchExpressions: [{key: a, operator: Is}]}}}\n");
        assert!(namespaces(&r, &mut notes).selector.is_none());
        assert!(notes.iter().any(|n| n.contains("\"Is\"")), "{notes:?}");
    }

    /// #19 leftover: `match.all` used to be passed over (the rule covered every namespace);
    /// each entry must now cover the namespace, by its names and its selector.
    #[test]
    fn match_all_entries_each_narrow() {
        use crate::policy::labels::NamespaceLabels;
        let mut notes = Vec::new();
        let r = rule(
            "name: r\nmatch: {all: [{resources: {kinds: [Pod], namespaces: [prod, staging]}}, \
             {resources: {namespaceSelector: {matchLabels: {tier: web}}}}]}\n",
        );
        let ns = namespaces(&r, &mut notes);
        let known = NamespaceLabels::listed([
            ("prod".to_string(), [("tier".to_string(), "web".to_string())].into()),
            ("staging".to_string(), [("tier".to_string(), "db".to_string())].into()),
            ("dev".to_string(), [("tier".to_string(), "web".to_string())].into()),
        ]);
        let covers = |n: &str| ns.covers_with(Some(n), known.get(Some(n)).map(|l| l.as_ref()));
        assert!(covers("prod"));
        assert!(!covers("staging"), "not labelled tier=web");
        assert!(!covers("dev"), "not among the names");
        assert!(!notes.iter().any(|n| n.contains("match.all")), "{notes:?}");
        // Conditions the node cannot evaluate are named, and narrow nothing.
        let r = rule("name: r\nmatch: {all: [{resources: {namespaces: [prod], selector: {matchLabels: {app: x}}}}]}\n");
        let ns = namespaces(&r, &mut notes);
        assert!(ns.covers(Some("prod")) && !ns.covers(Some("dev")));
        assert!(notes.iter().any(|n| n.contains("match.all conditions other than")), "{notes:?}");
    }

    /// #19 leftover: several match entries with namespaceSelectors used to widen to every
    /// namespace (the selectors were dropped); each entry now narrows by its own names and
    /// selector, and the rule covers a namespace one of them covers.
    #[test]
    fn several_match_entries_each_narrow_by_their_own_selector() {
        use crate::policy::labels::NamespaceLabels;
        let mut notes = Vec::new();
        let r = rule(
            "name: r\nmatch: {any: [{resources: {kinds: [Pod], namespaceSelector: {matchLabels: {env: prod}}}}, \
             {resources: {kinds: [Pod], namespaces: [ci], namespaceSelector: {matchExpressions: [{key: team, operator: \
             In, values: [build]}]}}}, {resources: {kinds: [Pod], namespaces: [sandbox]}}]}\n",
        );
        let ns = namespaces(&r, &mut notes);
        assert_eq!(ns.any.len(), 3, "{ns:?}");
        let labelled = |pairs: &[(&str, &[(&str, &str)])]| {
            NamespaceLabels::listed(
                pairs
                    .iter()
                    .map(|(n, l)| (n.to_string(), l.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())),
            )
        };
        let known = labelled(&[
            ("payments", &[("env", "prod")]),
            ("dev", &[("env", "dev")]),
            ("ci", &[("team", "build")]),
            ("ci-other", &[("team", "build")]),
            ("sandbox", &[]),
        ]);
        let covers = |n: &str| ns.covers_with(Some(n), known.get(Some(n)).map(|l| l.as_ref()));
        assert!(covers("payments"), "the first entry's selector");
        assert!(!covers("dev"), "no entry covers dev");
        assert!(covers("ci"), "the second entry: its name and its selector");
        assert!(!covers("ci-other"), "the second entry's selector, not its name");
        assert!(covers("sandbox"), "the third entry's name, no selector");
        assert!(covers("unseen"), "labels unknown: the selectors select");
        assert!(ns.covers(Some("dev")), "labels unknown: the rule applies");
        assert!(ns.covers(None), "an unknown namespace: the first entry names none and its selector selects");
        assert!(notes.iter().any(|n| n.contains("namespaceSelector reads namespace labels")), "{notes:?}");
        // Through the importer, into the normal form and back.
        let yaml = policy(
            "kyverno.io/v1",
            &format!(
                "    match: {{any: [{{resources: {{namespaceSelector: {{matchLabels: {{env: prod}}}}}}}}, {{resources: \
                 {{namespaces: [sandbox]}}}}]}}\n{VERIFY}"
            ),
        );
        let p = import(&yaml).unwrap();
        let n = &p.policies[0].namespaces;
        assert_eq!((n.any.len(), n.include.len()), (2, 0), "{n:?}");
        let text = serde_yaml::to_string(&p.policies[0]).unwrap();
        assert_eq!(&serde_yaml::from_str::<NormalPolicy>(&text).unwrap(), &p.policies[0]);
    }

    /// A ClusterPolicy with one `verifyImages` entry for `registry.example/*`, `entry` the
    /// YAML of its one attestor entry (and `extra` more of the verifyImages entry).
    fn with_entry(entry: &str, extra: &str) -> String {
        policy(
            "kyverno.io/v1",
            &format!(
                "    verifyImages:\n    - imageReferences: [\"registry.example/*\"]\n{extra}      attestors:\n      - entries:\n{}",
                indent(entry, 8)
            ),
        )
    }

    fn indent(text: &str, n: usize) -> String {
        text.lines().map(|l| format!("{}{l}\n", " ".repeat(n))).collect()
    }

    fn cosign_vector(name: &str) -> String {
        crate::testutil::vector(name)
    }

    /// `- certificates:` with `cert` and `certChain` (each optional) and `more` YAML.
    fn certificates(cert: Option<&str>, chain: Option<&str>, more: &str) -> String {
        let mut out = "- certificates:\n".to_string();
        if let Some(c) = cert {
            out += &format!("    cert: |\n{}", indent(c, 6));
        }
        if let Some(c) = chain {
            out += &format!("    certChain: |\n{}", indent(c, 6));
        }
        out + more
    }

    fn only_check(yaml: &str) -> Check {
        let p = import(yaml).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(p.policies.len(), 1, "{:?}", p.notes);
        let r = &p.policies[0].requirements;
        assert_eq!((r.len(), r[0].authorities.len()), (1, 1));
        r[0].authorities[0].check.clone()
    }

    /// A rule's `repository`, and an attestor's overriding it: where signatures are read
    /// (normalised when compiled). Before, an attestor's failed closed and a rule's was noted
    /// and passed over (signatures were read from the image's repository).
    #[test]
    fn signature_repositories_of_rules_and_attestors() {
        use crate::policy::compile::FilesOnly;
        let entry = "- keys:\n    publicKeys: |\n      -----BEGIN PUBLIC KEY-----\n      MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEstG5Xl7UxkQsmLUxdmS85HLgYBFy\n      c/P/oQ22iazkKm8P0sNlaZiaZC4TSEea3oh2Pim0+wxSubhKoK+7jq9Egg==\n      -----END PUBLIC KEY-----\n";
        let repo_of = |c: Check| match c {
            Check::Key(k) => k.repository,
            other => panic!("{other:?}"),
        };
        assert_eq!(repo_of(only_check(&with_entry(entry, ""))), None);
        let rule = "      repository: ghcr.io/org/sigs\n";
        assert_eq!(repo_of(only_check(&with_entry(entry, rule))).as_deref(), Some("ghcr.io/org/sigs"));
        let own = format!("{entry}  repository: quay.io/other/sigs\n");
        assert_eq!(repo_of(only_check(&with_entry(&own, rule))).as_deref(), Some("quay.io/other/sigs"));
        let p = import(&with_entry(entry, rule)).unwrap();
        assert!(!p.notes.iter().any(|n| n.contains("repository")), "{:?}", p.notes);
        // Compiled: the signer reads from the normalised repository; one with a tag is refused.
        let compiled = crate::policy::compile::compile(&p.policies[0], &FilesOnly(std::path::Path::new("/"))).unwrap();
        let crate::policy::AuthorityKind::Signed(by) = &compiled.policy.requirements[0].authorities[0].kind else {
            panic!()
        };
        assert_eq!(by.source.as_ref().and_then(|s| s.repository.as_deref()), Some("ghcr.io/org/sigs"));
        let short = import(&with_entry(entry, "      repository: org/sigs\n")).unwrap();
        let compiled =
            crate::policy::compile::compile(&short.policies[0], &FilesOnly(std::path::Path::new("/"))).unwrap();
        let crate::policy::AuthorityKind::Signed(by) = &compiled.policy.requirements[0].authorities[0].kind else {
            panic!()
        };
        assert_eq!(by.source.as_ref().and_then(|s| s.repository.as_deref()), Some("docker.io/org/sigs"));
        let tagged = import(&with_entry(entry, "      repository: ghcr.io/org/sigs:v1\n")).unwrap();
        let err =
            crate::policy::compile::compile(&tagged.policies[0], &FilesOnly(std::path::Path::new("/"))).unwrap_err();
        assert!(err.iter().any(|e| e.to_string().contains("no tag or digest")), "{err:?}");
    }

    /// #19: `certificates` used to import to "certificate-based verification is not
    /// implemented"; it is the certificate's key, its chain, and Kyverno's tlog and SCT
    /// defaults.
    #[test]
    fn a_certificates_entry_imports_to_a_certificate_check_with_kyvernos_defaults() {
        let (leaf, chain) = (cosign_vector("leaf-email.pem"), cosign_vector("chain.pem"));
        let check = only_check(&with_entry(&certificates(Some(&leaf), None, ""), ""));
        let want = CertificateCheck {
            tag_prefix: None,
            tuf: None,
            conditions: Vec::new(),
            certificate: leaf.clone(),
            chain: None,
            rekor: Some(PUBLIC_REKOR.into()),
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
        assert_eq!(check, Check::Certificate(want.clone()));
        let more = "    rekor: {ignoreTlog: true}\n    ctlog: {ignoreSCT: true}\n";
        let check = only_check(&with_entry(&certificates(Some(&leaf), Some(&chain), more), ""));
        let ignoring = CertificateCheck { chain: Some(chain.clone()), rekor: None, ignore_sct: true, ..want.clone() };
        assert_eq!(check, Check::Certificate(ignoring));
        let more = "    rekor: {url: \"https://rekor.example\", pubkey: \"PEM\"}\n";
        let Check::Certificate(c) = only_check(&with_entry(&certificates(Some(&leaf), None, more), "")) else {
            panic!()
        };
        assert_eq!((c.rekor.as_deref(), &c.rekor_keys[..]), (Some("https://rekor.example"), &["PEM".to_string()][..]));
        // Base64 of the PEM, as Kyverno also reads it.
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&leaf);
        let check = only_check(&with_entry(&format!("- certificates: {{cert: {b64}}}\n"), ""));
        assert_eq!(check, Check::Certificate(want));
        // The chain alone: cosign's roots for the signature's own certificate, any holder.
        let check = only_check(&with_entry(&certificates(None, Some(&chain), ""), ""));
        let Check::Keyless(k) = check else { panic!("{check:?}") };
        assert_eq!((k.ca, k.identities.len()), (Some(KeyRef::Pem(chain)), 0));
    }

    #[test]
    fn certificates_the_node_cannot_check_fail_closed_and_empty_ones_are_refused() {
        let leaf = cosign_vector("leaf-email.pem");
        let unsupported = |yaml: String| match only_check(&yaml) {
            Check::Unsupported(why) => why,
            other => panic!("{other:?}"),
        };
        let why = unsupported(with_entry("- certificates: {cert: \"{{ certs.data.leaf }}\"}\n", ""));
        assert!(why.contains("variable"), "{why}");
        // A TSA chain is carried to the node, which verifies timestamps under it.
        let check = only_check(&with_entry(&certificates(Some(&leaf), None, "    ctlog: {tsaCertChain: x}\n"), ""));
        assert!(matches!(&check, Check::Certificate(c) if c.tsa_cert_chain.as_deref() == Some("x")), "{check:?}");
        let chain = cosign_vector("chain.pem");
        // A CT log key is carried to the node, which verifies the SCT under it; not when ignored.
        let check = only_check(&with_entry(&certificates(Some(&leaf), Some(&chain), "    ctlog: {pubkey: x}\n"), ""));
        assert!(matches!(&check, Check::Certificate(c) if c.ct_log_keys == ["x"]), "{check:?}");
        let more = "    ctlog: {pubkey: x, ignoreSCT: true}\n";
        let check = only_check(&with_entry(&certificates(Some(&leaf), Some(&chain), more), ""));
        assert!(matches!(&check, Check::Certificate(c) if c.ct_log_keys.is_empty()), "{check:?}");
        let err = import(&with_entry("- certificates: {cert: \"\"}\n", "")).unwrap_err();
        assert!(err[0].contains("certificates needs cert, certChain or both"), "{err:?}");
        let err = import(&with_entry("- certificates: {cert: x, url: y}\n", "")).unwrap_err();
        assert!(err[0].contains("url"), "{err:?}");
    }

    #[test]
    fn a_certificate_attests_too() {
        let leaf = cosign_vector("leaf-email.pem");
        let entry = indent(&certificates(Some(&leaf), None, ""), 10);
        let rule = format!(
            "    verifyImages:\n    - imageReferences: [\"registry.example/*\"]\n      attestations:\n      - type: https://slsa.dev/provenance/v1\n        attestors:\n        - entries:\n{entry}"
        );
        let Check::Certificate(c) = only_check(&policy("kyverno.io/v1", &rule)) else { panic!() };
        assert_eq!(c.attestations, ["https://slsa.dev/provenance/v1"]);
        // Review finding: with both, `predicateType` was read; Kyverno reads `type` and falls
        // back to the deprecated `predicateType` only when `type` is empty.
        let both = rule.replace(
            "      - type: https://slsa.dev/provenance/v1\n",
            "      - type: https://slsa.dev/provenance/v1\n        predicateType: https://example.com/other\n",
        );
        let Check::Certificate(c) = only_check(&policy("kyverno.io/v1", &both)) else { panic!() };
        assert_eq!(c.attestations, ["https://slsa.dev/provenance/v1"]);
        let deprecated = rule.replace("      - type: https", "      - type: \"\"\n        predicateType: https");
        let Check::Certificate(c) = only_check(&policy("kyverno.io/v1", &deprecated)) else { panic!() };
        assert_eq!(c.attestations, ["https://slsa.dev/provenance/v1"]);
    }

    /// End to end with the cosign vectors: import, compile, evaluate.
    mod certificate_semantics {
        use super::*;
        use crate::evaluate::{evaluate, Evidence};
        use crate::policy::compile::{compile, FilesOnly};
        use crate::registry::{SignatureLayer, Signatures};
        use crate::verify::trust::TrustRoot;
        use crate::verify::Context;

        const DIGEST: &str = "sha256:479b4d26d48a0d046ea38ef2715bfa9bdc1ddff89de923a682848412d511d3a5";
        const IMAGE: &str = "registry.example/team/app:v1";

        fn compiled(yaml: &str) -> Result<crate::policy::Policy, String> {
            let p = import(yaml).unwrap();
            compile(&p.policies[0], &FilesOnly(std::path::Path::new("/")))
                .map(|c| c.policy)
                .map_err(|e| e.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
        }

        fn allowed(
            policy: &crate::policy::Policy,
            layers: Vec<SignatureLayer>,
            digest: &str,
            trust: &TrustRoot,
        ) -> Result<(), Vec<String>> {
            let ev = Evidence {
                reference: IMAGE.into(),
                signatures: Some(Ok(Signatures { location: "l".into(), layers })),
                ..Default::default()
            };
            let e = evaluate(&[policy], &ev, digest, Context { trust, now: Context::now_secs() });
            if e.allowed {
                Ok(())
            } else {
                Err(e.failures)
            }
        }

        /// A signature by the vectors' leaf key over the payload for DIGEST, no certificate.
        fn signed() -> SignatureLayer {
            SignatureLayer {
                payload: cosign_vector("payload.json").into_bytes(),
                signature: cosign_vector("payload-leaf.sig").trim().into(),
                ..Default::default()
            }
        }

        #[test]
        fn the_certificates_key_must_have_signed_this_digest() {
            let (leaf, chain) = (cosign_vector("leaf-email.pem"), cosign_vector("chain.pem"));
            let no_tlog = "    rekor: {ignoreTlog: true}\n    ctlog: {ignoreSCT: true}\n";
            let empty = TrustRoot::empty();
            for chain in [None, Some(chain.as_str())] {
                let p = compiled(&with_entry(&certificates(Some(&leaf), chain, no_tlog), "")).unwrap();
                allowed(&p, vec![signed()], DIGEST, &empty).unwrap();
                // Another key's signature over the same payload; the same key for another digest.
                let stranger = crate::testutil::TestSigner::new(5).sign_raw(&signed().payload);
                assert!(allowed(&p, vec![stranger], DIGEST, &empty).is_err());
                let other = DIGEST.replace("479b", "0000");
                let err = allowed(&p, vec![signed()], &other, &empty).unwrap_err();
                assert!(err[0].contains("is for digest"), "{err:?}");
            }
            // A certificate that does not chain to the chain's root: the policy does not
            // compile (and so stands in failing closed).
            let other_root = cosign_vector("other-root.pem");
            let err = compiled(&with_entry(&certificates(Some(&leaf), Some(&other_root), no_tlog), "")).unwrap_err();
            assert!(err.contains("does not chain to the root of its certificate chain"), "{err}");
            // Kyverno's defaults: a Rekor entry, and with a chain an SCT. Neither can be had
            // here: refused, never passed.
            let p = compiled(&with_entry(&certificates(Some(&leaf), None, ""), "")).unwrap();
            let err = allowed(&p, vec![signed()], DIGEST, &empty).unwrap_err();
            assert!(err[0].contains("transparency-log entry is required"), "{err:?}");
            let p =
                compiled(&with_entry(&certificates(Some(&leaf), Some(&chain), "    rekor: {ignoreTlog: true}\n"), ""))
                    .unwrap();
            let err = allowed(&p, vec![signed()], DIGEST, &empty).unwrap_err();
            assert!(err[0].contains("SCT"), "{err:?}");
        }

        /// The entry's `signatureAlgorithm`: the digest a chainless certificate's key signs
        /// over; an unknown one refuses the policy, sha224 fails closed.
        #[test]
        fn an_entrys_signature_algorithm_is_the_certificates_digest() {
            let cert = cosign_vector("sha512-signer.pem");
            let no_tlog = "    rekor: {ignoreTlog: true}\n    ctlog: {ignoreSCT: true}\n";
            let layer = |h: &str| SignatureLayer {
                payload: cosign_vector("payload.json").into_bytes(),
                signature: cosign_vector(&format!("sha512-signer.{h}.sig")).trim().into(),
                ..Default::default()
            };
            let entry =
                |alg: &str| format!("{}  signatureAlgorithm: {alg}\n", certificates(Some(&cert), None, no_tlog));
            let empty = TrustRoot::empty();
            let p = compiled(&with_entry(&entry("sha512"), "")).unwrap();
            allowed(&p, vec![layer("sha512")], DIGEST, &empty).unwrap();
            assert!(allowed(&p, vec![layer("sha256")], DIGEST, &empty).is_err());
            // Unset, or sha256: the default.
            let p = compiled(&with_entry(&certificates(Some(&cert), None, no_tlog), "")).unwrap();
            allowed(&p, vec![layer("sha256")], DIGEST, &empty).unwrap();
            assert!(allowed(&p, vec![layer("sha512")], DIGEST, &empty).is_err());
            let e = import(&with_entry(&entry("md5"), "")).unwrap_err();
            assert!(e.iter().any(|e| e.to_string().contains("signatureAlgorithm")), "{e:?}");
            assert!(matches!(only_check(&with_entry(&entry("sha224"), "")), Check::Unsupported(_)));
        }

        /// The chain alone: the signature's own certificate must chain to it.
        #[test]
        fn a_chain_alone_trusts_certificates_the_signature_carries() {
            let chain = cosign_vector("chain.pem");
            let no_tlog = "    rekor: {ignoreTlog: true}\n    ctlog: {ignoreSCT: true}\n";
            let p = compiled(&with_entry(&certificates(None, Some(&chain), no_tlog), "")).unwrap();
            let carried = SignatureLayer { certificate: Some(cosign_vector("leaf-email.pem")), ..signed() };
            let empty = TrustRoot::empty();
            allowed(&p, vec![carried], DIGEST, &empty).unwrap();
            assert!(allowed(&p, vec![signed()], DIGEST, &empty).is_err(), "no certificate: nothing chains");
            let p = compiled(&with_entry(&certificates(None, Some(&cosign_vector("other-root.pem")), no_tlog), ""))
                .unwrap();
            let carried = SignatureLayer { certificate: Some(cosign_vector("leaf-email.pem")), ..signed() };
            assert!(allowed(&p, vec![carried], DIGEST, &empty).is_err());
        }
    }

    /// `ctlog.tsaCertChain` (Kyverno's keyed-tsa conformance test has one): cosign then
    /// verifies RFC 3161 timestamps under it and checks a certificate at the time one proves.
    mod timestamp_semantics {
        use super::*;
        use crate::evaluate::{evaluate, Evidence};
        use crate::policy::compile::{compile, FilesOnly};
        use crate::registry::{SignatureLayer, Signatures, Timestamps};
        use crate::verify::trust::TrustRoot;
        use crate::verify::Context;

        const DIGEST: &str = "sha256:479b4d26d48a0d046ea38ef2715bfa9bdc1ddff89de923a682848412d511d3a5";

        fn tsa(name: &str) -> Vec<u8> {
            std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/tsa").join(name)).unwrap()
        }

        fn text(name: &str) -> String {
            String::from_utf8(tsa(name)).unwrap()
        }

        fn keyless(ctlog_extra: &str) -> String {
            format!(
                "- keyless:\n    subject: builder@example.com\n    issuer: https://issuer.example\n    roots: |\n{}    \
                 rekor: {{ignoreTlog: true}}\n    ctlog:\n      ignoreSCT: true\n{ctlog_extra}",
                indent(&text("short-ca.pem"), 6)
            )
        }

        fn layer(stamped: bool) -> SignatureLayer {
            use base64::Engine;
            let token = base64::engine::general_purpose::STANDARD.encode(tsa("short.sig.tsr"));
            SignatureLayer {
                payload: cosign_vector("payload.json").into_bytes(),
                signature: text("short.sig"),
                certificate: Some(text("short-leaf.pem")),
                timestamps: Timestamps { tokens: if stamped { vec![token] } else { vec![] }, ..Default::default() },
                ..Default::default()
            }
        }

        /// A day after the short-lived certificate expired.
        fn later() -> i64 {
            use x509_cert::der::DecodePem;
            let c = x509_cert::Certificate::from_pem(tsa("short-leaf.pem")).unwrap();
            c.tbs_certificate().validity().not_after.to_unix_duration().as_secs() as i64 + 86_400
        }

        fn allowed(yaml: &str, l: SignatureLayer) -> bool {
            let p = import(yaml).unwrap();
            let policy = compile(&p.policies[0], &FilesOnly(std::path::Path::new("/"))).unwrap().policy;
            let ev = Evidence {
                reference: "registry.example/team/app:v1".into(),
                signatures: Some(Ok(Signatures { location: "l".into(), layers: vec![l] })),
                ..Default::default()
            };
            let trust = TrustRoot::empty();
            evaluate(&[&policy], &ev, DIGEST, Context { trust: &trust, now: later() }).allowed
        }

        #[test]
        fn a_verified_timestamp_admits_a_signature_whose_certificate_has_since_expired() {
            let chain = format!("      tsaCertChain: |\n{}", indent(&text("tsa-chain.pem"), 8));
            assert!(allowed(&with_entry(&keyless(&chain), ""), layer(true)));
            // No timestamp on the layer, or no TSA in the policy: checked now, and expired.
            assert!(!allowed(&with_entry(&keyless(&chain), ""), layer(false)));
            assert!(!allowed(&with_entry(&keyless(""), ""), layer(true)));
            // Another authority's chain does not trust the timestamp.
            let other = format!("      tsaCertChain: |\n{}", indent(&text("other-chain.pem"), 8));
            assert!(!allowed(&with_entry(&keyless(&other), ""), layer(true)));
        }

        #[test]
        fn a_tsa_chain_that_cannot_be_used_does_not_compile() {
            for bad in ["-----BEGIN CERTIFICATE-----", &text("tsa-inter.pem")] {
                let chain = format!("      tsaCertChain: |\n{}", indent(bad, 8));
                let p = import(&with_entry(&keyless(&chain), "")).unwrap();
                let err = compile(&p.policies[0], &FilesOnly(std::path::Path::new("/"))).unwrap_err();
                assert!(err.iter().any(|e| e.to_string().contains("tsaCertChain")), "{err:?}");
            }
        }
    }

    /// ClusterPolicy `type: Notary`: the entries' certificates are the notation trust store.
    mod notary_semantics {
        use super::*;
        use crate::evaluate::{evaluate, Evaluation, Evidence};
        use crate::policy::compile::{compile, FilesOnly};
        use crate::registry::{Form, SignatureLayer, Signatures};
        use crate::testutil::vectors::{notation, notation_digest, notation_signing_time_plus_a_minute};
        use crate::verify::trust::TrustRoot;
        use crate::verify::Context;

        fn notary_policy(entry: &str, extra: &str) -> String {
            with_entry(entry, &format!("      type: Notary\n{extra}"))
        }

        fn eval(yaml: &str, envelopes: &[&str]) -> Evaluation {
            let p = import(yaml).unwrap();
            let compiled = compile(&p.policies[0], &FilesOnly(std::path::Path::new("/"))).unwrap().policy;
            let layers = envelopes
                .iter()
                .map(|e| SignatureLayer { payload: notation(e).into_bytes(), form: Form::Notary, ..Default::default() })
                .collect();
            let ev = Evidence {
                reference: "registry.example/app:1".into(),
                notary: Some(Ok(Signatures { location: "registry.example/app".into(), layers })),
                ..Default::default()
            };
            assert!(crate::evaluate::needs(&[&compiled]).notary, "the referrers are fetched");
            let trust = TrustRoot::empty();
            let cx = Context { trust: &trust, now: notation_signing_time_plus_a_minute() };
            evaluate(&[&compiled], &ev, &notation_digest("image"), cx)
        }

        /// #19: a `type: Notary` rule failed closed on every image ("Notary signatures are
        /// not verified on the node yet"); it now verifies notation signatures against the
        /// entry's certificates, as Kyverno's notary verifier does.
        #[test]
        fn a_notary_rule_admits_a_real_notation_signature_and_refuses_the_rest() {
            let trusted = notary_policy(&certificates(Some(&notation("trusted.crt")), None, ""), "");
            let Check::Notary(n) = only_check(&trusted) else { panic!("{:?}", only_check(&trusted)) };
            assert_eq!(n.certs, KeyRef::Pem(notation("trusted.crt")));
            let e = eval(&trusted, &["good.jws"]);
            assert!(e.allowed, "{e:?}");
            assert!(eval(&trusted, &["untrusted.jws", "other-digest.jws", "good.jws"]).allowed);
            for refused in [&["untrusted.jws"][..], &["other-digest.jws"], &[]] {
                assert!(!eval(&trusted, refused).allowed, "{refused:?}");
            }
            // cert and certChain together are the trust store: either may anchor.
            let both =
                notary_policy(&certificates(Some(&notation("other.crt")), Some(&notation("trusted.crt")), ""), "");
            assert!(eval(&both, &["good.jws"]).allowed);
            assert!(eval(&both, &["untrusted.jws"]).allowed);
            let chain_only = notary_policy(&certificates(None, Some(&notation("other.crt")), ""), "");
            assert!(!eval(&chain_only, &["good.jws"]).allowed);
            assert!(eval(&chain_only, &["untrusted.jws"]).allowed);
        }

        /// A `type: Notary` rule's attestation of `sbom/cyclone-dx` by `cert`'s holder, with
        /// `more` YAML in the attestation.
        fn notary_attestation_rule(cert: &str, more: &str) -> String {
            format!(
                "    verifyImages:\n    - imageReferences: [\"reg.io/*\"]\n      type: Notary\n      attestations:\n      - type: sbom/cyclone-dx\n{more}        attestors:\n        - entries:\n{}",
                indent(&certificates(Some(&crate::testutil::vectors::notation_referrer(cert)), None, ""), 10)
            )
        }

        fn eval_referred(yaml: &str, artifacts: Vec<crate::registry::ReferredArtifact>) -> Evaluation {
            use crate::testutil::vectors::{notation_referrer_digest, notation_referrer_time};
            let p = import(yaml).unwrap_or_else(|e| panic!("{e:?}"));
            let compiled = compile(&p.policies[0], &FilesOnly(std::path::Path::new("/"))).unwrap();
            assert!(compiled.warnings.is_empty(), "{:?}", compiled.warnings);
            let n = crate::evaluate::needs(&[&compiled.policy]);
            assert_eq!(n.referred, [("sbom/cyclone-dx".to_string(), true)].into(), "{n:?}");
            assert!(!n.notary && !n.signatures && !n.attestations, "only the referrers are fetched: {n:?}");
            let found = crate::registry::Referred { location: "reg.io/app:sha256-x".into(), artifacts };
            let ev = Evidence {
                reference: "reg.io/app:1".into(),
                referred: [("sbom/cyclone-dx".to_string(), Ok(found))].into(),
                ..Default::default()
            };
            let trust = TrustRoot::empty();
            let cx = Context { trust: &trust, now: notation_referrer_time() };
            evaluate(&[&compiled.policy], &ev, &notation_referrer_digest("image"), cx)
        }

        /// Regression (#19): Kyverno ClusterPolicy `type: Notary` attestations failed closed
        /// on every image ("Notary attestations ... are not verified on the node"). As
        /// Kyverno's notary verifier: the first referrer of the type must be signed by the
        /// entry's certificates (notation, the first 10 signatures tried) and its one layer
        /// must be a JSON object; an unsigned or foreign one listed first refuses, as there.
        #[test]
        fn a_notary_rules_attestation_is_the_first_referrer_of_its_type_signed_and_json() {
            use crate::testutil::vectors::referred_artifact;
            let rule = policy("kyverno.io/v1", &notary_attestation_rule("trusted.crt", ""));
            let e = eval_referred(&rule, vec![referred_artifact("sbom", &["good.jws"])]);
            assert!(e.allowed, "{e:?}");
            let refused = |artifacts: Vec<crate::registry::ReferredArtifact>, why: &str| {
                let e = eval_referred(&rule, artifacts);
                assert!(!e.allowed, "admitted: {e:?}");
                assert!(e.failures.join("; ").contains(why), "{why:?} not in {e:?}");
            };
            refused(vec![], "no artifact of type sbom/cyclone-dx is attached");
            refused(vec![referred_artifact("sbom", &["untrusted.jws"])], "not trusted");
            refused(vec![referred_artifact("sbom", &[])], "it has no notation signature");
            refused(vec![referred_artifact("elsewhere", &["elsewhere.jws"])], "not to the image");
            // Kyverno verifies the first of the type and stops there: a signed one after an
            // unsigned one does not count.
            refused(
                vec![referred_artifact("sbom", &[]), referred_artifact("sbom", &["good.jws"])],
                "it has no notation signature",
            );
            // Its payload must be a JSON object, as Kyverno reads it into a map.
            let mut list = referred_artifact("sbom", &["good.jws"]);
            list.payload = Some(Ok(b"[1, 2]".to_vec()));
            refused(vec![list], "not a JSON object");
            let mut unreadable = referred_artifact("sbom", &["good.jws"]);
            unreadable.payload = Some(Err(crate::registry::PayloadError::Layers(2)));
            refused(vec![unreadable], "the artifact has 2 layers");
            let mut not_fetched = referred_artifact("sbom", &["good.jws"]);
            not_fetched.payload = None;
            refused(vec![not_fetched], "its payload was not fetched");
            // The fetch downloads the payload of the artifact the rule's signer verifies only.
            let compiled = compile(&import(&rule).unwrap().policies[0], &FilesOnly(std::path::Path::new("/"))).unwrap();
            let trust = TrustRoot::empty();
            let cx = Context { trust: &trust, now: crate::testutil::vectors::notation_referrer_time() };
            let image = crate::testutil::vectors::notation_referrer_digest("image");
            let wanted =
                |i, a| crate::evaluate::payload_wanted(&[&compiled.policy], "sbom/cyclone-dx", i, &a, &image, cx);
            assert!(wanted(0, referred_artifact("sbom", &["good.jws"])));
            assert!(!wanted(0, referred_artifact("sbom", &["untrusted.jws"])));
            // Only the first is read: a later one's payload would only take budget from it.
            assert!(!wanted(1, referred_artifact("sbom", &["good.jws"])));
            // Another signer's rule takes that signer's SBOM.
            let other = policy("kyverno.io/v1", &notary_attestation_rule("other.crt", ""));
            assert!(eval_referred(&other, vec![referred_artifact("sbom", &["untrusted.jws"])]).allowed);
            assert!(!eval_referred(&other, vec![referred_artifact("sbom", &["good.jws"])]).allowed);
        }

        /// Regression: a ClusterPolicy attestation with `conditions` failed closed on every
        /// image ("conditions on attestations of type ... are not evaluated on the node"). As
        /// Kyverno: the verified artifact's payload is the predicate the conditions read.
        #[test]
        fn a_notary_attestations_conditions_read_the_verified_payload() {
            use crate::testutil::vectors::referred_artifact;
            let with = |conditions: &str| {
                policy(
                    "kyverno.io/v1",
                    &notary_attestation_rule("trusted.crt", &format!("        conditions:\n{conditions}")),
                )
            };
            let good = vec![referred_artifact("sbom", &["good.jws"])];
            let format =
                with("        - all:\n          - {key: '{{ bomFormat }}', operator: Equals, value: CycloneDX}\n");
            let e = eval_referred(&format, good.clone());
            assert!(e.allowed, "{e:?}");
            let busybox = with(
                "        - all:\n          - key: \"{{ components[?name=='busybox'].version | [0] }}\"\n            operator: GreaterThanOrEquals\n            value: '1.37.0'\n            message: busybox is too old\n",
            );
            let e = eval_referred(&busybox, good.clone());
            assert!(!e.allowed, "{e:?}");
            let why = e.failures.join("; ");
            assert!(
                why.contains("attestation sbom/cyclone-dx: the conditions do not hold: busybox is too old"),
                "{why}"
            );
            let missing =
                with("        - all:\n          - {key: '{{ metadata.timestamp }}', operator: Equals, value: x}\n");
            let e = eval_referred(&missing, good.clone());
            assert!(!e.allowed && e.failures.join("; ").contains("\"timestamp\" not found"), "{e:?}");
            // An unsigned artifact is refused before its payload is read.
            let e = eval_referred(&format, vec![referred_artifact("sbom", &["untrusted.jws"])]);
            assert!(!e.allowed && e.failures.join("; ").contains("not trusted"), "{e:?}");
            // Regression (review): a manifest spelling its own `predicate` (which Kyverno
            // would judge instead of the payload) had its payload judged; now it fails closed.
            let spelled = vec![crate::registry::ReferredArtifact { spells_statement: true, ..good[0].clone() }];
            let e = eval_referred(&format, spelled);
            assert!(!e.allowed && e.failures.join("; ").contains("spells a `predicate` or `type`"), "{e:?}");
        }

        #[test]
        fn what_a_notary_rule_cannot_check_fails_closed() {
            let unsupported = |yaml: String| match only_check(&yaml) {
                Check::Unsupported(why) => why,
                other => panic!("{other:?}"),
            };
            let why = unsupported(notary_policy("- keys: {publicKeys: x}\n", ""));
            assert!(why.contains("names its certificates"), "{why}");
            let why = unsupported(notary_policy("- certificates: {cert: \"{{ c }}\"}\n", ""));
            assert!(why.contains("variable"), "{why}");
            let err = import(&notary_policy("- certificates: {}\n", "")).unwrap_err();
            assert!(err[0].contains("certificates needs cert"), "{err:?}");
            // Review finding: a keyless entry in a Notary rule was a cosign keyless check, so a
            // cosign attestation of the type passed it; Kyverno's notary verifier reads only
            // certificates there and never passes it.
            let keyless =
                "        attestors:\n        - entries:\n          - keyless: {subject: a@b.c, issuer: https://x}\n";
            let rule =
                notary_attestation_rule("trusted.crt", "").split("        attestors:").next().unwrap().to_string()
                    + keyless;
            let why = unsupported(policy("kyverno.io/v1", &rule));
            assert!(why.contains("names its certificates"), "{why}");
            let rule = notary_policy("- keyless: {subject: a@b.c, issuer: https://x}\n", "");
            assert!(unsupported(rule).contains("names its certificates"));
            // Attestation conditions the node cannot evaluate fail closed, naming what.
            let rule = notary_attestation_rule(
                "trusted.crt",
                "        conditions:\n        - all: [{key: \"{{ lookup(a, 'b') }}\", operator: Equals, value: a}]\n",
            );
            let why = unsupported(policy("kyverno.io/v1", &rule));
            assert!(why.contains("conditions on attestations of type sbom/cyclone-dx"), "{why}");
            assert!(why.contains("conditions[0].all[0]: function \"lookup\""), "{why}");
            // Regression (review): a rule `context` variable was read from the signed
            // predicate; the node builds no context, so conditions reading one fail closed.
            let rule = notary_attestation_rule(
                "trusted.crt",
                "        conditions:\n        - all: [{key: \"{{ bomFormat }}\", operator: AnyIn, value: \"{{ allowed }}\"}]\n",
            );
            let why = unsupported(policy(
                "kyverno.io/v1",
                &format!("    context:\n    - name: allowed\n      variable: {{value: [CycloneDX]}}\n{rule}"),
            ));
            assert!(why.contains("\"allowed\" is read from the admission request or the rule context"), "{why}");
            // Other types still fail closed.
            let why = unsupported(with_entry(
                &certificates(Some(&notation("trusted.crt")), None, ""),
                "      type: SigstoreBundle\n",
            ));
            assert!(why.contains("SigstoreBundle"), "{why}");
        }
    }
}
