//! The watcher against a scripted fake API server: list + watch, bookmarks, 410 Gone
//! relists, disconnects, Secrets, status writes, and objects that stop being valid.
//!
//! The fake speaks plain HTTP/1.1 on loopback, enough of it for kube-rs: discovery, list,
//! streaming watch (chunked JSON lines), GET Secret, PATCH status.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use super::{run, ClusterConfig};
use crate::sync::{lkg, ClusterOrigin, ClusterPolicies};
use crate::testutil::TestSigner;

const API: &str = "/apis/signet.dev/v1alpha1";

#[derive(Default)]
struct State {
    rv: u64,
    objects: BTreeMap<String, Value>,
    secrets: BTreeMap<(String, String), Value>,
    watchers: Vec<mpsc::UnboundedSender<Option<String>>>,
    /// Every event with its resourceVersion: a watch from version N replays what followed,
    /// as the real API server does.
    events: Vec<(u64, String)>,
    expire_next_watch: bool,
    /// Discovery of signet's group answers 404, as a lagging API server does.
    discovery_404: bool,
    /// The CRD object is gone (GET customresourcedefinitions/... answers 404).
    crd_deleted: bool,
    lists: usize,
    status: Vec<(String, Value)>,
    /// Events posted, as (namespace, body).
    posted_events: Vec<(String, Value)>,
    /// Namespaces (list and watch of /api/v1/namespaces), with their own watch log.
    namespaces: BTreeMap<String, Value>,
    namespace_watchers: Vec<mpsc::UnboundedSender<Option<String>>>,
    namespace_events: Vec<(u64, String)>,
    /// Lists and watches of namespaces answer 403 (RBAC revoked).
    namespaces_forbidden: bool,
}

#[derive(Clone)]
struct FakeApi {
    url: String,
    state: Arc<Mutex<State>>,
    /// The watcher's rediscovery period under test.
    refresh: Duration,
}

impl FakeApi {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let s = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, Arc::clone(&s)));
            }
        });
        Self { url, state, refresh: super::REFRESH }
    }

    fn client(&self) -> kube::Client {
        kube::Client::try_from(kube::Config::new(self.url.parse().unwrap())).unwrap()
    }

    /// Create or update an object and tell open watches.
    fn apply(&self, name: &str, spec: Value) {
        let mut s = self.state.lock().unwrap();
        s.rv += 1;
        let generation = s.objects.get(name).and_then(|o| o["metadata"]["generation"].as_i64()).unwrap_or(0) + 1;
        let obj = json!({
            "apiVersion": "signet.dev/v1alpha1", "kind": "ClusterImagePolicy",
            "metadata": {"name": name, "resourceVersion": s.rv.to_string(), "generation": generation},
            "spec": spec,
        });
        let ty = if s.objects.insert(name.to_string(), obj.clone()).is_some() { "MODIFIED" } else { "ADDED" };
        let line = json!({"type": ty, "object": obj}).to_string();
        let rv = s.rv;
        s.events.push((rv, line.clone()));
        s.watchers.retain(|w| w.send(Some(line.clone())).is_ok());
    }

    fn delete(&self, name: &str) {
        let mut s = self.state.lock().unwrap();
        s.rv += 1;
        if let Some(mut obj) = s.objects.remove(name) {
            obj["metadata"]["resourceVersion"] = json!(s.rv.to_string());
            let line = json!({"type": "DELETED", "object": obj}).to_string();
            let rv = s.rv;
            s.events.push((rv, line.clone()));
            s.watchers.retain(|w| w.send(Some(line.clone())).is_ok());
        }
    }

    /// Change objects without telling anyone: what a watcher misses while disconnected.
    fn apply_silently(&self, name: &str, spec: Option<Value>) {
        let watchers = std::mem::take(&mut self.state.lock().unwrap().watchers);
        match spec {
            Some(spec) => self.apply(name, spec),
            None => self.delete(name),
        }
        self.state.lock().unwrap().watchers = watchers;
    }

    fn disconnect_watches(&self) {
        let mut s = self.state.lock().unwrap();
        for w in s.watchers.drain(..) {
            let _ = w.send(None);
        }
        for w in s.namespace_watchers.drain(..) {
            let _ = w.send(None);
        }
    }

    fn forbid_namespaces(&self, forbidden: bool) {
        self.state.lock().unwrap().namespaces_forbidden = forbidden;
    }

    /// Create or relabel a namespace and tell open namespace watches.
    fn label_namespace(&self, name: &str, labels: Value) {
        let mut s = self.state.lock().unwrap();
        s.rv += 1;
        let obj = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "resourceVersion": s.rv.to_string(), "labels": labels}});
        let ty = if s.namespaces.insert(name.to_string(), obj.clone()).is_some() { "MODIFIED" } else { "ADDED" };
        Self::tell_namespaces(&mut s, json!({"type": ty, "object": obj}).to_string());
    }

    fn delete_namespace(&self, name: &str) {
        let mut s = self.state.lock().unwrap();
        s.rv += 1;
        if let Some(mut obj) = s.namespaces.remove(name) {
            obj["metadata"]["resourceVersion"] = json!(s.rv.to_string());
            Self::tell_namespaces(&mut s, json!({"type": "DELETED", "object": obj}).to_string());
        }
    }

    fn tell_namespaces(s: &mut State, line: String) {
        let rv = s.rv;
        s.namespace_events.push((rv, line.clone()));
        s.namespace_watchers.retain(|w| w.send(Some(line.clone())).is_ok());
    }

    fn set_secret(&self, ns: &str, name: &str, data: &[(&str, &str)]) {
        use base64::Engine;
        let enc = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
        let data: serde_json::Map<String, Value> = data.iter().map(|(k, v)| (k.to_string(), json!(enc(v)))).collect();
        let secret =
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}, "data": data});
        self.state.lock().unwrap().secrets.insert((ns.into(), name.into()), secret);
    }
}

