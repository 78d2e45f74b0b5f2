//! The TUF client against real signed repositories on disk (made with tough's editor by the
//! `tuf-testrepo` crate), and the store against a fake fetcher.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tuf_testrepo::Repo;

use super::client::{ToughFetcher, MAX_FILE};
use super::*;
use crate::testutil::vector;

fn in_a_year() -> jiff::Timestamp {
    jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 365)
}

fn file_repo(r: &Repo) -> TufRepo {
    use base64::Engine;
    let data = base64::engine::general_purpose::STANDARD.encode(&r.root);
    TufRepo::new(Some(&format!("file://{}", r.dir.display())), TufRoot::Data(data)).unwrap()
}

async fn published(dir: &Path, targets: &[(&str, &[u8])]) -> Repo {
    let mut r = Repo::create(&dir.join("repo"), &dir.join("key.pem"), in_a_year()).await.unwrap();
    r.publish(targets, in_a_year()).await.unwrap();
    r
}

async fn fetch(repo: &TufRepo) -> Result<HeldRoot, TufError> {
    ToughFetcher::new(None).unwrap().trusted_root(repo).await
}

#[tokio::test]
async fn a_repository_serves_its_trusted_root_once_verified() {
    let dir = tempfile::tempdir().unwrap();
    let root = vector("trusted_root.json");
    let r = published(dir.path(), &[(TRUSTED_ROOT_TARGET, root.as_bytes())]).await;
    let held = fetch(&file_repo(&r)).await.unwrap();
    assert_eq!(held.trusted_root, root);
    assert_eq!(held.targets_version, 1);
    // root.path: the same root.json as a file on the node.
    let path = dir.path().join("root.json");
    std::fs::write(&path, &r.root).unwrap();
    let by_path = TufRepo::new(Some(&file_repo(&r).mirror), TufRoot::Path(path.display().to_string())).unwrap();
    assert_eq!(fetch(&by_path).await.unwrap().trusted_root, root);
    let missing = TufRepo::new(Some(&file_repo(&r).mirror), TufRoot::Path("/nonexistent/root.json".into())).unwrap();
    let e = fetch(&missing).await.unwrap_err().to_string();
    assert!(e.contains("root /nonexistent/root.json"), "{e}");
}

#[tokio::test]
async fn a_tampered_target_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = vector("trusted_root.json");
    let r = published(dir.path(), &[(TRUSTED_ROOT_TARGET, root.as_bytes())]).await;
    // Same length, other content: only the hash in the signed targets metadata tells.
    let target = std::fs::read_dir(r.dir.join("targets")).unwrap().next().unwrap().unwrap().path();
    std::fs::write(&target, root.replace("tlogs", "TLOGS")).unwrap();
    let e = fetch(&file_repo(&r)).await.unwrap_err();
    assert!(matches!(e, TufError::Fetch { .. }), "{e}");
    assert!(e.to_string().to_lowercase().contains("hash"), "{e}");
}

#[tokio::test]
async fn a_repository_signed_by_another_key_does_not_enter_through_this_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = vector("trusted_root.json");
    let ours = published(&dir.path().join("a"), &[(TRUSTED_ROOT_TARGET, root.as_bytes())]).await;
    let theirs = published(&dir.path().join("b"), &[(TRUSTED_ROOT_TARGET, root.as_bytes())]).await;
    let mut repo = file_repo(&theirs);
    repo.root = file_repo(&ours).root;
    let e = fetch(&repo).await.unwrap_err().to_string();
    assert!(e.contains("TUF repository file://") && e.contains("Signature threshold of 1 not met"), "{e}");
}

#[tokio::test]
async fn expired_metadata_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Repo::create(&dir.path().join("repo"), &dir.path().join("key.pem"), in_a_year()).await.unwrap();
    let past = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    r.publish(&[(TRUSTED_ROOT_TARGET, vector("trusted_root.json").as_bytes())], past).await.unwrap();
    let e = fetch(&file_repo(&r)).await.unwrap_err().to_string();
    assert!(e.to_lowercase().contains("expired"), "{e}");
}

