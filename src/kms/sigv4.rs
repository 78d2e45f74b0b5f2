//! AWS Signature Version 4 for the few requests the node makes (KMS GetPublicKey).
//!
//! Written here rather than taken from `aws-sigv4`: that crate brings the smithy runtime
//! (a large build on every node image) for what is, for one POST with a JSON body, a
//! canonical request and four HMACs. It is checked against AWS's published example.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Credentials for signing; never logged (no `Debug`).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

/// What is signed: method, host, path, (already canonical) query, headers, body.
pub struct Signable<'a> {
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    /// Besides `host` and `x-amz-date`, which are added.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// The headers to send: the caller's, plus `host`, `x-amz-date`, the session token if any,
/// and `authorization`. `amz_date` is `YYYYMMDDTHHMMSSZ` (UTC).
pub fn sign(
    req: &Signable<'_>,
    creds: &Credentials,
    region: &str,
    service: &str,
    amz_date: &str,
) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> =
        req.headers.iter().map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_string())).collect();
    headers.push(("host".into(), req.host.into()));
    headers.push(("x-amz-date".into(), amz_date.into()));
    if let Some(t) = &creds.session_token {
        headers.push(("x-amz-security-token".into(), t.clone()));
    }
    headers.sort();
    let signed: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    let signed = signed.join(";");
    let canonical_headers: String = headers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let canonical = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        req.path,
        req.query,
        canonical_headers,
        signed,
        hex::encode(Sha256::digest(req.body))
    );
    let date = &amz_date[..8];
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", hex::encode(Sha256::digest(canonical)));
    let k = hmac(format!("AWS4{}", creds.secret_access_key).as_bytes(), date.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, service.as_bytes());
    let k = hmac(&k, b"aws4_request");
    let signature = hex::encode(hmac(&k, to_sign.as_bytes()));
    headers.push((
        "authorization".into(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
            creds.access_key_id
        ),
    ));
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's worked example (IAM ListUsers, 2015-08-30, the documentation's example key).
    #[test]
    fn matches_the_published_example() {
        let creds = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        };
        let req = Signable {
            method: "GET",
            host: "iam.amazonaws.com",
            path: "/",
            query: "Action=ListUsers&Version=2010-05-08",
            headers: &[("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")],
            body: b"",
        };
        let headers = sign(&req, &creds, "us-east-1", "iam", "20150830T123600Z");
        let auth = &headers.iter().find(|(n, _)| n == "authorization").unwrap().1;
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    #[test]
    fn a_session_token_is_signed_and_sent() {
        let creds = Credentials {
            access_key_id: "AKID".into(),
            secret_access_key: "secret".into(),
            session_token: Some("tok".into()),
        };
        let req = Signable { method: "POST", host: "h", path: "/", query: "", headers: &[], body: b"{}" };
        let headers = sign(&req, &creds, "r", "kms", "20260101T000000Z");
        assert!(headers.contains(&("x-amz-security-token".into(), "tok".into())));
        let auth = &headers.iter().find(|(n, _)| n == "authorization").unwrap().1;
        assert!(auth.contains("SignedHeaders=host;x-amz-date;x-amz-security-token"), "{auth}");
    }
}