fn not_found() -> (u16, String) {
    (404, json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "NotFound", "code": 404}).to_string())
}

async fn serve(conn: TcpStream, state: Arc<Mutex<State>>) {
    let mut reader = BufReader::new(conn);
    while let Some(crate::testutil::Request { method, target, body, .. }) =
        crate::testutil::read_request(&mut reader).await
    {
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let is_watch = query.split('&').any(|p| p == "watch=true" || p == "watch=1");
        if method == "GET" && path == format!("{API}/clusterimagepolicies") && is_watch {
            let from = query
                .split('&')
                .find_map(|p| p.strip_prefix("resourceVersion="))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            stream_watch(reader.into_inner(), &state, from, false).await;
            return;
        }
        if method == "GET" && path == "/api/v1/namespaces" && state.lock().unwrap().namespaces_forbidden {
            let text = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden",
                "code": 403, "message": "namespaces is forbidden"})
            .to_string();
            let head = format!(
                "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                text.len()
            );
            let conn = reader.get_mut();
            if conn.write_all(head.as_bytes()).await.is_err() || conn.write_all(text.as_bytes()).await.is_err() {
                return;
            }
            continue;
        }
        if method == "GET" && path == "/api/v1/namespaces" && is_watch {
            let from = query
                .split('&')
                .find_map(|p| p.strip_prefix("resourceVersion="))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            stream_watch(reader.into_inner(), &state, from, true).await;
            return;
        }
        let (code, text) = respond(&method, path, &body, &state);
        let head =
            format!("HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", text.len());
        let conn = reader.get_mut();
        if conn.write_all(head.as_bytes()).await.is_err() || conn.write_all(text.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn respond(method: &str, path: &str, body: &[u8], state: &Mutex<State>) -> (u16, String) {
    let mut s = state.lock().unwrap();
    if method == "GET"
        && path == "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/clusterimagepolicies.signet.dev"
    {
        if s.crd_deleted {
            return not_found();
        }
        let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "clusterimagepolicies.signet.dev"},
            "spec": {"group": "signet.dev", "scope": "Cluster", "versions": [],
                     "names": {"plural": "clusterimagepolicies", "kind": "ClusterImagePolicy"}}});
        return (200, crd.to_string());
    }
    if method == "GET" && path == API && s.discovery_404 {
        return not_found();
    }
    if method == "GET" && path == API {
        let resources = json!([{"name": "clusterimagepolicies", "singularName": "clusterimagepolicy", "namespaced": false,
            "kind": "ClusterImagePolicy", "verbs": ["get", "list", "watch"]}]);
        return (200, json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "signet.dev/v1alpha1", "resources": resources}).to_string());
    }
    if method == "GET" && path == format!("{API}/clusterimagepolicies") {
        s.lists += 1;
        let items: Vec<Value> = s.objects.values().cloned().collect();
        return (
            200,
            json!({"apiVersion": "signet.dev/v1alpha1", "kind": "ClusterImagePolicyList",
            "metadata": {"resourceVersion": s.rv.to_string()}, "items": items})
            .to_string(),
        );
    }
    if method == "GET" && path == "/api/v1/namespaces" {
        let items: Vec<Value> = s.namespaces.values().cloned().collect();
        return (
            200,
            json!({"apiVersion": "v1", "kind": "NamespaceList", "metadata": {"resourceVersion": s.rv.to_string()},
                "items": items})
            .to_string(),
        );
    }
    if method == "PATCH" {
        if let Some(name) =
            path.strip_prefix(&format!("{API}/clusterimagepolicies/")).and_then(|r| r.strip_suffix("/status"))
        {
            let patch: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            s.status.push((name.to_string(), patch));
            return match s.objects.get(name) {
                Some(o) => (200, o.to_string()),
                None => not_found(),
            };
        }
    }
    if method == "POST" {
        if let Some(ns) =
            path.strip_prefix("/apis/events.k8s.io/v1/namespaces/").and_then(|r| r.strip_suffix("/events"))
        {
            let event: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            s.posted_events.push((ns.to_string(), event.clone()));
            return (201, event.to_string());
        }
    }
    if method == "GET" {
        if let Some(rest) = path.strip_prefix("/api/v1/namespaces/") {
            if let Some((ns, name)) = rest.split_once("/secrets/") {
                return match s.secrets.get(&(ns.to_string(), name.to_string())) {
                    Some(secret) => (200, secret.to_string()),
                    None => not_found(),
                };
            }
        }
    }
    not_found()
}

