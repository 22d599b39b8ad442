//! Leader election: what fencing or unfencing a broker, and preferred-leader rebalancing, change in
//! each partition. Pure functions of the cluster state, as Kafka's `ReplicationControlManager`
//! (`generateLeaderAndIsrUpdates`, `electLeader`).
//!
//! Elections are always clean: a new leader is a replica that is in the ISR and live (registered and
//! not fenced). When no such replica exists the partition is left without a leader (-1) rather than
//! electing an out-of-sync replica that may have lost acknowledged records.

use crate::cluster::{ClusterState, MetadataRecord, PartitionInfo};

use super::NO_LEADER;

/// Why a preferred-leader election of one partition did not happen (Kafka's ElectLeaders errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElectionError {
    /// The topic or the partition does not exist.
    #[error("topic {topic} has no partition {partition}")]
    UnknownPartition { topic: String, partition: i32 },
    /// The preferred replica already leads.
    #[error("replica {leader} of {topic}-{partition} is already the preferred leader")]
    NotNeeded {
        topic: String,
        partition: i32,
        leader: i32,
    },
    /// The preferred replica is fenced, unregistered or out of the ISR.
    #[error("the preferred replica {preferred} of {topic}-{partition} is not live and in sync")]
    PreferredNotAvailable {
        topic: String,
        partition: i32,
        preferred: i32,
    },
}

/// A partition change under construction: starts from a partition's current state and becomes a
/// record conditional on its partition epoch, carrying only the fields that differ.
#[derive(Debug, Clone)]
pub(super) struct Change<'a> {
    topic: &'a str,
    current: &'a PartitionInfo,
    pub(super) leader: i32,
    pub(super) isr: Vec<i32>,
    pub(super) replicas: Vec<i32>,
    pub(super) adding: Vec<i32>,
    pub(super) removing: Vec<i32>,
}

impl<'a> Change<'a> {
    pub(super) fn new(topic: &'a str, current: &'a PartitionInfo) -> Self {
        Change {
            topic,
            current,
            leader: current.leader,
            isr: current.isr.clone(),
            replicas: current.replicas.clone(),
            adding: current.adding_replicas.clone(),
            removing: current.removing_replicas.clone(),
        }
    }

    /// The record, or `None` when nothing changes.
    pub(super) fn into_record(self) -> Option<MetadataRecord> {
        let c = self.current;
        let differs = |new: Vec<i32>, old: &Vec<i32>| (&new != old).then_some(new);
        let leader = (self.leader != c.leader).then_some(self.leader);
        let isr = differs(self.isr, &c.isr);
        let replicas = differs(self.replicas, &c.replicas);
        let adding_replicas = differs(self.adding, &c.adding_replicas);
        let removing_replicas = differs(self.removing, &c.removing_replicas);
        if leader.is_none()
            && isr.is_none()
            && replicas.is_none()
            && adding_replicas.is_none()
            && removing_replicas.is_none()
        {
            return None;
        }
        Some(MetadataRecord::PartitionChange {
            topic: self.topic.to_owned(),
            index: c.index,
            expected_partition_epoch: Some(c.partition_epoch),
            leader,
            isr,
            replicas,
            adding_replicas,
            removing_replicas,
        })
    }
}

/// Whether `broker` may lead: registered and not fenced.
pub(super) fn is_live(state: &ClusterState, broker: i32) -> bool {
    state.brokers.contains_key(&broker) && !state.fenced.contains(&broker)
}

/// The first replica, in `replicas` order, that is in `isr` and acceptable; [`NO_LEADER`] if none.
pub(super) fn best_leader(replicas: &[i32], isr: &[i32], acceptable: impl Fn(i32) -> bool) -> i32 {
    replicas
        .iter()
        .copied()
        .find(|&r| isr.contains(&r) && acceptable(r))
        .unwrap_or(NO_LEADER)
}

/// Every partition of the cluster with its topic name, in a stable order.
pub(super) fn partitions(state: &ClusterState) -> impl Iterator<Item = (&str, &PartitionInfo)> {
    state
        .topics
        .values()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.name.as_str(), p)))
}

