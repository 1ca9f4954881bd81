//! Per-client rate limiting for the public routes (GCRA from the `governor` crate).
//!
//! The client is the TCP peer, unless the peer is a configured trusted proxy
//! (`api.trusted_proxies`): then it is the nearest address in `Forwarded` / `X-Forwarded-For`
//! that is not itself a trusted proxy. IPv6 clients are counted per /64 (one subscriber's usual
//! allocation), so a client cannot mint a fresh quota from each of its addresses. Addresses idle
//! long enough to have a full quota again are forgotten every [`FORGET_EVERY`], so the table
//! holds only the clients of the last moments, whatever their number.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::HeaderMap;
use actix_web::HttpRequest;
use anyhow::Context;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;

use crate::api::error::{code, ApiError};
use crate::config::ApiSettings;

/// How often idle addresses are dropped from the limiter's table.
pub const FORGET_EVERY: Duration = Duration::from_secs(10);

pub struct PublicLimiter {
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    trusted: Vec<IpNet>,
}

impl PublicLimiter {
    /// # Errors
    /// When an entry of `api.trusted_proxies` is neither an address nor a CIDR block.
    pub fn new(settings: &ApiSettings) -> anyhow::Result<Self> {
        let rate = NonZeroU32::new(settings.public_rate_per_s).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(settings.public_burst).unwrap_or(rate);
        let trusted = settings
            .trusted_proxies
            .iter()
            .map(|entry| parse_net(entry))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            limiter: Arc::new(RateLimiter::keyed(
                Quota::per_second(rate).allow_burst(burst),
            )),
            trusted,
        })
    }

    /// Drops idle addresses every [`FORGET_EVERY`] until the limiter itself is dropped. Needs a
    /// tokio runtime.
    pub fn spawn_forgetting(&self) {
        let limiter = Arc::downgrade(&self.limiter);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FORGET_EVERY);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(limiter) = limiter.upgrade() else {
                    return;
                };
                forget_idle(&limiter);
            }
        });
    }

    /// Forgets every address whose quota is full again (they are indistinguishable from new
    /// ones).
    pub fn forget_idle(&self) {
        forget_idle(&self.limiter);
    }

    /// Addresses (IPv6: /64 blocks) the limiter remembers.
    #[must_use]
    pub fn tracked(&self) -> usize {
        self.limiter.len()
    }

    /// The address a request is counted under: see the module documentation.
    #[must_use]
    pub fn client_key(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer;
        if self.is_trusted(peer) {
            // From the nearest hop outwards: the first address that is not one of our proxies.
            for hop in forwarded_chain(headers).into_iter().rev() {
                client = hop;
                if !self.is_trusted(hop) {
                    break;
                }
            }
        }
        key(client)
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// Counts one request from the caller.
    ///
    /// # Errors
    /// 429 `rate_limited` with `Retry-After` when the caller is over its quota.
    pub fn check(&self, req: &HttpRequest) -> Result<(), ApiError> {
        let Some(peer) = req.peer_addr().map(|addr| addr.ip()) else {
            return Ok(());
        };
        let client = self.client_key(peer, req.headers());
        self.limiter.check_key(&client).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::new(
                code::RATE_LIMITED,
                "too many requests from this address; slow down",
            )
            .retry_after(wait.as_secs().max(1))
        })
    }
}

/// A public route's caller within its quota: as a handler's first argument, it rate-limits the
/// route before anything else is read (429 `rate_limited` otherwise).
#[derive(Debug, Clone, Copy)]
pub struct WithinQuota;

impl actix_web::FromRequest for WithinQuota {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let checked = match req.app_data::<actix_web::web::Data<super::AppState>>() {
            Some(state) => state.public_limiter.check(req).map(|()| Self),
            None => Err(ApiError::internal(&std::io::Error::other(
                "the application state is not registered",
            ))),
        };
        std::future::ready(checked)
    }
}

fn forget_idle(limiter: &DefaultKeyedRateLimiter<IpAddr>) {
    limiter.retain_recent();
    limiter.shrink_to_fit();
}

fn parse_net(entry: &str) -> anyhow::Result<IpNet> {
    let entry = entry.trim();
    if let Ok(net) = entry.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    let ip: IpAddr = entry.parse().with_context(|| {
        format!("api.trusted_proxies: {entry:?} is neither an IP address nor a CIDR block")
    })?;
    Ok(IpNet::from(ip.to_canonical()))
}

