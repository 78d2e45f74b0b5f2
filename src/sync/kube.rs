//! Watching the cluster's policy objects with kube-rs.
//!
//! Every supported kind that the API server serves is watched (list + watch, bookmarks,
//! relist after 410 Gone, reconnect with backoff: kube-rs's watcher does these). A kind's
//! objects are replaced as a whole at the end of each (re)list, so an object deleted while
//! the watch was down does not linger. After every kind has been listed once, each change
//! produces one complete [`ClusterPolicies`] for [`super::PolicyState`], and the
//! last-known-good file is rewritten when its content changed.
//!
//! Namespaces are watched too, for their labels only (metadata), and published as one
//! immutable [`NamespaceLabels`] snapshot with the policies: namespace selectors and CEL's
//! `namespaceObject` read it. Until the namespaces are listed, or where the watch is not
//! allowed, the labels are unknown and selectors apply to every namespace.
//!
//! Per object, nothing is lost: an object that stops importing keeps its last good version
//! in force, and the error is logged once and, for signet's own kind, written to the
//! object's status under this node's name. Access is read-only except that status entry.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::{stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use super::{lkg, ClusterOrigin, ClusterPolicies};
use crate::held::Held;
use crate::policy::compile::{Compiled, KeySource, KeyUnavailable, WithHeld};
use crate::policy::importers::{self, Kind, KINDS};
use crate::policy::labels::{Labels, NamespaceLabels};
use crate::policy::normal::{KeyRef, NormalPolicy, Pattern};
use crate::registry::auth::Credentials;

/// How often the set of served kinds is looked at again (a CRD installed later is picked
/// up), and Secrets are re-read (key rotation).
pub const REFRESH: Duration = Duration::from_secs(300);
/// A Secret read that takes longer is treated as unavailable for this round.
const SECRET_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("kubernetes client: {0}")]
    Client(#[from] kube::Error),
}

#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// Name this node reports status under.
    pub node_name: String,
    /// Where the last-known-good snapshot lives.
    pub lkg_path: PathBuf,
    /// Write per-node status into signet's own ClusterImagePolicy objects.
    pub report_status: bool,
    /// Where registry credentials from the policies' pull Secrets go (the registry client
    /// reads them); never persisted.
    pub pull_credentials: Arc<RwLock<Credentials>>,
    /// How often served kinds are discovered again and Secrets re-read ([`REFRESH`]).
    pub refresh: Duration,
    /// KMS keys of cluster policies; resolved at each sync and inlined into the
    /// last-known-good file.
    pub held: Arc<Held>,
}

/// Key of one watched object.
type ObjectKey = (usize, Option<String>, String);

/// What one object currently contributes.
struct Entry {
    generation: i64,
    /// The last version that imported cleanly; kept when a later version does not.
    last_good: Option<Vec<NormalPolicy>>,
    /// The current version's problem, if any.
    error: Option<String>,
}

/// The watcher state: objects by kind, which kinds have been listed, what was last sent.
struct Watched {
    objects: BTreeMap<ObjectKey, Entry>,
    /// Per kind, objects of a (re)list in progress.
    relisting: HashMap<usize, BTreeMap<ObjectKey, Entry>>,
    listed: BTreeSet<usize>,
    serving: Vec<usize>,
    last_sent: Option<Vec<NormalPolicy>>,
    /// Status last written per object, to write only on change.
    reported: HashMap<ObjectKey, (i64, bool, String)>,
    /// Secrets referenced by the current policies, as last read.
    secrets: Secrets,
    namespaces: NamespaceWatch,
    /// The contribution last sent, re-sent with new namespace labels.
    last_contribution: Option<ClusterPolicies>,
    /// Compile warnings already logged, per policy version.
    warned: Warned,
}

/// The cluster's namespaces and their labels, as listed and watched.
#[derive(Default)]
struct NamespaceWatch {
    /// `None` until the first list completes: labels unknown.
    current: Option<BTreeMap<String, Labels>>,
    /// Namespaces of a (re)list in progress.
    relisting: Option<BTreeMap<String, Labels>>,
    /// What the last contribution carried; replaced whole on every change.
    snapshot: Arc<NamespaceLabels>,
    /// The watch is failing (RBAC not granted?): said once until it works again.
    failing: bool,
}

