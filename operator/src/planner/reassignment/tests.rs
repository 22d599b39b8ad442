//! Named scenarios of the reassignment planner, and helpers shared with the property tests.

use std::collections::{BTreeMap, BTreeSet};

use super::*;

/// A broker list with optional racks.
pub(super) fn brokers(
    ids: impl IntoIterator<Item = BrokerId>,
    rack: impl Fn(BrokerId) -> Option<String>,
) -> Vec<BrokerInfo> {
    ids.into_iter()
        .map(|id| BrokerInfo { id, rack: rack(id) })
        .collect()
}

/// Topics laid out the way a fresh cluster lays them out: replica `i` of the `g`-th partition overall
/// on broker `on[(g * rf + i) % on.len()]`, which balances replicas exactly.
pub(super) fn round_robin(topics: &[(&str, i32, usize)], on: &[BrokerId]) -> Vec<PartitionState> {
    let mut states = Vec::new();
    let mut g = 0usize;
    for &(topic, partitions, rf) in topics {
        for partition in 0..partitions {
            let replicas: Vec<BrokerId> = (0..rf).map(|i| on[(g * rf + i) % on.len()]).collect();
            states.push(PartitionState {
                topic: topic.to_owned(),
                partition,
                leader: replicas.first().copied(),
                replicas,
            });
            g += 1;
        }
    }
    states
}

/// The partitions as they are after every reassignment of `plan` completed (leader = first replica).
pub(super) fn apply(
    states: &[PartitionState],
    plan: &[PartitionReassignment],
) -> Vec<PartitionState> {
    let targets: BTreeMap<(&str, i32), &Vec<BrokerId>> = plan
        .iter()
        .map(|r| ((r.topic.as_str(), r.partition), &r.target_replicas))
        .collect();
    states
        .iter()
        .map(
            |state| match targets.get(&(state.topic.as_str(), state.partition)) {
                Some(&target) => PartitionState {
                    replicas: target.clone(),
                    leader: target.first().copied(),
                    ..state.clone()
                },
                None => state.clone(),
            },
        )
        .collect()
}

/// Replicas per target broker (brokers without replicas count as zero).
pub(super) fn loads(
    states: &[PartitionState],
    targets: &BTreeSet<BrokerId>,
) -> BTreeMap<BrokerId, usize> {
    let mut loads: BTreeMap<BrokerId, usize> = targets.iter().map(|&b| (b, 0)).collect();
    for &broker in states.iter().flat_map(|s| &s.replicas) {
        *loads.entry(broker).or_default() += 1;
    }
    loads
}

/// Preferred leaders per target broker.
pub(super) fn leader_counts(
    states: &[PartitionState],
    targets: &BTreeSet<BrokerId>,
) -> BTreeMap<BrokerId, usize> {
    let mut counts: BTreeMap<BrokerId, usize> = targets.iter().map(|&b| (b, 0)).collect();
    for state in states {
        if let Some(&first) = state.replicas.first() {
            *counts.entry(first).or_default() += 1;
        }
    }
    counts
}

pub(super) fn spread(counts: &BTreeMap<BrokerId, usize>) -> usize {
    let max = counts.values().max().copied().unwrap_or(0);
    let min = counts.values().min().copied().unwrap_or(0);
    max - min
}

/// The fewest replica moves any balanced assignment needs: every replica outside the target set,
/// plus every replica above its broker's share when the larger shares go to the fullest brokers.
pub(super) fn lower_bound_moves(states: &[PartitionState], targets: &BTreeSet<BrokerId>) -> usize {
    let total: usize = states.iter().map(|s| s.replicas.len()).sum();
    let outside = states
        .iter()
        .flat_map(|s| &s.replicas)
        .filter(|b| !targets.contains(b))
        .count();
    let mut on_targets: Vec<usize> = targets
        .iter()
        .map(|t| states.iter().filter(|s| s.replicas.contains(t)).count())
        .collect();
    on_targets.sort_unstable_by(|a, b| b.cmp(a));
    let (share, extra) = (total / targets.len(), total % targets.len());
    let above: usize = on_targets
        .iter()
        .enumerate()
        .map(|(i, &load)| load.saturating_sub(share + usize::from(i < extra)))
        .sum();
    outside + above
}

fn input(
    brokers: Vec<BrokerInfo>,
    partitions: Vec<PartitionState>,
    targets: impl IntoIterator<Item = BrokerId>,
) -> ReassignmentInput {
    ReassignmentInput {
        brokers,
        partitions,
        target_brokers: targets.into_iter().collect(),
        max_concurrent_moves: 4,
    }
}

