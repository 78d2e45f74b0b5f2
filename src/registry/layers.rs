//! Manifests read into signature layers: cosign's `.sig` and `.att` manifests, Sigstore
//! bundles among the referrers, notation's JWS signatures; each within the limits, each
//! layer with the annotations that carry its signature and certificates.

use super::manifest::{Descriptor, Manifest};
use super::{
    Artifact, Form, Limits, RegistryError, SignatureLayer, Stamped, Timestamps, BUNDLE_ANNOTATION,
    CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, MAX_TIMESTAMPS, NOTARY_COSE_MEDIA_TYPE, NOTARY_JWS_MEDIA_TYPE,
    NOTARY_SIGNATURE_ARTIFACT_TYPE, SIGNATURE_ANNOTATION, SIGSTORE_BUNDLE_MEDIA_TYPE, TIMESTAMP_ANNOTATION,
};

/// The signature layers of a `.sig` manifest, with their signatures, within the limits.
pub fn signature_layers(
    raw: &[u8],
    limits: &Limits,
    location: &str,
) -> Result<Vec<(Descriptor, SignatureLayer)>, RegistryError> {
    artifact_layers(raw, limits, location, Artifact::Signatures)
}

/// The layers of a `.sig` or `.att` manifest with their annotations (payloads not yet
/// fetched), within the limits. Pure over untrusted bytes (fuzzed): size first, then parse,
/// then the count cap. A signature layer without a signature annotation cannot satisfy
/// anything and is skipped, not downloaded.
pub fn artifact_layers(
    raw: &[u8],
    limits: &Limits,
    location: &str,
    what: Artifact,
) -> Result<Vec<(Descriptor, SignatureLayer)>, RegistryError> {
    let manifest = parse_manifest(raw, limits, location)?;
    let sig_layers: Vec<Descriptor> =
        manifest.layers.into_iter().filter(|l| l.media_type == what.media_type()).collect();
    if sig_layers.len() > limits.max_signatures {
        return Err(RegistryError::TooManySignatures {
            location: location.to_string(),
            count: sig_layers.len(),
            limit: limits.max_signatures,
        });
    }
    Ok(sig_layers
        .into_iter()
        .filter_map(|d| {
            let get = |k: &str| d.annotations.as_ref().and_then(|a| a.get(k)).cloned();
            let signature = match (what, get(SIGNATURE_ANNOTATION)) {
                (Artifact::Signatures, None) => return None,
                (_, sig) => sig.unwrap_or_default(),
            };
            let (form, over) = match what {
                Artifact::Attestations => (Form::Envelope, Stamped::Payload),
                _ => (Form::Detached, Stamped::Signature),
            };
            // An annotation that is not cosign's shape holds no timestamp; a policy that
            // needs one then finds none.
            let tokens = get(TIMESTAMP_ANNOTATION)
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v.get("SignedRFC3161Timestamp")?.as_str().map(str::to_string))
                .into_iter()
                .collect();
            let layer = SignatureLayer {
                payload: Vec::new(),
                form,
                signature,
                certificate: get(CERTIFICATE_ANNOTATION).filter(|c| !c.is_empty()),
                chain: get(CHAIN_ANNOTATION).filter(|c| !c.is_empty()),
                bundle: get(BUNDLE_ANNOTATION).filter(|c| !c.is_empty()),
                timestamps: Timestamps { tokens, over },
            };
            Some((d, layer))
        })
        .collect())
}

/// An untrusted manifest: size first, then parse.
pub(super) fn parse_manifest(raw: &[u8], limits: &Limits, location: &str) -> Result<Manifest, RegistryError> {
    if raw.len() > limits.max_manifest_bytes {
        return Err(RegistryError::ManifestTooLarge {
            location: location.to_string(),
            size: raw.len(),
            limit: limits.max_manifest_bytes,
        });
    }
    let manifest: Manifest = serde_json::from_slice(raw)
        .map_err(|e| RegistryError::Malformed { location: location.to_string(), message: e.to_string() })?;
    Ok(manifest)
}

/// The sigstore-bundle layers of a referrer manifest (other artifact types are skipped).
pub fn bundle_layers(raw: &[u8], limits: &Limits, location: &str) -> Result<Vec<Descriptor>, RegistryError> {
    let manifest = parse_manifest(raw, limits, location)?;
    Ok(manifest.layers.into_iter().filter(|l| l.media_type.starts_with(SIGSTORE_BUNDLE_MEDIA_TYPE)).take(1).collect())
}

