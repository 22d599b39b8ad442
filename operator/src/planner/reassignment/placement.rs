//! The working assignment of replicas to target brokers, and the moves that balance it.
//!
//! Brokers are addressed by their index in the sorted target set, partitions by their index in the
//! input, and every partition keeps one slot per replica so that a replaced replica takes the place
//! of the one it replaces (the list order, and so the preferred leader, stays put where it can).
//!
//! Balancing searches the "broker graph": an edge `a -> b` exists when some replica on `a` may move
//! to `b` (the partition has no replica on `b`, and no other replica in `b`'s rack when the partition
//! is rack-aware). A path from a broker to one at least two replicas lighter is a chain of moves that
//! lowers the spread without creating a violation; when no such path exists anywhere, the loads are
//! as balanced as the constraints allow.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::movers::Movers;
use super::{BrokerId, ReassignmentInput};

/// Working state of the placement steps.
#[derive(Clone)]
pub(super) struct Placement<'a> {
    /// Target broker ids, sorted; a broker's index here is its address below.
    brokers: Vec<BrokerId>,
    /// Rack index of each target broker, when rack awareness applies to the cluster.
    rack: Vec<Option<usize>>,
    /// Original replica lists, per partition.
    original: Vec<&'a [BrokerId]>,
    /// Whether a partition must keep its replicas in distinct racks.
    rack_aware: Vec<bool>,
    /// Current broker (index) of each replica slot; `None` until a slot on a leaving broker is placed.
    slots: Vec<Vec<Option<usize>>>,
    /// Replicas per target broker.
    load: Vec<usize>,
    /// Partitions with a replica on each target broker.
    hosted: Vec<BTreeSet<usize>>,
    /// Which broker can give a replica to which, kept up to date by [`Placement::set`].
    movers: Movers,
}

/// Order of candidate chains: widest load gap first, then fewest moves, then shortest, then source id.
type ChainRank = (std::cmp::Reverse<usize>, i32, usize, usize);

/// One replica moved from one broker to another, for undoing a chain that fails midway.
struct Move {
    partition: usize,
    slot: usize,
    from: usize,
    to: usize,
}

impl<'a> Placement<'a> {
    /// Builds the working state from the input; replicas on non-target brokers start unplaced.
    pub(super) fn new(
        input: &'a ReassignmentInput,
        racks: &BTreeMap<BrokerId, Option<&str>>,
    ) -> Self {
        let brokers: Vec<BrokerId> = input.target_brokers.iter().copied().collect();
        let index: BTreeMap<BrokerId, usize> =
            brokers.iter().enumerate().map(|(i, &id)| (id, i)).collect();

        // Rack awareness is all or nothing, as in Kafka: a cluster where some target broker has no
        // rack is treated as having no racks.
        let rack_names: Option<Vec<&str>> = brokers
            .iter()
            .map(|id| racks.get(id).copied().flatten())
            .collect();
        let (rack, rack_count) = match rack_names {
            Some(names) => {
                let distinct: BTreeMap<&str, usize> = names
                    .iter()
                    .copied()
                    .collect::<BTreeSet<&str>>()
                    .into_iter()
                    .enumerate()
                    .map(|(i, name)| (name, i))
                    .collect();
                let rack = names
                    .iter()
                    .map(|name| distinct.get(name).copied())
                    .collect();
                (rack, distinct.len())
            }
            None => (vec![None; brokers.len()], 0),
        };

        let mut load = vec![0; brokers.len()];
        let mut hosted = vec![BTreeSet::new(); brokers.len()];
        let mut slots = Vec::with_capacity(input.partitions.len());
        for (p, state) in input.partitions.iter().enumerate() {
            let partition_slots: Vec<Option<usize>> = state
                .replicas
                .iter()
                .map(|id| index.get(id).copied())
                .collect();
            for &b in partition_slots.iter().flatten() {
                load[b] += 1;
                hosted[b].insert(p);
            }
            slots.push(partition_slots);
        }
        let rack_aware: Vec<bool> = input
            .partitions
            .iter()
            .map(|state| rack_count > 0 && rack_count >= state.replicas.len())
            .collect();
        let mut movers = Movers::new(brokers.len(), rack_count);
        for (p, partition_slots) in slots.iter().enumerate() {
            let hosts: Vec<usize> = partition_slots.iter().flatten().copied().collect();
            movers.account(&hosts, rack_aware[p], &rack, true);
        }
        Self {
            rack_aware,
            movers,
            original: input
                .partitions
                .iter()
                .map(|s| s.replicas.as_slice())
                .collect(),
            brokers,
            rack,
            slots,
            load,
            hosted,
        }
    }

