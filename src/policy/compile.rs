//! The normal form compiled into the evaluated model: patterns into matchers, key
//! references into keys (inline, files, Secrets, KMS), identities into matchers.
//!
//! Errors (bad patterns, unreadable keys) reject the policy, all of them listed so a user
//! fixes them in one round. A key that is missing on this node (a Secret not found, a KMS
//! key not resolved) is not an error: its authority compiles into one that never passes and
//! says why, so whoever can delete a Secret cannot lift the rule.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::cel::{self, CelError, Expression};
use super::matching::{GlobError, ImageGlob};
use super::model::{
    Attached, AttestationKind, Authority, AuthorityKind, CompiledCel, Keyless, Policy, Requirement, SignedBy, Signer,
    Tlog, Validation,
};
use super::normal::{
    CelCheck, Check, KeyRef, KmsKey, NormalAuthority, NormalIdentity, NormalPolicy, Pattern, StaticAction,
};
use super::TrustedKey;
use crate::held::Held;
use crate::kms::{KmsError, ResolvedKey};
use crate::tuf::{HeldRoot, TufError, TufRepo};
use crate::verify::certificate::{CertificateError, CertificateSigner};
use crate::verify::gpg::{GpgKey, GpgKeyError, GpgSigner, SignedIdentity};
use crate::verify::keyless::{Identity, Matcher, MatcherError};
use crate::verify::notary::{CertsError as NotaryCertsError, NotaryTrust};
use crate::verify::pubkey::{HashAlgorithm, KeyError, Signing};
use crate::verify::timestamp::{Authorities, TsaChainError};
use crate::verify::trust::{CaPool, LogKey, MaterialError};

/// What rejects a policy on this node, each naming the field or authority it is about.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("{field}[{index}]: {source}")]
    Pattern { field: &'static str, index: usize, source: PatternError },
    /// An image expression (CEL over `ref`) that does not compile, in the CEL checker's words.
    #[error("{0}")]
    ImageExpression(String),
    #[error("excludeImages: expressions are not supported there")]
    ExcludedExpression,
    #[error("no image patterns: the policy would cover nothing")]
    NoImages,
    #[error("no authorities: a policy needs at least one")]
    NoAuthorities,
    #[error("requirement {index} lists no authorities")]
    EmptyRequirement { index: usize },
    #[error("requirement {index} needs {count} of {of} authorities, which can never be met sensibly")]
    ImpossibleCount { index: usize, count: usize, of: usize },
    #[error("authority {name:?}: {source}")]
    Authority { name: String, source: AuthorityError },
}

/// An image pattern that does not compile.
#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    #[error("image pattern is {len} bytes long, more than the {MAX_PATTERN_BYTES} any image name can need")]
    TooLong { len: usize },
    #[error("an expression is not a glob")]
    Expression,
    #[error(transparent)]
    Glob(#[from] GlobError),
}

