//! Keyless signatures: a short-lived certificate (Fulcio's, or a private CA's) names the
//! signer; the policy names which identities it trusts.
//!
//! A certificate counts only if (1) it chains to a trusted CA, for code signing, and was
//! valid at the moment the signature was logged (or now, when no log entry is required),
//! (2) its OIDC issuer and subject match one of the policy's identities, exact or by regular
//! expression, as do the Fulcio extensions the identity names (Kyverno's
//! `additionalExtensions`: GitHub workflow trigger, SHA, name, repository, ref), and (3) its
//! key verifies the signature. An identity field the node cannot
//! evaluate is an error at load time, never a field that is skipped.

use rustls_pki_types::{CertificateDer, UnixTime};
use sigstore::crypto::CosignVerificationKey;
use x509_cert::der::asn1::Utf8StringRef;
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;

use super::trust::CaPool;

/// OIDC issuer, DER UTF8String (Fulcio since 2022).
const ISSUER_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.8");
/// OIDC issuer, raw string (deprecated, still emitted).
const ISSUER_V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.1");
/// Fulcio's first extensions (1.3.6.1.4.1.57264.1.1 to .1.6: the OIDC issuer and the GitHub
/// workflow trigger, SHA, name, repository and ref), raw strings, with the names cosign and
/// Kyverno give them.
pub const FULCIO_V1_EXTENSIONS: [(&str, &str); 6] = [
    ("1.3.6.1.4.1.57264.1.1", "oidcIssuer"),
    ("1.3.6.1.4.1.57264.1.2", "githubWorkflowTrigger"),
    ("1.3.6.1.4.1.57264.1.3", "githubWorkflowSha"),
    ("1.3.6.1.4.1.57264.1.4", "githubWorkflowName"),
    ("1.3.6.1.4.1.57264.1.5", "githubWorkflowRepository"),
    ("1.3.6.1.4.1.57264.1.6", "githubWorkflowRef"),
];
/// id-kp-codeSigning (1.3.6.1.5.5.7.3.3), the value bytes webpki compares.
const CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, thiserror::Error)]
pub enum CertError {
    #[error("the signing certificate is unreadable: {0}")]
    Malformed(String),
    #[error("the signing certificate does not chain to a trusted CA ({0})")]
    Untrusted(String),
    #[error("the signing certificate names {found}, which matches no trusted identity")]
    Identity { found: String },
}

/// A policy's identity field pair that does not make one matcher.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatcherError {
    #[error("{what}RegExp: {message}")]
    BadRegex { what: String, message: String },
    #[error("{what} and {what}RegExp are both set; set one")]
    Both { what: String },
    #[error("{what} or {what}RegExp is required")]
    Neither { what: String },
}

/// A regular expression or an exact string, as policies write identities.
#[derive(Clone, Debug)]
pub enum Matcher {
    Exact(String),
    /// Unanchored, like cosign's and policy-controller's `…RegExp` fields (Go's MatchString):
    /// write `^…$` to pin the whole value.
    Regex(regex::Regex),
}