/// Fences `broker` (its session expired, or it is shutting down): a `FenceBroker` record, and for
/// every partition whose ISR holds it, the ISR without it and, where it led, a new leader: the first
/// replica in `replicas` order that is in the new ISR and live. An ISR is never emptied: when
/// `broker` is its last member it stays, and the partition is left without a leader. Nothing for a
/// broker that is not registered.
pub fn fence(state: &ClusterState, broker: i32) -> Vec<MetadataRecord> {
    if !state.brokers.contains_key(&broker) {
        return Vec::new();
    }
    let acceptable = |r: i32| r != broker && is_live(state, r);
    let mut out = vec![MetadataRecord::FenceBroker { id: broker }];
    for (topic, p) in partitions(state) {
        if !p.isr.contains(&broker) && p.leader != broker {
            continue;
        }
        let mut change = Change::new(topic, p);
        let isr: Vec<i32> = p.isr.iter().copied().filter(|&r| r != broker).collect();
        // A leader still in the ISR keeps leading (a follower was fenced); otherwise elect.
        if p.leader == NO_LEADER || p.leader == broker || !isr.contains(&p.leader) {
            change.leader = best_leader(&p.replicas, &isr, acceptable);
        }
        if !isr.is_empty() {
            change.isr = isr;
        }
        out.extend(change.into_record());
    }
    out
}

/// Unfences `broker` (it heartbeats again): an `UnfenceBroker` record, and for every partition left
/// without a leader whose ISR holds it, a leader elected among the live in-sync replicas (normally
/// `broker` itself: it was the last member of the ISR when it was fenced). Nothing for a broker that
/// is not registered.
pub fn unfence(state: &ClusterState, broker: i32) -> Vec<MetadataRecord> {
    if !state.brokers.contains_key(&broker) {
        return Vec::new();
    }
    let acceptable = |r: i32| r == broker || is_live(state, r);
    let mut out = vec![MetadataRecord::UnfenceBroker { id: broker }];
    for (topic, p) in partitions(state) {
        if p.leader != NO_LEADER || !p.isr.contains(&broker) {
            continue;
        }
        let mut change = Change::new(topic, p);
        change.leader = best_leader(&p.replicas, &p.isr, acceptable);
        out.extend(change.into_record());
    }
    out
}

/// Moves leadership of one partition to its preferred replica (`replicas[0]`), which must be live
/// and in the ISR and not already leading (ElectLeaders with type PREFERRED).
pub fn elect_preferred(
    state: &ClusterState,
    topic: &str,
    partition: i32,
) -> Result<MetadataRecord, ElectionError> {
    let p = state
        .partition(topic, partition)
        .ok_or_else(|| ElectionError::UnknownPartition {
            topic: topic.to_owned(),
            partition,
        })?;
    let preferred = p.replicas.first().copied().unwrap_or(NO_LEADER);
    if p.leader == preferred {
        return Err(ElectionError::NotNeeded {
            topic: topic.to_owned(),
            partition,
            leader: preferred,
        });
    }
    if !is_live(state, preferred) || !p.isr.contains(&preferred) {
        return Err(ElectionError::PreferredNotAvailable {
            topic: topic.to_owned(),
            partition,
            preferred,
        });
    }
    let mut change = Change::new(topic, p);
    change.leader = preferred;
    change
        .into_record()
        .ok_or_else(|| ElectionError::NotNeeded {
            topic: topic.to_owned(),
            partition,
            leader: preferred,
        })
}

/// A clean election for a partition without a leader: the first live in-sync replica in replica
/// order, if there is one (what ElectLeaders with type UNCLEAN tries first; the unclean step after
/// it, electing an out-of-sync replica, is never taken here). `None` when the partition is unknown,
/// has a leader, or has no live in-sync replica.
pub fn elect_leaderless(
    state: &ClusterState,
    topic: &str,
    partition: i32,
) -> Option<MetadataRecord> {
    let p = state.partition(topic, partition)?;
    if p.leader != NO_LEADER {
        return None;
    }
    let mut change = Change::new(topic, p);
    change.leader = best_leader(&p.replicas, &p.isr, |r| is_live(state, r));
    change.into_record()
}

