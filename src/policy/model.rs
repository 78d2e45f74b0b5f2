//! Compiled policy and its evaluation rules.
//!
//! A [`PolicySet`] is built once and never mutated: a reload builds a new one and swaps the
//! `Arc`, so a request always sees one complete snapshot. Rules follow sigstore
//! policy-controller: every policy whose globs match the image must pass (AND), and a policy
//! passes when any one of its authorities is satisfied (OR). A policy in `warn` mode that
//! fails is reported but does not deny.
//!
//! The other policy languages fit the same shape with two generalisations: a policy holds a
//! list of [`Requirement`]s that must all hold, each satisfied by `count` of its authorities
//! (Kyverno's attestor sets; policy-controller is one requirement with count 1), and an
//! optional [`Exclusive`] group in which only the most specific matching policy applies
//! (Portieris).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::cel::{CelError, Expression, ImageExpression};
use super::labels::{LabelSelector, Labels, NamespaceLabels};
use super::matching::ImageGlob;
pub use crate::verify::signer::{Attached, Keyless, SignedBy, Signer, Tlog, TrustedKey};

/// What a failing policy does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Enforce,
    Warn,
}

/// What happens to an image that no policy matches.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    Default,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum NoMatchAction {
    // Declared strictest first: `min()` over several settings picks the strictest.
    #[default]
    Deny,
    Warn,
    Allow,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Enforce => "enforce",
            Mode::Warn => "warn",
        })
    }
}

impl fmt::Display for NoMatchAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NoMatchAction::Deny => "deny",
            NoMatchAction::Allow => "allow",
            NoMatchAction::Warn => "warn",
        })
    }
}

#[derive(Clone, Debug)]
pub enum AuthorityKind {
    /// A signature (or attestations) by a signer must be found for the image's digest.
    Signed(Box<SignedBy>),
    /// `static: {action: pass}`: always satisfied.
    StaticPass,
    /// `static: {action: fail}`: never satisfied.
    StaticFail,
    /// A requirement the node cannot check (KMS, GPG, Notary, ...). It is never satisfied,
    /// so the policy fails closed, and the reason says what is missing.
    Unsupported(String),
    /// CEL validations (Kyverno ImageValidatingPolicy) over named attestors.
    Cel(std::sync::Arc<CompiledCel>),
}

impl AuthorityKind {
    /// A cosign signature by `key`, no transparency-log entry required.
    pub fn key(key: TrustedKey) -> Self {
        AuthorityKind::Signed(Box::new(SignedBy::new(Signer::Key(key), Tlog::Ignore)))
    }

    /// A Notary Project (notation) signer: its signatures and attestations are OCI referrers.
    pub fn is_notary(&self) -> bool {
        matches!(self, AuthorityKind::Signed(s) if matches!(s.signer, Signer::Notary(_)))
    }
}

/// At least `count` of `authorities` must be satisfied.
#[derive(Clone, Debug)]
pub struct Requirement {
    pub count: usize,
    pub authorities: Vec<Authority>,
}

/// Which namespaces a policy covers. An unknown namespace (no pod sandbox found, a CRI pod
/// without one, a CLI check without `--namespace`) may only narrow what is allowed:
/// cluster-wide policies apply to it, policies confined to named namespaces do not. A
/// tenant's namespaced policy must never stand in for the cluster's (a Portieris
/// ImagePolicy `*` → `{}` outranks the ClusterImagePolicy that rejects).
///
/// `selector` (a namespaceSelector) narrows by the namespace's labels only where they are
/// known; unknown labels select, so the policy applies ([`super::labels`]). `any` holds
/// alternatives (Kyverno `match.any` entries, each with its own names and selector): when
/// set, one of them must cover the namespace too.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Namespaces {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub any: Vec<NamespaceTerm>,
    /// Terms that must each cover the namespace (Kyverno `match.all`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub all: Vec<NamespaceTerm>,
}

/// One alternative of [`Namespaces::any`], or one condition of [`Namespaces::all`]: these
/// names (all when empty), this namespace selector and this selector of the pod's own labels.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NamespaceTerm {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Over the pod's labels (Kyverno `resources.selector` of an entry for Pods only), where
    /// the runtime told them; unknown labels select.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<LabelSelector>,
}

