//! Prometheus metrics in one process-wide registry ([`metrics`]), so the places that
//! observe (NRI plugin, enforcer, policy sync) need no handle threaded through; the families
//! are bounded: labels are results, cache outcomes and policy names, never images.
//! [`crate::admin`] serves them.

use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Metric, Registry};

use crate::decision::Decision;

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
        let r = &mut registry;
        Self {
            decisions: registered(r, "decisions", "CreateContainer decisions by result", Family::default()),
            policy_decisions: registered(
                r,
                "policy_decisions",
                "Decisions per matching policy, by result",
                Family::default(),
            ),
            // 0.1 ms .. ~3.3 s: warm decisions are sub-millisecond, the runtime deadline is 2 s.
            decision_seconds: registered(
                r,
                "decision_duration_seconds",
                "Time to answer CreateContainer",
                Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            ),
            verification_seconds: registered(
                r,
                "verification_duration_seconds",
                "Time to fetch and verify signatures for one image digest (cache misses only)",
                Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            ),
            cache_lookups: registered(r, "cache_lookups", "Decision cache lookups by outcome", Family::default()),
            registry_errors: registered(
                r,
                "registry_errors",
                "Signature fetches that failed (not: found no signatures)",
                Counter::default(),
            ),
            nri_connected: registered(
                r,
                "nri_connected",
                "1 while registered with the runtime over NRI",
                Gauge::default(),
            ),
            nri_registrations: registered(r, "nri_registrations", "Registrations with the runtime", Counter::default()),
            policies: registered(r, "policies", "Policies in the published snapshot", Gauge::default()),
            policy_rejections: registered(
                r,
                "policy_rejections",
                "Policy updates rejected (the previous policy stayed in force)",
                Counter::default(),
            ),
            registry: Mutex::new(registry),
        }
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

/// `metric`, registered under `name`: each metric is named where it is made.
fn registered<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}
