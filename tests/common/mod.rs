//! Shared by the tests that serve what real signers wrote (`tests/cosign3_vectors.rs`,
//! `tests/timestamp_vectors.rs`): a plain-HTTP registry on loopback that answers exactly the
//! objects it is given, byte for byte, and 404 for everything else (as distribution 2.8 answers
//! the `.sig` tag of an image signed only with bundles, and the referrers API it lacks).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

/// The registry's objects: request path -> (Content-Type, body).
pub type Objects = HashMap<String, (&'static str, Vec<u8>)>;

pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

pub fn sha256(b: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
}

/// Serves `objects` until the test process ends; returns its `host:port`.
pub fn serve(objects: Objects) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let objects = Arc::new(objects);
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let objects = Arc::clone(&objects);
            std::thread::spawn(move || answer(conn, &objects));
        }
    });
    host
}

fn answer(conn: TcpStream, objects: &Objects) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
        let mut body_len = 0;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h.trim().is_empty() {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                body_len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut skip = vec![0; body_len];
        let _ = reader.read_exact(&mut skip);
        let (status, ctype, body) = match (path.as_str(), objects.get(&path)) {
            ("/v2/", _) => ("200 OK", "application/json", b"{}".to_vec()),
            (_, Some((ctype, body))) => ("200 OK", *ctype, body.clone()),
            _ => ("404 Not Found", "application/json", br#"{"errors":[{"code":"MANIFEST_UNKNOWN"}]}"#.to_vec()),
        };
        let head = format!("HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n", body.len());
        if conn.write_all(head.as_bytes()).and_then(|_| conn.write_all(&body)).is_err() {
            return;
        }
    }
}
