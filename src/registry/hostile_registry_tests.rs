//! The registry client against a hostile registry on loopback (endless, lying and dripping
//! bodies, `urls[]`, credentials it should not get) and against a counting one, which holds
//! every verification to the round-trip floor.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use sha2::{Digest, Sha256};

use super::client::Repository;
use super::*;
use crate::body::Budget;
use crate::testutil::Request;

const DIGEST: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

fn hex() -> &'static str {
    &DIGEST[7..]
}

/// What the server does with one request.
#[derive(Clone)]
enum Reply {
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Chunked, never ending.
    Endless,
    /// A `Content-Length` far over any cap, then bytes until the client hangs up.
    Lying,
    /// One byte of `body` every `every`.
    Drip {
        body: Vec<u8>,
        every: Duration,
    },
}

fn ok(ctype: &str, body: &[u8]) -> Reply {
    Reply::Full { status: 200, headers: vec![("content-type".into(), ctype.into())], body: body.to_vec() }
}

fn not_found() -> Reply {
    Reply::Full { status: 404, headers: vec![], body: br#"{"errors":[{"code":"MANIFEST_UNKNOWN"}]}"#.to_vec() }
}

#[derive(Clone, Debug)]
struct Seen {
    path: String,
    authorization: Option<String>,
    at: Instant,
}

type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

struct Server {
    host: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    connections: Arc<AtomicUsize>,
    /// Body bytes written, across all replies.
    sent: Arc<AtomicU64>,
}

impl Server {
    async fn start(delay: Duration, handler: Handler) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let (seen, connections, sent) = (Arc::default(), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicU64::new(0)));
        let s =
            Server { host, seen: Arc::clone(&seen), connections: Arc::clone(&connections), sent: Arc::clone(&sent) };
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                connections.fetch_add(1, Ordering::SeqCst);
                let (seen, sent, handler) = (Arc::clone(&seen), Arc::clone(&sent), Arc::clone(&handler));
                tokio::spawn(serve(conn, delay, handler, seen, sent));
            }
        });
        s
    }

    fn paths(&self) -> Vec<String> {
        self.seen.lock().unwrap().iter().map(|s| s.path.clone()).collect()
    }

    /// Dependent rounds: with every reply held `delay`, a request sent after a reply arrives
    /// at least `delay` after the first request of the round before; requests sent together
    /// arrive together. Slowness between rounds only widens the gaps, so this does not
    /// depend on the machine's speed as wall time would.
    fn rounds(&self, delay: Duration) -> usize {
        let mut starts: Vec<Instant> = Vec::new();
        for s in self.seen.lock().unwrap().iter() {
            if starts.last().is_none_or(|&first| s.at.duration_since(first) >= delay / 2) {
                starts.push(s.at);
            }
        }
        starts.len()
    }

    fn count(&self, pred: impl Fn(&str) -> bool) -> usize {
        self.paths().iter().filter(|p| pred(p)).count()
    }
}

async fn serve(conn: TcpStream, delay: Duration, handler: Handler, seen: Arc<Mutex<Vec<Seen>>>, sent: Arc<AtomicU64>) {
    let mut reader = BufReader::new(conn);
    while let Some(req) = crate::testutil::read_request(&mut reader).await {
        seen.lock().unwrap().push(Seen {
            path: req.target.clone(),
            authorization: req.headers.get("authorization").cloned(),
            at: Instant::now(),
        });
        tokio::time::sleep(delay).await;
        let conn = reader.get_mut();
        let written = match handler(&req) {
            Reply::Full { status, headers, body } => {
                let mut head = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n", body.len());
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                conn.write_all(head.as_bytes()).await.is_ok() && conn.write_all(&body).await.is_ok()
            }
            Reply::Endless => {
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
                if conn.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = format!("4000\r\n{}\r\n", "{".repeat(0x4000));
                while conn.write_all(chunk.as_bytes()).await.is_ok() {
                    sent.fetch_add(0x4000, Ordering::SeqCst);
                }
                false
            }
            Reply::Lying => {
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 10737418240\r\n\r\n";
                if conn.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let block = vec![b' '; 0x4000];
                while conn.write_all(&block).await.is_ok() {
                    sent.fetch_add(0x4000, Ordering::SeqCst);
                }
                false
            }
            Reply::Drip { body, every } => {
                let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
                let mut ok = conn.write_all(head.as_bytes()).await.is_ok();
                for b in body {
                    tokio::time::sleep(every).await;
                    ok = ok && conn.write_all(&[b]).await.is_ok();
                }
                ok
            }
        };
        if !written {
            return;
        }
    }
}

/// A repository `team/app` holding what `objects` lists (path under `/v2/team/app/`), 404
/// for the rest; `special` may answer first.
fn registry(
    objects: HashMap<String, Reply>,
    special: impl Fn(&Request) -> Option<Reply> + Send + Sync + 'static,
) -> Handler {
    Arc::new(move |req: &Request| {
        if let Some(r) = special(req) {
            return r;
        }
        let path = req.target.split('?').next().unwrap_or("");
        path.strip_prefix("/v2/team/app/").and_then(|p| objects.get(p)).cloned().unwrap_or_else(not_found)
    })
}

fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// A `.sig` manifest with one signed layer, and its blob.
fn signature(payload: &[u8], extra: serde_json::Value) -> (Vec<u8>, String) {
    let blob = sha(payload);
    let mut layer = serde_json::json!({"mediaType": SIGNATURE_MEDIA_TYPE, "digest": blob, "size": payload.len(),
        "annotations": {SIGNATURE_ANNOTATION: "c2ln"}});
    if let (Some(l), Some(e)) = (layer.as_object_mut(), extra.as_object()) {
        l.extend(e.clone());
    }
    let m = serde_json::json!({"schemaVersion": 2, "mediaType": manifest::OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob, "size": payload.len()},
        "layers": [layer]});
    (m.to_string().into_bytes(), blob)
}

fn sig_tag() -> String {
    format!("manifests/sha256-{}.sig", hex())
}

fn signed_objects() -> HashMap<String, Reply> {
    let (m, blob) = signature(b"payload", serde_json::json!({}));
    HashMap::from([
        (sig_tag(), ok(manifest::OCI_MANIFEST, &m)),
        (format!("blobs/{blob}"), ok("application/octet-stream", b"payload")),
    ])
}

fn source_for(hosts: &[&str], timeout: Duration) -> OciSignatureSource {
    let access = Access { insecure: hosts.iter().map(|h| h.to_string()).collect(), ..Default::default() };
    OciSignatureSource::new(access, Limits::default(), timeout)
}

async fn fetch(source: &OciSignatureSource, host: &str) -> Result<Signatures, RegistryError> {
    let image: Reference = format!("{host}/team/app:v1").parse().unwrap();
    source.signatures(&image, DIGEST, Artifact::Signatures).await
}

/// The body was cut off near its cap, not read on: what the server got written is bounded
/// by the cap plus socket buffers, far from the endless stream.
fn assert_cut_off(server: &Server) {
    let sent = server.sent.load(Ordering::SeqCst);
    assert!(sent < 32 << 20, "{sent} bytes were sent before the client hung up");
}

fn assert_refused(e: &RegistryError, host: &str, what: &str) {
    let text = e.to_string();
    assert!(matches!(e, RegistryError::Refused { .. } | RegistryError::PayloadTooLarge { .. }), "{e:?}");
    assert!(text.contains(host) && text.contains(what), "{text}");
}