/// The JWS envelope layer of a notation signature manifest (artifact type, or config media
/// type as notation 1.x writes it, `application/vnd.cncf.notary.signature`); none for a
/// manifest of any other kind. notation writes one envelope per manifest.
pub fn notary_layers(raw: &[u8], limits: &Limits, location: &str) -> Result<Vec<Descriptor>, RegistryError> {
    let manifest = parse_manifest(raw, limits, location)?;
    let notary = manifest.artifact_type.as_deref() == Some(NOTARY_SIGNATURE_ARTIFACT_TYPE)
        || manifest.config.media_type == NOTARY_SIGNATURE_ARTIFACT_TYPE;
    if !notary {
        return Ok(Vec::new());
    }
    let envelope = |l: &Descriptor| l.media_type == NOTARY_JWS_MEDIA_TYPE || l.media_type == NOTARY_COSE_MEDIA_TYPE;
    Ok(manifest.layers.into_iter().filter(envelope).take(1).collect())
}

/// A sigstore bundle's DSSE envelope (and its certificate, for keyless) as a layer: an
/// attestation, or a cosign 3 image signature (a statement of the sign predicate type). Bundles
/// holding a message signature yield none; cosign signs images with statements.
pub fn bundle_attestation(bundle: &[u8]) -> Option<SignatureLayer> {
    let v: serde_json::Value = serde_json::from_slice(bundle).ok()?;
    let envelope = v.get("dsseEnvelope")?;
    let material = v.get("verificationMaterial");
    let pem_of = |c: &serde_json::Value| {
        let der = crate::encoding::b64(c.get("rawBytes")?.as_str()?).ok()?;
        Some(pem::encode(&pem::Pem::new("CERTIFICATE", der)))
    };
    let mut certs: Vec<String> = material
        .and_then(|m| {
            m.get("certificate")
                .map(|c| vec![c.clone()])
                .or_else(|| m.get("x509CertificateChain")?.get("certificates")?.as_array().cloned())
        })
        .unwrap_or_default()
        .iter()
        .filter_map(pem_of)
        .collect();
    let certificate = (!certs.is_empty()).then(|| certs.remove(0));
    let chain = (!certs.is_empty()).then(|| certs.concat());
    let tokens = material
        .and_then(|m| m.get("timestampVerificationData")?.get("rfc3161Timestamps")?.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|t| Some(t.get("signedTimestamp")?.as_str()?.to_string()))
        .take(MAX_TIMESTAMPS)
        .collect();
    Some(SignatureLayer {
        payload: serde_json::to_vec(envelope).ok()?,
        form: Form::Envelope,
        certificate,
        chain,
        bundle: material.and_then(log_entry),
        timestamps: Timestamps { tokens, over: Stamped::BundleSignature },
        ..Default::default()
    })
}

/// A bundle's first transparency-log entry in the shape of cosign's bundle annotation, whose
/// signed entry timestamp (SET) covers the same fields, so that one verifier checks both.
/// An entry without an inclusion promise (Rekor v2: only an inclusion proof and a checkpoint,
/// which the node does not verify) is passed on as it is, for the verifier to name.
fn log_entry(material: &serde_json::Value) -> Option<String> {
    let entry = material.get("tlogEntries")?.as_array()?.first()?;
    if entry.get("inclusionPromise").is_none() {
        return Some(entry.to_string());
    }
    let number = |key: &str| {
        let v = entry.get(key)?;
        v.as_i64().or_else(|| v.as_str()?.parse().ok())
    };
    let log_id = crate::encoding::b64(entry.get("logId")?.get("keyId")?.as_str()?).ok()?;
    let legacy = sigstore::cosign::bundle::Bundle {
        signed_entry_timestamp: entry.get("inclusionPromise")?.get("signedEntryTimestamp")?.as_str()?.to_string(),
        payload: sigstore::cosign::bundle::Payload {
            body: entry.get("canonicalizedBody")?.as_str()?.to_string(),
            integrated_time: number("integratedTime")?,
            log_index: number("logIndex")?,
            log_id: hex::encode(log_id),
        },
    };
    serde_json::to_string(&legacy).ok()
}
