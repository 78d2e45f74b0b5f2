//! KMS key URIs, in the forms cosign and policy-controller take.
//!
//! - `gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K[/cryptoKeyVersions/V]`
//!   (`versions/V` is accepted as cosign does)
//! - `awskms://[HOST[:PORT]]/KEY` where KEY is a key id, `alias/NAME`, or a key or alias
//!   ARN; a HOST is an endpoint reached over https (LocalStack, moto, VPC endpoints)
//! - `azurekms://VAULT.vault.azure.net/KEY[/VERSION]`
//! - `hashivault://KEY` (Vault transit, `$VAULT_ADDR`)
//!
//! Parsing is strict so a malformed URI is rejected at load naming the field, never
//! turned into a request for some other key.

use std::fmt;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("KMS key URI {uri:?}: {message}")]
pub struct UriError {
    pub uri: String,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KmsUri {
    Gcp {
        /// `projects/P/locations/L/keyRings/R/cryptoKeys/K`
        key: String,
        version: Option<String>,
    },
    Aws {
        /// `HOST[:PORT]` of an https endpoint instead of the regional one.
        endpoint: Option<String>,
        /// As GetPublicKey's `KeyId` takes it: id, `alias/…`, or ARN.
        key_id: String,
        /// From an ARN; otherwise the node's region.
        region: Option<String>,
    },
    Azure {
        /// `VAULT.vault.azure.net` (or another Key Vault DNS suffix).
        vault: String,
        name: String,
        version: Option<String>,
    },
    Vault {
        name: String,
    },
}

fn segment_ok(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl KmsUri {
    pub fn parse(uri: &str) -> Result<Self, UriError> {
        let err = |message: &str| UriError { uri: uri.to_string(), message: message.to_string() };
        let (scheme, rest) = uri.split_once("://").ok_or_else(|| err("not a URI (scheme://...)"))?;
        match scheme {
            "gcpkms" => {
                let parts: Vec<&str> = rest.split('/').collect();
                let shape = "expected gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K[/cryptoKeyVersions/V]";
                let fixed = ["projects", "locations", "keyRings", "cryptoKeys"];
                if !(parts.len() == 8 || parts.len() == 10) {
                    return Err(err(shape));
                }
                for (i, name) in fixed.iter().enumerate() {
                    if parts[2 * i] != *name || !segment_ok(parts[2 * i + 1]) {
                        return Err(err(shape));
                    }
                }
                let version = if parts.len() == 10 {
                    if !matches!(parts[8], "cryptoKeyVersions" | "versions") || !segment_ok(parts[9]) {
                        return Err(err(shape));
                    }
                    Some(parts[9].to_string())
                } else {
                    None
                };
                Ok(KmsUri::Gcp { key: parts[..8].join("/"), version })
            }
            "awskms" => {
                let (host, key) = rest.split_once('/').ok_or_else(|| err("expected awskms://[HOST]/KEY"))?;
                let endpoint = if host.is_empty() {
                    None
                } else {
                    let ok = host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':'));
                    if !ok {
                        return Err(err("the endpoint must be HOST or HOST:PORT"));
                    }
                    Some(host.to_string())
                };
                let region = aws_key(key).map_err(err)?;
                Ok(KmsUri::Aws { endpoint, key_id: key.to_string(), region })
            }
            "azurekms" => {
                let parts: Vec<&str> = rest.split('/').collect();
                let shape = "expected azurekms://VAULT.vault.azure.net/KEY[/VERSION]";
                if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| segment_ok(p)) || !parts[0].contains('.') {
                    return Err(err(shape));
                }
                Ok(KmsUri::Azure {
                    vault: parts[0].to_string(),
                    name: parts[1].to_string(),
                    version: parts.get(2).map(|v| v.to_string()),
                })
            }
            "hashivault" => {
                if !segment_ok(rest) {
                    return Err(err("expected hashivault://KEY (a transit key name)"));
                }
                Ok(KmsUri::Vault { name: rest.to_string() })
            }
            _ => Err(err("unknown KMS scheme (gcpkms, awskms, azurekms or hashivault)")),
        }
    }

    /// The provider's name, for messages.
    pub fn provider(&self) -> &'static str {
        match self {
            KmsUri::Gcp { .. } => "GCP Cloud KMS",
            KmsUri::Aws { .. } => "AWS KMS",
            KmsUri::Azure { .. } => "Azure Key Vault",
            KmsUri::Vault { .. } => "HashiCorp Vault transit",
        }
    }
}