#[tokio::test]
async fn an_endless_signature_manifest_is_cut_off_at_its_cap() {
    let reg = Server::start(Duration::ZERO, registry(HashMap::from([(sig_tag(), Reply::Endless)]), |_| None)).await;
    let started = Instant::now();
    let e = fetch(&source_for(&[&reg.host], Duration::from_secs(20)), &reg.host).await.unwrap_err();
    assert_refused(&e, &reg.host, "over the 1048576 byte limit");
    assert!(started.elapsed() < Duration::from_secs(10), "refused at the cap, not at the deadline");
    assert_cut_off(&reg);
}

#[tokio::test]
async fn a_content_length_over_the_cap_is_refused_before_reading() {
    let reg = Server::start(Duration::ZERO, registry(HashMap::from([(sig_tag(), Reply::Lying)]), |_| None)).await;
    let e = fetch(&source_for(&[&reg.host], Duration::from_secs(20)), &reg.host).await.unwrap_err();
    assert_refused(&e, &reg.host, "over the 1048576 byte limit");
    assert_cut_off(&reg);
}

#[tokio::test]
async fn endless_referrers_lists_and_fallback_indexes_are_cut_off() {
    let api = format!("referrers/{DIGEST}");
    let fallback = format!("manifests/sha256-{}", hex());
    for (path, reply) in [(api.clone(), Reply::Endless), (api, Reply::Lying), (fallback, Reply::Endless)] {
        let reg = Server::start(Duration::ZERO, registry(HashMap::from([(path.clone(), reply)]), |_| None)).await;
        let e = fetch(&source_for(&[&reg.host], Duration::from_secs(20)), &reg.host).await.unwrap_err();
        assert_refused(&e, &reg.host, &path);
        assert_cut_off(&reg);
    }
}

#[tokio::test]
async fn an_endless_blob_is_cut_off_at_its_descriptor_size() {
    let (m, blob) = signature(b"payload", serde_json::json!({}));
    let objects =
        HashMap::from([(sig_tag(), ok(manifest::OCI_MANIFEST, &m)), (format!("blobs/{blob}"), Reply::Endless)]);
    let reg = Server::start(Duration::ZERO, registry(objects, |_| None)).await;
    let e = fetch(&source_for(&[&reg.host], Duration::from_secs(20)), &reg.host).await.unwrap_err();
    assert!(matches!(&e, RegistryError::PayloadTooLarge { digest, .. } if *digest == blob), "{e}");
    assert_cut_off(&reg);
}

#[tokio::test]
async fn an_endless_token_reply_is_cut_off() {
    let host = Arc::new(Mutex::new(String::new()));
    let h = Arc::clone(&host);
    let reg = Server::start(
        Duration::ZERO,
        registry(signed_objects(), move |req| {
            if req.target.starts_with("/token") {
                return Some(Reply::Endless);
            }
            (!req.headers.contains_key("authorization")).then(|| Reply::Full {
                status: 401,
                headers: vec![(
                    "www-authenticate".into(),
                    format!("Bearer realm=\"http://{}/token\"", h.lock().unwrap()),
                )],
                body: vec![],
            })
        }),
    )
    .await;
    *host.lock().unwrap() = reg.host.clone();
    let e = fetch(&source_for(&[&reg.host], Duration::from_secs(20)), &reg.host).await.unwrap_err();
    let text = e.to_string();
    assert!(text.contains(&reg.host) && text.contains("token reply") && text.contains("limit"), "{text}");
    assert_cut_off(&reg);
    // Each request that got a 401 asks at most once (those waiting on a failed answer share
    // it; one whose 401 came after the failure asks again), and no request loops on it.
    assert!(reg.count(|p| p.starts_with("/token")) <= 3, "{:?}", reg.paths());
}

#[tokio::test]
async fn a_slow_drip_ends_at_the_deadline() {
    let (m, _) = signature(b"payload", serde_json::json!({}));
    let objects = HashMap::from([(sig_tag(), Reply::Drip { body: m, every: Duration::from_millis(50) })]);
    let reg = Server::start(Duration::ZERO, registry(objects, |_| None)).await;
    let started = Instant::now();
    let e = fetch(&source_for(&[&reg.host], Duration::from_millis(600)), &reg.host).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    let text = e.to_string();
    assert!(text.contains(&reg.host) && (text.contains("longer than") || text.contains("timed out")), "{text}");
}

#[tokio::test]
async fn a_layers_urls_are_never_followed() {
    let elsewhere =
        Server::start(Duration::ZERO, Arc::new(|_: &Request| ok("application/octet-stream", b"payload"))).await;
    let (m, _) = signature(b"payload", serde_json::json!({"urls": [format!("http://{}/blob", elsewhere.host)]}));
    // The registry has the manifest but not the blob, which only the URL would serve.
    let reg =
        Server::start(Duration::ZERO, registry(HashMap::from([(sig_tag(), ok(manifest::OCI_MANIFEST, &m))]), |_| None))
            .await;
    let e = fetch(&source_for(&[&reg.host, &elsewhere.host], Duration::from_secs(5)), &reg.host).await.unwrap_err();
    assert!(e.to_string().contains("answers 404"), "{e}");
    assert!(elsewhere.paths().is_empty(), "asked: {:?}", elsewhere.paths());
}

fn mirrors_for(registry: &str, mirror: &str) -> (tempfile::TempDir, hosts::Mirrors) {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join(registry.replace(':', "_"));
    std::fs::create_dir_all(&dir).unwrap();
    let text = format!("server = \"http://{registry}\"\n[host.\"http://{mirror}\"]\ncapabilities = [\"pull\"]\n");
    std::fs::write(dir.join("hosts.toml"), text).unwrap();
    let m = hosts::Mirrors::load(d.path()).unwrap();
    (d, m)
}

#[tokio::test]
async fn a_mirror_never_gets_the_registrys_credentials() {
    let challenge = |_: &Request| {
        Some(Reply::Full {
            status: 401,
            headers: vec![("www-authenticate".into(), "Basic realm=\"m\"".into())],
            body: vec![],
        })
    };
    let (mirror, origin) = (
        Server::start(Duration::ZERO, registry(HashMap::new(), challenge)).await,
        Server::start(Duration::ZERO, registry(signed_objects(), |_| None)).await,
    );
    let (_d, mirrors) = mirrors_for(&origin.host, &mirror.host);
    let mut credentials = auth::Credentials::default();
    let cfg = format!(r#"{{"auths": {{"{}": {{"username": "robot", "password": "s3cret"}}}}}}"#, origin.host);
    credentials.add_config(cfg.as_bytes(), "test").unwrap();
    let source = OciSignatureSource::new(
        Access { mirrors, credentials, ..Default::default() },
        Limits::default(),
        Duration::from_secs(5),
    );
    let found = fetch(&source, &origin.host).await.unwrap();
    assert_eq!(found.layers.len(), 1, "the origin, after the mirror refused");
    let seen = mirror.seen.lock().unwrap().clone();
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|s| s.authorization.is_none()), "{seen:?}");
    assert!(seen.iter().all(|s| s.path.contains(&format!("ns={}", origin.host))), "{seen:?}");
}

