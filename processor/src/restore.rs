//! Restoring a task's store from its local file plus the changelog tail.
//!
//! Pure logic over a [`ChangelogSource`], so that it is tested against an in-memory changelog; the
//! runtime plugs in a Kafka consumer. The rules:
//! - Start after the local checkpoint's changelog offset (a fresh pod: from the log start).
//! - Apply writes group by group: a group is applied only when its commit marker has been read, and
//!   the marker's absorbed offset becomes the store's resume position. A trailing group without a marker
//!   (a commit torn by a crash) is discarded; the input replay from the marker's offset redoes it.
//! - If the local checkpoint is ahead of the changelog (the topic was recreated) or behind its log
//!   start (records were deleted), the local file cannot be trusted: it is cleared and the store is
//!   rebuilt from the changelog alone.
//! - Applied groups are written in chunks, each chunk one store transaction with its checkpoint, so a
//!   crash during a long restore resumes from the last chunk instead of from scratch.

use crate::changelog::{ChangelogEntry, decode};
use crate::error::RuntimeError;
use crate::store::{Checkpoint, LocalStore};

/// Changelog writes buffered before they are applied to the store in one transaction.
const CHUNK_WRITES: usize = 50_000;

/// One record read back from a changelog partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangelogRecord {
    /// Its offset in the changelog partition.
    pub offset: i64,
    /// Its key.
    pub key: Option<Vec<u8>>,
    /// Its value (`None`: a tombstone).
    pub value: Option<Vec<u8>>,
}

/// A changelog partition being read from. Implementations block; the runtime calls them off the
/// async executor.
pub trait ChangelogSource {
    /// The partition's log start offset and end offset (high watermark) now.
    ///
    /// # Errors
    /// The partition cannot be reached.
    fn watermarks(&mut self) -> Result<(i64, i64), RuntimeError>;
    /// Positions the reader at `from`.
    ///
    /// # Errors
    /// The partition cannot be read.
    fn start(&mut self, from: i64) -> Result<(), RuntimeError>;
    /// The next records in offset order and the position after them (the next offset to read). An
    /// empty batch is allowed; the implementation reports an error if the partition stops answering.
    ///
    /// # Errors
    /// The partition cannot be read.
    fn next_batch(&mut self) -> Result<(Vec<ChangelogRecord>, i64), RuntimeError>;
}

/// Where a restore stands, reported after every batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoreProgress {
    /// Changelog offsets to cover in total.
    pub total: i64,
    /// Offsets covered so far.
    pub done: i64,
    /// Records read so far.
    pub records: u64,
    /// Key and value bytes read so far.
    pub bytes: u64,
}

/// What a finished restore did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoreOutcome {
    /// The store's checkpoint after the restore: where to resume the input.
    pub checkpoint: Checkpoint,
    /// Changelog records read.
    pub records: u64,
    /// Key and value bytes read.
    pub bytes: u64,
    /// Writes of a torn trailing commit that were not applied.
    pub discarded: u64,
    /// Whether the local file was cleared because it disagreed with the changelog.
    pub cleared_local: bool,
}

/// Brings `store` up to the end of its changelog partition (as of the start of the restore).
///
/// # Errors
/// The changelog cannot be read, holds a malformed record, or the store cannot be written.
pub fn restore(
    store: &mut LocalStore,
    source: &mut dyn ChangelogSource,
    topic: &str,
    partition: i32,
    progress: &mut dyn FnMut(RestoreProgress),
) -> Result<RestoreOutcome, RuntimeError> {
    let mut checkpoint = store.checkpoint()?;
    let (log_start, end) = source.watermarks()?;
    let mut cleared_local = false;
    if let Some(c) = checkpoint.changelog_offset
        && (c >= end || c + 1 < log_start)
    {
        tracing::warn!(
            store = store.name(),
            partition,
            local_changelog_offset = c,
            log_start,
            end,
            "local store disagrees with its changelog: rebuilding from the changelog"
        );
        store.clear()?;
        checkpoint = Checkpoint::default();
        cleared_local = true;
    }
    let from = checkpoint.changelog_offset.map_or(log_start, |c| c + 1);
    let mut outcome = RestoreOutcome {
        checkpoint,
        records: 0,
        bytes: 0,
        discarded: 0,
        cleared_local,
    };
    let total = (end - from).max(0);
    progress(RestoreProgress {
        total,
        done: 0,
        records: 0,
        bytes: 0,
    });
    if from >= end {
        return Ok(outcome);
    }
    source.start(from)?;
    let mut pending: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
    let mut chunk: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
    let mut chunk_dirty = false;
    let mut position = from;
    while position < end {
        let (batch, next) = source.next_batch()?;
        for record in batch {
            if record.offset >= end {
                break;
            }
            outcome.records += 1;
            outcome.bytes += (record.key.as_ref().map_or(0, Vec::len)
                + record.value.as_ref().map_or(0, Vec::len)) as u64;
            let entry =
                decode(record.key.as_deref(), record.value.as_deref()).map_err(|reason| {
                    RuntimeError::Changelog {
                        topic: topic.to_owned(),
                        partition,
                        offset: record.offset,
                        reason,
                    }
                })?;
            match entry {
                ChangelogEntry::Write { key, value } => {
                    pending.push((key.to_vec(), value.map(<[u8]>::to_vec)));
                }
                ChangelogEntry::Marker { absorbed } => {
                    chunk.append(&mut pending);
                    outcome.checkpoint = Checkpoint {
                        absorbed: Some(absorbed),
                        changelog_offset: Some(record.offset),
                    };
                    chunk_dirty = true;
                    if chunk.len() >= CHUNK_WRITES {
                        store.apply_restored(&chunk, outcome.checkpoint, false)?;
                        chunk.clear();
                    }
                }
            }
        }
        position = next.max(position);
        progress(RestoreProgress {
            total,
            done: (position.min(end) - from),
            records: outcome.records,
            bytes: outcome.bytes,
        });
    }
    // Also when the last chunk was already applied: this final transaction makes it durable.
    if chunk_dirty {
        store.apply_restored(&chunk, outcome.checkpoint, true)?;
    }
    outcome.discarded = pending.len() as u64;
    if outcome.discarded > 0 {
        tracing::info!(
            store = store.name(),
            partition,
            discarded = outcome.discarded,
            "discarded the writes of a torn commit at the changelog tail"
        );
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests;
