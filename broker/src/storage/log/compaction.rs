//! Key compaction for `cleanup.policy=compact`: keep the latest record per key.
//!
//! Only closed segments whose records are all older than `min.compaction.lag.ms` are cleaned; the
//! active segment is never touched. A first pass maps every key in those segments to the offset of
//! its latest record; a second pass rewrites each segment keeping, per batch, the records that are
//! the latest for their key, and dropping tombstones (null values) whose timestamp is older than
//! `delete.retention.ms`. Offsets are preserved: a rewritten batch keeps its records' offsets and
//! its last offset, so gaps appear but nothing moves. Batches that lose nothing are copied byte
//! for byte (compressed batches stay as they were); changed batches are re-encoded with the same
//! codec, producer fields and timestamp type. Control batches (transaction markers) are kept.
//!
//! Each cleaned segment is written to `<base>.log.cleaned`, fsynced, and swapped in under the
//! append lock by renaming it over the old file; the indexes are removed before the rename and
//! rewritten after, so a crash in between only costs an index rebuild at the next open.
//!
//! Differences from Kafka's cleaner, on purpose for now: the key map covers all cleanable segments
//! on every run (no dirty-ratio bookkeeping), empty batches are not retained for producer state,
//! small cleaned segments are not merged, and re-encoded records cannot hold two headers with the
//! same key (the record codec keeps headers in a map).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::{Log, lock};
use crate::storage::batch::{self, BatchHeader, BatchIter};
use crate::storage::segment::{Segment, file_stem};
use crate::storage::{StorageError, checkpoint};

/// What compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CompactionOutcome {
    /// Segments rewritten.
    pub segments_cleaned: usize,
    /// Records dropped (superseded values and expired tombstones).
    pub records_removed: u64,
    /// Size of the cleaned segments before.
    pub bytes_before: u64,
    /// Size of the cleaned segments after.
    pub bytes_after: u64,
}

/// The decoded records of one batch.
fn decode(header: &BatchHeader<'_>) -> Result<Vec<Record>, StorageError> {
    let mut buf = Bytes::copy_from_slice(header.bytes());
    RecordBatchDecoder::decode(&mut buf)
        .map(|set| set.records)
        .map_err(|e| StorageError::RecordDecode {
            base_offset: header.base_offset(),
            reason: e.to_string(),
        })
}

/// Re-encodes `keep` (a non-empty subset of the batch's records) as the batch's replacement.
fn reencode(header: &BatchHeader<'_>, keep: &[&Record]) -> Result<BytesMut, StorageError> {
    let base_offset = header.base_offset();
    let err = |reason: String| StorageError::RecordEncode {
        base_offset,
        reason,
    };
    let compression = header
        .compression()
        .ok_or_else(|| err(format!("unknown codec {}", header.compression_id())))?;
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions {
        version: batch::MAGIC_V2,
        compression,
    };
    RecordBatchEncoder::encode(&mut out, keep.iter().copied(), &options)
        .map_err(|e| err(e.to_string()))?;
    // Keep the original last offset (and append time), so the batch still ends where it did.
    let last_pos = BatchIter::without_crc(&out)
        .map(|h| h.map(|h| (h.base_offset(), h.size())))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .fold((0usize, None), |(pos, _), (base, size)| {
            (pos + size, Some((pos, base)))
        })
        .1;
    if let Some((pos, new_base)) = last_pos {
        let delta = i32::try_from(header.last_offset() - new_base)
            .map_err(|_| err("last offset delta overflows".to_owned()))?;
        let append_time =
            (header.timestamp_type() == TimestampType::LogAppend).then(|| header.max_timestamp());
        batch::patch_compacted(&mut out[pos..], delta, append_time)?;
    }
    Ok(out)
}

