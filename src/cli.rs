//! Command line: `signet run`, `signet verify`, `signet policy check|explain`, `signet crd`,
//! `signet version`.
//!
//! Exit codes of `verify`: 0 allowed, 1 denied, 2 the check could not be made (bad input,
//! policy not loadable, image not resolvable, registry unreachable).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{FileConfig, Settings};
use crate::decision::ImageClaim;
use crate::policy::{local, Mode, NoMatchAction};

#[derive(Parser, Debug)]
#[command(
    name = "signet",
    version,
    about = "Refuse to start containers whose images are not properly signed (containerd NRI plugin)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the NRI plugin daemon.
    Run(RunArgs),
    /// Check one image against the policy, as the daemon would, and print the decision.
    Verify(VerifyArgs),
    /// Validate policy files or explain which policies cover an image (no network).
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Print the CustomResourceDefinition of signet's ClusterImagePolicy.
    Crd,
    /// Print the version.
    Version,
}

#[derive(Args, Debug, Default)]
pub struct CommonArgs {
    /// TOML config file with the same keys as the flags (default: /etc/signet/config.toml if present).
    #[arg(long, env = "SIGNET_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory of policy YAML files.
    #[arg(long)]
    pub policy_dir: Option<PathBuf>,
    /// What to do with images no policy matches.
    #[arg(long, value_enum)]
    pub no_match: Option<NoMatchArg>,
    /// containerd's gRPC socket (for image-store lookups).
    #[arg(long)]
    pub containerd_socket: Option<PathBuf>,
    /// containerd namespace of the images (CRI uses k8s.io).
    #[arg(long)]
    pub containerd_namespace: Option<String>,
    /// Registry (host:port) to reach over plain HTTP; repeatable.
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// NRI socket to dial (ignored when the runtime launched us with NRI_PLUGIN_SOCKET).
    #[arg(long)]
    pub nri_socket: Option<PathBuf>,
    /// enforce: deny what fails policy; warn: allow and log the would-be denial.
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// NRI plugin index (two digits; lower runs first).
    #[arg(long)]
    pub plugin_index: Option<String>,
    /// Log format: plain, json, journald.
    #[arg(long)]
    pub log_format: Option<String>,
    /// Metrics and health endpoint, host:port (default 127.0.0.1:9180; "" disables).
    #[arg(long)]
    pub admin_address: Option<String>,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Image reference: a tag (resolved through containerd's image store) or name@digest.
    pub image: String,
    #[command(flatten)]
    pub common: CommonArgs,
    /// Kubernetes namespace the pod would run in (for namespace-scoped policy).
    #[arg(long)]
    pub namespace: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Validate policy files of any supported kind and print the normalised policy.
    /// Exit 1 with every error listed if any document is invalid.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Namespace of namespaced objects (Portieris ImagePolicy, Kyverno Policy) that name
        /// none, as `kubectl apply -n` gives it; a file's `# signet.dev/namespace: NAME`
        /// line comes first.
        #[arg(long)]
        namespace: Option<String>,
        #[command(flatten)]
        kms: KmsArgs,
    },
    /// Show which policies and authorities cover an image, and what the node would do.
    Explain(ExplainArgs),
}

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// Image reference as a pod would name it.
    pub image: String,
    #[arg(long)]
    pub policy_dir: PathBuf,
    /// Namespace the pod would run in.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Node setting for images no policy matches.
    #[arg(long, value_enum, default_value = "deny")]
    pub no_match: NoMatchArg,
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
    #[command(flatten)]
    pub kms: KmsArgs,
}

/// How `policy check` and `explain` find KMS keys and TUF trust roots: the node's caches,
/// then the providers with this machine's identity and the TUF mirrors.
#[derive(Args, Debug, Clone)]
pub struct KmsArgs {
    /// State directory whose KMS key and TUF trust-root caches (kms-keys.json,
    /// tuf-roots.json) are read, never written.
    #[arg(long, default_value = crate::config::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Do not ask KMS providers or TUF mirrors; report only what the caches hold.
    #[arg(long)]
    pub offline: bool,
}

impl KmsArgs {
    fn resolver(&self) -> crate::kms::Resolver {
        let provider: Option<std::sync::Arc<dyn crate::kms::KeyProvider>> = if self.offline {
            None
        } else {
            match crate::kms::Providers::from_process() {
                Ok(p) => Some(std::sync::Arc::new(p)),
                Err(e) => {
                    eprintln!("warning: KMS providers unavailable: {e}");
                    None
                }
            }
        };
        let cache = self.state_dir.join("kms-keys.json");
        crate::kms::Resolver::new(provider, Default::default(), Some(cache)).read_only()
    }

