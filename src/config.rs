//! Daemon settings: TOML file keys, command-line flags, and their merge.
//!
//! The file uses the same names as the flags (`policy_dir` ⇔ `--policy-dir`). A flag given on
//! the command line wins over the file, the file wins over the default. Unknown keys are
//! errors: a misspelt `mode` must not leave a node silently in its default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::enforce::EnforcerConfig;
use crate::policy::{Mode, NoMatchAction};
use crate::registry::{auth, hosts, lookaside, Access};

pub const DEFAULT_CONFIG_PATH: &str = "/etc/signet/config.toml";
pub const DEFAULT_POLICY_DIR: &str = "/etc/signet/policies";
pub const DEFAULT_CONTAINERD_SOCKET: &str = "/run/containerd/containerd.sock";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error(transparent)]
    TrustRoot(#[from] crate::verify::trust::TrustError),
    #[error(transparent)]
    Mirrors(#[from] hosts::HostsError),
    #[error(transparent)]
    Credentials(#[from] auth::CredentialsError),
    #[error(transparent)]
    Lookaside(#[from] lookaside::LookasideError),
    #[error(transparent)]
    Kms(#[from] crate::kms::resolver::ResolverError),
}

/// The one list of file keys: declares [`FileConfig`], its [`FileConfig::overlay`], and which
/// keys apply live. Each key is `live` (applied by a reload), `restart` (takes effect only
/// on restart, reported under its own name) or a group name it is reported under.
macro_rules! file_config {
    ($( $(#[$doc:meta])* $field:ident: $ty:ty => $when:tt, )*) => {
        /// Everything settable in the file; all optional so flags can fill gaps.
        #[derive(Debug, Default, Clone, Deserialize, PartialEq)]
        #[serde(deny_unknown_fields)]
        pub struct FileConfig {
            $( $(#[$doc])* pub $field: Option<$ty>, )*
        }

        impl FileConfig {
            /// Values from `over` replace ours where set.
            pub fn overlay(mut self, over: FileConfig) -> Self {
                $( if over.$field.is_some() { self.$field = over.$field; } )*
                self
            }

            /// The keys changed from `self` to `new` that take effect only on restart.
            fn restart_changes(&self, new: &FileConfig) -> Vec<&'static str> {
                let mut out = Vec::new();
                $(
                    if let Some(name) = restart_name!($when, $field) {
                        if self.$field != new.$field && !out.contains(&name) {
                            out.push(name);
                        }
                    }
                )*
                out
            }
        }
    };
}

macro_rules! restart_name {
    (live, $field:ident) => {
        None::<&'static str>
    };
    (restart, $field:ident) => {
        Some(stringify!($field))
    };
    ($group:literal, $field:ident) => {
        Some($group)
    };
}

file_config! {
    policy_dir: PathBuf => live,
    nri_socket: PathBuf => restart,
    mode: Mode => live,
    no_match: NoMatchAction => live,
    plugin_name: String => restart,
    plugin_index: String => restart,
    containerd_socket: PathBuf => restart,
    containerd_namespace: String => restart,
    /// `host:port` registries reached over plain HTTP.
    insecure_registries: Vec<String> => restart,
    registry_timeout_ms: u64 => restart,
    cache_allow_ttl_seconds: u64 => "cache settings",
    cache_deny_ttl_seconds: u64 => "cache settings",
    cache_capacity: usize => "cache settings",
    /// `plain`, `json` or `journald`; default: journald under systemd, plain otherwise.
    log_format: String => restart,
    /// Watch policy objects in the cluster (in-cluster service account or KUBECONFIG).
    cluster_policy: bool => restart,
    /// Where the last-known-good snapshot of cluster policy is kept.
    state_dir: PathBuf => restart,
    /// Name this node reports policy status under (default: $NODE_NAME, then the hostname).
    node_name: String => restart,
    /// Write per-node acceptance into signet ClusterImagePolicy status (needs RBAC patch
    /// on clusterimagepolicies/status).
    report_status: bool => restart,
    /// `host:port` of the metrics and health endpoint; empty disables it.
    admin_address: String => restart,
    /// The pod sandbox (pause) image, verified at start; default: read from containerd's config.
    sandbox_image: String => restart,
    /// containerd's config file, read for the sandbox image.
    containerd_config: PathBuf => restart,
    /// Post a Kubernetes Event on the pod for each denial (needs cluster access; RBAC create
    /// on events.k8s.io events).
    events: bool => restart,
    /// A Sigstore trusted_root.json (CA certificates, Rekor and CT log keys) for keyless and
    /// transparency-log checks. Read from disk only: the node never fetches trust material.
    trust_root: PathBuf => restart,
    /// containerd's registry hosts directory (mirrors); default: `config_path` from
    /// containerd's config, else /etc/containerd/certs.d.
    registry_hosts_dir: PathBuf => restart,
    /// docker config.json files with registry credentials; default: kubelet's
    /// /var/lib/kubelet/config.json and /root/.docker/config.json, where they exist.
    registry_auth_files: Vec<PathBuf> => restart,
    /// containers registries.d directory naming lookaside stores of GPG signatures.
    registries_d: PathBuf => restart,
    /// KMS key URI → PEM file with its public key, for nodes that never reach the
    /// provider (`"awskms:///alias/signer" = "/etc/signet/kms/signer.pem"`).
    kms_keys: std::collections::BTreeMap<String, PathBuf> => restart,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse { path: path.into(), message: e.to_string() })
    }

    /// Load `path` if given; the default path only if it exists.
    pub fn load_optional(path: Option<&Path>) -> Result<Self, ConfigError> {
        match path {
            Some(p) => Self::load(p),
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => Self::load(Path::new(DEFAULT_CONFIG_PATH)),
            None => Ok(Self::default()),
        }
    }
}

/// Where settings came from, so the daemon can re-read them: the file (if any) and the
/// command-line values that override it.
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    pub path: Option<PathBuf>,
    pub flags: FileConfig,
}

impl ConfigSource {
    /// Settings as they would be now; errors name the file.
    pub fn load(&self) -> Result<Settings, ConfigError> {
        let file = match &self.path {
            Some(p) => FileConfig::load(p)?,
            None => FileConfig::default(),
        };
        Settings::from(file.overlay(self.flags.clone())).load_files()
    }
}

impl Settings {
    /// Read the files the settings name (trust root, registry mirrors and credentials).
    pub fn load_files(mut self) -> Result<Settings, ConfigError> {
        let settings = &mut self;
        if let Some(path) = &settings.trust_root {
            settings.enforcer.trust = std::sync::Arc::new(crate::verify::trust::TrustRoot::load(path)?);
        }
        let hosts_dir = settings.registry_hosts_dir.clone().unwrap_or_else(|| {
            hosts::config_path_from_containerd(&settings.containerd_config)
                .unwrap_or_else(|| "/etc/containerd/certs.d".into())
        });
        settings.access.mirrors = hosts::Mirrors::load(&hosts_dir)?;
        let files = settings.registry_auth_files.clone().unwrap_or_else(auth::default_files);
        settings.access.credentials = auth::Credentials::load_files(&files)?;
        settings.access.insecure = settings.insecure_registries.clone();
        let registries_d = settings.registries_d.clone().unwrap_or_else(|| "/etc/containers/registries.d".into());
        settings.access.lookaside = lookaside::Lookaside::load(&registries_d)?;
        settings.kms_pinned = crate::kms::Resolver::pinned_from_files(&settings.kms_keys)?;
        Ok(self)
    }
}

/// Resolved settings with defaults applied.
#[derive(Debug, Clone)]
pub struct Settings {
    pub policy_dir: PathBuf,
    pub nri_socket: PathBuf,
    pub mode: Mode,
    pub no_match: NoMatchAction,
    pub plugin_name: String,
    pub plugin_index: String,
    pub containerd_socket: PathBuf,
    pub containerd_namespace: String,
    pub insecure_registries: Vec<String>,
    pub registry_timeout: Duration,
    pub enforcer: EnforcerConfig,
    pub log_format: Option<String>,
    pub cluster_policy: bool,
    pub state_dir: PathBuf,
    pub node_name: String,
    pub report_status: bool,
    /// `None` when disabled.
    pub admin_address: Option<String>,
    pub sandbox_image: Option<String>,
    pub containerd_config: PathBuf,
    pub events: bool,
    /// Loaded into `enforcer.trust` by [`ConfigSource::load`].
    pub trust_root: Option<PathBuf>,
    pub registry_hosts_dir: Option<PathBuf>,
    pub registry_auth_files: Option<Vec<PathBuf>>,
    pub registries_d: Option<PathBuf>,
    pub kms_keys: std::collections::BTreeMap<String, PathBuf>,
    /// The `kms_keys` files read, by [`Settings::load_files`].
    pub kms_pinned: std::collections::BTreeMap<String, crate::kms::ResolvedKey>,
    /// Mirrors and credentials, loaded by [`ConfigSource::load`].
    pub access: Access,
    /// The file keys and flags these settings were made from, for [`Settings::restart_needed`].
    pub file: FileConfig,
}

impl Settings {
    /// The last-known-good snapshot of cluster policy.
    pub fn lkg_path(&self) -> PathBuf {
        self.state_dir.join("cluster-policy.json")
    }

    /// The KMS public keys this node has resolved, for boots without the provider.
    pub fn kms_cache_path(&self) -> PathBuf {
        self.state_dir.join("kms-keys.json")
    }

    /// Settings that changed between `self` and `new` and only take effect on restart,
    /// by their file key. (`mode`, `no_match` and `policy_dir` apply live.)
    pub fn restart_needed(&self, new: &Settings) -> Vec<&'static str> {
        let mut out = self.file.restart_changes(&new.file);
        // What the named files hold matters too, not only their names.
        if self.enforcer.trust.version != new.enforcer.trust.version {
            out.push("trust root content");
        }
        if self.kms_pinned != new.kms_pinned && !out.contains(&"kms_keys") {
            out.push("kms_keys");
        }
        out
    }
}

pub const DEFAULT_ADMIN_ADDRESS: &str = "127.0.0.1:9180";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/signet";

fn default_node_name() -> String {
    std::env::var("NODE_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(|| nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()))
        .unwrap_or_else(|| "unknown-node".into())
}

impl From<FileConfig> for Settings {
    fn from(f: FileConfig) -> Self {
        let file = f.clone();
        let defaults = EnforcerConfig::default();
        let mode = f.mode.unwrap_or_default();
        Self {
            policy_dir: f.policy_dir.unwrap_or_else(|| DEFAULT_POLICY_DIR.into()),
            nri_socket: f.nri_socket.unwrap_or_else(|| nri::DEFAULT_SOCKET.into()),
            mode,
            no_match: f.no_match.unwrap_or_default(),
            plugin_name: f.plugin_name.unwrap_or_else(|| "signet".into()),
            plugin_index: f.plugin_index.unwrap_or_else(|| "05".into()),
            containerd_socket: f.containerd_socket.unwrap_or_else(|| DEFAULT_CONTAINERD_SOCKET.into()),
            containerd_namespace: f.containerd_namespace.unwrap_or_else(|| "k8s.io".into()),
            insecure_registries: f.insecure_registries.unwrap_or_default(),
            // Signatures must arrive well inside the runtime's 2 s; a slower registry gets a
            // "still verifying" denial and the background fetch continues up to this bound.
            registry_timeout: Duration::from_millis(f.registry_timeout_ms.unwrap_or(10_000)),
            enforcer: EnforcerConfig {
                mode,
                cache_capacity: f.cache_capacity.unwrap_or(defaults.cache_capacity),
                allow_ttl: f.cache_allow_ttl_seconds.map(Duration::from_secs).unwrap_or(defaults.allow_ttl),
                deny_ttl: f.cache_deny_ttl_seconds.map(Duration::from_secs).unwrap_or(defaults.deny_ttl),
                error_ttl: defaults.error_ttl,
                trust: defaults.trust,
            },
            log_format: f.log_format,
            cluster_policy: f.cluster_policy.unwrap_or(false),
            state_dir: f.state_dir.unwrap_or_else(|| DEFAULT_STATE_DIR.into()),
            node_name: f.node_name.unwrap_or_else(default_node_name),
            report_status: f.report_status.unwrap_or(true),
            admin_address: match f.admin_address {
                None => Some(DEFAULT_ADMIN_ADDRESS.to_string()),
                Some(a) if a.is_empty() => None,
                Some(a) => Some(a),
            },
            sandbox_image: f.sandbox_image,
            containerd_config: f.containerd_config.unwrap_or_else(|| "/etc/containerd/config.toml".into()),
            events: f.events.unwrap_or(false),
            trust_root: f.trust_root,
            registry_hosts_dir: f.registry_hosts_dir,
            registry_auth_files: f.registry_auth_files,
            registries_d: f.registries_d,
            kms_keys: f.kms_keys.unwrap_or_default(),
            kms_pinned: Default::default(),
            access: Access::default(),
            file,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_keys_parse_and_flags_win() {
        let file = FileConfig::parse(
            Path::new("c.toml"),
            "policy_dir = \"/p\"\nmode = \"warn\"\ninsecure_registries = [\"127.0.0.1:5000\"]\nno_match = \"allow\"\n",
        )
        .unwrap();
        let flags = FileConfig { mode: Some(Mode::Enforce), ..Default::default() };
        let s = Settings::from(file.overlay(flags));
        assert_eq!(s.policy_dir, PathBuf::from("/p"));
        assert_eq!(s.mode, Mode::Enforce);
        assert_eq!(s.enforcer.mode, Mode::Enforce);
        assert_eq!(s.no_match, NoMatchAction::Allow);
        assert_eq!(s.insecure_registries, ["127.0.0.1:5000"]);
        assert_eq!(s.plugin_index, "05");
    }

    #[test]
    fn restart_needed_names_only_fields_that_do_not_apply_live() {
        let old = Settings::from(FileConfig::default());
        let new = Settings::from(FileConfig {
            mode: Some(Mode::Warn),
            no_match: Some(NoMatchAction::Allow),
            nri_socket: Some("/other.sock".into()),
            cache_capacity: Some(1),
            ..Default::default()
        });
        assert_eq!(old.restart_needed(&new), ["nri_socket", "cache settings"]);
        assert!(old.restart_needed(&Settings::from(FileConfig::default())).is_empty());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = FileConfig::parse(Path::new("c.toml"), "mdoe = \"warn\"\n").unwrap_err().to_string();
        assert!(e.contains("c.toml") && e.contains("mdoe"), "{e}");
        let e = FileConfig::parse(Path::new("c.toml"), "mode = \"audit\"\n").unwrap_err().to_string();
        assert!(e.contains("audit"), "{e}");
    }

    /// #18: `kms_keys` maps KMS URIs to PEM files; each is read and checked at load, and a
    /// bad one is an error naming the URI.
    #[test]
    fn kms_keys_are_read_at_load_and_bad_ones_named() {
        let d = tempfile::tempdir().unwrap();
        let pem = d.path().join("k.pem");
        std::fs::write(&pem, crate::testutil::TEST_PUB).unwrap();
        let text = format!("[kms_keys]\n\"awskms:///alias/signer\" = {:?}\n", pem.display().to_string());
        let f = FileConfig::parse(Path::new("c.toml"), &text).unwrap();
        let s = Settings::from(f.overlay(FileConfig::default()));
        assert_eq!(s.kms_keys.get("awskms:///alias/signer"), Some(&pem));
        let pinned = crate::kms::Resolver::pinned_from_files(&s.kms_keys).unwrap();
        assert!(pinned["awskms:///alias/signer"].source.contains("k.pem"));
        let bad = std::collections::BTreeMap::from([("gcpkms://nope".to_string(), pem)]);
        let e = crate::kms::Resolver::pinned_from_files(&bad).unwrap_err().to_string();
        assert!(e.starts_with("kms_keys \"gcpkms://nope\""), "{e}");
    }
}
