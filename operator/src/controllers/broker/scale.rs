//! The scaling step of a Broker: a pure decision from the StatefulSet's size, the desired size and
//! the cluster's metadata to what the reconciler does next.
//!
//! Scale up: the StatefulSet grows at once; when every new broker has registered, the reassignment
//! planner moves replicas onto them, a batch at a time. Scale down: the StatefulSet keeps its size
//! until no replica is left on the brokers it will delete (ordinals `desired..current`); a scale-down
//! that would leave fewer brokers than some topic's replication factor is refused and the StatefulSet
//! is left alone.

use std::collections::BTreeSet;

use odradek_crds::broker::{ReassignmentStatus, RebalanceSpec};

use crate::admin::{
    BrokerNode, OngoingReassignment, PartitionReassignmentRequest, TopicDescription,
};
use crate::planner::reassignment::{
    BrokerInfo, PartitionState, ReassignmentInput, check_scale_down, plan_reassignment,
};

/// What the cluster's metadata says, gathered through the admin client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// Registered, unfenced brokers.
    pub brokers: Vec<BrokerNode>,
    /// Registered brokers that are fenced (stopped, or gone with a scale-down).
    pub fenced: Vec<i32>,
    /// Every topic with its partitions.
    pub topics: Vec<TopicDescription>,
    /// Reassignments in flight.
    pub ongoing: Vec<OngoingReassignment>,
}

impl ClusterView {
    /// Partitions with the replicas they will have: while a reassignment runs, Metadata lists the
    /// union of the old and the target replicas, and the ones being removed do not count.
    fn partitions(&self) -> Vec<PartitionState> {
        self.topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    let removing: &[i32] = self
                        .ongoing
                        .iter()
                        .find(|o| o.topic == t.name && o.partition == p.partition)
                        .map_or(&[], |o| o.removing.as_slice());
                    PartitionState {
                        topic: t.name.clone(),
                        partition: p.partition,
                        replicas: p
                            .replicas
                            .iter()
                            .copied()
                            .filter(|r| !removing.contains(r))
                            .collect(),
                        leader: p.leader,
                    }
                })
            })
            .collect()
    }

    fn registered(&self) -> BTreeSet<i32> {
        self.brokers.iter().map(|b| b.id).collect()
    }
}

/// The decision of one reconcile.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScaleStep {
    /// Replicas to give the StatefulSet now.
    pub statefulset_replicas: i32,
    /// Reassignments to submit now.
    pub submit: Vec<PartitionReassignmentRequest>,
    /// Progress to report, while moving replicas.
    pub progress: Option<ReassignmentStatus>,
    /// Why a scale-down is refused (names the topic), if it is.
    pub refused: Option<String>,
    /// Something is in motion: reconcile again soon.
    pub waiting: bool,
    /// Brokers removed by a finished scale-down that the cluster still lists: unregister them.
    pub unregister: Vec<i32>,
}

/// Errors of the scaling decision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScaleError {
    /// A scale-down needs the cluster's metadata and it could not be read.
    #[error("scale-down from {current} to {desired} brokers needs the cluster's metadata")]
    NeedsClusterView {
        /// Current size.
        current: i32,
        /// Desired size.
        desired: i32,
    },
    /// The planner rejected its input.
    #[error("{0}")]
    Plan(String),
}

/// Decides the scaling step. `current` is the StatefulSet's replicas (`None` before it exists),
/// `view` the cluster's metadata (`None` when unreachable), `previous` the last reported progress.
///
/// Fenced brokers whose ordinal is beyond both the StatefulSet's size and the desired size have no
/// pod any more (a finished scale-down): the step unregisters them so that they leave the metadata.
///
/// # Errors
/// A scale-down without a cluster view, or a planner error.
pub fn decide(
    current: Option<i32>,
    desired: i32,
    view: Option<&ClusterView>,
    rebalance: &RebalanceSpec,
    previous: Option<&ReassignmentStatus>,
) -> Result<ScaleStep, ScaleError> {
    let mut step = decide_size(current, desired, view, rebalance, previous)?;
    if let (Some(current), Some(view)) = (current, view) {
        let beyond = current.max(desired);
        step.unregister = view
            .fenced
            .iter()
            .copied()
            .filter(|id| *id >= beyond)
            .collect();
    }
    Ok(step)
}

