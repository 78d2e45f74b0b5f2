//! A thin client for the parts of the OCI distribution API signature fetches use: manifests
//! and indexes by tag or digest, blobs, the referrers API, and the bearer-token challenge.
//!
//! Written here rather than taken from oci-client because the registry is hostile input and
//! a fetch sits on the path of every container start, and oci-client (0.18) could not be made
//! to do either job: it reads whole bodies (`bytes()`) before the caller can bound them, so an
//! endless manifest grew the daemon past its memory limit; it follows a layer's `urls[]`; it
//! sends `GET /v2/` before requests to a registry that needs no credentials, because it
//! caches tokens but not their absence; and its clients cannot be shared with their TLS
//! settings per host. Here:
//!
//! - Requests go out bare. Only a 401 leads to its `WWW-Authenticate` challenge, answered
//!   with the host's own credentials (never another's, never over plain HTTP to a host not
//!   configured for it); the token is cached per host and repository scope until it expires,
//!   and one fetch serves every request that was waiting for it. A host that answered
//!   without a challenge is remembered as anonymous.
//! - Every body is read through [`body::read`]: capped, streamed, drawing on a budget.
//! - Redirects are followed here, hop by hop, not by reqwest: each hop passes
//!   [`redirect::allowed`], credentials go only to the first URL's origin, and a hop to
//!   another host, from a registry not itself on loopback, is resolved by [`dns::Remote`]
//!   (no loopback or link-local answers). Token realms are held to the same rules.
//! - One long-lived pair of `reqwest::Client`s per TLS setting (the default, and each
//!   hosts.toml host with a `ca` or `skip_verify` of its own), one resolving as the system
//!   does and one as [`dns::Remote`]: connections are pooled and kept alive, and speak
//!   HTTP/2 where the registry offers it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use reqwest::header::{ACCEPT, AUTHORIZATION, LOCATION, WWW_AUTHENTICATE};
use reqwest::{StatusCode, Url};

use super::auth::{Credentials, RegistryAuth};
use super::challenge::{self, Challenge};
use super::redirect::RedirectError;
use super::{dns, hosts, redirect};
use crate::body::{self, BodyError, Budget};

/// A token with no `expires_in` lives 60 s (distribution's token spec).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Renew this long before the registry would refuse a token, so a request never races it.
const TOKEN_MARGIN: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum FetchError {
    #[error("cannot reach {host} for {what}: {message}")]
    Transport { host: String, what: String, message: String },
    #[error("{host} answered {status} for {what}{detail}")]
    Status { host: String, what: String, status: u16, detail: String },
    #[error("{host} wants credentials for {what}: {message}")]
    Unauthorized { host: String, what: String, message: String },
    #[error("token for {host} from {realm}: {message}")]
    Token { host: String, realm: String, message: String },
    /// A redirect or token realm to where the node may not follow.
    #[error("{what} from {host} refused: {source}")]
    Redirect { host: String, what: String, source: RedirectOrDns },
    #[error(transparent)]
    Body(#[from] BodyError),
}

/// Why a hop was not taken: the URL as written, or the addresses its name resolved to.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RedirectOrDns {
    #[error(transparent)]
    Redirect(#[from] RedirectError),
    #[error(transparent)]
    Dns(#[from] dns::DnsError),
}

impl FetchError {
    /// The registry's answer broke a bound or led where the node may not go: the host is
    /// hostile or broken, not just down.
    pub fn is_refusal(&self) -> bool {
        matches!(self, FetchError::Body(BodyError::TooLarge { .. } | BodyError::OverBudget { .. }))
            || matches!(self, FetchError::Redirect { .. })
    }
}

use crate::causes::error_chain;

/// One repository on one host (the registry itself or a mirror standing in for it).
#[derive(Clone, Debug)]
pub struct Repository<'a> {
    /// `host[:port]` as hosts.toml and docker config files name it.
    pub host: &'a str,
    pub plain_http: bool,
    /// The host's TLS settings where this registry's hosts.toml lists it.
    pub tls: &'a hosts::Tls,
    pub name: &'a str,
    /// The registry a mirror stands in for, sent as `?ns=` as containerd does.
    pub ns: Option<&'a str>,
}

impl Repository<'_> {
    fn url(&self, path: &str) -> String {
        let scheme = if self.plain_http { "http" } else { "https" };
        let authority = crate::reference::resolve_host(self.host);
        let mut url = format!("{scheme}://{authority}/v2/{}/{path}", self.name);
        if let Some(ns) = self.ns {
            url.push_str("?ns=");
            url.push_str(ns);
        }
        url
    }

    fn scope(&self) -> String {
        format!("repository:{}:pull", self.name)
    }
}