/// Review finding: a 401 from a redirect target on another host was answered like the
/// registry's own, so the registry's credentials went to whatever token realm that host
/// named. Now the hop's challenge is refused, and the realm hears nothing.
#[tokio::test]
async fn a_redirect_targets_challenge_never_gets_the_registrys_credentials() {
    let realm =
        Server::start(Duration::ZERO, Arc::new(|_: &Request| ok("application/json", b"{\"token\":\"t\"}"))).await;
    let realm_url = format!("http://{}/token", realm.host);
    let cdn = Server::start(
        Duration::ZERO,
        Arc::new(move |_: &Request| Reply::Full {
            status: 401,
            headers: vec![("www-authenticate".into(), format!("Bearer realm=\"{realm_url}\",service=\"cdn\""))],
            body: vec![],
        }),
    )
    .await;
    let reg = redirecting_registry(format!("http://{}/blob", cdn.host)).await;
    let mut credentials = auth::Credentials::default();
    let cfg = format!(r#"{{"auths": {{"{}": {{"username": "robot", "password": "s3cret"}}}}}}"#, reg.host);
    credentials.add_config(cfg.as_bytes(), "test").unwrap();
    let access = Access { insecure: vec![reg.host.clone()], credentials, ..Default::default() };
    let source = OciSignatureSource::new(access, Limits::default(), Duration::from_secs(5));
    let e = fetch(&source, &reg.host).await.unwrap_err();
    assert!(e.to_string().contains("redirect target"), "{e}");
    assert!(realm.paths().is_empty(), "the realm was asked: {:?}", realm.seen.lock().unwrap());
    assert_eq!(cdn.count(|p| p == "/blob"), 1);
}

#[tokio::test]
async fn a_sig_verification_is_two_rounds_with_no_probe() {
    let delay = Duration::from_millis(250);
    let reg = Server::start(delay, registry(signed_objects(), |_| None)).await;
    let source = source_for(&[&reg.host], Duration::from_secs(5));
    assert_eq!(fetch(&source, &reg.host).await.unwrap().layers.len(), 1);
    assert_eq!(reg.rounds(delay), 2, "{:?}", reg.seen.lock().unwrap());
    let mut paths = reg.paths();
    paths.sort();
    let mut want = vec![
        format!("/v2/team/app/blobs/{}", sha(b"payload")),
        format!("/v2/team/app/manifests/sha256-{}", hex()),
        format!("/v2/team/app/manifests/sha256-{}.sig", hex()),
        format!("/v2/team/app/referrers/{DIGEST}"),
    ];
    want.sort();
    assert_eq!(paths, want, "no GET /v2/");

    // The next verification reuses the connections and needs no new one.
    let before = reg.connections.load(Ordering::SeqCst);
    assert!(before <= 3, "{before} connections for three concurrent requests");
    fetch(&source, &reg.host).await.unwrap();
    assert_eq!(reg.connections.load(Ordering::SeqCst), before, "kept alive across verifications");
}

/// A cosign 3 bundle under the referrers fallback tag (a registry without the API), beside
/// an SBOM referrer; and the SBOM's digest.
fn bundle_objects() -> (HashMap<String, Reply>, String) {
    let bundle =
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cosign/bundle-v03-slsa.json"))
            .unwrap();
    let bundle_type = "application/vnd.dev.sigstore.bundle.v0.3+json";
    let m = serde_json::json!({"schemaVersion": 2, "mediaType": manifest::OCI_MANIFEST, "artifactType": bundle_type,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha(b"{}"), "size": 2},
        "layers": [{"mediaType": bundle_type, "digest": sha(&bundle), "size": bundle.len()}]})
    .to_string()
    .into_bytes();
    let sbom = sha(b"an sbom manifest");
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": [
        {"mediaType": manifest::OCI_MANIFEST, "artifactType": bundle_type, "digest": sha(&m), "size": m.len()},
        {"mediaType": manifest::OCI_MANIFEST, "artifactType": "application/spdx+json", "digest": sbom, "size": 16}]})
    .to_string()
    .into_bytes();
    let objects = HashMap::from([
        (format!("manifests/sha256-{}", hex()), ok(manifest::OCI_INDEX, &index)),
        (format!("manifests/{}", sha(&m)), ok(manifest::OCI_MANIFEST, &m)),
        (format!("blobs/{}", sha(&bundle)), ok(bundle_type, &bundle)),
    ]);
    (objects, sbom)
}

#[tokio::test]
async fn a_bundle_under_the_fallback_tag_is_three_rounds() {
    let (objects, sbom) = bundle_objects();
    let delay = Duration::from_millis(250);
    let reg = Server::start(delay, registry(objects, |_| None)).await;
    let source = source_for(&[&reg.host], Duration::from_secs(5));
    let found = fetch(&source, &reg.host).await.unwrap();
    assert_eq!(found.layers.len(), 1);
    assert_eq!(reg.rounds(delay), 3, "{:?}", reg.seen.lock().unwrap());
    assert_eq!(reg.paths().len(), 5, "tag, API, fallback, bundle manifest, bundle blob: {:?}", reg.paths());
    assert_eq!(reg.count(|p| p.contains(&sbom)), 0, "other artifacts are not downloaded");
}

/// A policy that needs signatures and attestations fetches both at once; the referrers
/// (where cosign 3 keeps either) are asked once for the two.
#[tokio::test]
async fn signatures_and_attestations_share_one_referrers_fetch() {
    let (mut objects, _) = bundle_objects();
    objects.extend(signed_objects());
    let reg = Server::start(Duration::from_millis(50), registry(objects, |_| None)).await;
    let source = source_for(&[&reg.host], Duration::from_secs(5));
    let image: Reference = format!("{}/team/app:v1", reg.host).parse().unwrap();
    let (sigs, atts) = tokio::join!(
        source.signatures(&image, DIGEST, Artifact::Signatures),
        source.signatures(&image, DIGEST, Artifact::Attestations),
    );
    let (sigs, atts) = (sigs.unwrap(), atts.unwrap());
    assert_eq!((sigs.layers.len(), atts.layers.len()), (2, 1), "the .sig layer and the bundle; the bundle");
    assert!(atts.location.ends_with(".att"), "{}", atts.location);
    let once = |what: &str, pred: &dyn Fn(&str) -> bool| assert_eq!(reg.count(pred), 1, "{what}: {:?}", reg.paths());
    once("referrers API", &|p| p.contains("/referrers/"));
    once("fallback tag", &|p| p.ends_with(&format!("manifests/sha256-{}", hex())));
    once("bundle manifest", &|p| p.contains("/manifests/sha256:"));
    once(".sig tag", &|p| p.ends_with(".sig"));
    once(".att tag", &|p| p.ends_with(".att"));
    // Nothing is kept past the verification: the next one asks again.
    fetch(&source, &reg.host).await.unwrap();
    assert_eq!(reg.count(|p| p.contains("/referrers/")), 2, "{:?}", reg.paths());
}

/// Review finding: a fetch that joined another's referrers answer got a copy nothing
/// accounted for, so many fetches of one digest held many copies past every budget and the
/// process pool. The copy now counts against the joiner's budget.
#[tokio::test]
async fn a_shared_referrers_answer_counts_against_each_holders_budget() {
    let (objects, _) = bundle_objects();
    let reg = Server::start(Duration::from_millis(50), registry(objects, |_| None)).await;
    let source = source_for(&[&reg.host], Duration::from_secs(5));
    let tls = hosts::Tls::default();
    let repo = Repository { host: &reg.host, plain_http: true, tls: &tls, name: "team/app", ns: None };
    let (roomy, tiny) = (Budget::new(1 << 20), Budget::new(16));
    let (first, second) = tokio::join!(
        source.shared_referrers(&repo, DIGEST, "l", &roomy),
        source.shared_referrers(&repo, DIGEST, "l", &tiny),
    );
    assert_eq!(first.unwrap().map(|l| l.len()), Some(1));
    let e = second.unwrap_err();
    assert!(e.to_string().contains("past its 16 byte budget"), "{e}");
    assert_eq!(reg.count(|p| p.contains("/referrers/")), 1, "one fetch: {:?}", reg.paths());
}

