//! HTTP host patterns: the allow-list entries of `[permissions] http` in a skill manifest,
//! enforced by the runtime for outbound requests.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use thiserror::Error;

/// One allow-list entry: `[scheme://]host[:port]`.
///
/// - scheme: `https` (the default when omitted), `http`, or `*` for both;
/// - host: a name (`api.example.com`), a wildcard for subdomains (`*.example.com` matches
///   `a.example.com` and `a.b.example.com`, not `example.com`), `*` for any host, or an IP
///   literal (`127.0.0.1`, `[::1]`);
/// - port: a number, `*` for any, or omitted for the scheme's default port (443 or 80).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    scheme: SchemePattern,
    host: HostMatch,
    port: Option<u16>,
    any_port: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SchemePattern {
    Http,
    Https,
    Any,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    Any,
    Exact(String),
    Subdomains(String),
    Ip(IpAddr),
}

/// A host pattern that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid HTTP host pattern {pattern:?}: {reason}")]
pub struct InvalidHostPattern {
    pattern: String,
    reason: &'static str,
}

impl FromStr for HostPattern {
    type Err = InvalidHostPattern;

    fn from_str(pattern: &str) -> Result<Self, Self::Err> {
        let invalid = |reason| InvalidHostPattern {
            pattern: pattern.to_owned(),
            reason,
        };
        let (scheme, rest) = match pattern.split_once("://") {
            Some(("https", rest)) => (SchemePattern::Https, rest),
            Some(("http", rest)) => (SchemePattern::Http, rest),
            Some(("*", rest)) => (SchemePattern::Any, rest),
            Some(_) => return Err(invalid("the scheme must be http, https or *")),
            None => (SchemePattern::Https, pattern),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(invalid("give a host and port only, no path, query or user"));
        }
        let (host, port) = split_host_port(rest).ok_or_else(|| invalid("malformed host"))?;
        let (port, any_port) = match port {
            None => (None, false),
            Some("*") => (None, true),
            Some(p) => (
                Some(p.parse::<u16>().map_err(|_| invalid("bad port"))?),
                false,
            ),
        };
        let host = host.to_ascii_lowercase();
        let host = match host.strip_suffix('.') {
            Some("*") | Some("") => return Err(invalid("malformed host")),
            Some(stripped) => stripped.to_owned(),
            None => host,
        };
        let host = if host == "*" {
            HostMatch::Any
        } else if let Some(parent) = host.strip_prefix("*.") {
            if !is_host_name(parent) {
                return Err(invalid("bad host name after *."));
            }
            HostMatch::Subdomains(parent.to_owned())
        } else if let Some(ip) = parse_ip(&host) {
            HostMatch::Ip(ip)
        } else if is_host_name(&host) {
            HostMatch::Exact(host)
        } else {
            return Err(invalid("bad host name"));
        };
        Ok(Self {
            scheme,
            host,
            port,
            any_port,
        })
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            SchemePattern::Http => "http",
            SchemePattern::Https => "https",
            SchemePattern::Any => "*",
        };
        write!(f, "{scheme}://")?;
        match &self.host {
            HostMatch::Any => write!(f, "*")?,
            HostMatch::Exact(h) => write!(f, "{h}")?,
            HostMatch::Subdomains(h) => write!(f, "*.{h}")?,
            HostMatch::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]")?,
            HostMatch::Ip(ip) => write!(f, "{ip}")?,
        }
        match (self.any_port, self.port) {
            (true, _) => write!(f, ":*"),
            (false, Some(p)) => write!(f, ":{p}"),
            (false, None) => Ok(()),
        }
    }
}

impl HostPattern {
    /// Whether a request to `scheme://host:port` matches. `host` must be lowercase without a
    /// trailing dot; IPv6 literals without brackets.
    pub fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        let is_https = scheme.eq_ignore_ascii_case("https");
        let is_http = scheme.eq_ignore_ascii_case("http");
        let scheme_ok = match self.scheme {
            SchemePattern::Https => is_https,
            SchemePattern::Http => is_http,
            SchemePattern::Any => is_https || is_http,
        };
        let port_ok = self.any_port
            || match self.port {
                Some(p) => p == port,
                None => port == if is_https { 443 } else { 80 },
            };
        let host_ok = match &self.host {
            HostMatch::Any => true,
            HostMatch::Exact(h) => h == host,
            HostMatch::Subdomains(parent) => host
                .strip_suffix(parent.as_str())
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
            HostMatch::Ip(ip) => parse_ip(host) == Some(*ip),
        };
        scheme_ok && port_ok && host_ok
    }

    /// Whether this pattern names its destination so precisely (an IP literal or `localhost`)
    /// that reaching a loopback or private address through it is explicitly allowed.
    pub fn names_address_explicitly(&self) -> bool {
        match &self.host {
            HostMatch::Ip(_) => true,
            HostMatch::Exact(h) => h == "localhost",
            _ => false,
        }
    }
}

