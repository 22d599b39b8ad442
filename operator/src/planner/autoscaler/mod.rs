//! The Processor autoscaler: desired replicas from lag, input rate and measured processing rate.
//!
//! Replicas are sized from what one replica can actually process, not from lag alone: lag says
//! that work is waiting, the per-replica capacity says how many replicas it takes to keep up with the
//! input and drain the backlog within `target_lag_seconds`:
//!
//! ```text
//! capacity = processing_rate / ready_replicas / busy_ratio
//! needed   = ceil((input_rate + lag / target_lag_seconds) / capacity)
//! ```
//!
//! clamped to `[min_replicas, min(max_replicas, partitions)]` (a replica beyond the partition count
//! would get no partition). The result is applied differently by direction:
//! - up: immediately, so a step in load is absorbed within a decision or two;
//! - down: only to the largest recommendation of the stabilisation window, and never below what the
//!   input rate alone needs with some headroom, so constant load does not flap;
//! - restoring (a task rebuilding its store from a changelog): the measured rate is temporarily low
//!   and lag grows for reasons more replicas would not fix (every new replica restores too), so only
//!   the input rate, sized with the last capacity measured outside a restore, may scale up;
//! - lag that is already draining (it fell since the last decision) does not add replicas: the
//!   backlog left by a restore or a finished scale-up is being worked off, and adding replicas would
//!   start new restores.
//!
//! The function is pure apart from the small [`AutoscalerState`] the caller keeps between decisions.

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod simulation;

use std::fmt;

use serde::{Deserialize, Serialize};

/// Headroom kept when scaling down: the input rate alone may use at most this fraction of the
/// capacity left, so that measurement noise does not scale straight back up.
const SCALE_DOWN_UTILISATION: f64 = 0.9;

/// Busy ratios below this are treated as this, so that a nearly idle processor does not extrapolate
/// its capacity from a handful of records.
const MIN_BUSY_RATIO: f64 = 0.05;

/// How many recommendations the state keeps at most, whatever the window (keeps status small).
const MAX_RECOMMENDATIONS: usize = 256;

/// Slack on `ceil` so that floating-point noise (3.0000000001) does not add a replica.
const CEIL_SLACK: f64 = 1e-9;

/// The autoscaling policy of a Processor (its spec's `autoscale`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalePolicy {
    /// Never fewer replicas than this.
    pub min_replicas: u32,
    /// Never more replicas than this (nor than the input partition count).
    pub max_replicas: u32,
    /// The backlog should be processed within this many seconds; must be positive.
    pub target_lag_seconds: f64,
    /// A scale-down takes the largest recommendation of this many seconds.
    pub scale_down_stabilization_seconds: u64,
}

/// What the controller observed for one decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessorObservation {
    /// The caller's clock in seconds (e.g. unix time); only differences matter.
    pub now_seconds: u64,
    /// The StatefulSet's replicas now.
    pub current_replicas: u32,
    /// Replicas that are ready.
    pub ready_replicas: u32,
    /// Input partition count (the largest over the inputs); 0 when unknown, then it caps nothing.
    pub partitions: u32,
    /// Records waiting, summed over the input partitions.
    pub total_lag: u64,
    /// Records per second produced to the inputs.
    pub input_rate: f64,
    /// Records per second processed by all ready replicas together; `None` until measured.
    pub processing_rate: Option<f64>,
    /// Mean fraction of time the ready replicas spent processing rather than waiting for input;
    /// `None` means saturated (1.0). Without it a caught-up processor cannot tell its capacity from
    /// its input rate and never scales down.
    pub busy_ratio: Option<f64>,
    /// Whether some task is restoring its store from a changelog.
    pub restoring: bool,
}

/// Memory between decisions, kept by the controller (in memory, or in status: it serializes).
/// Start with `AutoscalerState::default()`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerState {
    /// Recommendations of the stabilisation window, oldest first.
    recommendations: Vec<Recommendation>,
    /// Records per second one replica processes, last measured outside a restore.
    capacity_per_replica: Option<f64>,
    /// Lag seen by the previous decision, to tell growing lag from draining lag.
    previous_lag: Option<u64>,
}

/// One past recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Recommendation {
    at: u64,
    replicas: u32,
}

/// Why the autoscaler chose its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScalingReason {
    /// Load needs more replicas now.
    ScaleUp,
    /// Load has needed fewer replicas for the whole stabilisation window.
    ScaleDown,
    /// The current count matches the load.
    Steady,
    /// Fewer replicas would do, but not for long enough yet.
    Stabilizing,
    /// A task is restoring; lag is not acted on.
    Restoring,
    /// No processing rate is measured yet.
    NoMetrics,
    /// The current count is outside the policy's or the partitions' bounds.
    AtBounds,
}

