//! The normalised policy every source is translated into.
//!
//! Importers ([`super::importers`]) turn each policy language into [`NormalPolicy`] values;
//! `signet policy check` prints them, the last-known-good file stores them (with Secret and
//! KMS keys already inlined), and [`super::compile`] turns them into the evaluated model.
//! Keeping one serialisable middle form means every language gets the same checks, and a
//! user can see exactly what the node will enforce.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::model::{Exclusive, Mode, Namespaces, NoMatchAction};
use crate::held::Held;
use crate::kms::{KmsUri, ResolvedKey, UriError};
use crate::tuf::{HeldRoot, TufRepo};
use crate::verify::pubkey::HashAlgorithm;

/// A value of the normal form that is not well formed.
#[derive(Debug, thiserror::Error)]
pub enum NormalError {
    #[error("an image pattern is exactly one of {}", PATTERN_KEYS.join(", "))]
    PatternKey,
    #[error("{field}: {source}")]
    KmsUri { field: String, source: UriError },
}

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
    /// Every check, a CEL check's named attestors among them.
    fn checks(&self) -> impl Iterator<Item = &Check> {
        self.requirements.iter().flat_map(|r| &r.authorities).flat_map(|a| {
            let nested: Vec<&Check> = match &a.check {
                Check::Cel(c) => c.attestors.iter().map(|x| &x.check).collect(),
                _ => Vec::new(),
            };
            std::iter::once(&a.check).chain(nested)
        })
    }

    fn checks_mut(&mut self) -> Vec<&mut Check> {
        let mut out = Vec::new();
        for a in self.requirements.iter_mut().flat_map(|r| &mut r.authorities) {
            match &mut a.check {
                Check::Cel(c) => out.extend(c.attestors.iter_mut().map(|x| &mut x.check)),
                other => out.push(other),
            }
        }
        out
    }

    /// Every key or CA reference (CEL attestors' too), for Secret lookup and inlining.
    pub fn key_refs(&self) -> impl Iterator<Item = &KeyRef> {
        self.checks().filter_map(|c| match c {
            Check::Key(k) => Some(&k.key),
            Check::Keyless(k) => k.ca.as_ref(),
            Check::Gpg(g) => Some(&g.key),
            Check::Notary(n) => Some(&n.certs),
            _ => None,
        })
    }

    pub fn key_refs_mut(&mut self) -> impl Iterator<Item = &mut KeyRef> {
        self.checks_mut().into_iter().filter_map(|c| match c {
            Check::Key(k) => Some(&mut k.key),
            Check::Keyless(k) => k.ca.as_mut(),
            Check::Gpg(g) => Some(&mut g.key),
            Check::Notary(n) => Some(&mut n.certs),
            _ => None,
        })
    }

    /// Every KMS URI these policies reference, canonical, for the resolver to ask for.
    pub fn kms_uris(policies: &[NormalPolicy]) -> std::collections::BTreeSet<String> {
        policies
            .iter()
            .flat_map(NormalPolicy::key_refs)
            .filter_map(|k| match k {
                KeyRef::Kms(k) => KmsUri::parse(&k.uri).ok().map(|u| u.to_string()),
                _ => None,
            })
            .collect()
    }

    /// Every TUF repository these policies name, for the store to fetch.
    pub fn tuf_repos(policies: &[NormalPolicy]) -> std::collections::BTreeSet<TufRepo> {
        policies.iter().flat_map(NormalPolicy::checks).filter_map(|c| c.tuf()).map(|t| t.repository.clone()).collect()
    }

    /// Put what `held` holds into each KMS reference and TUF repository, so the
    /// last-known-good file (and `policy check`) carry it; references with nothing held are
    /// left as they are.
    pub fn inline_held(&mut self, held: &Held) {
        for check in self.checks_mut() {
            if let Check::Key(k) = check {
                if let KeyRef::Kms(key) = &mut k.key {
                    if let Ok(resolved) = held.kms.lookup(&key.uri) {
                        key.resolved = Some(resolved);
                    }
                }
            }
            if let Some(t) = check.tuf_mut() {
                if let Ok(root) = held.tuf.lookup(&t.repository) {
                    t.resolved = Some(root);
                }
            }
        }
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
    type Error = NormalError;
    fn try_from(m: BTreeMap<String, String>) -> Result<Self, NormalError> {
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
            _ => Err(NormalError::PatternKey),
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
    /// A cosign signature by the key of this certificate (Kyverno `certificates`).
    Certificate(CertificateCheck),
    /// A GPG simple-signing signature (lookaside store) by one of these OpenPGP keys.
    Gpg(GpgCheck),
    /// A Notary Project (notation) signature, found among the image's OCI referrers, whose
    /// certificate chain leads to one of these certificates.
    Notary(NotaryCheck),
    /// Always satisfied (`pass`) or never (`fail`).
    Static(StaticAction),
    /// The node cannot check this; it is never satisfied and the text says why.
    Unsupported(String),
    /// CEL validations over named attestors (Kyverno ImageValidatingPolicy).
    Cel(Box<CelCheck>),
}

impl Check {
    /// Have a cosign check read its signatures from `repository` (cosign's
    /// `COSIGN_REPOSITORY`, a policy's signature source). Other checks cannot: they become
    /// ones that fail closed, saying so.
    pub fn from_repository(self, repository: &str) -> Check {
        let named = Some(repository.to_string());
        match self {
            Check::Key(k) => Check::Key(KeyCheck { repository: named, ..k }),
            Check::Keyless(k) => Check::Keyless(KeylessCheck { repository: named, ..k }),
            Check::Certificate(c) => Check::Certificate(CertificateCheck { repository: named, ..c }),
            Check::Unsupported(why) => Check::Unsupported(why),
            other => Check::Unsupported(format!(
                "signatures in another repository ({repository}) are read for cosign signers only, not for {}",
                other.kind_name()
            )),
        }
    }

    /// Have a cosign check read its `.sig`/`.att` tags under `prefix` (cosign's
    /// `--attachment-tag-prefix`). Other checks cannot: they fail closed, saying so.
    pub fn with_tag_prefix(self, prefix: &str) -> Check {
        let tag_prefix = Some(prefix.to_string());
        match self {
            Check::Key(k) => Check::Key(KeyCheck { tag_prefix, ..k }),
            Check::Keyless(k) => Check::Keyless(KeylessCheck { tag_prefix, ..k }),
            Check::Certificate(c) => Check::Certificate(CertificateCheck { tag_prefix, ..c }),
            Check::Unsupported(why) => Check::Unsupported(why),
            other => Check::Unsupported(format!(
                "signatures under a tag prefix ({prefix}) are read for cosign signers only, not for {}",
                other.kind_name()
            )),
        }
    }

    /// The tag prefix of a cosign check's signatures, when it names one.
    pub(crate) fn tag_prefix(&self) -> Option<&str> {
        match self {
            Check::Key(k) => k.tag_prefix.as_deref(),
            Check::Keyless(k) => k.tag_prefix.as_deref(),
            Check::Certificate(c) => c.tag_prefix.as_deref(),
            _ => None,
        }
    }

    /// Have a cosign check verify under this `trusted_root.json` instead of the node's.
    pub fn with_trusted_root(self, json: String) -> Check {
        let trusted_root = Some(json);
        match self {
            Check::Key(k) => Check::Key(KeyCheck { trusted_root, ..k }),
            Check::Keyless(k) => Check::Keyless(KeylessCheck { trusted_root, ..k }),
            Check::Certificate(c) => Check::Certificate(CertificateCheck { trusted_root, ..c }),
            other => other,
        }
    }

    /// Have a cosign check verify under the trust root `repo` serves instead of the node's.
    pub fn with_tuf(self, repo: TufRepo) -> Check {
        let tuf = Some(TufRef { repository: repo, resolved: None });
        match self {
            Check::Key(k) => Check::Key(KeyCheck { tuf, ..k }),
            Check::Keyless(k) => Check::Keyless(KeylessCheck { tuf, ..k }),
            Check::Certificate(c) => Check::Certificate(CertificateCheck { tuf, ..c }),
            other => other,
        }
    }

    /// The attestation conditions a check carries (Kyverno ClusterPolicy), as written.
    pub(crate) fn conditions(&self) -> &[serde_json::Value] {
        match self {
            Check::Key(k) => &k.conditions,
            Check::Keyless(k) => &k.conditions,
            Check::Certificate(c) => &c.conditions,
            Check::Notary(n) => &n.conditions,
            _ => &[],
        }
    }

    pub(crate) fn tuf(&self) -> Option<&TufRef> {
        match self {
            Check::Key(k) => k.tuf.as_ref(),
            Check::Keyless(k) => k.tuf.as_ref(),
            Check::Certificate(c) => c.tuf.as_ref(),
            _ => None,
        }
    }

    fn tuf_mut(&mut self) -> Option<&mut TufRef> {
        match self {
            Check::Key(k) => k.tuf.as_mut(),
            Check::Keyless(k) => k.tuf.as_mut(),
            Check::Certificate(c) => c.tuf.as_mut(),
            _ => None,
        }
    }

    fn kind_name(&self) -> &'static str {
        match self {
            Check::Key(_) => "keys",
            Check::Keyless(_) => "keyless",
            Check::Certificate(_) => "certificates",
            Check::Gpg(_) => "OpenPGP keys",
            Check::Notary(_) => "notary certificates",
            Check::Static(_) => "a static action",
            Check::Unsupported(_) => "an unsupported check",
            Check::Cel(_) => "CEL validations",
        }
    }
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
    /// Kyverno ClusterPolicy attestation `conditions` (as written) every attested statement
    /// of `attestations`' one type must satisfy ([`crate::conditions`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<serde_json::Value>,
    /// The digest signatures are made over (policy-controller `key.hashAlgorithm`); unset,
    /// the key type's (or the KMS key's) own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_algorithm: Option<HashAlgorithm>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsa_cert_chain: Option<String>,
    /// The repository signatures and attestations are kept in instead of the image's own
    /// (`registry/path`; cosign's `COSIGN_REPOSITORY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// The prefix of the `.sig`/`.att` tags (cosign's `--attachment-tag-prefix`; Kyverno
    /// `source.tagPrefix`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_prefix: Option<String>,
    /// A Sigstore `trusted_root.json` (the text) that replaces the node's trust root for this
    /// check: its CAs, logs and timestamp authorities (Kyverno `cosign.trustedRoot`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_root: Option<String>,
    /// A TUF repository whose `trusted_root.json` replaces the node's trust root for this
    /// check (Kyverno `cosign.tuf`); `trustedRoot` wins where both are given, as in Kyverno.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuf: Option<TufRef>,
}

