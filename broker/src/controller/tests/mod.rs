//! Fixtures shared by the decision-function tests, and property tests of their invariants over
//! random cluster states.

mod cluster;
mod harness;
mod placement;

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::cluster::{BrokerInfo, ClusterState, MetadataRecord, PartitionInfo, TopicInfo};

/// A cluster of brokers `0..n`, all live, without topics.
pub(super) fn cluster(n: i32) -> ClusterState {
    let mut s = ClusterState::default();
    for id in 0..n {
        s.apply(&MetadataRecord::RegisterBroker(BrokerInfo {
            id,
            host: "localhost".into(),
            port: 9092 + id,
            rack: None,
        }));
    }
    s
}

/// Adds topic `name` with one partition in the given placement.
pub(super) fn with_partition(
    s: &mut ClusterState,
    name: &str,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    leader: i32,
) {
    let p = PartitionInfo {
        isr,
        leader,
        ..PartitionInfo::new(0, replicas)
    };
    s.apply(&MetadataRecord::CreateTopic(TopicInfo {
        name: name.into(),
        id: uuid::Uuid::new_v4(),
        partitions: vec![p],
        configs: BTreeMap::new(),
    }));
}

/// The leader/ISR change a decision function is expected to emit.
pub(super) fn partition_change(
    topic: &str,
    index: i32,
    epoch: i32,
    leader: Option<i32>,
    isr: Option<Vec<i32>>,
) -> MetadataRecord {
    MetadataRecord::PartitionChange {
        topic: topic.into(),
        index,
        expected_partition_epoch: Some(epoch),
        leader,
        isr,
        replicas: None,
        adding_replicas: None,
        removing_replicas: None,
    }
}

fn applied(state: &ClusterState, records: &[MetadataRecord]) -> ClusterState {
    let mut s = state.clone();
    for r in records {
        s.apply(r);
    }
    s
}

fn all_partitions(s: &ClusterState) -> Vec<(String, PartitionInfo)> {
    s.topics
        .values()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.clone(), p.clone())))
        .collect()
}

/// A consistent cluster: brokers `0..n` (some fenced), partitions whose leader is the first live
/// in-sync replica, or -1 when none is live.
fn arb_state() -> impl Strategy<Value = ClusterState> {
    (2..6i32)
        .prop_flat_map(|n| {
            let partition = Just((0..n).collect::<Vec<i32>>())
                .prop_shuffle()
                .prop_flat_map(move |order| {
                    (1..=order.len()).prop_flat_map(move |rf| {
                        let replicas = order[..rf].to_vec();
                        let isr = proptest::sample::subsequence(replicas.clone(), 1..=rf);
                        (Just(replicas), isr)
                    })
                });
            (
                Just(n),
                proptest::collection::vec(any::<bool>(), n as usize),
                proptest::collection::vec(partition, 1..6),
            )
        })
        .prop_map(|(n, fenced, partitions)| {
            let mut s = cluster(n);
            for (id, f) in fenced.into_iter().enumerate() {
                if f {
                    s.apply(&MetadataRecord::FenceBroker { id: id as i32 });
                }
            }
            for (i, (replicas, isr)) in partitions.into_iter().enumerate() {
                let leader = replicas
                    .iter()
                    .copied()
                    .find(|r| isr.contains(r) && !s.fenced.contains(r))
                    .unwrap_or(NO_LEADER);
                with_partition(&mut s, &format!("t{i}"), replicas, isr, leader);
            }
            s
        })
}

/// Every leader is -1 or a live in-sync replica, and no ISR is empty.
fn leaders_are_clean(s: &ClusterState) -> Result<(), TestCaseError> {
    for (t, p) in all_partitions(s) {
        prop_assert!(!p.isr.is_empty(), "{t}: empty isr");
        prop_assert!(
            p.leader == NO_LEADER || (p.isr.contains(&p.leader) && !s.fenced.contains(&p.leader)),
            "{t}: leader {} isr {:?} fenced {:?}",
            p.leader,
            p.isr,
            s.fenced
        );
    }
    Ok(())
}