impl ScalingReason {
    /// The CamelCase word for a status condition's `reason`.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::ScaleUp => "ScaleUp",
            Self::ScaleDown => "ScaleDown",
            Self::Steady => "Steady",
            Self::Stabilizing => "Stabilizing",
            Self::Restoring => "Restoring",
            Self::NoMetrics => "NoMetrics",
            Self::AtBounds => "AtBounds",
        }
    }
}

impl fmt::Display for ScalingReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The autoscaler's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScalingDecision {
    /// Replicas the StatefulSet should have.
    pub desired_replicas: u32,
    /// Why, in one word.
    pub reason: ScalingReason,
    /// Why, with the numbers, for status and Events.
    pub message: String,
}

/// Bounds from the policy and the partition count.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    lower: u32,
    upper: u32,
}

impl Bounds {
    fn new(policy: &AutoscalePolicy, partitions: u32) -> Self {
        let upper = if partitions > 0 {
            policy.max_replicas.min(partitions)
        } else {
            policy.max_replicas
        };
        Self {
            lower: policy.min_replicas.min(upper),
            upper,
        }
    }

    fn clamp(self, replicas: u32) -> u32 {
        replicas.clamp(self.lower, self.upper)
    }
}

/// Replicas of `capacity` records/s each that `rate` records/s need, saturating at `u32::MAX`.
fn replicas_for(rate: f64, capacity: f64) -> u32 {
    let exact = (rate / capacity - CEIL_SLACK).ceil();
    if exact.is_nan() || exact <= 0.0 {
        0
    } else if exact >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        // In range and integral, checked just above.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let replicas = exact as u32;
        replicas
    }
}

/// Per-replica capacity measured by this observation, if it can be trusted.
fn measured_capacity(observation: &ProcessorObservation) -> Option<f64> {
    let rate = observation.processing_rate?;
    if observation.restoring || observation.ready_replicas == 0 || !rate.is_finite() || rate <= 0.0
    {
        return None;
    }
    let busy = observation
        .busy_ratio
        .filter(|b| b.is_finite())
        .map_or(1.0, |b| b.clamp(MIN_BUSY_RATIO, 1.0));
    Some(rate / f64::from(observation.ready_replicas) / busy)
}