fn no_rack(_: BrokerId) -> Option<String> {
    None
}

#[test]
fn scale_up_from_three_to_five_brokers_moves_the_fewest_replicas_to_balance() {
    let partitions = round_robin(&[("page-views", 10, 3)], &[0, 1, 2]);
    let input = input(brokers(0..5, no_rack), partitions.clone(), 0..5);
    let plan = plan_reassignment(&input).unwrap();

    // 30 replicas over 5 brokers: 6 each, so each old broker hands 4 of its 10 on.
    assert_eq!(plan.moved_replicas(), 12);
    let after = apply(&partitions, &plan.reassignments);
    assert!(
        loads(&after, &input.target_brokers)
            .values()
            .all(|&l| l == 6)
    );
    assert!(
        leader_counts(&after, &input.target_brokers)
            .values()
            .all(|&l| l == 2)
    );
    for state in &after {
        assert_eq!(state.replicas.iter().collect::<BTreeSet<_>>().len(), 3);
    }
}

#[test]
fn scale_down_from_five_to_three_brokers_moves_only_replicas_off_the_removed_brokers() {
    let partitions = round_robin(&[("page-views", 10, 3)], &[0, 1, 2, 3, 4]);
    let input = input(brokers(0..5, no_rack), partitions.clone(), 0..3);
    let plan = plan_reassignment(&input).unwrap();

    let on_removed = partitions
        .iter()
        .flat_map(|s| &s.replicas)
        .filter(|&&b| b >= 3)
        .count();
    assert_eq!(plan.moved_replicas(), on_removed);
    let after = apply(&partitions, &plan.reassignments);
    assert!(after.iter().flat_map(|s| &s.replicas).all(|&b| b < 3));
    assert!(
        loads(&after, &input.target_brokers)
            .values()
            .all(|&l| l == 10)
    );
    // Partitions leaving removed brokers come first, so shrinking can start as early as possible.
    let first_leaving = plan
        .reassignments
        .iter()
        .take_while(|r| r.removing.iter().any(|&b| b >= 3))
        .count();
    assert_eq!(
        first_leaving,
        plan.reassignments
            .iter()
            .filter(|r| !r.removing.is_empty())
            .count()
    );
}

#[test]
fn replication_factor_three_with_three_racks_puts_one_replica_in_each_rack() {
    // Six brokers in racks a, a, b, b, c, c; every partition starts with two replicas in rack a.
    let rack = |id: BrokerId| Some(["a", "b", "c"][usize::try_from(id / 2).unwrap()].to_owned());
    let partitions: Vec<PartitionState> = (0..6)
        .map(|p| PartitionState {
            topic: "user-profile-updates".to_owned(),
            partition: p,
            replicas: vec![0, 1, 2 + p % 4],
            leader: Some(0),
        })
        .collect();
    let input = input(brokers(0..6, rack), partitions.clone(), 0..6);
    let plan = plan_reassignment(&input).unwrap();
    let after = apply(&partitions, &plan.reassignments);

    for state in &after {
        let racks: BTreeSet<_> = state.replicas.iter().map(|&b| rack(b)).collect();
        assert_eq!(racks.len(), 3, "{state:?}");
    }
    assert!(
        loads(&after, &input.target_brokers)
            .values()
            .all(|&l| l == 3)
    );
    assert!(spread(&leader_counts(&after, &input.target_brokers)) <= 1);
}

#[test]
fn scale_down_is_refused_when_a_topic_needs_more_replicas() {
    let partitions = round_robin(&[("newsfeed", 2, 2), ("search-index", 3, 3)], &[0, 1, 2]);
    let input = input(brokers(0..3, no_rack), partitions.clone(), 0..2);
    let refused = ScaleDownRefused {
        topic: "search-index".to_owned(),
        replication_factor: 3,
        remaining_brokers: 2,
    };
    assert_eq!(
        plan_reassignment(&input),
        Err(PlanError::ScaleDownRefused(refused.clone()))
    );
    assert_eq!(check_scale_down(&partitions, 2), Err(refused.clone()));
    assert_eq!(
        refused.to_string(),
        "topic search-index has replication factor 3 but only 2 brokers would remain"
    );
    assert_eq!(check_scale_down(&partitions, 3), Ok(()));
}