    /// How good the placement is: the sum of squared loads (lower is more balanced), then the
    /// replicas moved off their original brokers.
    pub(super) fn cost(&self) -> (usize, usize) {
        let squares = self.load.iter().map(|l| l * l).sum();
        let moved = self
            .slots
            .iter()
            .enumerate()
            .map(|(p, slots)| {
                slots
                    .iter()
                    .flatten()
                    .filter(|&&b| !self.original[p].contains(&self.brokers[b]))
                    .count()
            })
            .sum();
        (squares, moved)
    }

    /// The final replica lists, per partition, in slot order.
    pub(super) fn into_assignment(self) -> Vec<Vec<BrokerId>> {
        self.slots
            .iter()
            .map(|slots| {
                slots
                    .iter()
                    .flatten()
                    .filter_map(|&b| self.brokers.get(b).copied())
                    .collect()
            })
            .collect()
    }

    /// Whether replica `slot` of partition `p` may sit on broker `b` (ignoring the slot's own
    /// current position): no other replica on `b`, and none in `b`'s rack if rack-aware.
    fn can_host(&self, p: usize, b: usize, slot: Option<usize>, check_racks: bool) -> bool {
        let mut others = self.slots[p]
            .iter()
            .enumerate()
            .filter(|&(k, _)| Some(k) != slot)
            .filter_map(|(_, b)| *b);
        let rack_aware = check_racks && self.rack_aware[p];
        let target_rack = self.rack[b];
        !others.any(|other| other == b || (rack_aware && self.rack[other] == target_rack))
    }

    /// Cost of moving partition `p`'s replica from `from` to `to`, in replicas moved relative to the
    /// original assignment: +1 when `to` did not hold the partition, -1 when `from` did not either
    /// (the replica had already been moved there by the planner).
    fn move_cost(&self, p: usize, from: usize, to: usize) -> i32 {
        let new_at = |b: usize| i32::from(!self.original[p].contains(&self.brokers[b]));
        new_at(to) - new_at(from)
    }

    fn hosts(&self, p: usize) -> Vec<usize> {
        self.slots[p].iter().flatten().copied().collect()
    }

    fn set(&mut self, p: usize, slot: usize, to: usize) {
        let before = self.hosts(p);
        self.movers
            .account(&before, self.rack_aware[p], &self.rack, false);
        if let Some(from) = self.slots[p][slot] {
            self.load[from] -= 1;
            self.hosted[from].remove(&p);
        }
        self.slots[p][slot] = Some(to);
        self.load[to] += 1;
        self.hosted[to].insert(p);
        let after = self.hosts(p);
        self.movers
            .account(&after, self.rack_aware[p], &self.rack, true);
    }

    /// The least loaded broker (ties: lowest id) that may take replica `slot` of partition `p`.
    fn lightest_host(&self, p: usize, slot: Option<usize>, check_racks: bool) -> Option<usize> {
        (0..self.brokers.len())
            .filter(|&b| self.can_host(p, b, slot, check_racks))
            .min_by_key(|&b| (self.load[b], b))
    }

