//! Partition reassignment planning for broker scale up and scale down.
//!
//! Given every partition's replica list and the set of brokers that should hold replicas, the
//! planner returns the partitions whose replica list must change, each with its target list (first
//! replica = preferred leader), in the order they should be submitted with
//! `AlterPartitionReassignments`.
//!
//! The target assignment is chosen in three steps, each on a working copy of the assignment:
//! 1. replicas on brokers outside the target set are placed on the least loaded eligible broker
//!    (and replicas sharing a rack are spread when racks allow it);
//! 2. replicas move from the most to the least loaded brokers along the shortest chain of valid
//!    moves until every broker is within one replica of the others (module `placement`);
//! 3. preferred leaders are spread the same way across each partition's replicas (module `leaders`).
//!
//! Step 2 stops when no chain from a broker to one at least two replicas lighter exists, which is the
//! optimality condition of the equivalent convex-cost flow problem: the result is as balanced as the
//! rack constraints allow. Among chains between equally unequal brokers the cheapest is taken, and
//! each move prefers replicas that undo an earlier move or that the planner placed itself, so few
//! replicas change broker: without racks exactly the lower bound (every replica above its broker's
//! share), and on small clusters as few as an exhaustive search finds (both property-tested).
//! All iteration orders are fixed (broker id, topic, partition), so the same input gives the same plan.
//!
//! A leader-only entry (same replicas, new order) moves no data: Kafka records the new order at once,
//! and the leader follows at the next preferred leader election (`ElectLeaders` or the brokers'
//! automatic leader rebalancing).

mod leaders;
mod movers;
mod placement;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use self::placement::Placement;

/// A Kafka broker id (`node.id`); the StatefulSet ordinal of the broker pod.
pub type BrokerId = i32;

/// A registered broker as the cluster reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerInfo {
    /// The broker's node id.
    pub id: BrokerId,
    /// The broker's rack (`broker.rack`), if it has one.
    pub rack: Option<String>,
}

/// One partition's current assignment, as reported by Metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionState {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// Replica list in Kafka's order: the first replica is the preferred leader.
    pub replicas: Vec<BrokerId>,
    /// The current leader, if the partition has one.
    pub leader: Option<BrokerId>,
}

/// Everything the reassignment planner looks at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReassignmentInput {
    /// Every registered broker, those that stay, join and leave.
    pub brokers: Vec<BrokerInfo>,
    /// Every partition of every topic.
    pub partitions: Vec<PartitionState>,
    /// The brokers that should hold replicas afterwards: old and new ones after a scale up, the ones
    /// that stay before a scale down.
    pub target_brokers: BTreeSet<BrokerId>,
    /// How many partitions may be reassigned at once; 0 is treated as 1.
    pub max_concurrent_moves: usize,
}

/// The change of one partition's replica list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionReassignment {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// The replica list now.
    pub current_replicas: Vec<BrokerId>,
    /// The replica list to submit; the first replica is the preferred leader.
    pub target_replicas: Vec<BrokerId>,
    /// Brokers that gain a replica (sorted).
    pub adding: Vec<BrokerId>,
    /// Brokers that lose a replica (sorted).
    pub removing: Vec<BrokerId>,
}

impl PartitionReassignment {
    fn new(state: &PartitionState, target_replicas: Vec<BrokerId>) -> Self {
        let current: BTreeSet<BrokerId> = state.replicas.iter().copied().collect();
        let target: BTreeSet<BrokerId> = target_replicas.iter().copied().collect();
        Self {
            topic: state.topic.clone(),
            partition: state.partition,
            current_replicas: state.replicas.clone(),
            adding: target.difference(&current).copied().collect(),
            removing: current.difference(&target).copied().collect(),
            target_replicas,
        }
    }

    /// How many replicas change broker (each one is a full copy of the partition's data).
    #[must_use]
    pub fn moved_replicas(&self) -> usize {
        self.adding.len()
    }