impl NamespaceTerm {
    fn covers(&self, at: &PodPlace<'_>) -> bool {
        let by_name = match at.namespace {
            None => self.include.is_empty(),
            Some(ns) => self.include.is_empty() || self.include.iter().any(|n| n == ns),
        };
        by_name
            && self.selector.as_ref().is_none_or(|s| at.namespace_labels.is_none_or(|l| s.matches(l)))
            && self.pods.as_ref().is_none_or(|s| at.pod_labels.is_none_or(|l| s.matches(l)))
    }

    /// Does it narrow at all? One that does not covers every pod.
    pub fn narrows(&self) -> bool {
        !self.include.is_empty() || self.selector.is_some() || self.pods.is_some()
    }
}

/// Where a pod is, as far as matching reads it: its namespace, the namespace's labels and
/// its own labels, each when known.
#[derive(Clone, Copy, Debug, Default)]
pub struct PodPlace<'a> {
    pub namespace: Option<&'a str>,
    pub namespace_labels: Option<&'a Labels>,
    pub pod_labels: Option<&'a Labels>,
}

impl Namespaces {
    pub fn is_all(&self) -> bool {
        self.include.is_empty()
            && self.exclude.is_empty()
            && self.selector.is_none()
            && self.any.is_empty()
            && self.all.is_empty()
    }

    /// Whether any part selects by the namespace's labels.
    pub fn has_selector(&self) -> bool {
        self.selector.is_some() || self.any.iter().chain(&self.all).any(|t| t.selector.is_some())
    }

    /// Whether any part selects by the pod's own labels.
    pub fn has_pod_selector(&self) -> bool {
        self.any.iter().chain(&self.all).any(|t| t.pods.is_some())
    }

    /// Covered with the namespace's labels unknown.
    pub fn covers(&self, namespace: Option<&str>) -> bool {
        self.covers_with(namespace, None)
    }

    /// Covered, with the namespace's labels when the cluster has told them.
    pub fn covers_with(&self, namespace: Option<&str>, labels: Option<&Labels>) -> bool {
        self.covers_at(&PodPlace { namespace, namespace_labels: labels, pod_labels: None })
    }

    /// Covered, with what is known of the pod's place.
    pub fn covers_at(&self, at: &PodPlace<'_>) -> bool {
        let (namespace, labels) = (at.namespace, at.namespace_labels);
        let by_name = match namespace {
            None => self.include.is_empty(),
            Some(ns) => {
                (self.include.is_empty() || self.include.iter().any(|n| n == ns))
                    && !self.exclude.iter().any(|n| n == ns)
            }
        };
        by_name
            && self.selector.as_ref().is_none_or(|s| labels.is_none_or(|l| s.matches(l)))
            && (self.any.is_empty() || self.any.iter().any(|t| t.covers(at)))
            && self.all.iter().all(|t| t.covers(at))
    }
}

/// Among matching policies of one group only those of the highest rank apply.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Exclusive {
    pub group: String,
    pub rank: u64,
}

#[derive(Clone, Debug)]
pub struct Authority {
    pub name: String,
    pub kind: AuthorityKind,
}

#[derive(Clone, Debug)]
pub struct Policy {
    pub name: String,
    pub images: Vec<ImageGlob>,
    /// CEL image selectors (Kyverno `matchImageReferences[].expression`), beside `images`.
    pub image_expressions: Vec<ImageExpression>,
    pub exclude_images: Vec<ImageGlob>,
    pub namespaces: Namespaces,
    pub requirements: Vec<Requirement>,
    pub mode: Mode,
    pub exclusive: Option<Exclusive>,
    /// The no-match action this policy asks the node to use (signet CRD only).
    pub no_match_action: Option<NoMatchAction>,
}

impl Policy {
    /// What identifies this policy's meaning, for cache keys: a hash of everything a
    /// decision depends on (name, globs, scope, authorities, keys), so two policies that
    /// share a display name never share a cached verdict.
    pub fn identity(&self) -> String {
        let mut h = Sha256::new();
        h.update(format!("{self:?}").as_bytes());
        hex::encode(&h.finalize()[..16])
    }

