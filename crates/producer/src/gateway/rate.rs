//! Request rates (`100/h`, `50/s`) and the token buckets that enforce them.
//! Pure: callers pass the clock in, so tests need no sleeping.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use tokio::time::Instant;

/// `count` requests per `per`; a bucket holds `count` requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub count: f64,
    pub per: Duration,
}

impl Rate {
    /// Parses `N/s`, `N/min` or `N/h` (also `N/sec`, `N/m`, `N/hour`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (count, unit) = text
            .split_once('/')
            .ok_or_else(|| format!("rate `{text}`: expected N/s, N/min or N/h"))?;
        let count: f64 = count
            .trim()
            .parse()
            .ok()
            .filter(|c: &f64| c.is_finite() && *c >= 1.0)
            .ok_or_else(|| format!("rate `{text}`: the count must be a number of at least 1"))?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            other => return Err(format!("rate `{text}`: unknown unit `{other}`")),
        };
        Ok(Self { count, per })
    }

    fn per_second(self) -> f64 {
        self.count / self.per.as_secs_f64()
    }
}

/// A token bucket: full at `capacity`, refilled continuously.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: Rate,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    pub fn new(rate: Rate, now: Instant) -> Self {
        Self {
            rate,
            tokens: rate.count,
            updated: now,
        }
    }

    /// Takes one token, or says how long until one is available.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate.per_second()).min(self.rate.count);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / self.rate.per_second();
            Err(Duration::from_secs_f64(wait))
        }
    }
}

/// One bucket per key hash.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<[u8; 32], TokenBucket>>,
}

impl RateLimiter {
    pub fn check(&self, key: &[u8; 32], rate: Rate, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        buckets
            .entry(*key)
            .or_insert_with(|| TokenBucket::new(rate, now))
            .take(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_refuse_nonsense() {
        assert_eq!(
            Rate::parse("100/h").unwrap(),
            Rate {
                count: 100.0,
                per: Duration::from_secs(3600)
            }
        );
        assert_eq!(Rate::parse("2.5/s").unwrap().count, 2.5);
        for bad in ["100", "0/s", "x/s", "5/fortnight", "NaN/s"] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(Rate::parse("100/h").unwrap(), start);
        for _ in 0..100 {
            bucket.take(start).unwrap();
        }
        let wait = bucket.take(start).unwrap_err();
        assert_eq!(wait.as_secs(), 36, "one request per 36 s at 100/h");
        assert!(bucket.take(start + Duration::from_secs(35)).is_err());
        bucket.take(start + Duration::from_secs(36)).unwrap();
        assert!(bucket.take(start + Duration::from_secs(36)).is_err());
    }

    #[test]
    fn keys_have_separate_buckets() {
        let now = Instant::now();
        let limiter = RateLimiter::default();
        let rate = Rate::parse("1/min").unwrap();
        limiter.check(&[1; 32], rate, now).unwrap();
        assert!(limiter.check(&[1; 32], rate, now).is_err());
        limiter.check(&[2; 32], rate, now).unwrap();
    }
}