/// Preferred-leader elections for every partition where one is possible (Kafka's
/// `auto.leader.rebalance.enable`): leadership returns to `replicas[0]` once it is live and in sync.
pub fn preferred_leaders(state: &ClusterState) -> Vec<MetadataRecord> {
    partitions(state)
        .filter_map(|(topic, p)| elect_preferred(state, topic, p.index).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::tests::{cluster, partition_change, with_partition};

    #[test]
    fn fencing_a_leader_elects_the_first_live_in_sync_replica_in_replica_order() {
        let mut s = cluster(4);
        with_partition(&mut s, "t", vec![1, 3, 2], vec![1, 2, 3], 1);
        let records = fence(&s, 1);
        assert_eq!(records[0], MetadataRecord::FenceBroker { id: 1 });
        // Replica order, not ISR order: 3 before 2.
        assert_eq!(
            records[1],
            partition_change("t", 0, 0, Some(3), Some(vec![2, 3]))
        );
        assert_eq!(records.len(), 2);
    }

    #[test]
    fn fencing_skips_fenced_replicas_and_a_follower_only_leaves_the_isr() {
        let mut s = cluster(4);
        with_partition(&mut s, "t", vec![1, 2, 3], vec![1, 2, 3], 1);
        with_partition(&mut s, "u", vec![3, 2], vec![3, 2], 3);
        s.apply(&MetadataRecord::FenceBroker { id: 2 });
        let records = fence(&s, 1);
        assert_eq!(
            records[1..],
            [partition_change("t", 0, 0, Some(3), Some(vec![2, 3]))]
        );
        let records = fence(&s, 2);
        // 2 was only a follower of t (led by 1) and u (led by 3): the leaders stay.
        assert_eq!(
            records[1..],
            [
                partition_change("t", 0, 0, None, Some(vec![1, 3])),
                partition_change("u", 0, 0, None, Some(vec![3])),
            ]
        );
    }

    #[test]
    fn fencing_the_last_in_sync_replica_keeps_the_isr_and_leaves_no_leader() {
        let mut s = cluster(3);
        with_partition(&mut s, "t", vec![0, 1], vec![0], 0);
        let records = fence(&s, 0);
        assert_eq!(records[1], partition_change("t", 0, 0, Some(-1), None));
        // No unclean election on unfencing someone else either.
        let mut after = s.clone();
        for r in &records {
            after.apply(r);
        }
        assert_eq!(
            unfence(&after, 1),
            vec![MetadataRecord::UnfenceBroker { id: 1 }]
        );
        // The last in-sync replica coming back leads again.
        assert_eq!(
            unfence(&after, 0)[1],
            partition_change("t", 0, 1, Some(0), None)
        );
    }

    #[test]
    fn unknown_brokers_are_neither_fenced_nor_unfenced() {
        let s = cluster(2);
        assert!(fence(&s, 9).is_empty());
        assert!(unfence(&s, 9).is_empty());
    }

    #[test]
    fn a_leaderless_partition_gets_a_live_in_sync_leader_but_never_an_out_of_sync_one() {
        let mut s = cluster(3);
        with_partition(&mut s, "t", vec![0, 1, 2], vec![0, 1], -1);
        with_partition(&mut s, "u", vec![0, 2], vec![0], -1);
        with_partition(&mut s, "v", vec![0], vec![0], 0);
        s.apply(&MetadataRecord::FenceBroker { id: 0 });
        assert_eq!(
            elect_leaderless(&s, "t", 0),
            Some(partition_change("t", 0, 0, Some(1), None))
        );
        // 2 is live but out of sync: no unclean election.
        assert_eq!(elect_leaderless(&s, "u", 0), None);
        assert_eq!(elect_leaderless(&s, "v", 0), None);
        assert_eq!(elect_leaderless(&s, "w", 0), None);
    }

    #[test]
    fn preferred_election_needs_a_live_in_sync_preferred_replica() {
        let mut s = cluster(3);
        with_partition(&mut s, "t", vec![0, 1], vec![0, 1], 1);
        with_partition(&mut s, "u", vec![2, 1], vec![1], 1);
        with_partition(&mut s, "v", vec![1, 0], vec![1, 0], 1);
        assert_eq!(
            preferred_leaders(&s),
            vec![partition_change("t", 0, 0, Some(0), None)]
        );
        assert!(matches!(
            elect_preferred(&s, "u", 0),
            Err(ElectionError::PreferredNotAvailable { preferred: 2, .. })
        ));
        assert!(matches!(
            elect_preferred(&s, "v", 0),
            Err(ElectionError::NotNeeded { leader: 1, .. })
        ));
        assert!(matches!(
            elect_preferred(&s, "v", 7),
            Err(ElectionError::UnknownPartition { .. })
        ));
        s.apply(&MetadataRecord::FenceBroker { id: 0 });
        assert!(preferred_leaders(&s).is_empty());
    }
}
