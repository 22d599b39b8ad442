//! The leader's ISR upkeep (Kafka's `maybeShrinkIsr` / `maybeExpandIsr`): every half
//! `replica.lag.time.max.ms`, and at once when a follower catches up, each led partition whose
//! ISR should change commits a `PartitionChange` conditional on the partition epoch it knows.
//! A stale epoch makes the record a no-op; the next pass retries with the fresh state. The same
//! task checkpoints high watermarks.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::cluster::MetadataRecord;
use crate::server::Broker;

/// Runs until `shutdown`; checkpoints high watermarks once more on the way out.
pub async fn run(broker: Arc<Broker>, shutdown: CancellationToken) {
    let repl = &broker.config.replication;
    let mut check =
        tokio::time::interval((repl.replica_lag_time_max / 2).max(Duration::from_millis(10)));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut checkpoint =
        tokio::time::interval(repl.hw_checkpoint_interval.max(Duration::from_millis(10)));
    checkpoint.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = check.tick() => {}
            () = broker.replicas.isr_check_wanted() => {}
            _ = checkpoint.tick() => {
                let b = broker.clone();
                let _ = tokio::task::spawn_blocking(move || b.replicas.checkpoint_high_watermarks()).await;
                continue;
            }
        }
        check_once(&broker).await;
    }
    broker.replicas.checkpoint_high_watermarks();
}

/// One pass over the partitions this broker leads: commits the ISR changes due and refreshes the
/// replication gauges.
pub async fn check_once(broker: &Broker) {
    let max_lag = broker.config.replication.replica_lag_time_max;
    let mut under_replicated = 0i64;
    let mut committed = false;
    for p in broker.replicas.all() {
        if let Some(change) = p.isr_change(max_lag) {
            let before = p.isr();
            let record = MetadataRecord::PartitionChange {
                topic: p.topic.clone(),
                index: p.index,
                expected_partition_epoch: Some(change.partition_epoch),
                leader: None,
                isr: Some(change.isr.clone()),
                replicas: None,
                adding_replicas: None,
                removing_replicas: None,
            };
            match broker.metadata.commit(vec![record]).await {
                Ok(()) => {
                    committed = true;
                    if change.isr.len() < before.len() {
                        broker.metrics.isr_shrinks.inc();
                        tracing::info!(topic = %p.topic, partition = p.index, from = ?before, to = ?change.isr, "shrinking the ISR");
                    } else {
                        broker.metrics.isr_expands.inc();
                        tracing::info!(topic = %p.topic, partition = p.index, from = ?before, to = ?change.isr, "expanding the ISR");
                    }
                }
                Err(e) => {
                    tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "committing an ISR change failed; retrying on the next check");
                }
            }
        }
        if p.is_under_replicated() {
            under_replicated += 1;
        }
    }
    broker
        .metrics
        .under_replicated_partitions
        .set(under_replicated);
    if !committed {
        return;
    }
    // Apply what was committed now rather than on the reactor's next wake-up.
    let outcome =
        crate::replica::reconcile(&broker.metadata, &broker.replicas, broker.config.node_id);
    if let Err(e) = outcome {
        tracing::warn!(error = %e, "reconciling after ISR changes failed");
    }
}
