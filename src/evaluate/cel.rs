//! CEL validations evaluated against the evidence for one image.
//!
//! Kyverno's image functions are bound to what signet already verifies:
//! `verifyImageSignatures(image, [attestors…])` counts the attestors whose signature over
//! the running digest verifies, `verifyAttestationSignatures(image, attestation,
//! [attestors…])` those whose attestation of that type verifies, and
//! `extractPayload(image, attestation)` returns the in-toto statement (or, for a referrer
//! attestation, the attached artifact's JSON payload) of an attestation verified earlier in
//! the same evaluation: an error before that, and an error when verifications by several
//! attestors found different payloads. Kyverno reads an unverified referrer's payload
//! there, and of several the latest verified; the node does neither, as the first would let
//! whoever can push to the registry decide and the second depends on evaluation order. The
//! evidence is verified before the interpreter runs, so the interpreter never waits on the
//! network and only looks results up; what [`crate::policy::cel`] refused to compile fails
//! here with its reason. An attestor the node cannot check counts as not verified: the
//! counts are a lower bound of Kyverno's, which compilation allows only where a smaller
//! count can only refuse more (`count > k`, `count == <all>`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use cel::objects::{Key, Map};
use cel::{ExecutionError, FunctionContext, Value};

use super::{check_authority, Evidence};
use crate::policy::cel::{
    CelError, ImageExpression, RequestFact, EXTRACT_PAYLOAD, REQUEST_PATHS, VERIFY_ATTESTATION_SIGNATURES,
    VERIFY_IMAGE_SIGNATURES,
};
use crate::policy::model::{AttestationKind, CompiledCel};
use crate::policy::{AuthorityKind, SignedBy};
use crate::registry::Signatures;
use crate::verify::referred::verify_referred;
use crate::verify::{dsse, verify_attestations, Context};

/// Why a CEL authority did not pass for the image.
#[derive(Debug, thiserror::Error)]
pub enum CelFailure {
    #[error("image {reference} does not have a digest (verifyDigest is set, mutateDigest is not)")]
    NoDigest { reference: String },
    #[error("{field}: evaluates to {value}, not a bool")]
    NotBool { field: String, value: String },
    /// An expression failed to evaluate, or a validation was false (with its message).
    #[error("{field}: {message}")]
    Failed { field: String, message: String },
    #[error("cannot be evaluated on the node: {0}")]
    NotEvaluated(#[from] CelError),
    #[error(
        "image {reference} is not verified: no signature or attestation check passed \
         (validationConfigurations.required)"
    )]
    NotVerified { reference: String },
}

/// Why an attestation's statement is not available to `extractPayload`.
#[derive(Debug, thiserror::Error)]
enum StatementError {
    #[error("this attestor does not verify attestations")]
    NotAnAttestor,
    #[error("attestations were not fetched")]
    NotFetched,
    #[error("{0}")]
    Fetch(String),
    #[error("no attestation of type {0}")]
    None(String),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Envelope(String),
    #[error("statement: {0}")]
    Statement(serde_json::Error),
}

/// One attestor's verification of one attestation.
enum Attested {
    /// Verified: the payload `extractPayload` reads, or why it cannot be read.
    Verified(Result<serde_json::Value, String>),
    /// Not verified, and why: the attestor does not count.
    Refused(String),
    /// The call itself is an error, as in Kyverno (a notary attestor asked about an in-toto
    /// attestation).
    Error(String),
}

/// What was verified for the image, looked up by the bound functions.
#[derive(Default)]
struct Facts {
    reference: String,
    namespace: Option<String>,
    /// The namespace's labels, when the cluster has told them.
    namespace_labels: Option<Arc<crate::policy::labels::Labels>>,
    /// The pod's labels and annotations, when the runtime told them.
    pod: Option<Arc<crate::decision::PodMetadata>>,
    /// attestor name → its image signature verified, or why not.
    signatures: BTreeMap<String, Result<(), String>>,
    /// (attestation, attestor) → what its verification found.
    attestations: BTreeMap<(String, String), Attested>,
    /// Per evaluation: payloads verified so far (`extractPayload` reads these), or why a
    /// verified one cannot be read.
    extracted: Mutex<BTreeMap<String, Result<serde_json::Value, String>>>,
    /// Per evaluation: some verification returned a non-zero count.
    verified: Mutex<bool>,
    /// Per evaluation: why the attestors asked about did not verify, for the message.
    refused: Mutex<BTreeMap<String, String>>,
}