async fn stream_watch(mut conn: TcpStream, state: &Mutex<State>, from: u64, namespaces: bool) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (expire, rv) = {
        let mut s = state.lock().unwrap();
        let expire = !namespaces && std::mem::take(&mut s.expire_next_watch);
        if !expire {
            let log = if namespaces { &s.namespace_events } else { &s.events };
            for (_, line) in log.iter().filter(|(v, _)| *v > from) {
                let _ = tx.send(Some(line.clone()));
            }
            if namespaces {
                s.namespace_watchers.push(tx.clone());
            } else {
                s.watchers.push(tx.clone());
            }
        }
        (expire, s.rv)
    };
    let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
    if conn.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    if expire {
        let gone = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "reason": "Expired", "message": "too old resource version", "code": 410}});
        let _ = tx.send(Some(gone.to_string()));
        let _ = tx.send(None);
    } else {
        // A bookmark first: the watcher must take it in its stride.
        let (api_version, kind) =
            if namespaces { ("v1", "Namespace") } else { ("signet.dev/v1alpha1", "ClusterImagePolicy") };
        let bookmark = json!({"type": "BOOKMARK", "object": {"apiVersion": api_version,
            "kind": kind, "metadata": {"resourceVersion": rv.to_string()}}});
        let _ = tx.send(Some(bookmark.to_string()));
    }
    drop(tx);
    while let Some(Some(line)) = rx.recv().await {
        let chunk = format!("{:x}\r\n{line}\n\r\n", line.len() + 1);
        if conn.write_all(chunk.as_bytes()).await.is_err() {
            return;
        }
    }
    let _ = conn.write_all(b"0\r\n\r\n").await;
}

struct Harness {
    api: FakeApi,
    rx: mpsc::Receiver<ClusterPolicies>,
    _shutdown: watch::Sender<bool>,
    dir: tempfile::TempDir,
    pull_credentials: Arc<std::sync::RwLock<crate::registry::auth::Credentials>>,
}

impl Harness {
    async fn start() -> Self {
        let api = FakeApi::start().await;
        Self::with_api(api).await
    }

    async fn with_api(api: FakeApi) -> Self {
        Self::with_held(api, Arc::new(crate::held::Held::offline())).await
    }

