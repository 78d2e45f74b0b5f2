//! AWS KMS `GetPublicKey` (JSON 1.1, `X-Amz-Target: TrentService.GetPublicKey`), SigV4
//! signed with the node's credentials: environment variables, then IRSA web identity
//! (`AWS_WEB_IDENTITY_TOKEN_FILE` exchanged at STS `AssumeRoleWithWebIdentity`), then the
//! instance role from IMDSv2.

use base64::Engine as _;
use serde::Deserialize;

use super::http::{Http, Request};
use super::sigv4::{self, Credentials, Signable};
use super::{Env, KmsError, KmsUri, ResolvedKey, Unusable};
use crate::verify::pubkey::{HashAlgorithm, Padding, Signing};

pub const IMDS: &str = "http://169.254.169.254";

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetPublicKey {
    key_id: String,
    public_key: String,
    #[serde(default)]
    key_usage: Option<String>,
    #[serde(default)]
    signing_algorithms: Vec<String>,
}

#[derive(Deserialize)]
struct AwsError {
    #[serde(rename = "__type", default)]
    kind: String,
    #[serde(default, alias = "Message")]
    message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ImdsCredentials {
    access_key_id: String,
    secret_access_key: String,
    token: Option<String>,
}

pub async fn public_key(http: &dyn Http, env: &Env, uri: &KmsUri) -> Result<ResolvedKey, KmsError> {
    let KmsUri::Aws { endpoint, key_id, region } = uri else { unreachable!("dispatched by scheme") };
    if let Some(host) = endpoint {
        if !endpoint_allowed(host) {
            return Err(KmsError::refused(
                uri,
                format!(
                    "endpoint {host} is neither an AWS domain nor loopback: the node's signed requests are not sent there"
                ),
            ));
        }
    }
    let region =
        match region.clone().or_else(|| env.get("AWS_REGION").or(env.get("AWS_DEFAULT_REGION")).map(String::from)) {
            Some(r) => r,
            None => match imds_region(http, env).await {
                Some(r) => r,
                // A local endpoint (moto, LocalStack) does not care which region is signed.
                None if endpoint.is_some() => "us-east-1".to_string(),
                None => return Err(KmsError::credentials(uri, "no region: set AWS_REGION or use a key ARN")),
            },
        };
    let creds = credentials(http, env, uri, &region).await?;
    let host = endpoint.clone().unwrap_or_else(|| format!("kms.{region}.amazonaws.com"));
    let body = serde_json::json!({ "KeyId": key_id }).to_string();
    let amz_date = k8s_openapi::jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ").to_string();
    let signable = Signable {
        method: "POST",
        host: &host,
        path: "/",
        query: "",
        headers: &[("content-type", "application/x-amz-json-1.1"), ("x-amz-target", "TrentService.GetPublicKey")],
        body: body.as_bytes(),
    };
    let mut req =
        Request { method: "POST", url: format!("https://{host}/"), headers: Vec::new(), body: body.clone().into() };
    for (name, value) in sigv4::sign(&signable, &creds, &region, "kms", &amz_date) {
        // reqwest sets Host from the URL.
        if name != "host" {
            req.headers.push((name, value));
        }
    }
    let resp = http.send(req).await.map_err(|e| KmsError::unavailable(uri, e.to_string()))?;
    if resp.status != 200 {
        return Err(match serde_json::from_slice::<AwsError>(&resp.body) {
            Ok(e) => {
                let kind = e.kind.rsplit('#').next().unwrap_or_default().to_string();
                let message = format!("{kind}: {}", e.message);
                let transient = matches!(
                    kind.as_str(),
                    "ThrottlingException"
                        | "KMSInternalException"
                        | "DependencyTimeoutException"
                        | "ServiceUnavailable"
                );
                if transient || resp.status == 429 || resp.status >= 500 {
                    KmsError::unavailable(uri, message)
                } else {
                    KmsError::refused(uri, message)
                }
            }
            Err(_) => KmsError::from_status(uri, resp.status, &resp.body),
        });
    }
    let key: GetPublicKey = serde_json::from_slice(&resp.body)
        .map_err(|e| KmsError::refused(uri, format!("unexpected GetPublicKey answer: {e}")))?;
    if key.key_usage.as_deref().is_some_and(|u| u != "SIGN_VERIFY") {
        return Err(KmsError::refused(uri, format!("key usage is {}, not SIGN_VERIFY", key.key_usage.unwrap())));
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(key.public_key.trim())
        .map_err(|e| KmsError::refused(uri, format!("PublicKey is not base64: {e}")))?;
    let signing = signing(&key.signing_algorithms).map_err(|m| KmsError::refused(uri, m.to_string()))?;
    Ok(ResolvedKey {
        pem: super::spki_pem(&der),
        version: key.key_id,
        signing,
        source: format!("AWS KMS GetPublicKey (https://{host})"),
    })
}

/// Where a policy may send the node's signed requests: AWS's own domains (regional and VPC
/// endpoints) and loopback (LocalStack, moto). A policy author naming some other host would
/// otherwise receive the node's session token and signed requests.
fn endpoint_allowed(host_port: &str) -> bool {
    let host = match host_port.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host_port,
    }
    .to_ascii_lowercase();
    // A loopback address must be one (`127.attacker.example` is a name anyone can own).
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    loopback || [".amazonaws.com", ".amazonaws.com.cn"].iter().any(|d| host.ends_with(d))
}

/// The scheme cosign signs with, among the key's `SigningAlgorithms`: ECDSA with the
/// curve's digest; for RSA, PKCS#1 v1.5 with SHA-256 where offered (cosign's choice),
/// else the first PSS.
pub fn signing(algorithms: &[String]) -> Result<Signing, Unusable> {
    let parse = |a: &str| -> Option<Signing> {
        let hash = match a.rsplit('_').next()? {
            "256" => HashAlgorithm::Sha256,
            "384" => HashAlgorithm::Sha384,
            "512" => HashAlgorithm::Sha512,
            _ => return None,
        };
        let padding = if a.starts_with("ECDSA_SHA_") {
            None
        } else if a.starts_with("RSASSA_PKCS1_V1_5_SHA_") {
            Some(Padding::Pkcs1v15)
        } else if a.starts_with("RSASSA_PSS_SHA_") {
            Some(Padding::Pss)
        } else {
            return None;
        };
        Some(Signing { hash: Some(hash), padding })
    };
    let offered: Vec<Signing> = algorithms.iter().filter_map(|a| parse(a)).collect();
    let preferred = Signing { hash: Some(HashAlgorithm::Sha256), padding: Some(Padding::Pkcs1v15) };
    if offered.contains(&preferred) {
        return Ok(preferred);
    }
    offered.into_iter().next().ok_or_else(|| Unusable::Algorithms(algorithms.to_vec()))
}

async fn credentials(http: &dyn Http, env: &Env, uri: &KmsUri, region: &str) -> Result<Credentials, KmsError> {
    if let (Some(id), Some(secret)) = (env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")) {
        return Ok(Credentials {
            access_key_id: id.into(),
            secret_access_key: secret.into(),
            session_token: env.get("AWS_SESSION_TOKEN").map(String::from),
        });
    }
    if let (Some(file), Some(role)) = (env.get("AWS_WEB_IDENTITY_TOKEN_FILE"), env.get("AWS_ROLE_ARN")) {
        return web_identity(http, env, uri, region, file, role).await;
    }
    if env.get("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Err(KmsError::credentials(uri, "no credentials in the environment and IMDS is disabled"));
    }
    imds_credentials(http, uri).await
}

/// IRSA: the projected service-account token, exchanged (unsigned) for role credentials.
async fn web_identity(
    http: &dyn Http,
    env: &Env,
    uri: &KmsUri,
    region: &str,
    file: &str,
    role: &str,
) -> Result<Credentials, KmsError> {
    let token = std::fs::read_to_string(file)
        .map_err(|e| KmsError::credentials(uri, format!("AWS_WEB_IDENTITY_TOKEN_FILE {file}: {e}")))?;
    let session = env.get("AWS_ROLE_SESSION_NAME").unwrap_or("signet");
    let body = format!(
        "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName={}&WebIdentityToken={}",
        form_encode(role),
        form_encode(session),
        form_encode(token.trim())
    );
    let req = Request {
        method: "POST",
        url: format!("https://sts.{region}.amazonaws.com/"),
        headers: vec![("Content-Type".into(), "application/x-www-form-urlencoded".into())],
        body: body.into_bytes(),
    };
    let resp = http.send(req).await.map_err(|e| KmsError::credentials(uri, format!("STS: {e}")))?;
    let text = String::from_utf8_lossy(&resp.body);
    if resp.status != 200 {
        // STS error bodies name the error, never the token.
        let code = xml_text(&text, "Code").unwrap_or_default();
        return Err(KmsError::credentials(uri, format!("STS AssumeRoleWithWebIdentity: HTTP {} {code}", resp.status)));
    }
    match (xml_text(&text, "AccessKeyId"), xml_text(&text, "SecretAccessKey"), xml_text(&text, "SessionToken")) {
        (Some(id), Some(secret), token) => {
            Ok(Credentials { access_key_id: id, secret_access_key: secret, session_token: token })
        }
        _ => Err(KmsError::credentials(uri, "STS AssumeRoleWithWebIdentity: no credentials in the answer")),
    }
}

async fn imds_token(http: &dyn Http) -> Result<String, Unusable> {
    let req = Request {
        method: "PUT",
        url: format!("{IMDS}/latest/api/token"),
        headers: vec![("X-aws-ec2-metadata-token-ttl-seconds".into(), "300".into())],
        body: Vec::new(),
    };
    let resp = http.send(req).await?;
    if resp.status != 200 {
        return Err(Unusable::Status { what: "IMDSv2 token".into(), status: resp.status });
    }
    Ok(String::from_utf8(resp.body)?)
}

async fn imds_get(http: &dyn Http, token: &str, path: &str) -> Result<String, Unusable> {
    let resp = http
        .send(Request::get(format!("{IMDS}/latest/meta-data/{path}")).header("X-aws-ec2-metadata-token", token))
        .await?;
    if resp.status != 200 {
        return Err(Unusable::Status { what: format!("IMDS {path}"), status: resp.status });
    }
    Ok(String::from_utf8(resp.body)?)
}

async fn imds_region(http: &dyn Http, env: &Env) -> Option<String> {
    if env.get("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return None;
    }
    let token = imds_token(http).await.ok()?;
    imds_get(http, &token, "placement/region").await.ok().map(|r| r.trim().to_string())
}

async fn imds_credentials(http: &dyn Http, uri: &KmsUri) -> Result<Credentials, KmsError> {
    let fail = |e: String| KmsError::credentials(uri, format!("instance metadata (IMDSv2): {e}"));
    let token = imds_token(http).await.map_err(|e| fail(e.to_string()))?;
    let roles = imds_get(http, &token, "iam/security-credentials/").await.map_err(|e| fail(e.to_string()))?;
    let role =
        roles.lines().next().map(str::trim).filter(|r| !r.is_empty()).ok_or_else(|| fail("no instance role".into()))?;
    let json =
        imds_get(http, &token, &format!("iam/security-credentials/{role}")).await.map_err(|e| fail(e.to_string()))?;
    let c: ImdsCredentials = serde_json::from_str(&json).map_err(|e| fail(format!("credentials: {e}")))?;
    Ok(Credentials { access_key_id: c.access_key_id, secret_access_key: c.secret_access_key, session_token: c.token })
}

/// `application/x-www-form-urlencoded` value encoding (RFC 3986 unreserved kept).
fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The text of the first `<tag>…</tag>`: STS answers are flat enough for this.
fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].trim().to_string())
}

#[cfg(test)]
mod tests {
    /// Review finding: `127.` as a prefix of a name is not loopback.
    #[test]
    fn only_aws_domains_and_real_loopback_addresses_get_credentials() {
        for ok in ["kms.us-east-1.amazonaws.com", "127.0.0.1:4566", "127.1.2.3", "localhost:4566", "[::1]:4566"] {
            assert!(super::endpoint_allowed(ok), "{ok}");
        }
        for bad in [
            "127.attacker.example",
            "127.0.0.1.attacker.example:443",
            "attacker.example",
            "amazonaws.com.attacker.example",
        ] {
            assert!(!super::endpoint_allowed(bad), "{bad}");
        }
    }
}
