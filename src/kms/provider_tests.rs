//! Each provider against its documented requests and answers, faked at the HTTP seam:
//! tokens from the metadata services, keys, errors, throttling and a provider that is down.

use std::sync::Arc;

use aws_lc_rs::signature as s;
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine as _;

use super::http::fake::FakeHttp;
use super::*;
use crate::policy::TrustedKey;
use crate::testutil::TestKey;
use crate::verify::pubkey::{HashAlgorithm, Padding};

const GCP_KEY: &str = "projects/p/locations/global/keyRings/r/cryptoKeys/k";

fn env(vars: &[(&str, &str)]) -> Env {
    Env { vars: vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
}

async fn resolve(http: &Arc<FakeHttp>, env: Env, uri: &str) -> Result<ResolvedKey, KmsError> {
    let providers = Providers::new(Arc::clone(http) as Arc<dyn http::Http>, env);
    providers.public_key(&KmsUri::parse(uri).unwrap()).await
}

/// The resolved key verifies what the KMS key signed, under the scheme it reported.
fn assert_verifies(key: &ResolvedKey, signer: &TestKey, rsa: &'static dyn s::RsaEncoding) {
    let trusted = TrustedKey::from_pem_with(key.pem.as_bytes(), key.signing).unwrap();
    let sig = base64::engine::general_purpose::STANDARD.encode(signer.sign(b"payload", rsa));
    let check = |m: &[u8]| trusted.key.verify_signature(sigstore::crypto::Signature::Base64Encoded(sig.as_bytes()), m);
    assert!(check(b"payload").is_ok(), "{}", trusted.key.scheme());
    assert!(check(b"other").is_err());
}

fn gcp_token(http: &FakeHttp) {
    http.route(
        "GET",
        gcp::TOKEN_URL,
        vec![Ok((200, r#"{"access_token":"ya29.secret-token","expires_in":3599,"token_type":"Bearer"}"#))],
    );
}

#[tokio::test]
async fn gcp_uses_the_metadata_server_token_and_the_versions_algorithm() {
    let signer = TestKey::rsa(aws_lc_rs::rsa::KeySize::Rsa2048);
    let http = Arc::new(FakeHttp::default());
    gcp_token(&http);
    let body = serde_json::json!({
        "pem": signer.pem(),
        "algorithm": "RSA_SIGN_PSS_2048_SHA256",
        "pemCrc32c": "1234",
        "name": format!("{GCP_KEY}/cryptoKeyVersions/1"),
        "protectionLevel": "HSM",
    })
    .to_string();
    http.route("GET", &format!("{}/{GCP_KEY}/cryptoKeyVersions/1/publicKey", gcp::API), vec![Ok((200, &body))]);
    let key = resolve(&http, Env::default(), &format!("gcpkms://{GCP_KEY}/cryptoKeyVersions/1")).await.unwrap();
    assert_eq!(key.signing, Signing { hash: Some(HashAlgorithm::Sha256), padding: Some(Padding::Pss) });
    assert_eq!(key.version, format!("{GCP_KEY}/cryptoKeyVersions/1"));
    assert_verifies(&key, &signer, &s::RSA_PSS_SHA256);
    let reqs = http.requests();
    assert_eq!(reqs[0].header_value("Metadata-Flavor"), Some("Google"));
    assert_eq!(reqs[1].header_value("Authorization"), Some("Bearer ya29.secret-token"));
}

#[tokio::test]
async fn gcp_without_a_version_takes_the_newest_enabled_one() {
    let signer = TestKey::ec(&s::ECDSA_P384_SHA384_ASN1_SIGNING);
    let http = Arc::new(FakeHttp::default());
    gcp_token(&http);
    let list = serde_json::json!({"cryptoKeyVersions": [
        {"name": format!("{GCP_KEY}/cryptoKeyVersions/2"), "state": "ENABLED"},
        {"name": format!("{GCP_KEY}/cryptoKeyVersions/10"), "state": "ENABLED"},
        {"name": format!("{GCP_KEY}/cryptoKeyVersions/9"), "state": "ENABLED"},
    ]})
    .to_string();
    http.route(
        "GET",
        &format!("{}/{GCP_KEY}/cryptoKeyVersions?filter=state%3DENABLED", gcp::API),
        vec![Ok((200, &list))],
    );
    let body = serde_json::json!({"pem": signer.pem(), "algorithm": "EC_SIGN_P384_SHA384"}).to_string();
    http.route("GET", &format!("{}/{GCP_KEY}/cryptoKeyVersions/10/publicKey", gcp::API), vec![Ok((200, &body))]);
    let key = resolve(&http, Env::default(), &format!("gcpkms://{GCP_KEY}")).await.unwrap();
    assert_eq!(key.version, format!("{GCP_KEY}/cryptoKeyVersions/10"));
    assert_verifies(&key, &signer, &s::RSA_PKCS1_SHA256);
}

#[tokio::test]
async fn gcp_throttling_and_outages_are_transient_a_missing_key_is_not_and_no_token_leaks() {
    let uri = format!("gcpkms://{GCP_KEY}/cryptoKeyVersions/1");
    let url = format!("{}/{GCP_KEY}/cryptoKeyVersions/1/publicKey", gcp::API);
    let quota = r#"{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED"}}"#;
    let missing = r#"{"error":{"code":404,"message":"CryptoKeyVersion not found","status":"NOT_FOUND"}}"#;
    for (answer, transient, says) in [
        (Ok((429, quota)), true, "HTTP 429"),
        (Ok((503, "unavailable")), true, "HTTP 503"),
        (Err("connection refused"), true, "connection refused"),
        (Ok((404, missing)), false, "not found"),
        (Ok((200, r#"{"pem":"x","algorithm":"EC_SIGN_SECP256K1_SHA256"}"#)), false, "not verified on the node"),
    ] {
        let http = Arc::new(FakeHttp::default());
        gcp_token(&http);
        http.route("GET", &url, vec![answer]);
        let e = resolve(&http, Env::default(), &uri).await.unwrap_err();
        assert_eq!(e.is_transient(), transient, "{e}");
        assert!(e.to_string().contains(says) && e.to_string().contains(&uri), "{e}");
        assert!(!e.to_string().contains("secret-token"), "{e}");
    }
    // No metadata server (not on GCE): a credentials problem, retried later.
    let http = Arc::new(FakeHttp::default());
    let e = resolve(&http, Env::default(), &uri).await.unwrap_err();
    assert!(matches!(e, KmsError::Credentials { .. }) && e.to_string().contains("metadata server"), "{e}");
}

const AWS_ARN: &str = "arn:aws:kms:us-east-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

fn aws_answer(signer: &TestKey, spec: &str, algorithms: &[&str]) -> String {
    serde_json::json!({
        "KeyId": AWS_ARN,
        "PublicKey": base64::engine::general_purpose::STANDARD.encode(signer.spki()),
        "KeySpec": spec,
        "KeyUsage": "SIGN_VERIFY",
        "SigningAlgorithms": algorithms,
        "CustomerMasterKeySpec": spec,
    })
    .to_string()
}

#[tokio::test]
async fn aws_get_public_key_is_sigv4_signed_with_env_credentials_in_the_arns_region() {
    let signer = TestKey::ec(&s::ECDSA_P384_SHA384_ASN1_SIGNING);
    let http = Arc::new(FakeHttp::default());
    let body = aws_answer(&signer, "ECC_NIST_P384", &["ECDSA_SHA_384"]);
    http.route("POST", "https://kms.us-east-2.amazonaws.com/", vec![Ok((200, &body))]);
    let e = env(&[
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI"),
        ("AWS_REGION", "eu-west-1"),
    ]);
    let key = resolve(&http, e, &format!("awskms:///{AWS_ARN}")).await.unwrap();
    assert_eq!(key.version, AWS_ARN);
    assert_eq!(key.signing, Signing { hash: Some(HashAlgorithm::Sha384), padding: None });
    assert_verifies(&key, &signer, &s::RSA_PKCS1_SHA256);
    let req = &http.requests()[0];
    assert_eq!(req.header_value("x-amz-target"), Some("TrentService.GetPublicKey"));
    assert_eq!(req.header_value("content-type"), Some("application/x-amz-json-1.1"));
    let auth = req.header_value("authorization").unwrap();
    assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"), "{auth}");
    assert!(auth.contains("/us-east-2/kms/aws4_request"), "the ARN's region is signed: {auth}");
    assert!(!auth.contains("wJalrXUtnFEMI"));
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&req.body).unwrap(), serde_json::json!({"KeyId": AWS_ARN}));
}

#[tokio::test]
async fn aws_rsa_keys_verify_pkcs1_sha256_as_cosign_signs_and_pss_only_keys_pss() {
    let signer = TestKey::rsa(aws_lc_rs::rsa::KeySize::Rsa3072);
    let all = [
        "RSASSA_PSS_SHA_256",
        "RSASSA_PSS_SHA_384",
        "RSASSA_PSS_SHA_512",
        "RSASSA_PKCS1_V1_5_SHA_256",
        "RSASSA_PKCS1_V1_5_SHA_384",
        "RSASSA_PKCS1_V1_5_SHA_512",
    ];
    let http = Arc::new(FakeHttp::default());
    http.route("POST", "https://kms.eu-west-1.amazonaws.com/", vec![Ok((200, &aws_answer(&signer, "RSA_3072", &all)))]);
    let e = env(&[("AWS_ACCESS_KEY_ID", "A"), ("AWS_SECRET_ACCESS_KEY", "S"), ("AWS_REGION", "eu-west-1")]);
    let key = resolve(&http, e, "awskms:///alias/signer").await.unwrap();
    assert_verifies(&key, &signer, &s::RSA_PKCS1_SHA256);
    assert_eq!(
        aws::signing(&["RSASSA_PSS_SHA_512".to_string()]),
        Ok(Signing { hash: Some(HashAlgorithm::Sha512), padding: Some(Padding::Pss) })
    );
    assert!(aws::signing(&["SM2DSA".to_string()]).is_err());
}

#[tokio::test]
async fn aws_endpoint_form_goes_to_that_host_over_https() {
    let signer = TestKey::ec(&s::ECDSA_P256_SHA256_ASN1_SIGNING);
    let http = Arc::new(FakeHttp::default());
    let body = aws_answer(&signer, "ECC_NIST_P256", &["ECDSA_SHA_256"]);
    http.route("POST", "https://127.0.0.1:4566/", vec![Ok((200, &body))]);
    // No region anywhere and no IMDS: a local endpoint still works.
    let e = env(&[("AWS_ACCESS_KEY_ID", "A"), ("AWS_SECRET_ACCESS_KEY", "S"), ("AWS_EC2_METADATA_DISABLED", "true")]);
    let key = resolve(&http, e, "awskms://127.0.0.1:4566/1234abcd-12ab-34cd-56ef-1234567890ab").await.unwrap();
    assert!(key.source.contains("https://127.0.0.1:4566"), "{}", key.source);
    assert_verifies(&key, &signer, &s::RSA_PKCS1_SHA256);
}

#[tokio::test]
async fn aws_irsa_exchanges_the_projected_token_at_sts() {
    let signer = TestKey::ec(&s::ECDSA_P256_SHA256_ASN1_SIGNING);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "eyJhbGciOi.projected.jwt\n").unwrap();
    let http = Arc::new(FakeHttp::default());
    let sts = "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>\
        <AccessKeyId>ASIAROLE</AccessKeyId><SecretAccessKey>rolesecret</SecretAccessKey>\
        <SessionToken>rolesession</SessionToken><Expiration>2030-01-01T00:00:00Z</Expiration>\
        </Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>";
    http.route("POST", "https://sts.us-west-2.amazonaws.com/", vec![Ok((200, sts))]);
    let body = aws_answer(&signer, "ECC_NIST_P256", &["ECDSA_SHA_256"]);
    http.route("POST", "https://kms.us-west-2.amazonaws.com/", vec![Ok((200, &body))]);
    let e = env(&[
        ("AWS_REGION", "us-west-2"),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.to_str().unwrap()),
        ("AWS_ROLE_ARN", "arn:aws:iam::111122223333:role/signet"),
    ]);
    resolve(&http, e, "awskms:///alias/signer").await.unwrap();
    let reqs = http.requests();
    let form = String::from_utf8(reqs[0].body.clone()).unwrap();
    assert!(form.contains("Action=AssumeRoleWithWebIdentity"), "{form}");
    assert!(form.contains("RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Fsignet"), "{form}");
    assert!(form.contains("WebIdentityToken=eyJhbGciOi.projected.jwt"), "{form}");
    assert_eq!(reqs[1].header_value("x-amz-security-token"), Some("rolesession"));
    assert!(reqs[1].header_value("authorization").unwrap().contains("Credential=ASIAROLE/"));
}

#[tokio::test]
async fn aws_instance_role_comes_from_imdsv2_and_throttling_is_transient() {
    let http = Arc::new(FakeHttp::default());
    http.route("PUT", &format!("{}/latest/api/token", aws::IMDS), vec![Ok((200, "imds-session"))]);
    http.route("GET", &format!("{}/latest/meta-data/placement/region", aws::IMDS), vec![Ok((200, "ap-south-1"))]);
    http.route(
        "GET",
        &format!("{}/latest/meta-data/iam/security-credentials/", aws::IMDS),
        vec![Ok((200, "node-role\n"))],
    );
    let creds = r#"{"Code":"Success","AccessKeyId":"ASIANODE","SecretAccessKey":"nodesecret","Token":"nodetoken","Expiration":"2030-01-01T00:00:00Z"}"#;
    http.route(
        "GET",
        &format!("{}/latest/meta-data/iam/security-credentials/node-role", aws::IMDS),
        vec![Ok((200, creds))],
    );
    let throttled = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;
    http.route("POST", "https://kms.ap-south-1.amazonaws.com/", vec![Ok((400, throttled))]);
    let e = resolve(&http, Env::default(), "awskms:///alias/signer").await.unwrap_err();
    assert!(e.is_transient() && e.to_string().contains("ThrottlingException"), "{e}");
    let reqs = http.requests();
    assert!(reqs
        .iter()
        .filter(|r| r.url.contains("meta-data"))
        .all(|r| r.header_value("X-aws-ec2-metadata-token") == Some("imds-session")));
    let kms = reqs.iter().find(|r| r.url.contains("kms.ap-south-1")).unwrap();
    assert_eq!(kms.header_value("x-amz-security-token"), Some("nodetoken"));
    assert!(!e.to_string().contains("nodesecret") && !e.to_string().contains("nodetoken"));
    // A missing key is the provider's answer, not an outage.
    let http = Arc::new(FakeHttp::default());
    let missing = r#"{"__type":"NotFoundException","message":"Alias arn:aws:kms:... is not found."}"#;
    http.route("POST", "https://kms.eu-west-1.amazonaws.com/", vec![Ok((400, missing))]);
    let e = env(&[("AWS_ACCESS_KEY_ID", "A"), ("AWS_SECRET_ACCESS_KEY", "S"), ("AWS_REGION", "eu-west-1")]);
    let err = resolve(&http, e, "awskms:///alias/signer").await.unwrap_err();
    assert!(!err.is_transient() && err.to_string().contains("NotFoundException"), "{err}");
}

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn azure_token(http: &FakeHttp) {
    http.route(
        "GET",
        azure::TOKEN_URL,
        vec![Ok((200, r#"{"access_token":"eyAzure","expires_in":"3599","token_type":"Bearer"}"#))],
    );
}

#[tokio::test]
async fn azure_key_vault_jwk_becomes_the_same_public_key() {
    // EC: the JWK's coordinates are the SubjectPublicKeyInfo's point.
    let ec = TestKey::ec(&s::ECDSA_P256_SHA256_ASN1_SIGNING);
    let point = &ec.spki()[26..];
    let jwk = serde_json::json!({"key": {
        "kid": "https://myvault.vault.azure.net/keys/signer/0123abcd", "kty": "EC-HSM", "crv": "P-256",
        "x": b64url(&point[1..33]), "y": b64url(&point[33..]), "key_ops": ["sign", "verify"]},
        "attributes": {"enabled": true}})
    .to_string();
    let http = Arc::new(FakeHttp::default());
    azure_token(&http);
    http.route("GET", "https://myvault.vault.azure.net/keys/signer/0123abcd?api-version=7.4", vec![Ok((200, &jwk))]);
    let key = resolve(&http, Env::default(), "azurekms://myvault.vault.azure.net/signer/0123abcd").await.unwrap();
    assert_eq!(key.pem, ec.pem());
    assert_eq!(key.version, "https://myvault.vault.azure.net/keys/signer/0123abcd");
    assert_verifies(&key, &ec, &s::RSA_PKCS1_SHA256);
    let reqs = http.requests();
    assert_eq!(reqs[0].header_value("Metadata"), Some("true"));
    assert_eq!(reqs[1].header_value("Authorization"), Some("Bearer eyAzure"));

    // RSA: modulus and exponent re-encoded as the same DER.
    let rsa = TestKey::rsa(aws_lc_rs::rsa::KeySize::Rsa2048);
    let TestKey::Rsa(pair) = &rsa else { unreachable!() };
    let components: aws_lc_rs::signature::RsaPublicKeyComponents<Vec<u8>> = pair.public_key().into();
    let jwk = serde_json::json!({"key": {
        "kid": "https://myvault.vault.azure.net/keys/rsa/1", "kty": "RSA",
        "n": b64url(&components.n), "e": b64url(&components.e)}})
    .to_string();
    let http = Arc::new(FakeHttp::default());
    azure_token(&http);
    http.route("GET", "https://myvault.vault.azure.net/keys/rsa?api-version=7.4", vec![Ok((200, &jwk))]);
    let key = resolve(&http, Env::default(), "azurekms://myvault.vault.azure.net/rsa").await.unwrap();
    assert_eq!(key.pem, rsa.pem());
    assert_verifies(&key, &rsa, &s::RSA_PKCS1_SHA256);
}

#[tokio::test]
async fn azure_throttling_is_transient_and_a_disabled_key_is_refused() {
    let uri = "azurekms://myvault.vault.azure.net/signer";
    let url = "https://myvault.vault.azure.net/keys/signer?api-version=7.4";
    let http = Arc::new(FakeHttp::default());
    azure_token(&http);
    http.route("GET", url, vec![Ok((429, r#"{"error":{"code":"Throttled","message":"Too many requests"}}"#))]);
    assert!(resolve(&http, Env::default(), uri).await.unwrap_err().is_transient());
    let http = Arc::new(FakeHttp::default());
    azure_token(&http);
    let disabled = r#"{"key":{"kid":"k","kty":"EC","crv":"P-256","x":"AA","y":"AA"},"attributes":{"enabled":false}}"#;
    http.route("GET", url, vec![Ok((200, disabled))]);
    let e = resolve(&http, Env::default(), uri).await.unwrap_err();
    assert!(!e.is_transient() && e.to_string().contains("disabled"), "{e}");
    // No IMDS (not on Azure): credentials, retried later.
    let e = resolve(&Arc::new(FakeHttp::default()), Env::default(), uri).await.unwrap_err();
    assert!(matches!(e, KmsError::Credentials { .. }), "{e}");
}

#[tokio::test]
async fn vault_transit_serves_the_latest_versions_key_to_the_token() {
    let old = TestKey::ec(&s::ECDSA_P256_SHA256_ASN1_SIGNING);
    let new = TestKey::ec(&s::ECDSA_P256_SHA256_ASN1_SIGNING);
    let body = serde_json::json!({"data": {
        "name": "signer", "type": "ecdsa-p256", "latest_version": 2, "min_decryption_version": 1,
        "keys": {"1": {"public_key": old.pem(), "creation_time": "2024-01-01T00:00:00Z"},
                 "2": {"public_key": new.pem(), "creation_time": "2025-01-01T00:00:00Z"}}}})
    .to_string();
    let http = Arc::new(FakeHttp::default());
    http.route("GET", "https://vault.example:8200/v1/transit/keys/signer", vec![Ok((200, &body))]);
    let e = env(&[("VAULT_ADDR", "https://vault.example:8200/"), ("VAULT_TOKEN", "hvs.secret")]);
    let key = resolve(&http, e, "hashivault://signer").await.unwrap();
    assert_eq!(key.version, "signer v2");
    assert_verifies(&key, &new, &s::RSA_PKCS1_SHA256);
    assert_eq!(http.requests()[0].header_value("X-Vault-Token"), Some("hvs.secret"));

    // A token file and another mount; a denied token is refused, a sealed Vault is transient.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t"), "hvs.fromfile\n").unwrap();
    let http = Arc::new(FakeHttp::default());
    http.route("GET", "http://v:8200/v1/signing/keys/signer", vec![Ok((403, r#"{"errors":["permission denied"]}"#))]);
    let e = env(&[
        ("VAULT_ADDR", "http://v:8200"),
        ("VAULT_TOKEN_FILE", dir.path().join("t").to_str().unwrap()),
        ("TRANSIT_SECRET_ENGINE_PATH", "signing"),
    ]);
    let err = resolve(&http, e.clone(), "hashivault://signer").await.unwrap_err();
    assert!(!err.is_transient() && err.to_string().contains("permission denied"), "{err}");
    assert_eq!(http.requests()[0].header_value("X-Vault-Token"), Some("hvs.fromfile"));
    let http = Arc::new(FakeHttp::default());
    http.route("GET", "http://v:8200/v1/signing/keys/signer", vec![Ok((503, r#"{"errors":["Vault is sealed"]}"#))]);
    assert!(resolve(&http, e.clone(), "hashivault://signer").await.unwrap_err().is_transient());
    let down = resolve(&Arc::new(FakeHttp::default()), e, "hashivault://signer").await.unwrap_err();
    assert!(matches!(down, KmsError::Unavailable { .. }), "{down}");
    assert!(!down.to_string().contains("hvs."), "{down}");
}

/// A policy must not be able to send the node's credentials to a host of its choosing.
#[tokio::test]
async fn credentials_go_only_to_the_providers_own_hosts() {
    let http = Arc::new(FakeHttp::default());
    azure_token(&http);
    let e = resolve(&http, Env::default(), "azurekms://attacker.example.com/signer").await.unwrap_err();
    assert!(!e.is_transient() && e.to_string().contains("not an Azure Key Vault host"), "{e}");
    let aws = env(&[("AWS_ACCESS_KEY_ID", "A"), ("AWS_SECRET_ACCESS_KEY", "S"), ("AWS_SESSION_TOKEN", "T")]);
    let e = resolve(&http, aws.clone(), "awskms://attacker.example.com:443/alias/signer").await.unwrap_err();
    assert!(e.to_string().contains("neither an AWS domain nor loopback"), "{e}");
    assert!(http.requests().is_empty(), "nothing was sent: {:?}", http.requests());
    // VPC endpoints and loopback are fine.
    let signer = TestKey::ec(&s::ECDSA_P256_SHA256_ASN1_SIGNING);
    let body = aws_answer(&signer, "ECC_NIST_P256", &["ECDSA_SHA_256"]);
    let vpce = "vpce-0123-abcd.kms.us-east-1.vpce.amazonaws.com";
    http.route("POST", &format!("https://{vpce}/"), vec![Ok((200, &body))]);
    let aws = env(&[("AWS_ACCESS_KEY_ID", "A"), ("AWS_SECRET_ACCESS_KEY", "S"), ("AWS_REGION", "us-east-1")]);
    resolve(&http, aws, &format!("awskms://{vpce}/alias/signer")).await.unwrap();
}

/// From the provider's answer to the decision: a GCP RSA-PSS key, inlined as the sync does,
/// compiles into an authority whose verification accepts cosign's PSS signature over the
/// payload for this digest, and nothing signed with PKCS#1 v1.5 by the same key.
#[tokio::test]
async fn a_pss_kms_key_decides_signatures_end_to_end() {
    use crate::policy::compile::{compile, FilesOnly};
    use crate::policy::normal::{Check, KeyCheck, KeyRef, KmsKey, NormalAuthority};
    use crate::registry::{SignatureLayer, Signatures};
    use crate::verify::{trust::TrustRoot, verify_signatures, Context};
    let signer = TestKey::rsa(aws_lc_rs::rsa::KeySize::Rsa4096);
    let http = Arc::new(FakeHttp::default());
    gcp_token(&http);
    let body = serde_json::json!({"pem": signer.pem(), "algorithm": "RSA_SIGN_PSS_4096_SHA512"}).to_string();
    http.route("GET", &format!("{}/{GCP_KEY}/cryptoKeyVersions/2/publicKey", gcp::API), vec![Ok((200, &body))]);
    let uri = format!("gcpkms://{GCP_KEY}/cryptoKeyVersions/2");
    let resolved = resolve(&http, Env::default(), &uri).await.unwrap();
    let policy = crate::testutil::normal_policy(
        "p",
        "reg.io/**",
        vec![NormalAuthority::new(
            "kms",
            Check::Key(KeyCheck::new(KeyRef::Kms(KmsKey { uri, resolved: Some(resolved) }), None)),
        )],
    );
    let compiled = compile(&policy, &FilesOnly(std::path::Path::new("/"))).unwrap();
    let crate::policy::AuthorityKind::Signed(by) = &compiled.policy.requirements[0].authorities[0].kind else {
        panic!("{:?}", compiled.policy)
    };
    let digest = format!("sha256:{}", "ab".repeat(32));
    let payload = crate::testutil::payload("reg.io/app", &digest, "cosign container image signature");
    let layer = |enc: &'static dyn s::RsaEncoding| Signatures {
        location: "test".into(),
        layers: vec![SignatureLayer {
            payload: payload.clone().into_bytes(),
            signature: base64::engine::general_purpose::STANDARD.encode(signer.sign(payload.as_bytes(), enc)),
            ..Default::default()
        }],
    };
    let trust = TrustRoot::empty();
    let cx = Context { trust: &trust, now: 0 };
    verify_signatures(&layer(&s::RSA_PSS_SHA512), &digest, by, cx).expect("PSS/SHA-512 as the key's algorithm says");
    assert!(verify_signatures(&layer(&s::RSA_PKCS1_SHA512), &digest, by, cx).is_err(), "PKCS#1 v1.5 is not this key's");
    assert!(verify_signatures(&layer(&s::RSA_PSS_SHA256), &digest, by, cx).is_err(), "nor is SHA-256");
}
