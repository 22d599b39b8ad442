//! Partition replication: which partitions this broker hosts and in which role, followers copying
//! their leaders' logs, and the leader's ISR upkeep.
//!
//! # Model
//! Partitions replicate as Kafka does (ISR replication: `ReplicaManager`, `Partition`,
//! `ReplicaFetcherThread`), not with a Raft group per partition as the design once sketched. The
//! cluster metadata is replicated by consensus and already decides leaders, leader epochs and ISRs;
//! on top of it the ISR model needs no per-partition elections or quorum writes, keeps the log
//! format (batches carry their `partitionLeaderEpoch`) and the client-visible semantics (acks=all,
//! `min.insync.replicas`, truncation by leader epoch per KIP-101/279/320, `diverging_epoch` in
//! Fetch v12+) exactly Kafka's, and costs one fetch stream per broker pair rather than one Raft
//! group per partition.
//!
//! # Flow
//! - [`reactor`]: on every metadata change (and at start) opens the partitions this broker is a
//!   replica of, closes and deletes the others, and sets each one's role (leader or follower of
//!   whom, at which leader epoch). It publishes the fetch plan: partitions per leader.
//! - [`fetcher`]: one task per source broker fetches every partition this broker follows from it
//!   (Fetch with `replica_id`, `last_fetched_epoch`) and appends the leader's batches unchanged,
//!   truncating where the leader reports a diverging epoch.
//! - [`isr`]: the leader's periodic check that shrinks the ISR of lagging followers and expands it
//!   with caught-up ones, committed as conditional `PartitionChange` records; it also checkpoints
//!   high watermarks.
//! - The leader side of the protocol (followers' progress, high watermark) lives in
//!   [`crate::partition`]; the API handlers (`api::fetch`, `api::produce`) call into it.

pub mod client;
mod config;
pub mod fetcher;
pub mod isr;
pub mod reactor;

pub use client::{BrokerClient, ClientError};
pub use config::ReplicationConfig;
pub use reactor::{FetchPlan, reconcile};

#[cfg(test)]
pub(crate) mod tests;