/// What a host needs on requests for one scope, as learnt from its answers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum Authorization {
    #[default]
    Unknown,
    /// Answered without a challenge: requests go bare.
    Anonymous,
    /// An `Authorization` header value, until `expires`.
    Header { value: String, expires: Option<Instant> },
}

impl Authorization {
    fn header(&self) -> Option<&str> {
        match self {
            Authorization::Header { value, expires } if expires.is_none_or(|e| Instant::now() < e) => Some(value),
            _ => None,
        }
    }
}

#[derive(Default)]
struct Slot {
    state: Mutex<Authorization>,
    /// Held while a challenge is answered, so concurrent 401s share one token fetch.
    answering: tokio::sync::Mutex<()>,
    /// Answers given so far, and the last failure with its number: requests that waited for
    /// an answer that failed share the failure rather than each asking again.
    answers: std::sync::atomic::AtomicU64,
    failure: Mutex<Option<(u64, FetchError)>>,
}

/// The clients of one TLS setting: `direct` for the hosts the node chose, `remote` for
/// those a remote registry chose (see [`dns`]). Two pools, so a connection opened under the
/// system's answers is never lent to a hop that must not reach the node's own addresses.
struct Http {
    direct: reqwest::Client,
    remote: reqwest::Client,
}

pub struct Client {
    default: Http,
    /// One per TLS setting of hosts.toml (`ca`, `skip_verify`, `*.crt`), used for the hosts
    /// that have it where they have it (see [`hosts::Tls`]).
    per_tls: HashMap<hosts::Tls, Http>,
    /// Hosts spoken to over plain HTTP: the only ones credentials may reach unencrypted.
    plain_http: HashSet<String>,
    credentials: Credentials,
    cluster_credentials: Arc<RwLock<Credentials>>,
    slots: Mutex<HashMap<(String, String), Arc<Slot>>>,
    max_token_bytes: usize,
}

impl Client {
    pub fn new(
        mirrors: &hosts::Mirrors,
        plain_http: impl IntoIterator<Item = String>,
        credentials: Credentials,
        cluster_credentials: Arc<RwLock<Credentials>>,
        timeout: Duration,
        max_token_bytes: usize,
        lookup: Arc<dyn dns::Lookup>,
    ) -> Self {
        let builder = |remote: bool| {
            let b = reqwest::Client::builder()
                .connect_timeout(timeout)
                .timeout(timeout)
                .redirect(reqwest::redirect::Policy::none())
                .pool_idle_timeout(Duration::from_secs(90));
            if remote {
                b.dns_resolver(Arc::new(dns::Remote(Arc::clone(&lookup))))
            } else {
                b.dns_resolver(Arc::new(dns::Direct(Arc::clone(&lookup))))
            }
        };
        let pair = |tls: Option<&hosts::Tls>| -> Result<Http, reqwest::Error> {
            let one = |remote: bool| match tls {
                None => builder(remote).build(),
                Some(tls) => {
                    let certs: Result<Vec<_>, _> =
                        tls.extra_roots.iter().map(|der| reqwest::Certificate::from_der(der)).collect();
                    certs.and_then(|c| {
                        builder(remote).tls_certs_merge(c).tls_danger_accept_invalid_certs(tls.skip_verify).build()
                    })
                }
            };
            Ok(Http { direct: one(false)?, remote: one(true)? })
        };
        let mut per_tls = HashMap::new();
        for tls in mirrors.tls_settings() {
            let built = pair(Some(tls));
            // The CA files were parsed when hosts.toml was read; should the TLS stack still
            // refuse them, that host is reached with the system roots only, so its fetches
            // fail (a denial) rather than trust more than the node does.
            match built {
                Ok(c) => {
                    per_tls.insert(tls.clone(), c);
                }
                Err(e) => tracing::error!(error = %error_chain(&e), "hosts.toml TLS settings cannot be applied"),
            }
        }
        let mut plain: HashSet<String> = plain_http.into_iter().collect();
        plain.extend(mirrors.plain_http_hosts().map(String::from));
        // The default settings build unless the TLS stack is broken; then nothing could be
        // fetched at all, and every fetch fails (a denial).
        let default = pair(None).unwrap_or_else(|e| {
            tracing::error!(error = %error_chain(&e), "the registry client cannot be built");
            Http { direct: reqwest::Client::default(), remote: reqwest::Client::default() }
        });
        Self {
            default,
            per_tls,
            plain_http: plain,
            credentials,
            cluster_credentials,
            slots: Mutex::default(),
            max_token_bytes,
        }
    }

