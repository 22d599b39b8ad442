//! # Odradek broker
//!
//! A Kafka-wire-compatible log broker: unmodified Kafka clients produce, consume, commit offsets and
//! administer topics against it.
//!
//! # Layout
//! Requests flow top to bottom; each layer knows only the ones below it.
//! - [`net`]: the TCP listener and connections: size-prefixed frames, bounded request size, requests
//!   of one connection handled in order, graceful shutdown.
//! - [`api`]: one file per Kafka API key: decode (with the `kafka-protocol` crate), handle, encode.
//!   Errors become Kafka error codes here and nowhere else.
//! - [`group`]: the consumer-group coordinator (classic protocol, static membership) and committed
//!   offsets, persisted in the compacted internal topic `__consumer_offsets`; active on the broker
//!   that leads that topic's partition.
//! - [`controller`]: broker liveness (heartbeats, fencing), leader election from the ISR, preferred
//!   leaders and partition reassignment: pure decisions over [`cluster`] state, committed as records.
//! - [`cluster`]: cluster metadata (brokers, topics with ids, partitions, configs), changed only by
//!   applying records from a durable journal (one broker) or from the metadata Raft group that
//!   brokers share over their inter-broker RPC listener (a cluster).
//! - [`partition`]: the partition log as the API sees it: append with idempotent-producer checks,
//!   read, high watermark, truncation; waiting fetches subscribe to its high watermark.
//! - [`replica`]: replication across brokers (Kafka's ISR model): the metadata reactor that opens
//!   partitions and sets their roles, followers' fetchers, the leader's ISR upkeep.
//! - [`storage`]: segment files with offset and time indexes, crash recovery, retention, compaction.
//! - [`server`]: wires the layers into a running broker; [`http`] serves `/metrics`, `/healthz`, `/readyz`.

pub mod api;
pub mod cluster;
pub mod config;
pub mod controller;
pub mod group;
pub mod http;
pub mod metrics;
pub mod net;
pub mod partition;
pub mod replica;
pub mod server;
pub mod storage;

pub use config::{BrokerArgs, BrokerConfig};
pub use server::{Broker, run};
