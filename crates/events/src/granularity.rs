//! Tumbling UTC window sizes and the assignment of timestamps to windows.

use serde::{Deserialize, Serialize};

/// A tumbling window size. Windows are aligned to the UTC epoch, so a day
/// window always starts at 00:00:00 UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    Minute,
    Hour,
    Day,
}

impl Granularity {
    pub const ALL: [Granularity; 3] = [Granularity::Minute, Granularity::Hour, Granularity::Day];

    pub const fn millis(self) -> i64 {
        match self {
            Self::Minute => 60_000,
            Self::Hour => 3_600_000,
            Self::Day => 86_400_000,
        }
    }

    /// Start of the window containing `timestamp_ms`; correct before 1970 too.
    pub const fn window_start(self, timestamp_ms: i64) -> i64 {
        timestamp_ms.div_euclid(self.millis()) * self.millis()
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    pub fn parse(symbol: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == symbol)
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}