proptest! {
    #[test]
    fn fencing_moves_leadership_off_the_broker_and_never_elects_uncleanly(
        s in arb_state(), victim in 0..6i32,
    ) {
        let records = fence(&s, victim);
        let after = applied(&s, &records);
        leaders_are_clean(&after)?;
        if !s.brokers.contains_key(&victim) {
            prop_assert!(records.is_empty());
            return Ok(());
        }
        prop_assert!(after.fenced.contains(&victim));
        for ((t, before), (_, p)) in all_partitions(&s).into_iter().zip(all_partitions(&after)) {
            prop_assert_ne!(p.leader, victim, "{} still led by the fenced broker", t);
            // Out of every ISR, unless it was the last member.
            prop_assert!(!p.isr.contains(&victim) || p.isr == vec![victim], "{}: {:?}", t, p.isr);
            // A leader that was live and in sync before and is not the victim keeps leading.
            if before.leader != victim && before.leader != NO_LEADER {
                prop_assert_eq!(p.leader, before.leader);
            }
            // Where some live in-sync replica remains, there is a leader.
            let candidates = p.isr.iter().any(|r| *r != victim && !after.fenced.contains(r));
            prop_assert_eq!(p.leader != NO_LEADER, candidates, "{}", t);
        }
        // Conditional records: applying them again changes nothing.
        prop_assert_eq!(all_partitions(&applied(&after, &records)), all_partitions(&after));
    }

    #[test]
    fn unfencing_gives_leaderless_partitions_back_their_in_sync_replica(
        s in arb_state(), broker in 0..6i32,
    ) {
        let after = applied(&s, &unfence(&s, broker));
        leaders_are_clean(&after)?;
        if s.brokers.contains_key(&broker) {
            prop_assert!(!after.fenced.contains(&broker));
            for (t, p) in all_partitions(&after) {
                prop_assert!(p.leader != NO_LEADER || !p.isr.contains(&broker), "{}", t);
            }
        }
    }

    #[test]
    fn preferred_election_leaves_the_preferred_replica_leading_wherever_it_can(
        s in arb_state(),
    ) {
        let records = preferred_leaders(&s);
        let after = applied(&s, &records);
        leaders_are_clean(&after)?;
        for (t, p) in all_partitions(&after) {
            let preferred = p.replicas[0];
            if p.isr.contains(&preferred) && !after.fenced.contains(&preferred) {
                prop_assert_eq!(p.leader, preferred, "{}", t);
            }
        }
        prop_assert!(preferred_leaders(&after).is_empty());
    }

    #[test]
    fn a_reassignment_ends_on_its_target_once_adding_replicas_catch_up(
        s in arb_state(), target in proptest::sample::subsequence((0..5).collect::<Vec<i32>>(), 1..=5).prop_shuffle(),
    ) {
        let target: Vec<i32> = target.into_iter().filter(|b| s.brokers.contains_key(b)).collect();
        prop_assume!(!target.is_empty());
        let before = s.partition("t0", 0).cloned().unwrap_or_default();
        let started = applied(&s, &alter(&s, "t0", 0, Some(target.clone())).map_err(|e| TestCaseError::fail(e.to_string()))?);
        let p = started.partition("t0", 0).cloned().unwrap_or_default();
        prop_assert_eq!(&p.replicas[..target.len()], &target[..]);
        prop_assert!(p.adding_replicas.iter().all(|r| !before.replicas.contains(r)));
        prop_assert!(p.removing_replicas.iter().all(|r| !target.contains(r)));
        prop_assert_eq!(p.leader, before.leader);
        // Cancelling goes back to where it started (when that needs no unclean election).
        let cancelled = alter(&started, "t0", 0, None);
        if in_progress(&p) {
            let back = applied(&started, &cancelled.map_err(|e| TestCaseError::fail(e.to_string()))?);
            let q = back.partition("t0", 0).cloned().unwrap_or_default();
            // The same replicas; as in Kafka, their order is not recorded, so the replicas kept by
            // the target come first.
            let (mut got, mut want) = (q.replicas.clone(), before.replicas.clone());
            got.sort_unstable();
            want.sort_unstable();
            prop_assert_eq!(got, want);
            prop_assert!(!in_progress(&q));
            leaders_are_clean(&back)?;
        }
        // The leader adds the new replicas to the ISR as they catch up.
        let mut caught_up = started.clone();
        let mut isr = p.isr.clone();
        isr.extend(p.adding_replicas.iter().copied());
        caught_up.apply(&MetadataRecord::PartitionChange {
            topic: "t0".into(), index: 0, expected_partition_epoch: None, leader: None,
            isr: Some(isr.clone()), replicas: None, adding_replicas: None, removing_replicas: None,
        });
        let done = applied(&caught_up, &progress(&caught_up));
        let q = done.partition("t0", 0).cloned().unwrap_or_default();
        if isr.iter().any(|r| target.contains(r)) {
            prop_assert!(!in_progress(&q));
            prop_assert_eq!(&q.replicas, &target);
            prop_assert!(q.isr.iter().all(|r| target.contains(r)) && !q.isr.is_empty());
            prop_assert!(q.leader == NO_LEADER || (target.contains(&q.leader) && q.isr.contains(&q.leader)));
        } else {
            // No target replica in sync: the reassignment waits rather than empty the ISR.
            prop_assert_eq!(q, caught_up.partition("t0", 0).cloned().unwrap_or_default());
        }
    }
}
