//! Azure Key Vault: `GET https://{vault}/keys/{name}[/{version}]?api-version=7.4` with a
//! managed-identity token from the instance metadata service; the key comes back as a
//! JWK, turned here into a SubjectPublicKeyInfo.

use base64::Engine as _;
use serde::Deserialize;

use super::http::{Http, Request};
use super::{Env, KmsError, KmsUri, ResolvedKey, Unusable};
use crate::verify::pubkey::{HashAlgorithm, Padding, Signing};

pub const TOKEN_URL: &str =
    "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net";

/// Key Vault and Managed HSM DNS suffixes of the Azure clouds.
const VAULT_DOMAINS: &[&str] = &[
    ".vault.azure.net",
    ".vault.azure.cn",
    ".vault.usgovcloudapi.net",
    ".vault.microsoftazure.de",
    ".managedhsm.azure.net",
];

#[derive(Deserialize)]
struct Token {
    access_token: String,
}

#[derive(Deserialize)]
struct KeyBundle {
    key: Jwk,
    #[serde(default)]
    attributes: Option<Attributes>,
}

#[derive(Deserialize)]
struct Attributes {
    #[serde(default)]
    enabled: Option<bool>,
}

#[derive(Deserialize)]
struct Jwk {
    kid: String,
    kty: String,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
}

pub async fn public_key(http: &dyn Http, env: &Env, uri: &KmsUri) -> Result<ResolvedKey, KmsError> {
    let KmsUri::Azure { vault, name, version } = uri else { unreachable!("dispatched by scheme") };
    // The managed-identity token opens every vault the node may read: it goes to Key
    // Vault's own domains only, never to a host a policy names.
    let host = vault.to_ascii_lowercase();
    if !VAULT_DOMAINS.iter().any(|d| host.ends_with(d) && host.len() > d.len()) {
        return Err(KmsError::refused(
            uri,
            format!(
                "{vault} is not an Azure Key Vault host ({}): the node's token is not sent there",
                VAULT_DOMAINS.join(", ")
            ),
        ));
    }
    // A user-assigned identity is chosen by client id; the system-assigned one otherwise.
    let token_url = match env.get("AZURE_CLIENT_ID") {
        Some(id) => format!("{TOKEN_URL}&client_id={id}"),
        None => TOKEN_URL.to_string(),
    };
    let resp = http
        .send(Request::get(token_url).header("Metadata", "true"))
        .await
        .map_err(|e| KmsError::credentials(uri, format!("instance metadata (managed identity): {e}")))?;
    if resp.status != 200 {
        return Err(KmsError::credentials(uri, format!("managed identity token: HTTP {}", resp.status)));
    }
    let token: Token = serde_json::from_slice(&resp.body)
        .map_err(|e| KmsError::credentials(uri, format!("managed identity token: {e}")))?;
    let path = match version {
        Some(v) => format!("keys/{name}/{v}"),
        None => format!("keys/{name}"),
    };
    let resp = http
        .send(
            Request::get(format!("https://{vault}/{path}?api-version=7.4"))
                .header("Authorization", format!("Bearer {}", token.access_token)),
        )
        .await
        .map_err(|e| KmsError::unavailable(uri, e.to_string()))?;
    if resp.status != 200 {
        return Err(KmsError::from_status(uri, resp.status, &resp.body));
    }
    let bundle: KeyBundle = serde_json::from_slice(&resp.body)
        .map_err(|e| KmsError::refused(uri, format!("unexpected key answer: {e}")))?;
    if bundle.attributes.and_then(|a| a.enabled) == Some(false) {
        return Err(KmsError::refused(uri, "the key is disabled"));
    }
    let (der, signing) = jwk_spki(&bundle.key).map_err(|m| KmsError::refused(uri, m.to_string()))?;
    Ok(ResolvedKey {
        pem: super::spki_pem(&der),
        version: bundle.key.kid,
        signing,
        source: format!("Azure Key Vault (https://{vault})"),
    })
}

fn b64url(field: &'static str, v: &Option<String>) -> Result<Vec<u8>, Unusable> {
    let v = v.as_deref().ok_or(Unusable::JwkField(field))?;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(v.trim_end_matches('='))
        .map_err(|e| Unusable::JwkBase64 { field, message: e.to_string() })
}

/// The SubjectPublicKeyInfo of an EC or RSA JWK, and the scheme cosign signs with for it
/// (ES256/ES384 by curve; RS256 for RSA).
fn jwk_spki(jwk: &Jwk) -> Result<(Vec<u8>, Signing), Unusable> {
    match jwk.kty.as_str() {
        "EC" | "EC-HSM" => {
            // SEQUENCE { SEQUENCE { id-ecPublicKey, curve }, BIT STRING } up to the point.
            let (prefix, len, hash) = match jwk.crv.as_deref() {
                Some("P-256") => ("3059301306072a8648ce3d020106082a8648ce3d030107034200", 32, HashAlgorithm::Sha256),
                Some("P-384") => ("3076301006072a8648ce3d020106052b81040022036200", 48, HashAlgorithm::Sha384),
                other => return Err(Unusable::JwkCurve(other.map(String::from))),
            };
            let (x, y) = (b64url("x", &jwk.x)?, b64url("y", &jwk.y)?);
            if x.len() != len || y.len() != len {
                return Err(Unusable::JwkLength);
            }
            let mut der = hex::decode(prefix).expect("constant");
            der.push(0x04);
            der.extend(x);
            der.extend(y);
            Ok((der, Signing { hash: Some(hash), padding: None }))
        }
        "RSA" | "RSA-HSM" => {
            let rsa_key = der_tlv(0x30, &[der_uint(&b64url("n", &jwk.n)?), der_uint(&b64url("e", &jwk.e)?)].concat());
            let mut bits = vec![0u8];
            bits.extend(rsa_key);
            // rsaEncryption with NULL parameters.
            let alg = hex::decode("300d06092a864886f70d0101010500").expect("constant");
            let der = der_tlv(0x30, &[alg, der_tlv(0x03, &bits)].concat());
            Ok((der, Signing { hash: Some(HashAlgorithm::Sha256), padding: Some(Padding::Pkcs1v15) }))
        }
        other => Err(Unusable::JwkType(other.to_string())),
    }
}

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// A non-negative INTEGER: leading zeros dropped, one added when the high bit is set.
fn der_uint(be: &[u8]) -> Vec<u8> {
    let trimmed: Vec<u8> = be.iter().copied().skip_while(|b| *b == 0).collect();
    let mut content = if trimmed.first().is_some_and(|b| b & 0x80 != 0) { vec![0] } else { Vec::new() };
    content.extend(if trimmed.is_empty() { vec![0] } else { trimmed });
    der_tlv(0x02, &content)
}