impl NamespaceWatch {
    /// Fold one event; true when the published snapshot changed.
    /// Labels unknown again (the watch failed); true if that changes the snapshot.
    fn forget(&mut self) -> bool {
        self.current = None;
        self.relisting = None;
        let changed = self.snapshot.is_known();
        self.snapshot = Arc::new(NamespaceLabels::unknown());
        changed
    }

    fn apply(&mut self, ev: Event<PartialObjectMeta<Namespace>>) -> bool {
        let entry = |m: PartialObjectMeta<Namespace>| {
            (m.metadata.name.unwrap_or_default(), m.metadata.labels.unwrap_or_default().into_iter().collect::<Labels>())
        };
        match ev {
            Event::Init => {
                self.relisting = Some(BTreeMap::new());
                return false;
            }
            Event::InitApply(m) => {
                let (name, labels) = entry(m);
                self.relisting.get_or_insert_with(BTreeMap::new).insert(name, labels);
                return false;
            }
            Event::InitDone => self.current = Some(self.relisting.take().unwrap_or_default()),
            Event::Apply(m) => {
                let Some(current) = &mut self.current else { return false };
                let (name, labels) = entry(m);
                current.insert(name, labels);
            }
            Event::Delete(m) => {
                let Some(current) = &mut self.current else { return false };
                current.remove(&entry(m).0);
            }
        }
        let next = NamespaceLabels::listed(self.current.clone().unwrap_or_default());
        if next == *self.snapshot {
            return false;
        }
        self.snapshot = Arc::new(next);
        true
    }
}

/// Which compile warnings were logged, by policy (name and origin) and version: a
/// warning is logged once per version of its object, not at every publish.
#[derive(Default)]
struct Warned(HashMap<(String, String), (NormalPolicy, BTreeSet<String>)>);

impl Warned {
    /// The warnings of `p` not yet logged for this version of it; remembers them.
    fn fresh(&mut self, p: &NormalPolicy, warnings: &[String]) -> Vec<String> {
        let entry = self.0.entry((p.name.clone(), p.origin.clone())).or_insert_with(|| (p.clone(), BTreeSet::new()));
        if entry.0 != *p {
            *entry = (p.clone(), BTreeSet::new());
        }
        warnings.iter().filter(|w| entry.1.insert((*w).clone())).cloned().collect()
    }

    /// Forget policies no longer present, so a deleted object's memory goes with it.
    fn keep_only(&mut self, present: &BTreeSet<(String, String)>) {
        self.0.retain(|k, _| present.contains(k));
    }
}

