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

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use http::uri::Scheme;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

pub use omniforge_types::{HostPattern, InvalidHostPattern};

use super::outbound::{self, Target};
use crate::outcome::Usage;
use crate::state::InvocationState;
use wasmtime::component::Linker;

/// What outbound HTTP one invocation may do.
///
/// Patterns come from two sources that are trusted differently. The skill's own (its
/// manifest's `[permissions] http`, written by its author) never reach loopback, private or
/// link-local addresses, even when they name one literally: a package must not be able to
/// reach the operator's network or a cloud metadata service by declaring it. The operator's
/// (`omniforge run --allow-http`, a tenant's policy) may: a pattern there that names an
/// address literally (an IP literal or `localhost`) allows that address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpPolicy {
    /// Destinations the skill declared (and the caller approved); public addresses only.
    pub allowed: Vec<HostPattern>,
    /// Destinations the operator grants, including private addresses named literally.
    pub operator_allowed: Vec<HostPattern>,
    /// Let every allowed host name resolve to loopback, private or link-local addresses.
    /// Off by default.
    pub allow_private_networks: bool,
    /// Destinations the tenant's policy permits: when set, a destination in
    /// [`Self::allowed`] is reachable only if it also matches one of these (operator grants
    /// are not narrowed).
    pub tenant_allowed: Option<Vec<HostPattern>>,
}

impl HttpPolicy {
    /// A policy allowing the patterns a skill declared.
    pub fn allow(patterns: impl IntoIterator<Item = HostPattern>) -> Self {
        Self {
            allowed: patterns.into_iter().collect(),
            ..Self::default()
        }
    }

    /// A policy allowing patterns the operator granted.
    pub fn operator(patterns: impl IntoIterator<Item = HostPattern>) -> Self {
        Self {
            operator_allowed: patterns.into_iter().collect(),
            ..Self::default()
        }
    }

    /// Whether the request may go out at all, and whether it may reach a private address.
    fn decide(&self, scheme: &Scheme, host: &str, port: u16) -> Option<bool> {
        let matches = |p: &&HostPattern| p.matches(scheme.as_str(), host, port);
        let mut operator = self.operator_allowed.iter().filter(matches).peekable();
        let tenant_permits = self
            .tenant_allowed
            .as_ref()
            .is_none_or(|permitted| permitted.iter().any(|p| matches(&p)));
        let granted = operator.peek().is_some()
            || (tenant_permits && self.allowed.iter().any(|p| matches(&p)));
        let explicit = operator.any(|p| p.names_address_explicitly());
        granted.then_some(self.allow_private_networks || explicit)
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
    /// The invocation's `traceparent`, added to requests that carry none.
    trace_parent: Option<http::HeaderValue>,
}

impl super::Capability for OutboundHttp {
    fn add_to_linker(linker: &mut Linker<InvocationState>) -> wasmtime::Result<()> {
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
    }

    fn new(setup: &super::Setup<'_>) -> Self {
        let mut http = Self::new(setup.grants.http.clone(), setup.invoker.config.http);
        http.trace_parent = setup
            .context
            .trace_parent
            .as_deref()
            .and_then(|t| http::HeaderValue::from_str(t).ok());
        http
    }

    fn report(&self, usage: &mut Usage) {
        usage.http_requests = self.requests;
    }
}

impl OutboundHttp {
    pub(crate) fn new(policy: HttpPolicy, limits: HttpLimits) -> Self {
        Self {
            policy,
            limits,
            requests: 0,
            trace_parent: None,
        }
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
        let Some(allow_private) = self.policy.decide(&scheme, &host, port) else {
            tracing::debug!(%scheme, %host, port, "outbound HTTP denied: not in the allow-list");
            return Err(HttpError::HttpRequestDenied);
        };
        Ok(Admitted {
            tls: scheme == Scheme::HTTPS,
            allow_private,
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
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), HttpError>> + Send>
    {
        let admitted = self.admit(&request);
        if let Some(trace_parent) = &self.trace_parent {
            request
                .headers_mut()
                .entry("traceparent")
                .or_insert_with(|| trace_parent.clone());
        }
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_tenant_policy_narrows_what_the_skill_declared_but_not_operator_grants() {
        let p = |s: &str| s.parse::<HostPattern>().unwrap();
        let mut policy = HttpPolicy::allow([p("api.example.com"), p("*.example.org")]);
        let https = Scheme::HTTPS;
        assert_eq!(policy.decide(&https, "api.example.com", 443), Some(false));
        policy.tenant_allowed = Some(vec![p("*.example.org")]);
        assert_eq!(policy.decide(&https, "api.example.com", 443), None);
        assert_eq!(policy.decide(&https, "x.example.org", 443), Some(false));
        policy.tenant_allowed = Some(Vec::new());
        assert_eq!(policy.decide(&https, "x.example.org", 443), None);
        policy.operator_allowed = vec![p("api.example.com")];
        assert_eq!(policy.decide(&https, "api.example.com", 443), Some(false));
    }
}
