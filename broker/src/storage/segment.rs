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

use bytes::{Bytes, BytesMut};

use super::StorageError;
use super::batch::{BatchHeader, HEADER_SIZE, LOG_OVERHEAD, peek_offset_and_length};
use super::offset_index::OffsetIndex;
use super::scan::{ScanEnd, read_at_most, scan_batches};
use super::time_index::TimeIndex;

/// Smallest read a fetch issues, so that scanning from an index entry rarely needs a second read.
const MIN_READ: usize = 64 * 1024;

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
struct SegmentState {
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
    deleted: bool,
}

impl SegmentState {
    fn new(base_offset: i64) -> Self {
        Self {
            index: OffsetIndex::new(base_offset),
            time_index: TimeIndex::new(base_offset),
            bytes_since_index: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            rolling_timestamp: None,
            next_offset: base_offset,
            deleted: false,
        }
    }

    /// Accounts for one batch written at `position`, adding index entries every `interval` bytes.
    fn track(&mut self, meta: &BatchMeta, position: u64, interval: u64) {
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

/// What opening an existing segment found.
pub(crate) struct Opened {
    pub(crate) segment: Segment,
    /// Bytes cut off the end because they did not hold valid batches.
    pub(crate) truncated_bytes: u64,
    /// Batches scanned (all of them when the segment was recovered, the tail otherwise).
    pub(crate) scanned: Vec<BatchMeta>,
}

impl Segment {
    fn paths(dir: &Path, base_offset: i64) -> (PathBuf, PathBuf, PathBuf) {
        let stem = file_stem(base_offset);
        (
            dir.join(format!("{stem}.log")),
            dir.join(format!("{stem}.index")),
            dir.join(format!("{stem}.timeindex")),
        )
    }

    fn with_file(dir: &Path, base_offset: i64, file: File, size: u64) -> Self {
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

    /// Opens an existing segment. When `trusted` (a closed segment, or the active one after a
    /// clean shutdown) and its indexes are consistent, only the bytes after the last index entry
    /// are scanned; otherwise the whole file is scanned and its indexes rebuilt. Invalid bytes at
    /// the end are cut off.
    pub(crate) fn open(
        dir: &Path,
        base_offset: i64,
        trusted: bool,
        index_interval: u64,
    ) -> Result<Opened, StorageError> {
        let (log_path, index_path, time_index_path) = Self::paths(dir, base_offset);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log_path)
            .map_err(|e| StorageError::io(&log_path, e))?;
        let len = file
            .metadata()
            .map_err(|e| StorageError::io(&log_path, e))?
            .len();
        let segment = Self::with_file(dir, base_offset, file, len);
        if trusted {
            let index = OffsetIndex::load(&index_path, base_offset)?;
            let time_index = TimeIndex::load(&time_index_path, base_offset)?;
            if let (Some(index), Some(time_index)) = (index, time_index)
                && let Some(tail) = segment.try_tail_check(index, time_index, len)?
            {
                return Ok(Opened {
                    segment,
                    truncated_bytes: 0,
                    scanned: tail,
                });
            }
            tracing::info!(segment = %log_path.display(), "rebuilding indexes of segment");
        }
        segment.recover(len, index_interval)
    }

    /// Accepts the loaded indexes if the batch at the last index entry has the indexed offset and
    /// the batches from there end exactly at the end of the file.
    fn try_tail_check(
        &self,
        index: OffsetIndex,
        time_index: TimeIndex,
        len: u64,
    ) -> Result<Option<Vec<BatchMeta>>, StorageError> {
        let (from, expect_offset) = match index.last_entry() {
            Some((offset, pos)) => (pos, Some(offset)),
            None => (0, None),
        };
        if from > len {
            return Ok(None);
        }
        let mut tail = Vec::new();
        let mut first_ok = true;
        let end = scan_batches(&self.file, &self.log_path, from, len, true, |h, pos| {
            if tail.is_empty() && expect_offset.is_some_and(|o| o != h.base_offset()) {
                first_ok = false;
                return ControlFlow::Break(());
            }
            tail.push(BatchMeta::of(h, pos));
            ControlFlow::Continue(())
        })?;
        if !first_ok || end.error.is_some() || end.valid_end != len {
            return Ok(None);
        }
        {
            let mut st = self.state_mut();
            st.index = index;
            st.time_index = time_index;
            if let Some((ts, offset)) = st.time_index.last_entry() {
                st.max_timestamp = ts;
                st.offset_of_max_timestamp = offset;
            }
            st.next_offset = expect_offset.unwrap_or(self.base_offset);
            st.bytes_since_index = 0;
            for meta in &tail {
                // Index entries already cover the first tail batch; replay the rest.
                st.bytes_since_index += meta.size;
                if meta.max_timestamp > st.max_timestamp {
                    st.max_timestamp = meta.max_timestamp;
                    st.offset_of_max_timestamp = meta.base_offset;
                }
                st.next_offset = meta.last_offset + 1;
            }
            st.rolling_timestamp = self.first_batch_timestamp()?;
        }
        Ok(Some(tail))
    }

    /// The max timestamp of the first batch, `None` for an empty segment.
    fn first_batch_timestamp(&self) -> Result<Option<i64>, StorageError> {
        let head = read_at_most(&self.file, &self.log_path, 0, HEADER_SIZE)?;
        Ok(header_max_timestamp(&head))
    }

    /// Scans the whole file, rebuilding the indexes and cutting off invalid bytes at the end.
    fn recover(self, len: u64, index_interval: u64) -> Result<Opened, StorageError> {
        let mut scanned = Vec::new();
        let mut last_offset = self.base_offset - 1;
        let base = self.base_offset;
        let mut monotonic_error = None;
        let ScanEnd { valid_end, error } =
            scan_batches(&self.file, &self.log_path, 0, len, true, |h, pos| {
                let meta = BatchMeta::of(h, pos);
                if meta.base_offset <= last_offset || meta.last_offset - base > i64::from(i32::MAX)
                {
                    monotonic_error = Some(pos);
                    return ControlFlow::Break(());
                }
                last_offset = meta.last_offset;
                scanned.push(meta);
                ControlFlow::Continue(())
            })?;
        let valid_end = match monotonic_error {
            Some(pos) => {
                scanned.pop_if(|m| m.position == pos);
                pos
            }
            None => valid_end,
        };
        {
            let mut st = self.state_mut();
            *st = SegmentState::new(self.base_offset);
            for meta in &scanned {
                st.track(meta, meta.position, index_interval);
            }
        }
        let truncated_bytes = len - valid_end;
        if truncated_bytes > 0 {
            tracing::warn!(
                segment = %self.log_path.display(),
                truncated_bytes,
                valid_bytes = valid_end,
                reason = %error.map_or_else(|| "offsets out of order".to_owned(), |e| e.to_string()),
                "cutting off invalid bytes at the end of segment"
            );
            self.file
                .set_len(valid_end)
                .map_err(|e| StorageError::io(&self.log_path, e))?;
            self.size.store(valid_end, Ordering::Release);
        }
        Ok(Opened {
            segment: self,
            truncated_bytes,
            scanned,
        })
    }

    fn state(&self) -> RwLockReadGuard<'_, SegmentState> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn state_mut(&self) -> RwLockWriteGuard<'_, SegmentState> {
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
        let pos = self.size();
        self.file
            .write_all_at(data, pos)
            .map_err(|e| StorageError::io(&self.log_path, e))?;
        {
            let mut st = self.state_mut();
            for meta in metas {
                st.track(meta, pos + meta.position, index_interval);
            }
        }
        self.size.store(pos + data.len() as u64, Ordering::Release);
        Ok(())
    }

    /// Whole batches from the one holding `offset`, at most `max_bytes` of them (but at least
    /// one), none reaching `max_offset`. `Ok(None)` when no batch of this segment reaches
    /// `offset` (the caller continues with the next segment).
    pub(crate) fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<Option<Bytes>, StorageError> {
        let size = self.size();
        let mut start = self.state().index.lookup(offset, size);
        if start >= size {
            return Ok(None);
        }
        let mut window = Window::new(self, start, size, max_bytes)?;
        if start > 0
            && window
                .header_at(0)?
                .is_none_or(|(base, _, _)| base > offset)
        {
            // The index entry points past the wanted batch (a damaged index): scan from the start.
            start = 0;
            window = Window::new(self, start, size, max_bytes)?;
        }
        let mut cur = 0usize;
        loop {
            let Some((_, total, last)) = window.header_at(cur)? else {
                return Ok(None);
            };
            if last >= offset {
                break;
            }
            cur += total;
        }
        let first = cur;
        let mut end = cur;
        while let Some((_, total, last)) = window.header_at(end)? {
            if last >= max_offset || (end > first && end - first + total > max_bytes) {
                break;
            }
            if !window.ensure(end + total)? {
                break;
            }
            end += total;
        }
        Ok(Some(window.buf.freeze().slice(first..end)))
    }

    /// A file position at or before the batch holding `offset`: the index lookup, checked against
    /// the batch header there so that a damaged index entry costs a longer scan, never a wrong
    /// answer.
    fn position_at_or_before(&self, offset: i64, size: u64) -> Result<u64, StorageError> {
        let pos = self.state().index.lookup(offset, size);
        if pos == 0 {
            return Ok(0);
        }
        let head = read_at_most(&self.file, &self.log_path, pos, LOG_OVERHEAD)?;
        Ok(match peek_offset_and_length(&head) {
            Some((base, _)) if base <= offset => pos,
            _ => 0,
        })
    }

    /// The first batch whose max timestamp is at least `timestamp` and whose last offset is at
    /// least `min_offset`; `None` when no batch here qualifies.
    pub(crate) fn find_batch_by_timestamp(
        &self,
        timestamp: i64,
        min_offset: i64,
    ) -> Result<Option<Bytes>, StorageError> {
        let size = self.size();
        let from = {
            let st = self.state();
            if st.max_timestamp < timestamp {
                return Ok(None);
            }
            st.time_index.lookup(timestamp).max(min_offset)
        };
        let from = self.position_at_or_before(from, size)?;
        let mut found = None;
        scan_batches(&self.file, &self.log_path, from, size, false, |h, _| {
            if h.max_timestamp() >= timestamp && h.last_offset() >= min_offset {
                found = Some(Bytes::copy_from_slice(h.bytes()));
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        Ok(found)
    }

    /// The batch whose base offset is `base_offset`, if any.
    pub(crate) fn batch_at(&self, base_offset: i64) -> Result<Option<Bytes>, StorageError> {
        let size = self.size();
        let from = self.position_at_or_before(base_offset, size)?;
        let mut found = None;
        scan_batches(&self.file, &self.log_path, from, size, false, |h, _| {
            if h.base_offset() == base_offset {
                found = Some(Bytes::copy_from_slice(h.bytes()));
            }
            if h.base_offset() >= base_offset {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        Ok(found)
    }

    /// Calls `f` with every batch of the segment in order (compaction).
    pub(crate) fn for_each_batch(
        &self,
        f: impl FnMut(&BatchHeader<'_>, u64) -> ControlFlow<()>,
    ) -> Result<(), StorageError> {
        scan_batches(&self.file, &self.log_path, 0, self.size(), false, f)?;
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
        self.size.store(cut, Ordering::Release);
        self.file
            .set_len(cut)
            .map_err(|e| StorageError::io(&self.log_path, e))?;
        // Rebuild the in-memory state from the remaining bytes after the last kept index entry.
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
        if st.deleted {
            return Ok(());
        }
        let (ts, off) = (st.max_timestamp, st.offset_of_max_timestamp);
        if ts >= 0 {
            st.time_index.maybe_append(ts, off);
        }
        write_file(&self.index_path, &st.index.to_bytes(), sync)?;
        write_file(&self.time_index_path, &st.time_index.to_bytes(), sync)
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

/// The max timestamp field of a batch header, if `head` holds a whole header.
fn header_max_timestamp(head: &[u8]) -> Option<i64> {
    let bytes: [u8; 8] = head.get(35..43)?.try_into().ok()?;
    Some(i64::from_be_bytes(bytes))
}

/// A growing buffer of file bytes from `start`, for zero-copy slicing of whole batches.
struct Window<'a> {
    segment: &'a Segment,
    start: u64,
    end: u64,
    buf: BytesMut,
}

impl<'a> Window<'a> {
    /// A window from `start` with an initial read sized for a fetch of `max_bytes`.
    fn new(
        segment: &'a Segment,
        start: u64,
        end: u64,
        max_bytes: usize,
    ) -> Result<Self, StorageError> {
        let mut window = Window {
            segment,
            start,
            end,
            buf: BytesMut::new(),
        };
        let avail = usize::try_from(end.saturating_sub(start)).unwrap_or(usize::MAX);
        window.fill(avail.min(max_bytes.saturating_add(MIN_READ / 4).max(MIN_READ)))?;
        Ok(window)
    }

    /// Reads `len` more bytes (bounded by the visible size).
    fn fill(&mut self, len: usize) -> Result<(), StorageError> {
        let pos = self.start + self.buf.len() as u64;
        let avail = usize::try_from(self.end.saturating_sub(pos)).unwrap_or(usize::MAX);
        let len = len.min(avail);
        if len == 0 {
            return Ok(());
        }
        let more = read_at_most(&self.segment.file, &self.segment.log_path, pos, len)?;
        self.buf.extend_from_slice(&more);
        Ok(())
    }

    /// Makes sure the buffer holds `n` bytes; false when the file does not have them.
    fn ensure(&mut self, n: usize) -> Result<bool, StorageError> {
        if self.buf.len() < n {
            let want = (n - self.buf.len()).max(MIN_READ);
            self.fill(want)?;
        }
        Ok(self.buf.len() >= n)
    }

    /// `(base offset, total size, last offset)` of the batch at `at`, if its header is present.
    fn header_at(&mut self, at: usize) -> Result<Option<(i64, usize, i64)>, StorageError> {
        if !self.ensure(at + HEADER_SIZE)? {
            return Ok(None);
        }
        let head = &self.buf[at..at + HEADER_SIZE];
        let Some((base, length)) = peek_offset_and_length(head) else {
            return Ok(None);
        };
        let Ok(length) = usize::try_from(length) else {
            return Ok(None);
        };
        let delta = i32::from_be_bytes([head[23], head[24], head[25], head[26]]);
        Ok(Some((base, length + 12, base + i64::from(delta))))
    }
}

fn remove_if_exists(path: &Path) -> Result<(), StorageError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io(path, e)),
    }
}

fn write_file(path: &Path, data: &[u8], sync: bool) -> Result<(), StorageError> {
    let mut file = File::create(path).map_err(|e| StorageError::io(path, e))?;
    file.write_all(data)
        .map_err(|e| StorageError::io(path, e))?;
    if sync {
        file.sync_all().map_err(|e| StorageError::io(path, e))?;
    }
    Ok(())
}
