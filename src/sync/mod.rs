//! Keeping the published policy snapshot current from every source.
//!
//! - [`PolicyState`]: merges the local policy directory and the cluster's policies into one
//!   immutable [`PolicySet`] and publishes it only when complete and changed.
//! - [`lkg`]: the last-known-good file of cluster policy, so a node enforces from its first
//!   second even when the API server is down.
//! - [`kube`]: the kube-rs watchers on every supported policy kind present in the cluster.
//! - [`events`]: Kubernetes Events on denial (optional).
//!
//! Nothing is lost on bad input: a local directory that stops loading keeps its last good
//! policies, a cluster object that stops compiling keeps its last good version.

pub mod events;
pub mod kube;
pub mod lkg;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;

use crate::held::Held;
use crate::policy::labels::NamespaceLabels;
use crate::policy::normal::NormalPolicy;
use crate::policy::{local, NoMatchAction, Policy, PolicySet};

/// The cluster's contribution, as the watcher (or the last-known-good file) reports it.
#[derive(Debug, Clone)]
pub struct ClusterPolicies {
    pub policies: Vec<Policy>,
    /// Normalised, with Secret keys inlined: what the last-known-good file stores.
    pub normal: Vec<NormalPolicy>,
    pub origin: ClusterOrigin,
    /// The cluster's namespace labels when this was sent (unknown from the last-known-good
    /// file): swapped in whole with the policies.
    pub namespace_labels: Arc<NamespaceLabels>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterOrigin {
    /// Read at boot from the last-known-good file.
    LastKnownGood,
    /// Every watched kind has been listed since this process started.
    Live,
}

#[derive(Debug)]
enum Cluster {
    /// No cluster source configured.
    Disabled,
    /// Configured, never synced, and no last-known-good file: unmatched images are denied
    /// whatever the no-match setting, since the missing policies might have covered them.
    Waiting,
    Ready(ClusterPolicies),
}

/// Merges the sources and publishes snapshots.
pub struct PolicyState {
    dir: PathBuf,
    node_no_match: NoMatchAction,
    /// Last good local policies; `Err` until the directory has loaded once.
    local: Result<Vec<Policy>, String>,
    cluster: Cluster,
    /// Last reported local problem, so each distinct problem is logged once.
    last_local_report: Option<String>,
    /// Local and cluster policies with the same name, as last logged.
    reported_clashes: Vec<String>,
    /// KMS keys of local policies as held now: every lookup registers its URI, and the
    /// daemon's refresh task resolves them; the next reload compiles with what it got.
    held: Arc<Held>,
    tx: watch::Sender<Arc<PolicySet>>,
}

impl PolicyState {
    /// Load what is available now and publish the first snapshot. With no valid local
    /// policy the node starts fail-closed: every image is denied, with the reason.
    pub fn start(
        dir: PathBuf,
        node_no_match: NoMatchAction,
        cluster: Option<Option<ClusterPolicies>>,
    ) -> (Self, watch::Receiver<Arc<PolicySet>>) {
        Self::start_with_held(dir, node_no_match, cluster, Arc::new(Held::offline()))
    }

    /// [`PolicyState::start`] with local policies' KMS keys and TUF trust roots from `held`.
    pub fn start_with_held(
        dir: PathBuf,
        node_no_match: NoMatchAction,
        cluster: Option<Option<ClusterPolicies>>,
        held: Arc<Held>,
    ) -> (Self, watch::Receiver<Arc<PolicySet>>) {
        let (tx, rx) = watch::channel(PolicySet::unavailable("policy not loaded yet".into()));
        let cluster = match cluster {
            None => Cluster::Disabled,
            Some(None) => Cluster::Waiting,
            Some(Some(c)) => Cluster::Ready(c),
        };
        let mut state = Self {
            dir,
            node_no_match,
            local: Err(String::new()),
            cluster,
            last_local_report: None,
            reported_clashes: Vec::new(),
            held,
            tx,
        };
        state.reload_local();
        (state, rx)
    }

