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
    /// How far panes of the segment starting here may already have been
    /// published (an exclusive offset), when any were. An owner that
    /// resumes here must not cut the segment short of it: panes it already
    /// published carry later input under this segment's ids, and a cut
    /// before that input would count it again under new ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_until: Option<i64>,
}

impl Checkpoint {
    /// A partition with no history, read from `next_offset`.
    pub fn fresh(topic: &str, partition: i32, next_offset: i64) -> Self {
        Self {
            topic: topic.to_owned(),
            partition,
            next_offset,
            max_event_time: None,
            released_until: None,
            sealed_until: i64::MIN,
            published_until: None,
        }
    }
}
