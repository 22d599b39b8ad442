//! [`Log`]: one partition's durable log, the storage layer's public face.
//!
//! Concurrency: one append lock (`writer`) serialises everything that changes the log (append,
//! roll, truncation, retention, DeleteRecords, the swap at the end of compaction); it is never taken
//! by readers. Readers take the segment map's read lock only long enough to clone the `Arc` of a
//! segment, then read its file with `pread` while appends continue. The log end offset is
//! published after the bytes are visible, so a reader never sees an offset it cannot read.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;

use super::batch::{self, BatchHeader, BatchIter};
use super::config::{LogConfig, MessageTimestampType};
use super::epoch_cache::EpochCache;
use super::segment::{BatchMeta, Segment};
use super::{StorageError, checkpoint};

mod compaction;
#[cfg(test)]
mod compaction_tests;
mod open;
mod read;
#[cfg(test)]
mod recovery_tests;
mod retention;
#[cfg(test)]
mod tests;

pub use compaction::CompactionOutcome;
pub use read::ReadResult;
pub use retention::RetentionOutcome;

/// Name of the log start offset checkpoint in the partition directory.
const LOG_START_CHECKPOINT: &str = "log-start-offset-checkpoint";
/// Present only while the log is cleanly closed: the active segment need not be scanned.
const CLEAN_SHUTDOWN_MARKER: &str = "clean-shutdown";

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record appended.
    pub base_offset: i64,
    /// Offset of the last record appended.
    pub last_offset: i64,
    /// Largest batch max timestamp appended (-1 when none).
    pub max_timestamp: i64,
    /// Base offset of the batch holding `max_timestamp`.
    pub offset_of_max_timestamp: i64,
    /// The broker time stamped on the batches under `message.timestamp.type=LogAppendTime`,
    /// -1 under `CreateTime` (Kafka's ProduceResponse `log_append_time_ms`).
    pub log_append_time: i64,
    /// The log start offset after the append.
    pub log_start_offset: i64,
    /// Records appended (sum of the batches' record counts).
    pub record_count: u64,
}

/// The settings the append path reads, copied out of the config so no lock is held for I/O.
#[derive(Debug, Clone, Copy)]
struct AppendSettings {
    segment_bytes: u64,
    segment_ms: u64,
    index_interval: u64,
    flush_messages: u64,
    flush_ms: u64,
    log_append_time: bool,
}

/// State owned by the appender, behind the append lock.
#[derive(Debug)]
struct Writer {
    active: Arc<Segment>,
    unflushed_messages: u64,
    last_flush: Instant,
}

/// One partition's log on local disk: segments of record batches with sparse indexes.
///
/// `Send + Sync`: share it as `Arc<Log>`. Appends are serialised internally; reads run concurrently
/// with appends and with each other.
///
/// # Durability
/// An append returns once its bytes are in the page cache, not on disk. `flush.messages` and
/// `flush.ms` make the log fsync after that many records or that much time; by default (as in
/// Kafka) they are effectively infinite and flushing is left to the operating system, with
/// durability coming from replication. On a single node a power loss can then lose what the page
/// cache held; a crash or `kill -9` of the process loses nothing that was appended. Closed
/// segments are fsynced in the background when they roll; [`Log::close`] (or drop) fsyncs everything
/// and leaves a clean-shutdown marker so that the next open trusts the active segment.
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    config: RwLock<LogConfig>,
    /// The append lock (std mutex: never held across an await).
    writer: Mutex<Writer>,
    /// All segments by base offset, the active one last.
    segments: RwLock<BTreeMap<i64, Arc<Segment>>>,
    /// Epoch cache; taken only under the append lock or briefly by queries.
    epochs: Mutex<EpochCache>,
    log_start_offset: AtomicI64,
    log_end_offset: AtomicI64,
    /// Serialises compactions, which run mostly without the append lock.
    cleaner: Mutex<()>,
    /// Counts truncations, so that a compaction that read a segment before one does not swap in
    /// records the truncation removed.
    truncations: AtomicU64,
    /// Background fsyncs of rolled segments, joined on close.
    background: Mutex<Vec<std::thread::JoinHandle<()>>>,
    closed: AtomicBool,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Milliseconds since the Unix epoch by the wall clock.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .unwrap_or(0)
}

