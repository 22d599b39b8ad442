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
//! ## Supported API versions (advertise exactly these in ApiVersions; also [`SUPPORTED_API_VERSIONS`])
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
//! ## Wiring it into the broker
//! 1. Implement [`CoordinatorLog`] over the compacted `__consumer_offsets` partition (durable
//!    append, full replay) and [`PartitionLookup`] over cluster metadata.
//! 2. `GroupCoordinator::new(log, partitions, GroupConfig::default())` at start-up (it replays),
//!    put it in an `Arc`, and spawn [`GroupCoordinator::run`] with the shutdown token: without it
//!    nothing times out.
//! 3. Per request, call the method of its API key with the decoded request and version. For
//!    JoinGroup use [`GroupCoordinator::join_group_with_client`] with the header's client id and
//!    the peer address (`/ip`), which Kafka puts in member ids and DescribeGroups. JoinGroup and
//!    SyncGroup may wait up to the rebalance timeout: do not hold other work of the connection
//!    hostage to them beyond what Kafka does (it, too, answers one request per connection at a time).
//! 4. FindCoordinator (not handled here) names the broker that leads the offsets partition. Only
//!    that broker's coordinator is active: call [`GroupCoordinator::deactivate`] when another
//!    broker leads it (every group request then answers `NOT_COORDINATOR`) and
//!    [`GroupCoordinator::activate`] when this one becomes the leader (it reloads from the log).
//! 5. Call [`GroupCoordinator::topic_deleted`] when a topic is deleted.
//! 6. Offset commits are acknowledged after [`CoordinatorLog::wait_durable`]: implement it to wait
//!    for the log's replication (acks=all).
//!
//! ## Layout
//! - `coordinator.rs`: [`GroupCoordinator`]: the lock over all groups, replay, the timer loop.
//! - `join.rs`: JoinGroup, including static member replacement.
//! - `membership.rs`: SyncGroup, Heartbeat, LeaveGroup.
//! - `offsets.rs`: OffsetCommit, OffsetFetch, OffsetDelete, topic deletion; `expiry.rs`: offset
//!   expiry and removal of groups left with nothing.
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
mod expiry;
mod join;
mod log;
mod member;
mod membership;
mod not_coordinator;
mod offsets;
mod outcome;
mod rebalance;
mod records;
#[cfg(test)]
mod tests;

use kafka_protocol::messages::ApiKey;

pub use config::GroupConfig;
pub use coordinator::{ClientInfo, GroupCoordinator};
pub use error::GroupError;
pub use log::{
    CoordinatorLog, CoordinatorRecord, DurableFuture, MemoryCoordinatorLog, PartitionLookup,
};

/// The API versions the coordinator serves, as (API key, min version, max version): the table above,
/// for ApiVersions.
pub const SUPPORTED_API_VERSIONS: [(ApiKey, i16, i16); 10] = [
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
];
