//! Moving the ends of the log: retention, DeleteRecords and truncation.
//!
//! All of these run under the append lock and only ever remove whole segments (retention,
//! DeleteRecords) or cut the tail (truncation). A segment being removed may still be read by a
//! fetch that holds its `Arc`; its files are unlinked, which does not disturb the open file.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::open::write_log_start;
use super::{Log, Writer, lock, now_ms};
use crate::storage::StorageError;
use crate::storage::segment::Segment;

/// What retention deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionOutcome {
    /// Segments deleted.
    pub deleted_segments: usize,
    /// Bytes deleted.
    pub deleted_bytes: u64,
    /// The log start offset afterwards.
    pub log_start_offset: i64,
}

impl Log {
    /// Retention by time (`retention.ms`) and size (`retention.bytes`), for logs whose
    /// `cleanup.policy` includes `delete`. Deletes the oldest whole segments while they are
    /// entirely older than the retention time, or while the log stays at or above the retention
    /// size without them, plus segments wholly below the log start offset. When the active
    /// segment itself is due, a new empty one is rolled first (as Kafka does), so the log keeps
    /// its end offset. The log start offset moves to the first remaining segment.
    ///
    /// # Errors
    /// I/O errors while deleting or writing the checkpoint.
    pub fn apply_retention(&self, now_ms: i64) -> Result<RetentionOutcome, StorageError> {
        let config = self.config();
        let mut w = lock(&self.writer);
        let segments = self.segments_snapshot();
        let log_start = self.log_start_offset();
        let total: u64 = segments.iter().map(|s| s.size()).sum();

        let deletable = |i: usize, s: &Arc<Segment>| -> bool {
            let next = segments.get(i + 1);
            if next.is_none() && s.size() == 0 {
                return false;
            }
            next.is_some_and(|n| n.base_offset() <= log_start)
        };
        let mut count = segments
            .iter()
            .enumerate()
            .take_while(|(i, s)| deletable(*i, s))
            .count();
        if config.cleanup_policy.deletes() {
            if config.retention_ms >= 0 {
                let by_time = segments
                    .iter()
                    .enumerate()
                    .take_while(|(i, s)| {
                        let empty = s.size() == 0;
                        let last = i + 1 == segments.len();
                        (empty && !last)
                            || (!empty
                                && now_ms.saturating_sub(s.largest_timestamp())
                                    > config.retention_ms)
                    })
                    .count();
                count = count.max(by_time);
            }
            if config.retention_bytes >= 0 {
                let mut excess = i128::from(total) - i128::from(config.retention_bytes);
                let by_size = segments
                    .iter()
                    .enumerate()
                    .take_while(|(i, s)| {
                        let size = i128::from(s.size());
                        let empty_active = s.size() == 0 && i + 1 == segments.len();
                        if !empty_active && excess - size >= 0 {
                            excess -= size;
                            true
                        } else {
                            false
                        }
                    })
                    .count();
                count = count.max(by_size);
            }
        }
        let mut outcome = RetentionOutcome {
            log_start_offset: log_start,
            ..RetentionOutcome::default()
        };
        if count == 0 {
            return Ok(outcome);
        }
        if count == segments.len() {
            let leo = self.log_end_offset();
            self.roll(&mut w, leo)?;
        }
        for s in segments.iter().take(count) {
            outcome.deleted_bytes += s.size();
            outcome.deleted_segments += 1;
        }
        self.remove_segments(&segments[..count])?;
        outcome.log_start_offset = self.advance_log_start_to_first_segment(&w)?;
        tracing::info!(
            dir = %self.dir.display(),
            deleted_segments = outcome.deleted_segments,
            deleted_bytes = outcome.deleted_bytes,
            log_start_offset = outcome.log_start_offset,
            "applied retention"
        );
        Ok(outcome)
    }

    /// Unlinks segments and drops them from the map (never the active one).
    fn remove_segments(&self, doomed: &[Arc<Segment>]) -> Result<(), StorageError> {
        {
            let mut map = self
                .segments
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for s in doomed {
                map.remove(&s.base_offset());
            }
        }
        for s in doomed {
            s.delete_files()?;
        }
        Ok(())
    }

    /// Moves the log start offset up to the first segment's base offset if it is below.
    fn advance_log_start_to_first_segment(&self, _w: &Writer) -> Result<i64, StorageError> {
        let first = self
            .segments
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .next()
            .copied();
        let current = self.log_start_offset();
        match first {
            Some(first) if first > current => {
                self.set_log_start(first)?;
                Ok(first)
            }
            _ => Ok(current),
        }
    }