    /// The same images and scope, enforced by one authority that never passes, saying why.
    pub fn fail_closed(self, reason: String) -> Self {
        Self {
            requirements: vec![Requirement {
                count: 1,
                authorities: vec![Authority { name: "refused".into(), kind: AuthorityKind::Unsupported(reason) }],
            }],
            no_match_action: None,
            ..self
        }
    }

    /// The common case: any one of `authorities` satisfies the policy, for every namespace.
    pub fn any_of(name: &str, images: Vec<ImageGlob>, authorities: Vec<Authority>, mode: Mode) -> Self {
        Self {
            name: name.to_string(),
            images,
            image_expressions: Vec::new(),
            exclude_images: Vec::new(),
            namespaces: Namespaces::default(),
            requirements: vec![Requirement { count: 1, authorities }],
            mode,
            exclusive: None,
            no_match_action: None,
        }
    }

    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    pub fn matches(&self, full: &str, repository: &str, namespace: Option<&str>) -> bool {
        self.matches_with(full, repository, namespace, None)
    }

    /// [`Policy::matches`] with the namespace's labels, when known.
    pub fn matches_with(&self, full: &str, repository: &str, namespace: Option<&str>, labels: Option<&Labels>) -> bool {
        self.matches_at(full, repository, &PodPlace { namespace, namespace_labels: labels, pod_labels: None })
    }

    /// [`Policy::matches`] with what is known of the pod's place.
    pub fn matches_at(&self, full: &str, repository: &str, at: &PodPlace<'_>) -> bool {
        self.namespaces.covers_at(at)
            && (self.images.iter().any(|g| g.matches(full, repository))
                || self.image_expressions.iter().any(|e| e.selects(full, repository)))
            && !self.exclude_images.iter().any(|g| g.excludes(full, repository))
    }

    /// This policy's rank in its exclusive group for one spelling of the image: the
    /// group's base rank plus the best pattern's match quality; `None` if it does not apply.
    fn rank_for(&self, full: &str, repository: &str, at: &PodPlace<'_>, spelling: &str) -> Option<u64> {
        let exclusive = self.exclusive.as_ref()?;
        if !self.namespaces.covers_at(at) || self.exclude_images.iter().any(|g| g.excludes(full, repository)) {
            return None;
        }
        let quality = self.images.iter().filter_map(|g| g.quality(full, repository, spelling)).max()?;
        Some(exclusive.rank + quality)
    }

    /// Does a verdict under this policy depend on the request (the pod's namespace, its
    /// labels, the pod's own metadata) beyond matching?
    pub fn depends_on_request(&self) -> bool {
        self.authorities().any(|a| matches!(&a.kind, AuthorityKind::Cel(c) if c.reads_request))
    }

    pub fn authorities(&self) -> impl Iterator<Item = &Authority> {
        self.requirements.iter().flat_map(|r| r.authorities.iter())
    }
}

/// One complete, immutable policy snapshot.
#[derive(Debug)]
pub struct PolicySet {
    pub policies: Vec<Policy>,
    /// [`Policy::identity`] of each policy, in the same order, computed once per snapshot.
    identities: Vec<String>,
    pub no_match: NoMatchAction,
    /// Identifies this snapshot's content; part of every cache key, so a policy change
    /// never serves a decision made under the old policy.
    pub hash: String,
    /// Set when this snapshot stands in for a policy that failed to load at boot: every
    /// image is denied with this reason until a valid policy arrives.
    pub load_error: Option<String>,
    /// The cluster's namespace labels as of this snapshot, for namespace selectors and CEL's
    /// `namespaceObject`. Not part of `hash`: matching reads them per request, and the
    /// cache key carries the labels where a verdict reads them.
    pub namespace_labels: Arc<NamespaceLabels>,
}

