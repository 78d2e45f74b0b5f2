//! The long-running daemon: wires the seams together and keeps policy current.

use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use crate::admin;
use crate::config::Settings;
use crate::enforce::Enforcer;
use crate::imagestore::ContainerdImageStore;
use crate::nri::handler::NriHandler;
use crate::nri::{self, PluginIdentity};
use crate::policy::PolicySet;
use crate::registry::{Limits, OciSignatureSource};
use crate::sync::{self, PolicyState};

/// How often the policy directory is re-read (a reload also happens on SIGHUP).
const POLICY_POLL: Duration = Duration::from_secs(2);

/// Build the enforcer from settings (shared by the daemon and `signet verify`).
pub fn enforcer(settings: &Settings, policy: watch::Receiver<Arc<PolicySet>>) -> Arc<Enforcer> {
    let store = Arc::new(ContainerdImageStore::new(
        settings.containerd_socket.clone(),
        settings.containerd_namespace.clone(),
        Duration::from_secs(1),
    ));
    let source =
        Arc::new(OciSignatureSource::new(&settings.insecure_registries, Limits::default(), settings.registry_timeout));
    Arc::new(Enforcer::new(store, source, policy, settings.enforcer.clone()))
}

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let identity = PluginIdentity::new(settings.plugin_name.clone(), settings.plugin_index.clone())?;
    let transport = nri::transport_from_env(settings.nri_socket.clone());
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        mode = %settings.mode,
        no_match = %settings.no_match,
        transport = ?transport,
        "signet starting"
    );
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let lkg_path = settings.state_dir.join("cluster-policy.json");
    let (cluster_tx, mut cluster_rx) = tokio::sync::mpsc::channel(4);
    let cluster_start = if settings.cluster_policy {
        // The snapshot from the last complete sync is in force before the API server answers.
        let lkg = sync::kube::load_last_known_good(&lkg_path);
        let config = sync::kube::ClusterConfig {
            node_name: settings.node_name.clone(),
            lkg_path,
            report_status: settings.report_status,
        };
        let shutdown = shutdown_rx.clone();
        tokio::spawn(async move {
            // Client construction only reads configuration; the API server may be down.
            match sync::kube::client().await {
                Ok(client) => sync::kube::run(client, config, cluster_tx, shutdown).await,
                Err(e) => tracing::error!(error = %e, "cluster policy disabled: no kubernetes client configuration"),
            }
        });
        Some(lkg)
    } else {
        drop(cluster_tx);
        None
    };
    let (mut state, policy) = PolicyState::start(settings.policy_dir.clone(), settings.no_match, cluster_start);
    let handler = Arc::new(NriHandler::new(enforcer(&settings, policy.clone())));

    if let Some(address) = &settings.admin_address {
        let addr: std::net::SocketAddr =
            address.parse().map_err(|e| anyhow::anyhow!("admin_address {address:?} is not host:port: {e}"))?;
        let h = Arc::clone(&handler);
        let readiness = admin::Readiness { registered: Arc::new(move || h.is_synchronized()), policy };
        let listener =
            tokio::net::TcpListener::bind(addr).await.map_err(|source| admin::AdminError::Bind { addr, source })?;
        tokio::spawn(admin::serve_on(listener, readiness, shutdown_rx.clone()));
    }

    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        let mut poll = tokio::time::interval(POLICY_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = poll.tick() => state.reload_local(),
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading policy");
                    state.reload_local();
                }
                Some(cluster) = cluster_rx.recv() => state.set_cluster(cluster),
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
        }
        tracing::info!("shutting down: finishing in-flight requests and closing the nri connection");
        let _ = shutdown_tx.send(true);
    });
    nri::run(transport, identity, handler, shutdown_rx).await?;
    Ok(())
}