/// Most entries of the pod's labels or annotations bound in CEL. The interpreter copies a
/// comprehension's accumulated list at every step, so `filter`/`map` over a map cost the
/// square of its size; the pod's creator chooses the size, and the API caps only the
/// annotations' bytes. Pods carry a few dozen.
pub const MAX_POD_METADATA_ENTRIES: usize = 256;
/// Most bytes (keys and values) of the pod's labels or annotations bound in CEL: the API
/// server's own cap on a pod's annotations.
pub const MAX_POD_METADATA_BYTES: usize = 256 << 10;

/// Pod metadata too large to bind.
#[derive(Debug, thiserror::Error)]
#[error(
    "{entries} entries, {bytes} bytes, over the cap of {MAX_POD_METADATA_ENTRIES} entries and \
     {MAX_POD_METADATA_BYTES} bytes"
)]
struct OverCap {
    entries: usize,
    bytes: usize,
}

/// Whether the map is small enough to bind, or why not.
fn within_cap(m: &BTreeMap<String, String>) -> Result<(), OverCap> {
    let bytes: usize = m.iter().map(|(k, v)| k.len() + v.len()).sum();
    if m.len() > MAX_POD_METADATA_ENTRIES || bytes > MAX_POD_METADATA_BYTES {
        Err(OverCap { entries: m.len(), bytes })
    } else {
        Ok(())
    }
}

/// Evaluate one compiled CEL authority. `Ok` carries a note when the policy did not apply.
pub fn check(c: &CompiledCel, evidence: &Evidence, digest: &str, cx: Context<'_>) -> Result<(), CelFailure> {
    let reference = evidence.reference.clone();
    if c.require_digest && !reference.contains('@') {
        return Err(CelFailure::NoDigest { reference });
    }
    // The object selector and the conditions come first and read nothing verified
    // (compilation saw to that): a pod they leave alone costs no verification. Where the
    // pod's labels are unknown the selector selects, as Kyverno's would for some pod.
    if let (Some(selector), Some(pod)) = (&c.object_selector, &evidence.pod) {
        if !selector.matches(&pod.labels) {
            return Ok(());
        }
    }
    let bare = Arc::new(Facts {
        reference: evidence.reference.clone(),
        namespace: evidence.namespace.clone(),
        namespace_labels: evidence.namespace_labels.clone(),
        pod: evidence.pod.clone(),
        ..Default::default()
    });
    let conditions = context(c, &bare);
    for m in c.match_conditions.iter().filter_map(|m| m.as_ref().ok()) {
        // Only a condition that is exactly false narrows; anything else leaves the
        // validations in force.
        match m.program.execute(&conditions) {
            Ok(Value::Bool(false)) => return Ok(()),
            Ok(Value::Bool(true)) => {}
            Ok(other) => return Err(CelFailure::NotBool { field: m.field.clone(), value: format!("{other:?}") }),
            Err(err) => {
                let message = format!("{}{}", describe(&err), bare.unbound());
                return Err(CelFailure::Failed { field: m.field.clone(), message });
            }
        }
    }
    let facts = Arc::new(gather(c, evidence, digest, cx));
    let mut ctx = context(c, &facts);
    let mut variables: HashMap<Key, Value> = HashMap::new();
    let mut variable_errors = Vec::new();
    for (name, v) in &c.variables {
        let result = match v {
            Ok(e) => e.program.execute(&ctx).map_err(|err| format!("{}: {}", e.field, describe(&err))),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(value) => {
                variables.insert(Key::String(Arc::new(name.clone())), value);
                ctx.add_variable_from_value("variables", Value::Map(Map { map: Arc::new(variables.clone()) }));
            }
            Err(e) => variable_errors.push(e),
        }
    }
    for (i, v) in c.validations.iter().enumerate() {
        let e = v.check.as_ref().map_err(|e| CelFailure::NotEvaluated(e.clone()))?;
        match e.program.execute(&ctx) {
            Ok(Value::Bool(true)) => {}
            Ok(Value::Bool(false)) => {
                let message = v
                    .message_expression
                    .as_ref()
                    .and_then(|m| match m.program.execute(&ctx) {
                        Ok(Value::String(s)) => Some(s.to_string()),
                        _ => None,
                    })
                    .or_else(|| v.message.clone().filter(|m| !m.is_empty()))
                    .unwrap_or_else(|| format!("CEL expression validation failed at index {i}"));
                return Err(CelFailure::Failed {
                    field: e.field.clone(),
                    message: format!("{message}{}", facts.refusals()),
                });
            }
            Ok(other) => return Err(CelFailure::NotBool { field: e.field.clone(), value: format!("{other:?}") }),
            Err(err) => {
                let mut message = format!("{}{}", describe(&err), facts.unbound());
                if !variable_errors.is_empty() {
                    message.push_str(&format!(" (variables not evaluated: {})", variable_errors.join("; ")));
                }
                return Err(CelFailure::Failed { field: e.field.clone(), message });
            }
        }
    }
    if c.require_verified && !*facts.verified.lock().unwrap() {
        return Err(CelFailure::NotVerified { reference });
    }
    Ok(())
}