/// Run until `shutdown`: discover, watch, publish. Errors talking to the API server are
/// retried; only a closed `tx` ends it early.
pub async fn run(
    client: Client,
    config: ClusterConfig,
    tx: mpsc::Sender<ClusterPolicies>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut state = Watched {
        objects: BTreeMap::new(),
        relisting: HashMap::new(),
        listed: BTreeSet::new(),
        serving: Vec::new(),
        last_sent: None,
        reported: HashMap::new(),
        secrets: Secrets(HashMap::new()),
        namespaces: NamespaceWatch::default(),
        last_contribution: None,
        warned: Warned::default(),
    };
    // Namespaces are watched for the whole run, across rediscoveries of the policy kinds.
    // Metadata only: labels are all the node needs of a namespace.
    let namespace_api: Api<PartialObjectMeta<Namespace>> = Api::all(client.clone());
    let mut namespace_events = watcher::watcher(namespace_api, watcher::Config::default()).default_backoff().boxed();
    let mut namespaces_open = true;
    let mut backoff = Duration::from_millis(500);
    loop {
        let serving = match discover(&client).await {
            Ok(s) => {
                backoff = Duration::from_millis(500);
                s
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_ms = backoff.as_millis() as u64, "policy kinds could not be discovered");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        // A kind missing from discovery may be an API server that lags (a 404 for a
        // group it serves): its policies stay until its CRD is positively gone.
        let vanished: BTreeSet<usize> = state.objects.keys().map(|k| k.0).filter(|k| !serving.contains(k)).collect();
        for kind in vanished {
            // The same objects may now be watched under another version of the kind.
            let other_version =
                serving.iter().any(|&j| KINDS[j].group == KINDS[kind].group && KINDS[j].kind == KINDS[kind].kind);
            if other_version || crd_gone(&client, &KINDS[kind]).await {
                tracing::info!(
                    kind = KINDS[kind].kind,
                    group = KINDS[kind].group,
                    "policy kind removed from the cluster; its policies are no longer enforced"
                );
                state.objects.retain(|k, _| k.0 != kind);
            } else {
                tracing::warn!(
                    kind = KINDS[kind].kind,
                    group = KINDS[kind].group,
                    "policy kind missing from discovery but its CRD is not known to be gone; keeping its policies"
                );
            }
        }
        if serving != state.serving {
            let names: Vec<String> =
                serving.iter().map(|&i| format!("{} {}", KINDS[i].api_version(), KINDS[i].kind)).collect();
            tracing::info!(kinds = ?names, "watching policy kinds");
            state.listed.retain(|k| serving.contains(k));
            state.relisting.clear();
            state.serving = serving.clone();
        }
        if serving.is_empty() {
            // Nothing to wait for: an empty cluster contribution is complete.
            publish(&client, &config, &mut state, &tx).await;
        }
        let streams = serving.iter().map(|&i| {
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &api_resource(&KINDS[i]));
            watcher::watcher(api, watcher::Config::default()).default_backoff().map(move |e| (i, e)).boxed()
        });
        let mut events = stream::select_all(streams);
        let refresh = tokio::time::sleep(config.refresh);
        tokio::pin!(refresh);
        let mut held_changes = config.held.changes();
        loop {
            tokio::select! {
                // A KMS key resolved (or refused) since the last sync: compile with it now.
                Ok(()) = held_changes.changed() => publish(&client, &config, &mut state, &tx).await,
                ev = namespace_events.next(), if namespaces_open => match ev {
                    Some(Ok(ev)) => {
                        state.namespaces.failing = false;
                        if state.namespaces.apply(ev) {
                            publish_namespaces(&mut state, &tx).await;
                        }
                    }
                    Some(Err(e)) => {
                        if !std::mem::replace(&mut state.namespaces.failing, true) {
                            tracing::warn!(error = %e,
                                "namespaces cannot be watched; namespace selectors apply to every namespace until they can");
                            // What was listed goes stale from here (a relabel would go unseen):
                            // selectors apply until a fresh list says otherwise. A resumed watch
                            // says nothing until the next change, so a fresh watcher lists again.
                            if state.namespaces.forget() {
                                publish_namespaces(&mut state, &tx).await;
                            }
                            namespace_events = watcher::watcher(Api::all(client.clone()), watcher::Config::default())
                                .default_backoff()
                                .boxed();
                        }
                    }
                    None => namespaces_open = false,
                },
                ev = events.next(), if !serving.is_empty() => {
                    let Some((kind, ev)) = ev else { break };
                    match ev {
                        Ok(ev) => {
                            if apply_event(&mut state, kind, ev) {
                                publish(&client, &config, &mut state, &tx).await;
                            }
                        }
                        Err(e) => tracing::warn!(kind = KINDS[kind].kind, group = KINDS[kind].group, error = %e,
                            "policy watch failed; retrying"),
                    }
                }
                _ = &mut refresh => {
                    // Re-read Secrets even when no object changed (key rotation).
                    state.secrets.0.clear();
                    state.last_sent = None;
                    publish(&client, &config, &mut state, &tx).await;
                    // Restart the watches only when the set of served kinds changed (a CRD
                    // installed or removed); otherwise keep them, sparing the API server a relist.
                    match discover(&client).await {
                        // A kind kept after vanishing is looked at again on every round.
                        Ok(now) if now == serving && !state.objects.keys().any(|k| !serving.contains(&k.0)) => {
                            refresh.as_mut().reset(tokio::time::Instant::now() + config.refresh)
                        }
                        _ => break,
                    }
                }
                _ = shutdown.changed() => return,
            }
            if tx.is_closed() {
                return;
            }
        }
    }
}

