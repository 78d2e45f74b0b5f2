//! The long-running daemon: wires the seams together and keeps policy current.

use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use crate::admin;
use crate::config::{ConfigSource, Settings};
use crate::decision::{ImageClaim, Outcome};
use crate::enforce::Enforcer;
use crate::held::Held;
use crate::imagestore::{ContainerdImageStore, StoreError};
use crate::kms::{Providers, Resolver};
use crate::plugin::NriHandler;
use crate::policy::PolicySet;
use crate::registry::{Limits, OciSignatureSource};
use crate::sync::{self, PolicyState};
use nri::PluginIdentity;

/// Why the daemon could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("nri: {0}")]
    Nri(#[from] nri::NriError),
    #[error("admin_address {address:?} is not host:port: {message}")]
    AdminAddress { address: String, message: String },
    #[error(transparent)]
    Admin(#[from] admin::AdminError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("installing the signal handlers: {0}")]
    Signals(std::io::Error),
}

/// How often the policy directory is re-read (a reload also happens on SIGHUP).
const POLICY_POLL: Duration = Duration::from_secs(2);
/// How often KMS keys and TUF trust roots that are missing or due are asked for; one that
/// changed is compiled into local and cluster policy at once.
const HELD_REFRESH: Duration = Duration::from_secs(30);

/// KMS keys (config `kms_keys`, the cache file, the providers) and TUF trust roots (the
/// cache file, the mirrors; tough's metadata kept under the state directory).
fn held(settings: &Settings) -> Arc<Held> {
    let tuf_fetcher: Option<Arc<dyn crate::tuf::Fetcher>> =
        match crate::tuf::client::ToughFetcher::new(Some(settings.state_dir.join("tuf"))) {
            Ok(f) => Some(Arc::new(f)),
            Err(e) => {
                tracing::error!(error = %e, "TUF client unavailable; TUF trust roots come from the cache only");
                None
            }
        };
    let tuf = crate::tuf::Store::new(tuf_fetcher, Some(settings.state_dir.join("tuf-roots.json")));
    Arc::new(Held::new(kms_resolver(settings), tuf))
}

/// The KMS key resolver: config `kms_keys`, the cache file, the providers.
fn kms_resolver(settings: &Settings) -> Resolver {
    let provider: Option<Arc<dyn crate::kms::KeyProvider>> = match Providers::from_process() {
        Ok(p) => Some(Arc::new(p)),
        Err(e) => {
            tracing::error!(error = %e, "KMS providers unavailable; KMS keys come from kms_keys and the cache only");
            None
        }
    };
    Resolver::new(provider, settings.kms_pinned.clone(), Some(settings.kms_cache_path()))
}

/// Build the enforcer from settings (shared by the daemon and `signet verify`).
pub fn enforcer(settings: &Settings, policy: watch::Receiver<Arc<PolicySet>>) -> Result<Arc<Enforcer>, StoreError> {
    let store = Arc::new(ContainerdImageStore::new(
        settings.containerd_socket.clone(),
        settings.containerd_namespace.clone(),
        Duration::from_secs(1),
    )?);
    let source =
        Arc::new(OciSignatureSource::new(settings.access.clone(), Limits::default(), settings.registry_timeout));
    Ok(Arc::new(Enforcer::new(store, source, policy, settings.enforcer.clone())))
}

pub async fn run(settings: Settings, source: ConfigSource) -> Result<(), DaemonError> {
    let identity = PluginIdentity::new(settings.plugin_name.clone(), settings.plugin_index.clone())?;
    let transport = nri::transport_from_env(settings.nri_socket.clone());
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        mode = %settings.mode,
        no_match = %settings.no_match,
        transport = ?transport,
        config = ?source.path,
        trust_root = %settings.enforcer.trust.version,
        registry_credentials = ?settings.access.credentials,
        "signet starting"
    );
    for note in settings.access.mirrors.notes.iter().chain(&settings.access.credentials.notes) {
        tracing::warn!("{note}");
    }
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    // Client construction only reads configuration (in-cluster or KUBECONFIG); the API
    // server may well be down.
    let client = if settings.cluster_policy || settings.events {
        match sync::kube::client().await {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(error = %e, "no kubernetes client configuration: cluster policy and events are off");
                None
            }
        }
    } else {
        None
    };
    let held = held(&settings);
    let (cluster_tx, mut cluster_rx) = tokio::sync::mpsc::channel(4);
    let cluster_start = if settings.cluster_policy {
        let lkg_path = settings.lkg_path();
        // The snapshot from the last complete sync is in force before the API server answers.
        let lkg = sync::kube::load_last_known_good(&lkg_path);
        let config = sync::kube::ClusterConfig {
            node_name: settings.node_name.clone(),
            lkg_path,
            report_status: settings.report_status,
            pull_credentials: Arc::clone(&settings.access.cluster_credentials),
            refresh: sync::kube::REFRESH,
            held: Arc::clone(&held),
        };
        if let Some(client) = client.clone() {
            tokio::spawn(sync::kube::run(client, config, cluster_tx, shutdown_rx.clone()));
        }
        Some(lkg)
    } else {
        drop(cluster_tx);
        None
    };
    let (mut state, policy) =
        PolicyState::start_with_held(settings.policy_dir.clone(), settings.no_match, cluster_start, Arc::clone(&held));
    // Apart from the request path and the policy loop: a slow provider delays neither. A
    // key that changed is compiled into local policy at once (and into cluster policy by the
    // watcher), not at the next poll.
    let mut held_changed = held.changes();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(HELD_REFRESH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            held.refresh_due().await;
        }
    });
    let enforcer = enforcer(&settings, policy.clone())?;
    let mut handler = NriHandler::new(Arc::clone(&enforcer));
    if let (true, Some(client)) = (settings.events, client) {
        handler = handler.with_events(sync::events::DenialEvents::start(client, settings.node_name.clone()));
    }
    let handler = Arc::new(handler);

    if let Some(address) = &settings.admin_address {
        let addr: std::net::SocketAddr = address.parse().map_err(|e: std::net::AddrParseError| {
            DaemonError::AdminAddress { address: address.clone(), message: e.to_string() }
        })?;
        let h = Arc::clone(&handler);
        let readiness = admin::Readiness { registered: Arc::new(move || h.is_synchronized()), policy };
        let listener =
            tokio::net::TcpListener::bind(addr).await.map_err(|source| admin::AdminError::Bind { addr, source })?;
        tokio::spawn(admin::serve_on(listener, readiness, shutdown_rx.clone()));
    }
    tokio::spawn(check_sandbox_image(Arc::clone(&enforcer), sandbox_image(&settings)));

    let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    tokio::spawn(async move {
        let mut config = ConfigWatch::new(source, settings);
        let mut poll = tokio::time::interval(POLICY_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = poll.tick() => {
                    config.reload(false, &enforcer, &mut state);
                    state.reload_local();
                }
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading config and policy");
                    config.reload(true, &enforcer, &mut state);
                    state.reload_local();
                }
                Some(cluster) = cluster_rx.recv() => state.set_cluster(cluster),
                Ok(()) = held_changed.changed() => state.reload_local(),
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

/// Follows the config file: applies what can change live, names what needs a restart, and
/// keeps the running settings when the file is invalid. Each outcome is logged once.
struct ConfigWatch {
    source: ConfigSource,
    current: Settings,
    last_text: Option<String>,
}

impl ConfigWatch {
    fn new(source: ConfigSource, current: Settings) -> Self {
        let last_text = source.path.as_ref().and_then(|p| std::fs::read_to_string(p).ok());
        Self { source, current, last_text }
    }

    fn reload(&mut self, forced: bool, enforcer: &Enforcer, state: &mut PolicyState) {
        let Some(path) = &self.source.path else { return };
        let text = std::fs::read_to_string(path).ok();
        if !forced && text == self.last_text {
            return;
        }
        self.last_text = text;
        let new = match self.source.load() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "config change rejected; running settings unchanged");
                return;
            }
        };
        if new.mode != self.current.mode {
            tracing::info!(mode = %new.mode, "mode changed by config reload");
            enforcer.set_mode(new.mode);
        }
        state.set_node_settings(new.policy_dir.clone(), new.no_match);
        let restart = self.current.restart_needed(&new);
        if !restart.is_empty() {
            tracing::warn!(fields = ?restart, config = %path.display(),
                "config fields changed that take effect only after a restart; still running with the old values");
        }
        // Remember live-applied values only, so restart-needed differences keep being
        // compared against what actually runs.
        self.current.mode = new.mode;
        self.current.no_match = new.no_match;
        self.current.policy_dir = new.policy_dir;
    }
}