fn describe(e: &ExecutionError) -> String {
    e.to_string()
}

/// Verify up front everything the expressions may ask about, so the interpreter only
/// looks results up.
fn gather(c: &CompiledCel, evidence: &Evidence, digest: &str, cx: Context<'_>) -> Facts {
    let mut facts = Facts {
        reference: evidence.reference.clone(),
        namespace: evidence.namespace.clone(),
        namespace_labels: evidence.namespace_labels.clone(),
        pod: evidence.pod.clone(),
        ..Default::default()
    };
    if c.uses(VERIFY_IMAGE_SIGNATURES) {
        for (name, kind) in &c.attestors {
            facts
                .signatures
                .insert(name.clone(), check_authority(kind, evidence, digest, cx).map_err(|e| e.to_string()));
        }
    }
    if c.uses(VERIFY_ATTESTATION_SIGNATURES) {
        for (att, kind) in &c.attestations {
            for (name, attestor) in &c.attestors {
                let notary = attestor.is_notary();
                let result = match kind {
                    // Whatever its kind, an attestor the node cannot check verifies nothing.
                    _ if !matches!(attestor, AuthorityKind::Signed(_)) => Attested::Refused(match attestor {
                        AuthorityKind::Unsupported(why) => why.clone(),
                        _ => StatementError::NotAnAttestor.to_string(),
                    }),
                    AttestationKind::Referrer(t) if notary => referrer_attested(attestor, t, evidence, digest, cx),
                    // Kyverno's cosign verifier reads only in-toto attestations: not counted.
                    AttestationKind::Referrer(t) => Attested::Refused(format!(
                        "a cosign attestor does not verify referrer attestations ({t}), only in-toto ones"
                    )),
                    AttestationKind::InToto(_) if notary => Attested::Error(
                        "a notary attestor verifies only OCI 1.1 referrers as attestations, not in-toto ones".into(),
                    ),
                    AttestationKind::InToto(t) => match statement(attestor, t, evidence, digest, cx) {
                        Ok(statement) => Attested::Verified(Ok(statement)),
                        Err(e) => Attested::Refused(e.to_string()),
                    },
                };
                facts.attestations.insert((att.clone(), name.clone()), result);
            }
        }
    }
    facts
}

/// The first artifact of `artifact_type` attached to the image that the notary `attestor`
/// verifies, with its payload.
fn referrer_attested(
    attestor: &AuthorityKind,
    artifact_type: &str,
    evidence: &Evidence,
    digest: &str,
    cx: Context<'_>,
) -> Attested {
    let AuthorityKind::Signed(by) = attestor else {
        return Attested::Refused(StatementError::NotAnAttestor.to_string());
    };
    let found = match evidence.referred_of(artifact_type) {
        Err(e) => return Attested::Refused(e.to_string()),
        Ok(found) => found,
    };
    match verify_referred(found, artifact_type, digest, &by.signer, cx) {
        Ok(v) => {
            Attested::Verified(v.payload.unwrap_or_else(|| Err(format!("the payload of {} was not fetched", v.digest))))
        }
        Err(e) => Attested::Refused(e.to_string()),
    }
}