    /// Whether `host` is configured to be spoken to over plain HTTP.
    pub fn is_plain_http(&self, host: &str) -> bool {
        self.plain_http.contains(host)
    }

    fn http_for(&self, tls: &hosts::Tls) -> &Http {
        self.per_tls.get(tls).unwrap_or(&self.default)
    }

    /// A plain GET outside any registry (lookaside stores): same redirect rules and bounds.
    pub async fn get_url(&self, url: &str, limit: usize, budget: &Budget) -> Result<Option<Bytes>, FetchError> {
        let host = Url::parse(url).ok().and_then(|u| u.host_str().map(String::from)).unwrap_or_else(|| url.to_string());
        let what = url.to_string();
        let resp = self.follow(&self.default, url, None, None, &host, &what).await?;
        finish(resp, &host, &what, limit, budget).await
    }

    /// `GET url`, and the redirects it answers with. Each hop passes [`redirect::allowed`]
    /// against the first URL; `authorization` goes only to the first URL's origin (as Go's
    /// net/http and reqwest keep it); a hop to another origin is resolved by [`dns::Remote`]
    /// unless the first URL is itself on loopback (a node-local registry's redirects stay
    /// where it is).
    async fn follow(
        &self,
        http: &Http,
        url: &str,
        accept: Option<&str>,
        authorization: Option<&str>,
        host: &str,
        what: &str,
    ) -> Result<reqwest::Response, FetchError> {
        let refused =
            |source: RedirectOrDns| FetchError::Redirect { host: host.to_string(), what: what.to_string(), source };
        let first = Url::parse(url).map_err(|e| FetchError::Transport {
            host: host.to_string(),
            what: what.to_string(),
            message: format!("{url:?} is not a URL: {e}"),
        })?;
        let mut current = first.clone();
        for _ in 0..=redirect::MAX_HOPS {
            let same_origin = current.origin() == first.origin();
            let client = if same_origin || redirect::is_local(&first) { &http.direct } else { &http.remote };
            let mut req = client.get(current.clone());
            if let Some(a) = accept {
                req = req.header(ACCEPT, a);
            }
            if let Some(a) = authorization.filter(|_| same_origin) {
                req = req.header(AUTHORIZATION, a);
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    return Err(match dns::refusal_in(&e) {
                        Some(d @ dns::DnsError::Local { .. }) => refused(d.clone().into()),
                        _ => transport(host, what, &e),
                    })
                }
            };
            let hop = matches!(resp.status().as_u16(), 301 | 302 | 303 | 307 | 308);
            let Some(location) = resp.headers().get(LOCATION).filter(|_| hop) else { return Ok(resp) };
            let location = String::from_utf8_lossy(location.as_bytes()).into_owned();
            let next = current.join(&location).map_err(|e| {
                refused(
                    RedirectError::BadLocation {
                        host: redirect::host_of(&first),
                        location: location.chars().take(200).collect(),
                        message: e.to_string(),
                    }
                    .into(),
                )
            })?;
            redirect::allowed(&first, &next).map_err(|e| refused(e.into()))?;
            drain(resp).await;
            current = next;
        }
        Err(refused(RedirectError::TooMany { host: redirect::host_of(&first) }.into()))
    }

    /// `GET /v2/<name>/<path>`; `Ok(None)` when the host says it does not exist (404).
    pub async fn get(
        &self,
        repo: &Repository<'_>,
        path: &str,
        accept: &str,
        limit: usize,
        budget: &Budget,
    ) -> Result<Option<Bytes>, FetchError> {
        let (url, what) = (repo.url(path), format!("{}/{path}", repo.name));
        let slot = self.slot(repo.host, &repo.scope());
        let known = slot.state.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut resp = self.send(repo, &url, accept, known.header(), &what).await?;
        if resp.status() == StatusCode::UNAUTHORIZED && !same_origin(resp.url(), &url) {
            // A redirect target's challenge is its own: answering it would hand this host's
            // credentials to a realm another host named.
            drain(resp).await;
            return Err(unauthorized(
                repo.host,
                &what,
                "a redirect target on another host answered 401; its challenge is not answered with this host's credentials",
            ));
        }
        if resp.status() == StatusCode::UNAUTHORIZED {
            let challenge =
                challenge::pick(resp.headers().get_all(WWW_AUTHENTICATE).iter().filter_map(|v| v.to_str().ok()));
            drain(resp).await;
            let header = self.answer(repo, &slot, &known, challenge, &what).await?;
            resp = self.send(repo, &url, accept, Some(&header), &what).await?;
            if resp.status() == StatusCode::UNAUTHORIZED {
                *slot.state.lock().unwrap_or_else(|e| e.into_inner()) = Authorization::Unknown;
                return Err(unauthorized(repo.host, &what, "the credentials or token were refused"));
            }
        } else if known == Authorization::Unknown
            && (resp.status().is_success() || resp.status() == StatusCode::NOT_FOUND)
        {
            *slot.state.lock().unwrap_or_else(|e| e.into_inner()) = Authorization::Anonymous;
        }
        finish(resp, repo.host, &what, limit, budget).await
    }

    async fn send(
        &self,
        repo: &Repository<'_>,
        url: &str,
        accept: &str,
        authorization: Option<&str>,
        what: &str,
    ) -> Result<reqwest::Response, FetchError> {
        self.follow(self.http_for(repo.tls), url, Some(accept), authorization, repo.host, what).await
    }

    fn slot(&self, host: &str, scope: &str) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(slots.entry((host.to_string(), scope.to_string())).or_default())
    }

    /// The host's own credentials: the node's first, then the cluster's Secrets. A mirror's
    /// are its own, never those of the registry it stands in for.
    fn credentials_for(&self, host: &str) -> RegistryAuth {
        match self.credentials.auth_for(host) {
            RegistryAuth::Anonymous => {
                self.cluster_credentials.read().unwrap_or_else(|e| e.into_inner()).auth_for(host)
            }
            found => found,
        }
    }

    /// The `Authorization` value answering `challenge`, shared with requests that got the
    /// same 401 meanwhile.
    async fn answer(
        &self,
        repo: &Repository<'_>,
        slot: &Slot,
        tried: &Authorization,
        challenge: Option<Challenge>,
        what: &str,
    ) -> Result<String, FetchError> {
        use std::sync::atomic::Ordering;
        let before = slot.answers.load(Ordering::SeqCst);
        let _one_at_a_time = slot.answering.lock().await;
        {
            let now = slot.state.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if let Some(h) = now.header().filter(|_| now != *tried) {
                return Ok(h.to_string());
            }
            let failure = slot.failure.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((n, e)) = failure.as_ref().filter(|(n, _)| *n > before) {
                tracing::debug!(answer = n, "sharing a failed answer to a challenge");
                return Err(e.clone());
            }
        }
        let answered = self.answer_now(repo, challenge, what).await;
        let n = slot.answers.fetch_add(1, Ordering::SeqCst) + 1;
        match answered {
            Ok((value, expires)) => {
                *slot.state.lock().unwrap_or_else(|e| e.into_inner()) =
                    Authorization::Header { value: value.clone(), expires };
                Ok(value)
            }
            Err(e) => {
                *slot.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some((n, e.clone()));
                Err(e)
            }
        }
    }

    async fn answer_now(
        &self,
        repo: &Repository<'_>,
        challenge: Option<Challenge>,
        what: &str,
    ) -> Result<(String, Option<Instant>), FetchError> {
        let (value, expires) = match (challenge, self.credentials_for(repo.host)) {
            (None, _) => return Err(unauthorized(repo.host, what, "answered 401 without a Basic or Bearer challenge")),
            (Some(Challenge::Basic), RegistryAuth::Basic(u, p)) => (basic(&u, &p), None),
            (Some(Challenge::Basic), RegistryAuth::Bearer(t))
            | (Some(Challenge::Bearer { .. }), RegistryAuth::Bearer(t)) => (format!("Bearer {t}"), None),
            (Some(Challenge::Basic), RegistryAuth::Anonymous) => {
                return Err(unauthorized(repo.host, what, "no credentials are configured for it"))
            }
            (Some(Challenge::Bearer { realm, service, scope }), creds) => {
                let (token, lifetime) = self.token(repo, &realm, service, scope, &creds).await?;
                (format!("Bearer {token}"), Some(Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN)))
            }
        };
        Ok((value, expires))
    }

    /// A pull token from the realm the host named, for the repository's scope (and the one
    /// the challenge asked for, if it differs).
    async fn token(
        &self,
        repo: &Repository<'_>,
        realm: &str,
        service: Option<String>,
        scope: Option<String>,
        creds: &RegistryAuth,
    ) -> Result<(String, Duration), FetchError> {
        let fail =
            |message: String| FetchError::Token { host: repo.host.to_string(), realm: realm.to_string(), message };
        let mut url = Url::parse(realm).map_err(|e| fail(format!("not a URL: {e}")))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(fail("not an http(s) URL".into()));
        }
        if url.scheme() == "http" && !self.is_plain_http(repo.host) {
            return Err(fail(format!("plain http, and {} is not configured for plain http", repo.host)));
        }
        // A realm may be on another host (Docker Hub's is), but like a redirect it may not
        // turn a remote registry into a request to this node's own addresses: not by its
        // address, nor by a name that resolves to one (a realm on another host than the
        // registry is resolved as a redirect hop is).
        let registry_url = Url::parse(&repo.url("")).map_err(|e| fail(e.to_string()))?;
        if redirect::is_local(&url) && !redirect::is_local(&registry_url) {
            return Err(fail("a loopback or link-local address, named by a remote host".into()));
        }
        let http = self.http_for(repo.tls);
        let client = if url.origin() == registry_url.origin() || redirect::is_local(&registry_url) {
            &http.direct
        } else {
            &http.remote
        };
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = &service {
                q.append_pair("service", s);
            }
            let ours = repo.scope();
            if scope.as_deref().is_some_and(|s| s != ours) {
                q.append_pair("scope", scope.as_deref().unwrap_or_default());
            }
            q.append_pair("scope", &ours);
        }
        // The host's own TLS settings, as containerd fetches a host's tokens with its client.
        // A token service's redirects are not followed: none is needed, and the credentials
        // would have to be dropped or sent on.
        let mut req = client.get(url.clone());
        if let RegistryAuth::Basic(u, p) = creds {
            req = req.header(AUTHORIZATION, basic(u, p));
        }
        let resp = req.send().await.map_err(|e| match dns::refusal_in(&e) {
            Some(d) => fail(d.to_string()),
            None => fail(error_chain(&e)),
        })?;
        if !resp.status().is_success() {
            return Err(fail(format!("answered {}", resp.status())));
        }
        let budget = Budget::new(self.max_token_bytes);
        let raw = body::read(resp, self.max_token_bytes, &budget, repo.host, "token reply").await?;
        #[derive(serde::Deserialize)]
        struct Reply {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let reply: Reply = serde_json::from_slice(&raw).map_err(|e| fail(format!("malformed reply: {e}")))?;
        let token = reply
            .token
            .or(reply.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| fail("no token in the reply".into()))?;
        let lifetime = reply.expires_in.map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
        Ok((token, lifetime))
    }
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

