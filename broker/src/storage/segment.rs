//! One segment: a `<base offset>.log` file of whole batches with its offset and time indexes.
//!
//! A segment is shared as `Arc<Segment>` between the appender and readers. The file is written
//! only at its end with `pwrite` by the log's single appender, and the visible size is published
//! with a release store after the write, so readers (`pread`, no lock held during I/O) never see
//! a partial batch. Deleting a segment unlinks its files; readers that still hold the `Arc` keep
//! reading the open file.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::StorageError;
use super::batch::BatchHeader;
use super::offset_index::OffsetIndex;
use super::scan::scan_batches;
use super::time_index::TimeIndex;

mod read;
mod recovery;

/// The header fields of one batch the log keeps while appending or scanning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchMeta {
    pub(crate) base_offset: i64,
    pub(crate) last_offset: i64,
    pub(crate) max_timestamp: i64,
    pub(crate) record_count: i32,
    pub(crate) leader_epoch: i32,
    /// Position relative to the start of the appended buffer (or in the file, when scanning).
    pub(crate) position: u64,
    pub(crate) size: u64,
}

impl BatchMeta {
    pub(crate) fn of(header: &BatchHeader<'_>, position: u64) -> Self {
        Self {
            base_offset: header.base_offset(),
            last_offset: header.last_offset(),
            max_timestamp: header.max_timestamp(),
            record_count: header.record_count(),
            leader_epoch: header.partition_leader_epoch(),
            position,
            size: header.size() as u64,
        }
    }
}

/// Mutable state of a segment besides its file, guarded by one lock.
#[derive(Debug)]
pub(super) struct SegmentState {
    index: OffsetIndex,
    time_index: TimeIndex,
    bytes_since_index: u64,
    /// Largest batch max timestamp, -1 when none.
    max_timestamp: i64,
    /// Base offset of the first batch that reached `max_timestamp`.
    offset_of_max_timestamp: i64,
    /// Max timestamp of the first batch: `segment.ms` counts from it, as in Kafka.
    rolling_timestamp: Option<i64>,
    /// Last offset + 1 of the last batch, the base offset when empty.
    next_offset: i64,
    /// The in-memory index was corrected and differs from the file.
    index_dirty: bool,
    deleted: bool,
}

impl SegmentState {
    pub(super) fn new(base_offset: i64) -> Self {
        Self {
            index: OffsetIndex::new(base_offset),
            time_index: TimeIndex::new(base_offset),
            bytes_since_index: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            rolling_timestamp: None,
            next_offset: base_offset,
            index_dirty: false,
            deleted: false,
        }
    }

    /// Accounts for one batch written at `position`, adding index entries every `interval` bytes.
    pub(super) fn track(&mut self, meta: &BatchMeta, position: u64, interval: u64) {
        // As Kafka: an entry for the batch that follows more than `interval` unindexed bytes, so a
        // lookup lands at most about one interval (plus one batch) before its target.
        if self.bytes_since_index > interval {
            self.index.append(meta.base_offset, position);
            if meta.max_timestamp > self.max_timestamp {
                self.time_index
                    .maybe_append(meta.max_timestamp, meta.base_offset);
            } else {
                self.time_index
                    .maybe_append(self.max_timestamp, self.offset_of_max_timestamp);
            }
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += meta.size;
        if meta.max_timestamp > self.max_timestamp {
            self.max_timestamp = meta.max_timestamp;
            self.offset_of_max_timestamp = meta.base_offset;
        }
        if self.rolling_timestamp.is_none() {
            self.rolling_timestamp = Some(meta.max_timestamp);
        }
        self.next_offset = meta.last_offset + 1;
    }
}

/// One segment file and its indexes.
#[derive(Debug)]
pub(crate) struct Segment {
    base_offset: i64,
    log_path: PathBuf,
    index_path: PathBuf,
    time_index_path: PathBuf,
    file: File,
    /// Bytes readers may read; published after each write.
    size: AtomicU64,
    state: RwLock<SegmentState>,
}

/// The file name stem of the segment starting at `base_offset`: 20 zero-padded digits.
pub(crate) fn file_stem(base_offset: i64) -> String {
    format!("{base_offset:020}")
}

impl Segment {
    pub(super) fn paths(dir: &Path, base_offset: i64) -> (PathBuf, PathBuf, PathBuf) {
        let stem = file_stem(base_offset);
        (
            dir.join(format!("{stem}.log")),
            dir.join(format!("{stem}.index")),
            dir.join(format!("{stem}.timeindex")),
        )
    }