#[test]
fn a_balanced_cluster_gets_an_empty_plan() {
    // Replicas and preferred leaders are both spread evenly already.
    let partitions: Vec<PartitionState> = (0..4)
        .map(|p| PartitionState {
            topic: "page-views".to_owned(),
            partition: p,
            replicas: vec![p % 4, (p + 1) % 4],
            leader: Some(p % 4),
        })
        .collect();
    let input = input(brokers(0..4, no_rack), partitions, 0..4);
    assert_eq!(plan_reassignment(&input).unwrap().reassignments, vec![]);
}

#[test]
fn applying_a_plan_and_planning_again_gives_an_empty_plan() {
    let partitions = round_robin(&[("a", 7, 2), ("b", 5, 3), ("c", 3, 1)], &[0, 1, 2]);
    let input = input(brokers(0..6, no_rack), partitions.clone(), 0..6);
    let plan = plan_reassignment(&input).unwrap();
    assert_eq!(plan, plan_reassignment(&input).unwrap());
    let after = apply(&partitions, &plan.reassignments);
    let again = plan_reassignment(&ReassignmentInput {
        partitions: after,
        ..input
    })
    .unwrap();
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn batches_hold_at_most_max_concurrent_moves_and_zero_means_one() {
    let partitions = round_robin(&[("page-views", 12, 2)], &[0, 1]);
    let mut input = input(brokers(0..4, no_rack), partitions, 0..4);
    input.max_concurrent_moves = 5;
    let plan = plan_reassignment(&input).unwrap();
    assert_eq!(plan.next_batch().len(), 5);
    assert!(plan.batches().all(|batch| batch.len() <= 5));
    assert_eq!(
        plan.batches().map(<[_]>::len).sum::<usize>(),
        plan.reassignments.len()
    );

    input.max_concurrent_moves = 0;
    let plan = plan_reassignment(&input).unwrap();
    assert_eq!(plan.max_concurrent_moves, 1);
    assert_eq!(plan.next_batch().len(), 1);
}

#[test]
fn a_stored_plan_tells_what_is_left_and_when_it_is_stale() {
    let partitions = round_robin(&[("page-views", 6, 2)], &[0, 1]);
    let input = input(brokers(0..3, no_rack), partitions.clone(), 0..3);
    let plan = plan_reassignment(&input).unwrap();
    assert_eq!(plan.pending(&partitions), Some(plan.clone()));

    let first = &plan.reassignments[0];
    let done = apply(&partitions, std::slice::from_ref(first));
    let left = plan.pending(&done).unwrap();
    assert_eq!(left.reassignments, plan.reassignments[1..].to_vec());

    // Someone else moved a partition the plan still wants to move: plan again.
    let second = &plan.reassignments[1];
    let mut moved_elsewhere = done.clone();
    for state in &mut moved_elsewhere {
        if state.topic == second.topic && state.partition == second.partition {
            state.replicas.reverse();
        }
    }
    assert_eq!(plan.pending(&moved_elsewhere), None);
    // A partition that disappeared (its topic was deleted) also makes the plan stale.
    let without: Vec<PartitionState> = done
        .iter()
        .filter(|s| !(s.topic == second.topic && s.partition == second.partition))
        .cloned()
        .collect();
    assert_eq!(plan.pending(&without), None);
}

#[test]
fn a_partition_on_a_removed_leader_gets_its_replacement_in_the_same_place() {
    let partitions = vec![PartitionState {
        topic: "t".to_owned(),
        partition: 0,
        replicas: vec![2, 0],
        leader: Some(2),
    }];
    let input = input(brokers(0..3, no_rack), partitions, 0..2);
    let plan = plan_reassignment(&input).unwrap();
    assert_eq!(plan.reassignments.len(), 1);
    let only = &plan.reassignments[0];
    assert_eq!(
        (only.adding.clone(), only.removing.clone()),
        (vec![1], vec![2])
    );
    assert!(!only.is_leader_only());
    assert_eq!(only.target_replicas, vec![1, 0]);
}

#[test]
fn leader_only_reorderings_come_last_and_move_no_data() {
    // Broker 0 is the preferred leader of all four partitions although each has a replica elsewhere.
    let partitions: Vec<PartitionState> = (0..4)
        .map(|p| PartitionState {
            topic: "t".to_owned(),
            partition: p,
            replicas: vec![0, 1],
            leader: Some(0),
        })
        .collect();
    let input = input(brokers(0..2, no_rack), partitions, 0..2);
    let plan = plan_reassignment(&input).unwrap();
    assert_eq!(plan.moved_replicas(), 0);
    assert_eq!(plan.reassignments.len(), 2);
    assert!(
        plan.reassignments
            .iter()
            .all(PartitionReassignment::is_leader_only)
    );
    assert!(
        plan.reassignments
            .iter()
            .all(|r| r.target_replicas == vec![1, 0])
    );
}

#[test]
fn inconsistent_input_is_rejected_with_the_offending_value() {
    let good = round_robin(&[("t", 2, 2)], &[0, 1]);
    let base = input(brokers(0..2, no_rack), good.clone(), 0..2);

    let none = ReassignmentInput {
        target_brokers: BTreeSet::new(),
        ..base.clone()
    };
    assert_eq!(plan_reassignment(&none), Err(PlanError::NoTargetBrokers));

    let unknown = ReassignmentInput {
        target_brokers: [0, 1, 7].into(),
        ..base.clone()
    };
    assert_eq!(
        plan_reassignment(&unknown),
        Err(PlanError::UnknownTargetBroker { broker: 7 })
    );

    let mut twice = good.clone();
    twice[1].replicas = vec![1, 1];
    let err = plan_reassignment(&ReassignmentInput {
        partitions: twice,
        ..base.clone()
    })
    .unwrap_err();
    assert_eq!(err.to_string(), "partition t-1 lists broker 1 twice");

    let mut empty = good;
    empty[0].replicas.clear();
    let err = plan_reassignment(&ReassignmentInput {
        partitions: empty,
        ..base
    })
    .unwrap_err();
    assert_eq!(
        err,
        PlanError::EmptyReplicas {
            topic: "t".to_owned(),
            partition: 0
        }
    );
}

#[test]
fn a_cluster_where_some_broker_has_no_rack_is_planned_without_racks() {
    let rack = |id: BrokerId| (id != 3).then(|| format!("r{}", id % 2));
    let partitions = round_robin(&[("t", 6, 2)], &[0, 1, 2]);
    let input = input(brokers(0..4, rack), partitions.clone(), 0..4);
    let plan = plan_reassignment(&input).unwrap();
    let after = apply(&partitions, &plan.reassignments);
    assert!(
        loads(&after, &input.target_brokers)
            .values()
            .all(|&l| l == 3)
    );
    assert_eq!(
        plan.moved_replicas(),
        lower_bound_moves(&partitions, &input.target_brokers)
    );
}

#[test]
fn the_plan_serializes_in_camel_case() {
    let partitions = round_robin(&[("t", 2, 1)], &[0]);
    let plan = plan_reassignment(&input(brokers(0..2, no_rack), partitions, 0..2)).unwrap();
    let json = serde_json::to_value(&plan).unwrap();
    assert!(json["reassignments"][0]["targetReplicas"].is_array());
    assert_eq!(json["maxConcurrentMoves"], 4);
}

#[test]
fn a_rack_aware_cluster_of_hundreds_of_partitions_scales_up_and_down_balanced() {
    let nine: Vec<BrokerId> = (0..9).collect();
    let partitions = round_robin(&[("a", 300, 3), ("b", 150, 2), ("c", 90, 1)], &nine);
    let rack = |id: BrokerId| Some(format!("zone-{}", id % 3));
    let grown = input(brokers(0..12, rack), partitions.clone(), 0..12);
    let shrunk = ReassignmentInput {
        target_brokers: (0..6).collect(),
        ..grown.clone()
    };
    for input in [grown, shrunk] {
        let plan = plan_reassignment(&input).unwrap();
        let after = apply(&partitions, &plan.reassignments);
        assert!(spread(&loads(&after, &input.target_brokers)) <= 1);
        assert!(
            spread(&leader_counts(&after, &input.target_brokers)) <= 1,
            "{:?} {:?}",
            leader_counts(&after, &input.target_brokers),
            loads(&after, &input.target_brokers)
        );
        for state in &after {
            let zones: BTreeSet<_> = state.replicas.iter().map(|&b| b % 3).collect();
            assert_eq!(zones.len(), state.replicas.len(), "{state:?}");
            assert!(
                state
                    .replicas
                    .iter()
                    .all(|b| input.target_brokers.contains(b))
            );
        }
        let again = plan_reassignment(&ReassignmentInput {
            partitions: after,
            ..input.clone()
        })
        .unwrap();
        assert!(again.is_empty());
    }
}