fn transport(host: &str, what: &str, e: &reqwest::Error) -> FetchError {
    FetchError::Transport { host: host.to_string(), what: what.to_string(), message: error_chain(e) }
}

/// Whether the response came from the origin first asked (not a redirect target elsewhere).
fn same_origin(answered: &Url, asked: &str) -> bool {
    Url::parse(asked).is_ok_and(|a| a.origin() == answered.origin())
}

fn unauthorized(host: &str, what: &str, message: &str) -> FetchError {
    FetchError::Unauthorized { host: host.to_string(), what: what.to_string(), message: message.to_string() }
}

/// 404 is absence, other failures name their status; a success is read within `limit`.
async fn finish(
    resp: reqwest::Response,
    host: &str,
    what: &str,
    limit: usize,
    budget: &Budget,
) -> Result<Option<Bytes>, FetchError> {
    match resp.status() {
        StatusCode::NOT_FOUND => {
            drain(resp).await;
            Ok(None)
        }
        s if s.is_success() => Ok(Some(body::read(resp, limit, budget, host, what).await?)),
        s => {
            let detail = error_detail(resp).await;
            Err(FetchError::Status { host: host.to_string(), what: what.to_string(), status: s.as_u16(), detail })
        }
    }
}

/// Read a small answer's body to its end, so that its connection goes back to the pool
/// (HTTP/1.1 reuses a connection only once its body is read); a longer one is dropped, and
/// its connection with it.
async fn drain(resp: reqwest::Response) {
    const MAX: usize = 4 << 10;
    let _ = body::read(resp, MAX, &Budget::new(MAX), "", "").await;
}