impl KeyCheck {
    pub fn new(key: KeyRef, rekor: Option<String>) -> Self {
        Self {
            tag_prefix: None,
            key,
            rekor,
            rekor_keys: Vec::new(),
            attestations: Vec::new(),
            conditions: Vec::new(),
            hash_algorithm: None,
            tsa_cert_chain: None,
            repository: None,
            trusted_root: None,
            tuf: None,
        }
    }
}

// `tsaCertChain` (each check that takes it): the timestamp authorities (PEM, a self-signed
// root among them) whose RFC 3161 timestamps count, as cosign's `--timestamp-certificate-chain`.
// A timestamp a signature carries must then verify, a sigstore bundle must carry one, and a
// certificate must also have been valid at the time it proves.

/// cosign `verify --certificate [--certificate-chain]`, as Kyverno runs it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertificateCheck {
    /// The signing certificate (PEM): signatures must verify under its public key.
    pub certificate: String,
    /// Its issuers (PEM), the root last: the certificate must chain to that root, checked
    /// at the certificate's `notBefore` as cosign checks it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// The signature must also be in this transparency log (Rekor URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekor: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rekor_keys: Vec<String>,
    /// Skip the SCT check cosign makes for a certificate with a chain (none without one).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_sct: bool,
    /// CT log public keys (PEM) the SCT must verify under; empty means the node trust root's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ct_log_keys: Vec<String>,
    /// The certificate must also chain to the node trust root's CAs, at its `notBefore`:
    /// Kyverno's ImageValidatingPolicy hands cosign its Sigstore trusted root whenever the
    /// log is required, and cosign then checks the certificate against that, not the chain.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub trust_root_cas: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attestations: Vec<String>,
    /// Kyverno ClusterPolicy attestation `conditions` (as written) every attested statement
    /// of `attestations`' one type must satisfy ([`crate::conditions`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsa_cert_chain: Option<String>,
    /// The repository signatures and attestations are kept in instead of the image's own
    /// (`registry/path`; cosign's `COSIGN_REPOSITORY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// The prefix of the `.sig`/`.att` tags (cosign's `--attachment-tag-prefix`; Kyverno
    /// `source.tagPrefix`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_prefix: Option<String>,
    /// A Sigstore `trusted_root.json` (the text) that replaces the node's trust root for this
    /// check: its CAs, logs and timestamp authorities (Kyverno `cosign.trustedRoot`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_root: Option<String>,
    /// A TUF repository whose `trusted_root.json` replaces the node's trust root for this
    /// check (Kyverno `cosign.tuf`); `trustedRoot` wins where both are given, as in Kyverno.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuf: Option<TufRef>,
    /// The digest signatures are made over under the certificate's key (Kyverno's entry
    /// `signatureAlgorithm`, for a certificate without a chain); unset, SHA-256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_algorithm: Option<HashAlgorithm>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotaryCheck {
    /// X.509 certificates (PEM bundle): roots, intermediates or signing certificates. The
    /// signing certificate must be valid at verification time, unless `tsaCerts` are given.
    #[serde(flatten)]
    pub certs: KeyRef,
    /// A `tsa` trust store (PEM; each certificate an anchor): each signature must then carry
    /// a timestamp countersignature it anchors, and the signing chain is held to the time
    /// that proves instead of now (notation's `verifyTimestamp: always`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsa_certs: Option<String>,
    /// OCI 1.1 referrer artifact types (Kyverno ClusterPolicy `type: Notary` attestations):
    /// the first artifact of each type attached to the image must be signed by these
    /// certificates' holder, with a JSON object as its one layer. The image's own signature
    /// is then not asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attestations: Vec<String>,
    /// Kyverno ClusterPolicy attestation `conditions` (as written) every attested statement
    /// of `attestations`' one type must satisfy ([`crate::conditions`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<serde_json::Value>,
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
    /// A sigstore bundle must carry an RFC 3161 timestamp from a timestamp authority of the
    /// node trust root, and the certificate is checked at its time (Kyverno's
    /// ImageValidatingPolicy, keyless with the log ignored and no TSA chain of its own).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub trust_root_timestamps: bool,
    /// CT log public keys (PEM) the SCT must verify under; empty means the node trust root's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ct_log_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attestations: Vec<String>,
    /// Kyverno ClusterPolicy attestation `conditions` (as written) every attested statement
    /// of `attestations`' one type must satisfy ([`crate::conditions`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsa_cert_chain: Option<String>,
    /// The repository signatures and attestations are kept in instead of the image's own
    /// (`registry/path`; cosign's `COSIGN_REPOSITORY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// The prefix of the `.sig`/`.att` tags (cosign's `--attachment-tag-prefix`; Kyverno
    /// `source.tagPrefix`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_prefix: Option<String>,
    /// A Sigstore `trusted_root.json` (the text) that replaces the node's trust root for this
    /// check: its CAs, logs and timestamp authorities (Kyverno `cosign.trustedRoot`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_root: Option<String>,
    /// A TUF repository whose `trusted_root.json` replaces the node's trust root for this
    /// check (Kyverno `cosign.tuf`); `trustedRoot` wins where both are given, as in Kyverno.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuf: Option<TufRef>,
}

