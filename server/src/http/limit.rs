//! The per-address limit on the API's writes (sign-ins, challenges
//! created): a keyed GCRA limiter (governor), `DUET_API_RATE` a second with
//! bursts of `DUET_API_BURST`. Over it: 429 with `Retry-After`.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use super::ApiError;

/// Addresses the limiter remembers before it forgets those that are back
/// to a full burst (`retain_recent`).
const FORGET_ABOVE: usize = 100_000;

/// Per-address token buckets for the API's writes.
pub struct ApiLimit {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

impl ApiLimit {
    pub fn new(rate: u32, burst: u32) -> Self {
        let rate = NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        ApiLimit {
            limiter: governor::RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
        }
    }

    /// One request from `ip`: allowed, or the 429 to answer.
    pub fn check(&self, ip: IpAddr) -> Result<(), ApiError> {
        if self.limiter.len() > FORGET_ABOVE {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&ip).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::RateLimited {
                retry_after_secs: wait.max(Duration::from_secs(1)).as_secs().min(3600),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_429_with_retry_after_per_address() {
        let limit = ApiLimit::new(1, 3);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        assert!((0..3).all(|_| limit.check(a).is_ok()));
        match limit.check(a) {
            Err(ApiError::RateLimited { retry_after_secs }) => assert_eq!(retry_after_secs, 1),
            other => panic!("{other:?}"),
        }
        assert!(limit.check(b).is_ok(), "another address has its own bucket");
    }
}