    async fn with_held(api: FakeApi, held: Arc<crate::held::Held>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = ClusterConfig {
            node_name: "node-a".into(),
            lkg_path: dir.path().join("lkg.json"),
            report_status: true,
            pull_credentials: Default::default(),
            refresh: api.refresh,
            held,
        };
        let pull_credentials = Arc::clone(&config.pull_credentials);
        let (tx, rx) = mpsc::channel(16);
        let (shutdown, shutdown_rx) = watch::channel(false);
        tokio::spawn(run(api.client(), config, tx, shutdown_rx));
        Self { api, rx, _shutdown: shutdown, dir, pull_credentials }
    }

    /// The next published contribution, as policy names.
    async fn next(&mut self) -> Vec<String> {
        let c = tokio::time::timeout(Duration::from_secs(10), self.rx.recv())
            .await
            .expect("a cluster policy update within 10 s")
            .expect("watcher running");
        assert_eq!(c.origin, ClusterOrigin::Live);
        c.policies.iter().map(|p| p.name.clone()).collect()
    }

    /// Wait until the contribution has exactly these names.
    async fn until(&mut self, want: &[&str]) {
        loop {
            if self.next().await == want {
                return;
            }
        }
    }
}

fn pass(glob: &str) -> Value {
    json!({"images": [{"glob": glob}], "authorities": [{"static": {"action": "pass"}}]})
}

#[tokio::test]
async fn list_then_watch_adds_updates_and_deletes() {
    let api = FakeApi::start().await;
    api.apply("a", pass("a.io/**"));
    let mut h = Harness::with_api(api).await;
    assert_eq!(h.next().await, ["a"]);
    h.api.apply("b", pass("b.io/**"));
    h.until(&["a", "b"]).await;
    h.api.delete("a");
    h.until(&["b"]).await;
    // The last-known-good file follows the complete state.
    let lkg = lkg::load(&h.dir.path().join("lkg.json")).unwrap().unwrap();
    assert_eq!(lkg.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["b"]);
}

#[tokio::test]
async fn gone_watch_relists_and_drops_objects_deleted_meanwhile() {
    let mut h = Harness::start().await;
    h.api.apply("a", pass("a.io/**"));
    h.until(&["a"]).await;
    // While the watch is down, a is deleted and c created; the next watch gets 410 Gone.
    h.api.apply_silently("a", None);
    h.api.apply_silently("c", Some(pass("c.io/**")));
    h.api.state.lock().unwrap().expire_next_watch = true;
    h.api.disconnect_watches();
    h.until(&["c"]).await;
    assert!(h.api.state.lock().unwrap().lists >= 2, "a relist happened");
}

