//! Partition reassignment, as Kafka's KRaft controller does it: a reassignment first widens the
//! replica set to the target plus the replicas being removed (`adding` and `removing` say which
//! are which), the leader's followers catch up and join the ISR, and once every adding replica is
//! in sync the reassignment completes: the replicas become the target and the removed ones leave
//! the ISR (and leadership). Pure functions of the cluster state.

use crate::cluster::{ClusterState, MetadataRecord, PartitionInfo};

use super::NO_LEADER;
use super::election::{Change, best_leader, is_live, partitions};

/// Why a reassignment request for one partition is refused (each maps to a Kafka error code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReassignmentError {
    /// The topic or the partition does not exist (`UNKNOWN_TOPIC_OR_PARTITION`).
    #[error("topic {topic} has no partition {partition}")]
    UnknownPartition { topic: String, partition: i32 },
    /// The target replica list is empty (`INVALID_REPLICA_ASSIGNMENT`).
    #[error("the target replica list of {topic}-{partition} is empty")]
    EmptyTarget { topic: String, partition: i32 },
    /// A broker appears twice in the target (`INVALID_REPLICA_ASSIGNMENT`).
    #[error("the target replicas of {topic}-{partition} name broker {broker} more than once")]
    DuplicateBroker {
        topic: String,
        partition: i32,
        broker: i32,
    },
    /// The target names a broker the cluster does not know (`INVALID_REPLICA_ASSIGNMENT`).
    #[error(
        "the target replicas of {topic}-{partition} name broker {broker}, which is not registered"
    )]
    UnknownBroker {
        topic: String,
        partition: i32,
        broker: i32,
    },
    /// A cancellation of a partition that is not being reassigned
    /// (`NO_REASSIGNMENT_IN_PROGRESS`).
    #[error("no reassignment of {topic}-{partition} is in progress")]
    NoReassignmentInProgress { topic: String, partition: i32 },
    /// Cancelling would leave only replicas the reassignment was adding in the ISR: going back
    /// would need an unclean election (`INVALID_REPLICA_ASSIGNMENT`).
    #[error(
        "cancelling the reassignment of {topic}-{partition} needs an unclean leader election: every in-sync replica is one it was adding"
    )]
    CancelNeedsUncleanElection { topic: String, partition: i32 },
}

/// Whether a reassignment of `p` is in progress.
pub fn in_progress(p: &PartitionInfo) -> bool {
    !p.adding_replicas.is_empty() || !p.removing_replicas.is_empty()
}

/// The replicas `p` had before its reassignment (all of them when none is in progress): what a
/// cancellation goes back to.
pub fn original_replicas(p: &PartitionInfo) -> Vec<i32> {
    p.replicas
        .iter()
        .copied()
        .filter(|r| !p.adding_replicas.contains(r))
        .collect()
}

/// Starts (or replaces) the reassignment of `topic`-`partition` to `target`, or with `None` cancels
/// the one in progress, restoring the original replicas.
///
/// A target yields `replicas = target` followed by the current replicas not in it,
/// `adding = target - current`, `removing = current - target`; the leader and ISR are untouched (the leader is still a
/// replica). As in Kafka, "current" is the replica set as it stands, so replacing a reassignment in
/// progress treats its adding replicas as current ones. A cancellation drops the adding replicas from
/// the replicas and the ISR and, if one of them led, elects a leader among the remaining ones.
pub fn alter(
    state: &ClusterState,
    topic: &str,
    partition: i32,
    target: Option<Vec<i32>>,
) -> Result<Vec<MetadataRecord>, ReassignmentError> {
    let p =
        state
            .partition(topic, partition)
            .ok_or_else(|| ReassignmentError::UnknownPartition {
                topic: topic.to_owned(),
                partition,
            })?;
    let change = match target {
        Some(target) => start(state, topic, p, target)?,
        None => cancel(state, topic, p)?,
    };
    Ok(change.into_record().into_iter().collect())
}

fn start<'a>(
    state: &ClusterState,
    topic: &'a str,
    p: &'a PartitionInfo,
    target: Vec<i32>,
) -> Result<Change<'a>, ReassignmentError> {
    let partition = p.index;
    if target.is_empty() {
        return Err(ReassignmentError::EmptyTarget {
            topic: topic.to_owned(),
            partition,
        });
    }
    for (i, &broker) in target.iter().enumerate() {
        if target[..i].contains(&broker) {
            return Err(ReassignmentError::DuplicateBroker {
                topic: topic.to_owned(),
                partition,
                broker,
            });
        }
        if !state.brokers.contains_key(&broker) {
            return Err(ReassignmentError::UnknownBroker {
                topic: topic.to_owned(),
                partition,
                broker,
            });
        }
    }
    let removing: Vec<i32> = p
        .replicas
        .iter()
        .copied()
        .filter(|r| !target.contains(r))
        .collect();
    let mut change = Change::new(topic, p);
    change.adding = target
        .iter()
        .copied()
        .filter(|r| !p.replicas.contains(r))
        .collect();
    change.replicas = target;
    change.replicas.extend_from_slice(&removing);
    change.removing = removing;
    Ok(change)
}

