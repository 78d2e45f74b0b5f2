//! The normalised policy every source is translated into, and its compilation.
//!
//! Importers ([`super::importers`]) turn each policy language into [`NormalPolicy`] values;
//! `signet policy check` prints them, the last-known-good file stores them (with Secret keys
//! already inlined), and [`compile`] turns them into the evaluated [`Policy`] model. Keeping
//! one serialisable middle form means every language gets the same checks, and a user can
//! see exactly what the node will enforce.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::matching::ImageGlob;
use super::model::{
    Authority, AuthorityKind, Exclusive, Keyless, Mode, Namespaces, NoMatchAction, Policy, Requirement, SignedBy,
    Signer, Tlog,
};
use super::TrustedKey;
use crate::kms::{KmsUri, ResolvedKey, Resolver};
use crate::verify::gpg::{GpgKey, GpgSigner, SignedIdentity};
use crate::verify::keyless::{Identity, Matcher};
use crate::verify::pubkey::{HashAlgorithm, Signing};
use crate::verify::trust::{CaPool, LogKey};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NormalPolicy {
    /// Unique across all sources: foreign kinds carry a prefix (`sigstore:`, `kyverno:` ...).
    pub name: String,
    /// The object it came from: `apiVersion kind [namespace/]name`.
    pub origin: String,
    pub images: Vec<Pattern>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_images: Vec<Pattern>,
    #[serde(default, skip_serializing_if = "Namespaces::is_all")]
    pub namespaces: Namespaces,
    #[serde(default)]
    pub mode: Mode,
    /// All must hold.
    pub requirements: Vec<NormalRequirement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusive: Option<Exclusive>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_match_action: Option<NoMatchAction>,
    /// `kubernetes.io/dockerconfigjson` Secrets with credentials for fetching signatures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pull_secrets: Vec<SecretName>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretName {
    pub namespace: String,
    pub name: String,
}

/// Written as a one-key mapping (`{glob: ...}`, `{wildcard: ...}`, ...), like the sources;
/// the key says whose matching rules apply ([`super::matching`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "BTreeMap<String, String>", into = "BTreeMap<String, String>")]
pub enum Pattern {
    /// signet glob: `*` within one segment, `**` across, no tag means any tag.
    Glob(String),
    /// Tanzu `namePattern`: `*` any characters including `/`, `?` one character.
    Wildcard(String),
    /// policy-controller glob, matched as policy-controller matches it.
    PolicyControllerGlob(String),
    /// Kyverno image reference pattern, on Kyverno's normalised name.
    KyvernoWildcard(String),
    /// Portieris repository name, host anchored.
    PortierisRepository(String),
    /// A CEL expression over `ref`, the image (Kyverno `matchImageReferences`).
    Expression(String),
}

const PATTERN_KEYS: [&str; 6] =
    ["glob", "wildcard", "policyControllerGlob", "kyvernoWildcard", "portierisRepository", "expression"];

impl NormalPolicy {
    /// Every key or CA reference, for Secret lookup and inlining.
    pub fn key_refs(&self) -> impl Iterator<Item = &KeyRef> {
        self.requirements.iter().flat_map(|r| &r.authorities).filter_map(|a| match &a.check {
            Check::Key(k) => Some(&k.key),
            Check::Keyless(k) => k.ca.as_ref(),
            Check::Gpg(g) => Some(&g.key),
            _ => None,
        })
    }

    pub fn key_refs_mut(&mut self) -> impl Iterator<Item = &mut KeyRef> {
        self.requirements.iter_mut().flat_map(|r| &mut r.authorities).filter_map(|a| match &mut a.check {
            Check::Key(k) => Some(&mut k.key),
            Check::Keyless(k) => k.ca.as_mut(),
            Check::Gpg(g) => Some(&mut g.key),
            _ => None,
        })
    }
}