impl PolicySet {
    /// Build a snapshot; `canonical` is the normalised source text the hash is taken over.
    pub fn new(policies: Vec<Policy>, no_match: NoMatchAction, canonical: &[u8]) -> Arc<Self> {
        let mut h = Sha256::new();
        h.update(canonical);
        h.update(no_match.to_string().as_bytes());
        let identities = policies.iter().map(Policy::identity).collect();
        Arc::new(Self {
            policies,
            identities,
            no_match,
            hash: hex::encode(&h.finalize()[..16]),
            load_error: None,
            namespace_labels: Arc::default(),
        })
    }

    /// Build a snapshot from compiled policies. The no-match action is the strictest any
    /// policy asks for, or the node's own when none does.
    pub fn assemble(policies: Vec<Policy>, node_no_match: NoMatchAction) -> Arc<Self> {
        let no_match = policies.iter().filter_map(|p| p.no_match_action).min().unwrap_or(node_no_match);
        Self::assemble_with(policies, no_match)
    }

    /// Build a snapshot whose no-match action is `no_match`, whatever the policies ask for:
    /// while the cluster's policies are not known yet, unmatched images are denied.
    pub fn assemble_with(policies: Vec<Policy>, no_match: NoMatchAction) -> Arc<Self> {
        // The Debug form covers names, globs, scopes, modes and key fingerprints: everything
        // a decision depends on, so the hash changes exactly when a decision could.
        let canonical = format!("{policies:?}");
        Self::new(policies, no_match, canonical.as_bytes())
    }

    /// The fail-closed snapshot used when no valid policy has ever been loaded.
    pub fn unavailable(reason: String) -> Arc<Self> {
        Arc::new(Self {
            policies: Vec::new(),
            identities: Vec::new(),
            no_match: NoMatchAction::Deny,
            hash: "unavailable".to_string(),
            load_error: Some(reason),
            namespace_labels: Arc::default(),
        })
    }

    /// This snapshot's policies with the cluster's namespace labels as of now.
    pub fn with_namespace_labels(self: Arc<Self>, labels: Arc<NamespaceLabels>) -> Arc<Self> {
        match Arc::try_unwrap(self) {
            Ok(mut set) => {
                set.namespace_labels = labels;
                Arc::new(set)
            }
            Err(shared) => Arc::new(Self {
                policies: shared.policies.clone(),
                identities: shared.identities.clone(),
                no_match: shared.no_match,
                hash: shared.hash.clone(),
                load_error: shared.load_error.clone(),
                namespace_labels: labels,
            }),
        }
    }

    /// The policies that cover an image in a namespace, in load order. In an exclusive
    /// group only the highest-ranked matches survive.
    pub fn matching<'a>(&'a self, full: &str, repository: &str, namespace: Option<&str>) -> Vec<&'a Policy> {
        self.matching_with_identity(full, repository, namespace).into_iter().map(|(p, _)| p).collect()
    }

    /// [`PolicySet::matching`], each with its [`Policy::identity`].
    ///
    /// In an exclusive group (Portieris) one policy applies to the name the pod wrote, and
    /// the node does not know that name: the best match is found for every spelling of the
    /// image, and all of those apply. Taking one spelling's winner instead would let a pod
    /// pick the spelling whose policy is the most permissive.
    pub fn matching_with_identity<'a>(
        &'a self,
        full: &str,
        repository: &str,
        namespace: Option<&str>,
    ) -> Vec<(&'a Policy, &'a str)> {
        self.matching_for_pod(full, repository, namespace, None)
    }

    /// [`PolicySet::matching_with_identity`] for a pod whose own labels are known
    /// (`pod_labels`), which Kyverno's Pod-only `resources.selector` reads.
    pub fn matching_for_pod<'a>(
        &'a self,
        full: &str,
        repository: &str,
        namespace: Option<&str>,
        pod_labels: Option<&Labels>,
    ) -> Vec<(&'a Policy, &'a str)> {
        let labels = self.namespace_labels.get(namespace).map(|l| l.as_ref());
        let at = PodPlace { namespace, namespace_labels: labels, pod_labels };
        let has_exclusive = self.policies.iter().any(|p| p.exclusive.is_some());
        let spellings = if has_exclusive { super::spelling::pod_spellings(full) } else { Vec::new() };
        let mut keep = vec![false; self.policies.len()];
        for (i, p) in self.policies.iter().enumerate() {
            keep[i] = p.exclusive.is_none() && p.matches_at(full, repository, &at);
        }
        for spelling in &spellings {
            let ranks: Vec<Option<u64>> =
                self.policies.iter().map(|p| p.rank_for(full, repository, &at, spelling)).collect();
            let mut top: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
            for (p, rank) in self.policies.iter().zip(&ranks) {
                if let (Some(e), Some(r)) = (&p.exclusive, rank) {
                    let t = top.entry(e.group.as_str()).or_insert(*r);
                    *t = (*t).max(*r);
                }
            }
            for (i, p) in self.policies.iter().enumerate() {
                if let (Some(e), Some(r)) = (&p.exclusive, ranks[i]) {
                    keep[i] |= top.get(e.group.as_str()) == Some(&r);
                }
            }
        }
        self.policies
            .iter()
            .zip(&self.identities)
            .zip(keep)
            .filter(|(_, k)| *k)
            .map(|((p, id), _)| (p, id.as_str()))
            .collect()
    }
}

