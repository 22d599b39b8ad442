//! The leader's ISR upkeep (Kafka's `maybeShrinkIsr` / `maybeExpandIsr`): every half
//! `replica.lag.time.max.ms`, and at once when a follower catches up, each led partition whose
//! ISR should change commits a `PartitionChange` conditional on the partition epoch it knows.
//! A stale epoch makes the record a no-op; the next pass retries with the fresh state. The same
//! task checkpoints high watermarks.
//!
//! As in Kafka (KIP-841), the ISR only grows with brokers that are registered and not fenced: a
//! broker starting up (fenced until the controller sees its heartbeat) or in controlled shutdown
//! may still be fetching and caught up, but it must neither count towards acks=all nor become
//! electable; the fence that took it out of the ISR would otherwise be undone at its next fetch.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::cluster::{ClusterState, MetadataRecord};
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

/// `proposed` without the replicas it would add that are fenced or unregistered (members of
/// `current` stay until the leader's lag check or the controller removes them); `None` when what
/// is left is `current` again, in any order.
fn eligible_isr(state: &ClusterState, current: &[i32], mut proposed: Vec<i32>) -> Option<Vec<i32>> {
    proposed.retain(|r| {
        current.contains(r) || (state.brokers.contains_key(r) && !state.fenced.contains(r))
    });
    let mut a = proposed.clone();
    let mut b = current.to_vec();
    a.sort_unstable();
    b.sort_unstable();
    (a != b).then_some(proposed)
}

/// One pass over the partitions this broker leads: commits the ISR changes due and refreshes the
/// replication gauges.
pub async fn check_once(broker: &Broker) {
    let max_lag = broker.config.replication.replica_lag_time_max;
    let mut under_replicated = 0i64;
    let mut committed = false;
    for p in broker.replicas.all() {
        let before = p.isr();
        let change = p.isr_change(max_lag).and_then(|mut change| {
            change.isr = eligible_isr(&broker.metadata.read(), &before, change.isr)?;
            Some(change)
        });
        if let Some(change) = change {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::BrokerInfo;

    fn state(brokers: &[i32], fenced: &[i32]) -> ClusterState {
        let mut s = ClusterState::default();
        for &id in brokers {
            s.apply(&MetadataRecord::RegisterBroker(BrokerInfo {
                id,
                host: "127.0.0.1".into(),
                port: 9092,
                rack: None,
            }));
        }
        for &id in fenced {
            s.apply(&MetadataRecord::FenceBroker { id });
        }
        s
    }

    #[test]
    fn a_fenced_or_unregistered_follower_does_not_join_the_isr() {
        let s = state(&[1, 2, 3], &[3]);
        // Broker 3 is fenced, broker 4 unknown: only broker 2 joins.
        assert_eq!(eligible_isr(&s, &[1], vec![1, 2, 3, 4]), Some(vec![1, 2]));
        // Nothing eligible to add: no change at all.
        assert_eq!(eligible_isr(&s, &[1, 2], vec![1, 2, 3]), None);
        // Once unfenced it joins.
        let s = state(&[1, 2, 3], &[]);
        assert_eq!(
            eligible_isr(&s, &[1, 2], vec![1, 2, 3]),
            Some(vec![1, 2, 3])
        );
    }

    #[test]
    fn shrinking_is_never_held_back_by_fencing() {
        let s = state(&[1, 2, 3], &[2]);
        // A fenced member may still leave, and members stay whatever their state.
        assert_eq!(eligible_isr(&s, &[1, 2, 3], vec![1, 3]), Some(vec![1, 3]));
        assert_eq!(eligible_isr(&s, &[2, 1], vec![1, 2]), None);
    }
}
