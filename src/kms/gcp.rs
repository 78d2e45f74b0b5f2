//! GCP Cloud KMS: `GET https://cloudkms.googleapis.com/v1/{version}/publicKey` with the
//! node's service-account token from the metadata server (GCE, and GKE workload identity,
//! which serves the pod's bound identity at the same address).

use serde::Deserialize;

use super::http::{Http, Request};
use super::{KmsError, KmsUri, ResolvedKey, Unusable};
use crate::verify::pubkey::{HashAlgorithm, Padding, Signing};

pub const TOKEN_URL: &str =
    "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token";
pub const API: &str = "https://cloudkms.googleapis.com/v1";

#[derive(Deserialize)]
struct Token {
    access_token: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PublicKey {
    pem: String,
    algorithm: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Versions {
    #[serde(default)]
    crypto_key_versions: Vec<Version>,
}

#[derive(Deserialize)]
struct Version {
    name: String,
}

pub async fn public_key(http: &dyn Http, uri: &KmsUri) -> Result<ResolvedKey, KmsError> {
    let KmsUri::Gcp { key, version } = uri else { unreachable!("dispatched by scheme") };
    let token = token(http, uri).await?;
    let bearer = format!("Bearer {token}");
    let name = match version {
        Some(v) => format!("{key}/cryptoKeyVersions/{v}"),
        None => latest_enabled(http, uri, key, &bearer).await?,
    };
    let resp = http
        .send(Request::get(format!("{API}/{name}/publicKey")).header("Authorization", bearer.clone()))
        .await
        .map_err(|e| KmsError::unavailable(uri, e.to_string()))?;
    if resp.status != 200 {
        return Err(KmsError::from_status(uri, resp.status, &resp.body));
    }
    let pk: PublicKey = serde_json::from_slice(&resp.body)
        .map_err(|e| KmsError::refused(uri, format!("unexpected publicKey answer: {e}")))?;
    let signing = signing(&pk.algorithm).map_err(|m| KmsError::refused(uri, m.to_string()))?;
    Ok(ResolvedKey {
        pem: pk.pem,
        version: pk.name.unwrap_or(name),
        signing,
        source: "GCP Cloud KMS (cloudkms.googleapis.com)".into(),
    })
}

async fn token(http: &dyn Http, uri: &KmsUri) -> Result<String, KmsError> {
    let resp = http
        .send(Request::get(TOKEN_URL).header("Metadata-Flavor", "Google"))
        .await
        .map_err(|e| KmsError::credentials(uri, format!("metadata server: {e}")))?;
    if resp.status != 200 {
        return Err(KmsError::credentials(uri, format!("metadata server token: HTTP {}", resp.status)));
    }
    let t: Token = serde_json::from_slice(&resp.body)
        .map_err(|e| KmsError::credentials(uri, format!("metadata server token: {e}")))?;
    Ok(t.access_token)
}

/// cosign signs with the newest enabled version when the URI names none.
async fn latest_enabled(http: &dyn Http, uri: &KmsUri, key: &str, bearer: &str) -> Result<String, KmsError> {
    let url = format!("{API}/{key}/cryptoKeyVersions?filter=state%3DENABLED");
    let resp = http
        .send(Request::get(url).header("Authorization", bearer))
        .await
        .map_err(|e| KmsError::unavailable(uri, e.to_string()))?;
    if resp.status != 200 {
        return Err(KmsError::from_status(uri, resp.status, &resp.body));
    }
    let v: Versions = serde_json::from_slice(&resp.body)
        .map_err(|e| KmsError::refused(uri, format!("unexpected cryptoKeyVersions answer: {e}")))?;
    v.crypto_key_versions
        .into_iter()
        .filter_map(|v| v.name.rsplit('/').next().and_then(|n| n.parse::<u64>().ok()).map(|n| (n, v.name)))
        .max()
        .map(|(_, name)| name)
        .ok_or_else(|| KmsError::refused(uri, "the key has no enabled version"))
}

/// The scheme a `CryptoKeyVersionAlgorithm` signs with.
pub fn signing(algorithm: &str) -> Result<Signing, Unusable> {
    let hash = if algorithm.ends_with("_SHA256") {
        HashAlgorithm::Sha256
    } else if algorithm.ends_with("_SHA384") {
        HashAlgorithm::Sha384
    } else if algorithm.ends_with("_SHA512") {
        HashAlgorithm::Sha512
    } else {
        return Err(Unusable::Algorithm(algorithm.to_string()));
    };
    let padding = if algorithm.starts_with("RSA_SIGN_PSS_") {
        Some(Padding::Pss)
    } else if algorithm.starts_with("RSA_SIGN_PKCS1_") {
        Some(Padding::Pkcs1v15)
    } else if matches!(algorithm, "EC_SIGN_P256_SHA256" | "EC_SIGN_P384_SHA384") {
        None
    } else {
        // secp256k1 and raw (unhashed) PKCS#1 are not what cosign signs with.
        return Err(Unusable::Algorithm(algorithm.to_string()));
    };
    Ok(Signing { hash: Some(hash), padding })
}
