//! Odradek operator crate.
//!
//! # Layout
//! - [`planner`]: pure planners (partition reassignment on broker scale up/down, processor
//!   autoscaling) that turn observed cluster state into a plan; the controllers execute the plans.

pub mod planner;