#[tokio::test]
async fn a_repository_without_a_trusted_root_or_with_one_that_does_not_parse_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let r = published(&dir.path().join("a"), &[("rekor.pub", b"not what the node reads")]).await;
    assert!(matches!(fetch(&file_repo(&r)).await, Err(TufError::NoTrustedRoot { .. })));
    let r = published(&dir.path().join("b"), &[(TRUSTED_ROOT_TARGET, b"{\"tlogs\": 3}")]).await;
    let e = fetch(&file_repo(&r)).await.unwrap_err();
    assert!(matches!(e, TufError::TrustedRoot { .. }), "{e}");
}

#[tokio::test]
async fn an_oversized_file_is_cut_off_at_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let big = vec![b' '; MAX_FILE + 1];
    let r = published(dir.path(), &[(TRUSTED_ROOT_TARGET, &big)]).await;
    let e = fetch(&file_repo(&r)).await.unwrap_err().to_string();
    assert!(e.contains(&format!("longer than {MAX_FILE} bytes")), "{e}");
}

#[tokio::test]
async fn a_replayed_older_repository_is_refused_once_a_newer_one_was_seen() {
    let dir = tempfile::tempdir().unwrap();
    let root = vector("trusted_root.json");
    let mut r = published(dir.path(), &[(TRUSTED_ROOT_TARGET, root.as_bytes())]).await;
    let old = dir.path().join("old");
    copy_dir(&r.dir, &old);
    r.publish(&[(TRUSTED_ROOT_TARGET, root.as_bytes())], in_a_year()).await.unwrap();
    let store = dir.path().join("datastore");
    let fetcher = ToughFetcher::new(Some(store)).unwrap();
    assert_eq!(fetcher.trusted_root(&file_repo(&r)).await.unwrap().targets_version, 2);
    // The mirror now serves version 1 again: the datastore remembers version 2.
    std::fs::remove_dir_all(&r.dir).unwrap();
    copy_dir(&old, &r.dir);
    let e = fetcher.trusted_root(&file_repo(&r)).await.unwrap_err().to_string();
    assert!(e.to_lowercase().contains("version"), "{e}");
    // Without the datastore the replay would pass: the datastore is what refuses it.
    assert_eq!(fetch(&file_repo(&r)).await.unwrap().targets_version, 1);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Answers in turn (the last repeats), counting calls.
struct FakeFetcher {
    answers: Mutex<Vec<Result<HeldRoot, TufError>>>,
    calls: AtomicUsize,
}

impl FakeFetcher {
    fn new(answers: Vec<Result<HeldRoot, TufError>>) -> Arc<Self> {
        Arc::new(Self { answers: Mutex::new(answers), calls: AtomicUsize::new(0) })
    }
}

#[async_trait::async_trait]
impl Fetcher for FakeFetcher {
    async fn trusted_root(&self, _repo: &TufRepo) -> Result<HeldRoot, TufError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut a = self.answers.lock().unwrap();
        if a.len() > 1 {
            a.remove(0)
        } else {
            a[0].clone()
        }
    }
}

fn repo() -> TufRepo {
    TufRepo::new(Some("https://tuf.example"), TufRoot::Data("e30=".into())).unwrap()
}

fn held(text: &str) -> HeldRoot {
    HeldRoot {
        trusted_root: text.into(),
        targets_version: 1,
        expires: now_secs() + 3600,
        source: "https://tuf.example".into(),
    }
}

fn down() -> TufError {
    TufError::Fetch { mirror: "https://tuf.example".into(), message: "connection refused".into() }
}

#[tokio::test]
async fn lookups_never_fetch_and_a_refresh_fetches_what_was_looked_up() {
    let f = FakeFetcher::new(vec![Ok(held("v1"))]);
    let s = Store::new(Some(f.clone()), None);
    assert!(matches!(s.lookup(&repo()), Err(TufError::Pending { .. })));
    assert_eq!(f.calls.load(Ordering::SeqCst), 0);
    let changes = s.subscribe();
    assert!(s.refresh(std::iter::empty()).await);
    assert!(changes.has_changed().unwrap());
    assert_eq!(s.lookup(&repo()).unwrap().trusted_root, "v1");
    assert!(!s.refresh(std::iter::empty()).await, "a held root is not fetched again before it is due");
    assert_eq!(f.calls.load(Ordering::SeqCst), 1);
    assert!(matches!(Store::offline().lookup(&repo()), Err(TufError::NoAccess { .. })));
}

