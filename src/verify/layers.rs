//! Which signature layers count: one cosign layer (simple-signing payload, DSSE envelope,
//! cosign 3 signature bundle) or GPG simple-signing document checked against one signer.
//!
//! A layer counts for a signer only if the signer made it over the exact payload bytes,
//! the payload binds exactly the digest containerd will run, and, when the policy requires
//! it, a transparency-log entry for exactly this signature verifies offline. Failures are
//! ranked so that across many layers the most telling one is reported.

use sigstore::cosign::payload::simple_signing::{SimpleSigning, CRITICAL_TYPE_NAME};
use sigstore::crypto::Signature;

use super::certificate::{CarriedError, CertificateSigner};
use super::keyless::{self, CertError};
use super::pubkey::PublicKey;
use super::signer::{Keyless, SignedBy, Signer, Tlog};
use super::timestamp::Authorities;
use super::timestamp::{self, TimestampError};
use super::tlog::{self, EntrySigner, TlogError};
use super::trust::LogKey;
use super::{dsse, gpg, notary, sct, Context};
use crate::registry::{Form, SignatureLayer, Signatures, Stamped};

/// Why no layer of a set satisfied an authority. Ordered from least to most informative,
/// so the most telling reason across several layers is the one reported.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, thiserror::Error)]
pub enum LayerFailure {
    #[error("no signatures found at {location}")]
    NoSignatures { location: String },
    #[error("{count} signature(s) at {location}, none made by {signer}")]
    WrongSigner { location: String, count: usize, signer: String },
    #[error("{0}")]
    Certificate(CertError),
    #[error("{0}")]
    Carried(CarriedError),
    #[error("signature by {signer} has an unreadable payload: {message}")]
    BadPayload { signer: String, message: String },
    #[error("signature by {signer} is for digest {signed}, not {expected}")]
    OtherDigest { signer: String, signed: String, expected: String },
    #[error("{0}")]
    Sct(sct::SctError),
    #[error("{0}")]
    Attestation(dsse::AttestationError),
    #[error("{0}")]
    Gpg(gpg::GpgError),
    #[error("signature by {signer} is not accepted without a transparency-log entry: {error}")]
    Tlog { signer: String, error: TlogError },
    #[error("signature by {signer}: {error}")]
    Timestamp { signer: String, error: TimestampError },
    #[error("no notation signatures found at {location}")]
    NoNotarySignatures { location: String },
    #[error("{0}")]
    Notary(notary::NotaryError),
    #[error("{0}")]
    NotCheckable(String),
    /// The policy's trust root came from a TUF repository whose metadata has since expired.
    #[error("signature by {signer}: the policy's TUF trust root expired at {expired} (seconds since the epoch)")]
    TrustExpired { signer: String, expired: i64 },
}

fn describe(signer: &Signer) -> String {
    match signer {
        Signer::Key(k) => format!("key {}", k.fingerprint),
        Signer::Keyless(k) => match &k.ca {
            Some(ca) => format!("a certificate from CA {}", ca.fingerprint()),
            None => "a certificate from the node trust root's CAs".to_string(),
        },
        Signer::Certificate(c) => format!("certificate {}", c.fingerprint()),
        Signer::Gpg(g) => {
            let fps: Vec<&str> = g.keys.iter().map(|k| k.fingerprint.as_str()).collect();
            format!("OpenPGP key {}", fps.join(" or "))
        }
        Signer::Notary(n) => format!("notary certificate {}", n.fingerprints.join(" or ")),
    }
}

/// Is there a notation signature among `sigs` (JWS envelopes from the image's referrers)
/// whose chain leads to one of the signer's certificates, for exactly `digest`?
pub fn verify_notary(sigs: &Signatures, digest: &str, signer: &Signer, cx: Context<'_>) -> Result<(), LayerFailure> {
    let Signer::Notary(trust) = signer else {
        return Err(LayerFailure::NotCheckable("notation signatures are verified with notary certificates".into()));
    };
    if sigs.layers.is_empty() {
        return Err(LayerFailure::NoNotarySignatures { location: sigs.location.clone() });
    }
    first_good(sigs, signer, |layer| {
        if layer.form != Form::Notary {
            return Err(LayerFailure::NotCheckable("a layer that is not a notation envelope".into()));
        }
        notary::verify_stamped(&layer.payload, &trust.certs, trust.tsa.as_ref(), digest, cx.now)
            .map(drop)
            .map_err(LayerFailure::Notary)
    })
}

/// Is there a GPG simple-signing signature by one of the signer's keys for the image
/// `reference` at `digest`?
pub fn verify_simple_signing(
    sigs: &Signatures,
    reference: &str,
    digest: &str,
    signer: &Signer,
    limit: usize,
) -> Result<(), LayerFailure> {
    let Signer::Gpg(gpg_signer) = signer else {
        return Err(LayerFailure::NotCheckable("only OpenPGP keys verify lookaside signatures".into()));
    };
    first_good(sigs, signer, |layer| {
        gpg::verify(&layer.payload, gpg_signer, reference, digest, limit).map_err(|e| match e {
            gpg::GpgError::NotSigned => {
                LayerFailure::WrongSigner { location: String::new(), count: 0, signer: describe(signer) }
            }
            other => LayerFailure::Gpg(other),
        })
    })
}

/// Is there a layer in `sigs` that satisfies `by` for exactly `digest`?
pub fn verify_signatures(sigs: &Signatures, digest: &str, by: &SignedBy, cx: Context<'_>) -> Result<(), LayerFailure> {
    first_good(sigs, &by.signer, |layer| check_signature_layer(layer, digest, by, cx))
}

/// Run `check` over every layer; the first success wins, else the most telling failure.
fn first_good(
    sigs: &Signatures,
    signer: &Signer,
    check: impl Fn(&SignatureLayer) -> Result<(), LayerFailure>,
) -> Result<(), LayerFailure> {
    good_layers(sigs, signer, check, false).map(drop)
}

/// The layers `check` passes (only the first unless `every`), else the gravest failure: no
/// layers at all, else none by the signer, else what was wrong with the closest.
fn good_layers<'a>(
    sigs: &'a Signatures,
    signer: &Signer,
    check: impl Fn(&SignatureLayer) -> Result<(), LayerFailure>,
    every: bool,
) -> Result<Vec<&'a SignatureLayer>, LayerFailure> {
    let mut worst = if sigs.layers.is_empty() {
        LayerFailure::NoSignatures { location: sigs.location.clone() }
    } else {
        LayerFailure::WrongSigner {
            location: sigs.location.clone(),
            count: sigs.layers.len(),
            signer: describe(signer),
        }
    };
    let mut good = Vec::new();
    for layer in &sigs.layers {
        match check(layer) {
            Ok(()) if !every => return Ok(vec![layer]),
            Ok(()) => good.push(layer),
            Err(f) => worst = worst.max(f),
        }
    }
    if good.is_empty() {
        Err(worst)
    } else {
        Ok(good)
    }
}

