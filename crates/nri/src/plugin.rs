//! A plugin's connection to the runtime: dialing, registration, serving, reconnecting.
//!
//! Two ways in: *external* (a daemon dials `/var/run/nri/nri.sock` and redials with backoff
//! whenever the runtime restarts) and *pre-installed* (the runtime starts
//! `/opt/nri/plugins/NN-name` itself with the socket on an inherited fd; when that
//! connection ends, the process ends, and the runtime starts a new one next time).

use std::os::fd::{FromRawFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{stream, StreamExt};
use tokio::net::UnixStream;
use tokio::sync::watch;
use ttrpc::context;
use ttrpc::r#async::transport::{Listener, Socket};

use crate::mux;
use crate::protocol::nri::RegisterPluginRequest;
use crate::protocol::nri_ttrpc::{create_plugin, Plugin, RuntimeClient};

/// A plugin [`run`] can serve: the NRI [`Plugin`] service, plus hooks for the connection's
/// state (a validating plugin must know whether the runtime is listening to it at all).
pub trait NriPlugin: Plugin + Send + Sync + 'static {
    /// Registered with the runtime; requests may arrive from now on.
    fn connected(&self) {}
    /// The connection ended (runtime restart, shutdown, error); nothing is checked by this
    /// plugin until the next [`NriPlugin::connected`].
    fn disconnected(&self) {}
}

/// NRI's default socket for external plugins.
pub const DEFAULT_SOCKET: &str = "/var/run/nri/nri.sock";
/// The runtime waits this long for RegisterPlugin after accepting a connection.
const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A connection that lived this long was healthy; the next failure starts backoff afresh.
const HEALTHY_SESSION: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum NriError {
    #[error("nri plugin index {0:?} must be exactly two digits")]
    BadIndex(String),
    #[error("cannot connect to nri socket {path}: {source}")]
    Connect { path: PathBuf, source: std::io::Error },
    #[error("nri socket on inherited fd {fd} is unusable: {source}")]
    InheritedFd { fd: RawFd, source: std::io::Error },
    #[error("nri RegisterPlugin failed: {0}")]
    Register(String),
    #[error("nri ttrpc server failed: {0}")]
    Serve(String),
}

/// How the plugin reaches the runtime.
#[derive(Debug, Clone)]
pub enum Transport {
    /// Dial this socket; redial when it goes away.
    External(PathBuf),
    /// Pre-installed plugin: the runtime handed us this connected fd.
    Inherited(RawFd),
}

#[derive(Debug, Clone)]
pub struct PluginIdentity {
    pub name: String,
    pub index: String,
}

impl PluginIdentity {
    pub fn new(name: impl Into<String>, index: impl Into<String>) -> Result<Self, NriError> {
        let index = index.into();
        if index.len() != 2 || !index.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NriError::BadIndex(index));
        }
        Ok(Self { name: name.into(), index })
    }
}

/// The transport the environment asks for: the runtime sets `NRI_PLUGIN_SOCKET` (an fd
/// number) when it launches a pre-installed plugin.
pub fn transport_from_env(socket: PathBuf) -> Transport {
    match std::env::var("NRI_PLUGIN_SOCKET").ok().and_then(|v| v.parse::<RawFd>().ok()) {
        Some(fd) => Transport::Inherited(fd),
        None => Transport::External(socket),
    }
}

