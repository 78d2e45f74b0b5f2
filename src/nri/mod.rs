//! signet as an NRI plugin: connection, registration, and staying connected.
//!
//! - [`mux`]: the two logical ttrpc streams carried over the one NRI socket.
//! - [`protocol`]: wire types generated from our own `proto/nri.proto`.
//! - [`handler`]: the Plugin service (Configure, Synchronize, CreateContainer, Shutdown).
//! - [`runtime_side`]: the runtime's end of the socket, for tests and the benchmark driver.
//!
//! Two ways in: *external* (a daemon dials `/var/run/nri/nri.sock` and redials with backoff
//! whenever the runtime restarts) and *pre-installed* (the runtime starts
//! `/opt/nri/plugins/NN-signet` itself with the socket on an inherited fd; when that
//! connection ends, the process ends, and the runtime starts a new one next time).

pub mod handler;
pub mod mux;
pub mod protocol;
pub mod runtime_side;

use std::os::fd::{FromRawFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{stream, StreamExt};
use tokio::net::UnixStream;
use tokio::sync::watch;
use ttrpc::context;
use ttrpc::r#async::transport::{Listener, Socket};

use handler::NriHandler;
use protocol::nri::RegisterPluginRequest;
use protocol::nri_ttrpc::{create_plugin, RuntimeClient};

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

/// How signet reaches the runtime.
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
pub async fn run(
    transport: Transport,
    identity: PluginIdentity,
    handler: Arc<NriHandler>,
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
        handler.connection_lost();
        crate::admin::metrics().nri_connected(false);
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
async fn session(
    stream: UnixStream,
    identity: &PluginIdentity,
    handler: &Arc<NriHandler>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<SessionEnd, NriError> {
    let muxed = mux::split(stream);
    let listener = single_connection_listener(muxed.plugin_service);
    let mut server = ttrpc::r#async::Server::new()
        .register_service(create_plugin(handler.clone() as Arc<dyn protocol::nri_ttrpc::Plugin + Send + Sync>))
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
    crate::admin::metrics().nri_connected(true);

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
mod fake_runtime_tests;