/// The key that made `layer` under `signer`, with the signing time a log entry proved.
/// `signed` is what the layer's signature covers; `signature` its base64 signature.
fn signing_key(
    layer: &SignatureLayer,
    by: &SignedBy,
    cx: Context<'_>,
    verifies: impl Fn(&PublicKey) -> bool,
) -> Result<PublicKey, LayerFailure> {
    let (signer, tlog) = (&by.signer, &by.tlog);
    // A policy's own trusted root stands in for the node's, for everything below.
    let cx = match &by.trust {
        Some(trust) => Context { trust, now: cx.now },
        None => cx,
    };
    // Checked on every verification, not only when policy compiles: a compiled policy (from
    // the last-known-good file, or kept between syncs) must not outlive the TUF metadata.
    if let Some(until) = by.trust_until.filter(|until| cx.now >= *until) {
        return Err(LayerFailure::TrustExpired { signer: describe(signer), expired: until });
    }
    let wrong = || LayerFailure::WrongSigner { location: String::new(), count: 0, signer: describe(signer) };
    match signer {
        Signer::Key(k) => {
            if !verifies(&k.key) {
                return Err(wrong());
            }
            stamp_time(layer, by, cx, &describe(signer))?;
            check_tlog(layer, tlog, EntrySigner::PublicKey(&k.der), &describe(signer), cx)?;
            Ok(k.key.clone())
        }
        Signer::Keyless(kl) => keyless_key(layer, kl, by, cx, verifies).map_err(|f| match f {
            LayerFailure::WrongSigner { .. } => wrong(),
            other => other,
        }),
        Signer::Certificate(c) => {
            if !verifies(&c.key) {
                return Err(wrong());
            }
            certificate_key(layer, c, by, &describe(signer), cx)?;
            Ok(c.key.clone())
        }
        Signer::Gpg(_) => Err(LayerFailure::NotCheckable(
            "OpenPGP keys verify simple-signing signatures from a lookaside store, not cosign signatures".into(),
        )),
        Signer::Notary(_) => Err(LayerFailure::NotCheckable(
            "notary certificates verify notation signatures, not cosign signatures or attestations".into(),
        )),
    }
}

/// The times a signing certificate must have been valid at, as cosign checks them: the time
/// a verified RFC 3161 timestamp proves and the log entry's integration time, each when
/// present; else now.
fn signing_times(stamped: Option<i64>, logged: Option<i64>, now: i64) -> Vec<i64> {
    let times: Vec<i64> = [stamped, logged].into_iter().flatten().collect();
    if times.is_empty() {
        vec![now]
    } else {
        times
    }
}

