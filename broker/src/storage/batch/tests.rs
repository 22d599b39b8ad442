use bytes::BytesMut;
use kafka_protocol::records::Compression;
use proptest::prelude::*;

use super::*;
use crate::storage::testing::{batch_of, values_batch};

#[test]
fn parse_reads_the_header_fields_of_an_encoded_batch() {
    let buf = values_batch(3, 10, 1_000);
    let h = BatchHeader::parse(&buf).unwrap();
    assert_eq!(h.size(), buf.len());
    assert_eq!(h.base_offset(), 0);
    assert_eq!(h.last_offset_delta(), 2);
    assert_eq!(h.last_offset(), 2);
    assert_eq!(h.record_count(), 3);
    assert_eq!(h.magic(), 2);
    assert_eq!(h.base_timestamp(), 1_000);
    assert_eq!(h.max_timestamp(), 1_002);
    assert_eq!(h.producer_id(), -1);
    assert_eq!(h.producer_epoch(), -1);
    assert_eq!(h.base_sequence(), -1);
    assert_eq!(h.compression(), Some(Compression::None));
    assert_eq!(h.timestamp_type(), TimestampType::Creation);
    assert!(!h.is_transactional());
    assert!(!h.is_control());
    h.verify_crc().unwrap();
}

#[test]
fn iterator_splits_concatenated_batches_of_every_codec() {
    let mut buf = BytesMut::new();
    for (i, c) in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ]
    .into_iter()
    .enumerate()
    {
        let mut b = batch_of(&[(Some(b"k"), Some(b"v")), (None, Some(b"w"))], 5, c);
        set_base_offset(&mut b, i64::try_from(i).unwrap() * 2).unwrap();
        buf.extend_from_slice(&b);
    }
    let headers: Vec<_> = BatchIter::new(&buf).collect::<Result<_, _>>().unwrap();
    assert_eq!(headers.len(), 5);
    assert_eq!(headers[3].compression(), Some(Compression::Lz4));
    assert_eq!(headers[4].base_offset(), 8);
}

#[test]
fn a_flipped_byte_in_the_records_is_reported_as_corrupt() {
    let mut buf = values_batch(2, 20, 0);
    let last = buf.len() - 1;
    buf[last] ^= 0x55;
    let err = BatchIter::new(&buf).next().unwrap().unwrap_err();
    assert!(err.is_corrupt(), "{err}");
    assert!(!err.is_malformed());
    // Framing-only iteration accepts it.
    assert!(BatchIter::without_crc(&buf).next().unwrap().is_ok());
}

#[test]
fn truncated_bad_length_and_bad_magic_are_malformed() {
    let buf = values_batch(1, 10, 0);
    let err = BatchHeader::parse(&buf[..buf.len() - 1]).unwrap_err();
    assert!(matches!(err, StorageError::BatchTruncated { .. }), "{err}");
    assert!(err.is_malformed());
    assert!(matches!(
        BatchHeader::parse(&buf[..5]).unwrap_err(),
        StorageError::BatchTruncated { needed: 12, .. }
    ));

    let mut bad_len = buf.clone();
    bad_len[8..12].copy_from_slice(&10i32.to_be_bytes());
    assert!(matches!(
        BatchHeader::parse(&bad_len).unwrap_err(),
        StorageError::BatchLengthInvalid { length: 10, .. }
    ));

    let mut bad_magic = buf.clone();
    bad_magic[16] = 1;
    let err = BatchHeader::parse(&bad_magic).unwrap_err();
    assert!(
        matches!(err, StorageError::UnsupportedMagic { magic: 1, .. }),
        "{err}"
    );
    assert!(err.is_malformed());

    let mut negative_count = buf;
    negative_count[57..61].copy_from_slice(&(-1i32).to_be_bytes());
    assert!(matches!(
        BatchHeader::parse(&negative_count).unwrap_err(),
        StorageError::InvalidBatchField {
            field: "recordCount",
            ..
        }
    ));
}

#[test]
fn the_iterator_reports_the_position_of_the_bad_batch_and_stops() {
    let good = values_batch(1, 10, 0);
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&good);
    buf.extend_from_slice(&good[..20]);
    let mut it = BatchIter::new(&buf);
    assert!(it.next().unwrap().is_ok());
    match it.next().unwrap().unwrap_err() {
        StorageError::BatchTruncated { position, .. } => assert_eq!(position, good.len()),
        other => panic!("unexpected {other}"),
    }
    assert!(it.next().is_none());
}

#[test]
fn offset_and_epoch_setters_keep_the_crc_valid() {
    let mut buf = values_batch(4, 10, 0);
    set_base_offset(&mut buf, 1_000).unwrap();
    set_partition_leader_epoch(&mut buf, 7).unwrap();
    let h = BatchHeader::parse(&buf).unwrap();
    assert_eq!(h.base_offset(), 1_000);
    assert_eq!(h.last_offset(), 1_003);
    assert_eq!(h.partition_leader_epoch(), 7);
    h.verify_crc().unwrap();
    assert!(set_base_offset(&mut [0u8; 10], 1).is_err());
}

#[test]
fn log_append_time_stamps_the_batch_and_recomputes_the_crc() {
    let mut buf = values_batch(2, 10, 100);
    set_log_append_time(&mut buf, 99_999).unwrap();
    let h = BatchHeader::parse(&buf).unwrap();
    assert_eq!(h.timestamp_type(), TimestampType::LogAppend);
    assert_eq!(h.max_timestamp(), 99_999);
    h.verify_crc().unwrap();
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_iterator(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let total: usize = BatchIter::new(&bytes).filter_map(Result::ok).map(|h| h.size()).sum();
        prop_assert!(total <= bytes.len());
    }

    #[test]
    fn a_valid_batch_with_any_single_byte_flipped_in_the_crc_range_is_corrupt(
        idx in 21usize..70, bit in 0u8..8,
    ) {
        let mut buf = values_batch(1, 20, 0);
        let idx = idx.min(buf.len() - 1);
        buf[idx] ^= 1 << bit;
        let result = BatchIter::new(&buf).next().unwrap();
        // Flips in lastOffsetDelta/recordCount may also be caught as malformed first.
        prop_assert!(result.is_err());
    }
}