#[tokio::test]
async fn disconnect_rewatches_and_sees_later_events() {
    let mut h = Harness::start().await;
    h.api.apply("a", pass("a.io/**"));
    h.until(&["a"]).await;
    h.api.disconnect_watches();
    // Wait for the watcher to come back, then change something.
    for _ in 0..100 {
        if !h.api.state.lock().unwrap().watchers.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.api.apply("b", pass("b.io/**"));
    h.until(&["a", "b"]).await;
}

#[tokio::test]
async fn invalid_update_keeps_the_previous_version_and_reports_status() {
    let mut h = Harness::start().await;
    h.api.apply("a", pass("a.io/**"));
    h.until(&["a"]).await;
    h.api.apply("bad-new", json!({"images": [{"glob": "x"}], "authorites": []}));
    h.api.apply("a", json!({"images": [{"glob": "a.io/**"}], "authorities": [{"static": {"action": "maybe"}}]}));
    h.api.apply("z", pass("z.io/**"));
    h.until(&["a", "z"]).await;
    // Status: a's rejection and bad-new's are written under this node's name.
    let entry = |name: &str| {
        let status = h.api.state.lock().unwrap().status.clone();
        status.iter().rev().find(|(n, _)| n == name).map(|(_, p)| p["status"]["nodes"]["node-a"].clone())
    };
    let mut waited = 0;
    let done = |e: &dyn Fn(&str) -> Option<Value>| {
        e("a").is_some_and(|a| a["observedGeneration"] == 2) && e("bad-new").is_some() && e("z").is_some()
    };
    while !done(&entry) && waited < 100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    let a = entry("a").expect("status written for a");
    assert_eq!(a["accepted"], false, "{a}");
    assert!(a["message"].as_str().unwrap().contains("maybe"), "{a}");
    assert!(entry("bad-new").unwrap()["message"].as_str().unwrap().contains("authorites"));
    assert_eq!(entry("z").unwrap()["accepted"], true);
}

#[tokio::test]
async fn keys_come_from_secrets_and_are_inlined_in_the_snapshot() {
    let signer = TestSigner::new(4);
    let api = FakeApi::start().await;
    api.set_secret("signet-system", "team-key", &[("cosign.pub", &signer.public_pem())]);
    api.apply(
        "a",
        json!({"images": [{"glob": "a.io/**"}], "authorities": [{"key": {"secretRef": {"name": "team-key"}}}]}),
    );
    api.apply(
        "b",
        json!({"images": [{"glob": "b.io/**"}], "authorities": [{"key": {"secretRef": {"name": "missing"}}}]}),
    );
    let mut h = Harness::with_api(api).await;
    let c = tokio::time::timeout(Duration::from_secs(10), h.rx.recv()).await.unwrap().unwrap();
    use crate::policy::AuthorityKind;
    let kind = |i: usize| &c.policies[i].requirements[0].authorities[0].kind;
    use crate::policy::Signer;
    assert!(
        matches!(kind(0), AuthorityKind::Signed(by) if matches!(&by.signer, Signer::Key(k) if k.fingerprint == signer.trusted().fingerprint))
    );
    assert!(matches!(kind(1), AuthorityKind::Unsupported(r) if r.contains("signet-system/missing")), "{:?}", kind(1));
    let lkg = std::fs::read_to_string(h.dir.path().join("lkg.json")).unwrap();
    assert!(lkg.contains("BEGIN PUBLIC KEY"), "the resolved key is stored inline");
}

#[tokio::test]
async fn pull_secrets_named_by_policies_become_registry_credentials_and_are_not_persisted() {
    use crate::registry::auth::RegistryAuth;
    let api = FakeApi::start().await;
    let config = json!({"auths": {"private.example:5000": {"username": "robot", "password": "s3cret"}}}).to_string();
    api.set_secret("signet-system", "regcred", &[(".dockerconfigjson", &config)]);
    api.apply(
        "a",
        json!({"images": [{"glob": "private.example:5000/**"}],
               "authorities": [{"static": {"action": "pass"}, "source": [{"signaturePullSecrets": [{"name": "regcred"}]}]}]}),
    );
    let mut h = Harness::with_api(api).await;
    h.until(&["a"]).await;
    let auth = h.pull_credentials.read().unwrap().auth_for("private.example:5000");
    assert_eq!(auth, RegistryAuth::Basic("robot".into(), "s3cret".into()));
    let lkg = std::fs::read_to_string(h.dir.path().join("lkg.json")).unwrap();
    assert!(lkg.contains("regcred") && !lkg.contains("s3cret"), "names kept, credentials not: {lkg}");
}

#[tokio::test]
async fn unreachable_api_server_publishes_nothing_and_keeps_retrying() {
    // A port nobody listens on: discovery fails, no contribution is sent, nothing panics.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = ClusterConfig {
        node_name: "n".into(),
        lkg_path: dir.path().join("lkg.json"),
        report_status: false,
        pull_credentials: Default::default(),
        refresh: super::REFRESH,
        held: Arc::new(crate::held::Held::offline()),
    };
    let (tx, mut rx) = mpsc::channel(1);
    let (_shutdown, shutdown_rx) = watch::channel(false);
    let task = tokio::spawn(run(client, config, tx, shutdown_rx));
    assert!(tokio::time::timeout(Duration::from_secs(2), rx.recv()).await.is_err());
    assert!(!task.is_finished());
    assert!(!dir.path().join("lkg.json").exists());
}