impl Log {
    /// Compacts the closed segments (see the module docs). A no-op unless `cleanup.policy`
    /// includes `compact`.
    ///
    /// # Errors
    /// I/O errors, or records that cannot be decoded or re-encoded; the log is unchanged for
    /// segments not yet swapped.
    pub fn compact(&self, now_ms: i64) -> Result<CompactionOutcome, StorageError> {
        let config = self.config();
        let mut outcome = CompactionOutcome::default();
        if !config.cleanup_policy.compacts() {
            return Ok(outcome);
        }
        let _cleaner = lock(&self.cleaner);
        let truncations = self.truncations.load(Ordering::Acquire);
        let segments = self.segments_snapshot();
        let lag = i64::try_from(config.min_compaction_lag_ms).unwrap_or(i64::MAX);
        let closed = &segments[..segments.len().saturating_sub(1)];
        let cleanable: Vec<Arc<Segment>> = closed
            .iter()
            .take_while(|s| lag == 0 || now_ms.saturating_sub(s.largest_timestamp()) >= lag)
            .cloned()
            .collect();
        if cleanable.is_empty() {
            return Ok(outcome);
        }

        // Pass 1: the latest offset of every key.
        let mut latest: HashMap<Bytes, i64> = HashMap::new();
        for s in &cleanable {
            let mut failure = None;
            s.for_each_batch(|h, _| {
                if h.is_control() {
                    return ControlFlow::Continue(());
                }
                match decode(h) {
                    Ok(records) => {
                        for r in records {
                            if let Some(k) = r.key {
                                latest.insert(Bytes::copy_from_slice(&k), r.offset);
                            }
                        }
                        ControlFlow::Continue(())
                    }
                    Err(e) => {
                        failure = Some(e);
                        ControlFlow::Break(())
                    }
                }
            })?;
            if let Some(e) = failure {
                return Err(e);
            }
        }

        // Pass 2: rewrite each segment that loses records.
        let horizon =
            now_ms.saturating_sub(i64::try_from(config.delete_retention_ms).unwrap_or(i64::MAX));
        for s in &cleanable {
            let mut out = Vec::with_capacity(usize::try_from(s.size()).unwrap_or(0));
            let mut removed = 0u64;
            let mut failure = None;
            s.for_each_batch(|h, _| {
                if h.is_control() {
                    out.extend_from_slice(h.bytes());
                    return ControlFlow::Continue(());
                }
                let result = decode(h).and_then(|records| {
                    let log_append = h.timestamp_type() == TimestampType::LogAppend;
                    let keep: Vec<&Record> = records
                        .iter()
                        .filter(|r| {
                            let Some(k) = &r.key else { return true };
                            let ts = if log_append {
                                h.max_timestamp()
                            } else {
                                r.timestamp
                            };
                            latest.get(k) == Some(&r.offset) && !(r.value.is_none() && ts < horizon)
                        })
                        .collect();
                    removed += (records.len() - keep.len()) as u64;
                    if keep.len() == records.len() {
                        out.extend_from_slice(h.bytes());
                    } else if !keep.is_empty() {
                        out.extend_from_slice(&reencode(h, &keep)?);
                    }
                    Ok(())
                });
                match result {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(e) => {
                        failure = Some(e);
                        ControlFlow::Break(())
                    }
                }
            })?;
            if let Some(e) = failure {
                return Err(e);
            }
            if removed == 0 {
                continue;
            }
            if self.swap_cleaned(s, &out, truncations)? {
                outcome.segments_cleaned += 1;
                outcome.records_removed += removed;
                outcome.bytes_before += s.size();
                outcome.bytes_after += out.len() as u64;
            }
        }
        if outcome.segments_cleaned > 0 {
            tracing::info!(
                dir = %self.dir().display(),
                segments = outcome.segments_cleaned,
                records_removed = outcome.records_removed,
                bytes_before = outcome.bytes_before,
                bytes_after = outcome.bytes_after,
                "compacted log"
            );
        }
        Ok(outcome)
    }

    /// Replaces `old`'s file with `data`, unless `old` was removed, replaced or truncated since
    /// compaction read it (retention, truncation) or became the active segment. Returns whether
    /// it swapped.
    fn swap_cleaned(
        &self,
        old: &Arc<Segment>,
        data: &[u8],
        truncations: u64,
    ) -> Result<bool, StorageError> {
        let dir = self.dir();
        let base = old.base_offset();
        let cleaned = dir.join(format!("{}.log.cleaned", file_stem(base)));
        {
            let mut file = File::create(&cleaned).map_err(|e| StorageError::io(&cleaned, e))?;
            file.write_all(data)
                .map_err(|e| StorageError::io(&cleaned, e))?;
            file.sync_all().map_err(|e| StorageError::io(&cleaned, e))?;
        }
        let interval = u64::from(self.config().index_interval_bytes);
        let w = lock(&self.writer);
        let (current, is_first) = {
            let map = self
                .segments
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            (map.get(&base).cloned(), map.keys().next() == Some(&base))
        };
        let unchanged = current.is_some_and(|c| Arc::ptr_eq(&c, old))
            && !Arc::ptr_eq(&w.active, old)
            && self.truncations.load(Ordering::Acquire) == truncations;
        if !unchanged {
            fs::remove_file(&cleaned).map_err(|e| StorageError::io(&cleaned, e))?;
            return Ok(false);
        }
        if data.is_empty() && !is_first {
            // Nothing left: drop the segment rather than keep an empty file. The first segment
            // stays, even empty, so that its base offset keeps bounding the log start.
            fs::remove_file(&cleaned).map_err(|e| StorageError::io(&cleaned, e))?;
            self.segments
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&base);
            old.delete_files()?;
            return Ok(true);
        }
        old.remove_indexes()?;
        fs::rename(&cleaned, old.log_path()).map_err(|e| StorageError::io(old.log_path(), e))?;
        checkpoint::sync_dir(dir)?;
        let opened = Segment::open(dir, base, false, interval)?;
        opened.segment.write_indexes(true)?;
        self.segments
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(base, Arc::new(opened.segment));
        Ok(true)
    }
}