#[tokio::test]
async fn a_failure_keeps_the_last_verified_root_and_with_none_held_says_why() {
    let f = FakeFetcher::new(vec![Ok(held("v1")), Err(down())]);
    let mut s = Store::new(Some(f.clone()), None);
    s.refresh([repo()]).await;
    s.good_ttl = std::time::Duration::ZERO;
    assert!(!s.refresh(std::iter::empty()).await);
    assert_eq!(s.lookup(&repo()).unwrap().trusted_root, "v1");
    let s = Store::new(Some(FakeFetcher::new(vec![Err(down())])), None);
    assert!(s.refresh([repo()]).await, "the first failure is news: the attestor's reason changes");
    assert!(s.lookup(&repo()).unwrap_err().to_string().contains("connection refused"));
}

#[tokio::test]
async fn fetched_roots_survive_a_restart_without_the_mirror() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("state/tuf-roots.json");
    let s = Store::new(Some(FakeFetcher::new(vec![Ok(held("v7"))])), Some(cache.clone()));
    s.refresh([repo()]).await;
    let booted = Store::new(Some(FakeFetcher::new(vec![Err(down())])), Some(cache.clone()));
    let h = booted.lookup(&repo()).unwrap();
    assert_eq!(h.trusted_root, "v7");
    assert!(h.source.contains("cached in"), "{}", h.source);
    booted.refresh(std::iter::empty()).await;
    assert_eq!(booted.lookup(&repo()).unwrap().trusted_root, "v7");
    // Review finding: the first refresh at boot (before any policy looked the root up) keeps
    // it, in memory and in the cache file.
    let again = Store::new(Some(FakeFetcher::new(vec![Err(down())])), Some(cache.clone()));
    again.refresh(std::iter::empty()).await;
    let reread = Store::new(None, Some(cache.clone()));
    assert_eq!(reread.lookup(&repo()).unwrap().trusted_root, "v7");
    // A command-line check reads the cache and never writes it.
    std::fs::remove_file(&cache).unwrap();
    let ro = Store::new(Some(FakeFetcher::new(vec![Ok(held("v8"))])), Some(cache.clone())).read_only();
    ro.refresh([repo()]).await;
    assert!(!cache.exists());
}

/// Review finding: the walk starts from the newest root verified before. After a key
/// rotation, a mirror holding the retired key that hides the rotation (no 2.root.json) and
/// serves newer metadata it signed, listing another trust root, is refused. Before, every
/// fetch started again from the policy's root and took the retired key's metadata.
#[tokio::test]
async fn a_rotation_is_not_forgotten_when_a_mirror_hides_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = vector("trusted_root.json");
    let mut r = published(dir.path(), &[(TRUSTED_ROOT_TARGET, root.as_bytes())]).await;
    let entry = file_repo(&r);
    // The attacker's copy: the retired key, no rotation, newer versions, its own trust root.
    let retired = dir.path().join("key.pem");
    let mut evil = Repo::create(&dir.path().join("evil"), &retired, in_a_year()).await.unwrap();
    let theirs = root.trim_end().to_string();
    for _ in 0..3 {
        evil.publish(&[(TRUSTED_ROOT_TARGET, format!("{theirs} ").as_bytes())], in_a_year()).await.unwrap();
    }
    r.rotate(&dir.path().join("new.pem")).await.unwrap();
    r.publish(&[(TRUSTED_ROOT_TARGET, root.as_bytes())], in_a_year()).await.unwrap();
    let fetcher = ToughFetcher::new(Some(dir.path().join("datastore"))).unwrap();
    assert_eq!(fetcher.trusted_root(&entry).await.unwrap().trusted_root, root, "the rotation is followed");
    std::fs::remove_dir_all(&r.dir).unwrap();
    copy_dir(&evil.dir, &r.dir);
    std::fs::remove_file(r.dir.join("1.root.json")).ok();
    let e = fetcher.trusted_root(&entry).await.unwrap_err().to_string();
    assert!(e.contains("Signature threshold"), "{e}");
    // From the policy's root alone (no datastore), the hidden rotation would have worked.
    assert_ne!(fetch(&entry).await.unwrap().trusted_root, root);
    // A datastore root.json left unreadable (a crash between tough's remove and write) is an
    // error, never a quiet walk from the policy's root.
    let own = std::fs::read_dir(dir.path().join("datastore")).unwrap().next().unwrap().unwrap().path();
    std::fs::write(own.join("root.json"), b"{\"signed\": tru").unwrap();
    let e = fetcher.trusted_root(&entry).await.unwrap_err().to_string();
    assert!(e.contains("datastore root.json"), "{e}");
}