/// Names as a resolver would answer them (the I/O seam of [`dns::Lookup`]).
struct Names(HashMap<&'static str, std::net::IpAddr>);

impl dns::Lookup for Names {
    fn lookup(&self, name: &str) -> futures::future::BoxFuture<'static, std::io::Result<Vec<std::net::IpAddr>>> {
        let found = self.0.get(name).copied();
        Box::pin(async move { found.map(|ip| vec![ip]).ok_or_else(|| std::io::Error::other("no such name")) })
    }
}

/// A registry whose `.sig` manifest names one blob, which it answers with a 307 to `to`.
async fn redirecting_registry(to: String) -> Server {
    let (m, _) = signature(b"payload", serde_json::json!({}));
    Server::start(
        Duration::ZERO,
        registry(HashMap::from([(sig_tag(), ok(manifest::OCI_MANIFEST, &m))]), move |req| {
            req.target.contains("/blobs/").then(|| Reply::Full {
                status: 307,
                headers: vec![("location".into(), to.clone())],
                body: vec![],
            })
        }),
    )
    .await
}

fn port_of(host: &str) -> &str {
    host.rsplit_once(':').map_or("", |(_, p)| p)
}

/// A registry by name, not on loopback as far as its name says, redirects a signature blob
/// to a name that resolves to this node's loopback: the hop is not taken, by address or by
/// name; from a registry on loopback itself, the same hop is.
#[tokio::test]
async fn a_redirect_to_a_name_on_this_nodes_loopback_is_refused() {
    let cdn = Server::start(Duration::ZERO, Arc::new(|_: &Request| ok("application/octet-stream", b"payload"))).await;
    let loopback: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    let names = || Arc::new(Names(HashMap::from([("reg.test", loopback), ("cdn.test", loopback)])));
    for target in [format!("http://cdn.test:{}/blob", port_of(&cdn.host)), format!("http://{}/blob", cdn.host)] {
        let reg = redirecting_registry(target.clone()).await;
        let named = format!("reg.test:{}", port_of(&reg.host));
        let access = Access { insecure: vec![named.clone()], ..Default::default() };
        let source = OciSignatureSource::with_lookup(access, Limits::default(), Duration::from_secs(5), names());
        let e = fetch(&source, &named).await.unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, RegistryError::Refused { .. }), "{target}: {e:?}");
        assert!(text.contains(&named) && text.contains("loopback"), "{target}: {text}");
        assert!(cdn.paths().is_empty(), "{target}: the hop was taken: {:?}", cdn.paths());
        assert_eq!(reg.count(|p| p.contains("/blobs/")), 1, "{target}: {:?}", reg.paths());

        // The same registry by its loopback address: its redirects may stay on the node.
        let access = Access { insecure: vec![reg.host.clone()], ..Default::default() };
        let source = OciSignatureSource::with_lookup(access, Limits::default(), Duration::from_secs(5), names());
        assert_eq!(fetch(&source, &reg.host).await.unwrap().layers.len(), 1, "{target}");
        assert_eq!(cdn.count(|p| p == "/blob"), 1, "{target}: {:?}", cdn.paths());
        cdn.seen.lock().unwrap().clear();
    }
}

#[tokio::test]
async fn one_token_per_scope_reused_until_it_expires() {
    let tokens = Arc::new(AtomicUsize::new(0));
    let (t, host) = (Arc::clone(&tokens), Arc::new(Mutex::new(String::new())));
    let h = Arc::clone(&host);
    let reg = Server::start(
        Duration::from_millis(20),
        registry(signed_objects(), move |req| {
            if req.target.starts_with("/token") {
                assert!(req.target.contains("scope=repository%3Ateam%2Fapp%3Apull"), "{}", req.target);
                assert_eq!(req.headers.get("authorization").map(String::as_str), Some("Basic cm9ib3Q6czNjcmV0"));
                t.fetch_add(1, Ordering::SeqCst);
                return Some(ok("application/json", br#"{"token": "tok3n", "expires_in": 300}"#));
            }
            (req.headers.get("authorization").map(String::as_str) != Some("Bearer tok3n")).then(|| Reply::Full {
                status: 401,
                headers: vec![(
                    "www-authenticate".into(),
                    format!("Bearer realm=\"http://{}/token\",service=\"reg\"", h.lock().unwrap()),
                )],
                body: vec![],
            })
        }),
    )
    .await;
    *host.lock().unwrap() = reg.host.clone();
    let mut credentials = auth::Credentials::default();
    let cfg = format!(r#"{{"auths": {{"{}": {{"username": "robot", "password": "s3cret"}}}}}}"#, reg.host);
    credentials.add_config(cfg.as_bytes(), "test").unwrap();
    let access = Access { insecure: vec![reg.host.clone()], credentials, ..Default::default() };
    let source = OciSignatureSource::new(access, Limits::default(), Duration::from_secs(5));
    assert_eq!(fetch(&source, &reg.host).await.unwrap().layers.len(), 1);
    assert_eq!(tokens.load(Ordering::SeqCst), 1, "three concurrent 401s share one token fetch");
    let first = reg.paths().len();
    assert_eq!(fetch(&source, &reg.host).await.unwrap().layers.len(), 1);
    assert_eq!(tokens.load(Ordering::SeqCst), 1, "the cached token serves the next verification");
    let second: Vec<Seen> = reg.seen.lock().unwrap()[first..].to_vec();
    assert_eq!(second.len(), 4, "no 401 round trip the second time: {second:?}");
    assert!(second.iter().all(|s| s.authorization.as_deref() == Some("Bearer tok3n")));
    assert_eq!(reg.count(|p| p == "/v2/"), 0);
}

#[tokio::test]
async fn a_hostile_mirror_is_named_and_not_made_up_for() {
    let mirror = Server::start(Duration::ZERO, registry(HashMap::from([(sig_tag(), Reply::Endless)]), |_| None)).await;
    let origin = Server::start(Duration::ZERO, registry(signed_objects(), |_| None)).await;
    let (_d, mirrors) = mirrors_for(&origin.host, &mirror.host);
    let source =
        OciSignatureSource::new(Access { mirrors, ..Default::default() }, Limits::default(), Duration::from_secs(20));
    let e = fetch(&source, &origin.host).await.unwrap_err();
    assert_refused(&e, &mirror.host, "over the 1048576 byte limit");
    assert!(origin.paths().is_empty(), "a refusal is not a miss: {:?}", origin.paths());
}

#[tokio::test]
async fn a_failing_registry_is_named_with_its_own_words() {
    let down = |_: &Request| {
        Some(Reply::Full {
            status: 500,
            headers: vec![],
            body: br#"{"errors":[{"code":"UNKNOWN","message":"injected\u0007 failure"}]}"#.to_vec(),
        })
    };
    let reg = Server::start(Duration::ZERO, registry(HashMap::new(), down)).await;
    let e = fetch(&source_for(&[&reg.host], Duration::from_secs(5)), &reg.host).await.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, RegistryError::Request { .. }), "{e:?}");
    assert!(
        text.contains(&format!("{} answered 500", reg.host)) && text.contains("UNKNOWN injected failure"),
        "{text}"
    );
}

#[tokio::test]
async fn a_slow_mirror_is_named_when_the_deadline_passes() {
    let (m, _) = signature(b"payload", serde_json::json!({}));
    let slow = HashMap::from([(sig_tag(), Reply::Drip { body: m, every: Duration::from_millis(50) })]);
    let mirror = Server::start(Duration::ZERO, registry(slow, |_| None)).await;
    let (_d, mirrors) = mirrors_for("origin.example", &mirror.host);
    let source = OciSignatureSource::new(
        Access { mirrors, ..Default::default() },
        Limits::default(),
        Duration::from_millis(500),
    );
    let image: Reference = "origin.example/team/app:v1".parse().unwrap();
    let e = source.signatures(&image, DIGEST, Artifact::Signatures).await.unwrap_err();
    assert!(matches!(e, RegistryError::Timeout { .. }), "{e:?}");
    let text = e.to_string();
    // Either the deadline passed while the mirror was still being asked, or the mirror's own
    // request timed out first and the registry was being asked: the mirror is named either way.
    let still_asking = format!("(asking {})", mirror.host);
    let failed_first =
        format!("(asking origin.example; team/app/manifests/sha256-{}.sig from {} broke off", hex(), mirror.host);
    assert!(text.contains(&still_asking) || text.contains(&failed_first), "{text}");
}

#[tokio::test]
async fn a_lookaside_digest_cannot_walk_out_of_the_store() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("a.yaml"), "default-docker:\n  lookaside: file:///var/lib/sigs\n").unwrap();
    let lookaside = lookaside::Lookaside::load(d.path()).unwrap();
    let source =
        OciSignatureSource::new(Access { lookaside, ..Default::default() }, Limits::default(), Duration::from_secs(2));
    let image: Reference = "reg.io/team/app:v1".parse().unwrap();
    let e = source.signatures(&image, "sha256:../../../etc/passwd", Artifact::SimpleSigning).await.unwrap_err();
    assert!(matches!(e, RegistryError::BadReference(_)), "{e}");
}

