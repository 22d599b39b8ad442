//! Property tests of the reassignment planner over many random clusters: random broker counts,
//! racks (none, equally sized, uneven), topics with mixed replication factors, random current
//! assignments, and a scale up, scale down or plain rebalance.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::tests::{apply, leader_counts, loads, lower_bound_moves, spread};
use super::*;

/// How racks are laid out in a generated cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Racks {
    None,
    /// Broker `id` in rack `id % count`: equally sized when the broker count divides evenly.
    RoundRobin(i32),
    /// Each broker in a random one of `count` racks.
    Random(i32),
}

/// A small deterministic generator (xorshift64*), so a whole cluster derives from one seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let value = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33;
        usize::try_from(value).unwrap_or(0) % bound.max(1)
    }
}

fn cluster(
    old: i32,
    delta: i32,
    racks: Racks,
    topics: &[(i32, usize)],
    seed: u64,
    max_concurrent_moves: usize,
) -> ReassignmentInput {
    let mut rng = Rng(seed | 1);
    let max_rf = topics
        .iter()
        .map(|&(_, rf)| rf.min(usize::try_from(old).unwrap()))
        .max()
        .unwrap_or(1);
    let remaining = (old + delta).max(i32::try_from(max_rf).unwrap()).max(1);
    let all = old.max(remaining);
    let random_racks: Vec<i32> = (0..all)
        .map(|_| match racks {
            Racks::Random(count) => {
                i32::try_from(rng.next(usize::try_from(count).unwrap())).unwrap()
            }
            _ => 0,
        })
        .collect();
    let brokers = (0..all)
        .map(|id| BrokerInfo {
            id,
            rack: match racks {
                Racks::None => None,
                Racks::RoundRobin(count) => Some(format!("zone-{}", id % count)),
                Racks::Random(_) => Some(format!(
                    "zone-{}",
                    random_racks[usize::try_from(id).unwrap()]
                )),
            },
        })
        .collect();

    let mut partitions = Vec::new();
    for (t, &(count, rf)) in topics.iter().enumerate() {
        let rf = rf.min(usize::try_from(old).unwrap());
        for partition in 0..count {
            let mut pool: Vec<BrokerId> = (0..old).collect();
            let mut replicas = Vec::with_capacity(rf);
            for _ in 0..rf {
                replicas.push(pool.swap_remove(rng.next(pool.len())));
            }
            let leader = replicas.get(rng.next(replicas.len())).copied();
            partitions.push(PartitionState {
                topic: format!("topic-{t}"),
                partition,
                replicas,
                leader,
            });
        }
    }
    ReassignmentInput {
        brokers,
        partitions,
        target_brokers: (0..remaining).collect(),
        max_concurrent_moves,
    }
}

fn inputs() -> impl Strategy<Value = (ReassignmentInput, Racks)> {
    let racks = prop_oneof![
        Just(Racks::None),
        (2i32..=3).prop_map(Racks::RoundRobin),
        (2i32..=4).prop_map(Racks::Random),
    ];
    shaped_inputs(racks, -3..=3, 1..=3)
}

/// Clusters without racks where no broker leaves (scale up or plain rebalance).
fn growing_inputs_without_racks() -> impl Strategy<Value = ReassignmentInput> {
    shaped_inputs(Just(Racks::None), 0..=3, 1..=3).prop_map(|(input, _)| input)
}

fn shaped_inputs(
    racks: impl Strategy<Value = Racks>,
    delta: std::ops::RangeInclusive<i32>,
    replication_factors: std::ops::RangeInclusive<usize>,
) -> impl Strategy<Value = (ReassignmentInput, Racks)> {
    let topics = prop::collection::vec((1i32..=8, replication_factors), 1..=4);
    (1i32..=7, delta, racks, topics, any::<u64>(), 0usize..=4).prop_map(
        |(old, delta, racks, topics, seed, batch)| {
            (cluster(old, delta, racks, &topics, seed, batch), racks)
        },
    )
}

fn rack_of(input: &ReassignmentInput) -> BTreeMap<BrokerId, Option<String>> {
    input
        .brokers
        .iter()
        .map(|b| (b.id, b.rack.clone()))
        .collect()
}

/// Rack count when every target broker has a rack (rack awareness applies), else `None`.
fn target_racks(input: &ReassignmentInput) -> Option<BTreeMap<String, usize>> {
    let racks = rack_of(input);
    let mut sizes = BTreeMap::new();
    for id in &input.target_brokers {
        let rack = racks.get(id).cloned().flatten()?;
        *sizes.entry(rack).or_insert(0) += 1;
    }
    Some(sizes)
}