/// IPv4 as it is; IPv6 reduced to its /64 (IPv4-mapped addresses count as IPv4).
fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

/// The client addresses proxies recorded, farthest first: `Forwarded` (RFC 7239) `for=` values
/// when that header is present, else `X-Forwarded-For`. Entries that are not addresses
/// (`unknown`, obfuscated identifiers) are skipped.
fn forwarded_chain(headers: &HeaderMap) -> Vec<IpAddr> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_owned())
            .collect()
    };
    let forwarded = values("forwarded");
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (name, value) = pair.split_once('=')?;
                    name.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| parse_node(value))?
                })
            })
            .collect();
    }
    values("x-forwarded-for")
        .iter()
        .filter_map(|v| parse_node(v))
        .collect()
}

/// An address from a forwarded node: `192.0.2.1`, `192.0.2.1:80`, `"[2001:db8::1]:4711"`,
/// `2001:db8::1`.
fn parse_node(raw: &str) -> Option<IpAddr> {
    let node = raw.trim().trim_matches('"');
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    node.rsplit_once(':')?
        .0
        .parse::<std::net::Ipv4Addr>()
        .ok()
        .map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn limiter(trusted: &[&str], rate: u32) -> PublicLimiter {
        PublicLimiter::new(&ApiSettings {
            public_rate_per_s: rate,
            public_burst: rate,
            trusted_proxies: trusted.iter().map(|s| (*s).to_owned()).collect(),
            cors_origins: Vec::new(),
        })
        .unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_static(name),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn headers_are_believed_only_from_trusted_proxies() {
        let limiter = limiter(&["10.0.0.0/8", "::1"], 1);
        let h = headers(&[("x-forwarded-for", "203.0.113.9, 10.1.2.3")]);
        // From a trusted proxy: the nearest untrusted hop.
        assert_eq!(limiter.client_key(ip("10.0.0.1"), &h), ip("203.0.113.9"));
        assert_eq!(limiter.client_key(ip("::1"), &h), ip("203.0.113.9"));
        // From anyone else: the peer, whatever the header says.
        assert_eq!(
            limiter.client_key(ip("198.51.100.7"), &h),
            ip("198.51.100.7")
        );
        // A client cannot pick its address by prepending one: the proxy appends the real one.
        let spoofed = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.9")]);
        assert_eq!(
            limiter.client_key(ip("10.0.0.1"), &spoofed),
            ip("203.0.113.9")
        );
        // No header from a trusted proxy: the proxy itself.
        assert_eq!(
            limiter.client_key(ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn the_forwarded_header_is_read() {
        let limiter = limiter(&["10.0.0.1"], 1);
        let h = headers(&[(
            "forwarded",
            "for=192.0.2.60;proto=http, for=\"[2001:db8:cafe::17]:4711\"",
        )]);
        assert_eq!(
            limiter.client_key(ip("10.0.0.1"), &h),
            ip("2001:db8:cafe::")
        );
        let h = headers(&[("forwarded", "for=unknown, For=198.51.100.3:8080")]);
        assert_eq!(limiter.client_key(ip("10.0.0.1"), &h), ip("198.51.100.3"));
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let limiter = limiter(&[], 1);
        let none = HeaderMap::new();
        let a = limiter.client_key(ip("2001:db8:1:2:aaaa::1"), &none);
        let b = limiter.client_key(ip("2001:db8:1:2:bbbb::2"), &none);
        let c = limiter.client_key(ip("2001:db8:1:3::1"), &none);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            limiter.client_key(ip("::ffff:192.0.2.1"), &none),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn a_bad_proxy_entry_is_a_configuration_error() {
        let settings = ApiSettings {
            public_rate_per_s: 1,
            public_burst: 1,
            trusted_proxies: vec!["proxy.example".into()],
            cors_origins: Vec::new(),
        };
        assert!(PublicLimiter::new(&settings).is_err());
    }

    #[test]
    fn idle_addresses_are_forgotten() {
        // 1000 per second: an address is idle again a millisecond after its request.
        let limiter = limiter(&[], 1000);
        for n in 0..5000u32 {
            let client = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n));
            assert!(limiter.limiter.check_key(&client).is_ok());
        }
        assert_eq!(limiter.tracked(), 5000);
        std::thread::sleep(Duration::from_millis(20));
        limiter.forget_idle();
        assert_eq!(limiter.tracked(), 0);
    }
}