    fn tuf(&self) -> crate::tuf::Store {
        // A temporary datastore per fetch: the check must not change what the daemon keeps.
        let fetcher: Option<std::sync::Arc<dyn crate::tuf::Fetcher>> = if self.offline {
            None
        } else {
            match crate::tuf::client::ToughFetcher::new(None) {
                Ok(f) => Some(std::sync::Arc::new(f)),
                Err(e) => {
                    eprintln!("warning: TUF client unavailable: {e}");
                    None
                }
            }
        };
        crate::tuf::Store::new(fetcher, Some(self.state_dir.join("tuf-roots.json"))).read_only()
    }
}

/// Load with KMS keys and TUF trust roots resolved: a first pass finds what the policies
/// reference, the providers and mirrors are asked, the second pass compiles with what they
/// served.
fn load_resolving(
    kms: &KmsArgs,
    load: impl Fn(&crate::held::Held) -> Result<local::Loaded, crate::policy::PolicyErrors>,
) -> Result<local::Loaded, crate::policy::PolicyErrors> {
    use crate::policy::normal::NormalPolicy;
    let held = crate::held::Held::new(kms.resolver(), kms.tuf());
    let first = load(&held)?;
    let uris = NormalPolicy::kms_uris(&first.normal);
    let repos = NormalPolicy::tuf_repos(&first.normal);
    if uris.is_empty() && repos.is_empty() {
        return Ok(first);
    }
    runtime().block_on(async {
        held.kms.refresh(uris.clone()).await;
        held.tuf.refresh(repos.clone()).await;
    });
    let loaded = load(&held)?;
    for uri in &uris {
        match held.kms.lookup(uri) {
            Ok(k) => {
                let scheme = crate::policy::TrustedKey::from_pem_with(k.pem.as_bytes(), k.signing)
                    .map_or_else(|e| e.to_string(), |t| t.key.scheme());
                eprintln!("kms: {uri}: resolved, version {}, {scheme}, from {}", k.version, k.source)
            }
            Err(e) => eprintln!("kms: {uri}: not resolved, its authorities fail closed: {e}"),
        }
    }
    for repo in &repos {
        match held.tuf.lookup(repo) {
            Ok(r) => eprintln!(
                "tuf: {}: trusted_root.json verified, targets version {}, from {}",
                repo.mirror, r.targets_version, r.source
            ),
            Err(e) => eprintln!("tuf: {}: not fetched, its authorities fail closed: {e}", repo.mirror),
        }
    }
    Ok(loaded)
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ModeArg {
    Enforce,
    Warn,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum NoMatchArg {
    Deny,
    Allow,
    Warn,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
}

impl CommonArgs {
    fn to_file_config(&self) -> FileConfig {
        FileConfig {
            policy_dir: self.policy_dir.clone(),
            no_match: self.no_match.map(no_match_action),
            containerd_socket: self.containerd_socket.clone(),
            containerd_namespace: self.containerd_namespace.clone(),
            insecure_registries: Some(self.insecure_registries.clone()).filter(|v| !v.is_empty()),
            ..Default::default()
        }
    }

    fn settings(&self, extra: FileConfig) -> Result<Settings, crate::config::ConfigError> {
        let file = FileConfig::load_optional(self.config.as_deref())?;
        Settings::from(file.overlay(self.to_file_config()).overlay(extra)).load_files()
    }

    /// Where the daemon re-reads its config from, with the flags that keep winning.
    fn config_source(&self, extra: FileConfig) -> crate::config::ConfigSource {
        let path = self.config.clone().or_else(|| {
            let default = std::path::Path::new(crate::config::DEFAULT_CONFIG_PATH);
            default.exists().then(|| default.to_path_buf())
        });
        crate::config::ConfigSource { path, flags: self.to_file_config().overlay(extra) }
    }
}

/// Entry point used by `main`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = match cli.command {
        Some(c) => c,
        // Launched by the runtime as a pre-installed plugin: no arguments, no environment
        // beyond NRI's own variables. Run with the config file's settings.
        None if std::env::var_os("NRI_PLUGIN_SOCKET").is_some() => Command::Run(RunArgs {
            common: CommonArgs::default(),
            nri_socket: None,
            mode: None,
            plugin_index: std::env::var("NRI_PLUGIN_IDX").ok(),
            log_format: None,
            admin_address: None,
        }),
        None => {
            eprintln!("signet: a command is needed (run, verify, policy, crd, version); see --help");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Version => {
            out(&format!("signet {}\n", env!("CARGO_PKG_VERSION")));
            ExitCode::SUCCESS
        }
        Command::Run(args) => run(args),
        Command::Verify(args) => verify(args),
        Command::Policy(PolicyCommand::Check { files, namespace, kms }) => policy_check(&files, namespace, &kms),
        Command::Policy(PolicyCommand::Explain(args)) => policy_explain(&args),
        Command::Crd => {
            out(&crate::policy::crd::crd_yaml());
            ExitCode::SUCCESS
        }
    }
}

/// Write a command's output. A reader that went away (`signet … | head`) is not an error:
/// the rest is dropped and the command exits with the status it would have had, as other
/// command-line tools do. (`print!` panics on a broken pipe; the daemon keeps SIGPIPE
/// ignored, so this is the one place that decides.)
fn out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => eprintln!("signet: writing output: {e}"),
    }
}

