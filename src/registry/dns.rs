//! Name resolution for the registry client. A request the node chose (a registry, a mirror,
//! a lookaside store: names from its own configuration and the pod's image) resolves as the
//! system resolves it. A request a remote registry chose (a redirect hop to another host, a
//! token realm) is resolved by [`Remote`], which drops loopback, link-local and unspecified
//! answers: a name must not do what [`super::redirect`] refuses an address literal. The
//! check is on the addresses the connection is then made to, so a name that answers
//! differently the second time (DNS rebinding) gains nothing.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use futures::future::BoxFuture;

use super::redirect;

/// How names become addresses: the system's resolver, or a fake at this seam in tests.
pub trait Lookup: Send + Sync + 'static {
    fn lookup(&self, name: &str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>>;
}

/// getaddrinfo on tokio's blocking pool, as reqwest's own default resolver does.
pub struct System;

impl Lookup for System {
    fn lookup(&self, name: &str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>> {
        let name = name.to_string();
        Box::pin(async move { Ok(tokio::net::lookup_host((name.as_str(), 0)).await?.map(|a| a.ip()).collect()) })
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum DnsError {
    #[error("{name} resolves to {addresses}, loopback or link-local, and was named by a remote host")]
    Local { name: String, addresses: String },
    #[error("{name} resolves to no address")]
    Empty { name: String },
    #[error("cannot resolve {name}: {message}")]
    Lookup { name: String, message: String },
}

/// Every answer, for the hosts the node chose.
pub struct Direct(pub Arc<dyn Lookup>);

/// Only answers off loopback and link-local, for the hosts a remote registry chose.
pub struct Remote(pub Arc<dyn Lookup>);

fn resolve(lookup: &Arc<dyn Lookup>, name: reqwest::dns::Name, remote: bool) -> reqwest::dns::Resolving {
    let (lookup, name) = (Arc::clone(lookup), name.as_str().to_string());
    Box::pin(async move {
        let found =
            lookup.lookup(&name).await.map_err(|e| DnsError::Lookup { name: name.clone(), message: e.to_string() })?;
        let kept = checked(&name, found, remote)?;
        let addrs: reqwest::dns::Addrs = Box::new(kept.into_iter().map(|ip| SocketAddr::new(ip, 0)));
        Ok(addrs)
    })
}

/// The answers a connection may use; for a remote host's name, none on local addresses.
pub fn checked(name: &str, found: Vec<IpAddr>, remote: bool) -> Result<Vec<IpAddr>, DnsError> {
    if found.is_empty() {
        return Err(DnsError::Empty { name: name.to_string() });
    }
    if !remote {
        return Ok(found);
    }
    let (local, kept): (Vec<IpAddr>, Vec<IpAddr>) = found.into_iter().partition(|ip| redirect::is_local_ip(*ip));
    if kept.is_empty() {
        let addresses = local.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(", ");
        return Err(DnsError::Local { name: name.to_string(), addresses });
    }
    Ok(kept)
}

impl reqwest::dns::Resolve for Direct {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        resolve(&self.0, name, false)
    }
}

impl reqwest::dns::Resolve for Remote {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        resolve(&self.0, name, true)
    }
}

/// The [`DnsError`] among an error's causes, where a connection failed on one.
pub fn refusal_in<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a DnsError> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(d) = c.downcast_ref::<DnsError>() {
            return Some(d);
        }
        cause = c.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn a_remote_hosts_name_never_resolves_to_this_node() {
        let e = checked("evil.example", ips(&["127.0.0.1", "::1"]), true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "evil.example resolves to 127.0.0.1, ::1, loopback or link-local, and was named by a remote host"
        );
        for local in ["169.254.169.254", "fe80::1", "::ffff:127.0.0.1", "0.0.0.0", "127.5.5.5"] {
            assert!(matches!(checked("evil.example", ips(&[local]), true), Err(DnsError::Local { .. })), "{local}");
        }
        // Mixed answers: the connection may use only the others.
        assert_eq!(checked("cdn.example", ips(&["127.0.0.1", "192.0.2.7"]), true), Ok(ips(&["192.0.2.7"])));
        // The node's own choices resolve as the system says.
        assert_eq!(checked("registry.local", ips(&["127.0.0.1"]), false), Ok(ips(&["127.0.0.1"])));
        assert!(matches!(checked("x", vec![], false), Err(DnsError::Empty { .. })));
    }
}