fn small_inputs() -> impl Strategy<Value = (ReassignmentInput, Racks)> {
    let racks = prop_oneof![
        Just(Racks::None),
        (2i32..=3).prop_map(Racks::RoundRobin),
        (2i32..=3).prop_map(Racks::Random),
    ];
    (
        1i32..=4,
        -2i32..=2,
        racks,
        prop::collection::vec((1i32..=2, 1usize..=3), 1..=3),
        any::<u64>(),
    )
        .prop_map(|(old, delta, racks, topics, seed)| {
            (cluster(old, delta, racks, &topics, seed, 1), racks)
        })
}

fn squares(loads: &BTreeMap<BrokerId, usize>) -> usize {
    loads.values().map(|l| l * l).sum()
}

/// (lowest sum of squared loads, fewest moves at that balance) over every valid assignment.
fn best_assignment(input: &ReassignmentInput) -> (usize, usize) {
    let targets: Vec<BrokerId> = input.target_brokers.iter().copied().collect();
    let racks = rack_of(input);
    let rack_count = target_racks(input).map(|sizes| sizes.len());
    // Every valid replica set of each partition, with the moves it costs.
    let choices: Vec<Vec<(Vec<BrokerId>, usize)>> = input
        .partitions
        .iter()
        .map(|state| {
            let rf = state.replicas.len();
            let rack_aware = rack_count.is_some_and(|count| count >= rf);
            (0u32..1 << targets.len())
                .filter(|mask| mask.count_ones() as usize == rf)
                .map(|mask| {
                    targets
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| mask & (1 << i) != 0)
                        .map(|(_, &b)| b)
                        .collect::<Vec<_>>()
                })
                .filter(|set| {
                    !rack_aware
                        || set
                            .iter()
                            .map(|b| racks.get(b))
                            .collect::<BTreeSet<_>>()
                            .len()
                            == rf
                })
                .map(|set| {
                    let moves = set.iter().filter(|b| !state.replicas.contains(b)).count();
                    (set, moves)
                })
                .collect()
        })
        .collect();
    let mut best = (usize::MAX, usize::MAX);
    let mut load: BTreeMap<BrokerId, usize> = targets.iter().map(|&b| (b, 0)).collect();
    search(&choices, 0, &mut load, 0, &mut best);
    best
}

/// Lowest sum of squared preferred-leader counts over every choice of leader among the replicas.
fn best_leaders(states: &[PartitionState], targets: &BTreeSet<BrokerId>) -> usize {
    fn walk(states: &[PartitionState], counts: &mut BTreeMap<BrokerId, usize>, best: &mut usize) {
        let Some((state, rest)) = states.split_first() else {
            *best = (*best).min(squares(counts));
            return;
        };
        for b in &state.replicas {
            *counts.entry(*b).or_default() += 1;
            walk(rest, counts, best);
            *counts.entry(*b).or_default() -= 1;
        }
    }
    let mut best = usize::MAX;
    walk(
        states,
        &mut targets.iter().map(|&b| (b, 0)).collect(),
        &mut best,
    );
    best
}