/// A registry over TLS with a private CA that speaks only HTTP/2 (ALPN `h2`), answering from
/// `objects` (full replies only); it counts connections opened and still open.
struct H2Server {
    host: String,
    opened: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

async fn h2_server(objects: HashMap<String, Reply>) -> H2Server {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/tls");
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(dir.join("server.pem")).unwrap().map(Result::unwrap).collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let (opened, open, requests) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::default());
    let s = H2Server { host, opened: Arc::clone(&opened), open: Arc::clone(&open), requests: Arc::clone(&requests) };
    let objects = Arc::new(objects);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            opened.fetch_add(1, Ordering::SeqCst);
            open.fetch_add(1, Ordering::SeqCst);
            let (acceptor, objects, open, requests) =
                (acceptor.clone(), Arc::clone(&objects), Arc::clone(&open), Arc::clone(&requests));
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        requests.fetch_add(1, Ordering::SeqCst);
                        let path = req.uri().path().strip_prefix("/v2/team/app/").unwrap_or("").to_string();
                        let (status, body) = match objects.get(&path) {
                            Some(Reply::Full { status, body, .. }) => (status.to_owned(), body.to_vec()),
                            _ => (404, Vec::new()),
                        };
                        let resp = hyper::Response::builder()
                            .status(status)
                            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                            .unwrap();
                        async move { Ok::<_, std::convert::Infallible>(resp) }
                    });
                    let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                }
                open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    s
}

/// HTTP/2 where the registry offers it (ALPN), over one connection kept across
/// verifications: a server that speaks nothing else answers at all only over HTTP/2, and the
/// connections a cold first round raced to open are down to one.
#[tokio::test]
async fn a_registry_offering_http2_gets_it_over_one_kept_connection() {
    let reg = h2_server(signed_objects()).await;
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join(reg.host.replace(':', "_"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/tls/ca.pem"), dir.join("ca.pem"))
        .unwrap();
    let text =
        format!("server = \"https://{0}\"\nca = \"ca.pem\"\n[host.\"https://{0}\"]\nca = \"ca.pem\"\n", reg.host);
    std::fs::write(dir.join("hosts.toml"), text).unwrap();
    let mirrors = hosts::Mirrors::load(d.path()).unwrap();
    let source =
        OciSignatureSource::new(Access { mirrors, ..Default::default() }, Limits::default(), Duration::from_secs(5));
    assert_eq!(fetch(&source, &reg.host).await.unwrap().layers.len(), 1);
    let after_first = reg.opened.load(Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(fetch(&source, &reg.host).await.unwrap().layers.len(), 1);
    }
    assert_eq!(reg.requests.load(Ordering::SeqCst), 16, "four requests each");
    assert_eq!(reg.opened.load(Ordering::SeqCst), after_first, "no new connection after the first verification");
    let settled = async {
        while reg.open.load(Ordering::SeqCst) > 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    assert!(
        tokio::time::timeout(Duration::from_secs(5), settled).await.is_ok(),
        "{} open",
        reg.open.load(Ordering::SeqCst)
    );
    assert_eq!(reg.open.load(Ordering::SeqCst), 1);
}

/// A real notation signature (testdata/notation) under the referrers fallback tag of a
/// registry without the API, as notation writes it to distribution 2.8; the image digest it
/// signs; and the paths of its envelope blob.
fn notary_objects() -> (HashMap<String, Reply>, String, String) {
    let file = |n: &str| {
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/notation").join(n)).unwrap()
    };
    let digests = String::from_utf8(file("digests")).unwrap();
    let image = digests.lines().find_map(|l| l.strip_prefix("image ")).unwrap().to_string();
    let (m, jws) = (file("good.manifest.json"), file("good.jws"));
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": [
        {"mediaType": manifest::OCI_MANIFEST, "artifactType": NOTARY_SIGNATURE_ARTIFACT_TYPE,
         "digest": sha(&m), "size": m.len()}]})
    .to_string()
    .into_bytes();
    let blob = format!("blobs/{}", sha(&jws));
    let objects = HashMap::from([
        (format!("manifests/{}", image.replace(':', "-")), ok(manifest::OCI_INDEX, &index)),
        (format!("manifests/{}", sha(&m)), ok(manifest::OCI_MANIFEST, &m)),
        (blob.clone(), ok(NOTARY_JWS_MEDIA_TYPE, &jws)),
    ]);
    (objects, image, blob)
}

/// Regression (#19): notation signatures are OCI referrers; before, nothing fetched them.
#[tokio::test]
async fn a_notation_envelope_is_found_under_the_fallback_tag() {
    let (objects, image_digest, _) = notary_objects();
    let jws = match objects
        .values()
        .find(|r| matches!(r, Reply::Full { headers, .. } if headers[0].1 == NOTARY_JWS_MEDIA_TYPE))
    {
        Some(Reply::Full { body, .. }) => body.clone(),
        _ => unreachable!(),
    };
    let reg = Server::start(Duration::ZERO, registry(objects, |_| None)).await;
    let source = source_for(&[&reg.host], Duration::from_secs(5));
    let image: Reference = format!("{}/team/app:v1", reg.host).parse().unwrap();
    let found = source.signatures(&image, &image_digest, Artifact::Notary).await.unwrap();
    assert_eq!(found.layers.len(), 1, "{:?}", reg.paths());
    assert_eq!((found.layers[0].form, &found.layers[0].payload), (Form::Notary, &jws));
    assert!(found.location.ends_with(&format!(":{}", image_digest.replace(':', "-"))), "{}", found.location);
    assert_eq!(reg.count(|p| p.ends_with(".sig") || p.ends_with(".att")), 0, "no cosign tags: {:?}", reg.paths());
    // cosign's fetches do not take a notation envelope for theirs.
    let sigs = source.signatures(&image, &image_digest, Artifact::Signatures).await.unwrap();
    assert!(sigs.layers.is_empty(), "{sigs:?}");
}

