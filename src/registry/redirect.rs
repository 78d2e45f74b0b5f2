//! Where a registry may send us: redirects (blobs are commonly served from a CDN or object
//! store) and token realms are followed only if they keep the scheme and do not turn a
//! request to a remote host into one to this node's loopback or link-local addresses (the
//! node's own services, a cloud metadata endpoint). This module judges the URL as written
//! (IP literals and `localhost` names); a DNS name the registry chose is held to the same
//! rule on the addresses it resolves to, by [`super::dns::Remote`].

use std::net::IpAddr;

use reqwest::Url;

/// At most this many hops, as Go's net/http (containerd) allows ten.
pub const MAX_HOPS: usize = 10;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RedirectError {
    #[error("{host} leads from {from} to {to}, another scheme")]
    OtherScheme { host: String, from: String, to: String },
    #[error("{host} leads to {to}, a loopback or link-local address")]
    Local { host: String, to: String },
    #[error("{host} leads to {location:?}, which is not a URL: {message}")]
    BadLocation { host: String, location: String, message: String },
    #[error("{host} leads through more than {MAX_HOPS} redirects")]
    TooMany { host: String },
}

/// Whether `from` (the first URL of the request) may lead to `to`.
pub fn allowed(from: &Url, to: &Url) -> Result<(), RedirectError> {
    if from.scheme() != to.scheme() {
        return Err(RedirectError::OtherScheme {
            host: host_of(from),
            from: from.scheme().to_string(),
            to: to.scheme().to_string(),
        });
    }
    if is_local(to) && !is_local(from) {
        return Err(RedirectError::Local { host: host_of(from), to: host_of(to) });
    }
    Ok(())
}

/// `host[:port]` of a URL, for messages.
pub fn host_of(u: &Url) -> String {
    match (u.host_str(), u.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => u.as_str().to_string(),
    }
}

/// Loopback, link-local or unspecified, by address or by the `localhost` names.
pub fn is_local(u: &Url) -> bool {
    let Some(host) = u.host_str() else { return false };
    match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        Ok(ip) => is_local_ip(ip),
        Err(_) => {
            let d = host.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
    }
}

/// Loopback, link-local or unspecified, IPv4-mapped IPv6 addresses as their IPv4 selves.
pub fn is_local_ip(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback() || v4.is_link_local() || v4.is_unspecified() || METADATA_V4.contains(&v4.octets())
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || METADATA_V6.contains(&v6.segments())
        }
    }
}

/// Cloud instance-metadata services outside loopback and link-local (review): Alibaba
/// Cloud's 100.100.100.200, and AWS's IPv6 endpoint fd00:ec2::254.
const METADATA_V4: [[u8; 4]; 1] = [[100, 100, 100, 200]];
const METADATA_V6: [[u16; 8]; 1] = [[0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254]];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_services_off_link_local_are_local_too() {
        for ip in ["100.100.100.200", "fd00:ec2::254", "169.254.169.254", "::ffff:100.100.100.200"] {
            assert!(is_local_ip(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["100.100.100.201", "fd00:ec2::253", "192.0.2.7"] {
            assert!(!is_local_ip(ip.parse().unwrap()), "{ip}");
        }
    }

    fn check(from: &str, to: &str) -> Result<(), RedirectError> {
        allowed(&from.parse().unwrap(), &to.parse().unwrap())
    }

    #[test]
    fn redirects_keep_the_scheme_and_stay_off_local_addresses() {
        assert_eq!(check("https://reg.io/v2/a/blobs/x", "https://cdn.example/blob?sig=1"), Ok(()));
        let e = check("https://reg.io/v2/", "http://reg.io/v2/").unwrap_err().to_string();
        assert!(e.contains("reg.io") && e.contains("another scheme"), "{e}");
        assert!(check("http://reg.local:5000/", "https://reg.local:5000/").is_err(), "no upgrade either");
        for local in [
            "https://127.0.0.1/x",
            "https://127.1.2.3:8443/x",
            "https://[::1]/x",
            "https://169.254.169.254/latest/meta-data",
            "https://[fe80::1]/x",
            "https://[::ffff:127.0.0.1]/x",
            "https://0.0.0.0/x",
            "https://localhost/x",
            "https://api.localhost./x",
            // WHATWG URL parsing reads these as 127.0.0.1.
            "https://2130706433/x",
            "https://0x7f.1/x",
        ] {
            let e = check("https://reg.io/v2/a/manifests/t", local).unwrap_err();
            assert!(matches!(e, RedirectError::Local { .. }), "{local}: {e}");
            let text = e.to_string();
            assert!(text.contains("reg.io leads to") && text.contains("loopback"), "{local}: {text}");
        }
        // A registry on loopback (a test or a node-local mirror) may redirect on loopback.
        assert_eq!(check("http://127.0.0.1:5000/v2/", "http://localhost:5000/b"), Ok(()));
        assert_eq!(check("https://reg.io/", "https://10.0.0.1/b"), Ok(()), "private ranges are other hosts");
    }
}