fn cancel<'a>(
    state: &ClusterState,
    topic: &'a str,
    p: &'a PartitionInfo,
) -> Result<Change<'a>, ReassignmentError> {
    if !in_progress(p) {
        return Err(ReassignmentError::NoReassignmentInProgress {
            topic: topic.to_owned(),
            partition: p.index,
        });
    }
    let replicas = original_replicas(p);
    let isr: Vec<i32> = p
        .isr
        .iter()
        .copied()
        .filter(|r| !p.adding_replicas.contains(r))
        .collect();
    if isr.is_empty() {
        return Err(ReassignmentError::CancelNeedsUncleanElection {
            topic: topic.to_owned(),
            partition: p.index,
        });
    }
    let mut change = Change::new(topic, p);
    if !isr.contains(&p.leader) {
        change.leader = best_leader(&replicas, &isr, |r| is_live(state, r));
    }
    change.replicas = replicas;
    change.isr = isr;
    change.adding = Vec::new();
    change.removing = Vec::new();
    Ok(change)
}

/// Completes every reassignment whose adding replicas are all in the ISR: the replicas become the
/// target (the replicas minus the removing ones), the ISR keeps only target replicas, and a leader
/// that is being removed hands over to the first in-sync, live target replica. A reassignment whose
/// ISR would hold no target replica waits.
pub fn progress(state: &ClusterState) -> Vec<MetadataRecord> {
    partitions(state)
        .filter(|(_, p)| in_progress(p))
        .filter_map(|(topic, p)| complete(state, topic, p))
        .collect()
}

fn complete(state: &ClusterState, topic: &str, p: &PartitionInfo) -> Option<MetadataRecord> {
    if !p.adding_replicas.iter().all(|r| p.isr.contains(r)) {
        return None;
    }
    let target: Vec<i32> = p
        .replicas
        .iter()
        .copied()
        .filter(|r| !p.removing_replicas.contains(r))
        .collect();
    let isr: Vec<i32> = p
        .isr
        .iter()
        .copied()
        .filter(|r| target.contains(r))
        .collect();
    if isr.is_empty() || target.is_empty() {
        return None;
    }
    let mut change = Change::new(topic, p);
    if !isr.contains(&p.leader) {
        change.leader = best_leader(&target, &isr, |r| is_live(state, r));
    }
    change.replicas = target;
    change.isr = isr;
    change.adding = Vec::new();
    change.removing = Vec::new();
    change.into_record()
}

/// Partitions with a reassignment in progress, by topic: what ListPartitionReassignments reports.
pub fn reassignments(state: &ClusterState) -> impl Iterator<Item = (&str, &PartitionInfo)> {
    partitions(state).filter(|(_, p)| in_progress(p))
}

