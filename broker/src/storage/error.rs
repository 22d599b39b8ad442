//! The storage layer's error type.
//!
//! Batch validation errors are split into "corrupt" (the CRC does not match: the bytes were damaged)
//! and "malformed" (the framing is wrong: bad length, magic or field), because the Kafka API layer
//! answers them differently (`CORRUPT_MESSAGE` versus `INVALID_RECORD` and friends) and recovery
//! treats both as the end of the valid log.

use std::path::PathBuf;

/// Errors of the partition log storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file operation failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The buffer ends before the batch it announces.
    #[error(
        "record batch at byte {position} needs {needed} bytes but only {available} are present"
    )]
    BatchTruncated {
        /// Byte position of the batch in the buffer.
        position: usize,
        /// Bytes the batch needs.
        needed: usize,
        /// Bytes present from `position`.
        available: usize,
    },
    /// The batch length field is impossible.
    #[error("record batch at byte {position} has invalid length {length}")]
    BatchLengthInvalid {
        /// Byte position of the batch in the buffer.
        position: usize,
        /// The `batchLength` field.
        length: i32,
    },
    /// The batch is not a magic v2 batch.
    #[error("record batch at byte {position} has unsupported magic {magic}")]
    UnsupportedMagic {
        /// Byte position of the batch in the buffer.
        position: usize,
        /// The magic byte found.
        magic: i8,
    },
    /// A header field holds an impossible value.
    #[error("record batch at byte {position} has invalid {field} {value}")]
    InvalidBatchField {
        /// Byte position of the batch in the buffer.
        position: usize,
        /// The field name, as in Kafka's batch format.
        field: &'static str,
        /// The value found.
        value: i64,
    },
    /// The CRC-32C of the batch does not match its content.
    #[error(
        "record batch at byte {position} (base offset {base_offset}) is corrupt: crc {stored:#010x} != computed {computed:#010x}"
    )]
    CorruptBatch {
        /// Byte position of the batch in the buffer.
        position: usize,
        /// The batch's base offset.
        base_offset: i64,
        /// The CRC stored in the header.
        stored: u32,
        /// The CRC computed over the content.
        computed: u32,
    },
    /// A Produce batch breaks one of Kafka's rules for client batches (Kafka `INVALID_RECORD`).
    #[error("invalid record batch at byte {position}: {reason}")]
    InvalidBatch {
        /// Byte position of the batch in the buffer.
        position: usize,
        /// Which rule, with the values involved.
        reason: String,
    },
    /// A Produce batch is larger than `max.message.bytes` (Kafka `MESSAGE_TOO_LARGE`).
    #[error("record batch of {size} bytes exceeds max.message.bytes {max_message_bytes}")]
    BatchTooLarge {
        /// Size of the batch in bytes.
        size: usize,
        /// The topic's limit.
        max_message_bytes: u32,
    },
    /// A read or truncation asked for an offset outside the log.
    #[error("offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        /// The requested offset.
        offset: i64,
        /// The log start offset.
        log_start_offset: i64,
        /// The log end offset.
        log_end_offset: i64,
    },
    /// A single batch larger than a whole segment can never be stored.
    #[error("record batch of {size} bytes exceeds segment.bytes {segment_bytes}")]
    BatchLargerThanSegment {
        /// Size of the batch in bytes.
        size: usize,
        /// The configured segment size.
        segment_bytes: u64,
    },
    /// Batches handed to `append_with_offsets` do not follow the log end offset.
    #[error("batch with base offset {base_offset} does not follow log end offset {log_end_offset}")]
    NonMonotonicOffset {
        /// The base offset of the offending batch.
        base_offset: i64,
        /// The log end offset it should be at or above.
        log_end_offset: i64,
    },
    /// The records of a batch could not be decoded (compaction, timestamp lookup).
    #[error("cannot decode records of batch at offset {base_offset}: {reason}")]
    RecordDecode {
        /// The batch's base offset.
        base_offset: i64,
        /// What the decoder reported.
        reason: String,
    },
    /// A compacted batch could not be encoded.
    #[error("cannot encode compacted batch at offset {base_offset}: {reason}")]
    RecordEncode {
        /// The original batch's base offset.
        base_offset: i64,
        /// What the encoder reported.
        reason: String,
    },
    /// A checkpoint file holds something unreadable.
    #[error("checkpoint {path} is invalid: {reason}")]
    InvalidCheckpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl StorageError {
    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// True when a batch's CRC did not match (Kafka `CORRUPT_MESSAGE`).
    #[must_use]
    pub fn is_corrupt(&self) -> bool {
        matches!(self, Self::CorruptBatch { .. })
    }

    /// True when a batch's framing or header is invalid (length, magic, field values, Kafka's
    /// rules for client batches).
    #[must_use]
    pub fn is_malformed(&self) -> bool {
        matches!(
            self,
            Self::BatchTruncated { .. }
                | Self::BatchLengthInvalid { .. }
                | Self::UnsupportedMagic { .. }
                | Self::InvalidBatchField { .. }
                | Self::InvalidBatch { .. }
        )
    }
}