fn api_resource(k: &Kind) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(k.group, k.version, k.kind), k.plural)
}

/// Which supported kinds the API server serves now. Where one group serves two versions
/// of a kind (policy-controller v1beta1 and v1alpha1), only the first listed is watched:
/// they are the same objects.
async fn discover(client: &Client) -> Result<Vec<usize>, SyncError> {
    let mut out = Vec::new();
    for (i, k) in KINDS.iter().enumerate() {
        if out.iter().any(|&j: &usize| KINDS[j].group == k.group && KINDS[j].kind == k.kind) {
            continue;
        }
        match client.list_api_group_resources(&k.api_version()).await {
            Ok(list) => {
                if list.resources.iter().any(|r| r.name == k.plural) {
                    out.push(i);
                }
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// Whether a policy kind's CustomResourceDefinition is positively absent (404). Any other
/// answer, including no permission to look, keeps the kind's policies.
async fn crd_gone(client: &Client, k: &Kind) -> bool {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    matches!(api.get_opt(&format!("{}.{}", k.plural, k.group)).await, Ok(None))
}

/// Fold one watch event into the state; true when the published contribution may change.
fn apply_event(state: &mut Watched, kind: usize, ev: Event<DynamicObject>) -> bool {
    match ev {
        Event::Init => {
            state.relisting.insert(kind, BTreeMap::new());
            false
        }
        Event::InitApply(obj) => {
            let key = object_key(kind, &obj);
            let previous = state.objects.get(&key).and_then(|e| e.last_good.clone());
            let entry = import_object(kind, &obj, previous);
            state.relisting.entry(kind).or_default().insert(key, entry);
            false
        }
        Event::InitDone => {
            let fresh = state.relisting.remove(&kind).unwrap_or_default();
            state.objects.retain(|k, _| k.0 != kind);
            state.objects.extend(fresh);
            state.listed.insert(kind);
            true
        }
        Event::Apply(obj) => {
            let key = object_key(kind, &obj);
            let previous = state.objects.get(&key).and_then(|e| e.last_good.clone());
            let entry = import_object(kind, &obj, previous);
            state.objects.insert(key, entry);
            true
        }
        Event::Delete(obj) => {
            state.objects.remove(&object_key(kind, &obj));
            true
        }
    }
}

fn object_key(kind: usize, obj: &DynamicObject) -> ObjectKey {
    (kind, obj.metadata.namespace.clone(), obj.metadata.name.clone().unwrap_or_default())
}

/// Import one object. A failure keeps `previous` (the last good version) in force.
fn import_object(kind: usize, obj: &DynamicObject, previous: Option<Vec<NormalPolicy>>) -> Entry {
    let k = &KINDS[kind];
    let mut value = serde_json::to_value(obj).unwrap_or(Value::Null);
    // List items may omit their type; the watch knows it.
    value["apiVersion"] = json!(k.api_version());
    value["kind"] = json!(k.kind);
    let generation = obj.metadata.generation.unwrap_or(0);
    let name = obj.metadata.name.clone().unwrap_or_default();
    match importers::import(&value) {
        Ok(imported) => {
            for n in &imported.notes {
                tracing::info!(kind = k.kind, group = k.group, object = %name, note = %n, "policy note");
            }
            Entry { generation, last_good: Some(imported.policies), error: None }
        }
        Err(errors) => {
            let error = errors.join("; ");
            let kept = if previous.is_some() { "keeping its previous version" } else { "it is not enforced" };
            crate::metrics::metrics().policy_rejected();
            tracing::error!(kind = k.kind, group = k.group, object = %name, error = %error,
                "policy object rejected; {kept}");
            Entry { generation, last_good: previous, error: Some(error) }
        }
    }
}

/// When every served kind has been listed: resolve Secrets, compile, send, persist, report.
async fn publish(client: &Client, config: &ClusterConfig, state: &mut Watched, tx: &mpsc::Sender<ClusterPolicies>) {
    if state.serving.iter().any(|k| !state.listed.contains(k)) {
        return;
    }
    let normal: Vec<NormalPolicy> = state.objects.values().filter_map(|e| e.last_good.clone()).flatten().collect();
    fetch_secrets(client, &normal, &mut state.secrets).await;
    let secrets = &state.secrets;
    publish_pull_credentials(&normal, secrets, &config.pull_credentials);
    // KMS keys are asked for here, at sync, never while a container waits; a provider that
    // is down costs this sync its bounded retries, then its failure is held briefly.
    config.held.kms.refresh(NormalPolicy::kms_uris(&normal)).await;
    // TUF repositories are fetched beside the sync, not in it: a walk of several files may
    // take up to a minute per mirror, and the store's change notice brings the sync back.
    let tuf = Arc::clone(&config.held.tuf);
    let repos = NormalPolicy::tuf_repos(&normal);
    tokio::spawn(async move { tuf.refresh(repos).await });
    let keys = WithHeld { keys: secrets, held: &config.held };
    let mut inlined = Vec::new();
    let mut policies = Vec::new();
    let mut problems: HashMap<String, Vec<String>> = HashMap::new();
    state.warned.keep_only(&normal.iter().map(|p| (p.name.clone(), p.origin.clone())).collect());
    for p in normal {
        let mut p = inline_secrets(p, secrets);
        p.inline_held(&config.held);
        let v = compile_or_keep(p, state.last_sent.as_deref(), &keys, &mut state.warned);
        problems.entry(v.normal.origin.clone()).or_default().extend(v.problems);
        if let Some(policy) = v.policy {
            policies.push(policy);
            inlined.push(v.normal);
        }
    }
    if state.last_sent.as_ref() != Some(&inlined) {
        if let Err(e) = lkg::store(&config.lkg_path, &inlined) {
            tracing::error!(error = %e, "last-known-good snapshot not written; the previous one stays");
        }
        let c = ClusterPolicies {
            policies,
            normal: inlined.clone(),
            origin: ClusterOrigin::Live,
            namespace_labels: Arc::clone(&state.namespaces.snapshot),
        };
        let _ = tx.send(c.clone()).await;
        state.last_contribution = Some(c);
        state.last_sent = Some(inlined);
    }
    // Even when the enforced set did not change (a rejected update keeps the old version),
    // the object's author needs to see the rejection.
    if config.report_status {
        report_status(client, config, state, &problems).await;
    }
}

/// Re-send the last contribution with the namespace labels as they are now. Before the
/// first contribution there is nothing to send: it will carry them.
async fn publish_namespaces(state: &mut Watched, tx: &mpsc::Sender<ClusterPolicies>) {
    let Some(c) = &mut state.last_contribution else { return };
    c.namespace_labels = Arc::clone(&state.namespaces.snapshot);
    let _ = tx.send(c.clone()).await;
}

/// What one cluster policy enforces on this node.
struct NodeVersion {
    /// `None` only when the object's own image patterns are invalid (it covers nothing).
    policy: Option<crate::policy::Policy>,
    /// The normal form of what is enforced, for the last-known-good file.
    normal: NormalPolicy,
    /// For the object's status.
    problems: Vec<String>,
}

/// Compile errors as text for this file's status and log messages (a seam until this file
/// speaks [`crate::policy::compile::CompileError`]).
fn compile(p: &NormalPolicy, keys: &dyn KeySource) -> Result<Compiled, Vec<String>> {
    crate::policy::compile::compile(p, keys).map_err(|errors| errors.iter().map(ToString::to_string).collect())
}

/// Compile one policy for this node. A policy that does not compile here is never
/// dropped: the version last enforced stays in force, or, for a first version, a stand-in
/// that denies every image it covers with the reason ([`NormalPolicy::fail_closed`]).
fn compile_or_keep(
    p: NormalPolicy,
    last_sent: Option<&[NormalPolicy]>,
    keys: &dyn KeySource,
    warned: &mut Warned,
) -> NodeVersion {
    let errors = match compile(&p, keys) {
        Ok(c) => {
            for w in warned.fresh(&p, &c.warnings) {
                tracing::warn!(policy = %p.name, warning = %w, "policy part fails closed on this node");
            }
            return NodeVersion { policy: Some(c.policy), normal: p, problems: c.warnings };
        }
        Err(errors) => errors,
    };
    let reason = errors.join("; ");
    // Said once per version of the object, like the warnings.
    let first = !warned.fresh(&p, std::slice::from_ref(&reason)).is_empty();
    let previous = last_sent.into_iter().flatten().find(|q| q.name == p.name && q.origin == p.origin);
    if let Some(prev) = previous.filter(|q| **q != p && !q.is_stand_in()) {
        if let Ok(c) = compile(prev, keys) {
            if first {
                tracing::error!(policy = %p.name, error = %reason,
                    "policy does not compile on this node; keeping its previous version");
            }
            let mut problems = errors;
            problems.push("the previous version stays in force on this node".into());
            return NodeVersion { policy: Some(c.policy), normal: prev.clone(), problems };
        }
    }
    let stand_in = p.fail_closed(&reason);
    match compile(&stand_in, keys) {
        Ok(c) => {
            if first {
                tracing::error!(policy = %p.name, error = %reason,
                    "policy does not compile on this node; every image it covers is denied until fixed");
            }
            let mut problems = errors;
            problems.push("every image it covers is denied on this node until it compiles".into());
            NodeVersion { policy: Some(c.policy), normal: stand_in, problems }
        }
        Err(pattern_errors) => {
            // Some image pattern or expression does not compile here (one the peer accepts
            // but the node cannot read, a pattern list with one bad entry): which images it
            // covers is unknown, so the stand-in covers every image in the policy's scope.
            let mut everything = stand_in;
            everything.images = vec![Pattern::Glob("**".into())];
            everything.exclude_images.clear();
            match compile(&everything, keys) {
                Ok(c) => {
                    if first {
                        tracing::error!(policy = %p.name, errors = ?pattern_errors,
                            "policy image patterns do not compile on this node; every image in its scope is denied until fixed");
                    }
                    let mut problems = errors;
                    problems.extend(pattern_errors);
                    problems.push("every image in its scope is denied on this node until its patterns compile".into());
                    NodeVersion { policy: Some(c.policy), normal: everything, problems }
                }
                Err(e) => {
                    if first {
                        tracing::error!(policy = %p.name, errors = ?e, "policy cannot be enforced even as a stand-in");
                    }
                    NodeVersion { policy: None, normal: p, problems: errors }
                }
            }
        }
    }
}

/// Secrets referenced by policies, as last read. Missing or unreadable ones are absent.
struct Secrets(HashMap<(String, String), BTreeMap<String, String>>);

impl KeySource for Secrets {
    fn secret(&self, namespace: &str, name: &str, key: Option<&str>) -> Result<Option<String>, KeyUnavailable> {
        let Some(data) = self.0.get(&(namespace.to_string(), name.to_string())) else { return Ok(None) };
        match key {
            Some(k) => Ok(data.get(k).cloned()),
            None if data.len() == 1 => Ok(data.values().next().cloned()),
            None => Err(KeyUnavailable::AmbiguousSecret {
                namespace: namespace.to_string(),
                name: name.to_string(),
                entries: data.len(),
            }),
        }
    }
    fn base_dir(&self) -> &std::path::Path {
        std::path::Path::new("/")
    }
}

/// Bring `secrets` in line with what `policies` reference: drop the unreferenced, read the
/// ones not held yet. Held Secrets are re-read only on the periodic refresh (which empties
/// the cache), so a burst of watch events does not become a burst of Secret reads.
async fn fetch_secrets(client: &Client, policies: &[NormalPolicy], secrets: &mut Secrets) {
    let mut wanted = BTreeSet::new();
    for k in policies.iter().flat_map(NormalPolicy::key_refs) {
        if let KeyRef::Secret { namespace, name, .. } = k {
            wanted.insert((namespace.clone(), name.clone()));
        }
    }
    for s in policies.iter().flat_map(|p| &p.pull_secrets) {
        wanted.insert((s.namespace.clone(), s.name.clone()));
    }
    let out = &mut secrets.0;
    out.retain(|k, _| wanted.contains(k));
    let missing: Vec<(String, String)> = wanted.into_iter().filter(|k| !out.contains_key(k)).collect();
    for (ns, name) in missing {
        let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
        match tokio::time::timeout(SECRET_TIMEOUT, api.get_opt(&name)).await {
            Ok(Ok(Some(secret))) => {
                let data = secret
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|(k, v)| String::from_utf8(v.0).ok().map(|s| (k, s)))
                    .collect();
                out.insert((ns, name), data);
            }
            Ok(Ok(None)) => tracing::warn!(namespace = %ns, secret = %name, "referenced Secret not found"),
            // Never log the Secret itself: only where it is and what went wrong.
            Ok(Err(e)) => tracing::warn!(namespace = %ns, secret = %name, error = %e, "referenced Secret unreadable"),
            Err(_) => tracing::warn!(namespace = %ns, secret = %name, "reading referenced Secret timed out"),
        }
    }
}

/// Registry credentials from the `.dockerconfigjson` of every pull Secret the policies name.
fn publish_pull_credentials(policies: &[NormalPolicy], secrets: &Secrets, out: &RwLock<Credentials>) {
    let mut creds = Credentials::default();
    for s in policies.iter().flat_map(|p| &p.pull_secrets) {
        let Some(data) = secrets.0.get(&(s.namespace.clone(), s.name.clone())) else { continue };
        match data.get(".dockerconfigjson") {
            Some(json) => {
                let source = format!("Secret {}/{}", s.namespace, s.name);
                if let Err(e) = creds.add_config(json.as_bytes(), &source) {
                    tracing::warn!(error = %e, "pull Secret not used");
                }
            }
            None => tracing::warn!(namespace = %s.namespace, secret = %s.name,
                "pull Secret has no .dockerconfigjson entry; not used"),
        }
    }
    *out.write().unwrap_or_else(|e| e.into_inner()) = creds;
}

/// Replace Secret references that resolve with the PEM itself, so the last-known-good
/// file enforces the same keys without the API server.
fn inline_secrets(mut p: NormalPolicy, secrets: &Secrets) -> NormalPolicy {
    for k in p.key_refs_mut() {
        if let KeyRef::Secret { namespace, name, key } = k {
            if let Ok(Some(pem)) = secrets.secret(namespace, name, key.as_deref()) {
                *k = KeyRef::Pem(pem);
            }
        }
    }
    p
}

/// Write this node's verdict into signet's own objects' status, only where it changed.
async fn report_status(
    client: &Client,
    config: &ClusterConfig,
    state: &mut Watched,
    problems: &HashMap<String, Vec<String>>,
) {
    let signet = 0; // KINDS[0] is signet's own kind
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &api_resource(&KINDS[signet]));
    let manager = format!("signet-node-{}", config.node_name);
    let keys: Vec<ObjectKey> = state.objects.keys().filter(|k| k.0 == signet).cloned().collect();
    for key in keys {
        let entry = &state.objects[&key];
        let origin = format!("{} {} {}", KINDS[signet].api_version(), KINDS[signet].kind, key.2);
        let mut messages: Vec<String> = entry.error.iter().cloned().collect();
        messages.extend(problems.get(&origin).cloned().unwrap_or_default());
        let accepted = entry.error.is_none() && messages.is_empty();
        let message = messages.join("; ");
        let report = (entry.generation, accepted, message.clone());
        if state.reported.get(&key) == Some(&report) {
            continue;
        }
        let patch = json!({
            "apiVersion": KINDS[signet].api_version(),
            "kind": KINDS[signet].kind,
            "status": { "nodes": { config.node_name.clone(): {
                "accepted": accepted, "message": message, "observedGeneration": entry.generation,
            }}}
        });
        match api.patch_status(&key.2, &PatchParams::apply(&manager).force(), &Patch::Apply(&patch)).await {
            Ok(_) => {
                state.reported.insert(key, report);
            }
            Err(e) => tracing::warn!(object = %key.2, error = %e, "policy status not written"),
        }
    }
}

/// The cluster contribution recorded in the last-known-good file, compiled; `None` when
/// there is no file. A file that cannot be read or compiled is reported and ignored.
pub fn load_last_known_good(path: &std::path::Path) -> Option<ClusterPolicies> {
    let normal = match lkg::load(path) {
        Ok(Some(n)) => n,
        Ok(None) => return None,
        Err(e) => {
            tracing::error!(error = %e, "last-known-good snapshot unusable; waiting for the API server");
            return None;
        }
    };
    let keys = Secrets(HashMap::new());
    let mut policies = Vec::new();
    let mut enforced = Vec::new();
    for p in normal {
        // The file holds what was enforced; a policy that no longer compiles here (a key
        // file removed from the node) is enforced as never passing, not dropped.
        let v = compile_or_keep(p, None, &keys, &mut Warned::default());
        if let Some(policy) = v.policy {
            policies.push(policy);
            enforced.push(v.normal);
        }
    }
    let normal = enforced;
    tracing::info!(path = %path.display(), policies = policies.len(), "enforcing last-known-good cluster policy until the API server answers");
    // Namespace labels are not stored: until the API server answers they are unknown, and
    // namespace selectors apply to every namespace.
    Some(ClusterPolicies { policies, normal, origin: ClusterOrigin::LastKnownGood, namespace_labels: Arc::default() })
}

/// Used by the daemon: a client from the in-cluster environment or KUBECONFIG.
pub async fn client() -> Result<Client, SyncError> {
    Ok(Client::try_default().await?)
}

#[cfg(test)]
#[path = "fake_api_tests.rs"]
mod fake_api_tests;

#[cfg(test)]
mod rbac_tests {
    use serde_yaml::Value;

    fn manifests() -> Vec<Value> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/kubernetes/rbac.yaml");
        let text = std::fs::read_to_string(path).unwrap();
        serde_yaml::Deserializer::from_str(&text).map(|d| serde::Deserialize::deserialize(d).unwrap()).collect()
    }

    fn grants_secrets(role: &Value) -> bool {
        role["rules"]
            .as_sequence()
            .into_iter()
            .flatten()
            .any(|r| r["resources"].as_sequence().into_iter().flatten().any(|x| x.as_str() == Some("secrets")))
    }

    /// Regression (#13.10): every node holds this token, so Secrets are readable only in
    /// signet's own namespace; other namespaces are an explicit opt-in.
    #[test]
    fn secrets_are_granted_only_in_signets_namespace() {
        let docs = manifests();
        let cluster_wide: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "ClusterRole").collect();
        assert!(!cluster_wide.is_empty());
        assert!(!cluster_wide.iter().any(|r| grants_secrets(r)), "a ClusterRole grants Secrets");
        let roles: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "Role" && grants_secrets(d)).collect();
        assert_eq!(roles.len(), 1);
        assert_eq!(roles[0]["metadata"]["namespace"], "signet-system");
        let binding = docs.iter().find(|d| d["kind"] == "RoleBinding").expect("the Role is bound");
        assert_eq!(binding["metadata"]["namespace"], "signet-system");
        assert_eq!(binding["subjects"][0]["name"], "signet");
    }

    /// #19: the watcher lists and watches Namespaces (their labels feed namespace
    /// selectors), cluster-wide, and may do nothing else with them.
    #[test]
    fn namespaces_are_listed_and_watched_cluster_wide() {
        let docs = manifests();
        let role = docs.iter().find(|d| d["kind"] == "ClusterRole").unwrap();
        let rules: Vec<&Value> = role["rules"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter(|r| r["resources"].as_sequence().into_iter().flatten().any(|x| x.as_str() == Some("namespaces")))
            .collect();
        assert_eq!(rules.len(), 1, "one rule grants namespaces");
        assert_eq!(rules[0]["apiGroups"][0].as_str(), Some(""), "the core group");
        let verbs: Vec<&str> = rules[0]["verbs"].as_sequence().unwrap().iter().filter_map(Value::as_str).collect();
        assert_eq!(verbs, ["list", "watch"]);
    }
}
