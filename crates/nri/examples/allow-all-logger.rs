//! The smallest useful NRI plugin: it subscribes to CreateContainer, logs each container's
//! image, and lets it be created. Run it beside containerd (root):
//!
//! ```sh
//! cargo run -p nri --example allow-all-logger -- /var/run/nri/nri.sock
//! ```
//!
//! A validating plugin answers CreateContainer with an error instead, which fails the
//! creation; the runtime shows that error to the CRI client.

use std::sync::Arc;

use async_trait::async_trait;
use nri::api::{
    ConfigureRequest, ConfigureResponse, CreateContainerRequest, CreateContainerResponse, SynchronizeRequest,
    SynchronizeResponse,
};
use ttrpc::r#async::TtrpcContext;

struct AllowAllLogger;

#[async_trait]
impl nri::Plugin for AllowAllLogger {
    async fn configure(&self, _ctx: &TtrpcContext, req: ConfigureRequest) -> ttrpc::Result<ConfigureResponse> {
        tracing::info!(runtime = %req.runtime_name, version = %req.runtime_version, "configured");
        Ok(ConfigureResponse { events: nri::event::mask(&[nri::event::CREATE_CONTAINER]), ..Default::default() })
    }

    async fn synchronize(&self, _ctx: &TtrpcContext, req: SynchronizeRequest) -> ttrpc::Result<SynchronizeResponse> {
        tracing::info!(running = req.containers.len(), "synchronized");
        Ok(SynchronizeResponse { more: req.more, ..Default::default() })
    }

    async fn create_container(
        &self,
        _ctx: &TtrpcContext,
        req: CreateContainerRequest,
    ) -> ttrpc::Result<CreateContainerResponse> {
        let image = req.container.as_ref().and_then(|c| c.annotations.get(nri::CRI_IMAGE_NAME_ANNOTATION));
        tracing::info!(image = image.map(String::as_str).unwrap_or("?"), "create container");
        Ok(CreateContainerResponse::default())
    }
}

impl nri::NriPlugin for AllowAllLogger {
    fn connected(&self) {
        tracing::info!("registered");
    }
}

#[tokio::main]
async fn main() -> Result<(), nri::NriError> {
    tracing_subscriber::fmt().init();
    let socket = std::env::args().nth(1).unwrap_or_else(|| nri::DEFAULT_SOCKET.to_string());
    let identity = nri::PluginIdentity::new("allow-all-logger", "90")?;
    let (_stop, stop) = tokio::sync::watch::channel(false);
    nri::run(nri::transport_from_env(socket.into()), identity, Arc::new(AllowAllLogger), stop).await
}
