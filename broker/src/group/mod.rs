//! # Group coordinator
//!
//! Kafka's classic consumer-group protocol (JoinGroup / SyncGroup / Heartbeat / LeaveGroup, with
//! static membership) and committed offsets, for every group of this broker. The API layer decodes
//! a request, calls the matching [`GroupCoordinator`] method with the request and its version, and
//! encodes the response it gets back; every response is built for that version (fields a version
//! lacks are left at their defaults, so encoding never fails).
//!
//! Group metadata and offsets are kept as records of the compacted internal topic
//! `__consumer_offsets` through the [`CoordinatorLog`] trait, in Kafka's own record formats
//! (`records.rs`); on start-up [`GroupCoordinator::new`] replays them.
//!
//! ## Supported API versions (advertise exactly these in ApiVersions)
//! | API | key | versions |
//! |---|---|---|
//! | OffsetCommit | 8 | 2-9 |
//! | OffsetFetch | 9 | 1-9 |
//! | JoinGroup | 11 | 0-9 |
//! | Heartbeat | 12 | 0-4 |
//! | LeaveGroup | 13 | 0-5 |
//! | SyncGroup | 14 | 0-5 |
//! | DescribeGroups | 15 | 0-6 |
//! | ListGroups | 16 | 0-5 |
//! | DeleteGroups | 42 | 0-2 |
//! | OffsetDelete | 47 | 0 |
//!
//! These are the request versions kafka-protocol 0.18 (Kafka 4.1's schemas) can decode. OffsetCommit
//! v10 and OffsetFetch v10 (topic ids) are not decodable by the crate and so not served; no
//! supported version uses topic ids.
//!
//! ## Layout
//! - `coordinator.rs`: [`GroupCoordinator`]: the lock over all groups, replay, the timer loop.
//! - `membership.rs`: JoinGroup, SyncGroup, Heartbeat, LeaveGroup handlers.
//! - `offsets.rs`: OffsetCommit, OffsetFetch, OffsetDelete, topic deletion, offset expiry.
//! - `admin.rs`: ListGroups, DescribeGroups, DeleteGroups.
//! - `classic_group.rs`, `member.rs`: one group and one member; `rebalance.rs`: the rebalance state machine.
//! - `outcome.rs`: join/sync results before they become version-specific responses.
//! - `records.rs`: `__consumer_offsets` key/value codecs. `log.rs`: the storage traits.
//! - `clock.rs`: monotonic deadlines plus a wall clock derived from them (testable with paused time).

mod admin;
mod classic_group;
mod clock;
mod config;
mod coordinator;
mod error;
mod log;
mod member;
mod membership;
mod offsets;
mod outcome;
mod rebalance;
mod records;
#[cfg(test)]
mod tests;

pub use config::GroupConfig;
pub use coordinator::{ClientInfo, GroupCoordinator};
pub use error::GroupError;
pub use log::{CoordinatorLog, CoordinatorRecord, MemoryCoordinatorLog, PartitionLookup};