impl NormalPolicy {
    /// The same images, namespaces and mode, enforced by one authority that never passes
    /// and says why. Stands in for a policy that does not compile on this node (a Secret
    /// with a malformed key, a `key.path` missing here): dropping it would let whoever can
    /// write that Secret remove the rule, and the images it covers would fall to the
    /// no-match action.
    pub fn fail_closed(&self, reason: &str) -> NormalPolicy {
        NormalPolicy {
            requirements: vec![NormalRequirement::any_of(vec![NormalAuthority::new(
                STAND_IN,
                Check::Unsupported(format!("the policy does not compile on this node: {reason}")),
            )])],
            pull_secrets: Vec::new(),
            ..self.clone()
        }
    }
}

const STAND_IN: &str = "unusable-on-this-node";

impl NormalPolicy {
    /// Whether this is a [`NormalPolicy::fail_closed`] stand-in rather than a real version.
    pub fn is_stand_in(&self) -> bool {
        matches!(&self.requirements[..], [r] if matches!(&r.authorities[..], [a] if a.name == STAND_IN))
    }
}

impl From<Pattern> for BTreeMap<String, String> {
    fn from(p: Pattern) -> Self {
        let (key, text) = match p {
            Pattern::Glob(t) => (PATTERN_KEYS[0], t),
            Pattern::Wildcard(t) => (PATTERN_KEYS[1], t),
            Pattern::PolicyControllerGlob(t) => (PATTERN_KEYS[2], t),
            Pattern::KyvernoWildcard(t) => (PATTERN_KEYS[3], t),
            Pattern::PortierisRepository(t) => (PATTERN_KEYS[4], t),
            Pattern::Expression(t) => (PATTERN_KEYS[5], t),
        };
        BTreeMap::from([(key.to_string(), text)])
    }
}

impl TryFrom<BTreeMap<String, String>> for Pattern {
    type Error = String;
    fn try_from(m: BTreeMap<String, String>) -> Result<Self, String> {
        let mut entries = m.into_iter();
        let only = match (entries.next(), entries.next()) {
            (Some(kv), None) => Some(kv),
            _ => None,
        };
        match only.as_ref().map(|(k, v)| (k.as_str(), v.clone())) {
            Some(("glob", t)) => Ok(Pattern::Glob(t)),
            Some(("wildcard", t)) => Ok(Pattern::Wildcard(t)),
            Some(("policyControllerGlob", t)) => Ok(Pattern::PolicyControllerGlob(t)),
            Some(("kyvernoWildcard", t)) => Ok(Pattern::KyvernoWildcard(t)),
            Some(("portierisRepository", t)) => Ok(Pattern::PortierisRepository(t)),
            Some(("expression", t)) => Ok(Pattern::Expression(t)),
            _ => Err(format!("an image pattern is exactly one of {}", PATTERN_KEYS.join(", "))),
        }
    }
}

/// Twice the longest image name signet accepts ([`crate::reference::MAX_NAME_BYTES`]).
pub const MAX_PATTERN_BYTES: usize = 2 * crate::reference::MAX_NAME_BYTES;

impl Pattern {
    /// The pattern as written.
    pub fn text(&self) -> &str {
        match self {
            Pattern::Glob(t)
            | Pattern::Wildcard(t)
            | Pattern::PolicyControllerGlob(t)
            | Pattern::KyvernoWildcard(t)
            | Pattern::PortierisRepository(t)
            | Pattern::Expression(t) => t,
        }
    }

    pub fn compile(&self) -> Result<ImageGlob, String> {
        // Matching costs pattern × name; a pattern longer than any valid name matches
        // nothing it could not match shorter, and a megabyte of `*` would take seconds per
        // decision (a late answer gets the plugin dropped and the container run unchecked).
        let text = self.text();
        if text.len() > MAX_PATTERN_BYTES {
            return Err(format!(
                "image pattern is {} bytes long, more than the {MAX_PATTERN_BYTES} any image name can need",
                text.len()
            ));
        }
        match self {
            Pattern::Glob(g) => ImageGlob::new(g),
            Pattern::Wildcard(w) => ImageGlob::wildcard(w),
            Pattern::PolicyControllerGlob(g) => ImageGlob::policy_controller(g),
            Pattern::KyvernoWildcard(w) => ImageGlob::kyverno(w),
            Pattern::PortierisRepository(r) => ImageGlob::portieris(r),
            Pattern::Expression(_) => return Err("an expression is not a glob".into()),
        }
        .map_err(|e| e.to_string())
    }
}