/// A validation the node evaluates, or the reason it fails closed.
#[derive(Clone, Debug)]
pub struct Validation {
    pub check: Result<Expression, CelError>,
    pub message: Option<String>,
    pub message_expression: Option<Expression>,
}

#[derive(Clone, Debug)]
pub enum AttestationKind {
    InToto(String),
    Referrer(String),
}

/// What the node evaluates for one [`super::normal::CelCheck`].
#[derive(Clone, Debug)]
pub struct CompiledCel {
    pub attestors: BTreeMap<String, AuthorityKind>,
    pub attestations: BTreeMap<String, AttestationKind>,
    /// `Err`: the condition cannot be evaluated here, so the validations apply (a match
    /// condition only narrows what is checked). One that compiled but fails when evaluated
    /// denies, as Kyverno's default `failurePolicy: Fail` does.
    pub match_conditions: Vec<Result<Expression, CelError>>,
    pub variables: Vec<(String, Result<Expression, CelError>)>,
    pub validations: Vec<Validation>,
    pub require_verified: bool,
    pub require_digest: bool,
    /// Over the pod's labels: a pod it does not select is left alone (where the labels are
    /// unknown it selects).
    pub object_selector: Option<LabelSelector>,
    /// Some expression reads the request (namespace, pod metadata), or an object selector
    /// reads the pod's labels: verdicts differ by pod.
    pub reads_request: bool,
}

impl CompiledCel {
    /// The parts that fail closed, for `policy check` warnings.
    pub fn fails_closed(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .validations
            .iter()
            .filter_map(|v| v.check.as_ref().err())
            .map(|e| format!("fails closed: {e}"))
            .collect();
        out.extend(
            self.match_conditions
                .iter()
                .filter_map(|m| m.as_ref().err())
                .map(|e| format!("not evaluated, the validations always apply: {e}")),
        );
        out.extend(
            self.variables
                .iter()
                .filter_map(|(_, v)| v.as_ref().err())
                .map(|e| format!("not evaluated, expressions using it fail: {e}")),
        );
        out.extend(self.attestors.iter().filter_map(|(n, a)| match a {
            AuthorityKind::Unsupported(why) => Some(format!("attestor {n} never verifies: {why}")),
            _ => None,
        }));
        out
    }

    /// Does any expression verify image signatures, or attestations?
    pub fn uses(&self, function: &str) -> bool {
        let mut exprs = self.validations.iter().filter_map(|v| v.check.as_ref().ok());
        let mut vars = self.variables.iter().filter_map(|(_, v)| v.as_ref().ok());
        exprs.any(|e| e.program.references().has_function(function))
            || vars.any(|e| e.program.references().has_function(function))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str, glob: &str, exclusive: Option<(&str, u64)>) -> Policy {
        let mut p = Policy::any_of(
            name,
            vec![ImageGlob::wildcard(glob).unwrap()],
            vec![Authority { name: "a".into(), kind: AuthorityKind::StaticPass }],
            Mode::Enforce,
        );
        p.exclusive = exclusive.map(|(g, rank)| Exclusive { group: g.into(), rank });
        p
    }

