//! Notes partitions taken away by a rebalance, so the run loop can drop
//! their state before it would emit panes for input it no longer owns.

use std::sync::{Arc, Mutex};

use rdkafka::{
    consumer::{BaseConsumer, ConsumerContext, Rebalance},
    ClientContext,
};

#[derive(Debug, Clone, Default)]
pub struct RebalanceTracker {
    revoked: Arc<Mutex<Vec<(String, i32)>>>,
}

impl RebalanceTracker {
    pub fn take_revoked(&self) -> Vec<(String, i32)> {
        std::mem::take(&mut *self.revoked.lock().expect("revoked lock"))
    }
}

impl ClientContext for RebalanceTracker {}

impl ConsumerContext for RebalanceTracker {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(list) => {
                let mut revoked = self.revoked.lock().expect("revoked lock");
                for element in list.elements() {
                    tracing::info!(
                        topic = element.topic(),
                        partition = element.partition(),
                        "partition revoked"
                    );
                    revoked.push((element.topic().to_owned(), element.partition()));
                }
            }
            Rebalance::Assign(list) => {
                for element in list.elements() {
                    tracing::info!(
                        topic = element.topic(),
                        partition = element.partition(),
                        "partition assigned"
                    );
                }
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}
