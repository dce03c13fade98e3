//! Which valid events may still change the rollups, judged against the time
//! the record was published (its Kafka timestamp), never against the
//! reader's clock. A replay therefore admits and refuses exactly what the
//! first reading did, and the sink and the aggregator agree on every event.

use crate::DecodeError;

/// How far an event's time may lie from its publication time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// Events older than this at publication can no longer restate rollups.
    pub restatement_horizon_ms: i64,
    /// Events dated more than this after their publication are refused.
    pub max_future_skew_ms: i64,
}

impl Default for Admission {
    fn default() -> Self {
        Self {
            restatement_horizon_ms: 7 * 24 * 3_600_000,
            max_future_skew_ms: 5 * 60_000,
        }
    }
}

impl Admission {
    /// `published_at` is the record's Kafka timestamp in ms; records without
    /// one are admitted, as there is nothing to judge them against.
    pub fn check(&self, occurred_at: i64, published_at: Option<i64>) -> Result<(), DecodeError> {
        let Some(published_at) = published_at.filter(|t| *t > 0) else {
            return Ok(());
        };
        let age_ms = published_at.saturating_sub(occurred_at);
        if age_ms > self.restatement_horizon_ms {
            return Err(DecodeError::TooLate {
                age_ms,
                horizon_ms: self.restatement_horizon_ms,
            });
        }
        let ahead_ms = occurred_at.saturating_sub(published_at);
        if ahead_ms > self.max_future_skew_ms {
            return Err(DecodeError::FromTheFuture {
                ahead_ms,
                max_skew_ms: self.max_future_skew_ms,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    #[test]
    fn admits_events_within_the_horizon_and_the_skew() {
        let admission = Admission::default();
        let now = 1_800_000_000_000;
        assert!(admission.check(now, Some(now)).is_ok());
        assert!(admission.check(now - 7 * 24 * HOUR, Some(now)).is_ok());
        assert!(admission.check(now + 5 * 60_000, Some(now)).is_ok());
        assert!(admission.check(now - 400 * 24 * HOUR, None).is_ok());
    }

    #[test]
    fn refuses_events_beyond_the_horizon_as_too_late() {
        let now = 1_800_000_000_000;
        let err = Admission::default()
            .check(now - 7 * 24 * HOUR - 1, Some(now))
            .unwrap_err();
        assert_eq!(err.kind(), "too_late");
        assert!(err.to_string().contains("restatement horizon"), "{err}");
    }

    #[test]
    fn refuses_events_from_the_future_beyond_the_skew() {
        let now = 1_800_000_000_000;
        let err = Admission::default()
            .check(now + 5 * 60_000 + 1, Some(now))
            .unwrap_err();
        assert_eq!(err.kind(), "future");
        assert!(err.to_string().contains("occurred_at"), "{err}");
    }
}