impl Matcher {
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Exact(s) => s == value,
            Matcher::Regex(r) => r.is_match(value),
        }
    }

    /// From a policy's pair of fields; exactly one must be set.
    pub fn from_fields(exact: Option<&str>, regexp: Option<&str>, what: &str) -> Result<Self, MatcherError> {
        match (exact, regexp) {
            (Some(e), None) => Ok(Matcher::Exact(e.to_string())),
            (None, Some(r)) => regex::Regex::new(r)
                .map(Matcher::Regex)
                .map_err(|e| MatcherError::BadRegex { what: what.to_string(), message: e.to_string() }),
            (Some(_), Some(_)) => Err(MatcherError::Both { what: what.to_string() }),
            (None, None) => Err(MatcherError::Neither { what: what.to_string() }),
        }
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Matcher::Exact(a), Matcher::Exact(b)) => a == b,
            (Matcher::Regex(a), Matcher::Regex(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

/// One trusted signer identity: every part must match.
#[derive(Clone, Debug, PartialEq)]
pub struct Identity {
    pub issuer: Matcher,
    pub subject: Matcher,
    /// Fulcio extensions by dotted OID (one of [`FULCIO_V1_EXTENSIONS`]), each of which the
    /// certificate must carry with a matching value.
    pub extensions: Vec<(String, Matcher)>,
}

/// What a trusted certificate says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    pub issuer: Option<String>,
    /// Email addresses and URIs from the subject alternative names.
    pub subjects: Vec<String>,
    /// The [`FULCIO_V1_EXTENSIONS`] it carries, by dotted OID, as raw strings.
    pub extensions: std::collections::BTreeMap<String, String>,
}

impl CertIdentity {
    /// What it says, with the extensions `asked` (the identities' OIDs) by name.
    fn describe(&self, asked: &[&str]) -> String {
        let mut text = format!("subject {:?} from issuer {:?}", self.subjects, self.issuer.as_deref().unwrap_or(""));
        for oid in asked {
            let name = FULCIO_V1_EXTENSIONS.iter().find(|(o, _)| o == oid).map_or(*oid, |(_, n)| n);
            let value = self.extensions.get(*oid).map_or("none".to_string(), |v| format!("{v:?}"));
            text.push_str(&format!(", {name} {value}"));
        }
        text
    }

    /// With no identities configured any holder is accepted: the CA is the policy.
    pub fn check(&self, identities: &[Identity]) -> Result<(), CertError> {
        let ok = identities.is_empty()
            || identities.iter().any(|id| {
                self.issuer.as_deref().is_some_and(|i| id.issuer.matches(i))
                    && self.subjects.iter().any(|s| id.subject.matches(s))
                    && id.extensions.iter().all(|(oid, m)| self.extensions.get(oid).is_some_and(|v| m.matches(v)))
            });
        if ok {
            Ok(())
        } else {
            let mut asked: Vec<&str> =
                identities.iter().flat_map(|id| id.extensions.iter().map(|(oid, _)| oid.as_str())).collect();
            asked.sort();
            asked.dedup();
            Err(CertError::Identity { found: self.describe(&asked) })
        }
    }
}

/// A certificate that chains to a trusted CA.
pub struct TrustedCert {
    pub der: Vec<u8>,
    pub key: CosignVerificationKey,
    pub identity: CertIdentity,
}

/// Verify `cert_pem` (and the untrusted `chain_pem` that helps build a path) against `ca`,
/// at `at` seconds since the epoch.
pub fn verify_certificate(
    cert_pem: &str,
    chain_pem: Option<&str>,
    ca: &CaPool,
    at: i64,
) -> Result<TrustedCert, CertError> {
    let block = pem::parse(cert_pem).map_err(|e| CertError::Malformed(e.to_string()))?;
    if block.tag() != "CERTIFICATE" {
        return Err(CertError::Malformed(format!("PEM block is {:?}", block.tag())));
    }
    let der = block.into_contents();
    let mut intermediates = ca.intermediates.clone();
    if let Some(chain) = chain_pem {
        let blocks = pem::parse_many(chain).map_err(|e| CertError::Malformed(format!("chain: {e}")))?;
        intermediates.extend(blocks.into_iter().map(|b| CertificateDer::from(b.into_contents())));
    }
    let anchors = ca
        .roots
        .iter()
        .map(|r| webpki::anchor_from_trusted_cert(r).map(|a| a.to_owned()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::Untrusted(format!("bad CA certificate: {e}")))?;
    let leaf = CertificateDer::from(der.as_slice());
    let ee = webpki::EndEntityCert::try_from(&leaf).map_err(|e| CertError::Malformed(e.to_string()))?;
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(at.max(0) as u64));
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &intermediates,
        time,
        webpki::KeyUsage::required(CODE_SIGNING),
        None,
        None,
    )
    .map_err(|e| CertError::Untrusted(format!("{e:?}")))?;

    let cert = x509_cert::Certificate::from_der(&der).map_err(|e| CertError::Malformed(e.to_string()))?;
    let tbs = cert.tbs_certificate();
    let spki = tbs.subject_public_key_info().to_der().map_err(|e| CertError::Malformed(e.to_string()))?;
    let key = CosignVerificationKey::try_from_der(&spki).map_err(|e| CertError::Malformed(e.to_string()))?;
    Ok(TrustedCert { der, key, identity: identity(&cert)? })
}