#[tokio::test]
async fn denials_become_events_on_the_pod() {
    use crate::sync::events::{Denial, DenialEvents};
    let api = FakeApi::start().await;
    let events = DenialEvents::start(api.client(), "node-a".into());
    events.report(Denial {
        namespace: "team".into(),
        pod: "web-1".into(),
        uid: "u-1".into(),
        message: "signet: image reg.io/app:v1 denied: no signatures found".into(),
    });
    let mut posted = Vec::new();
    for _ in 0..100 {
        posted = api.state.lock().unwrap().posted_events.clone();
        if !posted.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (ns, event) = posted.first().expect("an event was posted");
    assert_eq!(ns, "team");
    assert_eq!(event["regarding"]["name"], "web-1");
    assert_eq!(event["regarding"]["kind"], "Pod");
    assert_eq!(event["reason"], "ImageSignatureDenied");
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reportingController"], "signet");
    assert!(event["note"].as_str().unwrap().contains("no signatures found"), "{event}");
}

/// Regression (#13.2): a policy whose key Secret holds no usable key is enforced as never
/// passing (first version) and keeps its previous version (later versions); it is never
/// dropped from the snapshot or the last-known-good file.
#[tokio::test]
async fn a_policy_that_does_not_compile_on_the_node_fails_closed_not_away() {
    use crate::policy::AuthorityKind;
    let signer = TestSigner::new(5);
    let api = FakeApi::start().await;
    api.set_secret("signet-system", "good", &[("cosign.pub", &signer.public_pem())]);
    api.set_secret(
        "signet-system",
        "garbage",
        &[("cosign.pub", "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n")],
    );
    let key = |secret: &str| json!({"images": [{"glob": "a.io/**"}], "authorities": [{"key": {"secretRef": {"name": secret}}}]});
    api.apply(
        "first",
        json!({"images": [{"glob": "f.io/**"}], "authorities": [{"key": {"secretRef": {"name": "garbage"}}}]}),
    );
    api.apply("a", key("good"));
    let mut h = Harness::with_api(api).await;
    let c = tokio::time::timeout(Duration::from_secs(10), h.rx.recv()).await.unwrap().unwrap();
    let names: Vec<_> = c.policies.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["a", "first"], "the broken first version is enforced, not dropped");
    let first = &c.policies[1].requirements[0].authorities[0].kind;
    assert!(
        matches!(first, AuthorityKind::Unsupported(r) if r.contains("does not compile") && r.contains("garbage") || r.contains("PEM") || r.contains("key")),
        "{first:?}"
    );
    let lkg = lkg::load(&h.dir.path().join("lkg.json")).unwrap().unwrap();
    assert_eq!(lkg.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["a", "first"]);
    // A later version pointing at the broken Secret keeps the good key in force.
    h.api.apply("a", key("garbage"));
    h.api.apply("z", pass("z.io/**"));
    let c = loop {
        let c = tokio::time::timeout(Duration::from_secs(10), h.rx.recv()).await.unwrap().unwrap();
        if c.policies.iter().any(|p| p.name == "z") {
            break c;
        }
    };
    let a = c.policies.iter().find(|p| p.name == "a").expect("a is still enforced");
    assert!(
        matches!(&a.requirements[0].authorities[0].kind, AuthorityKind::Signed(by)
            if matches!(&by.signer, crate::policy::Signer::Key(k) if k.fingerprint == signer.trusted().fingerprint)),
        "the previous key stays: {:?}",
        a.requirements[0].authorities[0].kind
    );
}

/// Regression (#13.8): a 404 from discovery (a lagging API server) keeps the kind's
/// policies; only a CRD that is positively gone removes them.
#[tokio::test]
async fn a_kind_missing_from_discovery_keeps_its_policies_until_its_crd_is_gone() {
    let mut api = FakeApi::start().await;
    api.refresh = Duration::from_millis(200);
    api.apply("a", pass("a.io/**"));
    let mut h = Harness::with_api(api).await;
    assert_eq!(h.next().await, ["a"]);
    h.api.state.lock().unwrap().discovery_404 = true;
    // Several rediscoveries later, with Secrets re-read and snapshots re-sent each time:
    for _ in 0..4 {
        assert_eq!(h.next().await, ["a"], "a lagging discovery must not drop the policy");
    }
    let lkg = lkg::load(&h.dir.path().join("lkg.json")).unwrap().unwrap();
    assert_eq!(lkg.len(), 1);
    h.api.state.lock().unwrap().crd_deleted = true;
    h.until(&[]).await;
}