    /// Step 1: every replica on a broker outside the target set goes to the lightest broker that may
    /// take it, in input order or (`constrained_first`) the most constrained replica first (fewest
    /// brokers that may take it), so that a replica with few choices is not crowded out by one that
    /// could go anywhere (which would cost a second move to rebalance). Rack spreading is relaxed only when no broker
    /// satisfies it, which the scale-down check makes impossible for the broker constraint itself.
    pub(super) fn place_outside_replicas(&mut self, constrained_first: bool) {
        let mut unplaced: Vec<(usize, usize)> = (0..self.slots.len())
            .flat_map(|p| {
                let slots = &self.slots[p];
                (0..slots.len())
                    .filter(|&slot| slots[slot].is_none())
                    .map(move |slot| (p, slot))
            })
            .collect();
        while !unplaced.is_empty() {
            let choices = |&(p, slot): &(usize, usize)| {
                (0..self.brokers.len())
                    .filter(|&b| self.can_host(p, b, Some(slot), true))
                    .count()
            };
            let next = if constrained_first {
                (0..unplaced.len())
                    .min_by_key(|&i| (choices(&unplaced[i]), i))
                    .unwrap_or(0)
            } else {
                0
            };
            let (p, slot) = unplaced.remove(next);
            let host = self
                .lightest_host(p, Some(slot), true)
                .or_else(|| self.lightest_host(p, Some(slot), false));
            if let Some(b) = host {
                self.set(p, slot, b);
            }
        }
    }

    /// Step 1b: a rack-aware partition with two replicas in one rack moves the extra one to the
    /// lightest broker of an unused rack. The replica that moves is one the planner placed itself if
    /// there is one (free), else the one on the heavier broker.
    pub(super) fn spread_racks(&mut self) {
        for p in 0..self.slots.len() {
            if !self.rack_aware[p] {
                continue;
            }
            while let Some(slot) = self.crowded_slot(p) {
                match self.lightest_host(p, Some(slot), true) {
                    Some(b) => self.set(p, slot, b),
                    None => break,
                }
            }
        }
    }

    /// A slot of `p` in a rack that holds another of its replicas, choosing the cheapest to move.
    fn crowded_slot(&self, p: usize) -> Option<usize> {
        let mut by_rack: BTreeMap<Option<usize>, Vec<usize>> = BTreeMap::new();
        for (slot, b) in self.slots[p].iter().enumerate() {
            if let Some(b) = b {
                by_rack.entry(self.rack[*b]).or_default().push(slot);
            }
        }
        by_rack
            .values()
            .filter(|slots| slots.len() > 1)
            .flat_map(|slots| slots.iter().copied())
            .filter_map(|slot| self.slots[p][slot].map(|b| (slot, b)))
            .max_by_key(|&(slot, b)| {
                let planned = !self.original[p].contains(&self.brokers[b]);
                (planned, self.load[b], std::cmp::Reverse(slot))
            })
            .map(|(slot, _)| slot)
    }

    /// Whether any replica on `from` may move to `to` now (the search only needs existence).
    fn has_mover(&self, from: usize, to: usize) -> bool {
        let answer = self.movers.any(from, to, self.rack[to]);
        debug_assert_eq!(answer, self.has_mover_by_scan(from, to));
        answer
    }

    /// [`Placement::has_mover`] the slow way, to check the counters in debug builds.
    fn has_mover_by_scan(&self, from: usize, to: usize) -> bool {
        from != to
            && self.hosted[from].iter().any(|&p| {
                self.slots[p]
                    .iter()
                    .position(|&b| b == Some(from))
                    .is_some_and(|slot| self.can_host(p, to, Some(slot), true))
            })
    }

    /// The cheapest replica on `from` that may move to `to` now: lowest move cost; then the
    /// partition with the fewest replicas already moved, so that moves spread over many partitions
    /// (a partition moved wholesale onto new brokers shares no broker with the old ones, and its
    /// leadership could not be handed across); then a follower before the preferred leader; then
    /// input order.
    fn cheapest_mover(&self, from: usize, to: usize) -> Option<(usize, usize)> {
        self.hosted[from]
            .iter()
            .filter_map(|&p| {
                let slot = self.slots[p].iter().position(|&b| b == Some(from))?;
                self.can_host(p, to, Some(slot), true).then(|| {
                    let moved = self.slots[p]
                        .iter()
                        .flatten()
                        .filter(|&&b| !self.original[p].contains(&self.brokers[b]))
                        .count();
                    (self.move_cost(p, from, to), moved, slot == 0, p, slot)
                })
            })
            .min()
            .map(|(_, _, _, p, slot)| (p, slot))
    }

