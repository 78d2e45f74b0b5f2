//! Benchmark driver: plays containerd's side of the NRI socket against a real `signet run`
//! process (same mux, same ttrpc, same socket path a runtime uses) and measures
//!   cold: the first CreateContainer for an image (registry fetch and verification): the
//!         daemon's very first one, and the median over the images in NRI_BENCH_COLD
//!         (space-separated, each verified once, one after the other) after it;
//!   warm: sequential CreateContainer latency for one image already verified;
//!   burst: N concurrent CreateContainer over a list of images (distinct and duplicate),
//!          time until all are answered and the slowest answer against the deadline;
//!   rss:   signet's resident memory before and during the burst (from /proc).
//! Prints one JSON object. Driven by integration/bench.sh. BURST_COUNT 0 skips the burst.
//!
//!   nri_bench SOCKET PID FIRST_IMAGE WARM_IMAGE WARM_COUNT BURST_COUNT IMAGE...

use std::time::{Duration, Instant};

use nri::runtime_side::{accept, create_request, ctx, ConfigureRequest, SynchronizeRequest};
use tokio::net::UnixListener;

const DEADLINE: Duration = Duration::from_secs(2);

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn cold_json(sorted: &[Duration]) -> serde_json::Value {
    if sorted.is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::json!({"count": sorted.len(), "median_ms": percentile(sorted, 0.5),
                       "min_ms": percentile(sorted, 0.0), "max_ms": percentile(sorted, 1.0)})
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 8 {
        eprintln!("usage: nri_bench SOCKET PID FIRST_IMAGE WARM_IMAGE WARM_COUNT BURST_COUNT IMAGE...");
        std::process::exit(2);
    }
    let (socket, pid) = (&args[1], args[2].parse::<u32>().expect("pid"));
    let first_image = &args[3];
    let (warm_image, warm_count) = (&args[4], args[5].parse::<usize>().expect("warm count"));
    let burst_count = args[6].parse::<usize>().expect("burst count");
    let images = &args[7..];

    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket).expect("bind socket");
    eprintln!("nri_bench: listening on {socket}");
    let rt = accept(&listener).await;
    rt.plugin
        .configure(ctx(DEADLINE), &ConfigureRequest { request_timeout: 2000, ..Default::default() })
        .await
        .expect("configure");
    rt.plugin.synchronize(ctx(DEADLINE), &SynchronizeRequest::default()).await.expect("synchronize");
    let rss_idle = rss_kib(pid);

    // The daemon's very first verification pays one-time set-up (connections, TLS roots).
    let t0 = Instant::now();
    let r = rt.plugin.create_container(ctx(DEADLINE), &create_request(first_image, "bench")).await;
    let cold_first = t0.elapsed();
    assert!(r.is_ok(), "first image must be admitted: {r:?}");

    // Cold: one image at a time, so each measures one verification alone.
    let mut colds = Vec::new();
    for image in std::env::var("NRI_BENCH_COLD").unwrap_or_default().split_whitespace() {
        let t0 = Instant::now();
        let r = rt.plugin.create_container(ctx(DEADLINE), &create_request(image, "bench")).await;
        colds.push(t0.elapsed());
        assert!(r.is_ok(), "cold image {image} must be admitted: {r:?}");
    }
    colds.sort();

    // Warm: the first request verifies, the rest are answered from the cache.
    let req = create_request(warm_image, "bench");
    let first = rt.plugin.create_container(ctx(DEADLINE), &req).await;
    assert!(first.is_ok(), "warm image must be admitted: {first:?}");
    let mut warm = Vec::with_capacity(warm_count);
    for _ in 0..warm_count {
        let t0 = Instant::now();
        rt.plugin.create_container(ctx(DEADLINE), &req).await.expect("warm request admitted");
        warm.push(t0.elapsed());
    }
    warm.sort();

    let warm = serde_json::json!({"count": warm.len(), "p50_ms": percentile(&warm, 0.50),
                                  "p99_ms": percentile(&warm, 0.99), "max_ms": percentile(&warm, 1.0)});
    if burst_count == 0 {
        let out = serde_json::json!({"cold": cold_json(&colds),
                                     "cold_first_ms": cold_first.as_secs_f64() * 1000.0,
                                     "warm": warm, "rss_kib": {"idle": rss_idle}});
        println!("{out}");
        return;
    }

    // Burst: every request at once, as kubelet does when a node takes many pods.
    let sampler_stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = sampler_stop.clone();
    let sampler = tokio::spawn(async move {
        let mut peak = 0;
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            peak = peak.max(rss_kib(pid));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        peak
    });
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..burst_count)
        .map(|i| {
            let plugin = rt.plugin.clone();
            let req = create_request(&images[i % images.len()], "bench");
            tokio::spawn(async move {
                let started = Instant::now();
                let r = plugin.create_container(ctx(DEADLINE), &req).await;
                let message = match &r {
                    Ok(_) => String::new(),
                    Err(ttrpc::Error::RpcStatus(s)) => s.message().to_string(),
                    Err(e) => e.to_string(),
                };
                (started.elapsed(), r.is_ok(), message)
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("request task"));
    }
    let burst_wall = t0.elapsed();
    sampler_stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let rss_burst = sampler.await.unwrap_or(0);
    let mut lat: Vec<Duration> = results.iter().map(|r| r.0).collect();
    lat.sort();
    let admitted = results.iter().filter(|r| r.1).count();
    let pending = results.iter().filter(|r| r.2.contains("continues in the background")).count();
    let late = results.iter().filter(|r| r.0 > DEADLINE).count();
    let other: Vec<&String> =
        results.iter().filter(|r| !r.1 && !r.2.contains("continues in the background")).map(|r| &r.2).collect();

    println!(
        "{}",
        serde_json::json!({
            "cold": cold_json(&colds),
            "cold_first_ms": cold_first.as_secs_f64() * 1000.0,
            "warm": warm,
            "burst": {"requests": burst_count, "distinct_images": images.len(),
                      "wall_ms": burst_wall.as_secs_f64() * 1000.0, "p50_ms": percentile(&lat, 0.5),
                      "max_ms": percentile(&lat, 1.0), "admitted": admitted,
                      "denied_still_verifying": pending, "past_deadline": late,
                      "other_denials": other.len(), "first_other_denial": other.first()},
            "rss_kib": {"idle": rss_idle, "burst_peak": rss_burst},
        })
    );
}