impl Log {
    /// The partition directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current config.
    #[must_use]
    pub fn config(&self) -> LogConfig {
        self.config
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces the config; takes effect for the next append, roll or retention run.
    pub fn update_config(&self, config: LogConfig) {
        *self
            .config
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = config;
    }

    fn settings(&self) -> AppendSettings {
        let c = self
            .config
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        AppendSettings {
            segment_bytes: c.segment_bytes,
            segment_ms: c.segment_ms,
            index_interval: u64::from(c.index_interval_bytes),
            flush_messages: c.flush_messages,
            flush_ms: c.flush_ms,
            log_append_time: c.message_timestamp_type == MessageTimestampType::LogAppendTime,
        }
    }

    /// The first offset a consumer may read.
    #[must_use]
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset.load(Ordering::Acquire)
    }

    /// The offset the next appended record gets.
    #[must_use]
    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset.load(Ordering::Acquire)
    }

    /// Bytes of all segments.
    #[must_use]
    pub fn size_bytes(&self) -> u64 {
        self.segments_snapshot().iter().map(|s| s.size()).sum()
    }

    /// Number of segments, the active one included.
    #[must_use]
    pub fn segment_count(&self) -> usize {
        self.segments
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    fn segments_snapshot(&self) -> Vec<Arc<Segment>> {
        self.segments
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// The segment holding `offset` (the last with base at most `offset`), or the first one.
    fn floor_segment(&self, offset: i64) -> Option<Arc<Segment>> {
        let map = self
            .segments
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.range(..=offset)
            .next_back()
            .or_else(|| map.iter().next())
            .map(|(_, s)| Arc::clone(s))
    }

    fn next_segment(&self, base_offset: i64) -> Option<Arc<Segment>> {
        let map = self
            .segments
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.range(base_offset + 1..)
            .next()
            .map(|(_, s)| Arc::clone(s))
    }

    /// Appends already-validated batches (concatenated) as one unit, assigning offsets from the
    /// log end offset and stamping `leader_epoch` into each batch, in place in `batches` (the
    /// bytes written are then exactly `batches`, e.g. for replication). Under
    /// `message.timestamp.type=LogAppendTime` the batches are also stamped with the broker time.
    ///
    /// One `pwrite` per call; records are never decoded.
    ///
    /// # Errors
    /// A malformed-batch error if `batches` does not frame into whole v2 batches (nothing is
    /// written), [`StorageError::BatchLargerThanSegment`], or an I/O error.
    pub fn append(
        &self,
        batches: &mut BytesMut,
        leader_epoch: i32,
    ) -> Result<AppendInfo, StorageError> {
        let settings = self.settings();
        let mut w = lock(&self.writer);
        let log_append_time = if settings.log_append_time {
            now_ms()
        } else {
            -1
        };
        // Validate the framing of every batch before touching any of them.
        let mut count = 0usize;
        for header in BatchIter::without_crc(batches) {
            header?;
            count += 1;
        }
        let mut metas = Vec::with_capacity(count);
        let mut next = self.log_end_offset();
        let mut pos = 0usize;
        while pos < batches.len() {
            let slice = &mut batches[pos..];
            batch::set_base_offset(slice, next)?;
            batch::set_partition_leader_epoch(slice, leader_epoch)?;
            if log_append_time >= 0 {
                batch::set_log_append_time(slice, log_append_time)?;
            }
            let header = BatchHeader::parse_at(slice, pos)?;
            metas.push(BatchMeta::of(&header, pos as u64));
            next = header.last_offset() + 1;
            pos += header.size();
        }
        let mut info = self.append_locked(&mut w, batches, &metas, settings)?;
        info.log_append_time = log_append_time;
        Ok(info)
    }

    /// Appends batches that already carry their offsets and epochs (replication followers,
    /// compaction output). Offsets must be increasing and at or above the log end offset; gaps
    /// are allowed (a compacted leader has them). CRCs are verified.
    ///
    /// # Errors
    /// A malformed or corrupt batch error, [`StorageError::NonMonotonicOffset`], or an I/O error.
    pub fn append_with_offsets(&self, batches: &[u8]) -> Result<AppendInfo, StorageError> {
        let settings = self.settings();
        let mut w = lock(&self.writer);
        let mut next = self.log_end_offset();
        let mut metas = Vec::new();
        for header in BatchIter::new(batches) {
            let header = header?;
            if header.base_offset() < next {
                return Err(StorageError::NonMonotonicOffset {
                    base_offset: header.base_offset(),
                    log_end_offset: next,
                });
            }
            let position = metas.last().map_or(0, |m: &BatchMeta| m.position + m.size);
            metas.push(BatchMeta::of(&header, position));
            next = header.last_offset() + 1;
        }
        self.append_locked(&mut w, batches, &metas, settings)
    }

    fn append_locked(
        &self,
        w: &mut Writer,
        data: &[u8],
        metas: &[BatchMeta],
        settings: AppendSettings,
    ) -> Result<AppendInfo, StorageError> {
        let leo = self.log_end_offset();
        let (Some(first), Some(last)) = (metas.first(), metas.last()) else {
            return Ok(AppendInfo {
                base_offset: leo,
                last_offset: leo - 1,
                max_timestamp: -1,
                offset_of_max_timestamp: -1,
                log_append_time: -1,
                log_start_offset: self.log_start_offset(),
                record_count: 0,
            });
        };
        if let Some(big) = metas.iter().find(|m| m.size > settings.segment_bytes) {
            return Err(StorageError::BatchLargerThanSegment {
                size: usize::try_from(big.size).unwrap_or(usize::MAX),
                segment_bytes: settings.segment_bytes,
            });
        }
        let (mut max_ts, mut max_ts_offset, mut records) = (-1i64, first.base_offset, 0u64);
        for m in metas {
            if m.max_timestamp > max_ts {
                max_ts = m.max_timestamp;
                max_ts_offset = m.base_offset;
            }
            records += u64::try_from(m.record_count).unwrap_or(0);
        }
        if self.should_roll(
            &w.active,
            data.len() as u64,
            max_ts,
            last.last_offset,
            settings,
        ) {
            self.roll(w, first.base_offset)?;
        }
        w.active.append(data, metas, settings.index_interval)?;
        self.log_end_offset
            .store(last.last_offset + 1, Ordering::Release);

        let mut epochs = lock(&self.epochs);
        let mut changed = false;
        for m in metas {
            changed |= epochs.assign(m.leader_epoch, m.base_offset);
        }
        if changed {
            epochs.flush()?;
        }
        drop(epochs);

        w.unflushed_messages = w.unflushed_messages.saturating_add(records);
        self.maybe_flush(w, settings)?;
        Ok(AppendInfo {
            base_offset: first.base_offset,
            last_offset: last.last_offset,
            max_timestamp: max_ts,
            offset_of_max_timestamp: max_ts_offset,
            log_append_time: -1,
            log_start_offset: self.log_start_offset(),
            record_count: records,
        })
    }

    /// Kafka's roll rules: the segment would outgrow `segment.bytes`, its timestamps would span
    /// more than `segment.ms`, or an offset would not fit the 32-bit relative index.
    fn should_roll(
        &self,
        active: &Segment,
        incoming: u64,
        max_timestamp: i64,
        last_offset: i64,
        s: AppendSettings,
    ) -> bool {
        let overflow = last_offset - active.base_offset() > i64::from(i32::MAX);
        let size = active.size();
        if size == 0 {
            return overflow;
        }
        let too_big = size.saturating_add(incoming) > s.segment_bytes;
        let too_old = active.rolling_timestamp().is_some_and(|first| {
            u64::try_from(max_timestamp.saturating_sub(first)).unwrap_or(0) > s.segment_ms
        });
        too_big || too_old || overflow
    }

    /// Closes the active segment and starts a new one at `base_offset`.
    fn roll(&self, w: &mut Writer, base_offset: i64) -> Result<(), StorageError> {
        let new = Arc::new(Segment::create(&self.dir, base_offset)?);
        // Make the new file's directory entry durable, or an fsync of its data would not be.
        checkpoint::sync_dir(&self.dir)?;
        let old = std::mem::replace(&mut w.active, Arc::clone(&new));
        {
            let mut map = self
                .segments
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if old.size() == 0 {
                map.remove(&old.base_offset());
            }
            map.insert(base_offset, new);
        }
        if old.size() == 0 {
            old.delete_files()?;
            return Ok(());
        }
        old.write_indexes(false)?;
        tracing::debug!(segment = %old.log_path().display(), "rolled segment");
        // fsync the closed segment off the append path, as Kafka's scheduler does.
        let handle = std::thread::spawn(move || {
            if let Err(e) = old.flush().and_then(|()| old.sync_index_files()) {
                tracing::warn!(error = %e, "background flush of a closed segment failed");
            }
        });
        let mut background = lock(&self.background);
        background.retain(|h| !h.is_finished());
        background.push(handle);
        Ok(())
    }

    fn maybe_flush(&self, w: &mut Writer, s: AppendSettings) -> Result<(), StorageError> {
        let by_count = w.unflushed_messages >= s.flush_messages;
        let by_time = w.unflushed_messages > 0
            && s.flush_ms < i64::MAX as u64
            && u64::try_from(w.last_flush.elapsed().as_millis()).unwrap_or(u64::MAX) >= s.flush_ms;
        if by_count || by_time {
            w.active.flush()?;
            w.unflushed_messages = 0;
            w.last_flush = Instant::now();
        }
        Ok(())
    }

    /// fsyncs the log if `flush.ms` has passed since the last flush with appends pending; for a
    /// periodic task, as Kafka's log flusher.
    ///
    /// # Errors
    /// An I/O error of the fsync.
    pub fn flush_if_due(&self) -> Result<(), StorageError> {
        let settings = self.settings();
        let mut w = lock(&self.writer);
        self.maybe_flush(&mut w, settings)
    }

    /// fsyncs the active segment (closed ones are fsynced when they roll).
    ///
    /// # Errors
    /// An I/O error of the fsync.
    pub fn flush(&self) -> Result<(), StorageError> {
        let mut w = lock(&self.writer);
        w.active.flush()?;
        w.unflushed_messages = 0;
        w.last_flush = Instant::now();
        Ok(())
    }

    /// The epoch of the last leader that appended to this log.
    #[must_use]
    pub fn latest_epoch(&self) -> Option<i32> {
        lock(&self.epochs).latest_epoch()
    }

    /// A new leader's epoch starts at the log end offset (Kafka assigns it on becoming leader,
    /// before any append), so that followers' epochs are compared with it at once.
    ///
    /// # Errors
    /// I/O errors of the epoch checkpoint.
    pub fn assign_leader_epoch(&self, epoch: i32) -> Result<(), StorageError> {
        let _w = lock(&self.writer);
        let mut epochs = lock(&self.epochs);
        if epochs.assign(epoch, self.log_end_offset()) {
            epochs.flush()?;
        }
        Ok(())
    }

    /// OffsetForLeaderEpoch: the largest epoch at most `epoch` and the offset where it ended
    /// (the log end offset for the latest epoch); `(-1, -1)` when unknown.
    #[must_use]
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        lock(&self.epochs).end_offset_for(epoch, self.log_end_offset())
    }

    /// Flushes everything and leaves the clean-shutdown marker. Also done on drop.
    ///
    /// # Errors
    /// I/O errors of the final flush.
    pub fn close(self) -> Result<(), StorageError> {
        self.shutdown()
    }

    fn shutdown(&self) -> Result<(), StorageError> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let w = lock(&self.writer);
        let handles = std::mem::take(&mut *lock(&self.background));
        for handle in handles {
            if handle.join().is_err() {
                tracing::warn!("background flush of a closed segment panicked");
            }
        }
        w.active.flush()?;
        w.active.write_indexes(true)?;
        for segment in self.segments_snapshot() {
            segment.write_indexes_if_dirty()?;
        }
        lock(&self.epochs).flush()?;
        checkpoint::write(&self.dir.join(CLEAN_SHUTDOWN_MARKER), &[])?;
        Ok(())
    }

    /// Drops the log without the orderly close, as a crash would (tests of recovery).
    #[cfg(test)]
    pub(crate) fn abandon(self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Removes the log's directory and everything in it (DeleteTopics).
    ///
    /// # Errors
    /// I/O errors of the removal.
    pub fn delete(self) -> Result<(), StorageError> {
        self.closed.store(true, Ordering::Release);
        let _w = lock(&self.writer);
        fs::remove_dir_all(&self.dir).map_err(|e| StorageError::io(&self.dir, e))
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::warn!(dir = %self.dir.display(), error = %e, "closing log failed");
        }
    }
}
