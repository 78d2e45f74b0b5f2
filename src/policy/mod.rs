//! Image-signature policy: the model the enforcer evaluates, and where it comes from.
//!
//! - [`model`]: compiled, immutable policy snapshots ([`PolicySet`]) and the evaluation rules.
//! - [`matching`]: image patterns, each in its policy language's own rules.
//! - [`spelling`]: the names each peer may have seen for the image the node runs.
//! - [`crd`]: signet's own `ClusterImagePolicy` CRD types (the YAML is generated from them).
//! - [`importers`]: the other policy languages (sigstore, Tanzu, Portieris, Kyverno).
//! - [`cel`]: the CEL language as the node accepts it (Kyverno ImageValidatingPolicy).
//! - [`labels`]: namespace label selectors and the cluster's namespace labels.
//! - [`normal`]: the normalised form every source becomes.
//! - [`compile`]: the normal form compiled into the model, with keys from Secrets, files, KMS.
//! - [`file`]: multi-document YAML files.
//! - [`local`]: loading a policy directory.

pub mod cel;
pub mod compile;
pub mod crd;
pub mod file;
pub mod importers;
pub mod labels;
pub mod local;
pub mod matching;
pub mod model;
pub mod normal;
pub mod spelling;

pub use model::{
    Authority, AuthorityKind, Exclusive, Keyless, Mode, Namespaces, NoMatchAction, Policy, PolicySet, Requirement,
    SignedBy, Signer, Tlog, TrustedKey,
};

/// Why a policy could not be loaded. Every message names the file and what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy directory {path}: {source}")]
    Dir { path: std::path::PathBuf, source: std::io::Error },
    #[error("policy file {path}: {source}")]
    Read { path: std::path::PathBuf, source: std::io::Error },
    #[error("policy file {path}: document {index}: {message}")]
    Parse { path: std::path::PathBuf, index: usize, message: String },
    #[error("policy file {path}: policy {policy:?}: {message}")]
    Invalid { path: std::path::PathBuf, policy: String, message: String },
    #[error("policy {policy:?} is defined twice: in {first} and {second}")]
    Duplicate { policy: String, first: std::path::PathBuf, second: std::path::PathBuf },
}

/// All problems found in one load, so a user fixes them in one round.
#[derive(Debug, thiserror::Error)]
#[error("{} policy error(s):\n  {}", .0.len(), .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n  "))]
pub struct PolicyErrors(pub Vec<PolicyError>);
