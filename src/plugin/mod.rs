//! signet as an NRI plugin: what it answers when the runtime calls (the [`nri`] crate
//! carries the socket, registration and reconnection).
//!
//! Only CreateContainer is subscribed to. Its reply is built in exactly one place,
//! [`reply`]: an allowed decision is an empty adjustment, anything else is a
//! PermissionDenied status whose message is the decision's human-readable text — containerd
//! fails the creation and the CRI client (kubelet, crictl) shows that text.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ttrpc::r#async::TtrpcContext;

use crate::decision::{Decision, ImageClaim, Outcome, PodMetadata};
use crate::enforce::Enforcer;
use crate::sync::events::{Denial, DenialEvents};
use nri::api::{
    ConfigureRequest, ConfigureResponse, Container, CreateContainerRequest, CreateContainerResponse, Empty, PodSandbox,
    SynchronizeRequest, SynchronizeResponse,
};
use nri::Plugin;

pub use nri::CRI_IMAGE_NAME_ANNOTATION as IMAGE_NAME_ANNOTATION;
/// The runtime's request timeout when it does not tell us (NRI default).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Pre-warm runs off the request path, so it may wait for slow registries.
const PREWARM_BUDGET: Duration = Duration::from_secs(30);

/// How much of the runtime's timeout a decision may use. The rest is margin for the reply
/// to travel back and for scheduling hiccups: a late answer is a dropped plugin, and a
/// dropped plugin is an unchecked container.
pub fn decision_budget(timeout: Duration) -> Duration {
    let margin = (timeout / 4).max(Duration::from_millis(200));
    timeout.saturating_sub(margin).max(Duration::from_millis(50))
}

pub struct NriHandler {
    enforcer: Arc<Enforcer>,
    /// Request timeout announced in Configure (ms, 0 = not announced).
    configured_timeout_ms: AtomicU64,
    /// Registered and configured with a runtime right now.
    synchronized: AtomicBool,
    events: Option<DenialEvents>,
}

impl NriHandler {
    pub fn new(enforcer: Arc<Enforcer>) -> Self {
        Self { enforcer, configured_timeout_ms: AtomicU64::new(0), synchronized: AtomicBool::new(false), events: None }
    }

    /// Also post a Kubernetes Event on the pod for each denial.
    pub fn with_events(mut self, events: DenialEvents) -> Self {
        self.events = Some(events);
        self
    }

    pub fn is_synchronized(&self) -> bool {
        self.synchronized.load(Ordering::SeqCst)
    }

    pub fn connection_lost(&self) {
        self.synchronized.store(false, Ordering::SeqCst);
    }

    /// The runtime's timeout for this request: the tighter of what the request carries
    /// and what Configure announced, else the NRI default.
    fn request_timeout(&self, ctx_timeout_nano: i64) -> Duration {
        let mut t = DEFAULT_REQUEST_TIMEOUT;
        let configured = self.configured_timeout_ms.load(Ordering::SeqCst);
        if configured > 0 {
            t = Duration::from_millis(configured);
        }
        if ctx_timeout_nano > 0 {
            t = t.min(Duration::from_nanos(ctx_timeout_nano as u64));
        }
        t
    }

    /// Decide for one CreateContainer request (public for in-process tests and benchmarks):
    /// the container's image and every image volume it mounts, at once, under one budget.
    /// The container runs only if all are admitted; the answer is the first denial, else
    /// the first warning, else the container image's decision.
    pub async fn create_container_decision(&self, req: &CreateContainerRequest, ctx_timeout_nano: i64) -> Decision {
        let budget = decision_budget(self.request_timeout(ctx_timeout_nano));
        let claim = image_claim(req);
        let volumes = volume_claims(req);
        if volumes.is_empty() {
            return self.enforcer.decide(&claim, budget).await;
        }
        let all = std::iter::once(&claim).chain(&volumes).map(|c| self.enforcer.decide(c, budget));
        let mut decisions = futures::future::join_all(all).await;
        for (d, c) in decisions.iter_mut().zip(std::iter::once(&claim).chain(&volumes)).skip(1) {
            if let Some(dest) = &c.volume {
                d.reason = format!("image volume at {dest}: {}", d.reason);
            }
        }
        let pick = decisions
            .iter()
            .position(|d| d.outcome == Outcome::Denied)
            .or_else(|| decisions.iter().position(|d| d.outcome == Outcome::Warned))
            .unwrap_or(0);
        decisions.swap_remove(pick)
    }
}