/// The pod sandbox image: configured, or containerd's (`sandbox_image` in a version 2
/// config, `pinned_images.sandbox` in version 3), or containerd 1.7's built-in default.
pub fn sandbox_image(settings: &Settings) -> String {
    if let Some(image) = &settings.sandbox_image {
        return image.clone();
    }
    let from_config = std::fs::read_to_string(&settings.containerd_config)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .and_then(|t| {
            let plugins = t.get("plugins")?;
            plugins
                .get("io.containerd.grpc.v1.cri")
                .and_then(|c| c.get("sandbox_image"))
                .or_else(|| plugins.get("io.containerd.cri.v1.images")?.get("pinned_images")?.get("sandbox"))
                .and_then(|v| v.as_str().map(String::from))
        });
    from_config.unwrap_or_else(|| "registry.k8s.io/pause:3.8".to_string())
}

/// Verify the sandbox image once at start. NRI gives plugins no say over sandboxes, so a
/// sandbox image that fails policy cannot be blocked here; it is reported loudly instead.
async fn check_sandbox_image(enforcer: Arc<Enforcer>, image: String) {
    let d = enforcer.decide(&ImageClaim::named(&image), Duration::from_secs(30)).await;
    match d.outcome {
        Outcome::Allowed => tracing::info!(image = %d.image, digest = d.digest.as_deref().unwrap_or(""),
            "sandbox (pause) image verified"),
        _ => tracing::warn!(image = %d.image, digest = d.digest.as_deref().unwrap_or(""), reason = %d.reason,
            "sandbox (pause) image would not be admitted by policy; sandboxes are not gated by NRI, fix the image or policy"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FileConfig;

    #[test]
    fn sandbox_image_from_containerd_config_v2_and_v3() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("config.toml");
        let settings =
            |extra: FileConfig| Settings::from(FileConfig { containerd_config: Some(path.clone()), ..extra });
        assert_eq!(sandbox_image(&settings(FileConfig::default())), "registry.k8s.io/pause:3.8");
        std::fs::write(
            &path,
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\nsandbox_image = \"reg.io/pause:v1\"\n",
        )
        .unwrap();
        assert_eq!(sandbox_image(&settings(FileConfig::default())), "reg.io/pause:v1");
        std::fs::write(
            &path,
            "version = 3\n[plugins.\"io.containerd.cri.v1.images\".pinned_images]\nsandbox = \"reg.io/pause:v3\"\n",
        )
        .unwrap();
        assert_eq!(sandbox_image(&settings(FileConfig::default())), "reg.io/pause:v3");
        let explicit = FileConfig { sandbox_image: Some("mine:1".into()), ..Default::default() };
        assert_eq!(sandbox_image(&settings(explicit)), "mine:1");
    }
}