/// The in-toto statement of the first attestation of type `predicate` that `attestor`
/// verifies for `digest`.
fn statement(
    attestor: &AuthorityKind,
    predicate: &str,
    evidence: &Evidence,
    digest: &str,
    cx: Context<'_>,
) -> Result<serde_json::Value, StatementError> {
    let AuthorityKind::Signed(by) = attestor else {
        return Err(StatementError::NotAnAttestor);
    };
    let by = SignedBy { attestations: vec![predicate.to_string()], ..(**by).clone() };
    let sigs = match evidence.for_signer(by.source.as_ref(), true) {
        None => return Err(StatementError::NotFetched),
        Some(Err(e)) => return Err(StatementError::Fetch(e.to_string())),
        Some(Ok(s)) => s,
    };
    let mut last = StatementError::None(predicate.to_string());
    for layer in &sigs.layers {
        let one = Signatures { location: sigs.location.clone(), layers: vec![layer.clone()] };
        match verify_attestations(&one, digest, &by, cx) {
            Ok(()) => {
                let opened = dsse::open(&layer.payload).map_err(|e| StatementError::Envelope(e.to_string()))?;
                return serde_json::from_slice(&opened.body).map_err(StatementError::Statement);
            }
            Err(e) => last = StatementError::Refused(e.to_string()),
        }
    }
    Err(last)
}

fn string_key(s: &str) -> Key {
    Key::String(Arc::new(s.to_string()))
}

fn map(entries: impl IntoIterator<Item = (String, Value)>) -> Value {
    Value::Map(Map { map: Arc::new(entries.into_iter().map(|(k, v)| (string_key(&k), v)).collect()) })
}

fn context<'a>(c: &CompiledCel, facts: &Arc<Facts>) -> cel::Context<'a> {
    let mut ctx = cel::Context::default();
    // The container being created is the only image the node knows; it is offered in
    // every list so a check on any list covers it.
    let image = Value::List(Arc::new(vec![Value::String(Arc::new(facts.reference.clone()))]));
    ctx.add_variable_from_value(
        "images",
        map(["containers", "initContainers", "ephemeralContainers"].map(|k| (k.to_string(), image.clone()))),
    );
    ctx.add_variable_from_value(
        "attestors",
        map(c.attestors.keys().map(|n| (n.clone(), map([("name".to_string(), Value::String(Arc::new(n.clone())))])))),
    );
    ctx.add_variable_from_value(
        "attestations",
        map(c.attestations.keys().map(|n| (n.clone(), Value::String(Arc::new(n.clone()))))),
    );
    ctx.add_variable_from_value("variables", map(Vec::new()));
    // Only what the node knows of the request is bound (compilation allows no other path);
    // where it is unknown, reading it is an error, which fails closed.
    for (root, value) in facts.request() {
        ctx.add_variable_from_value(root, json_value(&value));
    }

    let f = Arc::clone(facts);
    ctx.add_function(VERIFY_IMAGE_SIGNATURES, move |ftx: &FunctionContext, image: Arc<String>, list: Value| {
        f.same_image(ftx, &image)?;
        let mut count = 0i64;
        for name in attestor_names(ftx, &list)? {
            match f.signatures.get(&name).ok_or_else(|| ftx.error(format!("unknown attestor {name}")))? {
                Ok(()) => count += 1,
                Err(why) => f.refuse(&name, why),
            }
        }
        f.record(count);
        Ok(Value::Int(count))
    });
    let f = Arc::clone(facts);
    ctx.add_function(
        VERIFY_ATTESTATION_SIGNATURES,
        move |ftx: &FunctionContext, image: Arc<String>, attestation: Arc<String>, list: Value| {
            f.same_image(ftx, &image)?;
            let mut count = 0i64;
            for name in attestor_names(ftx, &list)? {
                let key = (attestation.to_string(), name.clone());
                match f.attestations.get(&key) {
                    None => return Err(ftx.error(format!("attestation not found in policy: {attestation}"))),
                    Some(Attested::Error(why)) => return Err(ftx.error(format!("attestor {name}: {why}"))),
                    Some(Attested::Refused(why)) => f.refuse(&name, &format!("attestation {attestation}: {why}")),
                    Some(Attested::Verified(payload)) => {
                        count += 1;
                        f.extracted_one(&attestation, payload);
                    }
                }
            }
            f.record(count);
            Ok(Value::Int(count))
        },
    );
    let f = Arc::clone(facts);
    ctx.add_function(EXTRACT_PAYLOAD, move |ftx: &FunctionContext, image: Arc<String>, attestation: Arc<String>| {
        f.same_image(ftx, &image)?;
        match f.extracted.lock().unwrap().get(attestation.as_str()) {
            Some(Ok(payload)) => Ok(json_value(payload)),
            Some(Err(why)) => Err(ftx.error(format!("the payload of attestation {attestation}: {why}"))),
            None => Err(ftx.error(format!(
                "the payload of attestation {attestation} cannot be read before it is verified \
                 (verifyAttestationSignatures)"
            ))),
        }
    });
    ctx
}

