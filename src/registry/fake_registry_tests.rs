//! The registry client against scripted registries on loopback: credentials, mirrors in
//! containerd's order, and what "not found" means when several hosts are asked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::testutil::TestSigner;

const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

#[derive(Default)]
struct Registry {
    /// path -> (content type, body)
    objects: HashMap<String, (String, Vec<u8>)>,
    /// Required `Authorization` header value.
    auth: Option<String>,
    requests: Vec<String>,
}

struct Fake {
    host: String,
    state: Arc<Mutex<Registry>>,
}

impl Fake {
    async fn start(auth: Option<(&str, &str)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let state = Arc::new(Mutex::new(Registry {
            auth: auth.map(|(u, p)| {
                format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")))
            }),
            ..Default::default()
        }));
        let s = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, Arc::clone(&s)));
            }
        });
        Fake { host, state }
    }

    /// A `.sig` manifest for `repo` at DIGEST with one signed layer.
    fn add_signature(&self, repo: &str, signer: &TestSigner) {
        let layer = signer.sign_digest(repo, DIGEST);
        let blob = format!("sha256:{}", hex::encode(Sha256::digest(&layer.payload)));
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob, "size": layer.payload.len()},
            "layers": [{"mediaType": SIGNATURE_MEDIA_TYPE, "digest": blob, "size": layer.payload.len(),
                        "annotations": {SIGNATURE_ANNOTATION: layer.signature}}]});
        let mut s = self.state.lock().unwrap();
        let tag = format!("sha256-{}.sig", DIGEST.trim_start_matches("sha256:"));
        s.objects.insert(
            format!("/v2/{repo}/manifests/{tag}"),
            ("application/vnd.oci.image.manifest.v1+json".into(), manifest.to_string().into_bytes()),
        );
        s.objects.insert(format!("/v2/{repo}/blobs/{blob}"), ("application/octet-stream".into(), layer.payload));
    }
}

async fn serve(conn: TcpStream, state: Arc<Mutex<Registry>>) {
    let mut reader = BufReader::new(conn);
    while let Some(request) = crate::testutil::read_request(&mut reader).await {
        let (target, authorization) = (request.target, request.headers.get("authorization").cloned());
        let path = target.split('?').next().unwrap_or("").to_string();
        let (code, extra, ctype, body) = {
            let mut s = state.lock().unwrap();
            s.requests.push(path.clone());
            if s.auth.is_some() && authorization != s.auth {
                (401, "www-authenticate: Basic realm=\"fake\"\r\n", "application/json".to_string(), b"{}".to_vec())
            } else if path == "/v2/" {
                (200, "", "application/json".to_string(), b"{}".to_vec())
            } else if let Some((t, b)) = s.objects.get(&path) {
                (200, "", t.clone(), b.clone())
            } else {
                let e = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
                (404, "", "application/json".to_string(), e.to_vec())
            }
        };
        let head =
            format!("HTTP/1.1 {code} X\r\n{extra}content-type: {ctype}\r\ncontent-length: {}\r\n\r\n", body.len());
        let conn = reader.get_mut();
        if conn.write_all(head.as_bytes()).await.is_err() || conn.write_all(&body).await.is_err() {
            return;
        }
    }
}

fn source(access: Access) -> OciSignatureSource {
    OciSignatureSource::new(access, Limits::default(), Duration::from_secs(5))
}

fn plain(hosts: &[&str]) -> Vec<String> {
    hosts.iter().map(|h| h.to_string()).collect()
}

#[tokio::test]
async fn credentials_from_a_docker_config_open_a_private_registry() {
    let reg = Fake::start(Some(("robot", "s3cret"))).await;
    let signer = TestSigner::new(1);
    reg.add_signature("team/app", &signer);
    let image: Reference = format!("{}/team/app:v1", reg.host).parse().unwrap();

    let anonymous = source(Access { insecure: plain(&[&reg.host]), ..Default::default() });
    let err = anonymous.signatures(&image, DIGEST, Artifact::Signatures).await.unwrap_err();
    assert!(matches!(err, RegistryError::Request { .. }), "{err}");
    assert!(!err.to_string().contains("s3cret"));

    let mut credentials = auth::Credentials::default();
    let b64 = base64::engine::general_purpose::STANDARD.encode("robot:s3cret");
    credentials
        .add_config(format!(r#"{{"auths": {{"{}": {{"auth": "{b64}"}}}}}}"#, reg.host).as_bytes(), "test")
        .unwrap();
    let authed = source(Access { insecure: plain(&[&reg.host]), credentials, ..Default::default() });
    let sigs = authed.signatures(&image, DIGEST, Artifact::Signatures).await.unwrap();
    assert_eq!(sigs.layers.len(), 1);
    assert_eq!(
        crate::verify::verify_signatures(
            &sigs,
            DIGEST,
            &crate::policy::SignedBy::new(crate::policy::Signer::Key(signer.trusted()), crate::policy::Tlog::Ignore),
            crate::verify::Context { trust: &crate::verify::trust::TrustRoot::empty(), now: 0 }
        ),
        Ok(())
    );
}

fn mirrors(registry: &str, hosts: &[&str]) -> (tempfile::TempDir, hosts::Mirrors) {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join(registry.replace(':', "_"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut text = format!("server = \"https://{registry}\"\n");
    for h in hosts {
        text.push_str(&format!("[host.\"http://{h}\"]\ncapabilities = [\"pull\", \"resolve\"]\n"));
    }
    std::fs::write(dir.join("hosts.toml"), text).unwrap();
    let m = hosts::Mirrors::load(d.path()).unwrap();
    (d, m)
}

#[tokio::test]
async fn mirrors_are_tried_in_order_and_not_found_needs_every_host() {
    let (empty, full) = (Fake::start(None).await, Fake::start(None).await);
    full.add_signature("team/app", &TestSigner::new(1));
    // The origin's name does not resolve: only the mirrors can answer.
    let image: Reference = "origin.invalid/team/app:v1".parse().unwrap();

    let (_d, m) = mirrors("origin.invalid", &[&empty.host, &full.host]);
    let found = source(Access { mirrors: m, ..Default::default() })
        .signatures(&image, DIGEST, Artifact::Signatures)
        .await
        .unwrap();
    assert_eq!(found.layers.len(), 1, "the second mirror has it");
    assert_eq!(found.location, format!("origin.invalid/team/app:sha256-{}.sig", &DIGEST[7..]));
    assert!(empty.state.lock().unwrap().requests.iter().any(|r| r.contains("/manifests/")), "first mirror asked first");

    // One mirror says "not found", the origin cannot be reached: a registry error, not unsigned.
    let (_d, m) = mirrors("origin.invalid", &[&empty.host]);
    let err = source(Access { mirrors: m, ..Default::default() })
        .signatures(&image, DIGEST, Artifact::Signatures)
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&format!("not found at {}", empty.host)), "{err}");
}