/// Where containerd (>= 2.1) mounts a Kubernetes image volume from:
/// `<state>/io.containerd.grpc.v1.cri/image-volumes/<pod sandbox id>/<hex digest>`, the
/// digest being the image target (manifest or index) that was unpacked. NRI carries no
/// other trace of the volume's image (no field, no annotation).
const IMAGE_VOLUMES_DIR: &str = "/io.containerd.grpc.v1.cri/image-volumes/";

/// One claim per image volume of the container. A mount under the image-volume directory
/// whose path does not parse still yields a claim, without a digest, which is denied.
pub fn volume_claims(req: &CreateContainerRequest) -> Vec<ImageClaim> {
    let Some(container) = req.container.as_ref() else { return Vec::new() };
    let (namespace, pod) = pod_facts(req.pod.as_ref());
    container
        .mounts
        .iter()
        .filter_map(|m| {
            let (_, rest) = m.source.split_once(IMAGE_VOLUMES_DIR)?;
            let digest = match rest.split('/').collect::<Vec<_>>()[..] {
                [_pod, hex]
                    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
                {
                    Some(format!("sha256:{hex}"))
                }
                _ => None,
            };
            Some(ImageClaim {
                name: format!("image volume at {}", m.destination),
                digest,
                namespace: namespace.clone(),
                pod: pod.clone(),
                volume: Some(m.destination.clone()),
                container: None,
            })
        })
        .collect()
}

/// What the request says about the image (see [`container_claim`]).
pub fn image_claim(req: &CreateContainerRequest) -> ImageClaim {
    let mut claim = req.container.as_ref().map(container_claim).unwrap_or_default();
    (claim.namespace, claim.pod) = pod_facts(req.pod.as_ref());
    claim.container = req.container.as_ref().map(|c| c.id.clone());
    claim
}

/// The pod's namespace (`None` when empty) and its metadata, as a claim carries them.
fn pod_facts(pod: Option<&PodSandbox>) -> (Option<String>, Option<Arc<PodMetadata>>) {
    let Some(pod) = pod else { return (None, None) };
    let namespace = Some(pod.namespace.clone()).filter(|n| !n.is_empty());
    (namespace, Some(Arc::new(PodMetadata::from_sandbox(&pod.labels, &pod.annotations))))
}

/// A container's image: the runtime's image field when present (NRI >= v0.12), otherwise
/// the CRI annotation.
pub fn container_claim(container: &Container) -> ImageClaim {
    if let Some(image) = container.image.as_ref().filter(|i| !i.name.is_empty()) {
        return ImageClaim {
            name: image.name.clone(),
            digest: Some(image.digest.clone()).filter(|d| !d.is_empty()),
            ..Default::default()
        };
    }
    let name = container.annotations.get(IMAGE_NAME_ANNOTATION).cloned().unwrap_or_default();
    ImageClaim { name, ..Default::default() }
}

/// Verify the images of containers that already run, off the request path: it primes the
/// cache for the pods that will follow and reports running containers that policy would
/// not admit today. Each distinct image is checked once.
fn prewarm(enforcer: Arc<Enforcer>, pods: &[PodSandbox], containers: Vec<Container>) {
    let mut claims: Vec<ImageClaim> = Vec::new();
    for c in &containers {
        let pod = pods.iter().find(|p| p.id == c.pod_sandbox_id);
        let mut claim = container_claim(c);
        (claim.namespace, claim.pod) = pod_facts(pod);
        let req = CreateContainerRequest {
            pod: pod.cloned().into(),
            container: Some(c.clone()).into(),
            ..Default::default()
        };
        for claim in std::iter::once(claim).chain(volume_claims(&req)) {
            let seen = claims.iter().any(|k| {
                k.name == claim.name
                    && k.digest == claim.digest
                    && k.namespace == claim.namespace
                    && k.pod == claim.pod
                    && k.volume == claim.volume
            });
            if !claim.name.is_empty() && !seen {
                claims.push(claim);
            }
        }
    }
    if claims.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let (mut allowed, mut violators) = (0usize, 0usize);
        for claim in claims {
            let d = enforcer.decide(&claim, PREWARM_BUDGET).await;
            if d.outcome == Outcome::Allowed {
                allowed += 1;
            } else {
                violators += 1;
                tracing::warn!(image = %d.image, digest = d.digest.as_deref().unwrap_or(""), reason = %d.reason,
                    "running container's image would not be admitted now");
            }
        }
        tracing::info!(images = allowed + violators, allowed, violators, "pre-warm of running containers done");
    });
}

