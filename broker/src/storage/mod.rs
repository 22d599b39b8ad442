//! Partition log storage: one partition's durable log on local disk, Kafka style.
//!
//! # Layout
//! A directory per partition holds segments `<20-digit base offset>.log` of whole record batches
//! (magic v2, stored exactly as produced apart from the offset and leader epoch fields), each with
//! a sparse offset index `<base>.index` and time index `<base>.timeindex`, plus small checkpoint
//! files: `log-start-offset-checkpoint` (moved by DeleteRecords and retention),
//! `leader-epoch-checkpoint`, and `clean-shutdown` while the log is cleanly closed.
//!
//! - [`batch`]: zero-copy views and validation of record batches (also used by the API layer).
//! - [`config`]: Kafka topic configs, defaults and validation ([`LogConfig`]).
//! - [`Log`] (`log`): open/recover, append, read; `log/retention` (retention, DeleteRecords,
//!   truncation) and `log/compaction` (key compaction for `cleanup.policy=compact`).
//! - `segment`, `offset_index`, `time_index`, `scan`: one segment's file and indexes.
//! - `epoch_cache`, `checkpoint`: leader epochs and atomic checkpoint files.
//!
//! # Data flow
//! Produce: the API layer validates a partition's batch with [`batch::validate_produce`] (CRC,
//! size, Kafka's rules for client batches), then [`Log::append`] rewrites base offsets and epochs
//! in place and writes the buffer with one `pwrite`. Fetch: [`Log::read`] finds the segment by
//! base offset, the position by the sparse index, and returns file bytes (whole batches) as
//! `Bytes` without decoding them.
//!
//! All of [`Log`]'s methods do blocking file I/O. Appends and tail reads hit the page cache and
//! take microseconds; [`Log::open`], [`Log::compact`], [`Log::close`] and dropping a `Log` can take
//! much longer and belong on a blocking thread (`tokio::task::spawn_blocking`).
//!
//! # Durability
//! By default (`flush.messages` and `flush.ms` unset, as in Kafka) the log never fsyncs on the
//! append path: data reaches disk when the operating system writes the page cache back, when a
//! segment rolls (fsynced in the background) and on close. A crash or `kill -9` of the broker
//! loses nothing (the page cache survives); a power loss or kernel crash on a single node can lose
//! the last seconds of appends, which replication is meant to cover. Setting `flush.messages=1`
//! fsyncs every append (slow but durable on one node). Recovery cuts any torn or corrupt tail off
//! the active segment, so the log is always a prefix of what was appended.

pub mod batch;
pub(crate) mod checkpoint;
pub mod config;
mod epoch_cache;
mod error;
mod log;
mod offset_index;
mod scan;
mod segment;
mod time_index;

pub use config::{CleanupPolicy, ConfigEntry, ConfigError, LogConfig, MessageTimestampType};
pub use error::StorageError;
pub use log::{AppendInfo, CompactionOutcome, Log, ReadResult, RetentionOutcome};
#[cfg(test)]
mod testing;