    fn names(set: &PolicySet, full: &str, repo: &str, ns: Option<&str>) -> Vec<String> {
        set.matching(full, repo, ns).iter().map(|p| p.name.clone()).collect()
    }

    #[test]
    fn exclusive_group_keeps_only_the_most_specific() {
        let set = PolicySet::new(
            vec![
                policy("broad", "reg.io/*", Some(("g", 7))),
                policy("narrow", "reg.io/team/*", Some(("g", 12))),
                policy("other", "reg.io/*", None),
            ],
            NoMatchAction::Deny,
            b"x",
        );
        assert_eq!(names(&set, "reg.io/team/app:1", "reg.io/team/app", None), ["narrow", "other"]);
        assert_eq!(names(&set, "reg.io/x/app:1", "reg.io/x/app", None), ["broad", "other"]);
    }

    #[test]
    fn namespaces_narrow_only_when_known() {
        let mut p = policy("p", "reg.io/*", None);
        p.namespaces = Namespaces {
            include: vec![],
            exclude: vec!["kube-system".into()],
            selector: None,
            any: Vec::new(),
            all: Vec::new(),
        };
        assert!(!p.matches("reg.io/a:1", "reg.io/a", Some("kube-system")));
        assert!(p.matches("reg.io/a:1", "reg.io/a", Some("default")));
        assert!(p.matches("reg.io/a:1", "reg.io/a", None));
        p.namespaces = Namespaces {
            include: vec!["prod".into()],
            exclude: vec![],
            selector: None,
            any: Vec::new(),
            all: Vec::new(),
        };
        assert!(!p.matches("reg.io/a:1", "reg.io/a", Some("dev")));
        assert!(p.matches("reg.io/a:1", "reg.io/a", Some("prod")));
        assert!(
            !p.matches("reg.io/a:1", "reg.io/a", None),
            "a namespaced policy does not apply to an unknown namespace"
        );
    }

    /// Regression (#13.3): with the namespace unknown, a tenant's namespaced allow-all
    /// (ranked above the cluster policy in the exclusive group) must not win.
    #[test]
    fn an_unknown_namespace_gets_the_cluster_policy_not_a_tenants() {
        let mut cluster = policy("cluster-reject", "*", Some(("portieris", 1)));
        cluster.requirements[0].authorities[0].kind = AuthorityKind::StaticFail;
        let mut tenant = policy("tenant-allow", "*", Some(("portieris", 1_000_000)));
        tenant.namespaces = Namespaces {
            include: vec!["tenant".into()],
            exclude: vec![],
            selector: None,
            any: Vec::new(),
            all: Vec::new(),
        };
        let set = PolicySet::new(vec![cluster, tenant], NoMatchAction::Deny, b"x");
        assert_eq!(names(&set, "reg.io/a:1", "reg.io/a", None), ["cluster-reject"]);
        assert_eq!(names(&set, "reg.io/a:1", "reg.io/a", Some("tenant")), ["tenant-allow"]);
        assert_eq!(names(&set, "reg.io/a:1", "reg.io/a", Some("other")), ["cluster-reject"]);
    }

    /// Regression (#13.4): policies that share a display name but differ in meaning have
    /// different identities (the cache keys on these).
    #[test]
    fn identities_tell_same_named_policies_apart() {
        let a = policy("same", "reg.io/*", None);
        let mut b = policy("same", "reg.io/*", None);
        b.namespaces =
            Namespaces { include: vec!["x".into()], exclude: vec![], selector: None, any: Vec::new(), all: Vec::new() };
        assert_ne!(a.identity(), b.identity());
        assert_eq!(a.identity(), policy("same", "reg.io/*", None).identity());
    }

    #[test]
    fn excluded_images_do_not_match() {
        let mut p = policy("p", "reg.io/*", None);
        p.exclude_images = vec![ImageGlob::wildcard("reg.io/public/*").unwrap()];
        assert!(!p.matches("reg.io/public/a:1", "reg.io/public/a", None));
        assert!(p.matches("reg.io/private/a:1", "reg.io/private/a", None));
    }
}