/// An authority whose key material or settings are wrong (not merely missing here).
#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    #[error("an attestor cannot itself be a CEL check")]
    NestedCel,
    /// CEL validations that do not compile, in the CEL compiler's words.
    #[error(transparent)]
    Cel(CelCompileError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("KMS key {uri} ({from}): {source}")]
    KmsKey { uri: String, from: String, source: KeyError },
    #[error("key file {}: {source}", .path.display())]
    KeyFile { path: PathBuf, source: std::io::Error },
    #[error("signedIdentity {0:?} is not one of matchRepoDigestOrExact, matchRepository, matchExact")]
    SignedIdentity(String),
    #[error(transparent)]
    GpgKey(#[from] GpgKeyError),
    #[error("identities[{index}]: {source}")]
    Identity { index: usize, source: MatcherError },
    #[error("CA certificates: {0}")]
    Ca(MaterialError),
    #[error("keyless needs identities, or its own CA certificates")]
    AnyHolder,
    #[error("transparency log key: {0}")]
    LogKey(MaterialError),
    #[error("{0}")]
    TrustedRoot(crate::verify::trust::TrustError),
    #[error("signature tag prefix {prefix:?}: {why}")]
    TagPrefix { prefix: String, why: String },
    #[error("signature repository {repository:?}: {why}")]
    Repository { repository: String, why: String },
    #[error("CT log key: {0}")]
    CtLogKey(MaterialError),
    #[error("timestamp authority certificates (tsaCertChain): {0}")]
    Tsa(TsaChainError),
    #[error(transparent)]
    NotaryCerts(#[from] NotaryCertsError),
    #[error(transparent)]
    Certificate(#[from] CertificateError),
    #[error("attestation conditions: {0}")]
    Conditions(crate::conditions::ConditionError),
}

/// Why a key a policy names is not available on this node: its authority fails closed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeyUnavailable {
    #[error(
        "Secret {namespace}/{name} cannot be read here: this source has no cluster access; put the key inline or in \
         a file (key.path)"
    )]
    NoClusterAccess { namespace: String, name: String },
    #[error("Secret {namespace}/{name}{} was not found", .key.as_deref().map(|k| format!(" entry {k:?}")).unwrap_or_default())]
    SecretNotFound { namespace: String, name: String, key: Option<String> },
    #[error("Secret {namespace}/{name} has {entries} entries; it must hold exactly one key")]
    AmbiguousSecret { namespace: String, name: String, entries: usize },
    #[error("KMS key {uri}: KMS URIs name signing keys only")]
    KmsNotSigning { uri: String },
    #[error(transparent)]
    Kms(#[from] KmsError),
    #[error(transparent)]
    Tuf(#[from] TufError),
}

/// Twice the longest image name signet accepts ([`crate::reference::MAX_NAME_BYTES`]).
pub const MAX_PATTERN_BYTES: usize = 2 * crate::reference::MAX_NAME_BYTES;

impl Pattern {
    pub fn compile(&self) -> Result<ImageGlob, PatternError> {
        // Matching costs pattern × name; a pattern longer than any valid name matches
        // nothing it could not match shorter, and a megabyte of `*` would take seconds per
        // decision (a late answer gets the plugin dropped and the container run unchecked).
        let text = self.text();
        if text.len() > MAX_PATTERN_BYTES {
            return Err(PatternError::TooLong { len: text.len() });
        }
        Ok(match self {
            Pattern::Glob(g) => ImageGlob::new(g),
            Pattern::Wildcard(w) => ImageGlob::wildcard(w),
            Pattern::PolicyControllerGlob(g) => ImageGlob::policy_controller(g),
            Pattern::KyvernoWildcard(w) => ImageGlob::kyverno(w),
            Pattern::PortierisRepository(r) => ImageGlob::portieris(r),
            Pattern::Expression(_) => return Err(PatternError::Expression),
        }?)
    }
}

impl NormalIdentity {
    pub fn compile(&self) -> Result<Identity, MatcherError> {
        let extensions = self
            .extensions
            .iter()
            .map(|(oid, re)| Ok((oid.clone(), Matcher::from_fields(None, Some(re), &format!("extension {oid}"))?)))
            .collect::<Result<_, MatcherError>>()?;
        Ok(Identity {
            issuer: Matcher::from_fields(self.issuer.as_deref(), self.issuer_reg_exp.as_deref(), "issuer")?,
            subject: Matcher::from_fields(self.subject.as_deref(), self.subject_reg_exp.as_deref(), "subject")?,
            extensions,
        })
    }
}

/// Where keys that are not inline come from.
pub trait KeySource {
    /// The PEM text of a Secret's entry, `Ok(None)` if the Secret or entry does not exist.
    fn secret(&self, namespace: &str, name: &str, key: Option<&str>) -> Result<Option<String>, KeyUnavailable>;
    /// Directory relative key paths are resolved against.
    fn base_dir(&self) -> &Path;
    /// The public key a KMS URI stands for, as held now (never I/O: keys are resolved
    /// off the request path); `Err` says why there is none.
    fn kms(&self, uri: &str) -> Result<ResolvedKey, KeyUnavailable> {
        Err(KmsError::NoAccess { uri: uri.to_string() }.into())
    }
    /// The trust root a TUF repository last served, as held now (never I/O).
    fn tuf(&self, repo: &TufRepo) -> Result<HeldRoot, KeyUnavailable> {
        Err(TufError::NoAccess { mirror: repo.mirror.clone() }.into())
    }
}

/// Another key source, with KMS keys and TUF trust roots from what [`Held`] holds.
pub struct WithHeld<'a> {
    pub keys: &'a (dyn KeySource + Sync),
    pub held: &'a Held,
}