impl Facts {
    /// What the node knows of the request, as one JSON tree per root of
    /// [`REQUEST_PATHS`]. A pod's labels or annotations are absent when it has none, as in
    /// the API's JSON (`omitempty`), so reading them is the same error as in Kyverno.
    fn request(&self) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::Value as Json;
        let strings = |m: &BTreeMap<String, String>| {
            Json::Object(m.iter().map(|(k, v)| (k.clone(), Json::String(v.clone()))).collect())
        };
        let pod = |m: &BTreeMap<String, String>| (!m.is_empty() && within_cap(m).is_ok()).then(|| strings(m));
        let mut roots = serde_json::Map::new();
        for (path, fact) in REQUEST_PATHS {
            let value = match fact {
                RequestFact::Namespace => self.namespace.clone().map(Json::String),
                RequestFact::NamespaceLabels => self.namespace_labels.as_deref().map(strings),
                RequestFact::PodLabels => self.pod.as_ref().and_then(|p| pod(&p.labels)),
                RequestFact::PodAnnotations => self.pod.as_ref().and_then(|p| pod(&p.annotations)),
            };
            let (Some(value), Some((last, parents))) = (value, path.split_last()) else { continue };
            let mut at = &mut roots;
            for part in parents {
                let node = at.entry(part.to_string()).or_insert_with(|| Json::Object(Default::default()));
                at = node.as_object_mut().expect("the paths only nest objects");
            }
            at.insert(last.to_string(), value);
        }
        roots
    }

    /// ` (the pod's labels are not known on the node: …)` for pod metadata over the cap,
    /// or nothing: said beside an expression that failed, which may have read them.
    fn unbound(&self) -> String {
        let Some(pod) = &self.pod else { return String::new() };
        [("labels", &pod.labels), ("annotations", &pod.annotations)]
            .into_iter()
            .filter_map(|(what, m)| {
                within_cap(m).err().map(|why| format!(" (the pod's {what} are not known on the node: {why})"))
            })
            .collect()
    }

    fn same_image(&self, ftx: &FunctionContext, image: &str) -> Result<(), ExecutionError> {
        if image == self.reference {
            Ok(())
        } else {
            Err(ftx.error(format!(
                "only the image being created ({}) can be checked on the node, not {image}",
                self.reference
            )))
        }
    }

    /// Note a verified payload for `extractPayload`. Kyverno reads the latest verified, in
    /// the order its lazy variables and its validations happen to run; the node evaluates
    /// variables eagerly, so "latest" would not be the same one. Two verifications of one
    /// attestation that disagree make it unreadable instead: the node never picks between
    /// them.
    fn extracted_one(&self, attestation: &str, payload: &Result<serde_json::Value, String>) {
        let mut extracted = self.extracted.lock().unwrap();
        match extracted.get(attestation) {
            None => {
                extracted.insert(attestation.to_string(), payload.clone());
            }
            Some(same) if same == payload => {}
            Some(_) => {
                let why = "it was verified by attestors with different payloads, and the node does not pick one";
                extracted.insert(attestation.to_string(), Err(why.to_string()));
            }
        }
    }

    fn refuse(&self, attestor: &str, why: &str) {
        self.refused.lock().unwrap().entry(attestor.to_string()).or_insert_with(|| why.to_string());
    }

    /// ` (attestor a: why; …)` for the attestors that did not verify, or nothing.
    fn refusals(&self) -> String {
        let refused = self.refused.lock().unwrap();
        if refused.is_empty() {
            return String::new();
        }
        let parts: Vec<String> = refused.iter().map(|(a, why)| format!("attestor {a}: {why}")).collect();
        format!(" ({})", parts.join("; "))
    }

    fn record(&self, count: i64) {
        if count > 0 {
            *self.verified.lock().unwrap() = true;
        }
    }
}