    /// Re-read the policy directory; a failure keeps the last good local policies.
    pub fn reload_local(&mut self) {
        match local::load_dir_with(&self.dir, &self.held) {
            Ok(loaded) => {
                let report = loaded.warnings.join("\n");
                if self.last_local_report.as_deref() != Some(report.as_str()) {
                    for w in &loaded.warnings {
                        tracing::warn!(dir = %self.dir.display(), warning = %w, "policy part fails closed on this node");
                    }
                    for n in &loaded.notes {
                        tracing::info!(dir = %self.dir.display(), note = %n, "policy note");
                    }
                    self.last_local_report = Some(report);
                }
                self.local = Ok(loaded.policies);
            }
            Err(e) => {
                let text = e.to_string();
                if self.last_local_report.as_deref() != Some(text.as_str()) {
                    if self.local.is_ok() {
                        tracing::error!(dir = %self.dir.display(), error = %text, "policy update rejected; keeping the previous policy");
                    } else {
                        tracing::error!(dir = %self.dir.display(), error = %text, "no valid policy; denying every image until fixed");
                    }
                    self.last_local_report = Some(text.clone());
                }
                if self.local.is_err() {
                    self.local = Err(text);
                } else {
                    crate::metrics::metrics().policy_rejected();
                }
            }
        }
        self.publish();
    }

    /// Apply a reloaded config's policy settings.
    pub fn set_node_settings(&mut self, dir: PathBuf, node_no_match: NoMatchAction) {
        if dir != self.dir || node_no_match != self.node_no_match {
            tracing::info!(dir = %dir.display(), no_match = %node_no_match, "policy settings changed by config reload");
            self.dir = dir;
            self.node_no_match = node_no_match;
            self.last_local_report = None;
            self.reload_local();
        }
    }

    /// Take a new cluster contribution (always complete: the watcher sends whole sets).
    pub fn set_cluster(&mut self, c: ClusterPolicies) {
        self.cluster = Cluster::Ready(c);
        self.publish();
    }