/// The single conversion from a decision to the NRI wire reply.
pub fn reply(decision: &Decision) -> ttrpc::Result<CreateContainerResponse> {
    if decision.allowed() {
        Ok(CreateContainerResponse::default())
    } else {
        Err(ttrpc::Error::RpcStatus(ttrpc::get_status(ttrpc::Code::PERMISSION_DENIED, decision.to_string())))
    }
}

impl nri::NriPlugin for NriHandler {
    fn connected(&self) {
        crate::metrics::metrics().nri_connected(true);
    }

    fn disconnected(&self) {
        self.connection_lost();
        crate::metrics::metrics().nri_connected(false);
    }
}

#[async_trait]
impl Plugin for NriHandler {
    async fn configure(&self, _ctx: &TtrpcContext, req: ConfigureRequest) -> ttrpc::Result<ConfigureResponse> {
        self.configured_timeout_ms.store(req.request_timeout.max(0) as u64, Ordering::SeqCst);
        tracing::info!(
            runtime = %req.runtime_name,
            runtime_version = %req.runtime_version,
            request_timeout_ms = req.request_timeout,
            "nri configured; subscribing to CreateContainer"
        );
        // Only events every NRI version knows: an unknown bit gets the plugin rejected.
        Ok(ConfigureResponse { events: nri::event::mask(&[nri::event::CREATE_CONTAINER]), ..Default::default() })
    }

    async fn synchronize(&self, _ctx: &TtrpcContext, req: SynchronizeRequest) -> ttrpc::Result<SynchronizeResponse> {
        tracing::info!(pods = req.pods.len(), containers = req.containers.len(), more = req.more, "nri synchronized");
        prewarm(Arc::clone(&self.enforcer), &req.pods, req.containers);
        if !req.more {
            self.synchronized.store(true, Ordering::SeqCst);
        }
        Ok(SynchronizeResponse { more: req.more, ..Default::default() })
    }

    async fn shutdown(&self, _ctx: &TtrpcContext, _req: Empty) -> ttrpc::Result<Empty> {
        tracing::info!("runtime is shutting down nri");
        self.connection_lost();
        Ok(Empty::default())
    }

    async fn create_container(
        &self,
        ctx: &TtrpcContext,
        req: CreateContainerRequest,
    ) -> ttrpc::Result<CreateContainerResponse> {
        let started = Instant::now();
        let decision = self.create_container_decision(&req, ctx.timeout_nano).await;
        let elapsed = started.elapsed();
        log_decision(&req, &decision, elapsed);
        crate::metrics::metrics().decision(&decision, elapsed);
        if let (false, Some(events), Some(pod)) = (decision.allowed(), &self.events, req.pod.as_ref()) {
            events.report(Denial {
                namespace: pod.namespace.clone(),
                pod: pod.name.clone(),
                uid: pod.uid.clone(),
                message: decision.to_string(),
            });
        }
        reply(&decision)
    }
}

