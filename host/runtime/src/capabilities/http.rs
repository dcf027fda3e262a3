//! Outbound HTTP (`wasi:http/outgoing-handler`), deny by default.
//!
//! A request leaves the sandbox only if its scheme, host and port match a [`HostPattern`] of
//! the invocation's [`HttpPolicy`]. The host name is then resolved here, and addresses that
//! are loopback, private, link-local or otherwise not public are refused unless the matching
//! pattern names that address literally (or `localhost`) or the policy allows private
//! networks. The connection goes to the vetted address itself, so a DNS answer that changes
//! between the check and the connect (rebinding) cannot redirect it. A refused request
//! answers the guest with WASI HTTP's `HTTP-request-denied` (or
//! `destination-IP-prohibited`) error, which the guest may handle.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::time::Duration;

use http::uri::Scheme;
use thiserror::Error;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use super::outbound::{self, Target};

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
    pub fn matches(&self, scheme: &Scheme, host: &str, port: u16) -> bool {
        let is_https = *scheme == Scheme::HTTPS;
        let scheme_ok = match self.scheme {
            SchemePattern::Https => is_https,
            SchemePattern::Http => *scheme == Scheme::HTTP,
            SchemePattern::Any => is_https || *scheme == Scheme::HTTP,
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
    fn names_address_explicitly(&self) -> bool {
        match &self.host {
            HostMatch::Ip(_) => true,
            HostMatch::Exact(h) => h == "localhost",
            _ => false,
        }
    }
}

/// What outbound HTTP one invocation may do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpPolicy {
    /// Destinations allowed; empty denies all outbound HTTP.
    pub allowed: Vec<HostPattern>,
    /// Allow host names that resolve to loopback, private or link-local addresses. Off by
    /// default: a public skill must not reach the operator's internal network.
    pub allow_private_networks: bool,
}

impl HttpPolicy {
    /// A policy allowing exactly these patterns.
    pub fn allow(patterns: impl IntoIterator<Item = HostPattern>) -> Self {
        Self {
            allowed: patterns.into_iter().collect(),
            allow_private_networks: false,
        }
    }

    /// The first allow-list entry matching the request, if any.
    fn matching(&self, scheme: &Scheme, host: &str, port: u16) -> Option<&HostPattern> {
        self.allowed.iter().find(|p| p.matches(scheme, host, port))
    }
}

/// Host-side bounds on outbound HTTP, whatever the guest asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Requests per invocation.
    pub max_requests: u32,
    /// Largest response body; reading past it fails with `HTTP-response-body-size`.
    pub max_response_bytes: u64,
    /// Longest wait for DNS plus the TCP connect plus the TLS handshake.
    pub connect_timeout: Duration,
    /// Longest wait for the response head.
    pub first_byte_timeout: Duration,
    /// Longest wait between two chunks of the response body.
    pub between_bytes_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_requests: 32,
            max_response_bytes: 10 << 20,
            connect_timeout: Duration::from_secs(5),
            first_byte_timeout: Duration::from_secs(15),
            between_bytes_timeout: Duration::from_secs(10),
        }
    }
}

/// The `WasiHttpHooks` of one invocation: checks each request against the policy and sends
/// allowed ones through [`outbound`].
pub(crate) struct OutboundHttp {
    policy: HttpPolicy,
    limits: HttpLimits,
    requests: u32,
}

impl OutboundHttp {
    pub(crate) fn new(policy: HttpPolicy, limits: HttpLimits) -> Self {
        Self {
            policy,
            limits,
            requests: 0,
        }
    }

    pub(crate) fn requests(&self) -> u32 {
        self.requests
    }

    /// Decides whether the request may go out and where to.
    fn admit(&mut self, request: &http::Request<WasiBody>) -> Result<Admitted, HttpError> {
        self.requests = self.requests.saturating_add(1);
        if self.requests > self.limits.max_requests {
            return Err(HttpError::ConnectionLimitReached);
        }
        let uri = request.uri();
        let scheme = uri
            .scheme()
            .cloned()
            .ok_or(HttpError::HttpRequestUriInvalid)?;
        let authority = uri.authority().ok_or(HttpError::HttpRequestUriInvalid)?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let host = host.to_ascii_lowercase();
        let host = host.strip_suffix('.').unwrap_or(&host).to_owned();
        let port = authority
            .port_u16()
            .unwrap_or(if scheme == Scheme::HTTPS { 443 } else { 80 });
        let Some(pattern) = self.policy.matching(&scheme, &host, port) else {
            tracing::debug!(%scheme, %host, port, "outbound HTTP denied: not in the allow-list");
            return Err(HttpError::HttpRequestDenied);
        };
        Ok(Admitted {
            tls: scheme == Scheme::HTTPS,
            allow_private: self.policy.allow_private_networks || pattern.names_address_explicitly(),
            host,
            port,
        })
    }

