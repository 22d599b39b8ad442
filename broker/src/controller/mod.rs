//! # Controller
//!
//! Kafka's KRaft controller duties over [`ClusterState`](crate::cluster::ClusterState): broker
//! liveness (fencing brokers whose heartbeats stop, unfencing them when they come back), leader
//! election from the ISR, preferred-leader rebalancing, and partition reassignment.
//!
//! ## Layout
//! - `election.rs`: pure decision functions [`fence`], [`unfence`], [`preferred_leaders`],
//!   [`elect_preferred`] and [`elect_leaderless`]: from a state to the metadata records that carry
//!   the decision out.
//! - `reassignment.rs`: pure [`alter`] (start, replace or cancel a reassignment) and [`progress`]
//!   (complete reassignments whose adding replicas are in sync).
//! - `sessions.rs`: [`Sessions`], which brokers to fence or unfence given their last heartbeats.
//! - `driver.rs`: the thin async shell: the controller loop on the node that
//!   [`MetadataStore::is_controller`](crate::cluster::MetadataStore::is_controller), the heartbeat
//!   sender every broker runs, fencing at start-up and controlled shutdown.
//!
//! Every record the decision functions emit is a
//! [`PartitionChange`](crate::cluster::MetadataRecord::PartitionChange) conditional on the partition
//! epoch it was computed from, so a decision made on a state another writer has since changed is a
//! no-op rather than a lost update; the loop recomputes it on its next tick.

mod driver;
mod election;
mod reassignment;
mod sessions;
#[cfg(test)]
mod tests;

pub use driver::{Controller, controlled_shutdown, send_heartbeats, start_fenced};
pub use election::{
    ElectionError, elect_leaderless, elect_preferred, fence, preferred_leaders, unfence,
};
pub use reassignment::{
    ReassignmentError, alter, in_progress, original_replicas, progress, reassignments,
};
pub use sessions::{LivenessChanges, Sessions};

/// The leader id of a partition without a leader (Kafka's `NO_LEADER`).
pub const NO_LEADER: i32 = -1;