fn search(
    choices: &[Vec<(Vec<BrokerId>, usize)>],
    at: usize,
    load: &mut BTreeMap<BrokerId, usize>,
    moves: usize,
    best: &mut (usize, usize),
) {
    let Some(options) = choices.get(at) else {
        *best = (*best).min((squares(load), moves));
        return;
    };
    for (set, cost) in options {
        for b in set {
            *load.entry(*b).or_default() += 1;
        }
        search(choices, at + 1, load, moves + cost, best);
        for b in set {
            *load.entry(*b).or_default() -= 1;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn every_plan_keeps_replication_factors_and_respects_brokers_and_racks((input, _) in inputs()) {
        let plan = plan_reassignment(&input).unwrap();
        let after = apply(&input.partitions, &plan.reassignments);
        let racks = rack_of(&input);
        let rack_count = target_racks(&input).map(|sizes| sizes.len());
        for (before, state) in input.partitions.iter().zip(&after) {
            prop_assert_eq!(before.replicas.len(), state.replicas.len());
            let distinct: BTreeSet<_> = state.replicas.iter().collect();
            prop_assert_eq!(distinct.len(), state.replicas.len(), "{:?}", state);
            prop_assert!(state.replicas.iter().all(|b| input.target_brokers.contains(b)), "{:?}", state);
            if rack_count.is_some_and(|count| count >= state.replicas.len()) {
                let distinct_racks: BTreeSet<_> = state.replicas.iter().map(|b| racks.get(b)).collect();
                prop_assert_eq!(distinct_racks.len(), state.replicas.len(), "{:?}", state);
            }
        }
        for reassignment in &plan.reassignments {
            prop_assert_ne!(&reassignment.current_replicas, &reassignment.target_replicas);
        }
    }

    #[test]
    fn replicas_are_within_one_of_balanced_unless_racks_are_uneven((input, racks) in inputs()) {
        let plan = plan_reassignment(&input).unwrap();
        let after = apply(&input.partitions, &plan.reassignments);
        let even_racks = match target_racks(&input) {
            None => true,
            Some(sizes) => sizes.values().collect::<BTreeSet<_>>().len() == 1,
        };
        if racks == Racks::None || even_racks {
            let loads = loads(&after, &input.target_brokers);
            prop_assert!(spread(&loads) <= 1, "{:?}", loads);
        }
    }

    #[test]
    fn rebalancing_without_racks_moves_exactly_the_replicas_above_their_share(input in growing_inputs_without_racks()) {
        // Without racks and with every replica on a target broker, a replica from a broker above its
        // share can always go straight to one below it, so the simple lower bound is exact. (Replicas
        // leaving brokers can force detours; the exhaustive test covers those.)
        let plan = plan_reassignment(&input).unwrap();
        let bound = lower_bound_moves(&input.partitions, &input.target_brokers);
        prop_assert_eq!(plan.moved_replicas(), bound);
    }

    #[test]
    fn small_plans_are_as_balanced_and_as_cheap_as_the_best_assignment((input, _) in small_inputs()) {
        // Exhaustive search over every valid assignment of a small cluster: the plan must reach the
        // best balance (lowest sum of squared loads) and, among assignments that balanced, the fewest moves.
        let plan = plan_reassignment(&input).unwrap();
        let after = apply(&input.partitions, &plan.reassignments);
        let achieved = (squares(&loads(&after, &input.target_brokers)), plan.moved_replicas());
        let best = best_assignment(&input);
        prop_assert_eq!(achieved, best);
        // Preferred leaders: as even as the chosen replica sets allow.
        let leaders = squares(&leader_counts(&after, &input.target_brokers));
        prop_assert_eq!(leaders, best_leaders(&after, &input.target_brokers));
    }

    #[test]
    fn preferred_leaders_are_within_one_of_balanced_without_racks_and_with_one_replication_factor(
        (input, _) in (1usize..=3).prop_flat_map(|rf| shaped_inputs(Just(Racks::None), -3..=3, rf..=rf))
    ) {
        let plan = plan_reassignment(&input).unwrap();
        let after = apply(&input.partitions, &plan.reassignments);
        let counts = leader_counts(&after, &input.target_brokers);
        prop_assert!(spread(&counts) <= 1, "{:?}", counts);
    }

    #[test]
    fn the_same_input_gives_the_same_plan_and_a_finished_plan_needs_nothing_more((input, _) in inputs()) {
        let plan = plan_reassignment(&input).unwrap();
        prop_assert_eq!(&plan, &plan_reassignment(&input.clone()).unwrap());
        let after = apply(&input.partitions, &plan.reassignments);
        let again = plan_reassignment(&ReassignmentInput { partitions: after, ..input }).unwrap();
        prop_assert!(again.is_empty(), "{:?}", again);
    }

    #[test]
    fn executing_a_stored_plan_batch_by_batch_moves_exactly_what_it_counted((input, _) in inputs()) {
        let first = plan_reassignment(&input).unwrap();
        let mut plan = first.clone();
        let mut state = input.partitions.clone();
        let mut moved = 0;
        while !plan.is_empty() {
            let batch = plan.next_batch();
            prop_assert!(!batch.is_empty() && batch.len() <= input.max_concurrent_moves.max(1));
            moved += batch.iter().map(PartitionReassignment::moved_replicas).sum::<usize>();
            state = apply(&state, batch);
            plan = plan.pending(&state).unwrap();
        }
        prop_assert_eq!(moved, first.moved_replicas());
        prop_assert_eq!(&state, &apply(&input.partitions, &first.reassignments));
        let again = plan_reassignment(&ReassignmentInput { partitions: state, ..input }).unwrap();
        prop_assert!(again.is_empty(), "{:?}", again);
    }

    #[test]
    fn planning_afresh_after_every_batch_converges((input, _) in inputs()) {
        let first = plan_reassignment(&input).unwrap();
        let mut state = input.partitions.clone();
        let mut rounds = 0;
        loop {
            let plan = plan_reassignment(&ReassignmentInput { partitions: state.clone(), ..input.clone() }).unwrap();
            if plan.is_empty() {
                break;
            }
            prop_assert!(plan.next_batch().len() <= input.max_concurrent_moves.max(1));
            state = apply(&state, plan.next_batch());
            rounds += 1;
            prop_assert!(rounds <= first.reassignments.len() * 2 + 1, "no convergence after {} rounds", rounds);
        }
        let loads = loads(&state, &input.target_brokers);
        if target_racks(&input).is_none() {
            prop_assert!(spread(&loads) <= 1, "{:?}", loads);
        }
    }
}
