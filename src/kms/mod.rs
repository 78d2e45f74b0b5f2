//! Public keys held in a cloud KMS, resolved to PEM off the request path.
//!
//! Policies name keys by URI (`gcpkms://…`, `awskms://…`, `azurekms://…`,
//! `hashivault://…`). Verifying needs only the public half, which each provider serves
//! through its REST API to the node's own identity (metadata-server tokens, IRSA, IMDS,
//! managed identity, a Vault token). Keys are resolved when policy loads or syncs, never
//! while a container waits: [`Resolver`] keeps the last good key per URI (and in a cache
//! file), so a node that boots with the provider unreachable still enforces.
//!
//! - [`uri`]: the URI forms and their strict parsing.
//! - [`http`]: the HTTP seam every provider talks through (reqwest; a fake in tests).
//! - [`gcp`], [`aws`] (with [`sigv4`]), [`azure`], [`vault`]: one provider each.
//! - [`resolver`]: cache, config overrides, the cache file, and inlining into policies.

pub mod aws;
pub mod azure;
pub mod gcp;
pub mod http;
pub mod resolver;
pub mod sigv4;
pub mod uri;
pub mod vault;

#[cfg(test)]
mod provider_tests;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use self::resolver::Resolver;
pub use self::uri::{KmsUri, UriError};
use crate::verify::pubkey::Signing;

/// A KMS key's public half, as resolved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResolvedKey {
    /// SubjectPublicKeyInfo PEM.
    pub pem: String,
    /// The key version this is the public key of (GCP version name, AWS key ARN, Azure
    /// key id, Vault version): a URI without a version may move to a newer one.
    pub version: String,
    /// The scheme the key signs under, from the provider's key metadata.
    #[serde(default, skip_serializing_if = "Signing::is_default")]
    pub signing: Signing,
    /// Where the key came from (the provider's endpoint, a config file, the cache file).
    pub source: String,
}

