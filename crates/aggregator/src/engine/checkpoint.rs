//! The state a partition resumes from after a crash or a rebalance.

use serde::{Deserialize, Serialize};

/// Everything, besides the input itself, that decides which panes a
/// partition's input becomes: where the segment starts and the watermark
/// state at that point. Small, so it is cheap to persist at every cut.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub topic: String,
    pub partition: i32,
    /// The first offset of the next segment.
    pub next_offset: i64,
    pub max_event_time: Option<i64>,
    pub released_until: Option<i64>,
    pub sealed_until: i64,
}