#[tokio::test]
async fn a_notation_envelope_is_digest_checked() {
    let (mut objects, image_digest, blob) = notary_objects();
    let Some(Reply::Full { body, .. }) = objects.get_mut(&blob) else { unreachable!() };
    body[100] ^= 1;
    let reg = Server::start(Duration::ZERO, registry(objects, |_| None)).await;
    let source = source_for(&[&reg.host], Duration::from_secs(5));
    let image: Reference = format!("{}/team/app:v1", reg.host).parse().unwrap();
    let e = source.signatures(&image, &image_digest, Artifact::Notary).await.unwrap_err();
    assert!(matches!(e, RegistryError::PayloadDigestMismatch { .. }), "{e:?}");
}

/// The referrer vectors (testdata/notation-referrer) as a registry without the referrers
/// API keeps them: the image's fallback tag lists the SBOM (beside another artifact type and
/// a signature of the image itself), the SBOM's fallback tag lists notation's signature over
/// it. With the SBOM manifest's digest, and the path of its layer's blob.
fn sbom_objects() -> (HashMap<String, Reply>, String, String) {
    use crate::testutil::vectors::{notation_referrer as file, notation_referrer_digest as digest};
    let (image, sbom) = (digest("image"), digest("sbom"));
    let (m, sig, jws, payload) =
        (file("sbom.manifest.json"), file("good-signature.manifest.json"), file("good.jws"), file("sbom.json"));
    let entry = |t: &str, d: &str, size: usize| serde_json::json!({"mediaType": manifest::OCI_MANIFEST, "artifactType": t, "digest": d, "size": size});
    let index = |entries: Vec<serde_json::Value>| {
        serde_json::json!({"schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": entries})
            .to_string()
            .into_bytes()
    };
    let image_index = index(vec![
        entry("application/spdx+json", &sha(b"an spdx manifest"), 16),
        entry(NOTARY_SIGNATURE_ARTIFACT_TYPE, &sha(b"an image signature"), 18),
        entry("sbom/cyclone-dx", &sbom, m.len()),
    ]);
    let sbom_index = index(vec![entry(NOTARY_SIGNATURE_ARTIFACT_TYPE, &sha(sig.as_bytes()), sig.len())]);
    let blob = format!("blobs/{}", sha(payload.as_bytes()));
    let objects = HashMap::from([
        (format!("manifests/{}", image.replace(':', "-")), ok(manifest::OCI_INDEX, &image_index)),
        (format!("manifests/{sbom}"), ok(manifest::OCI_MANIFEST, m.as_bytes())),
        (format!("manifests/{}", sbom.replace(':', "-")), ok(manifest::OCI_INDEX, &sbom_index)),
        (format!("manifests/{}", sha(sig.as_bytes())), ok(manifest::OCI_MANIFEST, sig.as_bytes())),
        (format!("blobs/{}", sha(jws.as_bytes())), ok(NOTARY_JWS_MEDIA_TYPE, jws.as_bytes())),
        (blob.clone(), ok("application/vnd.cyclonedx+json", payload.as_bytes())),
    ]);
    (objects, sbom, blob)
}

/// With `payloads`, the payload of every artifact that lists a signature (the fetching, not
/// the choice of which, is under test here).
async fn referred_from(reg: &Server, payloads: bool) -> Result<Referred, RegistryError> {
    let source = source_for(&[&reg.host], Duration::from_secs(5));
    let image: Reference = format!("{}/team/app:v1", reg.host).parse().unwrap();
    let digest = crate::testutil::vectors::notation_referrer_digest("image");
    source.referred(&image, &digest, "sbom/cyclone-dx", payloads.then_some(&any_artifact)).await
}

/// A source for `reg` fetching one artifact at a time (in the list's order) within a budget
/// of `max_total_bytes`, and the image it is asked about.
fn one_at_a_time(reg: &Server, max_total_bytes: usize) -> (OciSignatureSource, Reference) {
    let access = Access { insecure: vec![reg.host.clone()], ..Default::default() };
    let limits = Limits { max_total_bytes, max_concurrent: 1, ..Limits::default() };
    let at = format!("{}/team/app:v1", reg.host).parse().unwrap();
    (OciSignatureSource::new(access, limits, Duration::from_secs(5)), at)
}

fn any_artifact(_: usize, _: &ReferredArtifact) -> bool {
    true
}

/// Regression (#19): referrer attestations were never fetched. The SBOM comes with its
/// subject, its payload and notation's signature over it, and what the registry brings
/// verifies; other artifact types and the image's own signatures are not downloaded.
#[tokio::test]
async fn an_sbom_referrer_comes_with_its_notation_signature_and_payload() {
    use crate::testutil::vectors::{notation_referrer, notation_referrer_digest, notation_referrer_time};
    let (objects, sbom, blob) = sbom_objects();
    let reg = Server::start(Duration::ZERO, registry(objects, |_| None)).await;
    let found = referred_from(&reg, true).await.unwrap();
    assert_eq!(found.artifacts.len(), 1, "{found:?}");
    let a = &found.artifacts[0];
    assert_eq!(a.digest, sbom);
    assert_eq!(a.subject.as_deref(), Some(notation_referrer_digest("image").as_str()));
    assert_eq!(a.payload, Some(Ok(notation_referrer("sbom.json").into_bytes())));
    assert_eq!(a.signatures.layers.len(), 1);
    assert_eq!(a.signatures.layers[0].payload, notation_referrer("good.jws").into_bytes());
    assert!(a.signatures.location.ends_with(&sbom.replace(':', "-")), "{}", a.signatures.location);
    assert_eq!(reg.count(|p| p.contains(&sha(b"an spdx manifest")) || p.contains(&sha(b"an image signature"))), 0);
    let trust = crate::verify::trust::TrustRoot::empty();
    let cx = crate::verify::Context { trust: &trust, now: notation_referrer_time() };
    let signer = crate::verify::signer::Signer::Notary(
        crate::verify::notary::NotaryTrust::from_pem(&notation_referrer("trusted.crt")).unwrap(),
    );
    let image = notation_referrer_digest("image");
    let v = crate::verify::referred::verify_referred(&found, "sbom/cyclone-dx", &image, &signer, cx).unwrap();
    assert_eq!(v.payload.unwrap().unwrap()["bomFormat"], "CycloneDX");
    // Without extractPayload, no payload is downloaded.
    let reg = Server::start(Duration::ZERO, registry(sbom_objects().0, |_| None)).await;
    let found = referred_from(&reg, false).await.unwrap();
    assert_eq!(found.artifacts[0].payload, None);
    assert_eq!(reg.count(|p| p.ends_with(&blob)), 0, "{:?}", reg.paths());
}

#[tokio::test]
async fn an_unsigned_referrer_payload_is_not_downloaded_and_nothing_attached_is_none() {
    let (mut objects, sbom, blob) = sbom_objects();
    objects.remove(&format!("manifests/{}", sbom.replace(':', "-")));
    let reg = Server::start(Duration::ZERO, registry(objects, |_| None)).await;
    let found = referred_from(&reg, true).await.unwrap();
    assert_eq!(found.artifacts.len(), 1);
    assert!(found.artifacts[0].signatures.layers.is_empty() && found.artifacts[0].payload.is_none());
    assert_eq!(reg.count(|p| p.ends_with(&blob)), 0, "{:?}", reg.paths());
    // No referrers at all: nothing, not an error.
    let reg = Server::start(Duration::ZERO, registry(HashMap::new(), |_| None)).await;
    assert_eq!(referred_from(&reg, true).await.unwrap().artifacts, vec![]);
}

