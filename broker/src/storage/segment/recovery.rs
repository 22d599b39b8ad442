//! Opening an existing segment: trusting its indexes after a cheap tail check, or scanning it
//! batch by batch, rebuilding the indexes and cutting off a torn or corrupt tail.

use std::fs::OpenOptions;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::Ordering;

use super::{BatchMeta, Segment, SegmentState};
use crate::storage::StorageError;
use crate::storage::batch::HEADER_SIZE;
use crate::storage::offset_index::OffsetIndex;
use crate::storage::scan::{ScanEnd, read_at_most, scan_batches};
use crate::storage::time_index::TimeIndex;

/// What opening an existing segment found.
pub(crate) struct Opened {
    pub(crate) segment: Segment,
    /// Bytes cut off the end because they did not hold valid batches.
    pub(crate) truncated_bytes: u64,
    /// Batches scanned (all of them when the segment was recovered, the tail otherwise).
    pub(crate) scanned: Vec<BatchMeta>,
    /// True when the indexes were rebuilt by a full scan rather than loaded.
    pub(crate) rebuilt: bool,
}

impl Segment {
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
                    rebuilt: false,
                });
            }
            tracing::info!(segment = %log_path.display(), "rebuilding indexes of segment");
        }
        segment.recover(len, index_interval)
    }

    /// Opens the output of compaction, `cleaned`, as the segment at `base_offset` it is about to
    /// replace (by a rename, which keeps the open file valid), building its indexes by a scan.
    /// Done before the swap so that the append lock is not held while the segment is read.
    pub(crate) fn open_cleaned(
        dir: &Path,
        base_offset: i64,
        cleaned: &Path,
        index_interval: u64,
    ) -> Result<Segment, StorageError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(cleaned)
            .map_err(|e| StorageError::io(cleaned, e))?;
        let len = file
            .metadata()
            .map_err(|e| StorageError::io(cleaned, e))?
            .len();
        Ok(Self::with_file(dir, base_offset, file, len)
            .recover(len, index_interval)?
            .segment)
    }

    /// Accepts the loaded indexes if the batch at the last index entry has the indexed offset and
    /// the batches from there end exactly at the end of the file.
    fn try_tail_check(
        &self,
        index: OffsetIndex,
        time_index: TimeIndex,
        len: u64,
    ) -> Result<Option<Vec<BatchMeta>>, StorageError> {
        // The last entry is the one most likely to be wrong after a crash (written last), and
        // the bytes after it are the ones the indexes say nothing about: check exactly those.
        // Earlier entries are trusted; a wrong one costs readers a longer scan, never a wrong
        // answer (see `position_at_or_before`).
        let (from, expect_offset) = match index.last_entry() {
            Some((offset, pos)) => (pos, Some(offset)),
            None => (0, None),
        };
        if from > len {
            return Ok(None);
        }
        // Every offset index entry is written together with a time index entry carrying the
        // segment's largest timestamp so far (when it has one). An empty time index beside a
        // non-empty offset index therefore lost its entries, and retention and ListOffsets would
        // trust a stale largest timestamp: rebuild both from the log instead.
        if expect_offset.is_some() && time_index.last_entry().is_none() {
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
            // Replay the batches from the last index entry on, as the appender saw them.
            for meta in &tail {
                st.bytes_since_index += meta.size;
                if meta.max_timestamp > st.max_timestamp {
                    st.max_timestamp = meta.max_timestamp;
                    st.offset_of_max_timestamp = meta.base_offset;
                }
                st.next_offset = meta.last_offset + 1;
            }
            st.rolling_timestamp = self.first_batch_timestamp()?;
        }
        // Retention trusts the last time index entry as the segment's largest timestamp, so check
        // it: it must name a batch of this segment whose max timestamp it is.
        let last_time_entry = self.state().time_index.last_entry();
        if let Some((ts, offset)) = last_time_entry
            && !self.time_entry_is_sound(ts, offset)?
        {
            *self.state_mut() = SegmentState::new(self.base_offset);
            return Ok(None);
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
                // baseOffset is outside the CRC, so damage to it is caught only by order: offsets
                // must increase and stay within the 32-bit relative range of the indexes.
                if meta.base_offset <= last_offset || meta.last_offset - base > i64::from(i32::MAX)
                {
                    monotonic_error = Some(pos);
                    return ControlFlow::Break(());
                }
                last_offset = meta.last_offset;
                scanned.push(meta);
                ControlFlow::Continue(())
            })?;
        let valid_end = monotonic_error.unwrap_or(valid_end);
        {
            let mut st = self.state_mut();
            *st = SegmentState::new(self.base_offset);
            for meta in &scanned {
                st.track(meta, meta.position, index_interval);
            }
        }
        // Everything from the first invalid byte on is cut: a torn write at the end after a crash,
        // or damage, after which no later batch can be trusted to be the one that was appended.
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
            rebuilt: true,
        })
    }
}

/// The max timestamp field of a batch header, if `head` holds a whole header.
fn header_max_timestamp(head: &[u8]) -> Option<i64> {
    let bytes: [u8; 8] = head.get(35..43)?.try_into().ok()?;
    Some(i64::from_be_bytes(bytes))
}
