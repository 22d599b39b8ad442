//! # Odradek broker
//!
//! A Kafka-wire-compatible log broker.
//!
//! # Layout
//! - [`group`]: the consumer-group coordinator (classic protocol, static membership) and committed
//!   offsets, persisted in the internal topic `__consumer_offsets`.
//! - [`storage`]: segment files, indexes, recovery, retention and compaction of one partition's log.
pub mod group;
pub mod storage;
