//! Zero-copy views of Kafka record batches (magic v2), the unit the log stores.
//!
//! The log never decodes records on its hot paths: appends only read a few header fields and
//! rewrite `baseOffset` and `partitionLeaderEpoch`, which lie outside the CRC, so the producer's
//! bytes go to disk unchanged. The API layer uses [`BatchIter`] to validate Produce payloads
//! (length, magic, CRC) before handing them to [`crate::storage::Log::append`].
//!
//! Layout (big endian): baseOffset i64 @0, batchLength i32 @8 (bytes after this field),
//! partitionLeaderEpoch i32 @12, magic i8 @16, crc u32 @17 (CRC-32C over @21..end),
//! attributes i16 @21, lastOffsetDelta i32 @23, baseTimestamp i64 @27, maxTimestamp i64 @35,
//! producerId i64 @43, producerEpoch i16 @51, baseSequence i32 @53, recordCount i32 @57, records @61.

use kafka_protocol::records::{Compression, TimestampType};

use super::StorageError;

mod produce;

pub use produce::validate_produce;

/// Bytes before `batchLength` counts: baseOffset and batchLength itself.
pub const LOG_OVERHEAD: usize = 12;
/// Size of the fixed v2 batch header, up to the first record.
pub const HEADER_SIZE: usize = 61;
/// The only supported batch format.
pub const MAGIC_V2: i8 = 2;

const BASE_OFFSET: usize = 0;
const BATCH_LENGTH: usize = 8;
const PARTITION_LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORD_COUNT: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 1 << 3;
const TRANSACTIONAL_BIT: i16 = 1 << 4;
const CONTROL_BIT: i16 = 1 << 5;

/// A validated view of one record batch: `bytes()` is exactly the batch, header and records.
///
/// Accessors read fixed positions of a slice whose length [`BatchHeader::parse`] checked, so they
/// cannot panic.
#[derive(Debug, Clone, Copy)]
pub struct BatchHeader<'a> {
    bytes: &'a [u8],
}

fn read_i64(buf: &[u8], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    i64::from_be_bytes(b)
}

fn read_i32(buf: &[u8], at: usize) -> i32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    i32::from_be_bytes(b)
}

fn read_i16(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([buf[at], buf[at + 1]])
}

/// Reads `(baseOffset, batchLength)` from the start of `buf`, if it holds 12 bytes.
#[must_use]
pub fn peek_offset_and_length(buf: &[u8]) -> Option<(i64, i32)> {
    if buf.len() < LOG_OVERHEAD {
        return None;
    }
    Some((read_i64(buf, BASE_OFFSET), read_i32(buf, BATCH_LENGTH)))
}

impl<'a> BatchHeader<'a> {
    /// Parses the batch at the start of `buf`, checking that the whole batch is present, that its
    /// length is plausible, that it is magic v2 and that its counts are not negative. The CRC is
    /// not checked here (see [`BatchHeader::verify_crc`]); trailing bytes after the batch are ignored.
    ///
    /// # Errors
    /// A malformed-batch [`StorageError`] (positions are relative to `buf`, i.e. 0).
    pub fn parse(buf: &'a [u8]) -> Result<Self, StorageError> {
        Self::parse_at(buf, 0)
    }

    /// As [`BatchHeader::parse`], reporting `position` in errors.
    pub(crate) fn parse_at(buf: &'a [u8], position: usize) -> Result<Self, StorageError> {
        if buf.len() < LOG_OVERHEAD {
            return Err(StorageError::BatchTruncated {
                position,
                needed: LOG_OVERHEAD,
                available: buf.len(),
            });
        }
        let length = read_i32(buf, BATCH_LENGTH);
        let min = (HEADER_SIZE - LOG_OVERHEAD) as i32;
        if length < min {
            return Err(StorageError::BatchLengthInvalid { position, length });
        }
        let total = LOG_OVERHEAD + length as usize;
        if buf.len() < total {
            return Err(StorageError::BatchTruncated {
                position,
                needed: total,
                available: buf.len(),
            });
        }
        let bytes = &buf[..total];
        let magic = bytes[MAGIC] as i8;
        if magic != MAGIC_V2 {
            return Err(StorageError::UnsupportedMagic { position, magic });
        }
        let header = Self { bytes };
        if header.last_offset_delta() < 0 {
            return Err(StorageError::InvalidBatchField {
                position,
                field: "lastOffsetDelta",
                value: i64::from(header.last_offset_delta()),
            });
        }
        if header.record_count() < 0 {
            return Err(StorageError::InvalidBatchField {
                position,
                field: "recordCount",
                value: i64::from(header.record_count()),
            });
        }
        Ok(header)
    }