/// #18: a cluster policy's KMS key is resolved at sync; while the provider is down the
/// authority fails closed with its reason, and the key that arrives later is compiled at
/// once and inlined into the last-known-good file.
#[tokio::test]
async fn a_kms_key_is_resolved_at_sync_and_inlined_into_the_last_known_good_file() {
    use crate::kms::http::fake::FakeHttp;
    use crate::kms::{Env, Providers, Resolver};
    use crate::policy::normal::KeyRef;
    use crate::policy::AuthorityKind;
    let key = TestSigner::new(3).public_pem();
    let http = Arc::new(FakeHttp::default());
    let transit = json!({"data": {"type": "ecdsa-p256", "latest_version": 1, "keys": {"1": {"public_key": key}}}});
    http.route(
        "GET",
        "http://vault:8200/v1/transit/keys/signer",
        vec![Ok((503, r#"{"errors":["Vault is sealed"]}"#)), Ok((200, &transit.to_string()))],
    );
    let env = Env {
        vars: [("VAULT_ADDR", "http://vault:8200"), ("VAULT_TOKEN", "hvs.t")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let mut resolver = Resolver::new(Some(Arc::new(Providers::new(http, env))), Default::default(), None);
    resolver.backoff = Vec::new();
    resolver.error_ttl = Duration::ZERO;
    let kms = Arc::new(resolver);
    let api = FakeApi::start().await;
    api.apply("k", json!({"images": [{"glob": "k.io/**"}], "authorities": [{"key": {"kms": "hashivault://signer"}}]}));
    let held = crate::held::Held { kms: Arc::clone(&kms), tuf: Arc::new(crate::tuf::Store::offline()) };
    let mut h = Harness::with_held(api, Arc::new(held)).await;
    let first = tokio::time::timeout(Duration::from_secs(10), h.rx.recv()).await.unwrap().unwrap();
    let kind = &first.policies[0].requirements[0].authorities[0].kind;
    assert!(
        matches!(kind, AuthorityKind::Unsupported(r) if r.contains("provider unavailable") && r.contains("sealed")),
        "{kind:?}"
    );
    // The daemon's timer asks again; the watcher hears of the key and recompiles.
    assert!(kms.refresh(std::iter::empty()).await);
    // Namespace listings re-send the contribution unchanged meanwhile; the key comes after.
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), h.rx.recv()).await.unwrap().unwrap();
        if matches!(&next.policies[0].requirements[0].authorities[0].kind, AuthorityKind::Signed(_)) {
            break;
        }
    }
    let lkg = lkg::load(&h.dir.path().join("lkg.json")).unwrap().unwrap();
    let inlined = lkg[0].key_refs().next().unwrap();
    assert!(matches!(inlined, KeyRef::Kms(k) if k.resolved.as_ref().is_some_and(|r| r.pem == key)), "{inlined:?}");
}

/// Review finding: a policy whose image patterns do not compile on the node (here one too
/// long to be a pattern of any image) is enforced as a stand-in that denies every image in
/// its scope, never dropped: which images the bad pattern meant is unknown.
#[tokio::test]
async fn a_policy_whose_patterns_do_not_compile_denies_its_whole_scope() {
    use crate::policy::AuthorityKind;
    let api = FakeApi::start().await;
    let long = format!("a.io/{}", "*x".repeat(crate::policy::compile::MAX_PATTERN_BYTES));
    api.apply(
        "bad-pattern",
        json!({"images": [{"glob": long}, {"glob": "b.io/**"}], "authorities": [{"static": {"action": "pass"}}]}),
    );
    let mut h = Harness::with_api(api).await;
    let c = tokio::time::timeout(Duration::from_secs(10), h.rx.recv()).await.unwrap().unwrap();
    let p = c.policies.iter().find(|p| p.name == "bad-pattern").expect("enforced, not dropped");
    assert!(p.matches("anything.io/x:v1", "anything.io/x", None), "the stand-in covers every image");
    assert!(
        matches!(&p.requirements[0].authorities[0].kind, AuthorityKind::Unsupported(r) if r.contains("bytes long")),
        "{:?}",
        p.requirements[0].authorities[0].kind
    );
}

impl Harness {
    /// Contributions until one whose namespace labels satisfy `want`.
    async fn until_labels(
        &mut self,
        want: impl Fn(&crate::policy::labels::NamespaceLabels) -> bool,
    ) -> Arc<crate::policy::labels::NamespaceLabels> {
        loop {
            let c = tokio::time::timeout(Duration::from_secs(10), self.rx.recv())
                .await
                .expect("a cluster update within 10 s")
                .expect("watcher running");
            if want(&c.namespace_labels) {
                return c.namespace_labels;
            }
        }
    }
}

/// The `env` label of a namespace, where known.
fn env(l: &crate::policy::labels::NamespaceLabels, ns: &str) -> Option<String> {
    l.get(Some(ns)).and_then(|m| m.get("env").cloned())
}

/// #19: namespace labels come from the API server with the policies, follow relabels,
/// and a deleted namespace is no longer known (its selectors apply again).
#[tokio::test]
async fn namespace_labels_arrive_change_and_go_with_the_namespace() {
    let api = FakeApi::start().await;
    api.label_namespace("prod", json!({"env": "prod"}));
    api.apply("a", pass("a.io/**"));
    let mut h = Harness::with_api(api).await;
    let l = h.until_labels(|l| l.is_known()).await;
    assert_eq!(env(&l, "prod").as_deref(), Some("prod"));
    assert_eq!(l.get(Some("prod")).unwrap().get(crate::policy::labels::NAME_LABEL).map(String::as_str), Some("prod"));
    h.api.label_namespace("prod", json!({"env": "staging"}));
    h.until_labels(|l| env(l, "prod").as_deref() == Some("staging")).await;
    h.api.label_namespace("dev", json!({"env": "dev"}));
    let l = h.until_labels(|l| l.get(Some("dev")).is_some()).await;
    assert_eq!(env(&l, "prod").as_deref(), Some("staging"));
    h.api.delete_namespace("prod");
    let l = h.until_labels(|l| l.get(Some("prod")).is_none()).await;
    assert!(l.is_known() && l.get(Some("dev")).is_some());
    assert!(l.why_unknown(Some("prod")).unwrap().contains("not been seen"));
}

/// Review finding: after a good list, a namespace watch that fails (RBAC revoked, the API
/// server cut off) kept the old labels in force, so a relabel went unseen while the log said
/// selectors applied everywhere. Now the labels are unknown (selectors apply) until a fresh
/// list succeeds.
#[tokio::test]
async fn a_failing_namespace_watch_makes_the_labels_unknown_until_listed_again() {
    let api = FakeApi::start().await;
    api.label_namespace("prod", json!({"env": "prod"}));
    api.apply("a", pass("a.io/**"));
    let mut h = Harness::with_api(api).await;
    h.until_labels(|l| env(l, "prod").as_deref() == Some("prod")).await;
    h.api.forbid_namespaces(true);
    h.api.disconnect_watches();
    let l = h.until_labels(|l| !l.is_known()).await;
    assert!(l.get(Some("prod")).is_none());
    // Relabelled while unwatched; seen once the list works again.
    h.api.state.lock().unwrap().namespaces.get_mut("prod").unwrap()["metadata"]["labels"]["env"] = json!("dev");
    h.api.forbid_namespaces(false);
    let l = h.until_labels(|l| l.is_known()).await;
    assert_eq!(env(&l, "prod").as_deref(), Some("dev"));
}

/// A writer for log lines captured by a test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// #19: a policy part that fails closed is logged once per version of its object, not at
/// every publish that other objects' changes cause.
#[tokio::test]
async fn a_compile_warning_is_logged_once_per_object_version() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let warnings = || {
        let text = String::from_utf8_lossy(&log.0.lock().unwrap()).to_string();
        text.lines().filter(|l| l.contains("fails closed on this node") && l.contains("policy=w")).count()
    };
    let api = FakeApi::start().await;
    let missing_key =
        |s: &str| json!({"images": [{"glob": "w.io/**"}], "authorities": [{"key": {"secretRef": {"name": s}}}]});
    api.apply("w", missing_key("missing"));
    let mut h = Harness::with_api(api).await;
    h.until(&["w"]).await;
    h.api.apply("b", pass("b.io/**"));
    h.until(&["b", "w"]).await;
    h.api.apply("c", pass("c.io/**"));
    h.until(&["b", "c", "w"]).await;
    assert_eq!(warnings(), 1, "one version, one warning");
    h.api.apply("w", missing_key("other-missing"));
    loop {
        let c = tokio::time::timeout(Duration::from_secs(10), h.rx.recv()).await.unwrap().unwrap();
        if c.normal.iter().any(|p| format!("{p:?}").contains("other-missing")) {
            break;
        }
    }
    assert_eq!(warnings(), 2, "a new version is warned about again");
}