fn decide_size(
    current: Option<i32>,
    desired: i32,
    view: Option<&ClusterView>,
    rebalance: &RebalanceSpec,
    previous: Option<&ReassignmentStatus>,
) -> Result<ScaleStep, ScaleError> {
    let Some(current) = current else {
        return Ok(ScaleStep {
            statefulset_replicas: desired,
            ..ScaleStep::default()
        });
    };
    let scaling_down = desired < current;
    let Some(view) = view else {
        if scaling_down {
            return Err(ScaleError::NeedsClusterView { current, desired });
        }
        return Ok(ScaleStep {
            statefulset_replicas: desired,
            waiting: desired > current,
            ..ScaleStep::default()
        });
    };
    let reason = if scaling_down { "ScaleDown" } else { "ScaleUp" };
    let hold = if scaling_down { current } else { desired };
    let partitions = view.partitions();

    if scaling_down
        && let Err(refused) = check_scale_down(&partitions, usize::try_from(desired).unwrap_or(0))
    {
        return Ok(ScaleStep {
            statefulset_replicas: current,
            refused: Some(refused.to_string()),
            ..ScaleStep::default()
        });
    }
    if !view.ongoing.is_empty() {
        let in_progress = i32::try_from(view.ongoing.len()).unwrap_or(i32::MAX);
        return Ok(ScaleStep {
            statefulset_replicas: hold,
            progress: Some(progress(previous, reason, desired, in_progress, 0)),
            waiting: true,
            ..ScaleStep::default()
        });
    }
    let target: BTreeSet<i32> = (0..desired).collect();
    if !scaling_down {
        // Moves start when every broker of the target set has registered, and only if wanted.
        if !target.is_subset(&view.registered()) {
            return Ok(ScaleStep {
                statefulset_replicas: desired,
                waiting: true,
                ..ScaleStep::default()
            });
        }
        if !rebalance.on_scale {
            return Ok(ScaleStep {
                statefulset_replicas: desired,
                ..ScaleStep::default()
            });
        }
    }
    let input = ReassignmentInput {
        brokers: view
            .brokers
            .iter()
            .map(|b| BrokerInfo {
                id: b.id,
                rack: b.rack.clone(),
            })
            .collect(),
        partitions,
        target_brokers: target,
        max_concurrent_moves: usize::try_from(rebalance.max_concurrent_moves).unwrap_or(1),
    };
    let plan = plan_reassignment(&input).map_err(|e| ScaleError::Plan(e.to_string()))?;
    if plan.is_empty() {
        // Balanced, and (for a scale-down) nothing left on the brokers that go: resize now.
        return Ok(ScaleStep {
            statefulset_replicas: desired,
            ..ScaleStep::default()
        });
    }
    let batch = plan.next_batch();
    let submit: Vec<PartitionReassignmentRequest> = batch
        .iter()
        .map(|r| PartitionReassignmentRequest {
            topic: r.topic.clone(),
            partition: r.partition,
            replicas: Some(r.target_replicas.clone()),
        })
        .collect();
    let remaining = i32::try_from(plan.reassignments.len()).unwrap_or(i32::MAX);
    let in_progress = i32::try_from(submit.len()).unwrap_or(i32::MAX);
    Ok(ScaleStep {
        statefulset_replicas: hold,
        submit,
        progress: Some(progress(previous, reason, desired, in_progress, remaining)),
        waiting: true,
        ..ScaleStep::default()
    })
}

/// Progress: `total` is kept from the first report of the same scale so `completed` grows.
fn progress(
    previous: Option<&ReassignmentStatus>,
    reason: &str,
    target: i32,
    in_progress: i32,
    remaining: i32,
) -> ReassignmentStatus {
    let outstanding = remaining.max(in_progress);
    let total = previous
        .filter(|p| p.reason == reason && p.target_replicas == target)
        .map_or(outstanding, |p| p.total.max(outstanding));
    ReassignmentStatus {
        reason: reason.to_owned(),
        target_replicas: target,
        total,
        completed: total - outstanding,
        in_progress,
    }
}

#[cfg(test)]
mod tests;
