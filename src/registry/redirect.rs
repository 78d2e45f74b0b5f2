//! Where a registry may send us: redirects (blobs are commonly served from a CDN or object
//! store) and token realms are followed only if they keep the scheme and do not turn a
//! request to a remote host into one to this node's loopback or link-local addresses (the
//! node's own services, a cloud metadata endpoint). The check is on the URL as written (IP
//! literals and `localhost` names); a DNS name that resolves to such an address is not
//! caught, which would take a resolver that knows which request a lookup is for.

use std::net::IpAddr;

use reqwest::Url;

/// At most this many hops, as Go's net/http (containerd) allows ten.
pub const MAX_HOPS: usize = 10;

/// `Err` says why `from` may not lead to `to`.
pub fn allowed(from: &Url, to: &Url) -> Result<(), String> {
    if from.scheme() != to.scheme() {
        return Err(format!("{} leads from {} to {}, another scheme", host_of(from), from.scheme(), to.scheme()));
    }
    if is_local(to) && !is_local(from) {
        return Err(format!("{} leads to {}, a loopback or link-local address", host_of(from), host_of(to)));
    }
    Ok(())
}

fn host_of(u: &Url) -> String {
    match (u.host_str(), u.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => u.as_str().to_string(),
    }
}

/// Loopback, link-local or unspecified, by address or by the `localhost` names.
pub fn is_local(u: &Url) -> bool {
    let Some(host) = u.host_str() else { return false };
    let ip = match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        Ok(v4) => v4,
        Err(_) => {
            let d = host.trim_end_matches('.').to_ascii_lowercase();
            return d == "localhost" || d.ends_with(".localhost");
        }
    };
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local() || v4.is_unspecified(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// The client-wide policy: each hop checked against the first request.
pub fn policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let verdict = match attempt.previous().first() {
            Some(first) => allowed(first, attempt.url()),
            None => Ok(()),
        };
        match verdict {
            Err(e) => attempt.error(e),
            Ok(()) if attempt.previous().len() > MAX_HOPS => attempt.error(format!("more than {MAX_HOPS} redirects")),
            Ok(()) => attempt.follow(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(from: &str, to: &str) -> Result<(), String> {
        allowed(&from.parse().unwrap(), &to.parse().unwrap())
    }

    #[test]
    fn redirects_keep_the_scheme_and_stay_off_local_addresses() {
        assert_eq!(check("https://reg.io/v2/a/blobs/x", "https://cdn.example/blob?sig=1"), Ok(()));
        let e = check("https://reg.io/v2/", "http://reg.io/v2/").unwrap_err();
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
        ] {
            let e = check("https://reg.io/v2/a/manifests/t", local).unwrap_err();
            assert!(e.contains("reg.io leads to") && e.contains("loopback"), "{local}: {e}");
        }
        // A registry on loopback (a test or a node-local mirror) may redirect on loopback.
        assert_eq!(check("http://127.0.0.1:5000/v2/", "http://localhost:5000/b"), Ok(()));
        assert_eq!(check("https://reg.io/", "https://10.0.0.1/b"), Ok(()), "private ranges are other hosts");
    }
}
