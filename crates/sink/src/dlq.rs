//! Dead letters: the original bytes, unchanged, with headers that say why
//! and where they came from.

use centile_events::DecodeError;
use centile_runtime::kafka::OutMessage;

pub const REASON: &str = "centile.dlq.reason";
pub const REASON_KIND: &str = "centile.dlq.reason_kind";
pub const SOURCE_TOPIC: &str = "centile.dlq.source_topic";
pub const SOURCE_PARTITION: &str = "centile.dlq.source_partition";
pub const SOURCE_OFFSET: &str = "centile.dlq.source_offset";
pub const CONSUMER_GROUP: &str = "centile.dlq.consumer_group";
pub const FAILED_AT_MS: &str = "centile.dlq.failed_at_ms";

/// Where a refused message was read.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
}

pub fn dead_letter(
    dlq_topic: &str,
    group: &str,
    origin: Origin<'_>,
    payload: &[u8],
    error: &DecodeError,
    now_ms: i64,
) -> OutMessage {
    OutMessage {
        topic: dlq_topic.to_owned(),
        partition: None,
        key: origin.key.map(|k| String::from_utf8_lossy(k).into_owned()),
        payload: payload.to_vec(),
        headers: vec![
            (REASON.into(), error.to_string()),
            (REASON_KIND.into(), error.kind().into()),
            (SOURCE_TOPIC.into(), origin.topic.into()),
            (SOURCE_PARTITION.into(), origin.partition.to_string()),
            (SOURCE_OFFSET.into(), origin.offset.to_string()),
            (CONSUMER_GROUP.into(), group.into()),
            (FAILED_AT_MS.into(), now_ms.to_string()),
        ],
    }
}
