//! The decision pipeline: image identity → policy → signatures → cached verdict, in budget.
//!
//! [`Enforcer::decide`] always returns within the caller's budget with a [`Decision`]. When
//! the work is not done in time the decision is a denial that says so; the work continues
//! and its verdict is cached, so the runtime's retry of the same container is answered from
//! the cache. No path returns "allowed" without a completed check (or an explicit policy
//! that allows).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::reference::{Reference, ReferenceError};
use tokio::sync::watch;

use crate::cache::{Cache, Lookup};
use crate::decision::{Decision, ImageClaim, Outcome, PodMetadata};
use crate::evaluate;
use crate::imagestore::{ImageStore, StoreError};
use crate::policy::{Mode, NoMatchAction, PolicySet};
use crate::registry::{Artifact, SignatureSource};
use crate::rootfs::{Chains, RootfsError};
use crate::verify::{self, trust::TrustRoot};

/// Why an image could not be tied to the digest that will run: every such failure denies,
/// and its message is the decision's reason.
#[derive(Debug, thiserror::Error)]
pub enum IdentifyError {
    #[error("the runtime gave no image name for this container")]
    NoName,
    #[error("image ID sha256:{id} has no repository name in containerd's store")]
    UnnamedImageId { id: String },
    #[error("image volume at {dest}: the runtime's mount does not name the image it holds")]
    VolumeWithoutDigest { dest: String },
    #[error("image volume at {dest}: {digest} has no repository name in containerd's store")]
    UnnamedVolume { dest: String, digest: String },
    #[error("{what} is known to containerd's store by {count} names, over the {limit} the node checks")]
    TooManyNames { what: String, count: usize, limit: usize },
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("cannot resolve {name} to the digest containerd runs: {source}")]
    Store { name: String, source: StoreError },
    #[error("resolving {name} through containerd's image store took longer than {ms} ms")]
    Timeout { name: String, ms: u128 },
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
}

/// Verdict of the expensive part (signatures), cached per everything the check reads.
#[derive(Debug, Clone)]
struct Verdict {
    allowed: bool,
    warned: bool,
    reason: String,
    /// A registry failure: cached briefly so a retry tries again soon.
    transient: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct CacheKey {
    /// The whole reference, tag included: GPG `matchExact` / `matchRepoDigestOrExact`
    /// identities read the tag, so an allow for `app:v0.9` must not answer `app:latest`
    /// at the same digest.
    reference: String,
    digest: String,
    policy_hash: String,
    /// The trust root's content hash: new CA or log keys must not serve old verdicts.
    trust_version: String,
    /// Which policies applied, by [`crate::policy::Policy::identity`] (display names can
    /// collide): namespaces can select different ones for the same image, while pods in
    /// namespaces with the same policies still share one verification.
    matched: Vec<String>,
    /// The pod's namespace, only when a matched policy's verdict depends on the request
    /// (CEL reading `object.metadata.namespace`, say); otherwise namespaces share verdicts.
    namespace: Option<String>,
    /// With it, the namespace's labels as the snapshot knows them (CEL may read them).
    namespace_labels: Option<Arc<crate::policy::labels::Labels>>,
    /// With it, the pod's labels and annotations, by [`PodMetadata::fingerprint`].
    pod: Option<[u8; 32]>,
}

/// Tunables of the pipeline.
#[derive(Clone, Debug)]
pub struct EnforcerConfig {
    /// Node-wide mode: in warn mode nothing is denied, every would-be denial is reported.
    pub mode: Mode,
    pub cache_capacity: usize,
    pub allow_ttl: Duration,
    pub deny_ttl: Duration,
    pub error_ttl: Duration,
    /// CA certificates and log keys for keyless and transparency-log checks.
    pub trust: Arc<TrustRoot>,
}

impl Default for EnforcerConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Enforce,
            cache_capacity: 10_000,
            allow_ttl: Duration::from_secs(3600),
            deny_ttl: Duration::from_secs(60),
            error_ttl: Duration::from_secs(5),
            trust: Arc::new(TrustRoot::empty()),
        }
    }
}

pub struct Enforcer {
    store: Arc<dyn ImageStore>,
    source: Arc<dyn SignatureSource>,
    policy: watch::Receiver<Arc<PolicySet>>,
    cache: Cache<CacheKey, Verdict>,
    /// Node-wide warn mode; switchable by a config reload.
    warn_mode: AtomicBool,
    trust: Arc<TrustRoot>,
    /// Layer chains of the images checked, to tie each to the container's rootfs.
    chains: Chains,
    /// Evaluations running at once (one per core): whoever creates pods with metadata of
    /// their own makes each a verification of its own, which must queue, not pile threads
    /// onto the cores the runtime needs.
    evaluations: Arc<tokio::sync::Semaphore>,
}

