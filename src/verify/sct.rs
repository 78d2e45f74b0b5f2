//! Certificate transparency: the SCT a CT log embeds in a Fulcio certificate (RFC 6962).
//!
//! An SCT is the log's signature over the *precertificate*: the certificate's TBS without
//! the SCT list extension, bound to the issuer's key. Verifying it with a trusted CT log key
//! proves the certificate was publicly logged when it was issued, so a CA that issues a
//! certificate on the quiet is caught. Only embedded SCTs (v1, precert entries) exist in
//! Fulcio certificates; that is all this checks.

use sha2::{Digest, Sha256};
use sigstore::crypto::Signature;
use x509_cert::der::asn1::AnyRef;
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::{Decode, Encode, Reader, SliceReader, Tag, TagNumber, Tagged};
use x509_cert::ext::pkix::sct::SignedCertificateTimestampList;
use x509_cert::ext::Extension;

use super::trust::LogKey;

/// id-ce-embeddedSCTList.
const SCT_LIST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.2");

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, thiserror::Error)]
pub enum SctError {
    #[error("the certificate has no embedded SCT (certificate transparency proof)")]
    Missing,
    #[error("the certificate's SCT is unreadable: {0}")]
    Malformed(String),
    #[error("no trusted CT log key is configured to check the certificate's SCT (node trust_root ctlogs)")]
    NoLogs,
    #[error("the certificate's SCTs are from untrusted CT logs ({0})")]
    UnknownLog(String),
    #[error("the certificate's SCT does not verify with CT log {0}'s key")]
    BadSignature(String),
    #[error("the certificate's SCT is dated outside the validity of CT log {0}'s key in the trust root")]
    KeyNotValid(String),
}

/// Does one SCT embedded in `leaf` (DER) verify with one of `logs`? `issuers` are candidate
/// issuer certificates (DER); the one that signed the leaf is the one whose key the SCT names.
pub fn verify(leaf: &[u8], issuers: &[&[u8]], logs: &[LogKey]) -> Result<(), SctError> {
    let malformed = |e: String| SctError::Malformed(e);
    let cert = x509_cert::Certificate::from_der(leaf).map_err(|e| malformed(e.to_string()))?;
    let ext = cert
        .tbs_certificate()
        .extensions()
        .and_then(|exts| exts.iter().find(|e| e.extn_id == SCT_LIST))
        .ok_or(SctError::Missing)?;
    if logs.is_empty() {
        return Err(SctError::NoLogs);
    }
    let list =
        SignedCertificateTimestampList::from_der(ext.extn_value.as_bytes()).map_err(|e| malformed(e.to_string()))?;
    let scts = list.parse_timestamps().map_err(|e| malformed(format!("{e:?}")))?;
    let tbs = precert_tbs(&cert).map_err(|e| malformed(e.to_string()))?;
    let issuer_name = cert.tbs_certificate().issuer().to_der().map_err(|e| malformed(e.to_string()))?;
    let issuer_keys: Vec<[u8; 32]> = issuers
        .iter()
        .filter_map(|der| x509_cert::Certificate::from_der(der).ok())
        .filter(|c| c.tbs_certificate().subject().to_der().ok().as_deref() == Some(issuer_name.as_slice()))
        .filter_map(|c| c.tbs_certificate().subject_public_key_info().to_der().ok())
        .map(|spki| Sha256::digest(spki).into())
        .collect();
    let mut failure = None;
    for serialized in scts {
        let sct = serialized.parse_timestamp().map_err(|e| malformed(format!("{e:?}")))?;
        let id = hex::encode(sct.log_id.key_id);
        let Some(log) = logs.iter().find(|l| l.id == id) else {
            failure.get_or_insert(SctError::UnknownLog(id[..16].to_string()));
            continue;
        };
        // SCT timestamps are milliseconds.
        if !log.valid.contains((sct.timestamp / 1000) as i64) {
            failure.get_or_insert(SctError::KeyNotValid(id[..16].to_string()));
            continue;
        }
        let signature = sct.signature.signature.as_slice();
        let verified = issuer_keys.iter().any(|issuer_key| {
            let data = signed_data(sct.timestamp, sct.extensions.as_slice(), issuer_key, &tbs);
            log.key.verify_signature(Signature::Raw(signature), &data).is_ok()
        });
        if verified {
            return Ok(());
        }
        failure = Some(SctError::BadSignature(id[..16].to_string()));
    }
    Err(failure.unwrap_or(SctError::Missing))
}

