//! Per-client-address rate limiting for the public routes (GCRA from the `governor` crate).

use std::net::IpAddr;
use std::num::NonZeroU32;

use actix_web::http::StatusCode;
use actix_web::HttpRequest;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::ApiSettings;
use crate::error::ApiError;

pub struct PublicLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

impl PublicLimiter {
    #[must_use]
    pub fn new(settings: &ApiSettings) -> Self {
        let rate = NonZeroU32::new(settings.public_rate_per_s).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(settings.public_burst).unwrap_or(rate);
        Self {
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
        }
    }

    /// Counts one request from the caller's address.
    ///
    /// # Errors
    /// 429 `rate_limited` with `Retry-After` when the address is over its quota.
    pub fn check(&self, req: &HttpRequest) -> Result<(), ApiError> {
        // The TCP peer: behind a proxy this is the proxy, so limits there belong to the proxy.
        let Some(ip) = req.peer_addr().map(|addr| addr.ip()) else {
            return Ok(());
        };
        self.limiter.check_key(&ip).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests from this address; slow down",
            )
            .retry_after(wait.as_secs().max(1))
        })
    }
}