/// Decides the desired replicas for `observation` under `policy`, and records what later decisions
/// need in `state`. Deterministic: the same state and observation give the same decision.
pub fn decide(
    policy: &AutoscalePolicy,
    observation: &ProcessorObservation,
    state: &mut AutoscalerState,
) -> ScalingDecision {
    let bounds = Bounds::new(policy, observation.partitions);
    let current = observation.current_replicas;
    let input_rate = if observation.input_rate.is_finite() {
        observation.input_rate.max(0.0)
    } else {
        0.0
    };
    let lag = observation.total_lag;
    let now = observation.now_seconds;
    let fresh = state.previous_lag.is_none();
    let draining = state.previous_lag.is_some_and(|previous| lag < previous);
    state.previous_lag = Some(lag);
    if fresh {
        // A fresh state (first decision, or the operator restarted) knows no history: count the
        // current size as recommended now, so a scale-down still waits for a full window.
        record(state, now, current);
    }
    if let Some(capacity) = measured_capacity(observation) {
        state.capacity_per_replica = Some(capacity);
    }
    let window_start = now.saturating_sub(policy.scale_down_stabilization_seconds);
    for recommendation in &mut state.recommendations {
        // After the clock went back, recommendations dated in the future count as made now, so
        // they expire one window from now rather than only once the clock catches up.
        recommendation.at = recommendation.at.min(now);
    }
    state.recommendations.retain(|r| r.at >= window_start);

    let decision = if observation.restoring {
        decide_restoring(bounds, current, input_rate, state)
    } else if let Some(capacity) = measured_capacity(observation) {
        // Lag adds replicas only while it is not already shrinking (see the module docs).
        let lag_rate = if draining {
            0.0
        } else {
            lag_as_rate(lag, policy.target_lag_seconds)
        };
        let needed = bounds.clamp(replicas_for(input_rate + lag_rate, capacity));
        let floor = bounds.clamp(replicas_for(input_rate / SCALE_DOWN_UTILISATION, capacity));
        // What this decision would scale down to; the window's largest such value is the limit.
        record(state, now, needed.max(floor));
        let numbers = format!(
            "lag {lag} records{}, input {input_rate:.1} records/s, capacity {capacity:.1} records/s per replica",
            if draining { " (draining)" } else { "" }
        );
        if needed > current {
            ScalingDecision {
                desired_replicas: needed,
                reason: ScalingReason::ScaleUp,
                message: format!(
                    "{numbers}: {needed} replicas keep up and drain the lag within {}s",
                    policy.target_lag_seconds
                ),
            }
        } else {
            let window_max = state
                .recommendations
                .iter()
                .map(|r| r.replicas)
                .max()
                .unwrap_or(needed);
            let down_to = window_max.max(floor).min(current);
            if down_to < current {
                ScalingDecision {
                    desired_replicas: down_to,
                    reason: ScalingReason::ScaleDown,
                    message: format!(
                        "{numbers}: {down_to} replicas have been enough for {}s",
                        policy.scale_down_stabilization_seconds
                    ),
                }
            } else if needed.max(floor) < current {
                ScalingDecision {
                    desired_replicas: current,
                    reason: ScalingReason::Stabilizing,
                    message: format!(
                        "{numbers}: {needed} replicas would do; holding {current} for the stabilisation window and input headroom"
                    ),
                }
            } else {
                ScalingDecision {
                    desired_replicas: current,
                    reason: ScalingReason::Steady,
                    message: format!("{numbers}: {current} replicas match the load"),
                }
            }
        }
    } else if current == 0 && (lag > 0 || input_rate > 0.0) {
        // Nothing runs, so nothing can be measured: start the smallest useful number.
        let start = bounds.clamp(bounds.lower.max(1));
        ScalingDecision {
            desired_replicas: start,
            reason: ScalingReason::NoMetrics,
            message: format!(
                "no replica runs and {lag} records wait: starting {start} to measure the processing rate"
            ),
        }
    } else {
        ScalingDecision {
            desired_replicas: current,
            reason: ScalingReason::NoMetrics,
            message: format!(
                "no processing rate measured yet ({} of {current} replicas ready): holding",
                observation.ready_replicas
            ),
        }
    };
    enforce_bounds(decision, bounds, current)
}

/// While restoring, only the input rate (with the capacity last measured outside a restore) may add
/// replicas, and nothing is removed.
fn decide_restoring(
    bounds: Bounds,
    current: u32,
    input_rate: f64,
    state: &AutoscalerState,
) -> ScalingDecision {
    let for_input = state
        .capacity_per_replica
        .map(|capacity| bounds.clamp(replicas_for(input_rate, capacity)));
    match for_input {
        Some(needed) if needed > current => ScalingDecision {
            desired_replicas: needed,
            reason: ScalingReason::ScaleUp,
            message: format!(
                "restoring, but the input rate {input_rate:.1} records/s alone needs {needed} replicas"
            ),
        },
        _ => ScalingDecision {
            desired_replicas: current,
            reason: ScalingReason::Restoring,
            message: format!(
                "a task is restoring its store: holding {current} replicas, lag is not acted on"
            ),
        },
    }
}

/// Brings a decision inside the bounds (the policy or the partition count may have changed).
fn enforce_bounds(decision: ScalingDecision, bounds: Bounds, current: u32) -> ScalingDecision {
    let desired = bounds.clamp(decision.desired_replicas);
    if desired == decision.desired_replicas {
        return decision;
    }
    ScalingDecision {
        desired_replicas: desired,
        reason: ScalingReason::AtBounds,
        message: format!(
            "{current} replicas is outside [{}, {}] (min/max replicas and input partitions): {desired}",
            bounds.lower, bounds.upper
        ),
    }
}

/// Lag expressed as the extra rate that drains it within the target.
fn lag_as_rate(lag: u64, target_lag_seconds: f64) -> f64 {
    // Lag counts records; beyond 2^53 the rounding is irrelevant next to the target.
    #[allow(clippy::cast_precision_loss)]
    let lag = lag as f64;
    if target_lag_seconds.is_finite() && target_lag_seconds > 0.0 {
        lag / target_lag_seconds
    } else {
        lag
    }
}

fn record(state: &mut AutoscalerState, at: u64, replicas: u32) {
    state.recommendations.push(Recommendation { at, replicas });
    let excess = state
        .recommendations
        .len()
        .saturating_sub(MAX_RECOMMENDATIONS);
    state.recommendations.drain(..excess);
}