/// Run the plugin until `shutdown` flips to true (or, when pre-installed, until the runtime
/// closes our connection).
pub async fn run<P: NriPlugin>(
    transport: Transport,
    identity: PluginIdentity,
    handler: Arc<P>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), NriError> {
    let mut backoff = BACKOFF_START;
    loop {
        let started = Instant::now();
        let stream = match &transport {
            Transport::Inherited(fd) => inherited_stream(*fd)?,
            Transport::External(path) => match UnixStream::connect(path).await {
                Ok(s) => s,
                Err(source) => {
                    // Log the first failure of a run of retries, not every retry.
                    if backoff == BACKOFF_START {
                        tracing::warn!(error = %NriError::Connect { path: path.clone(), source }, "nri not reachable, retrying");
                    }
                    if sleep_or_shutdown(backoff, &mut shutdown).await {
                        return Ok(());
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            },
        };
        let result = session(stream, &identity, &handler, &mut shutdown).await;
        handler.disconnected();
        match (&result, &transport) {
            (Ok(SessionEnd::Shutdown), _) => return Ok(()),
            (_, Transport::Inherited(_)) => {
                tracing::info!("nri connection from the runtime ended; exiting (pre-installed mode)");
                return result.map(|_| ());
            }
            (Ok(SessionEnd::Disconnected(why)), Transport::External(_)) => {
                tracing::warn!(reason = %why, "nri connection lost; reconnecting")
            }
            (Err(e), Transport::External(_)) => tracing::warn!(error = %e, "nri session failed; reconnecting"),
        }
        if started.elapsed() >= HEALTHY_SESSION {
            backoff = BACKOFF_START;
        }
        if sleep_or_shutdown(backoff, &mut shutdown).await {
            return Ok(());
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

enum SessionEnd {
    Shutdown,
    Disconnected(String),
}

fn inherited_stream(fd: RawFd) -> Result<UnixStream, NriError> {
    // SAFETY: the runtime passes us ownership of this socket fd; nothing else in the process
    // uses it, and it is taken exactly once because pre-installed mode ends with the session.
    let std_stream = unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) };
    std_stream.set_nonblocking(true).map_err(|source| NriError::InheritedFd { fd, source })?;
    UnixStream::from_std(std_stream).map_err(|source| NriError::InheritedFd { fd, source })
}

/// Serve one connection: start the plugin service, register, then wait for the end.
async fn session<P: NriPlugin>(
    stream: UnixStream,
    identity: &PluginIdentity,
    handler: &Arc<P>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<SessionEnd, NriError> {
    let muxed = mux::split(stream);
    let listener = single_connection_listener(muxed.plugin_service);
    let mut server = ttrpc::r#async::Server::new()
        .register_service(create_plugin(handler.clone() as Arc<dyn Plugin + Send + Sync>))
        .add_listener(listener);
    server.start().await.map_err(|e| NriError::Serve(e.to_string()))?;

    let client = RuntimeClient::new(ttrpc::r#async::Client::new(Socket::new(muxed.runtime_service)));
    let req = RegisterPluginRequest {
        plugin_name: identity.name.clone(),
        plugin_idx: identity.index.clone(),
        ..Default::default()
    };
    let mut done = muxed.done;
    let registered = tokio::select! {
        r = client.register_plugin(context::with_timeout(REGISTRATION_TIMEOUT.as_nanos() as i64), &req) => r,
        end = &mut done => {
            let _ = server.shutdown().await;
            return Ok(SessionEnd::Disconnected(end.map(|e| e.to_string()).unwrap_or_else(|e| e.to_string())));
        }
    };
    if let Err(e) = registered {
        let _ = server.shutdown().await;
        return Err(NriError::Register(e.to_string()));
    }
    tracing::info!(name = %identity.name, index = %identity.index, "registered with the runtime over nri");
    handler.connected();

    let end = tokio::select! {
        end = &mut done => SessionEnd::Disconnected(end.map(|e| e.to_string()).unwrap_or_else(|e| e.to_string())),
        _ = shutdown.wait_for(|s| *s) => SessionEnd::Shutdown,
    };
    // Dropping the server after a shutdown closes the connection, which is how an NRI
    // plugin unregisters; in-flight requests finish first (ttrpc drains them).
    let _ = server.shutdown().await;
    drop(client);
    Ok(end)
}

/// A ttrpc listener that yields one already-connected stream. After it the stream stays
/// pending instead of ending: the ttrpc server's accept loop must stay alive, because
/// `Server::shutdown` hands the listener back through it (and panics on a send to an
/// accept loop that has already returned).
pub(crate) fn single_connection_listener(conn: tokio::io::DuplexStream) -> Listener {
    Listener::new(stream::iter([Ok::<_, std::io::Error>(conn)]).chain(stream::pending()))
}

async fn sleep_or_shutdown(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = shutdown.wait_for(|s| *s) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_must_be_two_digits() {
        assert!(PluginIdentity::new("signet", "05").is_ok());
        for bad in ["5", "005", "ab", ""] {
            assert!(matches!(PluginIdentity::new("signet", bad), Err(NriError::BadIndex(_))), "{bad}");
        }
    }
}

#[cfg(test)]
mod socket_tests {
    //! The run loop against the runtime-side harness: registration, a call, the hooks, and
    //! redialing after the runtime goes away.
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use tokio::net::UnixListener;
    use ttrpc::r#async::TtrpcContext;

    use super::*;
    use crate::api::{ConfigureRequest, ConfigureResponse, CreateContainerRequest, CreateContainerResponse};
    use crate::runtime_side::{accept, create_request, ctx};

    #[derive(Default)]
    struct DenyAll {
        connected: AtomicUsize,
        disconnected: AtomicUsize,
    }

    #[async_trait]
    impl Plugin for DenyAll {
        async fn configure(&self, _: &TtrpcContext, _: ConfigureRequest) -> ttrpc::Result<ConfigureResponse> {
            Ok(ConfigureResponse {
                events: crate::event::mask(&[crate::event::CREATE_CONTAINER]),
                ..Default::default()
            })
        }
        async fn create_container(
            &self,
            _: &TtrpcContext,
            req: CreateContainerRequest,
        ) -> ttrpc::Result<CreateContainerResponse> {
            let image =
                req.container.as_ref().and_then(|c| c.annotations.get(crate::CRI_IMAGE_NAME_ANNOTATION)).cloned();
            Err(ttrpc::Error::RpcStatus(ttrpc::get_status(
                ttrpc::Code::PERMISSION_DENIED,
                format!("no: {}", image.unwrap_or_default()),
            )))
        }
    }

    impl NriPlugin for DenyAll {
        fn connected(&self) {
            self.connected.fetch_add(1, Ordering::SeqCst);
        }
        fn disconnected(&self) {
            self.disconnected.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn registers_answers_and_redials_after_the_runtime_goes_away() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nri.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let plugin = Arc::new(DenyAll::default());
        let (stop, stop_rx) = watch::channel(false);
        let id = PluginIdentity::new("deny-all", "42").unwrap();
        let task = tokio::spawn(run(Transport::External(path), id, Arc::clone(&plugin), stop_rx));

        let rt = accept(&listener).await;
        assert_eq!((rt.registered.plugin_name.as_str(), rt.registered.plugin_idx.as_str()), ("deny-all", "42"));
        let conf = rt.plugin.configure(ctx(Duration::from_secs(2)), &ConfigureRequest::default()).await.unwrap();
        assert_eq!(conf.events, 0x8);
        match rt.plugin.create_container(ctx(Duration::from_secs(2)), &create_request("reg.io/a:v1", "ns")).await {
            Err(ttrpc::Error::RpcStatus(s)) => assert_eq!(s.message(), "no: reg.io/a:v1"),
            other => panic!("expected the plugin's denial, got {other:?}"),
        }

        // The runtime vanishes (restart): the plugin notices, and dials again.
        rt.socket.abort();
        drop(rt);
        let again = accept(&listener).await;
        assert_eq!(again.registered.plugin_name, "deny-all");
        assert_eq!(plugin.disconnected.load(Ordering::SeqCst), 1);
        // `connected` runs once RegisterPlugin has returned to the plugin, just after the
        // runtime side saw the request.
        for _ in 0..200 {
            if plugin.connected.load(Ordering::SeqCst) == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(plugin.connected.load(Ordering::SeqCst), 2);

        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), task).await.unwrap().unwrap().unwrap();
    }
}