    pub(super) fn with_file(dir: &Path, base_offset: i64, file: File, size: u64) -> Self {
        let (log_path, index_path, time_index_path) = Self::paths(dir, base_offset);
        Self {
            base_offset,
            log_path,
            index_path,
            time_index_path,
            file,
            size: AtomicU64::new(size),
            state: RwLock::new(SegmentState::new(base_offset)),
        }
    }

    /// Creates an empty segment, replacing any leftover files of the same base offset.
    pub(crate) fn create(dir: &Path, base_offset: i64) -> Result<Self, StorageError> {
        let (log_path, index_path, time_index_path) = Self::paths(dir, base_offset);
        for p in [&index_path, &time_index_path] {
            remove_if_exists(p)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)
            .map_err(|e| StorageError::io(&log_path, e))?;
        Ok(Self::with_file(dir, base_offset, file, 0))
    }

    pub(super) fn state(&self) -> RwLockReadGuard<'_, SegmentState> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn state_mut(&self) -> RwLockWriteGuard<'_, SegmentState> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// Bytes visible to readers.
    pub(crate) fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    pub(crate) fn next_offset(&self) -> i64 {
        self.state().next_offset
    }

    /// Largest batch timestamp and the base offset of the batch holding it; `None` when the
    /// segment holds no timestamp.
    pub(crate) fn max_timestamp(&self) -> Option<(i64, i64)> {
        let st = self.state();
        (st.max_timestamp >= 0).then_some((st.max_timestamp, st.offset_of_max_timestamp))
    }