/// The registry's own words for a failure (the distribution spec's `errors` list), from
/// the first KiB of the body, as `: CODE message`; empty when there are none.
async fn error_detail(resp: reqwest::Response) -> String {
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    const MAX: usize = 1 << 10;
    let Ok(raw) = body::read(resp, MAX, &Budget::new(MAX), "", "").await else { return String::new() };
    let Ok(envelope) = serde_json::from_slice::<Envelope>(&raw) else { return String::new() };
    let words: Vec<String> = envelope.errors.iter().map(|e| format!("{} {}", e.code, e.message)).collect();
    // Registry text goes into logs and denial messages: printable, and short.
    let text: String = words.join("; ").chars().filter(|c| !c.is_control()).take(200).collect();
    if text.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", text.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static SYSTEM_ROOTS: hosts::Tls = hosts::Tls { extra_roots: Vec::new(), skip_verify: false };

    fn client(plain_http: &[&str], creds_for: &str) -> Client {
        let mut credentials = Credentials::default();
        let cfg = format!(r#"{{"auths": {{"{creds_for}": {{"username": "robot", "password": "s3cret"}}}}}}"#);
        credentials.add_config(cfg.as_bytes(), "test").unwrap();
        let plain = plain_http.iter().map(|h| h.to_string());
        Client::new(
            &hosts::Mirrors::default(),
            plain,
            credentials,
            Arc::default(),
            Duration::from_secs(2),
            1 << 16,
            Arc::new(dns::System),
        )
    }

    fn repo(host: &str, plain_http: bool) -> Repository<'_> {
        Repository { host, plain_http, tls: &SYSTEM_ROOTS, name: "team/app", ns: None }
    }

    #[tokio::test]
    async fn credentials_never_go_to_a_plain_http_realm_of_a_tls_host() {
        let c = client(&[], "reg.example");
        let creds = c.credentials_for("reg.example");
        let e =
            c.token(&repo("reg.example", false), "http://auth.example/token", None, None, &creds).await.unwrap_err();
        let text = e.to_string();
        assert!(text.contains("reg.example") && text.contains("plain http"), "{text}");
        assert!(!text.contains("s3cret"));
        // A realm on the node's loopback, named by a remote registry, is refused too.
        let e =
            c.token(&repo("reg.example", false), "https://127.0.0.1:9/token", None, None, &creds).await.unwrap_err();
        assert!(e.to_string().contains("loopback"), "{e}");
    }

    #[test]
    fn each_host_answers_with_its_own_credentials_only() {
        let c = client(&["mirror.local:5000"], "reg.example");
        assert_eq!(c.credentials_for("reg.example"), RegistryAuth::Basic("robot".into(), "s3cret".into()));
        assert_eq!(c.credentials_for("mirror.local:5000"), RegistryAuth::Anonymous);
        assert!(c.is_plain_http("mirror.local:5000") && !c.is_plain_http("reg.example"));
    }

    #[test]
    fn tls_settings_belong_to_the_host_where_a_registrys_hosts_toml_lists_it() {
        let d = tempfile::tempdir().unwrap();
        let root = include_str!("../../testdata/cosign/root.pem");
        for (registry, text) in [
            ("a.io", "[host.\"https://shared.mirror\"]\nca = \"ca.pem\"\n"),
            ("b.io", "[host.\"https://shared.mirror\"]\n"),
        ] {
            std::fs::create_dir_all(d.path().join(registry)).unwrap();
            std::fs::write(d.path().join(registry).join("hosts.toml"), text).unwrap();
            std::fs::write(d.path().join(registry).join("ca.pem"), root).unwrap();
        }
        let mirrors = hosts::Mirrors::load(d.path()).unwrap();
        let c = Client::new(
            &mirrors,
            [],
            Credentials::default(),
            Arc::default(),
            Duration::from_secs(2),
            1 << 16,
            Arc::new(dns::System),
        );
        let (for_a, for_b) = (mirrors.endpoints("a.io"), mirrors.endpoints("b.io"));
        assert_eq!((for_a[0].host.as_str(), for_b[0].host.as_str()), ("shared.mirror", "shared.mirror"));
        assert!(!std::ptr::eq(c.http_for(&for_a[0].tls), &c.default), "a.io's CA for the mirror");
        assert!(std::ptr::eq(c.http_for(&for_b[0].tls), &c.default), "b.io lists it without one");
        assert!(std::ptr::eq(c.http_for(&for_a[1].tls), &c.default), "a.io itself has no CA");
    }

    #[test]
    fn a_token_is_sent_only_until_it_expires() {
        let live = Authorization::Header { value: "Bearer t".into(), expires: Some(Instant::now() + TOKEN_MARGIN) };
        assert_eq!(live.header(), Some("Bearer t"));
        let gone = Authorization::Header { value: "Bearer t".into(), expires: Some(Instant::now()) };
        assert_eq!(gone.header(), None);
        assert_eq!(Authorization::Header { value: "Basic x".into(), expires: None }.header(), Some("Basic x"));
        assert_eq!(Authorization::Anonymous.header(), None);
    }

    #[test]
    fn urls_name_the_mirrored_registry_and_docker_hubs_api_host() {
        let r =
            Repository { host: "docker.io", plain_http: false, tls: &SYSTEM_ROOTS, name: "library/nginx", ns: None };
        assert_eq!(r.url("manifests/v1"), "https://registry-1.docker.io/v2/library/nginx/manifests/v1");
        let m = Repository { host: "m:5000", plain_http: true, tls: &SYSTEM_ROOTS, name: "a/b", ns: Some("docker.io") };
        assert_eq!(m.url("blobs/sha256:1"), "http://m:5000/v2/a/b/blobs/sha256:1?ns=docker.io");
    }
}