/// Review finding: a held root is not used past the expiry of the metadata it was verified
/// under, though the mirror is down (a freeze), nor from the last-known-good copy; a
/// repository whose signed metadata no longer lists a trust root drops the held one.
#[tokio::test]
async fn a_held_root_expires_with_its_metadata_and_an_authoritative_refusal_drops_it() {
    let soon = HeldRoot { expires: now_secs() - 1, ..held("v1") };
    let f = FakeFetcher::new(vec![Ok(soon.clone()), Err(down())]);
    let mut s = Store::new(Some(f.clone()), None);
    s.refresh([repo()]).await;
    let e = s.lookup(&repo()).unwrap_err();
    assert!(matches!(e, TufError::Expired { .. }), "{e}");
    assert!(e.to_string().contains("expired at"), "{e}");
    s.good_ttl = std::time::Duration::ZERO;
    assert!(s.refresh(std::iter::empty()).await, "the expiry is news to those who compiled the root");
    assert!(matches!(s.lookup(&repo()), Err(TufError::Fetch { .. }) | Err(TufError::Expired { .. })));
    let gone = TufError::NoTrustedRoot { mirror: "https://tuf.example".into() };
    let f = FakeFetcher::new(vec![Ok(held("v1")), Err(gone)]);
    let mut s = Store::new(Some(f), None);
    s.refresh([repo()]).await;
    s.good_ttl = std::time::Duration::ZERO;
    assert!(s.refresh(std::iter::empty()).await);
    assert!(matches!(s.lookup(&repo()), Err(TufError::NoTrustedRoot { .. })));
}

/// Review finding: a root path that is not a regular file (a FIFO would block the refresh
/// forever) is refused at once; and a node holds at most MAX_REPOSITORIES repositories.
#[tokio::test]
async fn a_root_that_is_not_a_regular_file_is_refused_and_repositories_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let r = TufRepo::new(Some("https://tuf.example"), TufRoot::Path(fifo.display().to_string())).unwrap();
    let e = tokio::time::timeout(std::time::Duration::from_secs(5), fetch(&r)).await.expect("no hang").unwrap_err();
    assert!(e.to_string().contains("not a regular file"), "{e}");
    let s = Store::new(Some(FakeFetcher::new(vec![Ok(held("v1"))])), None);
    for i in 0..MAX_REPOSITORIES {
        let r = TufRepo::new(Some(&format!("https://tuf{i}.example")), TufRoot::Data("e30=".into())).unwrap();
        assert!(matches!(s.lookup(&r), Err(TufError::Pending { .. })));
    }
    let one_more = TufRepo::new(Some("https://tuf-x.example"), TufRoot::Data("e30=".into())).unwrap();
    assert!(matches!(s.lookup(&one_more), Err(TufError::TooMany { .. })));
}

/// Review finding: the HTTP side of the transport is capped too. A mirror answering an
/// endless chunked body for timestamp.json is cut off at MAX_FILE, the memory it costs
/// bounded by the cap, and the fetch fails naming the mirror.
#[tokio::test]
async fn an_endless_http_answer_is_cut_off_at_the_cap() {
    let addr = crate::testutil::http::endless_server().await;
    let dir = tempfile::tempdir().unwrap();
    let r = published(dir.path(), &[(TRUSTED_ROOT_TARGET, vector("trusted_root.json").as_bytes())]).await;
    let mut repo = file_repo(&r);
    repo.mirror = format!("http://{addr}");
    let e = fetch(&repo).await.unwrap_err().to_string();
    assert!(e.contains(&format!("TUF file from http://{addr} is over the {MAX_FILE} byte limit")), "{e}");
}
