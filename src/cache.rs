//! Bounded decision cache with per-entry TTL and singleflight.
//!
//! Two jobs: (1) a burst of pods using one image verifies it once — later callers wait on
//! the first one's work instead of starting their own; (2) the work outlives the caller.
//! A CreateContainer must be answered before the runtime's deadline even when the registry
//! is slow, so callers wait only up to their own budget and get [`Lookup::Pending`]; the
//! verification carries on in the background and its result is cached for the retry.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// The answer to a lookup within the caller's budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<V> {
    /// From the cache, or computed within the budget.
    Ready { value: V, cached: bool },
    /// Still being computed; the result will be cached when it lands.
    Pending,
}

struct Entry<V> {
    value: V,
    expires: Instant,
}

struct Inner<K, V> {
    entries: HashMap<K, Entry<V>>,
    inflight: HashMap<K, watch::Receiver<Option<V>>>,
}

/// Decides, per value, how long it stays cached (`None`: not at all).
pub type TtlFn<V> = Arc<dyn Fn(&V) -> Option<Duration> + Send + Sync>;

pub struct Cache<K, V> {
    inner: Arc<Mutex<Inner<K, V>>>,
    capacity: usize,
    /// How long a value stays; `None` means do not cache it.
    ttl: TtlFn<V>,
}

impl<K, V> Cache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub fn new(capacity: usize, ttl: TtlFn<V>) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner { entries: HashMap::new(), inflight: HashMap::new() })),
            capacity: capacity.max(1),
            ttl,
        }
    }

    /// A fresh cached value, if any.
    pub fn get(&self, key: &K) -> Option<V> {
        let inner = self.inner.lock().unwrap();
        inner.entries.get(key).filter(|e| e.expires > Instant::now()).map(|e| e.value.clone())
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Return the cached value, or join/start the computation and wait up to `budget`.
    /// `compute` is only called when no value is cached and none is being computed.
    pub async fn get_or_compute<F, Fut>(&self, key: K, budget: Duration, compute: F) -> Lookup<V>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V> + Send + 'static,
    {
        let mut rx = {
            let mut inner = self.inner.lock().unwrap();
            let now = Instant::now();
            if let Some(e) = inner.entries.get(&key) {
                if e.expires > now {
                    return Lookup::Ready { value: e.value.clone(), cached: true };
                }
            }
            match inner.inflight.get(&key) {
                Some(rx) => rx.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    inner.inflight.insert(key.clone(), rx.clone());
                    let fut = compute();
                    let shared = Arc::clone(&self.inner);
                    let (capacity, ttl) = (self.capacity, Arc::clone(&self.ttl));
                    tokio::spawn(async move {
                        let value = fut.await;
                        {
                            let mut inner = shared.lock().unwrap();
                            inner.inflight.remove(&key);
                            if let Some(ttl) = ttl(&value) {
                                insert_bounded(&mut inner.entries, capacity, key, value.clone(), ttl);
                            }
                        }
                        let _ = tx.send(Some(value));
                    });
                    rx
                }
            }
        };
        let waited = tokio::time::timeout(budget, rx.wait_for(|v| v.is_some())).await;
        match waited {
            Ok(Ok(v)) => Lookup::Ready { value: v.clone().expect("waited for Some"), cached: false },
            // Timed out, or the computing task panicked and dropped the sender.
            _ => Lookup::Pending,
        }
    }
}

fn insert_bounded<K: Hash + Eq + Clone, V>(
    entries: &mut HashMap<K, Entry<V>>,
    capacity: usize,
    key: K,
    value: V,
    ttl: Duration,
) {
    let now = Instant::now();
    if entries.len() >= capacity && !entries.contains_key(&key) {
        entries.retain(|_, e| e.expires > now);
        // Still full: evict the entry closest to expiry. O(n), but only on a full cache
        // with nothing expired, which a sane capacity makes rare.
        if entries.len() >= capacity {
            if let Some(victim) = entries.iter().min_by_key(|(_, e)| e.expires).map(|(k, _)| k.clone()) {
                entries.remove(&victim);
            }
        }
    }
    entries.insert(key, Entry { value, expires: now + ttl });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn ttl_all(_: &u32) -> Option<Duration> {
        Some(Duration::from_secs(60))
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_computation() {
        let cache = Arc::new(Cache::<&'static str, u32>::new(10, Arc::new(ttl_all)));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (cache, calls) = (cache.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_compute("img", Duration::from_secs(5), || {
                        calls.fetch_add(1, Ordering::SeqCst);
                        async {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            7
                        }
                    })
                    .await
            }));
        }
        for t in tasks {
            assert!(matches!(t.await.unwrap(), Lookup::Ready { value: 7, .. }));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(matches!(
            cache.get_or_compute("img", Duration::ZERO, || async { 0 }).await,
            Lookup::Ready { value: 7, cached: true }
        ));
    }

    #[tokio::test]
    async fn slow_work_returns_pending_then_lands_in_the_cache() {
        let cache = Cache::<u8, u32>::new(10, Arc::new(ttl_all));
        let slow = || async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            1
        };
        assert_eq!(cache.get_or_compute(1, Duration::from_millis(10), slow).await, Lookup::Pending);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(cache.get(&1), Some(1));
    }

    #[tokio::test]
    async fn uncacheable_values_are_recomputed() {
        let cache =
            Cache::<u8, u32>::new(10, Arc::new(|v: &u32| if *v == 0 { None } else { Some(Duration::from_secs(1)) }));
        assert!(matches!(
            cache.get_or_compute(1, Duration::from_secs(1), || async { 0 }).await,
            Lookup::Ready { value: 0, .. }
        ));
        assert_eq!(cache.get(&1), None);
        assert!(matches!(
            cache.get_or_compute(1, Duration::from_secs(1), || async { 5 }).await,
            Lookup::Ready { value: 5, cached: false }
        ));
    }

    #[tokio::test]
    async fn capacity_is_respected() {
        let cache = Cache::<u32, u32>::new(3, Arc::new(ttl_all));
        for k in 0..10 {
            cache.get_or_compute(k, Duration::from_secs(1), move || async move { k }).await;
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(&9), Some(9));
    }

    #[tokio::test]
    async fn expired_entries_are_not_served() {
        let cache = Cache::<u8, u32>::new(10, Arc::new(|_: &u32| Some(Duration::from_millis(20))));
        cache.get_or_compute(1, Duration::from_secs(1), || async { 1 }).await;
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(cache.get(&1), None);
    }
}
