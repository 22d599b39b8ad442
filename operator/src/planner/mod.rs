//! Pure planners: functions from observed state to a plan, with no Kubernetes or network I/O.
//!
//! Keeping the decisions pure lets them be tested exhaustively (property and simulation tests) and
//! keeps the controllers thin: they observe, call a planner, and apply what it returns.
//!
//! - [`reassignment`]: which replicas move where when brokers are added or removed.
//! - [`autoscaler`]: how many replicas a `Processor` should run for its lag and rates.

pub mod autoscaler;
pub mod reassignment;

pub use autoscaler::{
    AutoscalePolicy, AutoscalerState, ProcessorObservation, ScalingDecision, ScalingReason, decide,
};
pub use reassignment::{
    BrokerId, BrokerInfo, PartitionReassignment, PartitionState, PlanError, ReassignmentInput,
    ReassignmentPlan, ScaleDownRefused, check_scale_down, plan_reassignment,
};