/// At least `count` of `authorities` must be satisfied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormalRequirement {
    pub count: usize,
    pub authorities: Vec<NormalAuthority>,
}

impl NormalRequirement {
    pub fn any_of(authorities: Vec<NormalAuthority>) -> Self {
        Self { count: 1, authorities }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormalAuthority {
    pub name: String,
    #[serde(flatten)]
    pub check: Check,
}

impl NormalAuthority {
    pub fn new(name: impl Into<String>, check: Check) -> Self {
        Self { name: name.into(), check }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Check {
    /// A cosign signature by this key over the exact digest.
    Key(KeyCheck),
    /// A cosign signature by a certificate from a trusted CA naming a trusted identity.
    Keyless(KeylessCheck),
    /// A GPG simple-signing signature (lookaside store) by one of these OpenPGP keys.
    Gpg(GpgCheck),
    /// Always satisfied (`pass`) or never (`fail`).
    Static(StaticAction),
    /// The node cannot check this; it is never satisfied and the text says why.
    Unsupported(String),
    /// CEL validations over named attestors (Kyverno ImageValidatingPolicy).
    Cel(Box<super::cel::CelCheck>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StaticAction {
    Pass,
    Fail,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyCheck {
    #[serde(flatten)]
    pub key: KeyRef,
    /// The signature must also be in this transparency log (Rekor URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekor: Option<String>,
    /// That log's public keys (PEM); empty means the node trust root's logs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rekor_keys: Vec<String>,
    /// Predicate types that must be attested by this key (instead of an image signature).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attestations: Vec<String>,
    /// The digest signatures are made over (policy-controller `key.hashAlgorithm`); unset,
    /// the key type's (or the KMS key's) own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_algorithm: Option<HashAlgorithm>,
}

impl KeyCheck {
    pub fn new(key: KeyRef, rekor: Option<String>) -> Self {
        Self { key, rekor, rekor_keys: Vec::new(), attestations: Vec::new(), hash_algorithm: None }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GpgCheck {
    /// ASCII-armored OpenPGP public key(s).
    #[serde(flatten)]
    pub key: KeyRef,
    /// containers/image `signedIdentity`: `matchRepoDigestOrExact` (default),
    /// `matchRepository` or `matchExact`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_identity: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeylessCheck {
    /// Any one must match; empty means any certificate holder of the CA.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identities: Vec<NormalIdentity>,
    /// CA certificates (PEM bundle); none means the node trust root's CAs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<KeyRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekor: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rekor_keys: Vec<String>,
    /// Skip the certificate-transparency (SCT) check.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_sct: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attestations: Vec<String>,
}

/// Exactly one of each pair must be set; the `…RegExp` forms are regular expressions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NormalIdentity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_reg_exp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_reg_exp: Option<String>,
}

impl NormalIdentity {
    pub fn compile(&self) -> Result<Identity, String> {
        Ok(Identity {
            issuer: Matcher::from_fields(self.issuer.as_deref(), self.issuer_reg_exp.as_deref(), "issuer")?,
            subject: Matcher::from_fields(self.subject.as_deref(), self.subject_reg_exp.as_deref(), "subject")?,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum KeyRef {
    /// PEM text.
    Pem(String),
    /// A PEM file on the node.
    Path(PathBuf),
    /// A key in a Kubernetes Secret; without `key`, the Secret must hold exactly one entry.
    Secret {
        namespace: String,
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
    /// A key held in a KMS, named by URI; `resolved` once the node has its public half.
    Kms(KmsKey),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KmsKey {
    pub uri: String,
    /// Inlined at sync, so the last-known-good file enforces without the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<ResolvedKey>,
}

impl KmsKey {
    /// A reference to `uri`, which must be a well-formed KMS URI; `field` names where it
    /// was written (`key.kms`).
    pub fn parse(uri: &str, field: &str) -> Result<Self, String> {
        KmsUri::parse(uri).map_err(|e| format!("{field}: {e}"))?;
        Ok(Self { uri: uri.to_string(), resolved: None })
    }
}

/// Where keys that are not inline come from.
pub trait KeySource {
    /// The PEM text of a Secret's entry, `Ok(None)` if the Secret or entry does not exist.
    fn secret(&self, namespace: &str, name: &str, key: Option<&str>) -> Result<Option<String>, String>;
    /// Directory relative key paths are resolved against.
    fn base_dir(&self) -> &Path;
    /// The public key a KMS URI stands for, as held now (never I/O: keys are resolved
    /// off the request path); `Err` says why there is none.
    fn kms(&self, uri: &str) -> Result<ResolvedKey, String> {
        Err(format!("KMS key {uri} is not resolved: no provider access here and not in kms_keys"))
    }
}

/// Another key source, with KMS keys from a [`Resolver`].
pub struct WithKms<'a> {
    pub keys: &'a (dyn KeySource + Sync),
    pub kms: &'a Resolver,
}

impl KeySource for WithKms<'_> {
    fn secret(&self, namespace: &str, name: &str, key: Option<&str>) -> Result<Option<String>, String> {
        self.keys.secret(namespace, name, key)
    }
    fn base_dir(&self) -> &Path {
        self.keys.base_dir()
    }
    fn kms(&self, uri: &str) -> Result<ResolvedKey, String> {
        self.kms.lookup(uri)
    }
}

/// A key source with no Secrets (local policy files, `policy check`).
pub struct FilesOnly<'a>(pub &'a Path);

impl KeySource for FilesOnly<'_> {
    fn secret(&self, namespace: &str, name: &str, _key: Option<&str>) -> Result<Option<String>, String> {
        Err(format!(
            "Secret {namespace}/{name} cannot be read here: this source has no cluster access; \
             put the key inline or in a file (key.path)"
        ))
    }
    fn base_dir(&self) -> &Path {
        self.0
    }
}

/// A compiled policy, and the parts of it that fail closed on this node.
#[derive(Debug)]
pub struct Compiled {
    pub policy: Policy,
    pub warnings: Vec<String>,
}

/// Compile a normalised policy. Errors (bad globs, unreadable keys) reject the policy;
/// unsupported parts and missing Secrets compile into authorities that never pass, and are
/// returned as warnings.
pub fn compile(p: &NormalPolicy, keys: &dyn KeySource) -> Result<Compiled, Vec<String>> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let globs = |patterns: &[Pattern], field: &str, errors: &mut Vec<String>| {
        let mut out = Vec::new();
        for (i, pat) in patterns.iter().enumerate() {
            if matches!(pat, Pattern::Expression(_)) {
                continue;
            }
            match pat.compile() {
                Ok(g) => out.push(g),
                Err(e) => errors.push(format!("{field}[{i}]: {e}")),
            }
        }
        out
    };
    let images = globs(&p.images, "images", &mut errors);
    let exclude_images = globs(&p.exclude_images, "excludeImages", &mut errors);
    let mut image_expressions = Vec::new();
    for (i, pat) in p.images.iter().enumerate() {
        if let Pattern::Expression(e) = pat {
            match super::cel::image_expression(&format!("images[{i}]"), e) {
                Ok(x) => image_expressions.push(x),
                Err(e) => errors.push(e.to_string()),
            }
        }
    }
    if p.exclude_images.iter().any(|x| matches!(x, Pattern::Expression(_))) {
        errors.push("excludeImages: expressions are not supported there".into());
    }
    if p.images.is_empty() {
        errors.push("no image patterns: the policy would cover nothing".into());
    }
    if p.requirements.is_empty() {
        errors.push("no authorities: a policy needs at least one".into());
    }
    let mut requirements = Vec::new();
    for (r, req) in p.requirements.iter().enumerate() {
        if req.authorities.is_empty() {
            errors.push(format!("requirement {r} lists no authorities"));
        }
        if req.count == 0 || req.count > req.authorities.len() {
            errors.push(format!(
                "requirement {r} needs {} of {} authorities, which can never be met sensibly",
                req.count,
                req.authorities.len()
            ));
        }
        let mut authorities = Vec::new();
        for a in &req.authorities {
            match compile_authority(a, keys) {
                Ok(kind) => {
                    if let AuthorityKind::Unsupported(reason) = &kind {
                        warnings.push(format!("authority {:?} fails closed on this node: {reason}", a.name));
                    }
                    if let AuthorityKind::Cel(c) = &kind {
                        warnings.extend(c.fails_closed().into_iter().map(|w| format!("authority {:?}: {w}", a.name)));
                    }
                    authorities.push(Authority { name: a.name.clone(), kind });
                }
                Err(e) => errors.push(format!("authority {:?}: {e}", a.name)),
            }
        }
        requirements.push(Requirement { count: req.count, authorities });
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let policy = Policy {
        name: p.name.clone(),
        images,
        image_expressions,
        exclude_images,
        namespaces: p.namespaces.clone(),
        requirements,
        mode: p.mode,
        exclusive: p.exclusive.clone(),
        no_match_action: p.no_match_action,
    };
    Ok(Compiled { policy, warnings })
}

fn compile_authority(a: &NormalAuthority, keys: &dyn KeySource) -> Result<AuthorityKind, String> {
    let (signer, rekor, rekor_keys, attestations) = match &a.check {
        Check::Static(StaticAction::Pass) => return Ok(AuthorityKind::StaticPass),
        Check::Static(StaticAction::Fail) => return Ok(AuthorityKind::StaticFail),
        Check::Unsupported(reason) => return Ok(AuthorityKind::Unsupported(reason.clone())),
        Check::Cel(c) => {
            if c.attestors.iter().any(|a| matches!(a.check, Check::Cel(_))) {
                return Err("an attestor cannot itself be a CEL check".into());
            }
            let mut attestor = |a: &NormalAuthority| compile_authority(a, keys);
            let compiled = super::cel::compile(c, &mut attestor).map_err(|e| e.to_string())?;
            return Ok(AuthorityKind::Cel(std::sync::Arc::new(compiled)));
        }
        Check::Key(k) => {
            let key = match &k.key {
                KeyRef::Kms(kms) => match kms_key(kms, k.hash_algorithm, keys)? {
                    Ok(key) => key,
                    Err(why) => return Ok(AuthorityKind::Unsupported(why)),
                },
                other => {
                    let pem = match resolve(other, keys)? {
                        Ok(pem) => pem,
                        Err(missing) => return Ok(AuthorityKind::Unsupported(missing)),
                    };
                    let signing = Signing { hash: k.hash_algorithm, padding: None };
                    TrustedKey::from_pem_with(pem.as_bytes(), signing)?
                }
            };
            (Signer::Key(key), &k.rekor, &k.rekor_keys, &k.attestations)
        }
        Check::Gpg(g) => {
            let text = match resolve(&g.key, keys)? {
                Ok(text) => text,
                Err(missing) => return Ok(AuthorityKind::Unsupported(missing)),
            };
            let identity = match g.signed_identity.as_deref() {
                None => SignedIdentity::default(),
                Some(name) => SignedIdentity::parse(name).ok_or_else(|| {
                    format!("signedIdentity {name:?} is not one of matchRepoDigestOrExact, matchRepository, matchExact")
                })?,
            };
            let signer = GpgSigner { keys: GpgKey::parse_armored(&text)?, identity };
            let by = SignedBy { signer: Signer::Gpg(signer), tlog: Tlog::Ignore, attestations: Vec::new() };
            return Ok(AuthorityKind::Signed(Box::new(by)));
        }
        Check::Keyless(k) => {
            let identities = k
                .identities
                .iter()
                .enumerate()
                .map(|(i, id)| id.compile().map_err(|e| format!("identities[{i}]: {e}")))
                .collect::<Result<Vec<_>, _>>()?;
            let ca = match &k.ca {
                None => None,
                Some(r) => match resolve(r, keys)? {
                    Ok(pem) => Some(CaPool::from_pem(&pem).map_err(|e| format!("CA certificates: {e}"))?),
                    Err(missing) => return Ok(AuthorityKind::Unsupported(missing)),
                },
            };
            if identities.is_empty() && ca.is_none() {
                // Any certificate from the public CA would be anyone at all.
                return Err("keyless needs identities, or its own CA certificates".into());
            }
            let signer = Signer::Keyless(Keyless { identities, ca, sct: !k.ignore_sct });
            (signer, &k.rekor, &k.rekor_keys, &k.attestations)
        }
    };
    let tlog = match rekor {
        None => Tlog::Ignore,
        Some(url) => Tlog::Require {
            url: Some(url.clone()).filter(|u| !u.is_empty()),
            keys: rekor_keys
                .iter()
                .map(|pem| LogKey::from_pem(pem).map_err(|e| format!("transparency log key: {e}")))
                .collect::<Result<_, _>>()?,
        },
    };
    Ok(AuthorityKind::Signed(Box::new(SignedBy { signer, tlog, attestations: attestations.clone() })))
}

/// The key a KMS reference stands for: what the key source holds now, else what was
/// inlined at the last sync; `Ok(Err(reason))` fails the authority closed. The scheme is
/// the KMS key's own, with the policy's digest when it names one.
fn kms_key(
    kms: &KmsKey,
    hash: Option<HashAlgorithm>,
    keys: &dyn KeySource,
) -> Result<Result<TrustedKey, String>, String> {
    let resolved = match (keys.kms(&kms.uri), &kms.resolved) {
        (Ok(r), _) => r,
        (Err(_), Some(inlined)) => inlined.clone(),
        (Err(why), None) => return Ok(Err(why)),
    };
    let signing = Signing { hash: hash.or(resolved.signing.hash), padding: resolved.signing.padding };
    TrustedKey::from_pem_with(resolved.pem.as_bytes(), signing)
        .map(Ok)
        .map_err(|e| format!("KMS key {} ({}): {e}", kms.uri, resolved.source))
}

/// The PEM text a reference names: `Ok(Err(reason))` when a Secret is missing, which makes
/// the authority fail closed rather than reject the whole policy.
fn resolve(r: &KeyRef, keys: &dyn KeySource) -> Result<Result<String, String>, String> {
    Ok(Ok(match r {
        KeyRef::Pem(pem) => pem.clone(),
        KeyRef::Path(path) => {
            let full = if path.is_absolute() { path.clone() } else { keys.base_dir().join(path) };
            std::fs::read_to_string(&full).map_err(|e| format!("key file {}: {e}", full.display()))?
        }
        KeyRef::Secret { namespace, name, key } => match keys.secret(namespace, name, key.as_deref()) {
            Ok(Some(pem)) => pem,
            Ok(None) => {
                let entry = key.as_deref().map(|k| format!(" entry {k:?}")).unwrap_or_default();
                return Ok(Err(format!("Secret {namespace}/{name}{entry} was not found")));
            }
            Err(e) => return Ok(Err(e)),
        },
        KeyRef::Kms(k) => return Ok(Err(format!("KMS key {}: KMS URIs name signing keys only", k.uri))),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TEST_PUB;

    fn policy(authorities: Vec<NormalAuthority>) -> NormalPolicy {
        NormalPolicy {
            name: "p".into(),
            origin: "test".into(),
            images: vec![Pattern::Glob("reg.io/**".into())],
            exclude_images: vec![],
            namespaces: Namespaces::default(),
            mode: Mode::Enforce,
            requirements: vec![NormalRequirement::any_of(authorities)],
            exclusive: None,
            no_match_action: None,
            pull_secrets: Vec::new(),
        }
    }

    fn key(k: KeyRef, rekor: Option<&str>) -> NormalAuthority {
        NormalAuthority::new("k", Check::Key(KeyCheck::new(k, rekor.map(String::from))))
    }

    #[test]
    fn inline_key_compiles_to_a_key_authority() {
        let c = compile(&policy(vec![key(KeyRef::Pem(TEST_PUB.into()), None)]), &FilesOnly(Path::new("/"))).unwrap();
        let AuthorityKind::Signed(by) = &c.policy.requirements[0].authorities[0].kind else { panic!() };
        assert!(matches!((&by.signer, &by.tlog), (Signer::Key(_), Tlog::Ignore)));
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn required_tlog_is_kept_with_its_keys() {
        let mut a = key(KeyRef::Pem(TEST_PUB.into()), Some("https://rekor.example"));
        let Check::Key(k) = &mut a.check else { unreachable!() };
        k.rekor_keys = vec![TEST_PUB.into()];
        let c = compile(&policy(vec![a]), &FilesOnly(Path::new("/"))).unwrap();
        let AuthorityKind::Signed(by) = &c.policy.requirements[0].authorities[0].kind else { panic!() };
        assert!(
            matches!(&by.tlog, Tlog::Require { url: Some(u), keys } if u == "https://rekor.example" && keys.len() == 1)
        );
    }

    #[test]
    fn keyless_identities_are_compiled_and_bad_ones_rejected() {
        let keyless = |ids: Vec<NormalIdentity>, ca: Option<KeyRef>| {
            policy(vec![NormalAuthority::new(
                "kl",
                Check::Keyless(KeylessCheck { identities: ids, ca, ..Default::default() }),
            )])
        };
        let good = NormalIdentity {
            issuer: Some("https://issuer.example".into()),
            subject_reg_exp: Some("^builder@".into()),
            ..Default::default()
        };
        let c = compile(&keyless(vec![good.clone()], None), &FilesOnly(Path::new("/"))).unwrap();
        let AuthorityKind::Signed(by) = &c.policy.requirements[0].authorities[0].kind else { panic!() };
        assert!(matches!(&by.signer, Signer::Keyless(k) if k.sct && k.ca.is_none() && k.identities.len() == 1));
        let bad = NormalIdentity { subject_reg_exp: Some("(".into()), ..good.clone() };
        let errs = compile(&keyless(vec![bad], None), &FilesOnly(Path::new("/"))).unwrap_err();
        assert!(errs[0].contains("identities[0]: subjectRegExp"), "{errs:?}");
        let half = NormalIdentity { subject: None, subject_reg_exp: None, ..good };
        assert!(compile(&keyless(vec![half], None), &FilesOnly(Path::new("/"))).is_err());
        let errs = compile(&keyless(vec![], None), &FilesOnly(Path::new("/"))).unwrap_err();
        assert!(errs[0].contains("needs identities"), "{errs:?}");
        let ca = KeyRef::Path(Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cosign/root.pem"));
        assert!(compile(&keyless(vec![], Some(ca)), &FilesOnly(Path::new("/"))).is_ok(), "own CA, any holder");
    }

    #[test]
    fn secret_without_cluster_access_fails_closed_with_reason() {
        let k = KeyRef::Secret { namespace: "ns".into(), name: "s".into(), key: None };
        let c = compile(&policy(vec![key(k, None)]), &FilesOnly(Path::new("/"))).unwrap();
        assert!(c.warnings[0].contains("Secret ns/s"), "{:?}", c.warnings);
    }

    #[test]
    fn bad_pattern_missing_file_and_impossible_count_are_all_listed() {
        let mut p = policy(vec![key(KeyRef::Path("missing.pub".into()), None)]);
        p.images.push(Pattern::Glob("a b".into()));
        p.requirements[0].count = 2;
        let errs = compile(&p, &FilesOnly(Path::new("/nowhere"))).unwrap_err();
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("/nowhere/missing.pub")), "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("images[1]")), "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("2 of 1")), "{errs:?}");
    }

    #[test]
    fn yaml_form_round_trips() {
        let p = policy(vec![
            key(KeyRef::Secret { namespace: "n".into(), name: "s".into(), key: Some("cosign.pub".into()) }, None),
            NormalAuthority::new("x", Check::Static(StaticAction::Pass)),
            NormalAuthority::new("y", Check::Unsupported("why".into())),
        ]);
        let text = serde_yaml::to_string(&p).unwrap();
        assert_eq!(serde_yaml::from_str::<NormalPolicy>(&text).unwrap(), p, "{text}");
    }

    fn kms_policy(uri: &str, hash: Option<HashAlgorithm>, resolved: Option<ResolvedKey>) -> NormalPolicy {
        let mut check = KeyCheck::new(KeyRef::Kms(KmsKey { uri: uri.into(), resolved }), None);
        check.hash_algorithm = hash;
        policy(vec![NormalAuthority::new("kms", Check::Key(check))])
    }

    fn kms_resolved(hash: Option<HashAlgorithm>) -> ResolvedKey {
        ResolvedKey {
            pem: TEST_PUB.into(),
            version: "v1".into(),
            signing: Signing { hash, padding: None },
            source: "test".into(),
        }
    }

    fn scheme(c: &Compiled) -> String {
        let AuthorityKind::Signed(by) = &c.policy.requirements[0].authorities[0].kind else { panic!("{c:?}") };
        let Signer::Key(k) = &by.signer else { panic!() };
        k.key.scheme()
    }

    /// #18: a KMS key compiles from what the resolver holds, else from the key inlined at
    /// the last sync (the last-known-good file), else it fails closed naming the URI.
    #[test]
    fn kms_keys_compile_from_the_resolver_then_the_inlined_key_else_fail_closed() {
        let uri = "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1";
        let files = FilesOnly(Path::new("/"));
        let c = compile(&kms_policy(uri, None, None), &files).unwrap();
        assert!(c.warnings[0].contains(uri) && c.warnings[0].contains("not resolved"), "{:?}", c.warnings);

        let inlined = kms_policy(uri, None, Some(kms_resolved(Some(HashAlgorithm::Sha384))));
        assert_eq!(scheme(&compile(&inlined, &files).unwrap()), "ecdsa-p256-sha384", "the KMS key's own digest");

        let pinned = BTreeMap::from([(uri.to_string(), kms_resolved(Some(HashAlgorithm::Sha512)))]);
        let resolver = Resolver::new(None, pinned, None);
        let keys = WithKms { keys: &files, kms: &resolver };
        assert_eq!(scheme(&compile(&inlined, &keys).unwrap()), "ecdsa-p256-sha512", "what is held now wins");
        let c = compile(&kms_policy(uri, Some(HashAlgorithm::Sha256), None), &keys).unwrap();
        assert_eq!(scheme(&c), "ecdsa-p256-sha256", "the policy's hashAlgorithm names the digest");
    }

    /// The digest is part of a policy's identity: verdicts cached under one scheme are not
    /// served for a policy that names another.
    #[test]
    fn hash_algorithm_changes_the_policy_identity() {
        let with = |h| {
            let mut a = key(KeyRef::Pem(TEST_PUB.into()), None);
            let Check::Key(k) = &mut a.check else { unreachable!() };
            k.hash_algorithm = h;
            compile(&policy(vec![a]), &FilesOnly(Path::new("/"))).unwrap().policy
        };
        assert_ne!(with(None).identity(), with(Some(HashAlgorithm::Sha384)).identity());
        assert_eq!(with(None).identity(), with(None).identity());
    }
}