    /// The timestamp retention compares against: the largest timestamp, or the file's
    /// modification time when the batches carry none (as Kafka does).
    pub(crate) fn largest_timestamp(&self) -> i64 {
        if let Some((ts, _)) = self.max_timestamp() {
            return ts;
        }
        self.file
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_millis()).ok())
            .unwrap_or(-1)
    }

    pub(crate) fn rolling_timestamp(&self) -> Option<i64> {
        self.state().rolling_timestamp
    }

    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Appends `data`, whose batches are described by `metas` (positions relative to `data`),
    /// with one `pwrite`, then indexes the batches and publishes the new size.
    pub(crate) fn append(
        &self,
        data: &[u8],
        metas: &[BatchMeta],
        index_interval: u64,
    ) -> Result<(), StorageError> {
        // Only the appender (under the log's append lock) changes the size, so this load is the
        // end of the file as far as anyone can observe.
        let pos = self.size();
        // A failed or short write publishes nothing: the next append writes at the same position
        // and overwrites whatever part of this one reached the file.
        self.file
            .write_all_at(data, pos)
            .map_err(|e| StorageError::io(&self.log_path, e))?;
        {
            let mut st = self.state_mut();
            for meta in metas {
                st.track(meta, pos + meta.position, index_interval);
            }
        }
        // Publish last: a reader that sees the new size finds the bytes and the index entries.
        // Index entries beyond the size it loaded are ignored by its lookups.
        self.size.store(pos + data.len() as u64, Ordering::Release);
        Ok(())
    }

    /// Removes every batch whose last offset is at or after `offset`. Returns the bytes removed.
    pub(crate) fn truncate_to(&self, offset: i64) -> Result<u64, StorageError> {
        let size = self.size();
        let from = self.position_at_or_before(offset, size)?;
        let mut cut = size;
        scan_batches(&self.file, &self.log_path, from, size, false, |h, pos| {
            if h.last_offset() >= offset {
                cut = pos;
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        if cut == size {
            return Ok(0);
        }
        // Shrink the visible size before the file, so that a concurrent reader stops at `cut`
        // rather than finding a short read where it expected bytes.
        self.size.store(cut, Ordering::Release);
        self.file
            .set_len(cut)
            .map_err(|e| StorageError::io(&self.log_path, e))?;
        // Rebuild the in-memory state: the indexes lose their entries at and after the cut, and
        // the batches after the last kept index entry are replayed, which is at most one index
        // interval of reading. The last kept time index entry holds the largest timestamp before
        // that entry, because time entries are taken together with offset entries.
        let mut st = self.state_mut();
        st.index.truncate_to_position(cut);
        st.time_index.truncate_to_offset(offset);
        let (resume_offset, resume_pos) = st.index.last_entry().unwrap_or((self.base_offset, 0));
        let mut replay = SegmentState::new(self.base_offset);
        replay.index = std::mem::take(&mut st.index);
        replay.time_index = std::mem::take(&mut st.time_index);
        if let Some((ts, off)) = replay.time_index.last_entry() {
            replay.max_timestamp = ts;
            replay.offset_of_max_timestamp = off;
        }
        replay.rolling_timestamp = st.rolling_timestamp;
        replay.next_offset = resume_offset;
        drop(st);
        let mut tail = Vec::new();
        scan_batches(
            &self.file,
            &self.log_path,
            resume_pos,
            cut,
            false,
            |h, pos| {
                tail.push(BatchMeta::of(h, pos));
                ControlFlow::Continue(())
            },
        )?;
        for meta in &tail {
            replay.bytes_since_index += meta.size;
            if meta.max_timestamp > replay.max_timestamp {
                replay.max_timestamp = meta.max_timestamp;
                replay.offset_of_max_timestamp = meta.base_offset;
            }
            replay.next_offset = meta.last_offset + 1;
        }
        if cut == 0 {
            replay = SegmentState::new(self.base_offset);
        }
        *self.state_mut() = replay;
        Ok(size - cut)
    }

    /// fsyncs the segment file.
    pub(crate) fn flush(&self) -> Result<(), StorageError> {
        self.file
            .sync_data()
            .map_err(|e| StorageError::io(&self.log_path, e))
    }

    /// Writes both index files, with the final time index entry for the segment's largest
    /// timestamp, and fsyncs them when `sync`.
    pub(crate) fn write_indexes(&self, sync: bool) -> Result<(), StorageError> {
        let mut st = self.state_mut();
        // Retention may have removed the segment meanwhile; writing would resurrect its files.
        if st.deleted {
            return Ok(());
        }
        let (ts, off) = (st.max_timestamp, st.offset_of_max_timestamp);
        if ts >= 0 {
            st.time_index.maybe_append(ts, off);
        }
        write_file(&self.index_path, &st.index.to_bytes(), sync)?;
        write_file(&self.time_index_path, &st.time_index.to_bytes(), sync)?;
        st.index_dirty = false;
        Ok(())
    }

    /// Writes the indexes if a damaged entry was dropped since they were loaded.
    pub(crate) fn write_indexes_if_dirty(&self) -> Result<(), StorageError> {
        if self.state().index_dirty {
            self.write_indexes(true)?;
        }
        Ok(())
    }

    /// fsyncs the index files if they exist (after a roll, off the append path).
    pub(crate) fn sync_index_files(&self) -> Result<(), StorageError> {
        for path in [&self.index_path, &self.time_index_path] {
            match File::open(path) {
                Ok(f) => f.sync_all().map_err(|e| StorageError::io(path, e))?,
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io(path, e)),
            }
        }
        Ok(())
    }

    /// Removes the index files (before the log file is replaced by compaction).
    pub(crate) fn remove_indexes(&self) -> Result<(), StorageError> {
        remove_if_exists(&self.index_path)?;
        remove_if_exists(&self.time_index_path)
    }

    /// Unlinks the segment's files. Readers holding the segment keep their open file.
    pub(crate) fn delete_files(&self) -> Result<(), StorageError> {
        self.state_mut().deleted = true;
        remove_if_exists(&self.log_path)?;
        self.remove_indexes()
    }
}

pub(super) fn remove_if_exists(path: &Path) -> Result<(), StorageError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io(path, e)),
    }
}

/// Replaces an index file through a temporary file and a rename, so that a crash leaves the old
/// file, the new one, or (on filesystems that publish a rename before its data) an empty one, which
/// recovery rebuilds: never a prefix of the new entries, which would look like a sound but stale
/// index. `sync` also makes the new content durable before the rename.
fn write_file(path: &Path, data: &[u8], sync: bool) -> Result<(), StorageError> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("index")
    ));
    let mut file = File::create(&tmp).map_err(|e| StorageError::io(&tmp, e))?;
    file.write_all(data)
        .map_err(|e| StorageError::io(&tmp, e))?;
    if sync {
        file.sync_all().map_err(|e| StorageError::io(&tmp, e))?;
    }
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| StorageError::io(path, e))?;
    Ok(())
}
