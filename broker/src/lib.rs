//! # Odradek broker
//!
//! A Kafka-wire-compatible log broker.
//!
//! # Layout
//! - [`storage`]: segment files, indexes, recovery, retention and compaction of one partition's log.
pub mod storage;
