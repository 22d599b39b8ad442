//! The Odradek operator: kube-rs controllers for `Broker`, `Topic` and `Processor`.
//!
//! # Layout
//! - [`mod@run`]: `odradek operator`: flags, leader election on a Lease, HTTP endpoints, and the
//!   controllers of every watched namespace, with graceful shutdown.
//! - [`controllers`]: one module per kind. Each has a `reconcile` (the only entry point the runtime
//!   calls), pure builders of the desired children (`resources`), and pure decision functions
//!   (`broker::scale`, `topic::plan`, `processor::lag`) driven by a thin async shell.
//! - [`planner`]: pure planners (partition reassignment, processor autoscaling).
//! - [`admin`]: the Kafka admin client, the operator's only way into a cluster, behind the
//!   [`admin::KafkaAdmin`] trait so reconcilers are tested with an in-memory cluster.
//! - [`context`], [`conditions`], [`metrics`], [`error`], [`http`]: what the controllers share.
//! - [`crdgen`]: `odradek crdgen`.
//!
//! Data flow of a reconcile: watch event → `reconcile(obj, ctx)` → read children and the cluster
//! (admin) → pure decision → server-side apply of children → admin mutations → status apply.

pub mod admin;
pub mod conditions;
pub mod context;
pub mod controllers;
pub mod crdgen;
pub mod error;
pub mod http;
pub mod metrics;
pub mod planner;
pub mod run;

#[cfg(test)]
mod fixtures;

pub use admin::AdminConnector;
pub use context::Context;
pub use error::{Error, Result};
pub use run::{OperatorArgs, run};