/// The time the layer's RFC 3161 timestamps prove, when the policy trusts timestamp
/// authorities: its own TSA chain, or (for bundles, when it says so) the node trust root's.
/// A timestamp that is present must verify (cosign fails the signature otherwise); only a
/// sigstore bundle must carry one.
fn stamp_time(layer: &SignatureLayer, by: &SignedBy, cx: Context<'_>, who: &str) -> Result<Option<i64>, LayerFailure> {
    let failed = |error| LayerFailure::Timestamp { signer: who.to_string(), error };
    let bundle = layer.timestamps.over == Stamped::BundleSignature;
    let from_root: Vec<(Authorities, &crate::verify::trust::Validity)>;
    let authorities: Vec<(&Authorities, Option<&crate::verify::trust::Validity>)> = match &by.tsa {
        Some(tsa) => vec![(tsa, None)],
        None if by.trust_root_timestamps && bundle => {
            from_root = cx
                .trust
                .tsas
                .iter()
                .map(|e| (Authorities { pool: e.pool.clone(), leaf: e.leaf.clone() }, &e.valid))
                .collect();
            if from_root.is_empty() {
                return Err(LayerFailure::NotCheckable(
                    "a signed timestamp is required (the log is ignored) but the node trust root names no \
                     timestamp authority"
                        .into(),
                ));
            }
            from_root.iter().map(|(a, v)| (a, Some(*v))).collect()
        }
        None => return Ok(None),
    };
    let stamps = &layer.timestamps;
    if stamps.tokens.is_empty() {
        return match stamps.over {
            Stamped::BundleSignature => Err(failed(TimestampError::Missing)),
            Stamped::Signature | Stamped::Payload => Ok(None),
        };
    }
    let b64 = |s: &str| crate::encoding::b64(s).map_err(|e| e.to_string());
    let covered = match stamps.over {
        Stamped::Signature => b64(&layer.signature),
        Stamped::Payload => Ok(layer.payload.clone()),
        // sigstore-go timestamps a bundle's envelope by its (first) signature.
        Stamped::BundleSignature => dsse::open(&layer.payload)
            .map_err(|e| e.to_string())
            .and_then(|o| o.signatures.first().map(|s| b64(s)).unwrap_or_else(|| Err("no signature".into()))),
    }
    .map_err(|e| failed(TimestampError::Malformed(format!("the timestamped signature: {e}"))))?;
    let mut first = None;
    for token in &stamps.tokens {
        let result =
            crate::encoding::b64(token).map_err(|e| TimestampError::NotBase64(e.to_string())).and_then(|der| {
                let mut last = TimestampError::Missing;
                for (tsa, valid) in &authorities {
                    match timestamp::verify(&der, &covered, tsa) {
                        // A trust root's authority vouches only for times inside its window.
                        Ok(at) if valid.is_none_or(|v| v.contains(at)) => return Ok(at),
                        Ok(at) => {
                            last = TimestampError::Untrusted { at, message: "outside the authority's validFor".into() }
                        }
                        Err(e) => last = e,
                    }
                }
                Err(last)
            });
        match result {
            Ok(at) => return Ok(Some(at)),
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    Err(failed(first.expect("at least one token")))
}

fn keyless_key(
    layer: &SignatureLayer,
    kl: &Keyless,
    by: &SignedBy,
    cx: Context<'_>,
    verifies: impl Fn(&PublicKey) -> bool,
) -> Result<PublicKey, LayerFailure> {
    let wrong = LayerFailure::WrongSigner { location: String::new(), count: 0, signer: String::new() };
    let Some(cert_pem) = layer.certificate.as_deref() else { return Err(wrong) };
    if kl.ca.is_none() && !cx.trust.has_fulcio() {
        return Err(LayerFailure::NotCheckable(
            "no certificate authority to check keyless signatures against: set the policy's CA or the node's \
             trust_root"
                .into(),
        ));
    }
    let der = pem::parse(cert_pem)
        .map_err(|e| LayerFailure::Certificate(CertError::Malformed(e.to_string())))?
        .into_contents();
    // A verified timestamp and the log entry, when required, prove when the signature was
    // made: short-lived certificates must have been valid then, not now.
    let holder = "the certificate's holder";
    let stamped = stamp_time(layer, by, cx, holder)?;
    let logged = check_tlog(layer, &by.tlog, EntrySigner::Certificate(&der), holder, cx)?.map(|e| e.integrated_time);
    let mut checked = None;
    for at in signing_times(stamped, logged, cx.now) {
        // The node's CAs that were valid then (trusted_root.json `validFor`); a policy's own
        // CA has no window.
        let ca = match &kl.ca {
            Some(ca) => ca.clone(),
            None => cx.trust.fulcio_at(at),
        };
        let cert = keyless::verify_certificate(cert_pem, layer.chain.as_deref(), &ca, at)
            .map_err(LayerFailure::Certificate)?;
        checked = Some((cert, ca));
    }
    let (cert, ca) = checked.expect("at least one time");
    let ca = &ca;
    let key = PublicKey::from(cert.key.clone());
    if !verifies(&key) {
        return Err(wrong);
    }
    cert.identity.check(&kl.identities).map_err(LayerFailure::Certificate)?;
    if kl.sct {
        let chain: Vec<Vec<u8>> = layer
            .chain
            .as_deref()
            .and_then(|c| pem::parse_many(c).ok())
            .unwrap_or_default()
            .into_iter()
            .map(|b| b.into_contents())
            .collect();
        let issuers: Vec<&[u8]> = chain
            .iter()
            .map(Vec::as_slice)
            .chain(ca.intermediates.iter().chain(&ca.roots).map(|c| c.as_ref()))
            .collect();
        sct::verify(&cert.der, &issuers, sct_logs(&kl.sct_logs, cx)).map_err(LayerFailure::Sct)?;
    }
    Ok(key)
}

/// The rest of a policy certificate's checks once its key verified the layer, as cosign
/// makes them with `--certificate`: the log entry (naming the certificate the layer carries,
/// else the key), that carried certificate's validity then, and with a chain the SCT.
fn certificate_key(
    layer: &SignatureLayer,
    c: &CertificateSigner,
    by: &SignedBy,
    who: &str,
    cx: Context<'_>,
) -> Result<(), LayerFailure> {
    // The key first: a log entry for another key's certificate proves nothing here.
    let carried = layer.certificate.as_deref().map(|pem| c.carried(pem)).transpose().map_err(LayerFailure::Carried)?;
    let signer = match &carried {
        Some(cert) => EntrySigner::Certificate(&cert.der),
        None => EntrySigner::PublicKey(&c.spki),
    };
    let stamped = stamp_time(layer, by, cx, who)?;
    let logged = check_tlog(layer, &by.tlog, signer, who, cx)?.map(|e| e.integrated_time);
    if let Some(cert) = &carried {
        for at in signing_times(stamped, logged, cx.now) {
            cert.valid_at(at).map_err(LayerFailure::Carried)?;
        }
    }
    let node_cas = if c.trust_root_cas {
        let cas = cx.trust.fulcio_at(c.not_before);
        if cas.is_empty() {
            return Err(LayerFailure::NotCheckable(
                "the certificate must chain to the node trust root's certificate authorities (Kyverno checks it \
                 against its Sigstore trusted root when the log is required), and the node has none for its time"
                    .into(),
            ));
        }
        let pem = pem::encode(&pem::Pem::new("CERTIFICATE", c.der.clone()));
        keyless::verify_certificate(&pem, None, &cas, c.not_before).map_err(LayerFailure::Certificate)?;
        Some(cas)
    } else {
        None
    };
    if c.sct {
        let issuers: Vec<&[u8]> = c
            .chain
            .iter()
            .chain(node_cas.iter().flat_map(|ca| ca.intermediates.iter().chain(&ca.roots)))
            .map(|d| d.as_ref())
            .collect();
        sct::verify(&c.der, &issuers, sct_logs(&c.sct_logs, cx)).map_err(LayerFailure::Sct)?;
    }
    Ok(())
}

/// A policy's own CT log keys replace the node's (cosign's `CTLogPubKeys`, as Kyverno sets them).
fn sct_logs<'a>(policy: &'a [LogKey], cx: Context<'a>) -> &'a [LogKey] {
    if policy.is_empty() {
        &cx.trust.ctlogs
    } else {
        policy
    }
}

fn check_tlog(
    layer: &SignatureLayer,
    tlog: &Tlog,
    signer: EntrySigner<'_>,
    who: &str,
    cx: Context<'_>,
) -> Result<Option<tlog::LogEntry>, LayerFailure> {
    let Tlog::Require { keys, .. } = tlog else { return Ok(None) };
    let logs: Vec<&LogKey> = if keys.is_empty() { cx.trust.rekor.iter().collect() } else { keys.iter().collect() };
    if logs.is_empty() {
        return Err(LayerFailure::NotCheckable(
            "a transparency-log entry is required but no log key is configured (node trust_root or the \
             policy's log key)"
                .into(),
        ));
    }
    tlog::verify(layer.bundle.as_deref(), &layer.signature, &layer.payload, signer, &logs)
        .map(Some)
        .map_err(|error| LayerFailure::Tlog { signer: who.to_string(), error })
}

fn check_signature_layer(
    layer: &SignatureLayer,
    digest: &str,
    by: &SignedBy,
    cx: Context<'_>,
) -> Result<(), LayerFailure> {
    if layer.form == Form::Envelope {
        // cosign 3 signs an image with an in-toto statement of this type about its digest.
        return check_envelope(layer, digest, dsse::COSIGN_SIGN_PREDICATE_TYPE, by, cx);
    }
    let sig = layer.signature.as_bytes();
    signing_key(layer, by, cx, |k| k.verify_signature(Signature::Base64Encoded(sig), &layer.payload).is_ok())?;
    let signer = describe(&by.signer);
    // JSON is UTF-8; serde_json does not check the strings it skips.
    let text = match std::str::from_utf8(&layer.payload) {
        Ok(t) => t,
        Err(e) => return Err(LayerFailure::BadPayload { signer, message: e.to_string() }),
    };
    match serde_json::from_str::<SimpleSigning>(text) {
        Err(e) => Err(LayerFailure::BadPayload { signer, message: e.to_string() }),
        Ok(p) if p.critical.type_name != CRITICAL_TYPE_NAME => Err(LayerFailure::BadPayload {
            signer,
            message: format!("critical.type is {:?}, not {CRITICAL_TYPE_NAME:?}", p.critical.type_name),
        }),
        Ok(p) if p.critical.image.docker_manifest_digest != digest => Err(LayerFailure::OtherDigest {
            signer,
            signed: p.critical.image.docker_manifest_digest,
            expected: digest.to_string(),
        }),
        Ok(_) => Ok(()),
    }
}

/// Is every predicate type of `by.attestations` attested by the signer for `digest`?
pub fn verify_attestations(
    atts: &Signatures,
    digest: &str,
    by: &SignedBy,
    cx: Context<'_>,
) -> Result<(), LayerFailure> {
    for predicate in &by.attestations {
        first_good(atts, &by.signer, |layer| check_envelope(layer, digest, predicate, by, cx))
            .map_err(|f| of_type(f, predicate))?;
    }
    Ok(())
}

/// "No attestations" says which type was looked for.
fn of_type(f: LayerFailure, predicate: &str) -> LayerFailure {
    match f {
        LayerFailure::NoSignatures { location } => {
            LayerFailure::NoSignatures { location: format!("{location} (attestation {predicate})") }
        }
        other => other,
    }
}

/// The in-toto statements of type `predicate` about `digest` that `by.signer` made, every
/// one of them (Kyverno judges conditions on each): the layers [`verify_attestations`]
/// would count, opened. None counting is the failure it would give.
pub fn verified_statements(
    atts: &Signatures,
    digest: &str,
    predicate: &str,
    by: &SignedBy,
    cx: Context<'_>,
) -> Result<Vec<serde_json::Value>, LayerFailure> {
    let good = good_layers(atts, &by.signer, |layer| check_envelope(layer, digest, predicate, by, cx), true)
        .map_err(|f| of_type(f, predicate))?;
    good.into_iter()
        .map(|layer| {
            // check_envelope has read the body as a statement, so this only fails on a bug.
            let opened = dsse::open(&layer.payload).map_err(LayerFailure::Attestation)?;
            serde_json::from_slice(&opened.body)
                .map_err(|e| LayerFailure::Attestation(dsse::AttestationError::Malformed(format!("statement: {e}"))))
        })
        .collect()
}

/// Is `layer` a DSSE envelope signed by `by.signer` whose statement is of `predicate` type
/// about `digest`?
fn check_envelope(
    layer: &SignatureLayer,
    digest: &str,
    predicate: &str,
    by: &SignedBy,
    cx: Context<'_>,
) -> Result<(), LayerFailure> {
    if layer.form != Form::Envelope {
        return Err(LayerFailure::Attestation(dsse::AttestationError::Malformed("not a DSSE envelope".into())));
    }
    // sigstore-go takes a bundle's envelope with exactly one signature: its timestamp covers
    // that one, and with more, another signature could verify under a time it never had.
    if layer.timestamps.over == Stamped::BundleSignature {
        let count = dsse::open(&layer.payload).map_err(LayerFailure::Attestation)?.signatures.len();
        if count != 1 {
            return Err(LayerFailure::Attestation(dsse::AttestationError::Malformed(format!(
                "a sigstore bundle's envelope holds {count} signatures, not exactly one"
            ))));
        }
    }
    let key = signing_key(layer, by, cx, |k| {
        // Only the envelope's own signature matters; the full check follows.
        dsse::verify(&layer.payload, k, digest, predicate)
            .map_or_else(|e| !matches!(e, dsse::AttestationError::NotSigned), |_| true)
    })?;
    dsse::verify(&layer.payload, &key, digest, predicate).map_err(LayerFailure::Attestation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::verify::{context as cx, sigs, D1, D2};
    use crate::testutil::{payload, TestSigner};

    fn by_key(key: &crate::verify::signer::TrustedKey) -> SignedBy {
        SignedBy::new(Signer::Key(key.clone()), Tlog::Ignore)
    }

    fn verify_key(
        sigs: &Signatures,
        digest: &str,
        key: &crate::verify::signer::TrustedKey,
    ) -> Result<(), LayerFailure> {
        verify_signatures(sigs, digest, &by_key(key), cx())
    }

    #[test]
    fn signature_by_the_key_for_the_digest_verifies() {
        let s = TestSigner::new(1);
        assert_eq!(verify_key(&sigs(vec![s.sign_digest("reg.io/app", D1)]), D1, &s.trusted()), Ok(()));
    }

    #[test]
    fn signature_for_another_digest_is_rejected() {
        let s = TestSigner::new(1);
        let err = verify_key(&sigs(vec![s.sign_digest("reg.io/app", D2)]), D1, &s.trusted()).unwrap_err();
        assert!(matches!(err, LayerFailure::OtherDigest { .. }), "{err}");
        assert!(err.to_string().contains(D2));
    }

    #[test]
    fn signature_by_another_key_is_rejected() {
        let (a, b) = (TestSigner::new(1), TestSigner::new(2));
        let err = verify_key(&sigs(vec![a.sign_digest("reg.io/app", D1)]), D1, &b.trusted()).unwrap_err();
        assert!(matches!(err, LayerFailure::WrongSigner { count: 1, .. }), "{err}");
    }

    #[test]
    fn tampered_payload_is_rejected() {
        let s = TestSigner::new(1);
        let mut layer = s.sign_digest("reg.io/app", D2);
        // Swap the signed digest for ours, keep the signature: must not verify.
        layer.payload = payload("reg.io/app", D1, CRITICAL_TYPE_NAME).into_bytes();
        assert!(matches!(verify_key(&sigs(vec![layer]), D1, &s.trusted()), Err(LayerFailure::WrongSigner { .. })));
    }

    #[test]
    fn wrong_payload_type_is_rejected() {
        let s = TestSigner::new(1);
        let layer = s.sign_raw(payload("reg.io/app", D1, "https://in-toto.io/Statement/v0.1").as_bytes());
        assert!(matches!(verify_key(&sigs(vec![layer]), D1, &s.trusted()), Err(LayerFailure::BadPayload { .. })));
    }

    #[test]
    fn one_good_signature_among_bad_ones_is_enough() {
        let (a, b) = (TestSigner::new(1), TestSigner::new(2));
        let layers =
            vec![a.sign_digest("reg.io/app", D1), b.sign_digest("reg.io/app", D2), b.sign_digest("reg.io/app", D1)];
        assert_eq!(verify_key(&sigs(layers), D1, &b.trusted()), Ok(()));
    }

    #[test]
    fn no_signatures_is_named() {
        let s = TestSigner::new(1);
        assert!(matches!(verify_key(&sigs(vec![]), D1, &s.trusted()), Err(LayerFailure::NoSignatures { .. })));
    }

    /// Against material made by real cosign (testdata/cosign, see its README).
    mod vectors {
        use super::*;
        use crate::evaluate::{evaluate, needs, Evidence, Needs};
        use crate::policy::{AuthorityKind, Mode, Policy};
        use crate::testutil::vector;
        use crate::verify::certificate::CertificateSigner;
        use crate::verify::keyless::{Identity, Matcher};
        use crate::verify::signer::TrustedKey;
        use crate::verify::trust::CaPool;
        use crate::verify::trust::TrustRoot;

        const DIGEST: &str = "sha256:479b4d26d48a0d046ea38ef2715bfa9bdc1ddff89de923a682848412d511d3a5";
        const ISSUER: &str = "https://issuer.example";

        fn trust() -> TrustRoot {
            TrustRoot::parse(vector("trusted_root.json").as_bytes(), "trusted_root.json").unwrap()
        }

        fn run(layers: Vec<SignatureLayer>, by: &SignedBy) -> Result<(), LayerFailure> {
            let t = trust();
            let s = Signatures { location: "registry.example/team/app:sha256-479b.sig".into(), layers };
            verify_signatures(&s, DIGEST, by, Context { trust: &t, now: Context::now_secs() })
        }

        fn key_layer(bundle: Option<&str>) -> SignatureLayer {
            SignatureLayer {
                payload: vector("payload.json").into_bytes(),
                signature: vector("payload.sig").trim().into(),
                bundle: bundle.map(vector),
                ..Default::default()
            }
        }

        fn leaf_layer(leaf: &str, bundle: Option<&str>) -> SignatureLayer {
            SignatureLayer {
                payload: vector("payload.json").into_bytes(),
                signature: vector("payload-leaf.sig").trim().into(),
                certificate: Some(vector(leaf)),
                chain: Some(vector("chain.pem")),
                bundle: bundle.map(vector),
                ..Default::default()
            }
        }

        fn key() -> Signer {
            Signer::Key(TrustedKey::from_pem(vector("cosign.pub").as_bytes()).unwrap())
        }

        fn keyless(subject: Matcher, ca: Option<&str>, sct: bool) -> Signer {
            Signer::Keyless(Keyless {
                identities: vec![Identity { issuer: Matcher::Exact(ISSUER.into()), subject, extensions: vec![] }],
                ca: ca.map(|c| CaPool::from_pem(&vector(c)).unwrap()),
                sct,
                sct_logs: vec![],
            })
        }

        fn by(signer: Signer, tlog: bool) -> SignedBy {
            let tlog = if tlog { Tlog::Require { url: None, keys: vec![] } } else { Tlog::Ignore };
            SignedBy::new(signer, tlog)
        }

        #[test]
        fn cosign_key_signature_with_and_without_a_log_entry() {
            run(vec![key_layer(None)], &by(key(), false)).unwrap();
            run(vec![key_layer(Some("bundle-key.json"))], &by(key(), true)).unwrap();
            let err = run(vec![key_layer(None)], &by(key(), true)).unwrap_err();
            assert!(matches!(err, LayerFailure::Tlog { error: TlogError::Missing, .. }), "{err}");
            let err = run(vec![key_layer(Some("bundle-forged.json"))], &by(key(), true)).unwrap_err();
            assert!(matches!(err, LayerFailure::Tlog { error: TlogError::UnknownLog(_), .. }), "{err}");
            // The signed digest is the vector image's; any other digest is refused.
            let t = trust();
            let s = Signatures { location: "l".into(), layers: vec![key_layer(None)] };
            let other = DIGEST.replace("479b", "0000");
            let err = verify_signatures(&s, &other, &by(key(), false), Context { trust: &t, now: 0 }).unwrap_err();
            assert!(matches!(err, LayerFailure::OtherDigest { .. }), "{err}");
        }

        /// A sigstore bundle as the registry module turns it into a layer.
        fn bundle_layer(name: &str) -> SignatureLayer {
            crate::registry::bundle_attestation(vector(name).as_bytes()).expect("a DSSE bundle")
        }

        #[test]
        fn cosign_3_signature_bundles_sign_the_digest_with_a_statement() {
            // cosign 3 signs with a bundle holding a sign/v1 statement about the digest.
            run(vec![bundle_layer("bundle-v03-sign.json")], &by(key(), false)).unwrap();
            // Next to cosign 2 signatures by other keys, it is the one that counts.
            let other = TestSigner::new(9).sign_digest("registry.example/team/app", DIGEST);
            run(vec![other, bundle_layer("bundle-v03-sign.json")], &by(key(), false)).unwrap();
            // Bound to its digest.
            let t = trust();
            let s = Signatures { location: "l".into(), layers: vec![bundle_layer("bundle-v03-sign.json")] };
            let elsewhere = DIGEST.replace("479b", "0000");
            let err = verify_signatures(&s, &elsewhere, &by(key(), false), Context { trust: &t, now: 0 }).unwrap_err();
            assert!(matches!(err, LayerFailure::Attestation(dsse::AttestationError::OtherSubject { .. })), "{err}");
            // An attestation of another type is not a signature (and a signature is not an
            // attestation of another type: cosign 2.5 accepts either, GHSA-w6c6-c85g-mmv6).
            let err = run(vec![bundle_layer("bundle-v03-slsa.json")], &by(key(), false)).unwrap_err();
            assert!(matches!(err, LayerFailure::Attestation(dsse::AttestationError::OtherType { .. })), "{err}");
            let want_slsa = SignedBy { attestations: vec!["slsaprovenance".into()], ..by(key(), false) };
            let err = verify_attestations(&s, DIGEST, &want_slsa, Context { trust: &t, now: 0 }).unwrap_err();
            assert!(matches!(err, LayerFailure::Attestation(dsse::AttestationError::OtherType { .. })), "{err}");
            // Another key's bundle does not count; nor does one without a log entry, when required.
            let another_key = Signer::Key(TestSigner::new(9).trusted());
            let err = run(vec![bundle_layer("bundle-v03-sign.json")], &by(another_key, false)).unwrap_err();
            assert!(matches!(err, LayerFailure::WrongSigner { .. }), "{err}");
            let err = run(vec![bundle_layer("bundle-v03-sign.json")], &by(key(), true)).unwrap_err();
            assert!(matches!(err, LayerFailure::Tlog { error: TlogError::Missing, .. }), "{err}");
        }

        #[test]
        fn signature_bundles_with_a_rekor_entry_for_that_envelope() {
            // A dsse entry with the log's SET: the key's and a keyless leaf's.
            run(vec![bundle_layer("bundle-v03-sign-logged.json")], &by(key(), true)).unwrap();
            let email = Matcher::Exact("builder@example.com".into());
            run(vec![bundle_layer("bundle-v03-sign-leaf-logged.json")], &by(keyless(email, None, false), true))
                .unwrap();
            // A SET by a key that is not the log's.
            let err = run(vec![bundle_layer("bundle-v03-sign-forged.json")], &by(key(), true)).unwrap_err();
            assert!(matches!(err, LayerFailure::Tlog { error: TlogError::UnknownLog(_), .. }), "{err}");
            // A genuine entry replayed beside another envelope by the same key.
            let mut replayed = bundle_layer("bundle-v03-slsa.json");
            replayed.bundle = bundle_layer("bundle-v03-sign-logged.json").bundle;
            let t = trust();
            let s = Signatures { location: "l".into(), layers: vec![replayed] };
            let want_slsa = SignedBy { attestations: vec!["slsaprovenance".into()], ..by(key(), true) };
            let err = verify_attestations(&s, DIGEST, &want_slsa, Context { trust: &t, now: 0 }).unwrap_err();
            assert!(matches!(err, LayerFailure::Tlog { error: TlogError::Mismatch("payload"), .. }), "{err}");
            // A Rekor v2 entry (inclusion proof, no SET) is named, not taken for a missing one.
            let mut v2: serde_json::Value = serde_json::from_str(&vector("bundle-v03-sign-logged.json")).unwrap();
            let entry = &mut v2["verificationMaterial"]["tlogEntries"][0];
            entry.as_object_mut().unwrap().remove("inclusionPromise");
            entry["inclusionProof"] = serde_json::json!({"logIndex": "0", "treeSize": "1", "hashes": []});
            let layer = crate::registry::bundle_attestation(v2.to_string().as_bytes()).unwrap();
            let err = run(vec![layer], &by(key(), true)).unwrap_err();
            assert!(matches!(err, LayerFailure::Tlog { error: TlogError::NoPromise, .. }), "{err}");
            // Without the log requirement the same layer is a good attestation.
            let want_slsa = SignedBy { tlog: Tlog::Ignore, ..want_slsa };
            verify_attestations(&s, DIGEST, &want_slsa, Context { trust: &t, now: 0 }).unwrap();
        }

        #[test]
        fn cosign_2_attestations_with_their_rekor_intoto_entry() {
            let t = trust();
            let cx = Context { trust: &t, now: Context::now_secs() };
            let att = |envelope: &str| SignatureLayer {
                payload: vector(envelope).trim().as_bytes().to_vec(),
                form: Form::Envelope,
                bundle: Some(vector("att-slsa-rekor.json")),
                ..Default::default()
            };
            let logged = |ty: &str| SignedBy { attestations: vec![ty.into()], ..by(key(), true) };
            let s = Signatures { location: "l.att".into(), layers: vec![att("att-slsa.json")] };
            verify_attestations(&s, DIGEST, &logged("slsaprovenance"), cx).unwrap();
            // The entry names the slsa envelope; beside another envelope it proves nothing.
            let s = Signatures { location: "l.att".into(), layers: vec![att("att-custom.json")] };
            let err = verify_attestations(&s, DIGEST, &logged("custom"), cx).unwrap_err();
            assert!(matches!(err, LayerFailure::Tlog { error: TlogError::Mismatch("payload"), .. }), "{err}");
        }

        #[test]
        fn retired_trust_root_entries_vouch_for_nothing_after_their_end() {
            let retired = |field: &str| {
                let mut v: serde_json::Value = serde_json::from_str(&vector("trusted_root.json")).unwrap();
                let past = serde_json::json!({"start": "2000-01-01T00:00:00Z", "end": "2001-01-01T00:00:00Z"});
                match field {
                    "tlog" => v["tlogs"][0]["publicKey"]["validFor"] = past,
                    _ => v["certificateAuthorities"][0]["validFor"] = past,
                }
                TrustRoot::parse(v.to_string().as_bytes(), "t.json").unwrap()
            };
            let t = retired("tlog");
            let s = Signatures { location: "l".into(), layers: vec![key_layer(Some("bundle-key.json"))] };
            let err = verify_signatures(&s, DIGEST, &by(key(), true), Context { trust: &t, now: Context::now_secs() })
                .unwrap_err();
            assert!(matches!(err, LayerFailure::Tlog { error: TlogError::KeyNotValid(_), .. }), "{err}");
            let t = retired("ca");
            let email = Matcher::Exact("builder@example.com".into());
            let s = Signatures {
                location: "l".into(),
                layers: vec![leaf_layer("leaf-email.pem", Some("bundle-leaf-email.json"))],
            };
            let err = verify_signatures(
                &s,
                DIGEST,
                &by(keyless(email, None, false), true),
                Context { trust: &t, now: Context::now_secs() },
            )
            .unwrap_err();
            assert!(matches!(err, LayerFailure::Certificate(CertError::Untrusted(_))), "{err}");
        }

        #[test]
        fn keyless_signature_chains_to_the_ca_and_names_a_trusted_identity() {
            let email = Matcher::Exact("builder@example.com".into());
            // The policy's own CA, or the node trust root's.
            run(vec![leaf_layer("leaf-email.pem", None)], &by(keyless(email.clone(), Some("root.pem"), false), false))
                .unwrap();
            run(vec![leaf_layer("leaf-email.pem", None)], &by(keyless(email.clone(), None, false), false)).unwrap();
            // Logged: checked against the log entry's time.
            run(
                vec![leaf_layer("leaf-email.pem", Some("bundle-leaf-email.json"))],
                &by(keyless(email.clone(), None, false), true),
            )
            .unwrap();
            let uri = Matcher::Regex(regex::Regex::new("^https://github\\.com/example/app/").unwrap());
            run(vec![leaf_layer("leaf-uri.pem", None)], &by(keyless(uri, None, false), false)).unwrap();

            let other_org = Matcher::Regex(regex::Regex::new("^https://github\\.com/other/").unwrap());
            let err =
                run(vec![leaf_layer("leaf-uri.pem", None)], &by(keyless(other_org, None, false), false)).unwrap_err();
            assert!(matches!(err, LayerFailure::Certificate(CertError::Identity { .. })), "{err}");
            let err = run(
                vec![leaf_layer("leaf-email.pem", None)],
                &by(keyless(email.clone(), Some("other-root.pem"), false), false),
            )
            .unwrap_err();
            assert!(matches!(err, LayerFailure::Certificate(CertError::Untrusted(_))), "{err}");
            // A key signature is not a keyless one, and vice versa.
            let err = run(vec![key_layer(None)], &by(keyless(email.clone(), None, false), false)).unwrap_err();
            assert!(matches!(err, LayerFailure::WrongSigner { .. }), "{err}");
            assert!(run(vec![leaf_layer("leaf-email.pem", None)], &by(key(), false)).is_err());
            // SCTs cannot be checked yet: required means refused, with the reason.
            let err =
                run(vec![leaf_layer("leaf-email.pem", None)], &by(keyless(email, None, true), false)).unwrap_err();
            assert!(err.to_string().contains("SCT"), "{err}");
        }

        /// The vectors' leaf certificate as a policy names it (Kyverno `certificates`).
        fn certificate(chain: Option<&str>, sct: bool) -> Signer {
            let chain = chain.map(vector);
            Signer::Certificate(CertificateSigner::from_pem(&vector("leaf-email.pem"), chain.as_deref(), sct).unwrap())
        }

        /// A signature by the leaf's key that carries no certificate (`cosign sign --key`).
        fn bare_layer(bundle: Option<&str>) -> SignatureLayer {
            SignatureLayer { certificate: None, chain: None, ..leaf_layer("leaf-email.pem", bundle) }
        }

        /// #19: a certificate attestor used to fail closed; it verifies under the
        /// certificate's key over the payload that binds the digest, like a key.
        #[test]
        fn a_policy_certificate_admits_signatures_by_its_key_for_the_digest() {
            run(vec![bare_layer(None)], &by(certificate(None, true), false)).unwrap();
            run(vec![leaf_layer("leaf-email.pem", None)], &by(certificate(None, false), false)).unwrap();
            run(vec![bare_layer(None)], &by(certificate(Some("chain.pem"), false), false)).unwrap();
            // Another key's signature.
            let err = run(vec![key_layer(None)], &by(certificate(None, false), false)).unwrap_err();
            assert!(matches!(err, LayerFailure::WrongSigner { .. }), "{err}");
            assert!(err.to_string().contains("certificate "), "{err}");
            let stranger = TestSigner::new(9).sign_digest("registry.example/team/app", DIGEST);
            assert!(run(vec![stranger], &by(certificate(None, false), false)).is_err());
            // The same key's signature for another digest.
            let t = trust();
            let s = Signatures { location: "l".into(), layers: vec![bare_layer(None)] };
            let other = DIGEST.replace("479b", "0000");
            let err =
                verify_signatures(&s, &other, &by(certificate(None, false), false), Context { trust: &t, now: 0 })
                    .unwrap_err();
            assert!(matches!(err, LayerFailure::OtherDigest { .. }), "{err}");
            // A layer carrying a certificate for another key than the policy's.
            let mut foreign = leaf_layer("leaf-email.pem", None);
            foreign.certificate = Some(vector("root.pem"));
            let err = run(vec![foreign], &by(certificate(None, false), false)).unwrap_err();
            assert!(matches!(err, LayerFailure::Carried(CarriedError::OtherKey)), "{err}");
        }

        /// Kyverno's defaults: a Rekor entry is required (naming the certificate the layer
        /// carries, else the key); with a chain, an SCT unless ignored; without one, none.
        #[test]
        fn a_policy_certificate_needs_the_log_entry_and_with_a_chain_the_sct() {
            run(
                vec![leaf_layer("leaf-email.pem", Some("bundle-leaf-email.json"))],
                &by(certificate(None, false), true),
            )
            .unwrap();
            let err = run(vec![bare_layer(None)], &by(certificate(None, false), true)).unwrap_err();
            assert!(matches!(err, LayerFailure::Tlog { error: TlogError::Missing, .. }), "{err}");
            // The entry names the certificate; a layer without it is checked against the key.
            let err =
                run(vec![bare_layer(Some("bundle-leaf-email.json"))], &by(certificate(None, false), true)).unwrap_err();
            assert!(matches!(err, LayerFailure::Tlog { .. }), "{err}");
            let err = run(
                vec![leaf_layer("leaf-email.pem", Some("bundle-forged.json"))],
                &by(certificate(None, false), true),
            )
            .unwrap_err();
            assert!(matches!(err, LayerFailure::Tlog { .. }), "{err}");
            // Required, but no log key anywhere: refused, never passed.
            let empty = TrustRoot::empty();
            let s = Signatures {
                location: "l".into(),
                layers: vec![leaf_layer("leaf-email.pem", Some("bundle-leaf-email.json"))],
            };
            let err = verify_signatures(
                &s,
                DIGEST,
                &by(certificate(None, false), true),
                Context { trust: &empty, now: Context::now_secs() },
            )
            .unwrap_err();
            assert!(matches!(err, LayerFailure::NotCheckable(_)), "{err}");
            // With a chain: the leaf without an SCT is refused, the one with an SCT from
            // the trust root's CT log admitted; ignoring the SCT admits the first.
            let err = run(vec![bare_layer(None)], &by(certificate(Some("chain.pem"), true), false)).unwrap_err();
            assert!(matches!(err, LayerFailure::Sct(_)), "{err}");
            run(vec![bare_layer(None)], &by(certificate(Some("chain.pem"), false), false)).unwrap();
            let sct = CertificateSigner::from_pem(&vector("leaf-sct.pem"), Some(&vector("chain.pem")), true).unwrap();
            run(vec![bare_layer(None)], &by(Signer::Certificate(sct.clone()), false)).unwrap();
            let err = verify_signatures(
                &Signatures { location: "l".into(), layers: vec![bare_layer(None)] },
                DIGEST,
                &by(Signer::Certificate(sct), false),
                Context { trust: &empty, now: Context::now_secs() },
            )
            .unwrap_err();
            assert!(matches!(err, LayerFailure::Sct(_)), "no CT log on the node: {err}");
        }

        /// A policy's own CT log key (Kyverno `ctlog.pubkey`, `ctLogPubKey`) replaces the node's.
        #[test]
        fn a_policys_ct_log_key_replaces_the_nodes_ct_logs() {
            use crate::verify::trust::LogKey;
            let log = |name: &str| LogKey::from_pem(&vector(name)).unwrap();
            let by = |signer: Signer| SignedBy::new(signer, Tlog::Ignore);
            let with_logs = |logs: Vec<LogKey>| {
                let mut c =
                    CertificateSigner::from_pem(&vector("leaf-sct.pem"), Some(&vector("chain.pem")), true).unwrap();
                c.sct_logs = logs;
                by(Signer::Certificate(c))
            };
            let bare = SignatureLayer {
                payload: vector("payload.json").into_bytes(),
                signature: vector("payload-leaf.sig").trim().into(),
                ..Default::default()
            };
            let empty = TrustRoot::empty();
            let on = |trust: &TrustRoot, by: &SignedBy, layer: &SignatureLayer| {
                let s = Signatures { location: "l".into(), layers: vec![layer.clone()] };
                verify_signatures(&s, DIGEST, by, Context { trust, now: Context::now_secs() })
            };
            // The test CT log's key, with nothing on the node.
            on(&empty, &with_logs(vec![log("ctlog.pub")]), &bare).unwrap();
            // Another key: refused, though the node's trust root holds the right one.
            let err = on(&trust(), &with_logs(vec![log("rekor.pub")]), &bare).unwrap_err();
            assert!(matches!(err, LayerFailure::Sct(_)), "{err}");
            // Keyless likewise.
            let keyless_by = |logs: Vec<LogKey>| {
                let mut s = keyless(Matcher::Exact("builder@example.com".into()), Some("root.pem"), true);
                if let Signer::Keyless(k) = &mut s {
                    k.sct_logs = logs;
                }
                by(s)
            };
            let carried = SignatureLayer {
                certificate: Some(vector("leaf-sct.pem")),
                chain: Some(vector("chain.pem")),
                ..bare.clone()
            };
            on(&empty, &keyless_by(vec![log("ctlog.pub")]), &carried).unwrap();
            let err = on(&trust(), &keyless_by(vec![log("rekor.pub")]), &carried).unwrap_err();
            assert!(matches!(err, LayerFailure::Sct(_)), "{err}");
        }

        /// What time decides, as in cosign: the policy's own certificate is trusted whenever
        /// (its chain is checked at its notBefore); a certificate the layer carries must be
        /// valid when the log entry says the signature was made, or now.
        #[test]
        fn only_a_carried_certificate_is_held_to_a_time() {
            let t = trust();
            let in_2001 = Context { trust: &t, now: 1_000_000_000 };
            let one = |layer| Signatures { location: "l".into(), layers: vec![layer] };
            let chained = by(certificate(Some("chain.pem"), false), false);
            verify_signatures(&one(bare_layer(None)), DIGEST, &chained, in_2001).unwrap();
            let err =
                verify_signatures(&one(leaf_layer("leaf-email.pem", None)), DIGEST, &chained, in_2001).unwrap_err();
            assert!(matches!(err, LayerFailure::Carried(CarriedError::Expired { at: 1_000_000_000, .. })), "{err}");
            let logged = leaf_layer("leaf-email.pem", Some("bundle-leaf-email.json"));
            verify_signatures(&one(logged), DIGEST, &by(certificate(None, false), true), in_2001).unwrap();
        }

        /// Kyverno's ImageValidatingPolicy with the log required: cosign checks the
        /// certificate against the Sigstore trusted root, not the chain; the node asks both.
        #[test]
        fn a_certificate_held_to_the_trust_roots_cas_chains_to_them_too() {
            let mut c =
                CertificateSigner::from_pem(&vector("leaf-email.pem"), Some(&vector("chain.pem")), false).unwrap();
            c.trust_root_cas = true;
            let held = by(Signer::Certificate(c), false);
            run(vec![bare_layer(None)], &held).unwrap();
            // A trust root whose CA is another one, or that has none.
            let mut v: serde_json::Value = serde_json::from_str(&vector("trusted_root.json")).unwrap();
            let other = pem::parse(vector("other-root.pem")).unwrap().into_contents();
            use base64::Engine;
            v["certificateAuthorities"][0]["certChain"]["certificates"] =
                serde_json::json!([{"rawBytes": base64::engine::general_purpose::STANDARD.encode(other)}]);
            let elsewhere = TrustRoot::parse(v.to_string().as_bytes(), "t.json").unwrap();
            let one = Signatures { location: "l".into(), layers: vec![bare_layer(None)] };
            let cx = |trust| Context { trust, now: Context::now_secs() };
            let err = verify_signatures(&one, DIGEST, &held, cx(&elsewhere)).unwrap_err();
            assert!(matches!(err, LayerFailure::Certificate(CertError::Untrusted(_))), "{err}");
            let err = verify_signatures(&one, DIGEST, &held, cx(&TrustRoot::empty())).unwrap_err();
            assert!(matches!(err, LayerFailure::NotCheckable(_)), "{err}");
        }

        #[test]
        fn a_policy_certificate_verifies_attestations_and_cosign_3_bundles_by_its_key() {
            // cosign attest-blob --key leaf.key made this bundle's sign/v1 statement.
            let layer = bundle_layer("bundle-v03-sign-leaf-logged.json");
            run(vec![layer.clone()], &by(certificate(None, false), false)).unwrap();
            run(vec![layer], &by(certificate(None, false), true)).unwrap();
            let other = run(vec![bundle_layer("bundle-v03-sign.json")], &by(certificate(None, false), false));
            assert!(matches!(other, Err(LayerFailure::WrongSigner { .. })), "{other:?}");
        }

        #[test]
        fn keyless_without_any_ca_fails_closed() {
            let empty = TrustRoot::empty();
            let s = Signatures { location: "l".into(), layers: vec![leaf_layer("leaf-email.pem", None)] };
            let signer = keyless(Matcher::Exact("builder@example.com".into()), None, false);
            let err =
                verify_signatures(&s, DIGEST, &by(signer, false), Context { trust: &empty, now: Context::now_secs() })
                    .unwrap_err();
            assert!(err.to_string().contains("no certificate authority"), "{err}");
        }

        #[test]
        fn attestations_of_the_required_type_by_the_signer() {
            let t = trust();
            let layer = |name: &str| SignatureLayer {
                payload: vector(name).into_bytes(),
                form: Form::Envelope,
                ..Default::default()
            };
            let atts = |names: &[&str]| Signatures {
                location: "l.att".into(),
                layers: names.iter().map(|n| layer(n)).collect(),
            };
            let want = |ty: &str| SignedBy { attestations: vec![ty.into()], ..SignedBy::new(key(), Tlog::Ignore) };
            let cx = Context { trust: &t, now: Context::now_secs() };
            verify_attestations(&atts(&["att-custom.json", "att-slsa.json"]), DIGEST, &want("slsaprovenance"), cx)
                .unwrap();
            let err =
                verify_attestations(&atts(&["att-custom.json"]), DIGEST, &want("slsaprovenance"), cx).unwrap_err();
            assert!(matches!(err, LayerFailure::Attestation(dsse::AttestationError::OtherType { .. })), "{err}");
            let err = verify_attestations(&atts(&[]), DIGEST, &want("custom"), cx).unwrap_err();
            assert!(err.to_string().contains("attestation custom"), "{err}");
            let mut two = want("custom");
            two.attestations.push("https://spdx.dev/Document".into());
            assert!(verify_attestations(&atts(&["att-custom.json", "att-slsa.json"]), DIGEST, &two, cx).is_err());
            // Through evaluate: an attestation authority reads the attestation evidence.
            let p = Policy::any_of(
                "p",
                vec![crate::policy::matching::ImageGlob::new("registry.example/**").unwrap()],
                vec![crate::policy::Authority {
                    name: "a".into(),
                    kind: AuthorityKind::Signed(Box::new(want("slsaprovenance"))),
                }],
                Mode::Enforce,
            );
            let ev = Evidence { attestations: Some(Ok(atts(&["att-slsa.json"]))), ..Default::default() };
            assert_eq!(needs(&[&p]), Needs { attestations: true, ..Default::default() });
            assert!(evaluate(&[&p], &ev, DIGEST, cx).allowed);
        }
    }

    /// RFC 3161 timestamps (testdata/tsa, made by integration/make-tsa-vectors.sh with
    /// openssl's TSA) on signatures of testdata/cosign's payload.
    mod timestamps {
        use super::*;
        use crate::registry::Timestamps;
        use crate::testutil::vector;
        use crate::verify::keyless::{Identity, Matcher};
        use crate::verify::signer::TrustedKey;
        use crate::verify::trust::{CaPool, TrustRoot};

        const DIGEST: &str = "sha256:479b4d26d48a0d046ea38ef2715bfa9bdc1ddff89de923a682848412d511d3a5";

        fn tsa_file(name: &str) -> Vec<u8> {
            std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/tsa").join(name)).unwrap()
        }

        fn text(name: &str) -> String {
            String::from_utf8(tsa_file(name)).unwrap()
        }

        fn stamp(name: &str) -> String {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(tsa_file(name))
        }

        fn authorities(name: &str) -> Authorities {
            Authorities::from_pem(&text(name)).unwrap()
        }

        /// The short-lived certificate's end.
        fn expiry() -> i64 {
            use x509_cert::der::DecodePem;
            let c = x509_cert::Certificate::from_pem(tsa_file("short-leaf.pem")).unwrap();
            c.tbs_certificate().validity().not_after.to_unix_duration().as_secs() as i64
        }

        fn short_layer(stamps: &[&str]) -> SignatureLayer {
            SignatureLayer {
                payload: vector("payload.json").into_bytes(),
                signature: text("short.sig"),
                certificate: Some(text("short-leaf.pem")),
                timestamps: Timestamps { tokens: stamps.iter().map(|s| stamp(s)).collect(), ..Default::default() },
                ..Default::default()
            }
        }

        fn keyless(tsa: Option<Authorities>) -> SignedBy {
            SignedBy {
                conditions: None,
                trust_until: None,
                signer: Signer::Keyless(Keyless {
                    identities: vec![Identity {
                        issuer: Matcher::Exact("https://issuer.example".into()),
                        subject: Matcher::Exact("builder@example.com".into()),
                        extensions: vec![],
                    }],
                    ca: Some(CaPool::from_pem(&text("short-ca.pem")).unwrap()),
                    sct: false,
                    sct_logs: vec![],
                }),
                tlog: Tlog::Ignore,
                attestations: vec![],
                tsa,
                source: None,
                trust_root_timestamps: false,
                trust: None,
            }
        }

        fn run(layer: SignatureLayer, by: &SignedBy, now: i64) -> Result<(), LayerFailure> {
            let t = TrustRoot::empty();
            let s = Signatures { location: "registry.example/team/app:sha256-479b.sig".into(), layers: vec![layer] };
            verify_signatures(&s, DIGEST, by, Context { trust: &t, now })
        }

        #[test]
        fn a_timestamp_shows_an_expired_certificate_was_valid_when_it_signed() {
            let later = expiry() + 86_400;
            let by = keyless(Some(authorities("tsa-chain.pem")));
            assert_eq!(run(short_layer(&["short.sig.tsr"]), &by, later), Ok(()));
            // Without the TSA in the policy the timestamp is not read: checked now, expired.
            let e = run(short_layer(&["short.sig.tsr"]), &keyless(None), later).unwrap_err();
            assert!(matches!(e, LayerFailure::Certificate(_)), "{e}");
            // With it but no timestamp on a .sig layer (cosign: not required), also now.
            let e = run(short_layer(&[]), &by, later).unwrap_err();
            assert!(matches!(e, LayerFailure::Certificate(_)), "{e}");
            // Before the certificate expired, no timestamp is needed.
            assert_eq!(run(short_layer(&[]), &by, expiry() - 60), Ok(()));
        }

        #[test]
        fn a_timestamp_that_does_not_verify_fails_the_signature() {
            let later = expiry() + 86_400;
            let by = keyless(Some(authorities("tsa-chain.pem")));
            // Another signature's timestamp (payload.sig's): it covers other bytes.
            let e = run(short_layer(&["payload.sig.tsr"]), &by, later).unwrap_err();
            assert!(matches!(&e, LayerFailure::Timestamp { error: TimestampError::OtherMessage, .. }), "{e}");
            // An authority the policy does not trust, even while the certificate is valid.
            let other = pem::encode(pem::parse_many(tsa_file("other-chain.pem")).unwrap().last().unwrap());
            let by_other = keyless(Some(Authorities::from_pem(&other).unwrap()));
            let e = run(short_layer(&["short.sig.tsr"]), &by_other, expiry() - 60).unwrap_err();
            assert!(matches!(&e, LayerFailure::Timestamp { error: TimestampError::Untrusted { .. }, .. }), "{e}");
            // Garbage where the timestamp goes.
            let mut layer = short_layer(&[]);
            layer.timestamps.tokens = vec!["not base64!".into()];
            let e = run(layer, &by, expiry() - 60).unwrap_err();
            assert!(matches!(&e, LayerFailure::Timestamp { error: TimestampError::NotBase64(_), .. }), "{e}");
        }

        #[test]
        fn a_key_signature_with_a_bad_timestamp_fails_and_with_a_good_one_passes() {
            let key = TrustedKey::from_pem(vector("cosign.pub").as_bytes()).unwrap();
            let by =
                SignedBy { tsa: Some(authorities("tsa-chain.pem")), ..SignedBy::new(Signer::Key(key), Tlog::Ignore) };
            let layer = |stamps: &[&str]| SignatureLayer {
                payload: vector("payload.json").into_bytes(),
                signature: vector("payload.sig").trim().into(),
                timestamps: Timestamps { tokens: stamps.iter().map(|s| stamp(s)).collect(), ..Default::default() },
                ..Default::default()
            };
            let now = Context::now_secs();
            assert_eq!(run(layer(&["payload.sig.tsr"]), &by, now), Ok(()));
            assert_eq!(run(layer(&[]), &by, now), Ok(()));
            let e = run(layer(&["short.sig.tsr"]), &by, now).unwrap_err();
            assert!(matches!(&e, LayerFailure::Timestamp { error: TimestampError::OtherMessage, .. }), "{e}");
        }

        /// Kyverno ImageValidatingPolicy, keyless with the log ignored and no TSA chain: a
        /// bundle is verified by its signed timestamp under the node trust root's timestamp
        /// authorities (`shouldUseSignedTimestamps`), within each one's `validFor`.
        #[test]
        fn a_bundle_can_be_held_to_the_trust_roots_timestamp_authorities() {
            let bundle = |stamped: bool| SignatureLayer {
                payload: tsa_file("short.envelope.json"),
                form: Form::Envelope,
                certificate: Some(text("short-leaf.pem")),
                timestamps: Timestamps {
                    tokens: if stamped { vec![stamp("short.envelope.tsr")] } else { vec![] },
                    over: crate::registry::Stamped::BundleSignature,
                },
                ..Default::default()
            };
            let mut by = keyless(None);
            by.trust_root_timestamps = true;
            let root = TrustRoot::parse(&tsa_file("trusted_root-tsa.json"), "trusted_root-tsa.json").unwrap();
            let later = expiry() + 86_400;
            let on = |trust: &TrustRoot, by: &SignedBy, layer: SignatureLayer| {
                let s = Signatures { location: "l".into(), layers: vec![layer] };
                verify_signatures(&s, DIGEST, by, Context { trust, now: later })
            };
            assert_eq!(on(&root, &by, bundle(true)), Ok(()));
            // No timestamp: required, even though the certificate would be checked now.
            let e = on(&root, &by, bundle(false)).unwrap_err();
            assert!(matches!(&e, LayerFailure::Timestamp { error: TimestampError::Missing, .. }), "{e}");
            // A trust root without timestamp authorities cannot vouch: refused, saying so.
            let e = on(&TrustRoot::empty(), &by, bundle(true)).unwrap_err();
            assert!(matches!(&e, LayerFailure::NotCheckable(_)), "{e}");
            // An authority whose validFor ended before the timestamp does not vouch for it.
            let mut v: serde_json::Value = serde_json::from_slice(&tsa_file("trusted_root-tsa.json")).unwrap();
            v["timestampAuthorities"][0]["validFor"]["end"] = "2021-01-01T00:00:00Z".into();
            let retired = TrustRoot::parse(v.to_string().as_bytes(), "t.json").unwrap();
            let e = on(&retired, &by, bundle(true)).unwrap_err();
            assert!(matches!(&e, LayerFailure::Timestamp { error: TimestampError::Untrusted { .. }, .. }), "{e}");
            // Without the flag the timestamp is not read, and the certificate has expired.
            let e = on(&root, &keyless(None), bundle(true)).unwrap_err();
            assert!(matches!(&e, LayerFailure::Certificate(_)), "{e}");
            // A second signature beside the timestamped one (review finding): the timestamp
            // covers the first only, so the envelope is refused, as sigstore-go refuses it.
            let mut two: serde_json::Value = serde_json::from_slice(&tsa_file("short.envelope.json")).unwrap();
            let first = two["signatures"][0].clone();
            two["signatures"].as_array_mut().unwrap().push(first);
            let e =
                on(&root, &by, SignatureLayer { payload: two.to_string().into_bytes(), ..bundle(true) }).unwrap_err();
            assert!(matches!(&e, LayerFailure::Attestation(_)) && e.to_string().contains("exactly one"), "{e}");
        }

        #[test]
        fn a_bundle_verified_against_a_tsa_must_carry_a_timestamp() {
            let by = keyless(Some(authorities("tsa-chain.pem")));
            let mut layer = short_layer(&[]);
            layer.timestamps.over = crate::registry::Stamped::BundleSignature;
            let t = TrustRoot::empty();
            let cx = Context { trust: &t, now: 0 };
            let failure = stamp_time(&layer, &by, cx, "x").unwrap_err();
            assert!(matches!(&failure, LayerFailure::Timestamp { error: TimestampError::Missing, .. }), "{failure}");
            // A .sig layer need not.
            assert_eq!(stamp_time(&short_layer(&[]), &by, cx, "x"), Ok(None));
        }
    }
}
