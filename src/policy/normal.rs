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
use super::model::{Authority, AuthorityKind, Exclusive, Mode, Namespaces, NoMatchAction, Policy, Requirement};
use super::TrustedKey;

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
}

/// Written as a one-key mapping (`{glob: ...}` or `{wildcard: ...}`), like the sources.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "BTreeMap<String, String>", into = "BTreeMap<String, String>")]
pub enum Pattern {
    /// policy-controller glob: `*` within one segment, `**` across.
    Glob(String),
    /// Plain wildcard: `*` any characters including `/`, `?` one character.
    Wildcard(String),
}

impl NormalPolicy {
    /// Every key check of every requirement.
    pub fn key_checks(&self) -> impl Iterator<Item = &KeyCheck> {
        self.requirements.iter().flat_map(|r| &r.authorities).filter_map(|a| match &a.check {
            Check::Key(k) => Some(k),
            _ => None,
        })
    }

    pub fn key_checks_mut(&mut self) -> impl Iterator<Item = &mut KeyCheck> {
        self.requirements.iter_mut().flat_map(|r| &mut r.authorities).filter_map(|a| match &mut a.check {
            Check::Key(k) => Some(k),
            _ => None,
        })
    }
}

impl From<Pattern> for BTreeMap<String, String> {
    fn from(p: Pattern) -> Self {
        match p {
            Pattern::Glob(g) => BTreeMap::from([("glob".to_string(), g)]),
            Pattern::Wildcard(w) => BTreeMap::from([("wildcard".to_string(), w)]),
        }
    }
}

impl TryFrom<BTreeMap<String, String>> for Pattern {
    type Error = String;
    fn try_from(mut m: BTreeMap<String, String>) -> Result<Self, String> {
        match (m.remove("glob"), m.remove("wildcard"), m.is_empty()) {
            (Some(g), None, true) => Ok(Pattern::Glob(g)),
            (None, Some(w), true) => Ok(Pattern::Wildcard(w)),
            _ => Err("an image pattern is exactly one of glob or wildcard".into()),
        }
    }
}

impl Pattern {
    pub fn compile(&self) -> Result<ImageGlob, String> {
        match self {
            Pattern::Glob(g) => ImageGlob::new(g),
            Pattern::Wildcard(w) => ImageGlob::wildcard(w),
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
    /// Always satisfied (`pass`) or never (`fail`).
    Static(StaticAction),
    /// The node cannot check this; it is never satisfied and the text says why.
    Unsupported(String),
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
}

/// Where keys that are not inline come from.
pub trait KeySource {
    /// The PEM text of a Secret's entry, `Ok(None)` if the Secret or entry does not exist.
    fn secret(&self, namespace: &str, name: &str, key: Option<&str>) -> Result<Option<String>, String>;
    /// Directory relative key paths are resolved against.
    fn base_dir(&self) -> &Path;
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
            match pat.compile() {
                Ok(g) => out.push(g),
                Err(e) => errors.push(format!("{field}[{i}]: {e}")),
            }
        }
        out
    };
    let images = globs(&p.images, "images", &mut errors);
    let exclude_images = globs(&p.exclude_images, "excludeImages", &mut errors);
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
    let check = match &a.check {
        Check::Static(StaticAction::Pass) => return Ok(AuthorityKind::StaticPass),
        Check::Static(StaticAction::Fail) => return Ok(AuthorityKind::StaticFail),
        Check::Unsupported(reason) => return Ok(AuthorityKind::Unsupported(reason.clone())),
        Check::Key(k) => k,
    };
    let pem = match &check.key {
        KeyRef::Pem(pem) => pem.clone(),
        KeyRef::Path(path) => {
            let full = if path.is_absolute() { path.clone() } else { keys.base_dir().join(path) };
            std::fs::read_to_string(&full).map_err(|e| format!("key file {}: {e}", full.display()))?
        }
        KeyRef::Secret { namespace, name, key } => match keys.secret(namespace, name, key.as_deref()) {
            Ok(Some(pem)) => pem,
            Ok(None) => {
                let entry = key.as_deref().map(|k| format!(" entry {k:?}")).unwrap_or_default();
                return Ok(AuthorityKind::Unsupported(format!("Secret {namespace}/{name}{entry} was not found")));
            }
            Err(e) => return Ok(AuthorityKind::Unsupported(e)),
        },
    };
    let key = TrustedKey::from_pem(pem.as_bytes())?;
    if let Some(rekor) = &check.rekor {
        // Accepting the key alone would be weaker than what the policy asks for.
        return Ok(AuthorityKind::Unsupported(format!(
            "key {} must also have its signature in transparency log {rekor}, and the node does not verify \
             Rekor entries yet (set the policy's tlog to ignored to check the key alone)",
            key.fingerprint
        )));
    }
    Ok(AuthorityKind::Key(key))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub const TEST_PUB: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE8nhEhaiVh+bIH3LE3x1ae2+Rsdom
n6jj4T408Ki/F10p17R/R2YobGd7XDaa6PR2vfSDiAfBvxSCmvFGmEf35w==
-----END PUBLIC KEY-----
";

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
        }
    }

    fn key(k: KeyRef, rekor: Option<&str>) -> NormalAuthority {
        NormalAuthority::new("k", Check::Key(KeyCheck { key: k, rekor: rekor.map(String::from) }))
    }

    #[test]
    fn inline_key_compiles_to_a_key_authority() {
        let c = compile(&policy(vec![key(KeyRef::Pem(TEST_PUB.into()), None)]), &FilesOnly(Path::new("/"))).unwrap();
        assert!(matches!(c.policy.requirements[0].authorities[0].kind, AuthorityKind::Key(_)));
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn required_tlog_fails_closed_rather_than_checking_the_key_alone() {
        let c = compile(
            &policy(vec![key(KeyRef::Pem(TEST_PUB.into()), Some("https://rekor.sigstore.dev"))]),
            &FilesOnly(Path::new("/")),
        )
        .unwrap();
        assert!(matches!(c.policy.requirements[0].authorities[0].kind, AuthorityKind::Unsupported(_)));
        assert!(c.warnings[0].contains("rekor.sigstore.dev"), "{:?}", c.warnings);
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
}
