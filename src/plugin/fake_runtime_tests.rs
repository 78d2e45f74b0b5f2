//! In-process tests of the whole NRI layer against a fake runtime at the socket seam.
//!
//! The fake plays containerd's side of the NRI socket with the same mux and ttrpc: it serves
//! the Runtime service (RegisterPlugin) and calls the plugin's methods with deadlines. The
//! real-runtime behaviour is covered by `integration/e2e.sh`; these pin down the protocol
//! corners that a real runtime does not easily produce on demand.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UnixListener;
use tokio::sync::watch;
use ttrpc::proto::RequestInit;

use nri::api::{ConfigureRequest, CreateContainerRequest, SynchronizeRequest};
use nri::runtime_side::{self, accept, create_request};
use nri::{run, PluginIdentity, Transport};

use super::NriHandler;
use crate::enforce::{Enforcer, EnforcerConfig};
use crate::imagestore::FakeImageStore;
use crate::policy::matching::ImageGlob;
use crate::policy::{Authority, AuthorityKind, Mode, NoMatchAction, Policy, PolicySet};
use crate::registry::FakeSignatureSource;
use crate::testutil::TestSigner;

const SIGNED: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const UNSIGNED: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

struct Setup {
    listener: UnixListener,
    source: Arc<FakeSignatureSource>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), nri::NriError>>,
    _policy: watch::Sender<Arc<PolicySet>>,
    _dir: tempfile::TempDir,
}

fn start() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nri.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let signer = TestSigner::new(3);
    let store = FakeImageStore::new();
    store.put("reg.io/app:signed", SIGNED);
    store.put("reg.io/app:unsigned", UNSIGNED);
    // Each container's rootfs is the content its name resolves to, as the CRI makes it.
    store.unpack_for(&container_id("reg.io/app:signed"), SIGNED);
    store.unpack_for(&container_id("reg.io/app:unsigned"), UNSIGNED);
    let source = FakeSignatureSource::new();
    source.set(SIGNED, Ok(vec![signer.sign_digest("reg.io/app", SIGNED)]));
    let policy = Policy::any_of(
        "app",
        vec![ImageGlob::new("reg.io/**").unwrap()],
        vec![Authority { name: "k".into(), kind: AuthorityKind::key(signer.trusted()) }],
        Mode::Enforce,
    );
    let (policy_tx, rx) = watch::channel(PolicySet::new(vec![policy], NoMatchAction::Deny, b"t"));
    let enforcer = Arc::new(Enforcer::new(store, source.clone(), rx, EnforcerConfig::default()));
    let handler = Arc::new(NriHandler::new(enforcer));
    let (shutdown, shutdown_rx) = watch::channel(false);
    let id = PluginIdentity::new("signet", "05").unwrap();
    let task = tokio::spawn(run(Transport::External(path), id, handler, shutdown_rx));
    Setup { listener, source, shutdown, task, _policy: policy_tx, _dir: dir }
}

fn container_id(image: &str) -> String {
    format!("ctr-{image}")
}

fn create_req(image: &str) -> CreateContainerRequest {
    let mut req = create_request(image, "default");
    req.container.as_mut().unwrap().id = container_id(image);
    req
}

fn ctx(ms: u64) -> ttrpc::context::Context {
    runtime_side::ctx(Duration::from_millis(ms))
}