    fn publish(&mut self) {
        let mut clashes = Vec::new();
        let set = match (&self.local, &self.cluster) {
            (Err(e), _) => PolicySet::unavailable(e.clone()),
            (Ok(local), Cluster::Disabled) => PolicySet::assemble(local.clone(), self.node_no_match),
            // Whatever a local policy's noMatchAction says: the missing cluster policies
            // might have covered the image.
            (Ok(local), Cluster::Waiting) => PolicySet::assemble_with(local.clone(), NoMatchAction::Deny),
            (Ok(local), Cluster::Ready(c)) => {
                let (all, found) = merge(local, &c.policies);
                clashes = found;
                PolicySet::assemble(all, self.node_no_match).with_namespace_labels(Arc::clone(&c.namespace_labels))
            }
        };
        // Publishing runs at every poll of the directory: a clash is logged when it
        // appears, not every two seconds while it lasts.
        for reason in clashes.iter().filter(|r| !self.reported_clashes.contains(r)) {
            tracing::error!("{reason}");
        }
        self.reported_clashes = clashes;
        let labels_changed = set.namespace_labels != self.tx.borrow().namespace_labels;
        if labels_changed && set.hash == self.tx.borrow().hash {
            // Labels alone: matching reads them per request, no log line per namespace event.
            self.tx.send_replace(set);
            return;
        }
        if set.hash != self.tx.borrow().hash || set.load_error != self.tx.borrow().load_error {
            let cluster = match &self.cluster {
                Cluster::Disabled => "disabled",
                Cluster::Waiting => "waiting for first sync",
                Cluster::Ready(c) if c.origin == ClusterOrigin::LastKnownGood => "last-known-good",
                Cluster::Ready(_) => "live",
            };
            tracing::info!(policies = set.policies.len(), hash = %set.hash, no_match = %set.no_match, cluster,
                "policy snapshot published");
            crate::metrics::metrics().policy_snapshot(set.policies.len());
            self.tx.send_replace(set);
        }
    }
}

/// Local policies, then the cluster's. A cluster policy named like a local one is refused:
/// it stays in force only as a stand-in that denies what it covers and names the clash, so
/// neither a rename nor a collision can loosen the node.
/// Returns the merged policies and the clashes, for the caller to report once.
fn merge(local: &[Policy], cluster: &[Policy]) -> (Vec<Policy>, Vec<String>) {
    let mut all = local.to_vec();
    let mut clashes = Vec::new();
    for p in cluster {
        if local.iter().any(|l| l.name == p.name) {
            let reason = format!(
                "policy {:?} is defined both in the local policy directory and in the cluster; rename one",
                p.name
            );
            clashes.push(reason.clone());
            all.push(p.clone().fail_closed(reason));
        } else {
            all.push(p.clone());
        }
    }
    (all, clashes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Authority, AuthorityKind, Mode};

    const GOOD: &str = "apiVersion: signet.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {name: p}\nspec:\n  images: [{glob: \"reg.io/**\"}]\n  authorities: [{static: {action: pass}}]\n";

    fn cluster_policy(name: &str) -> ClusterPolicies {
        let p = Policy::any_of(
            name,
            vec![crate::policy::matching::ImageGlob::new("cluster.io/**").unwrap()],
            vec![Authority { name: "a".into(), kind: AuthorityKind::StaticPass }],
            Mode::Enforce,
        );
        ClusterPolicies {
            policies: vec![p],
            normal: vec![],
            origin: ClusterOrigin::Live,
            namespace_labels: Arc::default(),
        }
    }

    #[test]
    fn bad_update_keeps_the_last_good_policy() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("p.yaml"), GOOD).unwrap();
        let (mut s, rx) = PolicyState::start(d.path().into(), NoMatchAction::Deny, None);
        let good_hash = rx.borrow().hash.clone();
        assert!(rx.borrow().load_error.is_none());
        std::fs::write(d.path().join("p.yaml"), "spec: [").unwrap();
        s.reload_local();
        assert_eq!(rx.borrow().hash, good_hash);
        assert!(s.last_local_report.as_deref().unwrap().contains("p.yaml"));
        std::fs::write(d.path().join("p.yaml"), GOOD.replace("reg.io", "new.io")).unwrap();
        s.reload_local();
        assert_ne!(rx.borrow().hash, good_hash);
    }

    #[test]
    fn boot_without_valid_policy_is_fail_closed() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("p.yaml"), "nonsense: [").unwrap();
        let (_s, rx) = PolicyState::start(d.path().into(), NoMatchAction::Allow, None);
        assert!(rx.borrow().load_error.as_deref().unwrap().contains("p.yaml"));
    }

    #[test]
    fn boot_enforces_the_last_known_good_cluster_policy() {
        use crate::policy::normal::{Check, NormalAuthority, StaticAction};
        use crate::testutil::normal_policy;
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("p.yaml"), GOOD).unwrap();
        let lkg_path = d.path().join("state/cluster-policy.json");
        let normal = normal_policy(
            "from-cluster",
            "cluster.io/**",
            vec![NormalAuthority::new("a", Check::Static(StaticAction::Fail))],
        );
        lkg::store(&lkg_path, &[normal]).unwrap();
        let lkg = kube::load_last_known_good(&lkg_path);
        assert_eq!(lkg.as_ref().map(|c| c.origin), Some(ClusterOrigin::LastKnownGood));
        let (_s, rx) = PolicyState::start(d.path().into(), NoMatchAction::Allow, Some(lkg));
        let set = rx.borrow().clone();
        let names: Vec<_> = set.policies.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["p", "from-cluster"]);
        assert_eq!(set.no_match, NoMatchAction::Allow, "a snapshot counts as synced");
        // A corrupt snapshot is ignored (reported), which leaves the node waiting: fail closed.
        std::fs::write(&lkg_path, "{").unwrap();
        assert!(kube::load_last_known_good(&lkg_path).is_none());
    }

    /// #18: a KMS key resolved at sync is inlined into the last-known-good file, so a node
    /// that boots with the provider unreachable still enforces that key.
    #[test]
    fn a_kms_key_in_the_last_known_good_file_enforces_without_the_provider() {
        use crate::kms::ResolvedKey;
        use crate::policy::normal::{Check, KeyCheck, KeyRef, KmsKey, NormalAuthority};
        use crate::policy::Signer;
        use crate::testutil::normal_policy;
        use crate::testutil::TEST_PUB;
        let d = tempfile::tempdir().unwrap();
        let uri = "awskms:///alias/signer";
        let mut p = normal_policy(
            "kms",
            "cluster.io/**",
            vec![NormalAuthority::new(
                "a",
                Check::Key(KeyCheck::new(KeyRef::Kms(KmsKey::parse(uri, "key.kms").unwrap()), None)),
            )],
        );
        let pinned = std::collections::BTreeMap::from([(
            uri.to_string(),
            ResolvedKey {
                pem: TEST_PUB.into(),
                version: "arn:k".into(),
                signing: Default::default(),
                source: "s".into(),
            },
        )]);
        p.inline_held(&Held::new(crate::kms::Resolver::new(None, pinned, None), crate::tuf::Store::offline()));
        let path = d.path().join("cluster-policy.json");
        lkg::store(&path, &[p]).unwrap();
        let c = kube::load_last_known_good(&path).unwrap();
        let kind = &c.policies[0].requirements[0].authorities[0].kind;
        assert!(matches!(kind, AuthorityKind::Signed(by) if matches!(by.signer, Signer::Key(_))), "{kind:?}");
    }

    /// Regression (#13.9): while waiting for the first sync, a local policy's
    /// `noMatchAction: allow` does not loosen the node.
    #[test]
    fn waiting_for_the_cluster_denies_unmatched_even_if_a_local_policy_says_allow() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("p.yaml"), GOOD.replace("spec:\n", "spec:\n  noMatchAction: allow\n")).unwrap();
        let (mut s, rx) = PolicyState::start(d.path().into(), NoMatchAction::Allow, Some(None));
        assert!(rx.borrow().load_error.is_none(), "{:?}", rx.borrow().load_error);
        assert_eq!(rx.borrow().no_match, NoMatchAction::Deny);
        s.set_cluster(cluster_policy("c"));
        assert_eq!(rx.borrow().no_match, NoMatchAction::Allow, "once synced, the policy's action applies");
    }

    /// A clash is logged when it appears, not again at every poll of the directory while it
    /// lasts (publishing runs every two seconds).
    #[test]
    fn a_name_clash_is_logged_once_not_at_every_poll() {
        #[derive(Clone, Default)]
        struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Captured {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
        tracing::subscriber::with_default(subscriber, || {
            let d = tempfile::tempdir().unwrap();
            std::fs::write(d.path().join("p.yaml"), GOOD).unwrap();
            let (mut s, _rx) = PolicyState::start(d.path().into(), NoMatchAction::Allow, Some(None));
            s.set_cluster(cluster_policy("p"));
            for _ in 0..3 {
                s.reload_local();
            }
        });
        let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.matches("is defined both in the local policy directory").count(), 1, "{text}");
    }

    /// Regression (#13.4): a cluster policy named like a local one is refused with a clear
    /// reason, and what it covers is denied rather than merged under one name.
    #[test]
    fn a_cluster_policy_named_like_a_local_one_is_refused_closed() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("p.yaml"), GOOD).unwrap();
        let (mut s, rx) = PolicyState::start(d.path().into(), NoMatchAction::Allow, Some(None));
        s.set_cluster(cluster_policy("p"));
        let set = rx.borrow().clone();
        assert_eq!(set.policies.len(), 2);
        let clash = &set.policies[1];
        assert!(matches!(&clash.requirements[0].authorities[0].kind,
            AuthorityKind::Unsupported(r) if r.contains("both in the local policy directory and in the cluster")));
        assert_ne!(set.policies[0].identity(), clash.identity());
    }

    #[test]
    fn cluster_waiting_denies_unmatched_then_merges_when_synced() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("p.yaml"), GOOD).unwrap();
        let (mut s, rx) = PolicyState::start(d.path().into(), NoMatchAction::Allow, Some(None));
        assert_eq!(rx.borrow().no_match, NoMatchAction::Deny);
        s.set_cluster(cluster_policy("c"));
        let set = rx.borrow().clone();
        assert_eq!(set.no_match, NoMatchAction::Allow);
        let names: Vec<_> = set.policies.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["p", "c"]);
    }
}
