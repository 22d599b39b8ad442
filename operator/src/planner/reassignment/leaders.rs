//! Spreading preferred leaders (first replicas) across brokers.
//!
//! Leadership is where produce and fetch traffic lands, so after the replicas are balanced each
//! broker should also be the preferred leader of about the same number of partitions. A partition can
//! only be led by one of its replicas: this is a bipartite assignment, balanced with the same
//! shortest-chain search as the replicas (a chain hands leadership from a broker to one of the
//! partition's other replicas, which hands one of its own on, and so on). Partitions keep their
//! current preferred leader unless a chain needs them, so a balanced cluster gets no reorderings.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::{BrokerId, PartitionState};

/// Working state: who leads what.
struct Leadership<'a> {
    /// Target broker ids, sorted; indexes below refer to this list.
    brokers: Vec<BrokerId>,
    /// Replica lists (broker indexes) per partition after placement.
    replicas: Vec<Vec<usize>>,
    /// The original preferred leader of each partition, if it is still a target broker.
    preferred: Vec<Option<usize>>,
    /// Leader (broker index) of each partition; `None` only for partitions without replicas.
    leader: Vec<Option<usize>>,
    /// Partitions led by each broker.
    led: Vec<BTreeSet<usize>>,
    states: &'a [PartitionState],
}

/// Returns each partition's target replica list: the placed replicas with the chosen preferred
/// leader moved to the front (the others keep their order).
pub(super) fn order_by_leader(
    states: &[PartitionState],
    assignment: &[Vec<BrokerId>],
    targets: &BTreeSet<BrokerId>,
) -> Vec<Vec<BrokerId>> {
    let mut leadership = Leadership::new(states, assignment, targets);
    leadership.balance();
    assignment
        .iter()
        .zip(&leadership.leader)
        .map(|(replicas, leader)| {
            let mut ordered = replicas.clone();
            let leader_id = leader.and_then(|b| leadership.brokers.get(b).copied());
            if let Some(pos) = leader_id.and_then(|id| ordered.iter().position(|&r| r == id)) {
                let id = ordered.remove(pos);
                ordered.insert(0, id);
            }
            ordered
        })
        .collect()
}

impl<'a> Leadership<'a> {
    fn new(
        states: &'a [PartitionState],
        assignment: &[Vec<BrokerId>],
        targets: &BTreeSet<BrokerId>,
    ) -> Self {
        let brokers: Vec<BrokerId> = targets.iter().copied().collect();
        let index: BTreeMap<BrokerId, usize> =
            brokers.iter().enumerate().map(|(i, &id)| (id, i)).collect();
        let replicas: Vec<Vec<usize>> = assignment
            .iter()
            .map(|list| {
                list.iter()
                    .filter_map(|id| index.get(id).copied())
                    .collect()
            })
            .collect();
        let mut this = Self {
            preferred: states
                .iter()
                .map(|s| s.replicas.first().and_then(|id| index.get(id).copied()))
                .collect(),
            leader: vec![None; replicas.len()],
            led: vec![BTreeSet::new(); brokers.len()],
            brokers,
            replicas,
            states,
        };
        // Start from what the cluster has, so that balancing only touches what it must: the original
        // preferred leader if it keeps a replica, else the current leader, else the replica that
        // leads least so far.
        for p in 0..this.replicas.len() {
            let first_choice = this.preferred[p].filter(|b| this.replicas[p].contains(b));
            let current = this.states[p]
                .leader
                .and_then(|id| index.get(&id).copied())
                .filter(|b| this.replicas[p].contains(b));
            // A replacement for a leaving leader sits in its slot, so ties go to list order.
            let least_loaded = this.replicas[p]
                .iter()
                .enumerate()
                .min_by_key(|&(slot, &b)| (this.led[b].len(), slot))
                .map(|(_, &b)| b);
            if let Some(b) = first_choice.or(current).or(least_loaded) {
                this.leader[p] = Some(b);
                this.led[b].insert(p);
            }
        }
        this
    }

    /// Cost of handing `p`'s leadership from `from` to `to`, counted in partitions whose preferred
    /// leader differs from the original.
    fn cost(&self, p: usize, from: usize, to: usize) -> i32 {
        let changed = |b: usize| i32::from(self.preferred[p] != Some(b));
        changed(to) - changed(from)
    }

    /// The cheapest partition led by `from` that `to` can lead.
    fn cheapest_handover(&self, from: usize, to: usize) -> Option<usize> {
        self.led[from]
            .iter()
            .filter(|&&p| self.replicas[p].contains(&to))
            .map(|&p| (self.cost(p, from, to), p))
            .min()
            .map(|(_, p)| p)
    }

    fn balance(&mut self) {
        // Each chain lowers the sum of squared leader counts; the bound only guards against a bug.
        let mut budget = self
            .replicas
            .len()
            .saturating_mul(self.brokers.len())
            .saturating_add(16);
        while budget > 0 && self.balance_once() {
            budget -= 1;
        }
    }

    /// Hands leadership along one chain from a broker leading the most partitions to one leading at
    /// least two fewer. Sources are tried heaviest first; the first that reaches a lighter broker
    /// wins (leader handovers move no data, so their cost only breaks ties between partitions).
    fn balance_once(&mut self) -> bool {
        let Some(fewest) = self.led.iter().map(BTreeSet::len).min() else {
            return false;
        };
        let mut sources: Vec<usize> = (0..self.brokers.len()).collect();
        sources.sort_by_key(|&b| (std::cmp::Reverse(self.led[b].len()), b));
        for source in sources {
            if self.led[source].len() < fewest + 2 {
                return false;
            }
            if let Some(path) = self.path_to_lighter(source) {
                // Last edge first: every handover on a shortest path stays valid, because leadership
                // changes never affect which brokers hold a partition.
                for edge in path.windows(2).rev() {
                    let (from, to) = (edge[0], edge[1]);
                    if let Some(p) = self.cheapest_handover(from, to) {
                        self.led[from].remove(&p);
                        self.led[to].insert(p);
                        self.leader[p] = Some(to);
                    }
                }
                return true;
            }
        }
        false
    }

    /// Shortest chain of handovers from `source` to the broker leading the fewest partitions among
    /// those leading at least two fewer than `source`.
    fn path_to_lighter(&self, source: usize) -> Option<Vec<usize>> {
        let n = self.brokers.len();
        let mut parent: Vec<Option<usize>> = vec![None; n];
        let mut depth: Vec<Option<usize>> = vec![None; n];
        depth[source] = Some(0);
        let mut queue = VecDeque::from([source]);
        while let Some(a) = queue.pop_front() {
            let next_depth = depth[a].map_or(1, |d| d + 1);
            for b in 0..n {
                if depth[b].is_none() && self.led[a].iter().any(|&p| self.replicas[p].contains(&b))
                {
                    depth[b] = Some(next_depth);
                    parent[b] = Some(a);
                    queue.push_back(b);
                }
            }
        }
        let limit = self.led[source].len();
        let target = (0..n)
            .filter(|&b| b != source && self.led[b].len() + 2 <= limit)
            .filter_map(|b| depth[b].map(|d| (self.led[b].len(), d, b)))
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
}