/// Check an AWS key reference; returns the region an ARN names.
fn aws_key(key: &str) -> Result<Option<String>, &'static str> {
    let name_ok = |s: &str, extra: &[char]| {
        !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || extra.contains(&c))
    };
    if let Some(alias) = key.strip_prefix("alias/") {
        return if name_ok(alias, &['/', ':']) { Ok(None) } else { Err("malformed alias name") };
    }
    if let Some(arn) = key.strip_prefix("arn:") {
        let parts: Vec<&str> = arn.splitn(5, ':').collect();
        let [partition, service, region, account, resource] = parts[..] else {
            return Err("malformed ARN (arn:PARTITION:kms:REGION:ACCOUNT:key/ID or alias/NAME)");
        };
        let resource_ok = match resource.split_once('/') {
            Some(("key", id)) => name_ok(id, &[]),
            Some(("alias", name)) => name_ok(name, &['/', ':']),
            _ => false,
        };
        let region_ok = name_ok(region, &[]);
        let account_ok = account.len() == 12 && account.chars().all(|c| c.is_ascii_digit());
        if !matches!(partition, "aws" | "aws-cn" | "aws-us-gov") || service != "kms" || !region_ok || !account_ok {
            return Err("malformed ARN (arn:PARTITION:kms:REGION:ACCOUNT:key/ID or alias/NAME)");
        }
        if !resource_ok {
            return Err("malformed ARN resource (key/ID or alias/NAME)");
        }
        return Ok(Some(region.to_string()));
    }
    if name_ok(key, &[]) {
        Ok(None)
    } else {
        Err("expected a key id, alias/NAME or a KMS ARN")
    }
}

impl fmt::Display for KmsUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KmsUri::Gcp { key, version: Some(v) } => write!(f, "gcpkms://{key}/cryptoKeyVersions/{v}"),
            KmsUri::Gcp { key, version: None } => write!(f, "gcpkms://{key}"),
            KmsUri::Aws { endpoint, key_id, .. } => {
                write!(f, "awskms://{}/{key_id}", endpoint.as_deref().unwrap_or(""))
            }
            KmsUri::Azure { vault, name, version: Some(v) } => write!(f, "azurekms://{vault}/{name}/{v}"),
            KmsUri::Azure { vault, name, version: None } => write!(f, "azurekms://{vault}/{name}"),
            KmsUri::Vault { name } => write!(f, "hashivault://{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_cosign_documents_parse() {
        let gcp = KmsUri::parse("gcpkms://projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1");
        assert_eq!(
            gcp,
            Ok(KmsUri::Gcp {
                key: "projects/p/locations/global/keyRings/r/cryptoKeys/k".into(),
                version: Some("1".into())
            })
        );
        let short = KmsUri::parse("gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k/versions/3").unwrap();
        assert_eq!(short.to_string(), "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/3");
        assert!(matches!(
            KmsUri::parse("gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k"),
            Ok(KmsUri::Gcp { version: None, .. })
        ));
        for (uri, endpoint, region) in [
            ("awskms:///1234abcd-12ab-34cd-56ef-1234567890ab", None, None),
            ("awskms:///alias/ExampleAlias", None, None),
            ("awskms://localhost:4566/alias/ExampleAlias", Some("localhost:4566"), None),
            ("awskms://127.0.0.1:9443/1234abcd-12ab-34cd-56ef-1234567890ab", Some("127.0.0.1:9443"), None),
            (
                "awskms:///arn:aws:kms:us-east-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                None,
                Some("us-east-2"),
            ),
            ("awskms:///arn:aws-us-gov:kms:us-gov-west-1:111122223333:alias/ExampleAlias", None, Some("us-gov-west-1")),
        ] {
            let Ok(KmsUri::Aws { endpoint: e, region: r, key_id }) = KmsUri::parse(uri) else { panic!("{uri}") };
            assert_eq!((e.as_deref(), r.as_deref()), (endpoint, region), "{uri}");
            assert_eq!(format!("awskms://{}/{key_id}", e.as_deref().unwrap_or("")), uri);
        }
        assert_eq!(
            KmsUri::parse("azurekms://myvault.vault.azure.net/mykey/0123abcd"),
            Ok(KmsUri::Azure {
                vault: "myvault.vault.azure.net".into(),
                name: "mykey".into(),
                version: Some("0123abcd".into())
            })
        );
        assert_eq!(KmsUri::parse("hashivault://signer"), Ok(KmsUri::Vault { name: "signer".into() }));
    }

    #[test]
    fn malformed_uris_are_rejected_naming_the_uri() {
        for bad in [
            "awskms://",
            "awskms:///",
            "awskms:///arn:aws:kms:us-east-2:1111:key/abc",
            "awskms:///arn:aws:s3:us-east-2:111122223333:key/abc",
            "awskms:///arn:aws:kms:us-east-2:111122223333:bucket/abc",
            "awskms:///key id with spaces",
            "awskms://host/with/path/1234",
            "gcpkms://projects/p/locations/l/keyRings/r",
            "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/",
            "gcpkms://projects/p/locations/l/rings/r/cryptoKeys/k",
            "azurekms://myvault/",
            "azurekms://myvault.vault.azure.net/k/v/extra",
            "hashivault://",
            "hashivault://a/b",
            "vault://x",
            "awskms",
        ] {
            let e = KmsUri::parse(bad).unwrap_err();
            assert!(e.to_string().starts_with(&format!("KMS key URI {bad:?}: ")), "{e}");
        }
    }
}
