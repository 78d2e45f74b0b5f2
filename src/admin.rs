//! Operations endpoint: Prometheus metrics ([`crate::metrics`]), `/healthz` and `/readyz`,
//! over plain HTTP on loopback by default (nothing here needs to leave the node; a scraper
//! on the node or a hostNetwork probe reaches it).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::policy::PolicySet;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("admin endpoint {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// Why `/readyz` answers 503: the daemon runs but must not be counted on yet.
#[derive(Debug, thiserror::Error)]
pub enum Unready {
    #[error("no valid policy loaded: {0}")]
    NoPolicy(String),
    #[error("not registered with the container runtime over NRI")]
    NotRegistered,
}

/// What `/readyz` looks at: registered with the runtime, and a policy loaded.
#[derive(Clone)]
pub struct Readiness {
    pub registered: Arc<dyn Fn() -> bool + Send + Sync>,
    pub policy: watch::Receiver<Arc<PolicySet>>,
}

impl Readiness {
    pub fn check(&self) -> Result<(), Unready> {
        if let Some(e) = &self.policy.borrow().load_error {
            return Err(Unready::NoPolicy(e.clone()));
        }
        if !(self.registered)() {
            return Err(Unready::NotRegistered);
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
        "/metrics" => text(
            StatusCode::OK,
            crate::metrics::metrics().encode(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
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

        crate::metrics::metrics().cache_lookup("hit");
        let m = get(addr, "/metrics").await;
        assert!(m.contains("signet_cache_lookups_total{outcome=\"hit\"}"), "{m}");
        assert!(m.contains("# TYPE signet_decision_duration_seconds histogram"), "{m}");
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
    }
}
