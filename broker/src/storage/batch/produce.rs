//! Validation of the records of one partition in a Produce request, as Kafka's broker does
//! before appending (`LogValidator`), using header fields only: no record is decoded.
//!
//! Kafka error each failure maps to: [`StorageError::CorruptBatch`] and a truncated buffer
//! ([`StorageError::BatchTruncated`]) → `CORRUPT_MESSAGE`; [`StorageError::BatchTooLarge`] →
//! `MESSAGE_TOO_LARGE`; [`StorageError::UnsupportedMagic`] → `UNSUPPORTED_VERSION` (Kafka 4 only
//! accepts v2); the other malformed errors → `INVALID_RECORD`. Checks that need the records
//! (timestamps against `message.timestamp.*.max.ms`, keys on compacted topics) are not done here.

use super::{BatchHeader, BatchIter, StorageError};

/// Checks a partition's Produce payload: exactly one v2 batch (as Kafka requires of clients),
/// with a valid CRC, no larger than `max_message_bytes`, at least one record, a record count
/// matching its offset range, no control records, and a sequence when it has a producer id.
/// Returns the batch header.
///
/// # Errors
/// The first rule broken, as listed in the module docs.
pub fn validate_produce(
    records: &[u8],
    max_message_bytes: u32,
) -> Result<BatchHeader<'_>, StorageError> {
    let mut batches = BatchIter::new(records);
    let header = match batches.next() {
        Some(header) => header?,
        None => {
            return Err(StorageError::InvalidBatch {
                position: 0,
                reason: "the request holds no record batch".to_owned(),
            });
        }
    };
    let invalid = |reason: String| StorageError::InvalidBatch {
        position: 0,
        reason,
    };
    if header.size() < records.len() {
        return Err(invalid(format!(
            "{} bytes follow the first batch; clients send one batch per partition",
            records.len() - header.size()
        )));
    }
    if header.size() > max_message_bytes as usize {
        return Err(StorageError::BatchTooLarge {
            size: header.size(),
            max_message_bytes,
        });
    }
    let count = header.record_count();
    if count <= 0 {
        return Err(invalid(format!("record count {count} is not positive")));
    }
    if i64::from(header.last_offset_delta()) + 1 != i64::from(count) {
        return Err(invalid(format!(
            "offset range of {} does not match record count {count}",
            i64::from(header.last_offset_delta()) + 1
        )));
    }
    if header.is_control() {
        return Err(invalid("clients may not write control batches".to_owned()));
    }
    if header.producer_id() >= 0 && header.base_sequence() < 0 {
        return Err(invalid(format!(
            "producer id {} with sequence {}",
            header.producer_id(),
            header.base_sequence()
        )));
    }
    if header.compression().is_none() {
        return Err(invalid(format!(
            "unknown compression codec {}",
            header.compression_id()
        )));
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::records::Compression;

    use super::*;
    use crate::storage::testing::{batch_of, values_batch};

    #[test]
    fn a_producer_batch_passes() {
        let b = batch_of(&[(Some(b"k"), Some(b"v"))], 0, Compression::Zstd);
        let h = validate_produce(&b, 1_048_588).unwrap();
        assert_eq!(h.record_count(), 1);
    }

    #[test]
    fn each_rule_is_enforced() {
        assert!(matches!(
            validate_produce(&[], 100),
            Err(StorageError::InvalidBatch { .. })
        ));

        let b = values_batch(2, 10, 0);
        let mut two = BytesMut::from(&b[..]);
        two.extend_from_slice(&b);
        assert!(validate_produce(&two, 1 << 20).unwrap_err().is_malformed());

        let err = validate_produce(&b, 10).unwrap_err();
        assert!(matches!(
            err,
            StorageError::BatchTooLarge {
                max_message_bytes: 10,
                ..
            }
        ));

        let mut corrupt = b.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        assert!(
            validate_produce(&corrupt, 1 << 20)
                .unwrap_err()
                .is_corrupt()
        );

        // Header edits below are covered by the CRC, so recompute it after each.
        let edit = |at: usize, bytes: &[u8]| {
            let mut m = b.clone();
            m[at..at + bytes.len()].copy_from_slice(bytes);
            let crc = crc32c::crc32c(&m[21..]);
            m[17..21].copy_from_slice(&crc.to_be_bytes());
            validate_produce(&m, 1 << 20).unwrap_err().to_string()
        };
        assert!(edit(57, &3i32.to_be_bytes()).contains("does not match record count 3"));
        assert!(edit(57, &0i32.to_be_bytes()).contains("record count 0"));
        assert!(edit(21, &(1i16 << 5).to_be_bytes()).contains("control"));
        assert!(edit(43, &7i64.to_be_bytes()).contains("producer id 7"));
        assert!(edit(21, &6i16.to_be_bytes()).contains("codec 6"));
    }
}