impl Enforcer {
    pub fn new(
        store: Arc<dyn ImageStore>,
        source: Arc<dyn SignatureSource>,
        policy: watch::Receiver<Arc<PolicySet>>,
        config: EnforcerConfig,
    ) -> Self {
        let (allow, deny, error) = (config.allow_ttl, config.deny_ttl, config.error_ttl);
        let ttl = Arc::new(move |v: &Verdict| {
            Some(if v.transient {
                error
            } else if v.allowed {
                allow
            } else {
                deny
            })
        });
        let warn_mode = AtomicBool::new(config.mode == Mode::Warn);
        Self {
            store,
            source,
            policy,
            cache: Cache::new(config.cache_capacity, ttl),
            warn_mode,
            trust: config.trust,
            chains: Chains::default(),
            evaluations: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            )),
        }
    }

    /// Switch the node-wide mode (config reload). Cached verdicts stay valid: the mode is
    /// applied after the cache.
    pub fn set_mode(&self, mode: Mode) {
        self.warn_mode.store(mode == Mode::Warn, Ordering::SeqCst);
    }

    /// The policy snapshot in force right now.
    pub fn policy(&self) -> Arc<PolicySet> {
        self.policy.borrow().clone()
    }

    /// Decide within `budget`. Never errors: every failure is a denial that names its cause.
    pub async fn decide(&self, claim: &ImageClaim, budget: Duration) -> Decision {
        let decision = self.decide_strict(claim, budget).await;
        self.apply_node_mode(decision)
    }

    fn apply_node_mode(&self, mut d: Decision) -> Decision {
        if self.warn_mode.load(Ordering::SeqCst) && d.outcome == Outcome::Denied {
            d.outcome = Outcome::Warned;
        }
        d
    }

    /// The checks in order: a policy is loaded, the image is identified, policies match,
    /// then the verdict comes from the cache or a verification within what is left of the
    /// budget. Each step that cannot complete returns the undetermined denial with its reason.
    async fn decide_strict(&self, claim: &ImageClaim, budget: Duration) -> Decision {
        let deadline = Instant::now() + budget;
        let policy = self.policy();
        let mut d = Decision::undetermined(&claim.name);
        if let Some(err) = &policy.load_error {
            d.reason = format!("no valid policy is loaded, every image is denied: {err}");
            return d;
        }
        let (references, digest) = match self.identify_within(claim, budget).await {
            Ok(x) => x,
            Err(e) => {
                d.reason = e.to_string();
                return d;
            }
        };
        // Content known only by digest (an image ID, an image volume) is decided under every
        // name the store holds it by, and the strictest answer counts: which of them the pod
        // spec wrote is not in the request, and picking one would let the loosest policy speak.
        // The rootfs is read beside the verification, not before it: a cold decision waits
        // for the registry anyway, and the binding must hold whatever the verdict.
        let (bound, decisions) = tokio::join!(
            self.bind_rootfs(claim, &digest, deadline),
            futures::future::join_all(references.into_iter().map(|reference| self.decide_for(
                d.clone(),
                reference,
                &digest,
                claim,
                &policy,
                deadline
            )),)
        );
        if let Err(e) = bound {
            d.digest = Some(digest);
            d.reason = e.to_string();
            return d;
        }
        strictest(decisions)
    }

    /// The steps after identification, for one name of the content that will run.
    async fn decide_for(
        &self,
        mut d: Decision,
        reference: Reference,
        digest: &str,
        claim: &ImageClaim,
        policy: &Arc<PolicySet>,
        deadline: Instant,
    ) -> Decision {
        let mut target = Target {
            repository: crate::reference::repository(&reference),
            full: reference.whole(),
            reference,
            digest: digest.to_string(),
            namespace: claim.namespace.clone().filter(|n| !n.is_empty()),
            namespace_labels: None,
            pod: claim.pod.clone(),
        };
        target.namespace_labels = policy.namespace_labels.get(target.namespace.as_deref()).cloned();
        d.image = target.full.clone();
        d.digest = Some(target.digest.clone());
        d.indeterminate = false;

        let pod_labels = target.pod.as_deref().map(|p| &p.labels);
        let matched =
            policy.matching_for_pod(&target.full, &target.repository, target.namespace.as_deref(), pod_labels);
        d.policies = matched.iter().map(|(p, _)| p.name.clone()).collect();
        if matched.is_empty() {
            return self.no_match(d, policy.no_match);
        }
        let depends_on_request = matched.iter().any(|(p, _)| p.depends_on_request());
        let key = CacheKey {
            reference: target.full.clone(),
            digest: target.digest.clone(),
            policy_hash: policy.hash.clone(),
            trust_version: self.trust.version.clone(),
            matched: matched.iter().map(|(_, id)| id.to_string()).collect(),
            namespace: target.namespace.clone().filter(|_| depends_on_request),
            namespace_labels: target.namespace_labels.clone().filter(|_| depends_on_request),
            pod: target.pod.as_deref().filter(|_| depends_on_request).map(PodMetadata::fingerprint),
        };
        let budget = deadline.saturating_duration_since(Instant::now());
        let lookup = self.verdict(key, target, policy, budget).await;
        settle(d, lookup, budget)
    }

    /// The store lookup shares the budget: a hung containerd must cost a denial, not a late
    /// reply (which would get the plugin dropped and the container admitted).
    async fn identify_within(
        &self,
        claim: &ImageClaim,
        budget: Duration,
    ) -> Result<(Vec<Reference>, String), IdentifyError> {
        tokio::time::timeout(budget, self.identify(claim))
            .await
            .unwrap_or_else(|_| Err(IdentifyError::Timeout { name: claim.name.clone(), ms: budget.as_millis() }))
    }

    /// The cached verdict for `key`, or one verified within `budget` (which goes on in the
    /// background past it, and is cached when it lands).
    async fn verdict(
        &self,
        key: CacheKey,
        target: Target,
        policy: &Arc<PolicySet>,
        budget: Duration,
    ) -> Lookup<Verdict> {
        let source = Arc::clone(&self.source);
        let snapshot = Arc::clone(policy);
        let trust = Arc::clone(&self.trust);
        let evaluations = Arc::clone(&self.evaluations);
        let lookup = self
            .cache
            .get_or_compute(key, budget, move || async move {
                verify_target(&*source, snapshot, trust, evaluations, target).await
            })
            .await;
        crate::metrics::metrics().cache_lookup(match &lookup {
            Lookup::Ready { cached: true, .. } => "hit",
            Lookup::Ready { cached: false, .. } => "miss",
            Lookup::Pending => "pending",
        });
        lookup
    }

    fn no_match(&self, mut d: Decision, action: NoMatchAction) -> Decision {
        d.reason = format!("no policy matches this image (no-match action: {action})");
        match action {
            NoMatchAction::Deny => {}
            NoMatchAction::Allow => d.outcome = Outcome::Allowed,
            NoMatchAction::Warn => d.outcome = Outcome::Warned,
        }
        d
    }

    /// The container's root filesystem must be `digest`'s content: the name is the request's
    /// claim, the snapshot is what runs. Nothing to bind for a volume or outside a container.
    async fn bind_rootfs(&self, claim: &ImageClaim, digest: &str, deadline: Instant) -> Result<(), IdentifyError> {
        let Some(container) = claim.container.as_deref().filter(|_| claim.volume.is_none()) else {
            return Ok(());
        };
        if container.is_empty() {
            // (containerd always names the container; a request that does not is not bound)
            return Err(RootfsError::NoSnapshot { container: container.to_string() }.into());
        }
        let budget = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(budget, self.chains.check(self.store.as_ref(), container, &claim.name, digest)).await
        {
            Ok(bound) => Ok(bound?),
            Err(_) => Err(IdentifyError::Timeout { name: claim.name.clone(), ms: budget.as_millis() }),
        }
    }

    /// The digest that will run and the normalised names to decide it under (one, unless
    /// the request names content only by digest), or a reason why not.
    async fn identify(&self, claim: &ImageClaim) -> Result<(Vec<Reference>, String), IdentifyError> {
        if let Some(dest) = &claim.volume {
            return self.identify_volume(dest, claim.digest.as_deref()).await;
        }
        let name = claim.name.trim();
        if name.is_empty() {
            return Err(IdentifyError::NoName);
        }
        // A bare image ID names content but no repository to find signatures in: map it back
        // through the store to the names it was pulled as.
        if let Some(id) = name.strip_prefix("sha256:") {
            let digest = self.store.resolve(name).await.map_err(|e| store_error(name, e))?;
            let names = self.store.names_for_digest(&digest).await.map_err(|e| store_error(name, e))?;
            if names.is_empty() {
                return Err(IdentifyError::UnnamedImageId { id: id.to_string() });
            }
            return Ok((every_name(&format!("image ID {name}"), &names)?, digest));
        }
        let reference = crate::reference::parse(name)?;
        if let Some(d) = reference.digest() {
            // Content-addressed: the digest in the name is what runs.
            return Ok((vec![reference.clone()], d.to_string()));
        }
        if let Some(d) = claim.digest.as_deref().filter(|d| !d.is_empty()) {
            return Ok((vec![reference], d.to_string()));
        }
        // The runtime's own name first (it is what CRI stored), then containerd's normal form
        // of that same name. Never signet's canonical form: `reg.io:443/app` and
        // `reg.io/app:latest` are different entries in the store, and the second may hold
        // other (signed) content than the one that runs.
        let digest = match self.store.resolve(name).await {
            Ok(d) => d,
            Err(StoreError::NotFound { .. }) => {
                let as_written = crate::reference::parse_as_written(name)?.whole();
                if as_written == name {
                    return Err(store_error(
                        name,
                        StoreError::NotFound { name: name.to_string(), namespace: "k8s.io".into() },
                    ));
                }
                self.store.resolve(&as_written).await.map_err(|e| store_error(name, e))?
            }
            Err(e) => return Err(store_error(name, e)),
        };
        Ok((vec![reference], digest))
    }
}

