//! A small fixed-window rate limiter keyed by client address, in memory.
//!
//! The sign-in limit counts in two places: here, per replica, which refuses a client that has
//! spent its limit on this replica without asking the database; then in the database
//! ([`crate::db::models::sign_in`]), where every replica counts together. Without the second,
//! N replicas behind a load balancer allowed a client N times the limit.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Addresses remembered before the expired ones are dropped.
const MAX_KEYS: usize = 10_000;

pub struct RateLimiter {
    limit: u32,
    window: Duration,
    buckets: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The attempts a window allows.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The length of a window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Counts one attempt; `Err(seconds to wait)` when over the limit.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > MAX_KEYS {
            let window = self.window;
            buckets.retain(|_, (start, _)| now.duration_since(*start) < window);
            // Still full of live windows (many addresses at once): start over rather than
            // scan them all again on every attempt. Their counts are lost, as on a restart.
            if buckets.len() > MAX_KEYS / 2 {
                buckets.clear();
            }
        }
        let entry = buckets.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= self.limit {
            let wait = self.window.saturating_sub(now.duration_since(entry.0));
            return Err(wait.as_secs().max(1));
        }
        entry.1 += 1;
        Ok(())
    }
}

/// The key a client's address is limited under: an IPv4 address, or the /64 network of an
/// IPv6 address. One IPv6 client is handed a whole /64 and may send from any address in it:
/// keyed by the full address, it would get a fresh limit with each.
pub fn client_key(addr: Option<&str>) -> String {
    match addr.and_then(|a| a.parse::<std::net::IpAddr>().ok()) {
        Some(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let network = u128::from(v6) & !((1u128 << 64) - 1);
                format!("{}/64", std::net::Ipv6Addr::from(network))
            }
        },
        Some(v4) => v4.to_string(),
        None => addr.unwrap_or("unknown").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_addresses_at_once_do_not_make_every_attempt_scan_them() {
        let limiter = RateLimiter::new(1, Duration::from_secs(60));
        for i in 0..=MAX_KEYS {
            limiter
                .check(&format!("10.0.{}.{}", i / 256, i % 256))
                .unwrap();
        }
        let kept = || limiter.buckets.lock().unwrap().len();
        assert_eq!(kept(), MAX_KEYS + 1);
        limiter.check("192.0.2.1").unwrap();
        assert!(kept() <= 1, "started over: {}", kept());
    }

    #[test]
    fn an_ipv6_client_is_limited_by_its_network() {
        assert_eq!(
            client_key(Some("2001:db8:1:2:aaaa::1")),
            client_key(Some("2001:db8:1:2:ffff:ffff:ffff:ffff"))
        );
        assert_eq!(client_key(Some("2001:db8:1:2::7")), "2001:db8:1:2::/64");
        assert_ne!(
            client_key(Some("2001:db8:1:2::1")),
            client_key(Some("2001:db8:1:3::1"))
        );
        assert_eq!(client_key(Some("::ffff:10.0.0.1")), "10.0.0.1");
        assert_eq!(client_key(Some("10.0.0.1")), "10.0.0.1");
        assert_eq!(client_key(None), "unknown");
    }

    #[test]
    fn limits_per_key() {
        let limiter = RateLimiter::new(2, Duration::from_secs(60));
        assert!(limiter.check("a").is_ok());
        assert!(limiter.check("a").is_ok());
        let wait = limiter.check("a").unwrap_err();
        assert!((1..=60).contains(&wait));
        assert!(limiter.check("b").is_ok());
    }
}