    /// True when only the order, and so the preferred leader, changes: no data moves.
    #[must_use]
    pub fn is_leader_only(&self) -> bool {
        self.adding.is_empty() && self.removing.is_empty()
    }
}

/// The partitions to reassign, in submission order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReassignmentPlan {
    /// Only partitions that change: first those with a replica on a broker outside the target set,
    /// then other replica moves, then leader-only reorderings; ties by topic and partition.
    pub reassignments: Vec<PartitionReassignment>,
    /// Batch size for submission, at least 1.
    pub max_concurrent_moves: usize,
}

impl ReassignmentPlan {
    /// True when nothing needs to change.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.reassignments.is_empty()
    }

    /// Total number of replicas that change broker.
    #[must_use]
    pub fn moved_replicas(&self) -> usize {
        self.reassignments
            .iter()
            .map(PartitionReassignment::moved_replicas)
            .sum()
    }

    /// The reassignments to submit now: the first `max_concurrent_moves` of the plan.
    #[must_use]
    pub fn next_batch(&self) -> &[PartitionReassignment] {
        self.batches().next().unwrap_or(&[])
    }

    /// What is left of this plan given fresh partition states: entries whose target list is in
    /// place are dropped. `None` when the cluster no longer matches the plan (a remaining partition
    /// has neither its planned current nor its target list, or is gone): plan again then.
    ///
    /// Executing a stored plan this way moves exactly the replicas it counted; planning afresh after
    /// every batch also converges but may choose a different balanced end state and move a few more.
    #[must_use]
    pub fn pending(&self, partitions: &[PartitionState]) -> Option<ReassignmentPlan> {
        let observed: BTreeMap<(&str, i32), &Vec<BrokerId>> = partitions
            .iter()
            .map(|state| ((state.topic.as_str(), state.partition), &state.replicas))
            .collect();
        let mut reassignments = Vec::with_capacity(self.reassignments.len());
        for planned in &self.reassignments {
            let replicas = observed.get(&(planned.topic.as_str(), planned.partition))?;
            if **replicas == planned.target_replicas {
                continue;
            }
            if **replicas != planned.current_replicas {
                return None;
            }
            reassignments.push(planned.clone());
        }
        Some(ReassignmentPlan {
            reassignments,
            max_concurrent_moves: self.max_concurrent_moves,
        })
    }

    /// The whole plan cut into batches of `max_concurrent_moves`.
    pub fn batches(&self) -> impl Iterator<Item = &[PartitionReassignment]> {
        self.reassignments.chunks(self.max_concurrent_moves.max(1))
    }
}

/// A scale-down that would leave a topic with fewer brokers than replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
#[error(
    "topic {topic} has replication factor {replication_factor} but only {remaining_brokers} brokers would remain"
)]
pub struct ScaleDownRefused {
    /// The topic that needs more brokers (the one with the largest replication factor).
    pub topic: String,
    /// Its replication factor.
    pub replication_factor: usize,
    /// How many brokers the scale-down would leave.
    pub remaining_brokers: usize,
}

/// Why no plan could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Too few target brokers for some topic.
    #[error("scale-down refused: {0}")]
    ScaleDownRefused(#[from] ScaleDownRefused),
    /// The target broker set is empty.
    #[error("the target broker set is empty")]
    NoTargetBrokers,
    /// A target broker is not registered, so its rack is unknown and it cannot take replicas yet.
    #[error("target broker {broker} is not registered")]
    UnknownTargetBroker {
        /// The unregistered broker id.
        broker: BrokerId,
    },
    /// A replica list names one broker twice.
    #[error("partition {topic}-{partition} lists broker {broker} twice")]
    DuplicateReplica {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: i32,
        /// The repeated broker.
        broker: BrokerId,
    },
    /// A partition has no replicas at all.
    #[error("partition {topic}-{partition} has no replicas")]
    EmptyReplicas {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: i32,
    },
}