/// One structured line per decision: the only place a decision is logged.
fn log_decision(req: &CreateContainerRequest, d: &Decision, elapsed: Duration) {
    let pod = req.pod.as_ref();
    let container = req.container.as_ref();
    let ms = elapsed.as_secs_f64() * 1000.0;
    let fields = (
        pod.map(|p| p.namespace.as_str()).unwrap_or(""),
        pod.map(|p| p.name.as_str()).unwrap_or(""),
        container.map(|c| c.name.as_str()).unwrap_or(""),
    );
    let digest = d.digest.as_deref().unwrap_or("");
    let policies = d.policies.join(",");
    match d.outcome {
        Outcome::Allowed => tracing::info!(
            image = %d.image, digest, namespace = fields.0, pod = fields.1, container = fields.2,
            policy = %policies, result = d.outcome.as_str(), cached = d.cached, ms, reason = %d.reason, "decision"
        ),
        Outcome::Warned => tracing::warn!(
            image = %d.image, digest, namespace = fields.0, pod = fields.1, container = fields.2,
            policy = %policies, result = d.outcome.as_str(), cached = d.cached, ms, reason = %d.reason, "decision"
        ),
        Outcome::Denied => tracing::warn!(
            image = %d.image, digest, namespace = fields.0, pod = fields.1, container = fields.2,
            policy = %policies, result = d.outcome.as_str(), cached = d.cached, ms, reason = %d.reason, "decision"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nri::api::Image;

    #[test]
    fn budget_leaves_margin_below_the_runtime_timeout() {
        assert_eq!(decision_budget(Duration::from_secs(2)), Duration::from_millis(1500));
        assert_eq!(decision_budget(Duration::from_millis(400)), Duration::from_millis(200));
        assert_eq!(decision_budget(Duration::from_millis(100)), Duration::from_millis(50));
    }

    #[test]
    fn claim_prefers_the_runtime_image_field() {
        let mut c = Container::default();
        c.annotations.insert(IMAGE_NAME_ANNOTATION.into(), "reg.io/a:v1".into());
        let mut req = CreateContainerRequest { container: Some(c.clone()).into(), ..Default::default() };
        assert_eq!(image_claim(&req).name, "reg.io/a:v1");
        assert_eq!(image_claim(&req).digest, None);
        c.image = Some(Image { name: "reg.io/a:v2".into(), digest: "sha256:00".into(), ..Default::default() }).into();
        req.container = Some(c).into();
        let claim = image_claim(&req);
        assert_eq!((claim.name.as_str(), claim.digest.as_deref()), ("reg.io/a:v2", Some("sha256:00")));
    }

    #[test]
    fn claims_carry_the_pods_namespace_and_metadata() {
        let mut pod = PodSandbox { namespace: "team".into(), ..Default::default() };
        pod.labels.insert("app".into(), "web".into());
        pod.labels.insert("io.kubernetes.pod.uid".into(), "u".into());
        pod.annotations.insert("example.com/waiver".into(), "granted".into());
        let req = CreateContainerRequest {
            pod: Some(pod).into(),
            container: Some(Container::default()).into(),
            ..Default::default()
        };
        let claim = image_claim(&req);
        assert_eq!(claim.namespace.as_deref(), Some("team"));
        let meta = claim.pod.expect("the pod's metadata");
        assert_eq!(meta.labels, [("app".to_string(), "web".to_string())].into());
        assert_eq!(meta.annotations, [("example.com/waiver".to_string(), "granted".to_string())].into());
        assert!(image_claim(&CreateContainerRequest::default()).pod.is_none(), "no pod, nothing known");
    }

    #[test]
    fn image_volumes_become_claims_by_their_mounted_digest() {
        use nri::api::Mount;
        let hex = "a34354d46a3dfc508149769939311c5d4d405e28b272940153ea6f6b493e5ef0";
        let mount = |source: String| Mount {
            destination: "/vol".into(),
            type_: "bind".into(),
            source,
            options: vec!["rbind".into(), "rprivate".into(), "ro".into()],
            ..Default::default()
        };
        let mut c = Container::default();
        c.mounts.push(mount(format!("/run/containerd/io.containerd.grpc.v1.cri/image-volumes/pod1/{hex}")));
        c.mounts.push(mount("/var/lib/kubelet/pods/x/volumes/kubernetes.io~empty-dir/data".into()));
        c.mounts.push(mount("/run/containerd/io.containerd.grpc.v1.cri/image-volumes/pod1/not-a-digest".into()));
        let req = CreateContainerRequest { container: Some(c).into(), ..Default::default() };
        let claims = volume_claims(&req);
        assert_eq!(claims.len(), 2, "{claims:?}");
        assert_eq!(claims[0].digest.as_deref(), Some(format!("sha256:{hex}").as_str()));
        assert_eq!(claims[0].volume.as_deref(), Some("/vol"));
        assert_eq!(claims[1].digest, None, "an unreadable image-volume path is still a claim, and fails");
    }

    #[test]
    fn missing_container_gives_an_empty_claim_not_a_panic() {
        assert_eq!(image_claim(&CreateContainerRequest::default()).name, "");
    }

    #[test]
    fn denial_becomes_permission_denied_with_the_message() {
        let d = Decision {
            image: "reg.io/a:v1".into(),
            digest: Some("sha256:ab".into()),
            outcome: Outcome::Denied,
            policies: vec!["p".into()],
            reason: "no signatures found".into(),
            cached: false,
            indeterminate: false,
        };
        match reply(&d) {
            Err(ttrpc::Error::RpcStatus(s)) => {
                assert_eq!(s.code(), ttrpc::Code::PERMISSION_DENIED);
                assert!(s.message().contains("reg.io/a:v1") && s.message().contains("no signatures found"));
            }
            other => panic!("expected a denial, got {other:?}"),
        }
        let allowed = Decision { outcome: Outcome::Allowed, ..d };
        assert!(reply(&allowed).is_ok());
    }
}

#[cfg(test)]
mod fake_runtime_tests;