/// RFC 6962 §3.2 `digitally-signed` content for a v1 precert entry.
fn signed_data(timestamp: u64, extensions: &[u8], issuer_key: &[u8; 32], tbs: &[u8]) -> Vec<u8> {
    let mut d = vec![0u8, 0u8]; // v1, certificate_timestamp
    d.extend_from_slice(&timestamp.to_be_bytes());
    d.extend_from_slice(&1u16.to_be_bytes()); // precert_entry
    d.extend_from_slice(issuer_key);
    d.extend_from_slice(&(tbs.len() as u32).to_be_bytes()[1..]); // uint24 length
    d.extend_from_slice(tbs);
    d.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    d.extend_from_slice(extensions);
    d
}

/// The certificate's TBS with the SCT list extension taken out, re-encoded.
fn precert_tbs(cert: &x509_cert::Certificate) -> x509_cert::der::Result<Vec<u8>> {
    let tbs_der = cert.tbs_certificate().to_der()?;
    let tbs = AnyRef::from_der(&tbs_der)?;
    let mut reader = SliceReader::new(tbs.value())?;
    let mut body = Vec::new();
    let extensions_tag = Tag::ContextSpecific { constructed: true, number: TagNumber(3) };
    while !reader.is_finished() {
        let element: AnyRef<'_> = reader.decode()?;
        if element.tag() == extensions_tag {
            let exts = Vec::<Extension>::from_der(element.value())?;
            let kept: Vec<Extension> = exts.into_iter().filter(|e| e.extn_id != SCT_LIST).collect();
            body.extend(tlv(0xa3, &kept.to_der()?));
        } else {
            body.extend(element.to_der()?);
        }
    }
    Ok(tlv(0x30, &body))
}

/// DER tag-length-value with a definite length.
fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::vector;

    fn der(name: &str) -> Vec<u8> {
        pem::parse(vector(name)).unwrap().into_contents()
    }

    fn ctlog(name: &str) -> LogKey {
        LogKey::from_pem(&vector(name)).unwrap()
    }

    #[test]
    fn the_embedded_sct_of_a_cosign_accepted_certificate_verifies() {
        let inter = der("inter.pem");
        verify(&der("leaf-sct.pem"), &[&inter], &[ctlog("ctlog.pub")]).unwrap();
    }

    #[test]
    fn wrong_log_wrong_issuer_or_no_sct_fail() {
        let (leaf, inter) = (der("leaf-sct.pem"), der("inter.pem"));
        assert!(matches!(verify(&leaf, &[&inter], &[ctlog("rekor.pub")]), Err(SctError::UnknownLog(_))));
        assert_eq!(verify(&leaf, &[&inter], &[]), Err(SctError::NoLogs));
        // The SCT is bound to the issuer's key: an unrelated issuer cannot stand in.
        let other = der("other-root.pem");
        assert!(matches!(verify(&leaf, &[&other], &[ctlog("ctlog.pub")]), Err(SctError::BadSignature(_))));
        assert_eq!(verify(&der("leaf-email.pem"), &[&inter], &[ctlog("ctlog.pub")]), Err(SctError::Missing));
        // A CT log key retired before the SCT was issued (trusted_root.json validFor).
        let mut retired = ctlog("ctlog.pub");
        retired.valid = crate::verify::trust::Validity { start: None, end: Some(946_684_800) };
        assert!(matches!(verify(&leaf, &[&inter], &[retired]), Err(SctError::KeyNotValid(_))));
    }

    #[test]
    fn der_lengths() {
        assert_eq!(tlv(0x30, &[1, 2]), [0x30, 2, 1, 2]);
        let long = tlv(0x04, &[0u8; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
    }
}
