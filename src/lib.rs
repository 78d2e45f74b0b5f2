//! signet: a containerd NRI plugin that refuses to start containers whose images are not
//! properly signed.
//!
//! Map of the crate, following one CreateContainer from the socket to the reply:
//!
//! - [`plugin`]: signet's NRI plugin service — it answers the runtime and is the one place a
//!   decision becomes a wire reply. The socket, wire schema, registration and reconnection
//!   are the workspace's own `nri` crate (`crates/nri`).
//! - [`enforce`]: the decision pipeline under a deadline (identity → policy → signatures).
//! - [`reference`]: image names parsed, bounded and canonical (registry case, default port,
//!   Docker Hub aliases), the form every policy matches on.
//! - [`imagestore`]: tag → digest through containerd's image store (seam, with a fake).
//! - [`rootfs`]: that digest tied to the container's root filesystem snapshot (what runs is
//!   what was checked, whatever name the request carried).
//! - [`registry`]: bounded signature and attestation fetches the way containerd pulls
//!   (hosts.toml mirrors and TLS settings, credentials, `.sig`/`.att` tags and OCI referrers,
//!   GPG lookaside stores; seam, with a fake).
//! - [`evaluate`]: every matching policy judged over the evidence fetched for a digest
//!   (requirements, authorities, CEL validations) and `policy explain`; pure. It stands on
//!   `policy` and `verify`, which do not read each other's judgement.
//! - [`verify`]: which signatures count (`layers`: keys, keyless certificates and SCTs,
//!   offline Rekor SETs, DSSE attestations and cosign 3 bundles, GPG simple signing, Notary;
//!   `signer`: who must have signed); pure.
//! - [`kms`]: public keys held in a cloud KMS or Vault, resolved at load and sync (never
//!   on the request path) and cached for nodes that boot without the provider.
//! - [`tuf`]: Sigstore trust roots served by TUF repositories (Kyverno `cosign.tuf`),
//!   verified with tough and held the same way; [`held`] bundles both for policy.
//! - [`policy`]: policy model, glob matching, signet's CRD, importers of the other policy
//!   languages (one table of kinds), the normalised form (`normal`) and its compilation
//!   (`compile`), local directory loading.
//! - [`sync`]: merging local and cluster policy into published snapshots; kube watchers;
//!   the last-known-good file.
//! - [`statefile`]: atomic 0600 files under the state directory (caches, last known good).
//! - [`cache`]: bounded TTL cache with singleflight and background completion.
//! - [`conditions`]: Kyverno's conditions language (`{{ JMESPath }}` variables, its
//!   operators and functions), judged over a verified attestation's predicate; pure.
//! - [`decision`]: the shared vocabulary — an image claim and the decision for it.
//! - [`encoding`]: base64 as Sigstore material spells it, for registry and verify alike.
//! - [`body`]: HTTP answers read capped and streamed, drawing on a memory budget, and
//!   [`causes`]: an error with its causes as one line; both for the registry and KMS clients.
//! - [`metrics`]: the process-wide Prometheus registry; [`admin`] serves it with `/healthz`
//!   and `/readyz` on loopback.
//! - [`config`], [`cli`], [`logging`], [`daemon`]: settings (one list of file keys),
//!   commands, log output, wiring.
//!
//! Errors are one thiserror enum per module boundary, rendered to text only where a decision
//! becomes a reason (`enforce`) and a reason becomes a wire reply (`plugin`).

pub mod admin;
pub mod body;
pub mod cache;
pub mod causes;
pub mod cli;
pub mod conditions;
pub mod config;
pub mod daemon;
pub mod decision;
pub mod encoding;
pub mod enforce;
pub mod evaluate;
pub mod held;
pub mod imagestore;
pub mod kms;
pub mod logging;
pub mod metrics;
pub mod plugin;
pub mod policy;
pub mod reference;
pub mod registry;
pub mod rootfs;
pub mod statefile;
pub mod sync;
#[cfg(test)]
mod testutil;
pub mod tuf;
pub mod verify;
