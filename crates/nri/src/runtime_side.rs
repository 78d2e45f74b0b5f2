//! The runtime's side of the NRI socket (feature `testing`): accept a plugin connection,
//! serve RegisterPlugin, and call the plugin as containerd would, so a plugin is tested and
//! measured through the same socket path a real runtime uses.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::net::UnixListener;
use tokio::sync::mpsc;
use ttrpc::context;
use ttrpc::r#async::transport::Socket;
use ttrpc::r#async::TtrpcContext;

use crate::mux;
use crate::plugin::single_connection_listener;
use crate::protocol::nri::{Container, CreateContainerRequest, Empty, PodSandbox, RegisterPluginRequest};
use crate::protocol::nri_ttrpc::{create_runtime, Runtime};
use crate::CRI_IMAGE_NAME_ANNOTATION;

pub use crate::protocol::nri::{ConfigureRequest, SynchronizeRequest};
pub use crate::protocol::nri_ttrpc::PluginClient;

struct Registrar(mpsc::UnboundedSender<RegisterPluginRequest>);

#[async_trait]
impl Runtime for Registrar {
    async fn register_plugin(&self, _ctx: &TtrpcContext, req: RegisterPluginRequest) -> ttrpc::Result<Empty> {
        let _ = self.0.send(req);
        Ok(Empty::default())
    }
}

/// One accepted plugin connection, seen from the runtime's side.
pub struct RuntimeSide {
    pub plugin: PluginClient,
    pub raw: ttrpc::r#async::Client,
    pub registered: RegisterPluginRequest,
    /// The runtime side's socket lives in this task; aborting it is the runtime vanishing.
    pub socket: tokio::task::JoinHandle<mux::MuxError>,
    _server: ttrpc::r#async::Server,
}

/// Accept the next plugin on `listener` and wait for it to register (10 s, then 5 s).
pub async fn accept(listener: &UnixListener) -> RuntimeSide {
    let (stream, _) =
        tokio::time::timeout(Duration::from_secs(10), listener.accept()).await.expect("plugin dials").unwrap();
    let m = mux::split(stream);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut server = ttrpc::r#async::Server::new()
        .register_service(create_runtime(Arc::new(Registrar(tx))))
        .add_listener(single_connection_listener(m.runtime_service));
    server.start().await.unwrap();
    let raw = ttrpc::r#async::Client::new(Socket::new(m.plugin_service));
    let registered = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("plugin registers").unwrap();
    RuntimeSide { plugin: PluginClient::new(raw.clone()), raw, registered, socket: m.done, _server: server }
}

/// A CreateContainer for `image` as containerd 1.7 sends it (image named by annotation).
pub fn create_request(image: &str, namespace: &str) -> CreateContainerRequest {
    let mut c = Container { id: "c1".into(), name: "main".into(), ..Default::default() };
    c.annotations.insert(CRI_IMAGE_NAME_ANNOTATION.into(), image.into());
    let p = PodSandbox { name: "pod".into(), namespace: namespace.into(), ..Default::default() };
    CreateContainerRequest { container: Some(c).into(), pod: Some(p).into(), ..Default::default() }
}

/// A request context with the runtime's timeout.
pub fn ctx(timeout: Duration) -> context::Context {
    context::with_timeout(timeout.as_nanos() as i64)
}
