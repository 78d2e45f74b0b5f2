//! AWS KMS through signet's own path against a real KMS API: moto's server mode.
//!
//! `integration/kms-moto.sh` installs moto in a venv under target/, serves it over https
//! on loopback, creates an ECC_NIST_P256 SIGN_VERIFY key, signs a payload with cosign
//! (`sign-blob --key awskms://127.0.0.1:PORT/KEYID`), and runs this test with:
//!
//! - `SIGNET_MOTO_ENDPOINT` (`127.0.0.1:PORT`), `SIGNET_MOTO_KEY_ID`, `AWS_CA_BUNDLE`
//! - optionally `SIGNET_MOTO_COSIGN_PAYLOAD` and `SIGNET_MOTO_COSIGN_SIG` (files)
//!
//! Without them the test says so and passes: plain `cargo test` needs no moto.

use std::sync::Arc;

use base64::Engine as _;
use signet::kms::http::{Http, Request, ReqwestHttp};
use signet::kms::sigv4::{self, Credentials, Signable};
use signet::kms::{Env, Providers, Resolver};
use signet::policy::normal::NormalPolicy;
use signet::policy::{AuthorityKind, Signer};
use signet::registry::{Form, SignatureLayer, Signatures};
use signet::verify::trust::TrustRoot;
use signet::verify::{verify_signatures, Context};

const DIGEST: &str = "sha256:4a5b1e2c7d3f9a8b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b";

fn payload() -> String {
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"registry.example.com/app"}},"image":{{"docker-manifest-digest":"{DIGEST}"}},"type":"cosign container image signature"}},"optional":null}}"#
    )
}

/// moto's Sign API, called the way signet calls GetPublicKey (SigV4 over reqwest).
async fn moto_sign(http: &ReqwestHttp, endpoint: &str, key_id: &str, message: &[u8]) -> String {
    let body = serde_json::json!({
        "KeyId": key_id,
        "Message": base64::engine::general_purpose::STANDARD.encode(message),
        "MessageType": "RAW",
        "SigningAlgorithm": "ECDSA_SHA_256",
    })
    .to_string();
    let creds =
        Credentials { access_key_id: "testing".into(), secret_access_key: "testing".into(), session_token: None };
    let signable = Signable {
        method: "POST",
        host: endpoint,
        path: "/",
        query: "",
        headers: &[("content-type", "application/x-amz-json-1.1"), ("x-amz-target", "TrentService.Sign")],
        body: body.as_bytes(),
    };
    let headers = sigv4::sign(&signable, &creds, "us-east-1", "kms", "20260101T000000Z");
    let req = Request {
        method: "POST",
        url: format!("https://{endpoint}/"),
        headers: headers.into_iter().filter(|(n, _)| n != "host").collect(),
        body: body.into_bytes(),
    };
    let resp = http.send(req).await.expect("moto answers");
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    v["Signature"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_moto_kms_key_resolves_through_the_aws_path_and_verifies_its_signatures() {
    let (Ok(endpoint), Ok(key_id)) = (std::env::var("SIGNET_MOTO_ENDPOINT"), std::env::var("SIGNET_MOTO_KEY_ID"))
    else {
        eprintln!("skipped: SIGNET_MOTO_ENDPOINT/SIGNET_MOTO_KEY_ID not set (run integration/kms-moto.sh)");
        return;
    };
    let uri = format!("awskms://{endpoint}/{key_id}");
    let http = Arc::new(ReqwestHttp::from_env().expect("AWS_CA_BUNDLE readable"));
    let env = Env {
        vars: [("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_REGION", "us-east-1")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let providers = Providers::new(Arc::clone(&http) as Arc<dyn Http>, env);
    let held = signet::held::Held::new(
        Resolver::new(Some(Arc::new(providers)), Default::default(), None),
        signet::tuf::Store::offline(),
    );
    let resolver = &held.kms;

    // A policy as the field writes it, loaded the way the daemon loads local policy.
    let dir = tempfile::tempdir().unwrap();
    let policy = format!(
        "apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata: {{name: moto}}\nspec:\n  \
         images: [{{glob: \"registry.example.com/**\"}}]\n  authorities: [{{key: {{kms: \"{uri}\"}}}}]\n"
    );
    std::fs::write(dir.path().join("p.yaml"), policy).unwrap();
    let before = signet::policy::local::load_dir_with(dir.path(), &held).unwrap();
    assert!(before.warnings[0].contains("not resolved"), "{:?}", before.warnings);
    assert!(resolver.refresh(NormalPolicy::kms_uris(&before.normal)).await);
    let loaded = signet::policy::local::load_dir_with(dir.path(), &held).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let resolved = resolver.lookup(&uri).unwrap();
    assert!(resolved.source.contains(&endpoint), "{}", resolved.source);
    println!("resolved {uri}:\n{}", resolved.pem);
    if let Ok(path) = std::env::var("SIGNET_MOTO_COSIGN_PUBLIC_KEY") {
        let cosign = std::fs::read_to_string(path).unwrap();
        assert_eq!(cosign.trim(), resolved.pem.trim(), "signet resolves the key cosign prints");
    }

    let AuthorityKind::Signed(by) = &loaded.policies[0].requirements[0].authorities[0].kind else {
        panic!("{:?}", loaded.policies[0])
    };
    assert!(matches!(by.signer, Signer::Key(_)));
    let trust = TrustRoot::empty();
    let cx = Context { trust: &trust, now: 0 };
    let layer = |payload: Vec<u8>, signature: String| Signatures {
        location: "moto".into(),
        layers: vec![SignatureLayer { payload, form: Form::Detached, signature, ..Default::default() }],
    };

    let signature = moto_sign(&http, &endpoint, &key_id, payload().as_bytes()).await;
    verify_signatures(&layer(payload().into_bytes(), signature.clone()), DIGEST, by, cx)
        .expect("moto's signature verifies under the resolved key");
    let other = DIGEST.replace("4a5b", "0000");
    assert!(verify_signatures(&layer(payload().into_bytes(), signature), &other, by, cx).is_err());

    // cosign sends GetPublicKey's key a SHA-256 digest (Sign with MessageType=DIGEST);
    // moto 5.2.5 does not implement DIGEST and hashes it again, so what cosign gets back is
    // a signature over SHA-256(SHA-256(payload)), which no verifier that hashes the payload
    // once accepts (AWS itself signs the digest as given). signet must refuse it, and it
    // must be exactly that double hash, so the refusal is moto's doing, not signet's.
    if let (Ok(p), Ok(s)) = (std::env::var("SIGNET_MOTO_COSIGN_PAYLOAD"), std::env::var("SIGNET_MOTO_COSIGN_SIG")) {
        use sha2::Digest;
        let payload = std::fs::read(p).unwrap();
        let sig = std::fs::read_to_string(s).unwrap().trim().to_string();
        assert!(verify_signatures(&layer(payload.clone(), sig.clone()), DIGEST, by, cx).is_err());
        let Signer::Key(key) = &by.signer else { unreachable!() };
        let once = sha2::Sha256::digest(&payload);
        key.key
            .verify_signature(sigstore::crypto::Signature::Base64Encoded(sig.as_bytes()), &once)
            .expect("cosign's signature through moto is over the digest hashed again");
        println!("cosign sign-blob --key {uri}: signed SHA-256(digest) (moto ignores MessageType=DIGEST); refused");
    }
}