fn no_match_action(n: NoMatchArg) -> NoMatchAction {
    match n {
        NoMatchArg::Deny => NoMatchAction::Deny,
        NoMatchArg::Allow => NoMatchAction::Allow,
        NoMatchArg::Warn => NoMatchAction::Warn,
    }
}

fn policy_check(files: &[PathBuf], namespace: Option<String>, kms: &KmsArgs) -> ExitCode {
    let options = local::LoadOptions { namespace };
    match load_resolving(kms, |r| local::load_files_with(files, &options, r)) {
        Ok(loaded) => {
            for n in &loaded.notes {
                eprintln!("note: {n}");
            }
            for w in &loaded.warnings {
                eprintln!("warning: {w}");
            }
            for p in &loaded.normal {
                out(&format!("---\n{}", serde_yaml::to_string(p).expect("normalised policy serialises")));
            }
            eprintln!(
                "{} policies valid in {} file(s); {} part(s) fail closed on the node",
                loaded.normal.len(),
                files.len(),
                loaded.warnings.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("signet: {e}");
            ExitCode::from(1)
        }
    }
}

fn policy_explain(args: &ExplainArgs) -> ExitCode {
    let loaded = match load_resolving(&args.kms, |r| local::load_dir_with(&args.policy_dir, r)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("signet: {e}");
            return ExitCode::from(2);
        }
    };
    let explanation = match crate::evaluate::explain::explain(
        &loaded,
        no_match_action(args.no_match),
        &args.image,
        args.namespace.as_deref(),
    ) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("signet: {e}");
            return ExitCode::from(2);
        }
    };
    match args.output {
        Output::Json => {
            out(&format!("{}\n", serde_json::to_string_pretty(&explanation).expect("explanation serialises")))
        }
        Output::Text => out(&explanation.to_string()),
    }
    ExitCode::SUCCESS
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

fn run(args: RunArgs) -> ExitCode {
    let extra = FileConfig {
        nri_socket: args.nri_socket.clone(),
        mode: args.mode.map(|m| match m {
            ModeArg::Enforce => Mode::Enforce,
            ModeArg::Warn => Mode::Warn,
        }),
        plugin_index: args.plugin_index.clone(),
        log_format: args.log_format.clone(),
        admin_address: args.admin_address.clone(),
        ..Default::default()
    };
    let source = args.common.config_source(extra.clone());
    let settings = match args.common.settings(extra) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("signet: {e}");
            return ExitCode::from(2);
        }
    };
    crate::logging::init(settings.log_format.as_deref());
    match runtime().block_on(crate::daemon::run(settings, source)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "signet stopped");
            ExitCode::FAILURE
        }
    }
}

fn verify(args: VerifyArgs) -> ExitCode {
    crate::logging::init_cli();
    let settings = match args.common.settings(FileConfig { mode: Some(Mode::Enforce), ..Default::default() }) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("signet: {e}");
            return ExitCode::from(2);
        }
    };
    let mut policies = match local::load_dir(&settings.policy_dir) {
        Ok(p) => p.policies,
        Err(e) => {
            eprintln!("signet: {e}");
            return ExitCode::from(2);
        }
    };
    // With cluster policy on, the node enforces the last-known-good cluster snapshot too.
    if settings.cluster_policy {
        if let Some(c) = crate::sync::kube::load_last_known_good(&settings.lkg_path()) {
            policies.extend(c.policies);
        }
    }
    let policy = crate::policy::PolicySet::assemble(policies, settings.no_match);
    let (_tx, rx) = tokio::sync::watch::channel(policy);
    let budget = settings.registry_timeout + Duration::from_secs(1);
    let decided = runtime().block_on(async {
        let enforcer = crate::daemon::enforcer(&settings, rx)?;
        let claim = ImageClaim { namespace: args.namespace.clone(), ..ImageClaim::named(&args.image) };
        Ok::<_, crate::imagestore::StoreError>(enforcer.decide(&claim, budget).await)
    });
    let decision = match decided {
        Ok(d) => d,
        Err(e) => {
            eprintln!("signet: {e}");
            return ExitCode::from(2);
        }
    };
    match args.output {
        Output::Json => out(&format!("{}\n", serde_json::to_string_pretty(&decision).expect("decision serialises"))),
        Output::Text => out(&format!("{decision}\n")),
    }
    if decision.indeterminate {
        ExitCode::from(2)
    } else if decision.allowed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