/// An SBOM manifest over `layers` (each its bytes and media type), attached to the image,
/// in place of the vectors' own; its signature (made for the vectors' manifest) is kept, as
/// only fetching is under test here.
fn sbom_objects_with_layers(layers: &[(&[u8], &str)], sizes: Option<usize>) -> (HashMap<String, Reply>, String) {
    use crate::testutil::vectors::notation_referrer_digest as digest;
    let (mut objects, sbom, _) = sbom_objects();
    let image = digest("image");
    let descs: Vec<_> = layers
        .iter()
        .map(|(b, t)| serde_json::json!({"mediaType": t, "digest": sha(b), "size": sizes.unwrap_or(b.len())}))
        .collect();
    let m =
        serde_json::json!({"schemaVersion": 2, "mediaType": manifest::OCI_MANIFEST, "artifactType": "sbom/cyclone-dx",
        "config": {"mediaType": manifest::OCI_EMPTY, "digest": sha(b"{}"), "size": 2}, "layers": descs,
        "subject": {"mediaType": manifest::OCI_MANIFEST, "digest": image, "size": 1}})
        .to_string()
        .into_bytes();
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": [
        {"mediaType": manifest::OCI_MANIFEST, "artifactType": "sbom/cyclone-dx", "digest": sha(&m), "size": m.len()}]})
    .to_string()
    .into_bytes();
    let sig_index = objects.remove(&format!("manifests/{}", sbom.replace(':', "-"))).unwrap();
    objects.insert(format!("manifests/{}", image.replace(':', "-")), ok(manifest::OCI_INDEX, &index));
    objects.insert(format!("manifests/{}", sha(&m)), ok(manifest::OCI_MANIFEST, &m));
    objects.insert(format!("manifests/{}", sha(&m).replace(':', "-")), sig_index);
    for (b, t) in layers {
        objects.insert(format!("blobs/{}", sha(b)), ok(t, b));
    }
    (objects, sha(&m))
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// What a registry can make the node read through a referrer's payload is bounded: a gzip
/// payload is decompressed (as Kyverno reads it) only up to the artifact limit, a descriptor
/// over the limit is not fetched, and only one-layer artifacts are read.
#[tokio::test]
async fn referrer_payloads_are_bounded_before_and_after_decompression() {
    let payload = |layers: &[(&[u8], &str)], sizes: Option<usize>| {
        let (objects, _) = sbom_objects_with_layers(layers, sizes);
        async move {
            let reg = Server::start(Duration::ZERO, registry(objects, |_| None)).await;
            let found = referred_from(&reg, true).await.unwrap();
            (found.artifacts[0].payload.clone().unwrap().map_err(|e| e.to_string()), reg.paths())
        }
    };
    let json = br#"{"bomFormat":"CycloneDX"}"#;
    let (p, _) = payload(&[(&gzip(json), "application/vnd.cyclonedx+json+gzip")], None).await;
    assert_eq!(p.unwrap(), json.to_vec());
    // A gzip bomb: 64 KiB on the wire, 64 MiB inflated.
    let bomb = gzip(&vec![b' '; 64 << 20]);
    let (p, _) = payload(&[(&bomb, "application/gzip")], None).await;
    assert!(p.unwrap_err().contains("over the 1048576 byte limit once decompressed"));
    let big = vec![b' '; (1 << 20) + 1];
    let (p, paths) = payload(&[(&big, "application/json")], None).await;
    assert!(p.unwrap_err().contains("over the 1048576 byte limit"));
    assert!(!paths.iter().any(|p| p.ends_with(&sha(&big))), "not fetched: {paths:?}");
    let (p, _) = payload(&[(json, "application/json"), (json, "application/json")], None).await;
    assert!(p.unwrap_err().contains("has 2 layers"));
    // A blob longer than its descriptor says is cut off there.
    let (p, _) = payload(&[(json, "application/json")], Some(4)).await;
    assert!(p.unwrap_err().contains("larger than its descriptor's 4 bytes"));
}

#[tokio::test]
async fn referrers_are_capped_deduplicated_and_digest_checked() {
    let (mut objects, sbom, _) = sbom_objects();
    let image = crate::testutil::vectors::notation_referrer_digest("image");
    let fallback = format!("manifests/{}", image.replace(':', "-"));
    let list = |entries: Vec<String>| {
        let manifests: Vec<_> = entries
            .iter()
            .map(|d| {
                serde_json::json!({"mediaType": manifest::OCI_MANIFEST,
            "artifactType": "sbom/cyclone-dx", "digest": d, "size": 10})
            })
            .collect();
        ok(manifest::OCI_INDEX, serde_json::json!({"schemaVersion": 2, "manifests": manifests}).to_string().as_bytes())
    };
    objects.insert(fallback.clone(), list(vec![sbom.clone(), sbom.clone(), sbom.clone()]));
    let reg = Server::start(Duration::ZERO, registry(objects.clone(), |_| None)).await;
    assert_eq!(referred_from(&reg, false).await.unwrap().artifacts.len(), 1, "one artifact listed thrice");
    let many: Vec<String> = (0..65).map(|i| sha(format!("artifact {i}").as_bytes())).collect();
    objects.insert(fallback.clone(), list(many));
    let reg = Server::start(Duration::ZERO, registry(objects.clone(), |_| None)).await;
    let e = referred_from(&reg, false).await.unwrap_err();
    assert!(matches!(e, RegistryError::TooManyReferrers { count: 65, limit: 64, .. }), "{e:?}");
    assert!(e.to_string().contains("list 65 artifacts of type sbom/cyclone-dx, over the limit of 64"), "{e}");
    assert_eq!(reg.paths().len(), 2, "no artifact fetched past the cap: {:?}", reg.paths());
    // The manifest the registry serves for the SBOM's digest is another one.
    let (mut objects, sbom, _) = sbom_objects();
    objects.insert(format!("manifests/{sbom}"), ok(manifest::OCI_MANIFEST, b"{\"schemaVersion\":2}"));
    let reg = Server::start(Duration::ZERO, registry(objects, |_| None)).await;
    let e = referred_from(&reg, true).await.unwrap_err();
    assert!(matches!(e, RegistryError::ContentDigestMismatch { .. }), "{e:?}");
}

/// The referrers API, where the registry has one, answers for the image and for the SBOM;
/// the type the SBOM's own (signed) manifest says is what is kept.
#[tokio::test]
async fn an_sbom_referrer_is_found_through_the_referrers_api() {
    let (mut objects, sbom, _) = sbom_objects();
    let image = crate::testutil::vectors::notation_referrer_digest("image");
    for d in [&image, &sbom] {
        let listed = objects.remove(&format!("manifests/{}", d.replace(':', "-"))).unwrap();
        objects.insert(format!("referrers/{d}"), listed);
    }
    let reg = Server::start(Duration::ZERO, registry(objects, |_| None)).await;
    let found = referred_from(&reg, true).await.unwrap();
    assert_eq!(found.artifacts.len(), 1, "{:?}", reg.paths());
    assert_eq!(found.artifacts[0].artifact_type.as_deref(), Some("sbom/cyclone-dx"));
    assert_eq!(found.artifacts[0].signatures.layers.len(), 1);
    assert!(found.artifacts[0].payload.as_ref().unwrap().is_ok());
}