    fn set_log_start(&self, offset: i64) -> Result<(), StorageError> {
        write_log_start(&self.dir, offset)?;
        self.log_start_offset.store(offset, Ordering::Release);
        let mut epochs = lock(&self.epochs);
        if epochs.truncate_from_start(offset) {
            epochs.flush()?;
        }
        Ok(())
    }

    /// DeleteRecords: moves the log start offset up to `offset` (persisted before this returns)
    /// and deletes the segments wholly below it. Returns the new log start offset (the partition's
    /// low watermark). An offset at or below the current start changes nothing.
    ///
    /// # Errors
    /// [`StorageError::OffsetOutOfRange`] when `offset` is beyond the log end offset (the caller
    /// checks the high watermark, as Kafka does); I/O errors.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, StorageError> {
        let _w = lock(&self.writer);
        let log_start = self.log_start_offset();
        let leo = self.log_end_offset();
        if offset > leo || offset < 0 {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: log_start,
                log_end_offset: leo,
            });
        }
        if offset <= log_start {
            return Ok(log_start);
        }
        self.set_log_start(offset)?;
        let segments = self.segments_snapshot();
        let below = segments
            .windows(2)
            .take_while(|pair| pair[1].base_offset() <= offset)
            .count();
        self.remove_segments(&segments[..below])?;
        tracing::info!(dir = %self.dir.display(), log_start_offset = offset, deleted_segments = below, "deleted records");
        Ok(offset)
    }

    /// Replication: removes every record at and after `offset`; the log end offset becomes
    /// `offset` (a batch straddling it is removed whole, as in Kafka). Truncating below the log
    /// start empties the log and restarts it at `offset`. A no-op at or beyond the log end.
    ///
    /// # Errors
    /// I/O errors.
    pub fn truncate_to(&self, offset: i64) -> Result<(), StorageError> {
        let mut w = lock(&self.writer);
        let leo = self.log_end_offset();
        if offset >= leo {
            return Ok(());
        }
        self.truncations.fetch_add(1, Ordering::AcqRel);
        let offset = offset.max(0);
        let segments = self.segments_snapshot();
        if offset < self.log_start_offset() {
            self.restart_at(&mut w, &segments, offset)?;
        } else {
            let (keep, doomed): (Vec<_>, Vec<_>) = segments
                .into_iter()
                .partition(|s| s.base_offset() <= offset);
            self.remove_segments(&doomed)?;
            let Some(active) = keep.last().cloned() else {
                return Err(StorageError::OffsetOutOfRange {
                    offset,
                    log_start_offset: self.log_start_offset(),
                    log_end_offset: leo,
                });
            };
            let removed = active.truncate_to(offset)?;
            w.active = active;
            self.log_end_offset.store(offset, Ordering::Release);
            tracing::info!(dir = %self.dir.display(), offset, removed_bytes = removed, removed_segments = doomed.len(), "truncated log");
        }
        let mut epochs = lock(&self.epochs);
        if epochs.truncate_from_end(offset) {
            epochs.flush()?;
        }
        Ok(())
    }

    /// Replication: empties the log and restarts it at `offset`, which becomes both the log start
    /// and the log end offset (Kafka's `truncateFullyAndStartAt`, for a follower whose fetch
    /// offset fell below the leader's log start).
    ///
    /// # Errors
    /// I/O errors.
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<(), StorageError> {
        let mut w = lock(&self.writer);
        self.truncations.fetch_add(1, Ordering::AcqRel);
        let offset = offset.max(0);
        let segments = self.segments_snapshot();
        self.restart_at(&mut w, &segments, offset)?;
        let mut epochs = lock(&self.epochs);
        if epochs.truncate_from_end(offset) {
            epochs.flush()?;
        }
        Ok(())
    }

    fn restart_at(
        &self,
        w: &mut super::Writer,
        segments: &[Arc<Segment>],
        offset: i64,
    ) -> Result<(), StorageError> {
        // Drop the old segment at `offset` first: `Segment::create` would reuse its file.
        for s in segments.iter().filter(|s| s.base_offset() == offset) {
            s.delete_files()?;
        }
        let fresh = Arc::new(Segment::create(&self.dir, offset)?);
        {
            let mut map = self
                .segments
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            map.clear();
            map.insert(offset, Arc::clone(&fresh));
        }
        for s in segments.iter().filter(|s| s.base_offset() != offset) {
            s.delete_files()?;
        }
        w.active = fresh;
        self.log_end_offset.store(offset, Ordering::Release);
        write_log_start(&self.dir, offset)?;
        self.log_start_offset.store(offset, Ordering::Release);
        Ok(())
    }

    /// The current time for callers without a clock of their own (retention, compaction).
    #[must_use]
    pub fn now_ms() -> i64 {
        now_ms()
    }
}