    fn timeouts(&self, options: Option<RequestOptions>) -> outbound::Timeouts {
        let pick = |asked: Option<Duration>, cap: Duration| asked.map_or(cap, |a| a.min(cap));
        let options = options.unwrap_or_default();
        outbound::Timeouts {
            connect: pick(options.connect_timeout, self.limits.connect_timeout),
            first_byte: pick(options.first_byte_timeout, self.limits.first_byte_timeout),
            between_bytes: pick(
                options.between_bytes_timeout,
                self.limits.between_bytes_timeout,
            ),
        }
    }
}

struct Admitted {
    tls: bool,
    allow_private: bool,
    host: String,
    port: u16,
}

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), HttpError>> + Send>
    {
        let admitted = self.admit(&request);
        let timeouts = self.timeouts(options);
        let max_response_bytes = self.limits.max_response_bytes;
        Box::new(async move {
            let admitted = admitted?;
            let addresses =
                outbound::resolve(&admitted.host, admitted.port, timeouts.connect).await?;
            let addresses: Vec<_> = addresses
                .into_iter()
                .filter(|addr| admitted.allow_private || is_public(addr.ip()))
                .collect();
            if addresses.is_empty() {
                tracing::debug!(host = %admitted.host, "outbound HTTP denied: not a public address");
                return Err(HttpError::DestinationIpProhibited);
            }
            let target = Target {
                addresses,
                tls_name: admitted.tls.then(|| admitted.host.clone()),
                max_response_bytes,
            };
            outbound::send(request, target, timeouts).await
        })
    }
}

/// Whether `ip` is a globally routable unicast address (not loopback, private, link-local,
/// shared, documentation, benchmarking, multicast, reserved or unspecified).
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => {
            if let Some(v4) = ip.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let first = ip.segments()[0];
            !(ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || ip.is_unique_local()
                || ip.is_unicast_link_local()
                || (first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
                || (first == 0x0064 && ip.segments()[1] == 0xff9b) // NAT64 can reach IPv4 private
                || first & 0xffc0 == 0xfec0 // site-local (deprecated)
                || ip.segments()[..6] == [0; 6]) // IPv4-compatible
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240) // reserved
}

fn parse_ip(host: &str) -> Option<IpAddr> {
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
        assert!(pat.matches(&Scheme::HTTPS, "api.example.com", 443));
        assert!(!pat.matches(&Scheme::HTTP, "api.example.com", 80));
        assert!(!pat.matches(&Scheme::HTTPS, "api.example.com", 8443));
        assert!(p("http://api.example.com").matches(&Scheme::HTTP, "api.example.com", 80));
        assert!(p("*://api.example.com").matches(&Scheme::HTTP, "api.example.com", 80));
        assert!(p("*://api.example.com").matches(&Scheme::HTTPS, "api.example.com", 443));
    }

    #[test]
    fn ports_must_match_unless_wildcarded() {
        assert!(p("example.com:8443").matches(&Scheme::HTTPS, "example.com", 8443));
        assert!(!p("example.com:8443").matches(&Scheme::HTTPS, "example.com", 443));
        assert!(p("example.com:*").matches(&Scheme::HTTPS, "example.com", 1));
    }

    #[test]
    fn wildcards_match_subdomains_only() {
        let pat = p("*.example.com");
        assert!(pat.matches(&Scheme::HTTPS, "a.example.com", 443));
        assert!(pat.matches(&Scheme::HTTPS, "a.b.example.com", 443));
        assert!(!pat.matches(&Scheme::HTTPS, "example.com", 443));
        assert!(!pat.matches(&Scheme::HTTPS, "badexample.com", 443));
        assert!(!pat.matches(&Scheme::HTTPS, "example.com.evil.net", 443));
        assert!(p("*").matches(&Scheme::HTTPS, "anything.net", 443));
    }

    #[test]
    fn ip_literals_match_and_are_explicit() {
        let pat = p("http://127.0.0.1:8080");
        assert!(pat.matches(&Scheme::HTTP, "127.0.0.1", 8080));
        assert!(pat.names_address_explicitly());
        let v6 = p("http://[::1]:8080");
        assert!(v6.matches(&Scheme::HTTP, "::1", 8080));
        assert_eq!(v6.to_string(), "http://[::1]:8080");
        assert!(!p("example.com").names_address_explicitly());
        assert!(p("http://localhost:1").names_address_explicitly());
    }

    #[test]
    fn host_names_are_case_and_trailing_dot_insensitive() {
        assert!(p("API.Example.COM.").matches(&Scheme::HTTPS, "api.example.com", 443));
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

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip} should not be public");
        }
        for ip in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip} should be public");
        }
    }
}