impl Enforcer {
    /// An image volume's image: the digest containerd mounted, and every name the image store
    /// records for exactly that digest (the pod spec's reference is not in the request), as
    /// for a bare image ID.
    async fn identify_volume(
        &self,
        dest: &str,
        digest: Option<&str>,
    ) -> Result<(Vec<Reference>, String), IdentifyError> {
        let digest = digest
            .filter(|d| !d.is_empty())
            .ok_or_else(|| IdentifyError::VolumeWithoutDigest { dest: dest.to_string() })?;
        let names = self.store.names_for_digest(digest).await.map_err(|e| store_error(digest, e))?;
        if names.is_empty() {
            return Err(IdentifyError::UnnamedVolume { dest: dest.to_string(), digest: digest.to_string() });
        }
        Ok((every_name(&format!("image volume at {dest} ({digest})"), &names)?, digest.to_string()))
    }
}

/// How many names of one content a decision is made under; more are refused, not cut (the
/// one left out could be the one the pod wrote). Each name is its own verification.
const MAX_NAMES: usize = 16;

/// Every name the store holds the content by, parsed, once each. A name that does not parse
/// refuses the whole decision rather than being skipped.
fn every_name(what: &str, names: &[String]) -> Result<Vec<Reference>, IdentifyError> {
    let mut refs: Vec<Reference> = Vec::new();
    for name in names {
        let r = crate::reference::parse(name)?;
        if !refs.iter().any(|seen| seen.whole() == r.whole()) {
            refs.push(r);
        }
    }
    if refs.len() > MAX_NAMES {
        return Err(IdentifyError::TooManyNames { what: what.to_string(), count: refs.len(), limit: MAX_NAMES });
    }
    Ok(refs)
}

/// Of one content's decisions under its names, the one that counts: a denial before a warning
/// before an allow, a definite denial before one still verifying; the first of equals.
fn strictest(decisions: Vec<Decision>) -> Decision {
    let rank = |d: &Decision| match (d.outcome, d.indeterminate) {
        (Outcome::Denied, false) => 0,
        (Outcome::Denied, true) => 1,
        (Outcome::Warned, _) => 2,
        (Outcome::Allowed, _) => 3,
    };
    let mut decisions = decisions;
    let pick = (0..decisions.len()).min_by_key(|&i| rank(&decisions[i])).expect("at least one name");
    decisions.swap_remove(pick)
}

/// The image a decision is about, once identified.
struct Target {
    reference: Reference,
    /// `reference` whole and its repository: what policies match on.
    full: String,
    repository: String,
    digest: String,
    namespace: Option<String>,
    /// The namespace's labels, when the cluster sync knows them.
    namespace_labels: Option<Arc<crate::policy::labels::Labels>>,
    pod: Option<Arc<PodMetadata>>,
}

/// The policies of `policy` that cover the image (`full`, `repository`) for a pod in
/// `namespace` with this metadata.
fn matching<'a>(
    policy: &'a PolicySet,
    (full, repository, namespace, pod): &(String, String, Option<String>, Option<Arc<PodMetadata>>),
) -> Vec<&'a crate::policy::Policy> {
    let pod_labels = pod.as_deref().map(|p| &p.labels);
    policy.matching_for_pod(full, repository, namespace.as_deref(), pod_labels).into_iter().map(|(p, _)| p).collect()
}

/// Fetch what the matching policies need and evaluate them. Runs detached from the request
/// (it outlives a late one), so it matches again on its own snapshot.
async fn verify_target(
    source: &dyn SignatureSource,
    snapshot: Arc<PolicySet>,
    trust_root: Arc<TrustRoot>,
    evaluations: Arc<tokio::sync::Semaphore>,
    target: Target,
) -> Verdict {
    let (policy, trust) = (&*snapshot, &*trust_root);
    let Target { reference, full, repository, digest, namespace, namespace_labels, pod } = target;
    let place = (full.clone(), repository.clone(), namespace.clone(), pod.clone());
    let matched = matching(policy, &place);
    let started = Instant::now();
    let needs = evaluate::needs(&matched);
    let fetch = |needed: bool, what| {
        let (reference, digest) = (&reference, &digest);
        async move {
            if needed {
                Some(source.signatures(reference, digest, what).await)
            } else {
                None
            }
        }
    };
    // Signatures kept in other repositories or under a tag prefix (policies'
    // `repository`/`source`/`tagPrefix`), for the same digest: the digest the signatures must
    // name is still the one that runs.
    let elsewhere = futures::future::join_all(needs.elsewhere.iter().map(|(site, &(sigs, atts))| {
        let (digest, reference) = (&digest, &reference);
        async move {
            let fetch_from = |needed: bool, what| async move {
                if !needed {
                    return None;
                }
                let image = match &site.repository {
                    None => Ok(reference.clone()),
                    Some(repo) => crate::reference::parse(repo)
                        .map_err(|e| crate::registry::RegistryError::BadReference(format!("{repo}: {e}"))),
                };
                Some(match image {
                    Ok(r) => source.attached(&r, digest, what, &site.tag_prefix).await,
                    Err(e) => Err(e),
                })
            };
            let (signatures, attestations) =
                tokio::join!(fetch_from(sigs, Artifact::Signatures), fetch_from(atts, Artifact::Attestations));
            (site.clone(), evaluate::Elsewhere { signatures, attestations })
        }
    }));
    // One clock for the whole verification: the payload filter below must accept what the
    // evaluation will verify, or a verified artifact would come without its payload.
    let cx = verify::Context { trust, now: verify::Context::now_secs() };
    // Artifacts attached as referrers (Kyverno's referrer attestations), by artifact type;
    // a payload only for an artifact a policy's signer verifies.
    let referred = futures::future::join_all(needs.referred.iter().map(|(artifact_type, &payloads)| {
        let (reference, digest, matched) = (&reference, &digest, &matched);
        async move {
            let verified = |position, a: &crate::registry::ReferredArtifact| {
                evaluate::payload_wanted(matched, artifact_type, position, a, digest, cx)
            };
            let filter = payloads.then_some(&verified as crate::registry::PayloadFilter<'_>);
            (artifact_type.clone(), source.referred(reference, digest, artifact_type, filter).await)
        }
    }));
    let ((signatures, attestations, simple_signing, notary), elsewhere, referred) = tokio::join!(
        async {
            tokio::join!(
                fetch(needs.signatures, Artifact::Signatures),
                fetch(needs.attestations, Artifact::Attestations),
                fetch(needs.simple_signing, Artifact::SimpleSigning),
                fetch(needs.notary, Artifact::Notary),
            )
        },
        elsewhere,
        referred
    );
    let evidence = evaluate::Evidence {
        reference: reference.whole(),
        namespace,
        namespace_labels,
        pod,
        signatures,
        attestations,
        simple_signing,
        notary,
        elsewhere: elsewhere.into_iter().collect(),
        referred: referred.into_iter().collect(),
    };
    let transient = [&evidence.signatures, &evidence.attestations, &evidence.simple_signing, &evidence.notary]
        .into_iter()
        .chain(evidence.elsewhere.values().flat_map(|e| [&e.signatures, &e.attestations]))
        .any(|e| matches!(e, Some(Err(_))))
        || evidence.referred.values().any(Result::is_err);
    crate::metrics::metrics().verification(started.elapsed(), transient);
    // The evaluation (signature checks, CEL over the pod's metadata and signed payloads) is
    // CPU work: off the runtime's workers, so the NRI handler answers within its budget
    // however long it takes.
    let now = cx.now;
    drop(matched);
    let permit = evaluations.acquire_owned().await.expect("the evaluation semaphore is never closed");
    let evaluated = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let matched = matching(&snapshot, &place);
        evaluate::evaluate(&matched, &evidence, &digest, verify::Context { trust: &trust_root, now })
    })
    .await;
    let eval = match evaluated {
        Ok(eval) => eval,
        Err(e) => {
            return Verdict {
                allowed: false,
                warned: false,
                reason: format!("the evaluation of {full} failed: {e}"),
                transient: true,
            };
        }
    };
    let reason = if eval.failures.is_empty() { eval.satisfied.join("; ") } else { eval.failures.join("; ") };
    Verdict { allowed: eval.allowed, warned: eval.warned, reason, transient }
}