    /// The whole batch, header and records.
    #[must_use]
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Size of the whole batch in bytes (`batchLength` + 12).
    #[must_use]
    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    /// The offset of the first record.
    #[must_use]
    pub fn base_offset(&self) -> i64 {
        read_i64(self.bytes, BASE_OFFSET)
    }

    /// The offset of the last record: `baseOffset + lastOffsetDelta`.
    #[must_use]
    pub fn last_offset(&self) -> i64 {
        self.base_offset()
            .saturating_add(i64::from(self.last_offset_delta()))
    }

    /// The `batchLength` field.
    #[must_use]
    pub fn batch_length(&self) -> i32 {
        read_i32(self.bytes, BATCH_LENGTH)
    }

    /// The epoch of the leader that appended the batch.
    #[must_use]
    pub fn partition_leader_epoch(&self) -> i32 {
        read_i32(self.bytes, PARTITION_LEADER_EPOCH)
    }

    /// The magic byte (always 2 for a parsed batch).
    #[must_use]
    pub fn magic(&self) -> i8 {
        self.bytes[MAGIC] as i8
    }

    /// The stored CRC-32C.
    #[must_use]
    pub fn crc(&self) -> u32 {
        read_i32(self.bytes, CRC) as u32
    }

    /// CRC-32C computed over the bytes the stored CRC covers.
    #[must_use]
    pub fn compute_crc(&self) -> u32 {
        crc32c::crc32c(&self.bytes[ATTRIBUTES..])
    }

    /// Checks the stored CRC against the content.
    ///
    /// # Errors
    /// [`StorageError::CorruptBatch`] when they differ.
    pub fn verify_crc(&self) -> Result<(), StorageError> {
        self.verify_crc_at(0)
    }

    pub(crate) fn verify_crc_at(&self, position: usize) -> Result<(), StorageError> {
        let computed = self.compute_crc();
        if computed == self.crc() {
            Ok(())
        } else {
            Err(StorageError::CorruptBatch {
                position,
                base_offset: self.base_offset(),
                stored: self.crc(),
                computed,
            })
        }
    }

    /// The attributes bit field.
    #[must_use]
    pub fn attributes(&self) -> i16 {
        read_i16(self.bytes, ATTRIBUTES)
    }

    /// The compression codec id (attributes bits 0-2).
    #[must_use]
    pub fn compression_id(&self) -> u8 {
        (self.attributes() & COMPRESSION_MASK) as u8
    }

    /// The compression codec, or `None` for an id Kafka does not define.
    #[must_use]
    pub fn compression(&self) -> Option<Compression> {
        match self.compression_id() {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// Whether timestamps are create time or log append time (attributes bit 3).
    #[must_use]
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes() & TIMESTAMP_TYPE_BIT == 0 {
            TimestampType::Creation
        } else {
            TimestampType::LogAppend
        }
    }

    /// Part of a transaction (attributes bit 4).
    #[must_use]
    pub fn is_transactional(&self) -> bool {
        self.attributes() & TRANSACTIONAL_BIT != 0
    }

    /// Holds control records such as transaction markers (attributes bit 5).
    #[must_use]
    pub fn is_control(&self) -> bool {
        self.attributes() & CONTROL_BIT != 0
    }

    /// `lastOffset - baseOffset`.
    #[must_use]
    pub fn last_offset_delta(&self) -> i32 {
        read_i32(self.bytes, LAST_OFFSET_DELTA)
    }

    /// The timestamp of the first record.
    #[must_use]
    pub fn base_timestamp(&self) -> i64 {
        read_i64(self.bytes, BASE_TIMESTAMP)
    }

    /// The largest timestamp in the batch (the append time for log-append-time batches).
    #[must_use]
    pub fn max_timestamp(&self) -> i64 {
        read_i64(self.bytes, MAX_TIMESTAMP)
    }

    /// The idempotent producer id, -1 when none.
    #[must_use]
    pub fn producer_id(&self) -> i64 {
        read_i64(self.bytes, PRODUCER_ID)
    }

    /// The producer epoch, -1 when none.
    #[must_use]
    pub fn producer_epoch(&self) -> i16 {
        read_i16(self.bytes, PRODUCER_EPOCH)
    }

    /// The sequence number of the first record, -1 when none.
    #[must_use]
    pub fn base_sequence(&self) -> i32 {
        read_i32(self.bytes, BASE_SEQUENCE)
    }

    /// The number of records.
    #[must_use]
    pub fn record_count(&self) -> i32 {
        read_i32(self.bytes, RECORD_COUNT)
    }
}

/// Iterates the batches of a buffer of concatenated batches, validating each one's length, magic
/// and (unless disabled) CRC. It stops after the first error, which it yields.
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    buf: &'a [u8],
    position: usize,
    verify_crc: bool,
    failed: bool,
}