/// Why a key could not be resolved. Messages name the key URI and the provider and never
/// carry a credential.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum KmsError {
    #[error(transparent)]
    Uri(#[from] UriError),
    /// Unreachable, timed out, throttled (429) or failing (5xx): worth retrying, and the
    /// last good key stays in use.
    #[error("{provider} key {uri}: provider unavailable: {message}")]
    Unavailable { provider: &'static str, uri: String, message: String },
    /// Asked for on the request path with no provider to ask (a command-line check, a
    /// node without access) and not pinned in `kms_keys`.
    #[error("KMS key {uri} is not resolved: no provider access here and not in kms_keys")]
    NoAccess { uri: String },
    /// Not resolved by a sync yet: asked for, and resolved off the request path.
    #[error("KMS key {uri} is not resolved yet")]
    Pending { uri: String },
    /// The provider answered and the answer rules the key out (not found, disabled,
    /// denied, an algorithm the node does not verify).
    #[error("{provider} key {uri}: {message}")]
    Refused { provider: &'static str, uri: String, message: String },
    /// The node has no identity for this provider, or its identity service failed.
    #[error("{provider} credentials for key {uri}: {message}")]
    Credentials { provider: &'static str, uri: String, message: String },
}

/// What in a provider's answer, or in the node's identity for it, cannot be used; the
/// key's URI and provider are added as a [`KmsError`].
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    #[error("algorithm {0} is not verified on the node")]
    Algorithm(String),
    #[error("signing algorithms {0:?} include none the node verifies")]
    Algorithms(Vec<String>),
    #[error("JWK has no {0}")]
    JwkField(&'static str),
    #[error("JWK {field} is not base64url: {message}")]
    JwkBase64 { field: &'static str, message: String },
    #[error("JWK curve {0:?} is not verified on the node")]
    JwkCurve(Option<String>),
    #[error("JWK coordinates have the wrong length for the curve")]
    JwkLength,
    #[error("JWK key type {0} is not a signing key the node verifies")]
    JwkType(String),
    #[error("no VAULT_TOKEN and no token file")]
    NoVaultToken,
    #[error("Vault token file {file}: {message}")]
    VaultTokenFile { file: String, message: String },
    #[error(transparent)]
    Http(#[from] http::HttpError),
    #[error("{what}: HTTP {status}")]
    Status { what: String, status: u16 },
    #[error("{0}")]
    NotText(#[from] std::string::FromUtf8Error),
}

impl KmsError {
    /// Whether trying again later may succeed; such failures keep the last good key.
    pub fn is_transient(&self) -> bool {
        matches!(self, KmsError::Unavailable { .. } | KmsError::Credentials { .. })
    }

    pub(crate) fn unavailable(uri: &KmsUri, message: impl Into<String>) -> Self {
        KmsError::Unavailable { provider: uri.provider(), uri: uri.to_string(), message: message.into() }
    }
    pub(crate) fn refused(uri: &KmsUri, message: impl Into<String>) -> Self {
        KmsError::Refused { provider: uri.provider(), uri: uri.to_string(), message: message.into() }
    }
    pub(crate) fn credentials(uri: &KmsUri, message: impl Into<String>) -> Self {
        KmsError::Credentials { provider: uri.provider(), uri: uri.to_string(), message: message.into() }
    }

    /// The error for a provider's non-success HTTP answer: 429 and 5xx are transient.
    pub(crate) fn from_status(uri: &KmsUri, status: u16, body: &[u8]) -> Self {
        // Provider error bodies carry a message, never a credential; bounded for logs.
        let text: String = String::from_utf8_lossy(body).chars().take(300).collect();
        let message = format!("HTTP {status}: {}", text.trim());
        if status == 429 || status >= 500 {
            Self::unavailable(uri, message)
        } else {
            Self::refused(uri, message)
        }
    }
}

/// Turns a KMS URI into its public key: the I/O seam the resolver is tested through.
#[async_trait::async_trait]
pub trait KeyProvider: Send + Sync {
    async fn public_key(&self, uri: &KmsUri) -> Result<ResolvedKey, KmsError>;
}

/// Every provider, over one HTTP client, with the node's environment.
pub struct Providers {
    http: Arc<dyn http::Http>,
    env: Env,
}

/// What the providers read from the process environment, captured once so tests set it
/// explicitly. Holds paths and names, plus any static credentials the operator exported.
#[derive(Clone, Default)]
pub struct Env {
    pub vars: std::collections::BTreeMap<String, String>,
}

impl std::fmt::Debug for Env {
    // Values may be credentials: only the names are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.vars.keys()).finish()
    }
}

impl Env {
    /// The variables the providers use, from this process.
    pub fn from_process() -> Self {
        const NAMES: &[&str] = &[
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_ROLE_ARN",
            "AWS_ROLE_SESSION_NAME",
            "AWS_EC2_METADATA_DISABLED",
            "AZURE_CLIENT_ID",
            "VAULT_ADDR",
            "VAULT_TOKEN",
            "VAULT_TOKEN_FILE",
            "TRANSIT_SECRET_ENGINE_PATH",
            "HOME",
        ];
        let vars = NAMES.iter().filter_map(|n| std::env::var(n).ok().map(|v| (n.to_string(), v))).collect();
        Self { vars }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }
}

impl Providers {
    pub fn new(http: Arc<dyn http::Http>, env: Env) -> Self {
        Self { http, env }
    }

    /// reqwest with the node's environment (and `AWS_CA_BUNDLE` / `VAULT_CACERT` trusted).
    pub fn from_process() -> Result<Self, http::HttpError> {
        Ok(Self::new(Arc::new(http::ReqwestHttp::from_env()?), Env::from_process()))
    }
}

#[async_trait::async_trait]
impl KeyProvider for Providers {
    async fn public_key(&self, uri: &KmsUri) -> Result<ResolvedKey, KmsError> {
        let http = &*self.http;
        match uri {
            KmsUri::Gcp { .. } => gcp::public_key(http, uri).await,
            KmsUri::Aws { .. } => aws::public_key(http, &self.env, uri).await,
            KmsUri::Azure { .. } => azure::public_key(http, &self.env, uri).await,
            KmsUri::Vault { .. } => vault::public_key(http, &self.env, uri).await,
        }
    }
}

/// PEM for a SubjectPublicKeyInfo.
pub(crate) fn spki_pem(der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new("PUBLIC KEY", der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}