fn identity(cert: &x509_cert::Certificate) -> Result<CertIdentity, CertError> {
    let mut subjects = Vec::new();
    let (mut v1, mut v2) = (None, None);
    let mut extensions = std::collections::BTreeMap::new();
    let mut unreadable = std::collections::BTreeSet::new();
    for ext in cert.tbs_certificate().extensions().map(|e| e.as_slice()).unwrap_or_default() {
        let value = ext.extn_value.as_bytes();
        if ext.extn_id == SubjectAltName::OID {
            let san = SubjectAltName::from_der(value).map_err(|e| CertError::Malformed(format!("SAN: {e}")))?;
            for name in san.0 {
                match name {
                    GeneralName::Rfc822Name(s) | GeneralName::UniformResourceIdentifier(s) => {
                        subjects.push(s.to_string())
                    }
                    _ => {}
                }
            }
        } else if ext.extn_id == ISSUER_V2 {
            let s = Utf8StringRef::from_der(value).map_err(|e| CertError::Malformed(format!("issuer: {e}")))?;
            v2 = Some(s.as_str().to_string());
        } else if ext.extn_id == ISSUER_V1 {
            v1 = Some(String::from_utf8_lossy(value).into_owned());
        }
        let oid = ext.extn_id.to_string();
        if FULCIO_V1_EXTENSIONS.iter().any(|(o, _)| *o == oid) {
            // Raw bytes, as cosign reads them (`string(ext.Value)`). Bytes that are not UTF-8,
            // or an extension given twice (which Go's parser refuses), count as absent: no
            // pattern matches what Kyverno would not read.
            match std::str::from_utf8(value) {
                Ok(text) if extensions.insert(oid.clone(), text.to_string()).is_none() => {}
                _ => {
                    unreadable.insert(oid);
                }
            }
        }
    }
    extensions.retain(|oid, _| !unreadable.contains(oid));
    Ok(CertIdentity { issuer: v2.or(v1), subjects, extensions })
}

