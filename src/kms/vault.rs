//! HashiCorp Vault transit: `GET $VAULT_ADDR/v1/{mount}/keys/{name}` with `X-Vault-Token`
//! from `VAULT_TOKEN`, else `VAULT_TOKEN_FILE`, else `~/.vault-token` (what Vault Agent's
//! sink writes). The mount is `TRANSIT_SECRET_ENGINE_PATH` (cosign's variable), default
//! `transit`. The newest version's public key is the one cosign signs with.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::http::{Http, Request};
use super::{Env, KmsError, KmsUri, ResolvedKey, Unusable};
use crate::verify::pubkey::{HashAlgorithm, Padding, Signing};

#[derive(Deserialize)]
struct Answer {
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "type")]
    kind: String,
    latest_version: u64,
    keys: BTreeMap<String, serde_json::Value>,
}

pub async fn public_key(http: &dyn Http, env: &Env, uri: &KmsUri) -> Result<ResolvedKey, KmsError> {
    let KmsUri::Vault { name } = uri else { unreachable!("dispatched by scheme") };
    let addr = env.get("VAULT_ADDR").ok_or_else(|| KmsError::credentials(uri, "VAULT_ADDR is not set"))?;
    let token = token(env).map_err(|m| KmsError::credentials(uri, m.to_string()))?;
    let mount = env.get("TRANSIT_SECRET_ENGINE_PATH").unwrap_or("transit").trim_matches('/');
    let url = format!("{}/v1/{mount}/keys/{name}", addr.trim_end_matches('/'));
    let resp = http
        .send(Request::get(url).header("X-Vault-Token", token))
        .await
        .map_err(|e| KmsError::unavailable(uri, e.to_string()))?;
    if resp.status != 200 {
        return Err(KmsError::from_status(uri, resp.status, &resp.body));
    }
    let answer: Answer = serde_json::from_slice(&resp.body)
        .map_err(|e| KmsError::refused(uri, format!("unexpected transit key answer: {e}")))?;
    let d = answer.data;
    let version = d.latest_version.to_string();
    let pem = d
        .keys
        .get(&version)
        .and_then(|k| k.get("public_key"))
        .and_then(|p| p.as_str())
        .filter(|p| !p.is_empty())
        .ok_or_else(|| KmsError::refused(uri, format!("version {version} has no public key (type {})", d.kind)))?;
    // cosign's Vault signer hashes with SHA-256 whatever the curve, and signs RSA with
    // PKCS#1 v1.5; a policy's hashAlgorithm overrides the digest.
    let signing = match d.kind.as_str() {
        "ecdsa-p256" | "ecdsa-p384" | "ecdsa-p521" => Signing { hash: Some(HashAlgorithm::Sha256), padding: None },
        "rsa-2048" | "rsa-3072" | "rsa-4096" => {
            Signing { hash: Some(HashAlgorithm::Sha256), padding: Some(Padding::Pkcs1v15) }
        }
        "ed25519" => Signing::default(),
        other => return Err(KmsError::refused(uri, format!("transit key type {other} does not sign"))),
    };
    Ok(ResolvedKey {
        pem: pem.to_string(),
        version: format!("{name} v{version}"),
        signing,
        source: format!("Vault transit ({}/v1/{mount})", addr.trim_end_matches('/')),
    })
}

fn token(env: &Env) -> Result<String, Unusable> {
    if let Some(t) = env.get("VAULT_TOKEN") {
        return Ok(t.to_string());
    }
    let file = match (env.get("VAULT_TOKEN_FILE"), env.get("HOME")) {
        (Some(f), _) => f.to_string(),
        (None, Some(home)) => format!("{home}/.vault-token"),
        (None, None) => return Err(Unusable::NoVaultToken),
    };
    let t = std::fs::read_to_string(&file)
        .map_err(|e| Unusable::VaultTokenFile { file: file.clone(), message: e.to_string() })?;
    Ok(t.trim().to_string())
}
