//! The long-running daemon: wires the seams together and keeps policy current.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use crate::config::Settings;
use crate::enforce::Enforcer;
use crate::imagestore::ContainerdImageStore;
use crate::nri::handler::NriHandler;
use crate::nri::{self, PluginIdentity};
use crate::policy::{local, NoMatchAction, PolicySet};
use crate::registry::{Limits, OciSignatureSource};

/// How often the policy directory is re-read (a reload also happens on SIGHUP).
const POLICY_POLL: Duration = Duration::from_secs(2);

/// Keeps the published policy snapshot in step with the policy directory. A load that fails
/// leaves the previous snapshot in force and is reported once per distinct error.
pub struct PolicyReloader {
    dir: PathBuf,
    no_match: NoMatchAction,
    tx: watch::Sender<Arc<PolicySet>>,
    last_error: Option<String>,
}

impl PolicyReloader {
    /// Load the directory now. With no valid policy the node starts fail-closed: every
    /// image is denied with the load error as the reason until the files are fixed.
    pub fn start(dir: PathBuf, no_match: NoMatchAction) -> (Self, watch::Receiver<Arc<PolicySet>>) {
        let (snapshot, last_error) = match local::load_dir(&dir, no_match) {
            Ok(set) => {
                tracing::info!(dir = %dir.display(), policies = set.policies.len(), hash = %set.hash, "policy loaded");
                (set, None)
            }
            Err(e) => {
                tracing::error!(dir = %dir.display(), error = %e, "no valid policy; denying every image until fixed");
                (PolicySet::unavailable(e.to_string()), Some(e.to_string()))
            }
        };
        let (tx, rx) = watch::channel(snapshot);
        (Self { dir, no_match, tx, last_error }, rx)
    }

    /// Re-read the directory; publish only a complete, changed snapshot.
    pub fn reload(&mut self) {
        match local::load_dir(&self.dir, self.no_match) {
            Ok(set) => {
                self.last_error = None;
                if set.hash != self.tx.borrow().hash {
                    tracing::info!(dir = %self.dir.display(), policies = set.policies.len(), hash = %set.hash, "policy reloaded");
                    self.tx.send_replace(set);
                }
            }
            Err(e) => {
                let text = e.to_string();
                if self.last_error.as_deref() != Some(text.as_str()) {
                    tracing::error!(dir = %self.dir.display(), error = %text, "policy update rejected; keeping the previous policy");
                    self.last_error = Some(text);
                }
            }
        }
    }
}

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
    let (mut reloader, policy) = PolicyReloader::start(settings.policy_dir.clone(), settings.no_match);
    let handler = Arc::new(NriHandler::new(enforcer(&settings, policy)));

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        let mut poll = tokio::time::interval(POLICY_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = poll.tick() => reloader.reload(),
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading policy");
                    reloader.reload();
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "apiVersion: signet.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {name: p}\nspec:\n  images: [{glob: \"reg.io/**\"}]\n  authorities: [{static: {action: pass}}]\n";

    #[test]
    fn bad_update_keeps_the_last_good_policy() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("p.yaml"), GOOD).unwrap();
        let (mut r, rx) = PolicyReloader::start(d.path().into(), NoMatchAction::Deny);
        let good_hash = rx.borrow().hash.clone();
        std::fs::write(d.path().join("p.yaml"), "spec: [").unwrap();
        r.reload();
        assert_eq!(rx.borrow().hash, good_hash);
        assert!(rx.borrow().load_error.is_none());
        assert!(r.last_error.as_deref().unwrap().contains("p.yaml"));
        std::fs::write(d.path().join("p.yaml"), GOOD.replace("reg.io", "new.io")).unwrap();
        r.reload();
        assert_ne!(rx.borrow().hash, good_hash);
        assert!(r.last_error.is_none());
    }

    #[test]
    fn boot_without_valid_policy_is_fail_closed() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("p.yaml"), "nonsense: [").unwrap();
        let (_r, rx) = PolicyReloader::start(d.path().into(), NoMatchAction::Allow);
        assert!(rx.borrow().load_error.as_deref().unwrap().contains("p.yaml"));
    }
}
