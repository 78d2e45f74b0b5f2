//! Operations endpoint: Prometheus metrics, `/healthz` and `/readyz`, over plain HTTP on
//! loopback by default (nothing here needs to leave the node; a scraper on the node or a
//! hostNetwork probe reaches it).
//!
//! Metrics live in one process-wide registry ([`metrics`]) so the places that observe
//! (NRI handler, enforcer, policy sync) do not need to be threaded a handle; the families
//! are bounded: labels are results, cache outcomes and policy names, never images.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::enforce::Decision;
use crate::policy::PolicySet;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("admin endpoint {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
    cached: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    policy: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

/// Every metric signet exports.
pub struct Metrics {
    registry: Mutex<Registry>,
    decisions: Family<ResultLabels, Counter>,
    policy_decisions: Family<PolicyLabels, Counter>,
    decision_seconds: Histogram,
    verification_seconds: Histogram,
    cache_lookups: Family<OutcomeLabels, Counter>,
    registry_errors: Counter,
    nri_connected: Gauge,
    nri_registrations: Counter,
    policies: Gauge,
    policy_rejections: Counter,
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("signet");
        let m = Self {
            registry: Mutex::new(Registry::default()),
            decisions: Family::default(),
            policy_decisions: Family::default(),
            // 0.1 ms .. ~3.3 s: warm decisions are sub-millisecond, the runtime deadline is 2 s.
            decision_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            verification_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            cache_lookups: Family::default(),
            registry_errors: Counter::default(),
            nri_connected: Gauge::default(),
            nri_registrations: Counter::default(),
            policies: Gauge::default(),
            policy_rejections: Counter::default(),
        };
        registry.register("decisions", "CreateContainer decisions by result", m.decisions.clone());
        registry.register("policy_decisions", "Decisions per matching policy, by result", m.policy_decisions.clone());
        registry.register("decision_duration_seconds", "Time to answer CreateContainer", m.decision_seconds.clone());
        registry.register(
            "verification_duration_seconds",
            "Time to fetch and verify signatures for one image digest (cache misses only)",
            m.verification_seconds.clone(),
        );
        registry.register("cache_lookups", "Decision cache lookups by outcome", m.cache_lookups.clone());
        registry.register(
            "registry_errors",
            "Signature fetches that failed (not: found no signatures)",
            m.registry_errors.clone(),
        );
        registry.register("nri_connected", "1 while registered with the runtime over NRI", m.nri_connected.clone());
        registry.register("nri_registrations", "Registrations with the runtime", m.nri_registrations.clone());
        registry.register("policies", "Policies in the published snapshot", m.policies.clone());
        registry.register(
            "policy_rejections",
            "Policy updates rejected (the previous policy stayed in force)",
            m.policy_rejections.clone(),
        );
        *m.registry.lock().expect("fresh mutex") = registry;
        m
    }

    /// One answered CreateContainer.
    pub fn decision(&self, d: &Decision, elapsed: Duration) {
        let result = d.outcome.as_str().to_string();
        self.decisions.get_or_create(&ResultLabels { result: result.clone(), cached: d.cached.to_string() }).inc();
        for p in &d.policies {
            self.policy_decisions.get_or_create(&PolicyLabels { policy: p.clone(), result: result.clone() }).inc();
        }
        self.decision_seconds.observe(elapsed.as_secs_f64());
    }

    pub fn verification(&self, elapsed: Duration, registry_error: bool) {
        self.verification_seconds.observe(elapsed.as_secs_f64());
        if registry_error {
            self.registry_errors.inc();
        }
    }

    /// `hit`, `miss` (this request verifies) or `pending` (another request is verifying).
    pub fn cache_lookup(&self, outcome: &str) {
        self.cache_lookups.get_or_create(&OutcomeLabels { outcome: outcome.to_string() }).inc();
    }

    pub fn nri_connected(&self, connected: bool) {
        self.nri_connected.set(i64::from(connected));
        if connected {
            self.nri_registrations.inc();
        }
    }

    pub fn policy_snapshot(&self, policies: usize) {
        self.policies.set(policies as i64);
    }

    pub fn policy_rejected(&self) {
        self.policy_rejections.inc();
    }

    /// The Prometheus/OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry.lock().expect("metrics registry")).expect("writing to a String");
        out
    }
}

/// What `/readyz` looks at: registered with the runtime, and a policy loaded.
#[derive(Clone)]
pub struct Readiness {
    pub registered: Arc<dyn Fn() -> bool + Send + Sync>,
    pub policy: watch::Receiver<Arc<PolicySet>>,
}

impl Readiness {
    pub fn check(&self) -> Result<(), String> {
        if let Some(e) = &self.policy.borrow().load_error {
            return Err(format!("no valid policy loaded: {e}"));
        }
        if !(self.registered)() {
            return Err("not registered with the container runtime over NRI".into());
        }
        Ok(())
    }
}

/// Serve on a bound listener until `shutdown`. The caller binds, so a bad or taken address
/// stops the daemon at start instead of leaving it running without probes.
pub async fn serve_on(listener: TcpListener, readiness: Readiness, mut shutdown: watch::Receiver<bool>) {
    tracing::info!(address = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "admin endpoint listening");
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "admin endpoint accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let readiness = readiness.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let readiness = readiness.clone();
                async move { Ok::<_, Infallible>(route(&req, &readiness)) }
            });
            // Slow or broken scrapers only affect their own connection.
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn route(req: &Request<Incoming>, readiness: &Readiness) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: String, content_type: &str| {
        Response::builder()
            .status(status)
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .expect("static response parts")
    };
    match req.uri().path() {
        "/metrics" => {
            text(StatusCode::OK, metrics().encode(), "application/openmetrics-text; version=1.0.0; charset=utf-8")
        }
        "/healthz" => text(StatusCode::OK, "ok\n".into(), "text/plain"),
        "/readyz" => match readiness.check() {
            Ok(()) => text(StatusCode::OK, "ready\n".into(), "text/plain"),
            Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n"), "text/plain"),
        },
        _ => text(StatusCode::NOT_FOUND, "not found: try /metrics, /healthz, /readyz\n".into(), "text/plain"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::policy::NoMatchAction;

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn health_readiness_and_metrics() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let registered = Arc::new(AtomicBool::new(false));
        let r = Arc::clone(&registered);
        let (policy_tx, policy) = watch::channel(PolicySet::unavailable("broken.yaml: bad".into()));
        let readiness = Readiness { registered: Arc::new(move || r.load(Ordering::SeqCst)), policy };
        let (_stop, shutdown) = watch::channel(false);
        tokio::spawn(serve_on(listener, readiness, shutdown));

        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        let not_ready = get(addr, "/readyz").await;
        assert!(not_ready.starts_with("HTTP/1.1 503") && not_ready.contains("broken.yaml"), "{not_ready}");
        policy_tx.send_replace(PolicySet::assemble(vec![], NoMatchAction::Deny));
        assert!(get(addr, "/readyz").await.contains("not registered"));
        registered.store(true, Ordering::SeqCst);
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));

        metrics().cache_lookup("hit");
        let m = get(addr, "/metrics").await;
        assert!(m.contains("signet_cache_lookups_total{outcome=\"hit\"}"), "{m}");
        assert!(m.contains("# TYPE signet_decision_duration_seconds histogram"), "{m}");
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
    }
}