/// Whether `record` elects a leader (a change of leader to a broker, not to `NO_LEADER`): what the
/// leader-elections metric counts.
pub(super) fn is_election(record: &MetadataRecord) -> bool {
    matches!(
        record,
        MetadataRecord::PartitionChange { leader: Some(l), .. } if *l != NO_LEADER
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::tests::{cluster, with_partition};

    fn applied(state: &ClusterState, records: &[MetadataRecord]) -> ClusterState {
        let mut s = state.clone();
        for r in records {
            s.apply(r);
        }
        s
    }

    #[test]
    fn a_move_lists_target_then_removing_and_completes_once_adding_replicas_are_in_sync() {
        let mut s = cluster(6);
        with_partition(&mut s, "t", vec![1, 2, 3], vec![1, 2, 3], 1);
        let records = alter(&s, "t", 0, Some(vec![4, 2, 5])).unwrap();
        let s = applied(&s, &records);
        let p = s.partition("t", 0).unwrap();
        assert_eq!(p.replicas, vec![4, 2, 5, 1, 3]);
        assert_eq!(p.adding_replicas, vec![4, 5]);
        assert_eq!(p.removing_replicas, vec![1, 3]);
        assert_eq!((p.leader, p.isr.clone()), (1, vec![1, 2, 3]));
        // Not in sync yet: nothing to complete.
        assert!(progress(&s).is_empty());
        let mut s = s;
        s.apply(&MetadataRecord::PartitionChange {
            topic: "t".into(),
            index: 0,
            expected_partition_epoch: None,
            leader: None,
            isr: Some(vec![1, 2, 3, 4, 5]),
            replicas: None,
            adding_replicas: None,
            removing_replicas: None,
        });
        let done = progress(&s);
        assert_eq!(done.len(), 1);
        let s = applied(&s, &done);
        let p = s.partition("t", 0).unwrap();
        assert_eq!(p.replicas, vec![4, 2, 5]);
        assert_eq!(p.isr, vec![2, 4, 5]);
        // The leader was being removed: the first in-sync target replica takes over.
        assert_eq!(p.leader, 4);
        assert!(!in_progress(p));
        assert!(progress(&s).is_empty());
    }

    #[test]
    fn cancelling_restores_the_original_replicas_and_elects_away_from_adding_replicas() {
        let mut s = cluster(5);
        with_partition(&mut s, "t", vec![1, 2], vec![1, 2], 1);
        let s = applied(&s, &alter(&s, "t", 0, Some(vec![3, 4])).unwrap());
        let mut s = s;
        // 3 caught up and leads (a preferred election), 1 is out of sync.
        s.apply(&MetadataRecord::PartitionChange {
            topic: "t".into(),
            index: 0,
            expected_partition_epoch: None,
            leader: Some(3),
            isr: Some(vec![2, 3]),
            replicas: None,
            adding_replicas: None,
            removing_replicas: None,
        });
        let s = applied(&s, &alter(&s, "t", 0, None).unwrap());
        let p = s.partition("t", 0).unwrap();
        assert_eq!(p.replicas, vec![1, 2]);
        assert_eq!(p.isr, vec![2]);
        assert_eq!(p.leader, 2);
        assert!(!in_progress(p));
        assert_eq!(
            alter(&s, "t", 0, None),
            Err(ReassignmentError::NoReassignmentInProgress {
                topic: "t".into(),
                partition: 0
            })
        );
    }

    #[test]
    fn a_cancel_that_needs_an_unclean_election_is_refused() {
        let mut s = cluster(4);
        with_partition(&mut s, "t", vec![1], vec![1], 1);
        let mut s = applied(&s, &alter(&s, "t", 0, Some(vec![2])).unwrap());
        s.apply(&MetadataRecord::PartitionChange {
            topic: "t".into(),
            index: 0,
            expected_partition_epoch: None,
            leader: Some(2),
            isr: Some(vec![2]),
            replicas: None,
            adding_replicas: None,
            removing_replicas: None,
        });
        assert!(matches!(
            alter(&s, "t", 0, None),
            Err(ReassignmentError::CancelNeedsUncleanElection { .. })
        ));
    }

    #[test]
    fn invalid_targets_are_refused() {
        let mut s = cluster(3);
        with_partition(&mut s, "t", vec![0], vec![0], 0);
        assert!(matches!(
            alter(&s, "t", 0, Some(vec![])),
            Err(ReassignmentError::EmptyTarget { .. })
        ));
        assert!(matches!(
            alter(&s, "t", 0, Some(vec![1, 2, 1])),
            Err(ReassignmentError::DuplicateBroker { broker: 1, .. })
        ));
        assert!(matches!(
            alter(&s, "t", 0, Some(vec![1, 7])),
            Err(ReassignmentError::UnknownBroker { broker: 7, .. })
        ));
        assert!(matches!(
            alter(&s, "t", 1, Some(vec![1])),
            Err(ReassignmentError::UnknownPartition { .. })
        ));
        assert!(matches!(
            alter(&s, "nope", 0, Some(vec![1])),
            Err(ReassignmentError::UnknownPartition { .. })
        ));
    }

    #[test]
    fn a_shrink_completes_without_waiting_and_waits_while_no_target_replica_is_in_sync() {
        let mut s = cluster(3);
        with_partition(&mut s, "t", vec![0, 1, 2], vec![0, 1, 2], 0);
        with_partition(&mut s, "u", vec![0, 1], vec![0], 0);
        let s = applied(&s, &alter(&s, "t", 0, Some(vec![1, 2])).unwrap());
        let s = applied(&s, &alter(&s, "u", 0, Some(vec![1])).unwrap());
        let done = progress(&s);
        assert_eq!(done.len(), 1, "{done:?}");
        let s = applied(&s, &done);
        let t = s.partition("t", 0).unwrap();
        assert_eq!(
            (t.replicas.clone(), t.isr.clone(), t.leader),
            (vec![1, 2], vec![1, 2], 1)
        );
        assert!(in_progress(s.partition("u", 0).unwrap()));
    }

    #[test]
    fn every_record_is_conditional_on_the_partition_epoch() {
        let mut s = cluster(3);
        with_partition(&mut s, "t", vec![0], vec![0], 0);
        let records = alter(&s, "t", 0, Some(vec![1])).unwrap();
        let s2 = applied(&s, &records);
        // Replaying the same decision on the changed state does nothing.
        assert_eq!(
            applied(&s2, &records).partition("t", 0),
            s2.partition("t", 0)
        );
        assert!(records.iter().all(|r| matches!(
            r,
            MetadataRecord::PartitionChange {
                expected_partition_epoch: Some(0),
                ..
            }
        )));
    }
}