    /// Step 2: moves chains of replicas from heavy to light brokers until no broker can give a
    /// replica to one at least two lighter.
    pub(super) fn balance(&mut self) {
        // Each successful chain lowers the sum of squared loads, so this bound is never reached; it
        // only guards against a bug turning into an endless loop in the operator.
        let total: usize = self.load.iter().sum();
        let mut budget = total.saturating_mul(self.brokers.len()).saturating_add(16);
        while budget > 0 && self.balance_once() {
            budget -= 1;
        }
    }

    /// Applies the best chain: the one between the most unequal pair of brokers, then the one that
    /// costs the fewest moves, then the shortest; ties by broker id.
    fn balance_once(&mut self) -> bool {
        let Some(&lightest) = self.load.iter().min() else {
            return false;
        };
        // Which broker can give a replica to which, computed once for all sources.
        let edges: Vec<Vec<bool>> = (0..self.brokers.len())
            .map(|a| {
                (0..self.brokers.len())
                    .map(|b| self.has_mover(a, b))
                    .collect()
            })
            .collect();
        // One candidate chain per heavy source. Ranking by gap first keeps the sum of squared loads
        // falling as fast as possible; among equal gaps the cheapest chain keeps the move count at
        // its minimum (the exhaustive property test checks both on small clusters).
        let mut candidates: Vec<(ChainRank, Vec<usize>)> = (0..self.brokers.len())
            .filter(|&source| self.load[source] >= lightest + 2)
            .filter_map(|source| self.path_to_lighter(source, &edges))
            .filter_map(|path| {
                let (&source, &target) = (path.first()?, path.last()?);
                let cost: i32 = path
                    .windows(2)
                    .filter_map(|edge| {
                        let (p, _) = self.cheapest_mover(edge[0], edge[1])?;
                        Some(self.move_cost(p, edge[0], edge[1]))
                    })
                    .sum();
                let gap = self.load[source] - self.load[target];
                Some(((std::cmp::Reverse(gap), cost, path.len(), source), path))
            })
            .collect();
        candidates.sort();
        // A chain can fail only when two of its moves meet in one rack; the next candidate may not.
        candidates
            .into_iter()
            .any(|(_, path)| self.apply_chain(&path))
    }

    /// Breadth-first search of the broker graph from `source`; returns the shortest path to the
    /// lightest reachable broker that holds at least two replicas fewer than `source`.
    fn path_to_lighter(&self, source: usize, edges: &[Vec<bool>]) -> Option<Vec<usize>> {
        let n = self.brokers.len();
        let mut parent: Vec<Option<usize>> = vec![None; n];
        let mut depth: Vec<Option<usize>> = vec![None; n];
        depth[source] = Some(0);
        let mut queue = VecDeque::from([source]);
        while let Some(a) = queue.pop_front() {
            let next_depth = depth[a].map_or(1, |d| d + 1);
            for b in 0..n {
                if depth[b].is_none() && edges[a][b] {
                    depth[b] = Some(next_depth);
                    parent[b] = Some(a);
                    queue.push_back(b);
                }
            }
        }
        let target = (0..n)
            .filter(|&b| b != source && self.load[b] + 2 <= self.load[source])
            .filter_map(|b| depth[b].map(|d| (self.load[b], d, b)))
            .min()?
            .2;
        let mut path = vec![target];
        let mut at = target;
        while let Some(up) = parent[at] {
            path.push(up);
            at = up;
        }
        path.reverse();
        Some(path)
    }

    /// Applies the moves along `path`, last edge first, so that each broker on the way gives a
    /// replica before it receives one. Returns false (with everything undone) if an edge no longer
    /// has a valid mover once the later moves are made, which only racks can cause.
    fn apply_chain(&mut self, path: &[usize]) -> bool {
        let mut done: Vec<Move> = Vec::with_capacity(path.len());
        for edge in path.windows(2).rev() {
            let (from, to) = (edge[0], edge[1]);
            if let Some((partition, slot)) = self.cheapest_mover(from, to) {
                self.set(partition, slot, to);
                done.push(Move {
                    partition,
                    slot,
                    from,
                    to,
                });
            } else {
                for undo in done.iter().rev() {
                    debug_assert_eq!(self.slots[undo.partition][undo.slot], Some(undo.to));
                    self.set(undo.partition, undo.slot, undo.from);
                }
                return false;
            }
        }
        true
    }
}