/// Refuses a scale-down to `remaining_brokers` brokers when some topic's replication factor is
/// larger. The refusal names the topic with the largest replication factor (ties: the first name).
///
/// # Errors
/// [`ScaleDownRefused`] naming the topic, its replication factor and the remaining broker count.
pub fn check_scale_down(
    partitions: &[PartitionState],
    remaining_brokers: usize,
) -> Result<(), ScaleDownRefused> {
    let mut widest: Option<(&str, usize)> = None;
    for state in partitions {
        let rf = state.replicas.len();
        let wider = match widest {
            None => true,
            Some((topic, max_rf)) => rf > max_rf || (rf == max_rf && state.topic.as_str() < topic),
        };
        if wider {
            widest = Some((&state.topic, rf));
        }
    }
    match widest {
        Some((topic, rf)) if rf > remaining_brokers => Err(ScaleDownRefused {
            topic: topic.to_owned(),
            replication_factor: rf,
            remaining_brokers,
        }),
        _ => Ok(()),
    }
}

/// Computes a balanced, rack-aware assignment over `input.target_brokers` that moves as few
/// replicas as possible, and returns the partitions that change, in submission order.
///
/// # Errors
/// [`PlanError`] when the input is inconsistent or the target set is too small for some topic.
pub fn plan_reassignment(input: &ReassignmentInput) -> Result<ReassignmentPlan, PlanError> {
    validate(input)?;
    let racks: BTreeMap<BrokerId, Option<&str>> = input
        .brokers
        .iter()
        .map(|broker| (broker.id, broker.rack.as_deref()))
        .collect();

    // Two greedy orders for the replicas that must leave their brokers; each is balanced, and the
    // better result (more balanced, then fewer moves) is kept. Neither order alone is optimal.
    let start = Placement::new(input, &racks);
    let placement = [false, true]
        .into_iter()
        .map(|constrained_first| {
            let mut placement = start.clone();
            placement.place_outside_replicas(constrained_first);
            placement.spread_racks();
            placement.balance();
            placement
        })
        .min_by_key(Placement::cost)
        .unwrap_or(start);
    let assignment = placement.into_assignment();
    let targets = leaders::order_by_leader(&input.partitions, &assignment, &input.target_brokers);

    let mut reassignments: Vec<(u8, PartitionReassignment)> = input
        .partitions
        .iter()
        .zip(targets)
        .filter(|(state, target)| state.replicas != *target)
        .map(|(state, target)| {
            let leaves_target_set = state
                .replicas
                .iter()
                .any(|broker| !input.target_brokers.contains(broker));
            let reassignment = PartitionReassignment::new(state, target);
            let class = if leaves_target_set {
                0
            } else if reassignment.is_leader_only() {
                2
            } else {
                1
            };
            (class, reassignment)
        })
        .collect();
    reassignments.sort_by(|(class_a, a), (class_b, b)| {
        (class_a, &a.topic, a.partition).cmp(&(class_b, &b.topic, b.partition))
    });
    Ok(ReassignmentPlan {
        reassignments: reassignments.into_iter().map(|(_, r)| r).collect(),
        max_concurrent_moves: input.max_concurrent_moves.max(1),
    })
}

fn validate(input: &ReassignmentInput) -> Result<(), PlanError> {
    if input.target_brokers.is_empty() {
        return Err(PlanError::NoTargetBrokers);
    }
    let registered: BTreeSet<BrokerId> = input.brokers.iter().map(|b| b.id).collect();
    if let Some(&broker) = input.target_brokers.difference(&registered).next() {
        return Err(PlanError::UnknownTargetBroker { broker });
    }
    for state in &input.partitions {
        if state.replicas.is_empty() {
            return Err(PlanError::EmptyReplicas {
                topic: state.topic.clone(),
                partition: state.partition,
            });
        }
        let mut seen = BTreeSet::new();
        for &broker in &state.replicas {
            if !seen.insert(broker) {
                return Err(PlanError::DuplicateReplica {
                    topic: state.topic.clone(),
                    partition: state.partition,
                    broker,
                });
            }
        }
    }
    check_scale_down(&input.partitions, input.target_brokers.len())?;
    Ok(())
}