use x509_cert::der::oid::AssociatedOid as _;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::vector;

    const ISSUER: &str = "https://issuer.example";
    const URI: &str = "https://github.com/example/app/.github/workflows/release.yml@refs/heads/main";

    fn pool(name: &str) -> CaPool {
        CaPool::from_pem(&vector(name)).unwrap()
    }

    fn now() -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
    }

    #[test]
    fn cosign_accepted_certificates_chain_and_name_their_holder() {
        let email = verify_certificate(&vector("leaf-email.pem"), Some(&vector("chain.pem")), &pool("root.pem"), now())
            .unwrap();
        assert_eq!(email.identity.issuer.as_deref(), Some(ISSUER));
        assert_eq!(email.identity.subjects, ["builder@example.com"]);
        let uri =
            verify_certificate(&vector("leaf-uri.pem"), Some(&vector("chain.pem")), &pool("root.pem"), now()).unwrap();
        assert_eq!(uri.identity.subjects, [URI]);
    }

    fn github(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/keyless-github").join(name);
        std::fs::read_to_string(path).unwrap()
    }

    /// Kyverno `additionalExtensions` (ClusterPolicy keyless): the certificate's Fulcio
    /// GitHub workflow extensions are read and each one an identity names must match; one
    /// the certificate lacks or that differs fails, and the refusal shows what it holds.
    #[test]
    fn fulcio_github_extensions_are_read_and_matched() {
        let leaf = verify_certificate(
            &github("leaf.pem"),
            Some(&github("chain.pem")),
            &CaPool::from_pem(&github("root.pem")).unwrap(),
            now(),
        )
        .unwrap();
        let oid = |name: &str| FULCIO_V1_EXTENSIONS.iter().find(|(_, n)| *n == name).unwrap().0.to_string();
        for line in github("extensions").lines() {
            let (name, value) = line.split_once(' ').unwrap();
            assert_eq!(leaf.identity.extensions.get(&oid(name)).map(String::as_str), Some(value), "{name}");
        }
        assert_eq!(leaf.identity.extensions[&oid("oidcIssuer")], "https://token.actions.githubusercontent.com");
        let exact = |name: &str, v: &str| {
            (oid(name), Matcher::Regex(regex::Regex::new(&format!("^{}$", regex::escape(v))).unwrap()))
        };
        let id = |extensions: Vec<(String, Matcher)>| Identity {
            issuer: Matcher::Exact("https://token.actions.githubusercontent.com".into()),
            subject: Matcher::Regex(regex::Regex::new("^https://github.com/example/app/").unwrap()),
            extensions,
        };
        let ok = id(vec![exact("githubWorkflowRepository", "example/app"), exact("githubWorkflowTrigger", "push")]);
        assert!(leaf.identity.check(&[ok]).is_ok());
        let e = leaf.identity.check(&[id(vec![exact("githubWorkflowRef", "refs/heads/release")])]).unwrap_err();
        assert!(e.to_string().contains(r#"githubWorkflowRef "refs/heads/main""#), "{e}");
        // A certificate without the extension (the plain URI leaf) does not match it.
        let plain =
            verify_certificate(&vector("leaf-uri.pem"), Some(&vector("chain.pem")), &pool("root.pem"), now()).unwrap();
        let e = plain
            .identity
            .check(&[Identity {
                issuer: Matcher::Exact(ISSUER.into()),
                ..id(vec![exact("githubWorkflowRepository", "example/app")])
            }])
            .unwrap_err();
        assert!(e.to_string().contains("githubWorkflowRepository none"), "{e}");
    }

    #[test]
    fn untrusted_or_expired_certificates_fail() {
        let leaf = vector("leaf-email.pem");
        let chain = vector("chain.pem");
        // A chain annotation carries its own root: it must not become trusted by being there.
        let err = verify_certificate(&leaf, Some(&chain), &pool("other-root.pem"), now()).err().unwrap();
        assert!(matches!(err, CertError::Untrusted(_)), "{err}");
        // The intermediate is needed to build the path.
        assert!(verify_certificate(&leaf, None, &pool("root.pem"), now()).is_err());
        // Not yet valid in 2001.
        assert!(verify_certificate(&leaf, Some(&chain), &pool("root.pem"), 1_000_000_000).is_err());
    }

    #[test]
    fn identities_match_exactly_or_by_regexp_and_both_parts_count() {
        let id =
            CertIdentity { issuer: Some(ISSUER.into()), subjects: vec![URI.into()], extensions: Default::default() };
        let m = |i: Option<&str>, ir: Option<&str>, s: Option<&str>, sr: Option<&str>| Identity {
            issuer: Matcher::from_fields(i, ir, "issuer").unwrap(),
            subject: Matcher::from_fields(s, sr, "subject").unwrap(),
            extensions: vec![],
        };
        assert!(id.check(&[m(Some(ISSUER), None, Some(URI), None)]).is_ok());
        assert!(id
            .check(&[m(None, Some("^https://issuer\\.example$"), None, Some("^https://github\\.com/example/"))])
            .is_ok());
        // The regexp is applied, never ignored: a subject from another org fails.
        let err = id.check(&[m(Some(ISSUER), None, None, Some("^https://github\\.com/other/"))]).unwrap_err();
        assert!(err.to_string().contains("github.com/example/app"), "{err}");
        assert!(id.check(&[m(Some("https://evil.example"), None, Some(URI), None)]).is_err());
        // Any one identity of several suffices.
        assert!(id.check(&[m(Some("x"), None, Some("y"), None), m(Some(ISSUER), None, Some(URI), None)]).is_ok());
        assert!(Matcher::from_fields(None, Some("("), "subject").unwrap_err().to_string().contains("subjectRegExp"));
        assert!(Matcher::from_fields(Some("a"), Some("b"), "issuer").is_err());
    }
}
