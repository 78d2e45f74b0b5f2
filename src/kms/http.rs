//! The HTTP seam of the KMS providers: one request in, status and body out.
//!
//! Providers build requests exactly as their REST APIs document them; tests replace this
//! seam with recorded answers (tokens, keys, errors, 429s, a provider that is down).

use std::time::Duration;

use crate::body::{self, BodyError, Budget};

/// Each KMS call is bounded; resolution runs at policy load, but a hung metadata server
/// must not hold a sync forever.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Largest answer read.
const MAX_ANSWER: usize = 1 << 20;

#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Request {
    // Headers carry bearer tokens and signatures: only their names are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &names)
            .finish()
    }
}

impl Request {
    pub fn get(url: impl Into<String>) -> Self {
        Self { method: "GET", url: url.into(), headers: Vec::new(), body: Vec::new() }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// A request that got no usable answer, or a client that could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// Refused, reset, timed out, TLS: `host` is scheme and host only (URLs carry queries).
    #[error("{host}: {message}")]
    Transport { host: String, message: String },
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error("request method {0:?} is not valid")]
    Method(String),
    #[error("{var} {path}: {message}")]
    CaBundle { var: &'static str, path: String, message: String },
    #[error("HTTP client: {0}")]
    Client(String),
}

/// Sends one request. `Err` is a transport failure (refused, reset, timed out, TLS).
#[async_trait::async_trait]
pub trait Http: Send + Sync {
    async fn send(&self, request: Request) -> Result<Response, HttpError>;
}

pub struct ReqwestHttp {
    client: reqwest::Client,
}

impl ReqwestHttp {
    /// A client that also trusts the CA bundles named by `AWS_CA_BUNDLE` and `VAULT_CACERT`
    /// (private endpoints, test servers), as the providers' own tools do.
    pub fn from_env() -> Result<Self, HttpError> {
        // No redirects: reqwest drops `Authorization` on a cross-host redirect, but not
        // `X-Amz-Security-Token` or `X-Vault-Token`; the providers' key APIs never redirect.
        let mut builder = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none());
        for var in ["AWS_CA_BUNDLE", "VAULT_CACERT"] {
            let Ok(path) = std::env::var(var) else { continue };
            if path.is_empty() {
                continue;
            }
            let bundle =
                |e: &dyn std::fmt::Display| HttpError::CaBundle { var, path: path.clone(), message: e.to_string() };
            let pem = std::fs::read(&path).map_err(|e| bundle(&e))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bundle(&e))?;
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        Ok(Self { client: builder.build().map_err(|e| HttpError::Client(e.to_string()))? })
    }
}

#[async_trait::async_trait]
impl Http for ReqwestHttp {
    async fn send(&self, request: Request) -> Result<Response, HttpError> {
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| HttpError::Method(request.method.to_string()))?;
        let mut r = self.client.request(method, &request.url);
        for (name, value) in &request.headers {
            r = r.header(name, value);
        }
        if !request.body.is_empty() || request.method != "GET" {
            r = r.body(request.body);
        }
        let transport = |e: &reqwest::Error| HttpError::Transport {
            host: host_of(&request.url),
            message: crate::causes::error_chain(e),
        };
        let resp = r.send().await.map_err(|e| transport(&e))?;
        let status = resp.status().as_u16();
        // Key documents are a few kilobytes; bound what a confused or hostile endpoint can
        // make us hold, chunk by chunk, before it is all read.
        let body = body::read(resp, MAX_ANSWER, &Budget::new(MAX_ANSWER), &host_of(&request.url), "KMS answer").await?;
        Ok(Response { status, body: body.to_vec() })
    }
}

/// Scheme and host only: URLs can carry a query, never worth logging.
fn host_of(url: &str) -> String {
    url.split('/').take(3).collect::<Vec<_>>().join("/")
}

#[cfg(test)]
pub(crate) mod fake {
    //! A scripted HTTP seam: answers by method and URL prefix, records every request.

    use std::sync::Mutex;

    use super::*;

    /// Method, URL prefix, and the answers still to give.
    type Route = (String, String, Vec<Result<Response, HttpError>>);

    #[derive(Default)]
    pub struct FakeHttp {
        routes: Mutex<Vec<Route>>,
        pub seen: Mutex<Vec<Request>>,
    }

    impl FakeHttp {
        /// Answer `method url…` with these responses in turn (the last one repeats).
        pub fn route(&self, method: &str, url_prefix: &str, answers: Vec<Result<(u16, &str), &str>>) -> &Self {
            let answers = answers
                .into_iter()
                .map(|a| {
                    a.map(|(status, body)| Response { status, body: body.as_bytes().to_vec() })
                        .map_err(|message| HttpError::Transport { host: host_of(url_prefix), message: message.into() })
                })
                .collect();
            self.routes.lock().unwrap().push((method.into(), url_prefix.into(), answers));
            self
        }

        pub fn requests(&self) -> Vec<Request> {
            self.seen.lock().unwrap().clone()
        }
    }

    #[async_trait::async_trait]
    impl Http for FakeHttp {
        async fn send(&self, request: Request) -> Result<Response, HttpError> {
            self.seen.lock().unwrap().push(request.clone());
            let mut routes = self.routes.lock().unwrap();
            // Longest matching prefix, so a specific route beats a general one.
            let best = routes
                .iter_mut()
                .filter(|(m, p, _)| *m == request.method && request.url.starts_with(p.as_str()))
                .max_by_key(|(_, p, _)| p.len());
            match best {
                Some((_, _, answers)) if answers.len() > 1 => answers.remove(0),
                Some((_, _, answers)) => answers[0].clone(),
                None => Err(HttpError::Transport {
                    host: host_of(&request.url),
                    message: format!("connection refused ({} {})", request.method, request.url),
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key endpoint that answers with an endless chunked body.
    async fn endless_endpoint() -> String {
        format!("http://{}/v1/keys/k", crate::testutil::http::endless_server().await)
    }

    #[tokio::test]
    async fn an_endless_answer_is_cut_off_at_the_cap() {
        let http = ReqwestHttp::from_env().unwrap();
        let url = endless_endpoint().await;
        let err = http.send(Request::get(&url)).await.unwrap_err();
        assert!(
            matches!(&err, HttpError::Body(BodyError::TooLarge { limit, host, .. }) if *limit == MAX_ANSWER && url.starts_with(host.as_str())),
            "{err}"
        );
    }
}
