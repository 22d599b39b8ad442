//! The read side of [`Log`]: fetches and timestamp lookups. None of it takes the append lock;
//! segments are found under the segment map's read lock and read with `pread`.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::records::{RecordBatchDecoder, TimestampType};

use super::Log;
use crate::storage::StorageError;
use crate::storage::batch::BatchHeader;
use crate::storage::segment::Segment;

/// Bytes read from the log, whole batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// Concatenated whole batches, exactly as stored; empty when nothing is available.
    pub records: Bytes,
    /// The log start offset at the time of the read.
    pub log_start_offset: i64,
    /// The log end offset at the time of the read.
    pub log_end_offset: i64,
}

impl Log {
    /// Up to `max_bytes` of whole batches from the batch containing `offset`, read from the files
    /// without holding the append lock. The first batch is returned whole even when larger than
    /// `max_bytes` (Kafka's rule, so consumers always progress). Only batches entirely below
    /// `max_offset` (exclusive, e.g. the high watermark) are returned.
    ///
    /// # Errors
    /// [`StorageError::OffsetOutOfRange`] when `offset` is below the log start or above the log
    /// end offset; I/O errors.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<ReadResult, StorageError> {
        self.read_bounded(offset, max_bytes, max_offset, true)
    }

    /// As [`Log::read`], but with `min_one_batch = false` a first batch larger than `max_bytes`
    /// is not returned (empty records instead): Kafka's rule for the partitions of a fetch after
    /// the first one that returned data, so that the response stays within `fetch.max.bytes`.
    ///
    /// # Errors
    /// As [`Log::read`].
    pub fn read_bounded(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Result<ReadResult, StorageError> {
        let log_end_offset = self.log_end_offset();
        let log_start_offset = self.log_start_offset();
        let mut result = ReadResult {
            records: Bytes::new(),
            log_start_offset,
            log_end_offset,
        };
        if offset < log_start_offset || offset > log_end_offset {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset,
                log_end_offset,
            });
        }
        let max_offset = max_offset.min(log_end_offset);
        if offset >= max_offset {
            return Ok(result);
        }
        let mut segment = self.floor_segment(offset);
        while let Some(s) = segment {
            if let Some(bytes) = s.read(offset, max_bytes, max_offset, min_one_batch)? {
                result.records = bytes;
                return Ok(result);
            }
            segment = self.next_segment(s.base_offset());
        }
        Ok(result)
    }

    /// ListOffsets by timestamp: the first offset at or after the log start whose record
    /// timestamp is at least `timestamp`, with that record's timestamp; `None` when there is none.
    ///
    /// # Errors
    /// I/O errors, or [`StorageError::RecordDecode`] if the batch found cannot be decoded.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, StorageError> {
        let mut min_offset = self.log_start_offset();
        let mut segment = self.floor_segment(min_offset);
        while let Some(s) = segment {
            while let Some(batch) = s.find_batch_by_timestamp(timestamp, min_offset)? {
                let last = BatchHeader::parse(&batch)?.last_offset();
                if let Some(found) = first_record_at_or_after(&batch, timestamp, min_offset)? {
                    return Ok(Some(found));
                }
                min_offset = last + 1;
            }
            segment = self.next_segment(s.base_offset());
        }
        Ok(None)
    }

    /// ListOffsets `MAX_TIMESTAMP` (-3): the largest timestamp in the log and the offset of the
    /// first record carrying it; `None` for an empty log or one without timestamps. If the batch
    /// cannot be read back, the offset of its first record is given.
    #[must_use]
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        let (segment, (ts, batch_offset)) = self
            .segments_snapshot()
            .into_iter()
            .filter_map(|s| s.max_timestamp().map(|m| (s, m)))
            .fold(
                None,
                |best: Option<(Arc<Segment>, (i64, i64))>, (s, m)| match &best {
                    Some((_, (bt, _))) if *bt >= m.0 => best,
                    _ => Some((s, m)),
                },
            )?;
        let exact = segment.batch_at(batch_offset).and_then(|b| match b {
            Some(b) => first_record_at_or_after(&b, ts, batch_offset),
            None => Ok(None),
        });
        match exact {
            Ok(Some((offset, _))) => Some((ts, offset.max(self.log_start_offset()))),
            Ok(None) => Some((ts, batch_offset.max(self.log_start_offset()))),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the batch holding the max timestamp");
                Some((ts, batch_offset.max(self.log_start_offset())))
            }
        }
    }
}

/// The first record of `batch` with offset at least `min_offset` and timestamp at least
/// `timestamp`, as `(offset, timestamp)`. Log-append-time batches carry one timestamp for all.
pub(crate) fn first_record_at_or_after(
    batch: &Bytes,
    timestamp: i64,
    min_offset: i64,
) -> Result<Option<(i64, i64)>, StorageError> {
    let header = BatchHeader::parse(batch)?;
    if header.timestamp_type() == TimestampType::LogAppend {
        let ts = header.max_timestamp();
        return Ok((ts >= timestamp && header.last_offset() >= min_offset)
            .then(|| (header.base_offset().max(min_offset), ts)));
    }
    let base_offset = header.base_offset();
    let mut buf = batch.clone();
    let set = RecordBatchDecoder::decode(&mut buf).map_err(|e| StorageError::RecordDecode {
        base_offset,
        reason: e.to_string(),
    })?;
    Ok(set
        .records
        .iter()
        .find(|r| r.offset >= min_offset && r.timestamp >= timestamp)
        .map(|r| (r.offset, r.timestamp)))
}