/// The decision from the verdict, or the "still verifying" denial when there is none yet.
fn settle(mut d: Decision, lookup: Lookup<Verdict>, budget: Duration) -> Decision {
    match lookup {
        Lookup::Ready { value, cached } => {
            d.outcome = match (value.allowed, value.warned) {
                (false, _) => Outcome::Denied,
                (true, true) => Outcome::Warned,
                (true, false) => Outcome::Allowed,
            };
            d.reason = value.reason;
            d.cached = cached;
            d.indeterminate = value.transient;
        }
        Lookup::Pending => {
            d.indeterminate = true;
            d.reason = format!(
                "signature verification did not finish within {} ms and continues in the background; the \
                 runtime's retry will get its result",
                budget.as_millis()
            );
        }
    }
    d
}

fn store_error(name: &str, source: StoreError) -> IdentifyError {
    IdentifyError::Store { name: name.to_string(), source }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imagestore::FakeImageStore;
    use crate::policy::matching::ImageGlob;
    use crate::policy::{Authority, AuthorityKind, Policy};
    use crate::registry::{FakeSignatureSource, RegistryError};
    use crate::testutil::TestSigner;
    use crate::verify::signer::Attached;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const D3: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";
    const SECOND: Duration = Duration::from_secs(1);

    struct World {
        store: Arc<FakeImageStore>,
        source: Arc<FakeSignatureSource>,
        signer: TestSigner,
        policy_tx: watch::Sender<Arc<PolicySet>>,
        enforcer: Enforcer,
    }

    fn policy_set(key: &TestSigner, mode: Mode, no_match: NoMatchAction) -> Arc<PolicySet> {
        let p = Policy::any_of(
            "probe",
            vec![ImageGlob::new("reg.io/probe/**").unwrap()],
            vec![Authority { name: "team".into(), kind: AuthorityKind::key(key.trusted()) }],
            mode,
        );
        PolicySet::new(vec![p], no_match, format!("{mode}{}", key.trusted().fingerprint).as_bytes())
    }

    fn world(config: EnforcerConfig) -> World {
        let store = FakeImageStore::new();
        let source = FakeSignatureSource::new();
        let signer = TestSigner::new(1);
        let (policy_tx, rx) = watch::channel(policy_set(&signer, Mode::Enforce, NoMatchAction::Deny));
        let enforcer = Enforcer::new(store.clone(), source.clone(), rx, config);
        World { store, source, signer, policy_tx, enforcer }
    }

    /// The one policy a policy file's first document holds, compiled with local keys only.
    fn compiled(yaml: &str) -> crate::policy::Policy {
        let doc = &crate::policy::file::parse_documents(std::path::Path::new("p.yaml"), yaml).unwrap()[0];
        let normal = &crate::policy::importers::import(doc).unwrap().policies[0];
        let keys = crate::policy::compile::FilesOnly(std::path::Path::new("/"));
        crate::policy::compile::compile(normal, &keys).unwrap().policy
    }

    fn claim(name: &str) -> ImageClaim {
        ImageClaim::named(name)
    }

    #[tokio::test]
    async fn signed_image_is_allowed_and_then_served_from_cache() {
        let w = world(EnforcerConfig::default());
        w.store.put("reg.io/probe/app:v1", D1);
        w.source.set(D1, Ok(vec![w.signer.sign_digest("reg.io/probe/app", D1)]));
        let d = w.enforcer.decide(&claim("reg.io/probe/app:v1"), SECOND).await;
        assert!(d.allowed(), "{d}");
        assert_eq!(d.outcome, Outcome::Allowed);
        assert_eq!(d.digest.as_deref(), Some(D1));
        assert_eq!(d.policies, ["probe"]);
        let d = w.enforcer.decide(&claim("reg.io/probe/app:v1"), SECOND).await;
        assert!(d.allowed() && d.cached);
        assert_eq!(w.source.calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    /// A policy's signature repository (Kyverno `repository`, policy-controller `source.oci`,
    /// ImageValidatingPolicy `source.repository`): signatures are fetched from there for the
    /// digest that runs, and only from there. Before, such signers failed closed.
    #[tokio::test]
    async fn signatures_are_read_from_the_policys_signature_repository() {
        use crate::registry::Artifact;
        let w = world(EnforcerConfig::default());
        let mut key = AuthorityKind::key(w.signer.trusted());
        if let AuthorityKind::Signed(by) = &mut key {
            by.source =
                Some(Attached { repository: Some("sigs.example/team/signatures".into()), ..Default::default() });
        }
        let p = Policy::any_of(
            "probe",
            vec![ImageGlob::new("reg.io/probe/**").unwrap()],
            vec![Authority { name: "team".into(), kind: key }],
            Mode::Enforce,
        );
        w.policy_tx.send_replace(PolicySet::new(vec![p], NoMatchAction::Deny, b"elsewhere"));
        w.store.put("reg.io/probe/app:v1", D1);
        w.store.put("reg.io/probe/other:v1", D2);
        // app: signed in the signature repository, nothing in its own.
        let signed = Ok(vec![w.signer.sign_digest("reg.io/probe/app", D1)]);
        w.source.set_in("sigs.example/team/signatures", Artifact::Signatures, D1, signed);
        w.source.set_in("reg.io/probe/app", Artifact::Signatures, D1, Ok(vec![]));
        let d = w.enforcer.decide(&claim("reg.io/probe/app:v1"), SECOND).await;
        assert!(d.allowed(), "{d}");
        // other: signed in its own repository only; the policy looks elsewhere and finds nothing.
        let own = Ok(vec![w.signer.sign_digest("reg.io/probe/other", D2)]);
        w.source.set_in("reg.io/probe/other", Artifact::Signatures, D2, own);
        let d = w.enforcer.decide(&claim("reg.io/probe/other:v1"), SECOND).await;
        assert!(!d.allowed(), "{d}");
        assert!(d.reason.contains("sigs.example/team/signatures"), "{}", d.reason);
        // A signature in the signature repository for another digest does not help.
        w.store.put("reg.io/probe/third:v1", D3);
        let wrong = Ok(vec![w.signer.sign_digest("reg.io/probe/third", D1)]);
        w.source.set_in("sigs.example/team/signatures", Artifact::Signatures, D3, wrong);
        let d = w.enforcer.decide(&claim("reg.io/probe/third:v1"), SECOND).await;
        assert!(!d.allowed() && d.reason.contains("is for digest"), "{d}");
    }

    /// Kyverno ImageValidatingPolicy `source.tagPrefix` (cosign's `--attachment-tag-prefix`):
    /// the signer's `.sig` tags carry the prefix, in the image's own repository or in its
    /// signature repository; a signature under cosign's plain tag does not count for it.
    /// Before, such attestors failed closed.
    #[tokio::test]
    async fn signatures_are_read_under_the_policys_tag_prefix() {
        use crate::registry::Artifact;
        let w = world(EnforcerConfig::default());
        let mut key = AuthorityKind::key(w.signer.trusted());
        if let AuthorityKind::Signed(by) = &mut key {
            by.source = Some(Attached { repository: None, tag_prefix: "ci-".into() });
        }
        let p = Policy::any_of(
            "probe",
            vec![ImageGlob::new("reg.io/probe/**").unwrap()],
            vec![Authority { name: "team".into(), kind: key }],
            Mode::Enforce,
        );
        w.policy_tx.send_replace(PolicySet::new(vec![p], NoMatchAction::Deny, b"prefix"));
        w.store.put("reg.io/probe/app:v1", D1);
        w.store.put("reg.io/probe/other:v1", D2);
        let signed = |repo: &str, d: &str| Ok(vec![w.signer.sign_digest(repo, d)]);
        w.source.set_in_prefixed("reg.io/probe/app", "ci-", Artifact::Signatures, D1, signed("reg.io/probe/app", D1));
        let d = w.enforcer.decide(&claim("reg.io/probe/app:v1"), SECOND).await;
        assert!(d.allowed(), "{d}");
        // other: signed under cosign's plain tag only.
        w.source.set(D2, signed("reg.io/probe/other", D2));
        let d = w.enforcer.decide(&claim("reg.io/probe/other:v1"), SECOND).await;
        assert!(!d.allowed(), "{d}");
        assert!(d.reason.contains("ci-sha256-"), "{}", d.reason);
    }

    #[tokio::test]
    async fn unsigned_image_is_denied_with_a_message_naming_everything() {
        let w = world(EnforcerConfig::default());
        w.store.put("reg.io/probe/app:v1", D1);
        let d = w.enforcer.decide(&claim("reg.io/probe/app:v1"), SECOND).await;
        assert!(!d.allowed());
        let msg = d.to_string();
        for part in ["reg.io/probe/app:v1", D1, "probe", "team", "no signatures found", "denied"] {
            assert!(msg.contains(part), "{part:?} missing from {msg}");
        }
    }

    #[tokio::test]
    async fn the_digest_comes_from_the_store_not_from_the_tag() {
        // The tag was re-pointed in the registry after the node pulled it: the store still
        // says D1, the signature for D2 must not help.
        let w = world(EnforcerConfig::default());
        w.store.put("reg.io/probe/app:v1", D1);
        w.source.set(D1, Ok(vec![w.signer.sign_digest("reg.io/probe/app", D2)]));
        let d = w.enforcer.decide(&claim("reg.io/probe/app:v1"), SECOND).await;
        assert!(!d.allowed());
        assert!(d.reason.contains("is for digest"), "{}", d.reason);
    }

    #[tokio::test]
    async fn a_tag_moved_in_the_store_is_checked_at_its_new_digest() {
        // No name→digest caching: containerd 1.7 can move a tag without publishing an image
        // event (an import through the transfer service), so only a lookup per decision
        // sees what will run. The verdict for the old digest stays cached, and must not
        // answer for the new one.
        let w = world(EnforcerConfig::default());
        w.store.put("reg.io/probe/app:v1", D1);
        w.source.set(D1, Ok(vec![w.signer.sign_digest("reg.io/probe/app", D1)]));
        let d = w.enforcer.decide(&claim("reg.io/probe/app:v1"), SECOND).await;
        assert!(d.allowed(), "{d}");
        w.store.put("reg.io/probe/app:v1", D2);
        let d = w.enforcer.decide(&claim("reg.io/probe/app:v1"), SECOND).await;
        assert!(!d.allowed() && !d.cached, "{d}");
        assert_eq!(d.digest.as_deref(), Some(D2));
    }

    /// Regression (#13.6): spellings of the policy's registry that containerd pulls from the
    /// same place are matched, so `no_match = allow` does not let them through unchecked.
    #[tokio::test]
    async fn other_spellings_of_the_registry_are_checked_not_unmatched() {
        let w = world(EnforcerConfig::default());
        w.policy_tx.send_replace(policy_set(&w.signer, Mode::Enforce, NoMatchAction::Allow));
        for name in ["REG.IO/probe/app:v1", "Reg.io/probe/app:v1", "reg.io:443/probe/app:v1"] {
            w.store.put(name, D1);
            let d = w.enforcer.decide(&claim(name), SECOND).await;
            assert!(!d.allowed(), "{name}: {d}");
            assert_eq!(d.policies, ["probe"], "{name}");
            assert_eq!(d.image, "reg.io/probe/app:v1");
        }
    }

    /// Regression (#13.7): a verdict for one tag does not answer another tag at the same
    /// digest (GPG identities read the tag), nor does a singleflight join across tags.
    #[tokio::test]
    async fn a_verdict_for_one_tag_is_not_served_for_another() {
        let w = world(EnforcerConfig::default());
        w.store.put("reg.io/probe/app:v0.9", D1);
        w.store.put("reg.io/probe/app:latest", D1);
        w.source.set(D1, Ok(vec![w.signer.sign_digest("reg.io/probe/app", D1)]));
        let d = w.enforcer.decide(&claim("reg.io/probe/app:v0.9"), SECOND).await;
        assert!(d.allowed() && !d.cached, "{d}");
        let d = w.enforcer.decide(&claim("reg.io/probe/app:latest"), SECOND).await;
        assert!(d.allowed() && !d.cached, "checked on its own: {d}");
        assert_eq!(w.source.calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    /// Review finding: the fallback lookup is containerd's normal form of the runtime's own
    /// name, not signet's canonical one, which can name other (signed) content.
    #[tokio::test]
    async fn the_fallback_lookup_never_resolves_another_spelling_of_the_registry() {
        let w = world(EnforcerConfig::default());
        w.source.set(D1, Ok(vec![w.signer.sign_digest("reg.io/probe/app", D1)]));
        w.store.put("reg.io/probe/app:latest", D1);
        for (runs, stored) in
            [("reg.io:443/probe/app", "reg.io:443/probe/app:latest"), ("REG.IO/probe/app", "REG.IO/probe/app:latest")]
        {
            w.store.put(stored, D2);
            let d = w.enforcer.decide(&claim(runs), SECOND).await;
            assert_eq!(d.digest.as_deref(), Some(D2), "{runs}: {d}");
            assert!(!d.allowed(), "{runs}: {d}");
        }
        // Not stored under either spelling: not found, never the canonical name's digest.
        let d = w.enforcer.decide(&claim("reg.io:443/probe/other"), SECOND).await;
        assert!(!d.allowed() && d.digest.is_none(), "{d}");
    }

    #[tokio::test]
    async fn image_missing_from_the_store_is_denied() {
        let w = world(EnforcerConfig::default());
        let d = w.enforcer.decide(&claim("reg.io/probe/app:v1"), SECOND).await;
        assert!(!d.allowed());
        assert!(d.reason.contains("not in containerd's image store"), "{}", d.reason);
    }

    /// A CRI caller may send any name beside the image ID it runs (containerd >= 2.0 puts
    /// `user_specified_image` in the annotation). Before, the name alone decided: unsigned
    /// content started under a signed image's name. Now the container's rootfs snapshot
    /// must be made from the checked digest's layers.
    #[tokio::test]
    async fn a_container_whose_rootfs_is_other_content_than_its_name_is_denied() {
        let w = world(EnforcerConfig::default());
        w.store.put("reg.io/probe/app:v1", D1);
        w.source.set(D1, Ok(vec![w.signer.sign_digest("reg.io/probe/app", D1)]));
        w.store.unpack_for("honest", D1);
        w.store.unpack_for("lying", D2);
        let as_container = |id: &str| ImageClaim { container: Some(id.into()), ..claim("reg.io/probe/app:v1") };
        let d = w.enforcer.decide(&as_container("honest"), SECOND).await;
        assert!(d.allowed(), "{d}");
        let d = w.enforcer.decide(&as_container("lying"), SECOND).await;
        assert!(!d.allowed(), "{d}");
        assert!(
            d.reason.contains("container lying's root filesystem is not the content of reg.io/probe/app:v1"),
            "{d}"
        );
        // Cached allows for the name do not stand in for the check either.
        let d = w.enforcer.decide(&as_container("lying"), SECOND).await;
        assert!(!d.allowed() && !d.cached, "{d}");
        let d = w.enforcer.decide(&as_container("no-snapshot"), SECOND).await;
        assert!(!d.allowed() && d.reason.contains("no root filesystem snapshot"), "{d}");
        // Review: an empty container ID skipped the binding, and the name alone decided.
        let d = w.enforcer.decide(&as_container(""), SECOND).await;
        assert!(!d.allowed() && d.reason.contains("no root filesystem snapshot"), "{d}");
    }

    #[tokio::test]
    async fn docker_hub_short_names_resolve_via_the_normalised_name() {
        let w = world(EnforcerConfig::default());
        w.store.put("docker.io/library/busybox:latest", D1);
        let d = w.enforcer.decide(&claim("busybox"), SECOND).await;
        assert_eq!(d.digest.as_deref(), Some(D1));
        assert!(d.reason.contains("no policy matches"), "{}", d.reason);
        assert!(!d.allowed());
    }

    #[tokio::test]
    async fn runtime_supplied_digest_is_used_without_a_lookup() {
        let w = world(EnforcerConfig::default());
        w.source.set(D2, Ok(vec![w.signer.sign_digest("reg.io/probe/app", D2)]));
        let d = w
            .enforcer
            .decide(&ImageClaim { digest: Some(D2.into()), ..ImageClaim::named("reg.io/probe/app:v1") }, SECOND)
            .await;
        assert!(d.allowed(), "{d}");
    }

    #[tokio::test]
    async fn bare_image_id_maps_back_to_its_repository() {
        let w = world(EnforcerConfig::default());
        let id = format!("sha256:{}", "c".repeat(64));
        w.store.put(&id, D1);
        w.store.put("reg.io/probe/app:v1", D1);
        w.source.set(D1, Ok(vec![w.signer.sign_digest("reg.io/probe/app", D1)]));
        let d = w.enforcer.decide(&claim(&id), SECOND).await;
        assert!(d.allowed(), "{d}");
    }

    /// Content named only by digest (an image ID, an image volume) is decided under every
    /// name the store holds it by. Before, the first name decided: here a name no policy
    /// matches (no-match allow) sorts first and let unsigned content through, though the
    /// same content is also `reg.io/probe/app:v1`, whose policy requires a signature.
    #[tokio::test]
    async fn content_known_by_several_names_is_held_to_the_strictest() {
        let w = world(EnforcerConfig::default());
        w.policy_tx.send_replace(policy_set(&w.signer, Mode::Enforce, NoMatchAction::Allow));
        let id = format!("sha256:{}", "c".repeat(64));
        w.store.put(&id, D1);
        w.store.put("reg.io/open/app:v1", D1);
        w.store.put("reg.io/probe/app:v1", D1);
        let d = w.enforcer.decide(&claim(&id), SECOND).await;
        assert!(!d.allowed(), "{d}");
        assert_eq!(d.image, "reg.io/probe/app:v1");
        assert!(d.reason.contains("no signatures found"), "{}", d.reason);
        let volume = ImageClaim {
            name: "image volume at /data".into(),
            digest: Some(D1.into()),
            volume: Some("/data".into()),
            ..Default::default()
        };
        let d = w.enforcer.decide(&volume, SECOND).await;
        assert!(!d.allowed(), "{d}");
        assert_eq!(d.image, "reg.io/probe/app:v1");
        // Signed, every name passes (the open one by no-match allow).
        w.source.set(D1, Ok(vec![w.signer.sign_digest("reg.io/probe/app", D1)]));
        let w2 = world(EnforcerConfig::default());
        w2.policy_tx.send_replace(policy_set(&w.signer, Mode::Enforce, NoMatchAction::Allow));
        for n in [id.as_str(), "reg.io/open/app:v1", "reg.io/probe/app:v1"] {
            w2.store.put(n, D1);
        }
        w2.source.set(D1, Ok(vec![w.signer.sign_digest("reg.io/probe/app", D1)]));
        let d = w2.enforcer.decide(&volume, SECOND).await;
        assert!(d.allowed(), "{d}");
    }

    #[tokio::test]
    async fn content_known_by_too_many_names_is_refused_not_cut() {
        let w = world(EnforcerConfig::default());
        for i in 0..=MAX_NAMES {
            w.store.put(&format!("reg.io/probe/app:v{i}"), D1);
        }
        w.source.set(D1, Ok(vec![w.signer.sign_digest("reg.io/probe/app", D1)]));
        let volume = ImageClaim { digest: Some(D1.into()), volume: Some("/data".into()), ..Default::default() };
        let d = w.enforcer.decide(&volume, SECOND).await;
        assert!(!d.allowed(), "{d}");
        assert!(d.reason.contains("17 names, over the 16"), "{}", d.reason);
    }

    #[tokio::test]
    async fn slow_registry_denies_in_budget_then_retry_hits_the_cache() {
        let w = world(EnforcerConfig::default());
        w.store.put("reg.io/probe/app:v1", D1);
        w.source.set(D1, Ok(vec![w.signer.sign_digest("reg.io/probe/app", D1)]));
        w.source.set_delay(Duration::from_millis(300));
        let t0 = Instant::now();
        let d = w.enforcer.decide(&claim("reg.io/probe/app:v1"), Duration::from_millis(50)).await;
        assert!(t0.elapsed() < Duration::from_millis(250), "answered late: {:?}", t0.elapsed());
        assert!(!d.allowed());
        assert!(d.reason.contains("continues in the background"), "{}", d.reason);
        tokio::time::sleep(Duration::from_millis(400)).await;
        let d = w.enforcer.decide(&claim("reg.io/probe/app:v1"), Duration::from_millis(50)).await;
        assert!(d.allowed() && d.cached, "{d}");
    }

    #[tokio::test]
    async fn unreachable_image_store_denies_and_says_so() {
        let w = world(EnforcerConfig::default());
        w.store.put("reg.io/probe/app:v1", D1);
        w.store.set_unavailable(true);
        let d = w.enforcer.decide(&claim("reg.io/probe/app:v1"), SECOND).await;
        assert!(!d.allowed() && d.indeterminate);
        assert!(d.reason.contains("image store") && d.reason.contains("unavailable"), "{}", d.reason);
    }

    #[tokio::test]
    async fn hung_image_store_denies_inside_the_budget() {
        let w = world(EnforcerConfig::default());
        w.store.put("reg.io/probe/app:v1", D1);
        w.store.set_delay(Duration::from_secs(5));
        let t0 = Instant::now();
        let d = w.enforcer.decide(&claim("reg.io/probe/app:v1"), Duration::from_millis(100)).await;
        assert!(t0.elapsed() < Duration::from_millis(500), "answered late: {:?}", t0.elapsed());
        assert!(!d.allowed() && d.indeterminate);
        assert!(d.reason.contains("took longer than 100 ms"), "{}", d.reason);
    }

    #[tokio::test]
    async fn registry_failure_denies_and_names_the_failure() {
        let w = world(EnforcerConfig::default());
        w.store.put("reg.io/probe/app:v1", D1);
        w.source.set(D1, Err(RegistryError::Request { location: "x".into(), message: "connection refused".into() }));
        let d = w.enforcer.decide(&claim("reg.io/probe/app:v1"), SECOND).await;
        assert!(!d.allowed());
        assert!(d.reason.contains("connection refused"));
    }

    #[tokio::test]
    async fn node_warn_mode_allows_but_reports() {
        let w = world(EnforcerConfig { mode: Mode::Warn, ..Default::default() });
        w.store.put("reg.io/probe/app:v1", D1);
        let d = w.enforcer.decide(&claim("reg.io/probe/app:v1"), SECOND).await;
        assert!(d.allowed());
        assert_eq!(d.outcome, Outcome::Warned);
        assert!(d.reason.contains("no signatures found"));
    }

    #[tokio::test]
    async fn no_match_actions() {
        let w = world(EnforcerConfig::default());
        w.store.put("other.io/app:v1", D1);
        assert!(!w.enforcer.decide(&claim("other.io/app:v1"), SECOND).await.allowed());
        w.policy_tx.send(policy_set(&w.signer, Mode::Enforce, NoMatchAction::Allow)).unwrap();
        let d = w.enforcer.decide(&claim("other.io/app:v1"), SECOND).await;
        assert!(d.allowed() && d.outcome == Outcome::Allowed);
        w.policy_tx.send(policy_set(&w.signer, Mode::Enforce, NoMatchAction::Warn)).unwrap();
        assert_eq!(w.enforcer.decide(&claim("other.io/app:v1"), SECOND).await.outcome, Outcome::Warned);
    }

    #[tokio::test]
    async fn policy_change_is_not_served_stale_decisions() {
        let w = world(EnforcerConfig::default());
        w.store.put("reg.io/probe/app:v1", D1);
        w.source.set(D1, Ok(vec![w.signer.sign_digest("reg.io/probe/app", D1)]));
        assert!(w.enforcer.decide(&claim("reg.io/probe/app:v1"), SECOND).await.allowed());
        let other = TestSigner::new(9);
        w.policy_tx.send(policy_set(&other, Mode::Enforce, NoMatchAction::Deny)).unwrap();
        assert!(!w.enforcer.decide(&claim("reg.io/probe/app:v1"), SECOND).await.allowed());
    }

    /// Regression guard: a verdict that depends on the pod's namespace (CEL reading it) is
    /// not served to a pod in another namespace from the cache.
    #[tokio::test]
    async fn namespace_dependent_verdicts_are_cached_per_namespace() {
        let w = world(EnforcerConfig::default());
        w.store.put("reg.io/probe/app:v1", D1);
        let yaml = &format!("apiVersion: policies.kyverno.io/v1\nkind: ImageValidatingPolicy\nmetadata: {{name: p}}\nspec:\n  matchImageReferences: [{{glob: \"reg.io/probe/*\"}}]\n  matchConditions:\n  - {{name: n, expression: \"object.metadata.namespace != 'kube-system'\"}}\n  attestors:\n  - {}\n  validations:\n  - expression: \"false\"\n", crate::testutil::vectors::notary_attestor("none"));
        let policy = compiled(yaml);
        w.policy_tx.send(PolicySet::assemble(vec![policy], NoMatchAction::Deny)).unwrap();
        let in_ns = |ns: &str| ImageClaim { namespace: Some(ns.into()), ..claim("reg.io/probe/app:v1") };
        assert!(w.enforcer.decide(&in_ns("kube-system"), SECOND).await.allowed());
        let d = w.enforcer.decide(&in_ns("default"), SECOND).await;
        assert!(!d.allowed() && !d.cached, "{d}");
        assert!(w.enforcer.decide(&in_ns("kube-system"), SECOND).await.cached);
    }

    /// #19: a referrer attestation's artifacts are fetched for the digest that runs, by
    /// artifact type, and what they hold is what the verdict says; a registry error there is
    /// transient, not a verdict. (Verifying notation at the wall clock would outlive the test
    /// certificates: the verifying path is tested in process with the vectors' time.)
    #[tokio::test]
    async fn referrer_attestations_are_fetched_for_the_running_digest() {
        let w = world(EnforcerConfig::default());
        w.store.put("reg.io/probe/app:v1", D1);
        w.store.put("reg.io/probe/other:v1", D2);
        w.store.put("reg.io/probe/broken:v1", D3);
        let yaml = &format!("apiVersion: policies.kyverno.io/v1\nkind: ImageValidatingPolicy\nmetadata: {{name: p}}\nspec:\n  matchImageReferences: [{{glob: \"reg.io/probe/*\"}}]\n  attestors:\n  - {}\n  attestations:\n  - {{name: sbom, referrer: {{type: sbom/cyclone-dx}}}}\n  validations:\n  - expression: \"images.containers.all(i, verifyAttestationSignatures(i, attestations.sbom, [attestors.notary]) > 0)\"\n", crate::testutil::vectors::notary_attestor("notary"));
        let policy = compiled(yaml);
        w.policy_tx.send(PolicySet::assemble(vec![policy], NoMatchAction::Deny)).unwrap();
        let unsigned = crate::registry::ReferredArtifact {
            digest: D3.into(),
            artifact_type: Some("sbom/cyclone-dx".into()),
            subject: Some(D1.into()),
            ..Default::default()
        };
        w.source.set_referred(D1, "sbom/cyclone-dx", Ok(vec![unsigned]));
        let d = w.enforcer.decide(&claim("reg.io/probe/app:v1"), SECOND).await;
        assert!(!d.allowed() && d.reason.contains(&format!("{D3}: it has no notation signature")), "{d}");
        let d = w.enforcer.decide(&claim("reg.io/probe/other:v1"), SECOND).await;
        assert!(!d.allowed() && d.reason.contains("no artifact of type sbom/cyclone-dx is attached"), "{d}");
        let down =
            RegistryError::Request { location: "reg.io/probe/broken".into(), message: "connection refused".into() };
        w.source.set_referred(D3, "sbom/cyclone-dx", Err(down));
        let d = w.enforcer.decide(&claim("reg.io/probe/broken:v1"), SECOND).await;
        assert!(!d.allowed() && d.indeterminate && d.reason.contains("connection refused"), "{d}");
    }

    /// #19: a verdict that reads the pod's labels (CEL `object.metadata.labels`, an object
    /// selector) is not served to a pod with other labels from the cache.
    #[tokio::test]
    async fn pod_label_dependent_verdicts_are_cached_per_pod_metadata() {
        let w = world(EnforcerConfig::default());
        w.store.put("reg.io/probe/app:v1", D1);
        let yaml = &format!("apiVersion: policies.kyverno.io/v1\nkind: ImageValidatingPolicy\nmetadata: {{name: p}}\nspec:\n  matchImageReferences: [{{glob: \"reg.io/probe/*\"}}]\n  matchConditions:\n  - {{name: n, expression: \"object.metadata.labels.tier != 'exempt'\"}}\n  attestors:\n  - {}\n  validations:\n  - expression: \"false\"\n", crate::testutil::vectors::notary_attestor("none"));
        let policy = compiled(yaml);
        w.policy_tx.send(PolicySet::assemble(vec![policy], NoMatchAction::Deny)).unwrap();
        let with = |tier: &str, note: &str| {
            let pod = PodMetadata {
                labels: [("tier".to_string(), tier.to_string())].into(),
                annotations: [("note".to_string(), note.to_string())].into(),
            };
            ImageClaim { namespace: Some("default".into()), pod: Some(Arc::new(pod)), ..claim("reg.io/probe/app:v1") }
        };
        assert!(w.enforcer.decide(&with("exempt", "a"), SECOND).await.allowed());
        let d = w.enforcer.decide(&with("web", "a"), SECOND).await;
        assert!(!d.allowed() && !d.cached, "{d}");
        assert!(w.enforcer.decide(&with("exempt", "a"), SECOND).await.cached);
        let other_annotations = w.enforcer.decide(&with("exempt", "b"), SECOND).await;
        assert!(other_annotations.allowed() && !other_annotations.cached, "annotations are part of the key");
    }

    /// #19: a ClusterPolicy rule for Pods with a `selector` applies to the pods whose own
    /// labels it selects, read from the claim on the request path and again by the detached
    /// verification.
    #[tokio::test]
    async fn a_pod_selector_decides_which_pods_a_rule_covers() {
        let w = world(EnforcerConfig::default());
        w.store.put("reg.io/probe/app:v1", D1);
        let yaml = format!(
            "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {{name: p}}\nspec:\n  validationFailureAction: Enforce\n  rules:\n  - name: r\n    \
             match: {{any: [{{resources: {{kinds: [Pod], selector: {{matchLabels: {{verify: 'true'}}}}}}}}]}}\n    \
             verifyImages:\n    - imageReferences: ['reg.io/probe/*']\n      attestors:\n      - entries:\n        \
             - keys: {{publicKeys: {:?}, rekor: {{ignoreTlog: true}}, ctlog: {{ignoreSCT: true}}}}\n",
            crate::testutil::TEST_PUB
        );
        let policy = compiled(&yaml);
        w.policy_tx.send(PolicySet::assemble(vec![policy], NoMatchAction::Allow)).unwrap();
        let labelled = |verify: Option<&str>| {
            let pod = verify.map(|v| {
                Arc::new(PodMetadata { labels: [("verify".to_string(), v.to_string())].into(), ..Default::default() })
            });
            ImageClaim { namespace: Some("default".into()), pod, ..claim("reg.io/probe/app:v1") }
        };
        let d = w.enforcer.decide(&labelled(Some("true")), SECOND).await;
        assert!(!d.allowed() && d.policies.len() == 1, "selected, and unsigned: {d}");
        let d = w.enforcer.decide(&labelled(Some("false")), SECOND).await;
        assert!(d.allowed() && d.policies.is_empty(), "not selected: the no-match action: {d}");
        assert!(!w.enforcer.decide(&labelled(None), SECOND).await.allowed(), "labels unknown: selected");
    }

    /// #19: a verdict that reads the namespace's labels is not served from the cache after
    /// the labels changed (the policy snapshot's hash does not change with labels).
    #[tokio::test]
    async fn label_dependent_verdicts_follow_the_namespace_labels() {
        use crate::policy::labels::NamespaceLabels;
        let w = world(EnforcerConfig::default());
        w.store.put("reg.io/probe/app:v1", D1);
        let yaml = &format!("apiVersion: policies.kyverno.io/v1\nkind: ImageValidatingPolicy\nmetadata: {{name: p}}\nspec:\n  matchImageReferences: [{{glob: \"reg.io/probe/*\"}}]\n  matchConditions:\n  - {{name: n, expression: \"namespaceObject.metadata.labels.env == 'prod'\"}}\n  attestors:\n  - {}\n  validations:\n  - expression: \"false\"\n", crate::testutil::vectors::notary_attestor("none"));
        let policy = compiled(yaml);
        let set = PolicySet::assemble(vec![policy], NoMatchAction::Deny);
        let labelled = |env: &str| {
            Arc::new(NamespaceLabels::listed([("team".to_string(), [("env".to_string(), env.to_string())].into())]))
        };
        let team = ImageClaim { namespace: Some("team".into()), ..claim("reg.io/probe/app:v1") };
        w.policy_tx.send(Arc::clone(&set).with_namespace_labels(labelled("dev"))).unwrap();
        assert!(w.enforcer.decide(&team, SECOND).await.allowed(), "not prod: the condition is false");
        assert!(w.enforcer.decide(&team, SECOND).await.cached);
        w.policy_tx.send(set.with_namespace_labels(labelled("prod"))).unwrap();
        let d = w.enforcer.decide(&team, SECOND).await;
        assert!(!d.allowed() && !d.cached, "relabelled prod: evaluated again and denied: {d}");
    }

    #[tokio::test]
    async fn unloaded_policy_denies_everything() {
        let w = world(EnforcerConfig::default());
        w.store.put("reg.io/probe/app:v1", D1);
        w.policy_tx.send(PolicySet::unavailable("policy file x.yaml: bad".into())).unwrap();
        let d = w.enforcer.decide(&claim("reg.io/probe/app:v1"), SECOND).await;
        assert!(!d.allowed());
        assert!(d.reason.contains("x.yaml"));
    }

    #[tokio::test]
    async fn garbage_names_are_denied_not_panicking() {
        let w = world(EnforcerConfig::default());
        for name in ["", "   ", "UPPER/Case:tag", "a@@b", "sha256:zz", &"x".repeat(5000)] {
            let d = w.enforcer.decide(&claim(name), SECOND).await;
            assert!(!d.allowed(), "{name:?} allowed");
            assert!(!d.reason.is_empty());
        }
    }
}