impl<'a> BatchIter<'a> {
    /// An iterator that checks every batch's CRC.
    #[must_use]
    pub fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            position: 0,
            verify_crc: true,
            failed: false,
        }
    }

    /// An iterator that checks framing only: for bytes validated before (appends, reads of the log).
    #[must_use]
    pub fn without_crc(buf: &'a [u8]) -> Self {
        Self {
            verify_crc: false,
            ..Self::new(buf)
        }
    }

    /// Byte position of the next batch in the buffer.
    #[must_use]
    pub fn position(&self) -> usize {
        self.position
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<BatchHeader<'a>, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let rest = self.buf.get(self.position..)?;
        if rest.is_empty() {
            return None;
        }
        let result = BatchHeader::parse_at(rest, self.position).and_then(|header| {
            if self.verify_crc {
                header.verify_crc_at(self.position)?;
            }
            Ok(header)
        });
        match result {
            Ok(header) => {
                self.position += header.size();
                Some(Ok(header))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

fn check_len(batch: &[u8], needed: usize) -> Result<(), StorageError> {
    if batch.len() < needed {
        Err(StorageError::BatchTruncated {
            position: 0,
            needed,
            available: batch.len(),
        })
    } else {
        Ok(())
    }
}

/// Rewrites the `baseOffset` of the batch at the start of `batch`. The field is outside the CRC.
///
/// # Errors
/// [`StorageError::BatchTruncated`] when `batch` is shorter than the header.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) -> Result<(), StorageError> {
    check_len(batch, HEADER_SIZE)?;
    batch[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
    Ok(())
}

/// Rewrites the `partitionLeaderEpoch` of the batch at the start of `batch`. The field is outside
/// the CRC.
///
/// # Errors
/// [`StorageError::BatchTruncated`] when `batch` is shorter than the header.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) -> Result<(), StorageError> {
    check_len(batch, HEADER_SIZE)?;
    batch[PARTITION_LEADER_EPOCH..PARTITION_LEADER_EPOCH + 4].copy_from_slice(&epoch.to_be_bytes());
    Ok(())
}

/// Marks the batch at the start of `batch` as log-append-time with `timestamp` as its max
/// timestamp, as a broker with `message.timestamp.type=LogAppendTime` does, and recomputes the
/// CRC (these fields are covered by it).
///
/// # Errors
/// A malformed-batch error when `batch` does not start with a whole batch.
pub fn set_log_append_time(batch: &mut [u8], timestamp: i64) -> Result<(), StorageError> {
    let size = BatchHeader::parse(batch)?.size();
    let attributes = read_i16(batch, ATTRIBUTES) | TIMESTAMP_TYPE_BIT;
    batch[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&timestamp.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES..size]);
    batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// Overwrites `lastOffsetDelta` and, optionally, `maxTimestamp` and the timestamp-type bit, then
/// recomputes the CRC. Compaction uses it to keep a rewritten batch's last offset and append time.
pub(crate) fn patch_compacted(
    batch: &mut [u8],
    last_offset_delta: i32,
    log_append_time: Option<i64>,
) -> Result<(), StorageError> {
    let size = BatchHeader::parse(batch)?.size();
    batch[LAST_OFFSET_DELTA..LAST_OFFSET_DELTA + 4]
        .copy_from_slice(&last_offset_delta.to_be_bytes());
    if let Some(ts) = log_append_time {
        let attributes = read_i16(batch, ATTRIBUTES) | TIMESTAMP_TYPE_BIT;
        batch[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
        batch[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&ts.to_be_bytes());
    }
    let crc = crc32c::crc32c(&batch[ATTRIBUTES..size]);
    batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests;
