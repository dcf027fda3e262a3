//! Which address a request comes from: the peer of the connection, or, when the peer is a
//! configured trusted proxy, the client address that proxy reports in a header.
//!
//! Failed authentications are limited per client address, so the address must not be
//! forgeable: a header counts only when the connection comes from a trusted proxy, and in
//! a list (`X-Forwarded-For: client, proxy1, proxy2`) the nearest address that is not itself
//! a trusted proxy is the client (addresses further left were written by whoever sent them).

use std::net::IpAddr;
use std::str::FromStr;

use axum::http::{HeaderMap, HeaderName};
use ipnet::IpNet;

/// How to find a request's client address.
#[derive(Debug, Clone, Default)]
pub struct ClientAddressRule {
    header: Option<HeaderName>,
    trusted: Vec<IpNet>,
}

impl ClientAddressRule {
    /// A rule reading `header` from connections of the `trusted` proxies (addresses or
    /// networks such as `10.0.0.0/8`).
    pub fn new(header: Option<&str>, trusted: &[String]) -> Result<Self, String> {
        let header = header
            .map(|h| {
                HeaderName::from_str(h.trim())
                    .map_err(|_| format!("{h:?} is not an HTTP header name"))
            })
            .transpose()?;
        let trusted = trusted
            .iter()
            .map(|t| parse_network(t))
            .collect::<Result<_, _>>()?;
        Ok(Self { header, trusted })
    }

    fn is_trusted(&self, address: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&address))
    }

    /// The client address of a request whose connection comes from `peer`.
    pub fn resolve(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?;
        let Some(header) = &self.header else {
            return Some(peer);
        };
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let listed: Vec<IpAddr> = headers
            .get_all(header)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| parse_address(a.trim()))
            .collect();
        let client = listed
            .iter()
            .rev()
            .find(|a| !self.is_trusted(**a))
            .or(listed.first())
            .copied();
        Some(client.unwrap_or(peer))
    }
}

/// An address or a network (`10.0.0.1`, `10.0.0.0/8`, `fd00::/8`).
fn parse_network(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    IpNet::from_str(text)
        .or_else(|_| IpAddr::from_str(text).map(IpNet::from))
        .map_err(|_| format!("{text:?} is not an IP address or network"))
}

/// An address as proxies write it: bare, `[v6]`, or with a port (`1.2.3.4:5678`).
fn parse_address(text: &str) -> Option<IpAddr> {
    if let Ok(address) = IpAddr::from_str(text) {
        return Some(address);
    }
    std::net::SocketAddr::from_str(text)
        .map(|s| s.ip())
        .ok()
        .or_else(|| {
            let inner = text.strip_prefix('[')?.strip_suffix(']')?;
            IpAddr::from_str(inner).ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert("x-forwarded-for", value.parse().unwrap());
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_header_counts_only_from_a_trusted_proxy() {
        let rule = ClientAddressRule::new(Some("x-forwarded-for"), &["10.0.0.0/8".into()]).unwrap();
        let forged = headers("203.0.113.9");
        assert_eq!(
            rule.resolve(Some(ip("198.51.100.7")), &forged),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(
            rule.resolve(Some(ip("10.1.2.3")), &forged),
            Some(ip("203.0.113.9"))
        );
    }

    #[test]
    fn the_nearest_untrusted_address_is_the_client() {
        let rule = ClientAddressRule::new(
            Some("x-forwarded-for"),
            &["10.0.0.0/8".into(), "192.0.2.1".into()],
        )
        .unwrap();
        let chain = headers("1.1.1.1, 203.0.113.9:4711, 192.0.2.1");
        assert_eq!(
            rule.resolve(Some(ip("10.0.0.2")), &chain),
            Some(ip("203.0.113.9"))
        );
        let none = HeaderMap::new();
        assert_eq!(
            rule.resolve(Some(ip("10.0.0.2")), &none),
            Some(ip("10.0.0.2"))
        );
    }

    #[test]
    fn without_a_header_rule_the_peer_is_the_client_and_bad_rules_are_refused() {
        let rule = ClientAddressRule::new(None, &[]).unwrap();
        assert_eq!(
            rule.resolve(Some(ip("::1")), &headers("1.1.1.1")),
            Some(ip("::1"))
        );
        assert!(ClientAddressRule::new(Some("bad header"), &[]).is_err());
        assert!(ClientAddressRule::new(None, &["10.0.0.0/33".into()]).is_err());
    }
}
