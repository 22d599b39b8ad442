//! Reading a segment: whole batches for fetches, single batches for timestamp lookups and
//! compaction. Reads use `pread` on the shared file and never take the append lock.

use std::ops::ControlFlow;

use bytes::{Bytes, BytesMut};

use super::Segment;
use crate::storage::StorageError;
use crate::storage::batch::{BatchHeader, HEADER_SIZE, LOG_OVERHEAD, peek_offset_and_length};
use crate::storage::scan::{read_at_most, read_into, scan_batches};

/// Smallest read a fetch issues, so that scanning from an index entry rarely needs a second read.
const MIN_READ: usize = 64 * 1024;
/// Largest first read of a fetch; a larger `max_bytes` grows the buffer as batches are taken.
const MAX_FIRST_READ: usize = 8 << 20;

impl Segment {
    /// Whole batches from the one holding `offset`, at most `max_bytes` of them (but at least
    /// one when `min_one`), none reaching `max_offset`. `Ok(None)` when no batch of this segment
    /// reaches `offset` (the caller continues with the next segment).
    pub(crate) fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one: bool,
    ) -> Result<Option<Bytes>, StorageError> {
        let size = self.size();
        // The index entry is checked against the batch it points at (which the window holds
        // anyway): a damaged entry is forgotten and the lookup retried, so it costs a longer
        // scan, never a wrong answer.
        let mut window = loop {
            let start = self.state().index.lookup(offset, size);
            if start >= size {
                return Ok(None);
            }
            let mut window = Window::new(self, start, size, max_bytes)?;
            if start == 0 || window.starts_with_sound_batch(offset)? {
                break window;
            }
            self.forget_index_entry(start);
        };
        // Skip the batches before the one holding `offset`: at most an index interval of them.
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
        // Take whole batches from there. The first is taken even when larger than `max_bytes`
        // if `min_one`, so that a consumer can always make progress (Kafka's rule); batches that
        // reach `max_offset` (the high watermark) are never taken, not even the first.
        let first = cur;
        let mut end = cur;
        while let Some((_, total, last)) = window.header_at(end)? {
            if last >= max_offset || ((end > first || !min_one) && end - first + total > max_bytes)
            {
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
    /// the batch there (framing, CRC, offset) so that a damaged index entry costs a longer scan,
    /// never a wrong answer.
    pub(super) fn position_at_or_before(
        &self,
        offset: i64,
        size: u64,
    ) -> Result<u64, StorageError> {
        loop {
            let pos = self.state().index.lookup(offset, size);
            if pos == 0 {
                return Ok(0);
            }
            let head = read_at_most(&self.file, &self.log_path, pos, LOG_OVERHEAD)?;
            if let Some((base, length)) = peek_offset_and_length(&head)
                && base <= offset
                && let Ok(length) = usize::try_from(length)
            {
                let total = (LOG_OVERHEAD + length).min(usize::try_from(size - pos).unwrap_or(0));
                let batch = read_at_most(&self.file, &self.log_path, pos, total)?;
                if BatchHeader::parse(&batch)
                    .and_then(|h| h.verify_crc())
                    .is_ok()
                {
                    return Ok(pos);
                }
            }
            self.forget_index_entry(pos);
        }
    }

    /// Drops an index entry that does not point at a sound batch holding at most the offset it
    /// claims. The corrected index is what the next index write persists.
    fn forget_index_entry(&self, position: u64) {
        tracing::warn!(
            segment = %self.log_path.display(),
            position,
            "offset index entry does not point at a valid batch; dropping it"
        );
        let mut st = self.state_mut();
        st.index.remove_position(position);
        st.index_dirty = true;
    }

    /// The first batch whose max timestamp is at least `timestamp` and whose last offset is at
    /// least `min_offset`; `None` when no batch here qualifies.
    pub(crate) fn find_batch_by_timestamp(
        &self,
        timestamp: i64,
        min_offset: i64,
    ) -> Result<Option<Bytes>, StorageError> {
        let size = self.size();
        // The time index gives an offset before which every batch is too old; the offset index
        // turns it into a file position. Batch max timestamps need not increase (producers set
        // them), so the scan goes on from there until the first batch that qualifies.
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
        let first = max_bytes
            .saturating_add(MIN_READ / 4)
            .clamp(MIN_READ, MAX_FIRST_READ);
        window.fill(avail.min(first))?;
        Ok(window)
    }

    /// True when the window starts with a whole, CRC-valid batch whose base offset is at most
    /// `offset`.
    fn starts_with_sound_batch(&mut self, offset: i64) -> Result<bool, StorageError> {
        let Some((base, total, _)) = self.header_at(0)? else {
            return Ok(false);
        };
        if base > offset || !self.ensure(total)? {
            return Ok(false);
        }
        Ok(BatchHeader::parse(&self.buf[..total])
            .and_then(|h| h.verify_crc())
            .is_ok())
    }

    /// Reads `len` more bytes (bounded by the visible size) straight into the buffer.
    fn fill(&mut self, len: usize) -> Result<(), StorageError> {
        let pos = self.start + self.buf.len() as u64;
        let avail = usize::try_from(self.end.saturating_sub(pos)).unwrap_or(usize::MAX);
        let len = len.min(avail);
        if len == 0 {
            return Ok(());
        }
        let old = self.buf.len();
        self.buf.resize(old + len, 0);
        let n = read_into(
            &self.segment.file,
            &self.segment.log_path,
            pos,
            &mut self.buf[old..],
        )?;
        self.buf.truncate(old + n);
        Ok(())
    }

    /// Makes sure the buffer holds `n` bytes; false when the file does not have them.
    fn ensure(&mut self, n: usize) -> Result<bool, StorageError> {
        if self.buf.len() < n {
            // Grow geometrically so that large fetches take few reads.
            let want = (n - self.buf.len()).max(self.buf.len()).max(MIN_READ);
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