impl HostPattern {
    /// The shortest text that parses back to this pattern: [`fmt::Display`]'s, without the
    /// default `https://`. Never longer than any text the pattern was parsed from.
    pub fn compact(&self) -> String {
        let full = self.to_string();
        match full.strip_prefix("https://") {
            Some(rest) => rest.to_owned(),
            None => full,
        }
    }
}

crate::text_serde!(HostPattern);

/// `host` as an IP address, with or without IPv6 brackets.
pub fn parse_ip(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse::<Ipv4Addr>()
        .map(IpAddr::V4)
        .or_else(|_| bare.parse::<Ipv6Addr>().map(IpAddr::V6))
        .ok()
}

fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        return match after {
            "" => Some((ip, None)),
            p => p.strip_prefix(':').map(|p| (ip, Some(p))),
        };
    }
    match s.rsplit_once(':') {
        Some((h, _)) if h.contains(':') => None, // an unbracketed IPv6 literal
        Some((h, p)) => Some((h, Some(p))),
        None => Some((s, None)),
    }
    .filter(|(h, _)| !h.is_empty())
}

fn is_host_name(host: &str) -> bool {
    host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> HostPattern {
        s.parse().unwrap()
    }

    #[test]
    fn scheme_defaults_to_https_on_its_default_port() {
        let pat = p("api.example.com");
        assert!(pat.matches("https", "api.example.com", 443));
        assert!(!pat.matches("http", "api.example.com", 80));
        assert!(!pat.matches("https", "api.example.com", 8443));
        assert!(p("http://api.example.com").matches("http", "api.example.com", 80));
        assert!(p("*://api.example.com").matches("http", "api.example.com", 80));
        assert!(p("*://api.example.com").matches("https", "api.example.com", 443));
    }

    #[test]
    fn ports_must_match_unless_wildcarded() {
        assert!(p("example.com:8443").matches("https", "example.com", 8443));
        assert!(!p("example.com:8443").matches("https", "example.com", 443));
        assert!(p("example.com:*").matches("https", "example.com", 1));
    }

    #[test]
    fn wildcards_match_subdomains_only() {
        let pat = p("*.example.com");
        assert!(pat.matches("https", "a.example.com", 443));
        assert!(pat.matches("https", "a.b.example.com", 443));
        assert!(!pat.matches("https", "example.com", 443));
        assert!(!pat.matches("https", "badexample.com", 443));
        assert!(!pat.matches("https", "example.com.evil.net", 443));
        assert!(p("*").matches("https", "anything.net", 443));
    }

    #[test]
    fn ip_literals_match_and_are_explicit() {
        let pat = p("http://127.0.0.1:8080");
        assert!(pat.matches("http", "127.0.0.1", 8080));
        assert!(pat.names_address_explicitly());
        let v6 = p("http://[::1]:8080");
        assert!(v6.matches("http", "::1", 8080));
        assert_eq!(v6.to_string(), "http://[::1]:8080");
        assert!(!p("example.com").names_address_explicitly());
        assert!(p("http://localhost:1").names_address_explicitly());
    }

    #[test]
    fn host_names_are_case_and_trailing_dot_insensitive() {
        assert!(p("API.Example.COM.").matches("https", "api.example.com", 443));
    }

    #[test]
    fn malformed_patterns_are_rejected() {
        for bad in [
            "",
            "ftp://example.com",
            "example.com/path",
            "user@example.com",
            "example.com:99999",
            "*.",
            "exa mple.com",
            "::1",
            "-bad.com",
        ] {
            assert!(
                bad.parse::<HostPattern>().is_err(),
                "{bad:?} should be rejected"
            );
        }
    }
}
