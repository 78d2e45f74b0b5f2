//! Benchmark driver: plays the runtime's side of the NRI socket (the same multiplexer and
//! ttrpc a runtime speaks, through [`nri::runtime_side`]) against a plugin process, and times
//! its CreateContainer answers. integration/bench.sh drives it against `signet run`.
//!
//! ```sh
//! NRI_BENCH_SEQUENTIAL="reg/a:v1 reg/b:v1" \
//!   cargo run --release -p nri --features testing --example nri_bench -- SOCKET PLUGIN_PID
//! ```
//!
//! It listens on SOCKET, waits for the plugin to register, configures it with the runtime's
//! request timeout and an empty Synchronize, reads the plugin's idle RSS, then asks, each part
//! only when its variable is set:
//! - `NRI_BENCH_FIRST`: one image, before the rest, so that one-time set-up costs show apart;
//! - `NRI_BENCH_SEQUENTIAL`: images one after another, each timed alone;
//! - `NRI_BENCH_WARM`: images asked once, then `NRI_BENCH_WARM_COUNT` (default 2000) times
//!   in a row: the latency percentiles of a
//!   decision the plugin has cached;
//! - `NRI_BENCH_BURST` (a count) over `NRI_BENCH_BURST_IMAGES`: that many requests at once,
//!   cycling over the images, as kubelet does when a node takes many pods; the plugin's RSS is
//!   sampled every 5 ms meanwhile.
//!
//! An image may be given as `IMAGE#CONTAINER`: the request then carries that container ID
//! (a plugin may look the container's rootfs snapshot up under it; the bench prepares one
//! per image from its layers, as the CRI does before it asks plugins).
//!
//! It prints one JSON object. Each answer carries its wall-clock start and end (Unix seconds),
//! so that a registry-side log can be cut into the requests each answer caused; a denial
//! carries the plugin's message. `NRI_BENCH_TIMEOUT_MS` (default 2000) is the request timeout
//! given in Configure and the deadline of each call, as containerd's `plugin_request_timeout`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nri::api::CreateContainerRequest;
use nri::runtime_side::{accept, create_request, ctx, ConfigureRequest, PluginClient, SynchronizeRequest};
use serde_json::{json, Value};
use tokio::net::UnixListener;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

fn images(var: &str) -> Vec<String> {
    std::env::var(var).unwrap_or_default().split_whitespace().map(String::from).collect()
}

/// The request for `IMAGE` or `IMAGE#CONTAINER`, and the image's name.
fn request(token: &str) -> (&str, CreateContainerRequest) {
    let (image, container) = token.split_once('#').unwrap_or((token, ""));
    let mut req = create_request(image, "bench");
    if !container.is_empty() {
        if let Some(c) = req.container.as_mut() {
            c.id = container.to_string();
        }
    }
    (image, req)
}

/// One CreateContainer for `token` (see [`request`]), timed, with the plugin's answer.
async fn ask(plugin: &PluginClient, token: &str, deadline: Duration) -> Value {
    let (image, req) = request(token);
    let (start, t0) = (unix_now(), Instant::now());
    let r = plugin.create_container(ctx(deadline), &req).await;
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    let message = match &r {
        Ok(_) => String::new(),
        Err(ttrpc::Error::RpcStatus(s)) => s.message().to_string(),
        Err(e) => e.to_string(),
    };
    json!({"image": image, "start": start, "end": unix_now(), "ms": ms, "allowed": r.is_ok(), "message": message})
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(socket), Some(pid)) = (args.get(1), args.get(2).and_then(|p| p.parse::<u32>().ok())) else {
        eprintln!("usage: nri_bench SOCKET PLUGIN_PID (see the example's documentation)");
        std::process::exit(2);
    };
    let timeout_ms: u64 = std::env::var("NRI_BENCH_TIMEOUT_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let deadline = Duration::from_millis(timeout_ms);

    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket).expect("bind the socket");
    eprintln!("nri_bench: listening on {socket}");
    let rt = accept(&listener).await;
    rt.plugin
        .configure(ctx(deadline), &ConfigureRequest { request_timeout: timeout_ms as i64, ..Default::default() })
        .await
        .expect("configure");
    rt.plugin.synchronize(ctx(deadline), &SynchronizeRequest::default()).await.expect("synchronize");
    let mut out = json!({"timeout_ms": timeout_ms, "rss_idle_kib": rss_kib(pid)});

    if let Ok(image) = std::env::var("NRI_BENCH_FIRST") {
        out["first"] = ask(&rt.plugin, &image, deadline).await;
    }
    let mut sequential = Vec::new();
    for image in images("NRI_BENCH_SEQUENTIAL") {
        sequential.push(ask(&rt.plugin, &image, deadline).await);
    }
    out["sequential"] = Value::Array(sequential);

    let warm_count: usize = std::env::var("NRI_BENCH_WARM_COUNT").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let mut warm = Vec::new();
    for token in images("NRI_BENCH_WARM") {
        let (image, req) = request(&token);
        // The first answer for a name may be a verification (the cache is keyed by it).
        let _ = rt.plugin.create_container(ctx(deadline), &req).await;
        let (mut ms, mut denied) = (Vec::with_capacity(warm_count), 0);
        for _ in 0..warm_count {
            let t0 = Instant::now();
            denied += usize::from(rt.plugin.create_container(ctx(deadline), &req).await.is_err());
            ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        }
        ms.sort_by(f64::total_cmp);
        let at = |p: f64| ms.get(((ms.len().max(1) - 1) as f64 * p).round() as usize).copied().unwrap_or(0.0);
        warm.push(json!({"image": image, "count": ms.len(), "denied": denied,
                         "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": at(1.0)}));
    }
    out["warm"] = Value::Array(warm);

    let burst: usize = std::env::var("NRI_BENCH_BURST").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let pool = images("NRI_BENCH_BURST_IMAGES");
    if burst > 0 && !pool.is_empty() {
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut peak = 0;
                while !stop.load(Ordering::SeqCst) {
                    peak = peak.max(rss_kib(pid));
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                peak
            }
        });
        let (start, t0) = (unix_now(), Instant::now());
        let tasks: Vec<_> = (0..burst)
            .map(|i| {
                let (plugin, image) = (rt.plugin.clone(), pool[i % pool.len()].clone());
                tokio::spawn(async move { ask(&plugin, &image, deadline).await })
            })
            .collect();
        let mut results = Vec::with_capacity(burst);
        for t in tasks {
            results.push(t.await.expect("request task"));
        }
        let wall_ms = t0.elapsed().as_secs_f64() * 1000.0;
        stop.store(true, Ordering::SeqCst);
        let peak = sampler.await.unwrap_or(0);
        out["burst"] = json!({"requests": burst, "images": pool.len(), "start": start, "end": unix_now(),
                              "wall_ms": wall_ms, "rss_peak_kib": peak, "results": results});
    }
    println!("{out}");
}