#[tokio::test]
async fn registers_configures_and_decides_over_the_socket() {
    let s = start();
    let rt = accept(&s.listener).await;
    assert_eq!((rt.registered.plugin_name.as_str(), rt.registered.plugin_idx.as_str()), ("signet", "05"));

    let conf = rt
        .plugin
        .configure(ctx(2000), &ConfigureRequest { runtime_name: "fake".into(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(conf.events, 0x8, "only CreateContainer");
    rt.plugin.synchronize(ctx(2000), &SynchronizeRequest::default()).await.unwrap();

    assert!(rt.plugin.create_container(ctx(2000), &create_req("reg.io/app:signed")).await.is_ok());
    match rt.plugin.create_container(ctx(2000), &create_req("reg.io/app:unsigned")).await {
        Err(ttrpc::Error::RpcStatus(st)) => {
            assert_eq!(st.code(), ttrpc::Code::PERMISSION_DENIED);
            assert!(st.message().contains(UNSIGNED) && st.message().contains("no signatures"), "{}", st.message());
        }
        other => panic!("unsigned image not denied: {other:?}"),
    }
    // A request without a container or annotation is denied, and the daemon lives on.
    assert!(rt.plugin.create_container(ctx(2000), &CreateContainerRequest::default()).await.is_err());
    assert!(rt.plugin.create_container(ctx(2000), &create_req("reg.io/app:signed")).await.is_ok());

    let _ = s.shutdown.send(true);
    tokio::time::timeout(Duration::from_secs(10), s.task).await.unwrap().unwrap().unwrap();
}

/// Regression (#13.12): a Kubernetes image volume (containerd >= 2.1 mounts the unpacked
/// image; NRI shows only the bind mount, its source naming the digest) is checked under
/// policy like the container's image: a signed container with an unsigned volume is denied.
#[tokio::test]
async fn an_unsigned_image_volume_denies_a_signed_container() {
    use nri::api::Mount;
    let s = start();
    let rt = accept(&s.listener).await;
    rt.plugin.configure(ctx(2000), &ConfigureRequest::default()).await.unwrap();
    rt.plugin.synchronize(ctx(2000), &SynchronizeRequest::default()).await.unwrap();
    let with_volume = |digest: &str| {
        let mut req = create_req("reg.io/app:signed");
        let source = format!("/run/containerd/io.containerd.grpc.v1.cri/image-volumes/pod1/{}", &digest[7..]);
        let mount = Mount { destination: "/data".into(), type_: "bind".into(), source, ..Default::default() };
        req.container.as_mut().unwrap().mounts.push(mount);
        req
    };
    match rt.plugin.create_container(ctx(2000), &with_volume(UNSIGNED)).await {
        Err(ttrpc::Error::RpcStatus(st)) => {
            let m = st.message();
            assert!(m.contains("image volume at /data") && m.contains(UNSIGNED) && m.contains("no signatures"), "{m}");
        }
        other => panic!("unsigned image volume not denied: {other:?}"),
    }
    assert!(rt.plugin.create_container(ctx(2000), &with_volume(SIGNED)).await.is_ok(), "signed volume admitted");
    let _ = s.shutdown.send(true);
}

#[tokio::test]
async fn synchronize_prewarms_running_images_without_delaying_the_reply() {
    let s = start();
    s.source.set_delay(Duration::from_millis(300));
    let rt = accept(&s.listener).await;
    let running = create_req("reg.io/app:signed").container.unwrap();
    let sync = SynchronizeRequest { containers: vec![running.clone(), running], ..Default::default() };
    let t0 = Instant::now();
    rt.plugin.synchronize(ctx(2000), &sync).await.unwrap();
    assert!(t0.elapsed() < Duration::from_millis(300), "synchronize waited for verification");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.source.calls.load(Ordering::SeqCst), 1, "one fetch for two containers of one image");
    // The first pod of that image is answered from the cache: no new fetch, no delay.
    let t0 = Instant::now();
    assert!(rt.plugin.create_container(ctx(2000), &create_req("reg.io/app:signed")).await.is_ok());
    assert!(t0.elapsed() < Duration::from_millis(300));
    assert_eq!(s.source.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn newer_runtime_methods_get_unimplemented() {
    let s = start();
    let rt = accept(&s.listener).await;
    let req = ttrpc::Request::init_request(
        "nri.pkg.api.v1alpha1.Plugin".into(),
        "UpdatePodSandbox".into(),
        Duration::from_secs(1).as_nanos() as i64,
        vec![],
    );
    let resp = rt.raw.request(req).await;
    let code = match resp {
        Ok(r) => r.status.as_ref().map(|s| s.code()),
        Err(ttrpc::Error::RpcStatus(st)) => Some(st.code()),
        Err(e) => panic!("transport error: {e}"),
    };
    assert_eq!(code, Some(ttrpc::Code::UNIMPLEMENTED));
}

#[tokio::test]
async fn slow_registry_is_answered_inside_the_runtime_deadline() {
    let s = start();
    s.source.set_delay(Duration::from_secs(3));
    let rt = accept(&s.listener).await;
    rt.plugin.configure(ctx(2000), &ConfigureRequest::default()).await.unwrap();
    let t0 = Instant::now();
    let r = rt.plugin.create_container(ctx(600), &create_req("reg.io/app:signed")).await;
    let took = t0.elapsed();
    assert!(took < Duration::from_millis(600), "answered after the deadline: {took:?}");
    match r {
        Err(ttrpc::Error::RpcStatus(st)) => {
            assert_eq!(st.code(), ttrpc::Code::PERMISSION_DENIED);
            assert!(st.message().contains("continues in the background"), "{}", st.message());
        }
        other => panic!("expected an in-time denial, got {other:?}"),
    }
}

#[tokio::test]
async fn redials_and_registers_again_when_the_runtime_goes_away() {
    let s = start();
    let first = accept(&s.listener).await;
    first.socket.abort();
    let second = accept(&s.listener).await;
    assert_eq!(second.registered.plugin_name, "signet");
    assert!(second.plugin.create_container(ctx(2000), &create_req("reg.io/app:signed")).await.is_ok());
}