/// A TUF repository named by a check, and the trust root last fetched from it (carried in
/// the last-known-good file and `policy check` output, so a node without the mirror
/// enforces what it last verified).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TufRef {
    pub repository: TufRepo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<HeldRoot>,
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
    /// Fulcio extensions the certificate must carry, by dotted OID, each a regular
    /// expression its value must match (Kyverno `additionalExtensions`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub extensions: std::collections::BTreeMap<String, String>,
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
    pub fn parse(uri: &str, field: &str) -> Result<Self, NormalError> {
        KmsUri::parse(uri).map_err(|source| NormalError::KmsUri { field: field.to_string(), source })?;
        Ok(Self { uri: uri.to_string(), resolved: None })
    }
}

/// CEL validations (Kyverno ImageValidatingPolicy) in the normalised form: named attestors
/// and attestations, and the policy's match conditions, variables and validations as text.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CelCheck {
    /// Named attestors, each as the check the node performs for it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attestors: Vec<NormalAuthority>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attestations: Vec<CelAttestation>,
    /// All must be true for the validations to apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_conditions: Vec<NamedExpression>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<NamedExpression>,
    pub validations: Vec<CelValidation>,
    /// Kyverno `validationConfigurations.required`: some signature or attestation check
    /// must have passed for the image.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_verified: bool,
    /// `verifyDigest` without `mutateDigest`: the pod must name the image by digest.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_digest: bool,
    /// The policy's object is the pod (Kyverno `matchConstraints.resourceRules` name pods,
    /// or none are given): `object.metadata.labels` and `.annotations` are the pod's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub object_is_pod: bool,
    /// Kyverno `matchConstraints.objectSelector`, over the pod's labels: a pod it does not
    /// select is left alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_selector: Option<super::labels::LabelSelector>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CelAttestation {
    pub name: String,
    /// An in-toto statement of this predicate type, in a DSSE envelope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intoto: Option<String>,
    /// An OCI 1.1 referrer of this artifact type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedExpression {
    pub name: String,
    pub expression: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CelValidation {
    pub expression: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_expression: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::normal_policy;

    #[test]
    fn yaml_form_round_trips() {
        let secret = KeyRef::Secret { namespace: "n".into(), name: "s".into(), key: Some("cosign.pub".into()) };
        let p = normal_policy(
            "p",
            "reg.io/**",
            vec![
                NormalAuthority::new("k", Check::Key(KeyCheck::new(secret, None))),
                NormalAuthority::new("x", Check::Static(StaticAction::Pass)),
                NormalAuthority::new("y", Check::Unsupported("why".into())),
            ],
        );
        let text = serde_yaml::to_string(&p).unwrap();
        assert_eq!(serde_yaml::from_str::<NormalPolicy>(&text).unwrap(), p, "{text}");
    }
}