fn attestor_names(ftx: &FunctionContext, list: &Value) -> Result<Vec<String>, ExecutionError> {
    let Value::List(items) = list else { return Err(ftx.error("attestors must be a list")) };
    items
        .iter()
        .map(|item| match item {
            Value::Map(m) => match m.map.get(&string_key("name")) {
                Some(Value::String(n)) => Ok(n.to_string()),
                _ => Err(ftx.error("an attestor has no name")),
            },
            _ => Err(ftx.error("attestors must be attestors.<name>")),
        })
        .collect()
}

/// JSON as CEL sees it: numbers that are integers become ints, as Kubernetes' CEL does for
/// integer JSON values.
pub fn json_value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Value::Int(i),
            (None, Some(u), _) => Value::UInt(u),
            (_, _, f) => Value::Float(f.unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::String(Arc::new(s.clone())),
        serde_json::Value::Array(a) => Value::List(Arc::new(a.iter().map(json_value).collect())),
        serde_json::Value::Object(o) => map(o.iter().map(|(k, v)| (k.clone(), json_value(v)))),
    }
}

impl ImageExpression {
    /// Does the expression select the image? Kyverno evaluates it on the name as the pod
    /// spec wrote it, which the node knows only normalised: every spelling of it is tried,
    /// and any that selects (or does not evaluate to a bool) selects: the policy then
    /// applies, which only refuses more.
    pub fn selects(&self, full: &str, repository: &str) -> bool {
        // The same spellings the glob dialects try (Docker Hub's hosts and aliases,
        // `library/`, an absent `:latest`), each with and without its tag.
        let mut names = vec![full.to_string(), repository.to_string()];
        for n in crate::policy::spelling::pod_spellings(full) {
            let bare = crate::policy::spelling::without_tag(&n).to_string();
            names.push(n);
            names.push(bare);
        }
        for n in [full, repository] {
            if let Some(short) = n.strip_prefix("docker.io/") {
                names.push(short.to_string());
                names.extend(short.strip_prefix("library/").map(str::to_string));
            }
        }
        names.sort();
        names.dedup();
        names.iter().any(|n| self.matches(n))
    }

    fn matches(&self, image: &str) -> bool {
        let mut ctx = cel::Context::default();
        ctx.add_variable_from_value("ref", Value::String(Arc::new(image.to_string())));
        !matches!(self.0.program.execute(&ctx), Ok(Value::Bool(false)))
    }
}

/// The artifact types of the referrer attestations the validations verify, each with
/// whether their payloads are read.
pub fn referred(c: &CompiledCel) -> Vec<(&str, bool)> {
    if !c.uses(VERIFY_ATTESTATION_SIGNATURES) {
        return Vec::new();
    }
    let payloads = c.uses(EXTRACT_PAYLOAD);
    c.attestations
        .values()
        .filter_map(|k| match k {
            AttestationKind::Referrer(t) => Some((t.as_str(), payloads)),
            AttestationKind::InToto(_) => None,
        })
        .collect()
}

/// Does an expression need the image's signatures or its attestations fetched?
pub fn needs(c: &CompiledCel) -> (bool, bool) {
    (c.uses(VERIFY_IMAGE_SIGNATURES), c.uses(VERIFY_ATTESTATION_SIGNATURES) || c.uses(EXTRACT_PAYLOAD))
}