/// Review findings: a hostile list multiplied the requests (each artifact's signatures
/// fetched 8 at a time beside 8 artifacts at a time, 64 of them each); and an over-budget
/// payload failed the whole fetch, so one large unverified artifact listed first refused an
/// image whose verified SBOM came after it.
#[tokio::test]
async fn referrer_signatures_are_capped_and_an_over_budget_payload_is_that_artifacts_alone() {
    let (mut objects, sbom, blob) = sbom_objects();
    let sig_index = format!("manifests/{}", sbom.replace(':', "-"));
    let Some(Reply::Full { body, .. }) = objects.get(&sig_index) else { unreachable!() };
    let mut listed: serde_json::Value = serde_json::from_slice(body).unwrap();
    let entry = listed["manifests"][0].clone();
    let copies: Vec<_> = (0..40).map(|_| entry.clone()).collect();
    listed["manifests"] = serde_json::Value::Array(copies);
    objects.insert(sig_index, ok(manifest::OCI_INDEX, listed.to_string().as_bytes()));
    let reg = Server::start(Duration::ZERO, registry(objects, |_| None)).await;
    let found = referred_from(&reg, false).await.unwrap();
    assert_eq!(found.artifacts[0].signatures.layers.len(), super::referred::MAX_SIGNATURE_ATTEMPTS);
    let signature_fetches = reg.count(|p| p.contains("/manifests/sha256:") && !p.ends_with(&sbom));
    assert_eq!(signature_fetches, super::referred::MAX_SIGNATURE_ATTEMPTS, "{:?}", reg.paths());

    // A budget with room for the first artifact's payload only: the second's is unreadable,
    // the fetch (and the first) stands.
    let (mut objects, _, _) = sbom_objects();
    let image = crate::testutil::vectors::notation_referrer_digest("image");
    let fallback = format!("manifests/{}", image.replace(':', "-"));
    let (second, second_sbom) = {
        let (o, d) = sbom_objects_with_layers(&[(&vec![b' '; 600 << 10], "application/json")], None);
        (o, d)
    };
    for (k, v) in second {
        objects.entry(k).or_insert(v);
    }
    let Some(Reply::Full { body, .. }) = objects.get(&fallback) else { unreachable!() };
    let mut listed: serde_json::Value = serde_json::from_slice(body).unwrap();
    let second_entry = serde_json::json!({"mediaType": manifest::OCI_MANIFEST, "artifactType": "sbom/cyclone-dx",
        "digest": second_sbom, "size": 1});
    listed["manifests"].as_array_mut().unwrap().push(second_entry);
    objects.insert(fallback, ok(manifest::OCI_INDEX, listed.to_string().as_bytes()));
    let reg = Server::start(Duration::ZERO, registry(objects, |_| None)).await;
    let (source, at) = one_at_a_time(&reg, 600 << 10);
    let found = source.referred(&at, &image, "sbom/cyclone-dx", Some(&any_artifact)).await.unwrap();
    assert_eq!(found.artifacts.len(), 2, "{found:?}");
    assert!(found.artifacts[0].payload.as_ref().unwrap().is_ok());
    let e = found.artifacts[1].payload.clone().unwrap().unwrap_err();
    assert!(matches!(e, PayloadError::Budget(_)), "{e}");
    assert!(reg.count(|p| p.ends_with(&blob)) == 1);
}

/// Review finding: only the first gzip member was read and bytes after it ignored; Go's
/// reader (Kyverno's) reads every member and refuses trailing garbage.
#[tokio::test]
async fn referrer_gzip_payloads_are_read_whole_as_go_reads_them() {
    let payload = |bytes: Vec<u8>| async move {
        let (objects, _) = sbom_objects_with_layers(&[(&bytes, "application/gzip")], None);
        let reg = Server::start(Duration::ZERO, registry(objects, |_| None)).await;
        referred_from(&reg, true).await.unwrap().artifacts[0].payload.clone().unwrap()
    };
    let mut two = gzip(br#"{"bomFormat":"#);
    two.extend(gzip(br#""CycloneDX"}"#));
    assert_eq!(payload(two).await.unwrap(), br#"{"bomFormat":"CycloneDX"}"#.to_vec());
    let mut trailing = gzip(br#"{"bomFormat":"CycloneDX"}"#);
    trailing.extend(b"garbage after the member");
    assert!(matches!(payload(trailing).await, Err(PayloadError::Gzip(_))));
}

/// Regression (#19, left open by the referrer work): every artifact with something in its
/// signature list had its payload downloaded before any signature was verified: here three
/// payloads of almost 1 MiB that verify for no one were read into a 2 MiB budget (the third
/// cut off by it) before the trusted SBOM. Whoever can push could so use up the budget the
/// trusted artifact's payload needs, and deny a properly signed image. Now a payload is read
/// only for an artifact the policy's signer verifies.
#[tokio::test]
async fn payloads_no_trusted_signer_verified_are_not_downloaded() {
    use crate::testutil::vectors::{notation_referrer, notation_referrer_digest, notation_referrer_time};
    let (mut objects, sbom, blob) = sbom_objects();
    let image = notation_referrer_digest("image");
    let fallback = format!("manifests/{}", image.replace(':', "-"));
    // Three artifacts of the type, attached to the image, each listing a signature (one
    // over another artifact), each with a payload just under the 1 MiB artifact limit.
    let mut listed = Vec::new();
    let mut junk_blobs = Vec::new();
    for i in 0..3u8 {
        let payload = vec![b'a' + i; (1 << 20) - 1024];
        junk_blobs.push(format!("blobs/{}", sha(&payload)));
        let (junk, digest) = sbom_objects_with_layers(&[(&payload, "application/json")], None);
        for (k, v) in junk {
            objects.entry(k).or_insert(v);
        }
        listed.push(serde_json::json!({"mediaType": manifest::OCI_MANIFEST, "artifactType": "sbom/cyclone-dx",
            "digest": digest, "size": 1}));
    }
    let m = notation_referrer("sbom.manifest.json");
    listed.push(serde_json::json!({"mediaType": manifest::OCI_MANIFEST, "artifactType": "sbom/cyclone-dx",
        "digest": sbom, "size": m.len()}));
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": listed});
    objects.insert(fallback, ok(manifest::OCI_INDEX, index.to_string().as_bytes()));
    let reg = Server::start(Duration::ZERO, registry(objects, |_| None)).await;
    let (source, at) = one_at_a_time(&reg, 2 << 20);
    let trust = crate::verify::trust::TrustRoot::empty();
    let cx = crate::verify::Context { trust: &trust, now: notation_referrer_time() };
    let signer = crate::verify::signer::Signer::Notary(
        crate::verify::notary::NotaryTrust::from_pem(&notation_referrer("trusted.crt")).unwrap(),
    );
    let verified =
        |_, a: &ReferredArtifact| crate::verify::referred::verifies(a, "sbom/cyclone-dx", &image, &signer, cx);
    let found = source.referred(&at, &image, "sbom/cyclone-dx", Some(&verified)).await.unwrap();
    assert_eq!(found.artifacts.len(), 4, "{:?}", reg.paths());
    let v = crate::verify::referred::verify_referred(&found, "sbom/cyclone-dx", &image, &signer, cx).unwrap();
    assert_eq!(v.digest, sbom);
    assert_eq!(v.payload.unwrap().unwrap()["bomFormat"], "CycloneDX");
    assert_eq!(reg.count(|p| junk_blobs.iter().any(|b| p.ends_with(b))), 0, "{:?}", reg.paths());
    assert_eq!(reg.count(|p| p.ends_with(&blob)), 1);
}