impl KeySource for WithHeld<'_> {
    fn secret(&self, namespace: &str, name: &str, key: Option<&str>) -> Result<Option<String>, KeyUnavailable> {
        self.keys.secret(namespace, name, key)
    }
    fn base_dir(&self) -> &Path {
        self.keys.base_dir()
    }
    fn kms(&self, uri: &str) -> Result<ResolvedKey, KeyUnavailable> {
        Ok(self.held.kms.lookup(uri)?)
    }
    fn tuf(&self, repo: &TufRepo) -> Result<HeldRoot, KeyUnavailable> {
        Ok(self.held.tuf.lookup(repo)?)
    }
}

/// A key source with no Secrets (local policy files, `policy check`).
pub struct FilesOnly<'a>(pub &'a Path);

impl KeySource for FilesOnly<'_> {
    fn secret(&self, namespace: &str, name: &str, _key: Option<&str>) -> Result<Option<String>, KeyUnavailable> {
        Err(KeyUnavailable::NoClusterAccess { namespace: namespace.to_string(), name: name.to_string() })
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
pub fn compile(p: &NormalPolicy, keys: &dyn KeySource) -> Result<Compiled, Vec<CompileError>> {
    let mut errors = Vec::new();
    let images = globs(&p.images, "images", &mut errors);
    let exclude_images = globs(&p.exclude_images, "excludeImages", &mut errors);
    let mut image_expressions = Vec::new();
    for (i, pat) in p.images.iter().enumerate() {
        if let Pattern::Expression(e) = pat {
            match cel::image_expression(&format!("images[{i}]"), e) {
                Ok(x) => image_expressions.push(x),
                Err(e) => errors.push(CompileError::ImageExpression(e.to_string())),
            }
        }
    }
    if p.exclude_images.iter().any(|x| matches!(x, Pattern::Expression(_))) {
        errors.push(CompileError::ExcludedExpression);
    }
    if p.images.is_empty() {
        errors.push(CompileError::NoImages);
    }
    if p.requirements.is_empty() {
        errors.push(CompileError::NoAuthorities);
    }
    let mut warnings = Vec::new();
    let mut requirements = Vec::new();
    for (index, req) in p.requirements.iter().enumerate() {
        if req.authorities.is_empty() {
            errors.push(CompileError::EmptyRequirement { index });
        }
        if req.count == 0 || req.count > req.authorities.len() {
            errors.push(CompileError::ImpossibleCount { index, count: req.count, of: req.authorities.len() });
        }
        let mut authorities = Vec::new();
        for a in &req.authorities {
            match compile_authority(a, keys) {
                Ok(kind) => {
                    warnings.extend(fails_closed(&a.name, &kind));
                    authorities.push(Authority { name: a.name.clone(), kind });
                }
                Err(source) => errors.push(CompileError::Authority { name: a.name.clone(), source }),
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

/// The glob patterns of `field`; expressions are compiled apart.
fn globs(patterns: &[Pattern], field: &'static str, errors: &mut Vec<CompileError>) -> Vec<ImageGlob> {
    let mut out = Vec::new();
    for (index, pat) in patterns.iter().enumerate() {
        if matches!(pat, Pattern::Expression(_)) {
            continue;
        }
        match pat.compile() {
            Ok(g) => out.push(g),
            Err(source) => errors.push(CompileError::Pattern { field, index, source }),
        }
    }
    out
}

/// What of a compiled authority can never pass on this node, as warnings.
fn fails_closed(name: &str, kind: &AuthorityKind) -> Vec<String> {
    match kind {
        AuthorityKind::Unsupported(reason) => vec![format!("authority {name:?} fails closed on this node: {reason}")],
        AuthorityKind::Cel(c) => c.fails_closed().into_iter().map(|w| format!("authority {name:?}: {w}")).collect(),
        _ => Vec::new(),
    }
}

fn compile_authority(a: &NormalAuthority, keys: &dyn KeySource) -> Result<AuthorityKind, AuthorityError> {
    let unavailable = |why: KeyUnavailable| Ok(AuthorityKind::Unsupported(why.to_string()));
    let (signer, rekor, rekor_keys, attestations, tsa, repository, trusted_root) = match &a.check {
        Check::Static(StaticAction::Pass) => return Ok(AuthorityKind::StaticPass),
        Check::Static(StaticAction::Fail) => return Ok(AuthorityKind::StaticFail),
        Check::Unsupported(reason) => return Ok(AuthorityKind::Unsupported(reason.clone())),
        Check::Cel(c) => {
            if c.attestors.iter().any(|a| matches!(a.check, Check::Cel(_))) {
                return Err(AuthorityError::NestedCel);
            }
            let compiled = compile_cel(c, &mut |a| compile_authority(a, keys)).map_err(AuthorityError::Cel)?;
            return Ok(AuthorityKind::Cel(std::sync::Arc::new(compiled)));
        }
        Check::Key(k) => {
            let key = match &k.key {
                KeyRef::Kms(kms) => match kms_key(kms, k.hash_algorithm, keys)? {
                    Ok(key) => key,
                    Err(why) => return unavailable(why),
                },
                other => {
                    let pem = match resolve(other, keys)? {
                        Ok(pem) => pem,
                        Err(why) => return unavailable(why),
                    };
                    let signing = Signing { hash: k.hash_algorithm, padding: None };
                    TrustedKey::from_pem_with(pem.as_bytes(), signing)?
                }
            };
            (
                Signer::Key(key),
                &k.rekor,
                &k.rekor_keys,
                &k.attestations,
                &k.tsa_cert_chain,
                &k.repository,
                &k.trusted_root,
            )
        }
        Check::Gpg(g) => {
            let text = match resolve(&g.key, keys)? {
                Ok(text) => text,
                Err(why) => return unavailable(why),
            };
            let identity = match g.signed_identity.as_deref() {
                None => SignedIdentity::default(),
                Some(name) => {
                    SignedIdentity::parse(name).ok_or_else(|| AuthorityError::SignedIdentity(name.to_string()))?
                }
            };
            let signer = GpgSigner { keys: GpgKey::parse_armored(&text)?, identity };
            let by = SignedBy::new(Signer::Gpg(signer), Tlog::Ignore);
            return Ok(AuthorityKind::Signed(Box::new(by)));
        }
        Check::Notary(n) => {
            let pem = match resolve(&n.certs, keys)? {
                Ok(pem) => pem,
                Err(why) => return unavailable(why),
            };
            let mut trust = NotaryTrust::from_pem(&pem)?;
            trust.tsa =
                n.tsa_certs.as_deref().map(Authorities::anchors_from_pem).transpose().map_err(AuthorityError::Tsa)?;
            let by = SignedBy {
                attestations: n.attestations.clone(),
                conditions: conditions(&n.conditions)?,
                ..SignedBy::new(Signer::Notary(trust), Tlog::Ignore)
            };
            return Ok(AuthorityKind::Signed(Box::new(by)));
        }
        Check::Certificate(c) => {
            let mut signer = CertificateSigner::from_pem(&c.certificate, c.chain.as_deref(), !c.ignore_sct)?;
            signer.trust_root_cas = c.chain.is_some() && c.trust_root_cas;
            signer.sct_logs = ct_log_keys(&c.ct_log_keys)?;
            if let Some(hash) = c.hash_algorithm {
                signer.key = crate::verify::pubkey::PublicKey::from_der(
                    &signer.spki,
                    Signing { hash: Some(hash), padding: None },
                )?;
            }
            (
                Signer::Certificate(signer),
                &c.rekor,
                &c.rekor_keys,
                &c.attestations,
                &c.tsa_cert_chain,
                &c.repository,
                &c.trusted_root,
            )
        }
        Check::Keyless(k) => {
            let identities = k
                .identities
                .iter()
                .enumerate()
                .map(|(index, id)| id.compile().map_err(|source| AuthorityError::Identity { index, source }))
                .collect::<Result<Vec<_>, _>>()?;
            let ca = match &k.ca {
                None => None,
                Some(r) => match resolve(r, keys)? {
                    Ok(pem) => Some(CaPool::from_pem(&pem).map_err(AuthorityError::Ca)?),
                    Err(why) => return unavailable(why),
                },
            };
            if identities.is_empty() && ca.is_none() {
                // Any certificate from the public CA would be anyone at all.
                return Err(AuthorityError::AnyHolder);
            }
            let signer =
                Signer::Keyless(Keyless { identities, ca, sct: !k.ignore_sct, sct_logs: ct_log_keys(&k.ct_log_keys)? });
            (signer, &k.rekor, &k.rekor_keys, &k.attestations, &k.tsa_cert_chain, &k.repository, &k.trusted_root)
        }
    };
    let tsa = tsa.as_deref().map(Authorities::from_pem).transpose().map_err(AuthorityError::Tsa)?;
    let repository = repository.as_deref().map(signature_repository).transpose()?;
    let tag_prefix = a.check.tag_prefix().filter(|p| !p.is_empty()).map(tag_prefix).transpose()?;
    let source = (repository.is_some() || tag_prefix.is_some())
        .then(|| Attached { repository, tag_prefix: tag_prefix.unwrap_or_default() });
    // An inline trusted root wins over a TUF repository, as Kyverno's resolveTrustedMaterial
    // has it; a repository not fetched yet (nor carried from the last-known-good file) fails
    // this authority closed, naming the mirror.
    // The inlined copy counts only while the metadata it was verified under is unexpired.
    let tuf = match (trusted_root, a.check.tuf()) {
        (None, Some(t)) => match keys.tuf(&t.repository) {
            Ok(held) => Some((held.trusted_root, held.expires)),
            Err(e) => match t.resolved.as_ref().map(|r| {
                r.usable(&t.repository.mirror, crate::tuf::now_secs()).map(|json| (json.to_string(), r.expires))
            }) {
                Some(Ok(last)) => Some(last),
                Some(Err(expired))
                    if matches!(e, KeyUnavailable::Tuf(TufError::NoAccess { .. } | TufError::Pending { .. })) =>
                {
                    return unavailable(expired.into())
                }
                _ => return unavailable(e),
            },
        },
        _ => None,
    };
    let parse =
        |json: &str, what: &str| crate::verify::trust::TrustRoot::parse(json.as_bytes(), what).map(std::sync::Arc::new);
    let trust_until = tuf.as_ref().map(|(_, expires)| *expires);
    let trust = match (trusted_root.as_deref(), tuf.as_ref().map(|(json, _)| json.as_str())) {
        (Some(json), _) => Some(parse(json, "trustedRoot")),
        (None, Some(json)) => Some(parse(json, "the TUF repository's trusted_root.json")),
        (None, None) => None,
    }
    .transpose()
    .map_err(AuthorityError::TrustedRoot)?;
    let tlog = match rekor {
        None => Tlog::Ignore,
        Some(url) => Tlog::Require {
            url: Some(url.clone()).filter(|u| !u.is_empty()),
            keys: rekor_keys
                .iter()
                .map(|pem| LogKey::from_pem(pem).map_err(AuthorityError::LogKey))
                .collect::<Result<_, _>>()?,
        },
    };
    let trust_root_timestamps = matches!(&a.check, Check::Keyless(k) if k.trust_root_timestamps);
    Ok(AuthorityKind::Signed(Box::new(SignedBy {
        signer,
        tlog,
        attestations: attestations.clone(),
        conditions: conditions(a.check.conditions())?,
        tsa,
        source,
        trust_root_timestamps,
        trust,
        trust_until,
    })))
}

/// Attestation conditions as written, read; none when there are none.
fn conditions(
    written: &[serde_json::Value],
) -> Result<Option<std::sync::Arc<crate::conditions::Conditions>>, AuthorityError> {
    if written.is_empty() {
        return Ok(None);
    }
    crate::conditions::Conditions::parse(written).map(Some).map_err(AuthorityError::Conditions)
}

/// A signature repository as `registry/path`, normalised as image names are (so that
/// `ghcr.io/org/sigs` and `docker.io` short names mean what they do to cosign); it names a
/// repository, never a tag or digest.
fn signature_repository(text: &str) -> Result<String, AuthorityError> {
    let bad = |why: &str| AuthorityError::Repository { repository: text.to_string(), why: why.to_string() };
    let last = text.rsplit('/').next().unwrap_or_default();
    if text.contains('@') || last.contains(':') {
        return Err(bad("a repository has no tag or digest"));
    }
    let r = crate::reference::parse(text).map_err(|e| bad(&e.to_string()))?;
    Ok(format!("{}/{}", r.registry(), r.repository()))
}

/// A `.sig`/`.att` tag prefix: tag characters only, short enough that the whole tag
/// (`<prefix>sha256-<64 hex>.sig`) stays within the 128 a registry accepts.
fn tag_prefix(prefix: &str) -> Result<String, AuthorityError> {
    const ROOM: usize = 128 - "sha256-.sig".len() - 64;
    let bad = |why: String| AuthorityError::TagPrefix { prefix: prefix.to_string(), why };
    if prefix.len() > ROOM {
        return Err(bad(format!("longer than {ROOM} characters")));
    }
    if let Some(c) = prefix.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
        return Err(bad(format!("{c:?} is not a tag character")));
    }
    if prefix.starts_with(['.', '-']) {
        return Err(bad("a tag starts with a letter, a digit or '_'".into()));
    }
    Ok(prefix.to_string())
}

fn ct_log_keys(pems: &[String]) -> Result<Vec<LogKey>, AuthorityError> {
    pems.iter().map(|pem| LogKey::from_pem(pem).map_err(AuthorityError::CtLogKey)).collect()
}

/// The key a KMS reference stands for: what the key source holds now, else what was
/// inlined at the last sync; `Ok(Err(why))` fails the authority closed. The scheme is the
/// KMS key's own, with the policy's digest when it names one.
fn kms_key(
    kms: &KmsKey,
    hash: Option<HashAlgorithm>,
    keys: &dyn KeySource,
) -> Result<Result<TrustedKey, KeyUnavailable>, AuthorityError> {
    let resolved = match (keys.kms(&kms.uri), &kms.resolved) {
        (Ok(r), _) => r,
        (Err(_), Some(inlined)) => inlined.clone(),
        (Err(why), None) => return Ok(Err(why)),
    };
    let signing = Signing { hash: hash.or(resolved.signing.hash), padding: resolved.signing.padding };
    TrustedKey::from_pem_with(resolved.pem.as_bytes(), signing).map(Ok).map_err(|source| AuthorityError::KmsKey {
        uri: kms.uri.clone(),
        from: resolved.source.clone(),
        source,
    })
}

/// The PEM text a reference names: `Ok(Err(why))` when a Secret is missing, which makes
/// the authority fail closed rather than reject the whole policy.
fn resolve(r: &KeyRef, keys: &dyn KeySource) -> Result<Result<String, KeyUnavailable>, AuthorityError> {
    Ok(Ok(match r {
        KeyRef::Pem(pem) => pem.clone(),
        KeyRef::Path(path) => {
            let full = if path.is_absolute() { path.clone() } else { keys.base_dir().join(path) };
            std::fs::read_to_string(&full).map_err(|source| AuthorityError::KeyFile { path: full, source })?
        }
        KeyRef::Secret { namespace, name, key } => match keys.secret(namespace, name, key.as_deref()) {
            Ok(Some(pem)) => pem,
            Ok(None) => {
                return Ok(Err(KeyUnavailable::SecretNotFound {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    key: key.clone(),
                }))
            }
            Err(e) => return Ok(Err(e)),
        },
        KeyRef::Kms(k) => return Ok(Err(KeyUnavailable::KmsNotSigning { uri: k.uri.clone() })),
    }))
}

/// Why a [`CelCheck`] cannot be compiled at all (its expressions fail one by one, as
/// [`CelError`]s, without failing the whole).
#[derive(Debug, thiserror::Error)]
pub enum CelCompileError {
    #[error("attestor {name}: {source}")]
    Attestor { name: String, source: Box<AuthorityError> },
    #[error("attestor {0} is defined twice")]
    DuplicateAttestor(String),
    #[error("attestation {0}: exactly one of intoto or referrer")]
    AttestationKind(String),
    #[error("attestation {0} is defined twice")]
    DuplicateAttestation(String),
    #[error("no validations: nothing to evaluate")]
    NoValidations,
}

/// Compile a [`CelCheck`]; the attestors are compiled by the caller's authority compiler.
pub fn compile_cel(
    c: &CelCheck,
    compile_attestor: &mut dyn FnMut(&NormalAuthority) -> Result<AuthorityKind, AuthorityError>,
) -> Result<CompiledCel, CelCompileError> {
    let mut attestors = BTreeMap::new();
    for a in &c.attestors {
        let kind =
            compile_attestor(a).map_err(|e| CelCompileError::Attestor { name: a.name.clone(), source: Box::new(e) })?;
        if attestors.insert(a.name.clone(), kind).is_some() {
            return Err(CelCompileError::DuplicateAttestor(a.name.clone()));
        }
    }
    let mut attestations = BTreeMap::new();
    for a in &c.attestations {
        let kind = match (&a.intoto, &a.referrer) {
            (Some(t), None) => AttestationKind::InToto(t.clone()),
            (None, Some(t)) => AttestationKind::Referrer(t.clone()),
            _ => return Err(CelCompileError::AttestationKind(a.name.clone())),
        };
        if attestations.insert(a.name.clone(), kind).is_some() {
            return Err(CelCompileError::DuplicateAttestation(a.name.clone()));
        }
    }
    let names = cel::Names {
        attestors: attestors.keys().map(String::as_str).collect(),
        attestations: attestations.keys().map(String::as_str).collect(),
        variables: c.variables.iter().map(|v| v.name.as_str()).collect(),
        object_is_pod: c.object_is_pod,
    };
    let match_conditions: Vec<Result<Expression, CelError>> = c
        .match_conditions
        .iter()
        .map(|m| cel::condition(&format!("matchConditions[{}]", m.name), &m.expression, &names))
        .collect();
    let variables: Vec<(String, Result<Expression, CelError>)> = c
        .variables
        .iter()
        .map(|v| (v.name.clone(), cel::expression(&format!("variables[{}]", v.name), &v.expression, &names)))
        .collect();
    let validations: Vec<Validation> = c
        .validations
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let field = format!("validations[{i}]");
            let message_expression = v
                .message_expression
                .as_ref()
                .and_then(|m| cel::expression(&format!("{field}.messageExpression"), m, &names).ok());
            Validation {
                check: cel::validation(&field, &v.expression, &names),
                message: v.message.clone(),
                message_expression,
            }
        })
        .collect();
    if c.validations.is_empty() {
        return Err(CelCompileError::NoValidations);
    }
    let object_selector = c.object_selector.clone().filter(|s| !s.is_empty());
    let reads_request = object_selector.is_some()
        || match_conditions.iter().filter_map(|m| m.as_ref().ok()).any(Expression::reads_request)
        || variables.iter().filter_map(|(_, v)| v.as_ref().ok()).any(Expression::reads_request)
        || validations.iter().any(|v| {
            v.check.as_ref().is_ok_and(Expression::reads_request)
                || v.message_expression.as_ref().is_some_and(Expression::reads_request)
        });
    Ok(CompiledCel {
        reads_request,
        object_selector,
        attestors,
        attestations,
        match_conditions,
        variables,
        validations,
        require_verified: c.require_verified,
        require_digest: c.require_digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use crate::policy::normal::{KeyCheck, KeylessCheck};
    use crate::testutil::{normal_policy, TEST_PUB};

    fn policy(authorities: Vec<NormalAuthority>) -> NormalPolicy {
        normal_policy("p", "reg.io/**", authorities)
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
        assert!(errs[0].to_string().contains("identities[0]: subjectRegExp"), "{errs:?}");
        let half = NormalIdentity { subject: None, subject_reg_exp: None, ..good };
        assert!(compile(&keyless(vec![half], None), &FilesOnly(Path::new("/"))).is_err());
        let errs = compile(&keyless(vec![], None), &FilesOnly(Path::new("/"))).unwrap_err();
        assert!(errs[0].to_string().contains("needs identities"), "{errs:?}");
        let ca = KeyRef::Path(Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cosign/root.pem"));
        assert!(compile(&keyless(vec![], Some(ca)), &FilesOnly(Path::new("/"))).is_ok(), "own CA, any holder");
    }

    /// #19: a certificate check compiles into a certificate signer: the tlog as asked, an
    /// SCT and the trust root's CAs only with a chain, and a chain it does not chain to, or
    /// a certificate that is none, refuses the policy naming why.
    #[test]
    fn certificate_checks_compile_to_certificate_signers() {
        use crate::policy::normal::CertificateCheck;
        use crate::testutil::vector;
        let check = |chain: Option<&str>, rekor: Option<&str>| CertificateCheck {
            tag_prefix: None,
            tuf: None,
            conditions: Vec::new(),
            certificate: vector("leaf-email.pem"),
            chain: chain.map(vector),
            rekor: rekor.map(String::from),
            rekor_keys: Vec::new(),
            ignore_sct: false,
            ct_log_keys: Vec::new(),
            trust_root_cas: true,
            attestations: vec!["https://slsa.dev/provenance/v1".into()],
            tsa_cert_chain: None,
            hash_algorithm: None,
            repository: None,
            trusted_root: None,
        };
        let compiled = |c: CertificateCheck| {
            compile(&policy(vec![NormalAuthority::new("c", Check::Certificate(c))]), &FilesOnly(Path::new("/")))
        };
        let c = compiled(check(None, Some("https://rekor.example"))).unwrap();
        let AuthorityKind::Signed(by) = &c.policy.requirements[0].authorities[0].kind else { panic!() };
        let Signer::Certificate(s) = &by.signer else { panic!("{by:?}") };
        assert!(!s.sct && !s.trust_root_cas && s.chain.is_empty(), "no chain: neither SCT nor CAs");
        assert!(matches!(&by.tlog, Tlog::Require { url: Some(u), .. } if u == "https://rekor.example"));
        assert_eq!(by.attestations, ["https://slsa.dev/provenance/v1"]);
        let c = compiled(check(Some("chain.pem"), None)).unwrap();
        let AuthorityKind::Signed(by) = &c.policy.requirements[0].authorities[0].kind else { panic!() };
        let Signer::Certificate(s) = &by.signer else { panic!() };
        assert!(s.sct && s.trust_root_cas && s.chain.len() == 2 && matches!(by.tlog, Tlog::Ignore));
        let errs = compiled(check(Some("other-root.pem"), None)).unwrap_err();
        assert!(errs[0].to_string().contains("authority \"c\": certificate does not chain"), "{errs:?}");
        let errs = compiled(CertificateCheck { certificate: TEST_PUB.into(), ..check(None, None) }).unwrap_err();
        assert!(errs[0].to_string().contains("no CERTIFICATE block"), "{errs:?}");
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
        assert!(errs.iter().any(|e| e.to_string().contains("/nowhere/missing.pub")), "{errs:?}");
        assert!(errs.iter().any(|e| e.to_string().contains("images[1]")), "{errs:?}");
        assert!(errs.iter().any(|e| e.to_string().contains("2 of 1")), "{errs:?}");
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
        let resolver = crate::kms::Resolver::new(None, pinned, None);
        let held = Held::new(resolver, crate::tuf::Store::offline());
        let keys = WithHeld { keys: &files, held: &held };
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
