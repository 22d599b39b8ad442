//! Tests of appends, reads, rolls, truncation, retention, DeleteRecords and restarts.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::TimestampType;
use tempfile::TempDir;

use super::*;
use crate::storage::CleanupPolicy;
use crate::storage::batch::BatchIter;
use crate::storage::testing::{decode_all, values_batch};

pub(super) fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        ..LogConfig::default()
    }
}

pub(super) fn open(dir: &TempDir, config: LogConfig) -> Log {
    Log::open(dir.path(), config).unwrap()
}

/// Appends `n` batches of `records` 10-byte records each, timestamps from `ts`.
pub(super) fn append_n(log: &Log, n: usize, records: usize, ts: i64) -> Vec<AppendInfo> {
    (0..n)
        .map(|i| {
            let mut b = values_batch(records, 10, ts + i64::try_from(i).unwrap());
            log.append(&mut b, 1).unwrap()
        })
        .collect()
}

/// Every batch from the log start to the end: `(base offset, last offset, bytes)`, CRCs checked.
pub(super) fn read_all(log: &Log) -> Vec<(i64, i64, Bytes)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    loop {
        let r = log.read(offset, 1 << 20, i64::MAX).unwrap();
        if r.records.is_empty() {
            break;
        }
        let mut pos = 0;
        for h in BatchIter::new(&r.records) {
            let h = h.unwrap();
            out.push((
                h.base_offset(),
                h.last_offset(),
                r.records.slice(pos..pos + h.size()),
            ));
            pos += h.size();
            offset = h.last_offset() + 1;
        }
    }
    out
}

#[test]
fn append_assigns_offsets_from_the_log_end_and_stamps_the_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir, LogConfig::default());
    let mut b = values_batch(3, 10, 100);
    b.extend_from_slice(&values_batch(2, 10, 200));
    let info = log.append(&mut b, 4).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (0, 4));
    assert_eq!(info.record_count, 5);
    assert_eq!(info.max_timestamp, 201);
    assert_eq!(info.offset_of_max_timestamp, 3);
    assert_eq!(info.log_append_time, -1);
    assert_eq!(log.log_end_offset(), 5);
    let headers: Vec<_> = BatchIter::new(&b).map(Result::unwrap).collect();
    assert_eq!(headers[1].base_offset(), 3);
    assert!(headers.iter().all(|h| h.partition_leader_epoch() == 4));

    let info = log.append(&mut values_batch(1, 10, 300), 5).unwrap();
    assert_eq!(info.base_offset, 5);
    let r = log.read(0, 1 << 20, i64::MAX).unwrap();
    assert_eq!(&r.records[..b.len()], &b[..]);
    assert_eq!(decode_all(&r.records).len(), 6);
    assert_eq!(log.latest_epoch(), Some(5));
    assert_eq!(log.end_offset_for_epoch(4), (4, 5));
    assert_eq!(log.end_offset_for_epoch(5), (5, 6));
}

#[test]
fn an_empty_append_changes_nothing_and_garbage_is_refused_unwritten() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir, LogConfig::default());
    let info = log.append(&mut BytesMut::new(), 0).unwrap();
    assert_eq!(info.record_count, 0);
    let mut bad = values_batch(1, 10, 0);
    bad.extend_from_slice(&[1, 2, 3]);
    assert!(log.append(&mut bad, 0).unwrap_err().is_malformed());
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.size_bytes(), 0);
}

#[test]
fn read_returns_whole_batches_within_max_bytes_but_at_least_one() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir, LogConfig::default());
    append_n(&log, 10, 2, 0);
    let one = values_batch(2, 10, 0).len();
    let r = log.read(0, one * 3 + one / 2, i64::MAX).unwrap();
    assert_eq!(r.records.len(), one * 3);
    let r = log.read(0, 1, i64::MAX).unwrap();
    assert_eq!(r.records.len(), one);
    assert!(
        log.read_bounded(0, one - 1, i64::MAX, false)
            .unwrap()
            .records
            .is_empty()
    );
    assert_eq!(
        log.read_bounded(0, one, i64::MAX, false)
            .unwrap()
            .records
            .len(),
        one
    );
    // An offset inside a batch returns that whole batch.
    let r = log.read(7, one, i64::MAX).unwrap();
    assert_eq!(BatchHeader::parse(&r.records).unwrap().base_offset(), 6);
    assert_eq!((r.log_start_offset, r.log_end_offset), (0, 20));
}

#[test]
fn read_returns_only_batches_below_max_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir, LogConfig::default());
    append_n(&log, 5, 2, 0);
    let r = log.read(0, 1 << 20, 6).unwrap();
    let last = BatchIter::new(&r.records).last().unwrap().unwrap();
    assert_eq!(last.last_offset(), 5);
    // The batch holding max_offset is excluded.
    let r = log.read(0, 1 << 20, 5).unwrap();
    assert_eq!(BatchIter::new(&r.records).count(), 2);
    assert!(log.read(6, 1 << 20, 6).unwrap().records.is_empty());
}

#[test]
fn reads_outside_the_log_are_out_of_range_and_at_the_end_empty() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir, LogConfig::default());
    append_n(&log, 2, 1, 0);
    assert!(log.read(2, 100, i64::MAX).unwrap().records.is_empty());
    assert!(matches!(
        log.read(3, 100, i64::MAX),
        Err(StorageError::OffsetOutOfRange {
            offset: 3,
            log_end_offset: 2,
            ..
        })
    ));
    assert!(matches!(
        log.read(-1, 100, i64::MAX),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn segments_roll_at_segment_bytes_and_every_offset_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir, small_config());
    append_n(&log, 60, 3, 0);
    assert!(log.segment_count() > 5, "{}", log.segment_count());
    for offset in 0..180 {
        let r = log.read(offset, 1, i64::MAX).unwrap();
        let h = BatchHeader::parse(&r.records).unwrap();
        assert!(
            h.base_offset() <= offset && offset <= h.last_offset(),
            "{offset}"
        );
    }
    let all = read_all(&log);
    assert_eq!(all.len(), 60);
    assert!(all.windows(2).all(|w| w[0].1 + 1 == w[1].0));
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.contains(&"00000000000000000000.log".to_owned()));
    assert!(names.contains(&"00000000000000000000.index".to_owned()));
    assert!(names.contains(&"00000000000000000000.timeindex".to_owned()));
}

#[test]
fn segment_ms_rolls_by_record_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        &dir,
        LogConfig {
            segment_ms: 1_000,
            ..LogConfig::default()
        },
    );
    log.append(&mut values_batch(1, 10, 10_000), 0).unwrap();
    log.append(&mut values_batch(1, 10, 10_900), 0).unwrap();
    assert_eq!(log.segment_count(), 1);
    log.append(&mut values_batch(1, 10, 11_001), 0).unwrap();
    assert_eq!(log.segment_count(), 2);
    // After a restart the active segment still counts from its first batch.
    log.append(&mut values_batch(1, 10, 11_500), 0).unwrap();
    drop(log);
    let log = open(
        &dir,
        LogConfig {
            segment_ms: 1_000,
            ..LogConfig::default()
        },
    );
    log.append(&mut values_batch(1, 10, 12_000), 0).unwrap();
    assert_eq!(log.segment_count(), 2);
    log.append(&mut values_batch(1, 10, 12_002), 0).unwrap();
    assert_eq!(log.segment_count(), 3);
}

#[test]
fn a_batch_larger_than_a_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir, small_config());
    let err = log.append(&mut values_batch(1, 2_000, 0), 0).unwrap_err();
    assert!(
        matches!(err, StorageError::BatchLargerThanSegment { .. }),
        "{err}"
    );
}

#[test]
fn truncate_to_drops_records_at_and_after_the_offset_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir, small_config());
    append_n(&log, 30, 2, 0);
    log.append(&mut values_batch(2, 10, 100), 3).unwrap();
    let segments_before = log.segment_count();
    log.truncate_to(21).unwrap();
    assert_eq!(log.log_end_offset(), 21);
    assert!(log.segment_count() < segments_before);
    assert_eq!(log.latest_epoch(), Some(1));
    // The batch [20, 21] straddled the offset and is gone whole.
    let all = read_all(&log);
    assert_eq!(all.last().unwrap().1, 19);
    let info = log.append(&mut values_batch(1, 10, 0), 2).unwrap();
    assert_eq!(info.base_offset, 21);
    assert_eq!(read_all(&log).last().unwrap().0, 21);
    // Truncating at or beyond the end changes nothing.
    log.truncate_to(100).unwrap();
    assert_eq!(log.log_end_offset(), 22);
    drop(log);
    let log = open(&dir, small_config());
    assert_eq!(log.log_end_offset(), 22);
    assert_eq!(log.latest_epoch(), Some(2));
}

#[test]
fn truncating_below_the_log_start_restarts_the_log_there() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir, small_config());
    append_n(&log, 30, 2, 0);
    log.delete_records_before(40).unwrap();
    log.truncate_to(10).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (10, 10));
    assert_eq!(log.segment_count(), 1);
    assert_eq!(
        log.append(&mut values_batch(1, 10, 0), 0)
            .unwrap()
            .base_offset,
        10
    );
}

#[test]
fn retention_by_time_deletes_old_segments_and_moves_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        &dir,
        LogConfig {
            retention_ms: 1_000,
            ..small_config()
        },
    );
    append_n(&log, 20, 2, 10_000);
    append_n(&log, 20, 2, 50_000);
    let segments = log.segment_count();
    let outcome = log.apply_retention(50_500).unwrap();
    assert!(outcome.deleted_segments > 0);
    assert!(outcome.deleted_segments < segments);
    assert_eq!(outcome.log_start_offset, log.log_start_offset());
    let all = read_all(&log);
    assert_eq!(all.first().unwrap().0, log.log_start_offset());
    assert!(log.log_start_offset() <= 40);
    assert!(matches!(
        log.read(0, 100, i64::MAX),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    // Nothing more is due yet.
    assert_eq!(log.apply_retention(50_500).unwrap().deleted_segments, 0);
}

#[test]
fn retention_rolls_and_deletes_an_expired_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        &dir,
        LogConfig {
            retention_ms: 1_000,
            ..LogConfig::default()
        },
    );
    append_n(&log, 5, 2, 10_000);
    let outcome = log.apply_retention(100_000).unwrap();
    assert_eq!(outcome.deleted_segments, 1);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (10, 10));
    assert_eq!(log.size_bytes(), 0);
    assert_eq!(
        log.append(&mut values_batch(1, 10, 0), 0)
            .unwrap()
            .base_offset,
        10
    );
    // An empty active segment is never deleted.
    let dir2 = tempfile::tempdir().unwrap();
    let empty = open(
        &dir2,
        LogConfig {
            retention_ms: 0,
            ..LogConfig::default()
        },
    );
    assert_eq!(empty.apply_retention(i64::MAX).unwrap().deleted_segments, 0);
}

#[test]
fn retention_by_size_keeps_the_log_under_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        &dir,
        LogConfig {
            retention_bytes: 3_000,
            ..small_config()
        },
    );
    append_n(&log, 100, 2, 0);
    let before = log.size_bytes();
    let outcome = log.apply_retention(0).unwrap();
    assert!(outcome.deleted_segments > 0);
    assert_eq!(outcome.deleted_bytes, before - log.size_bytes());
    // As in Kafka, segments go while what remains stays at or above the limit, so the log ends
    // less than one segment above it.
    assert!(log.size_bytes() >= 3_000, "{}", log.size_bytes());
    assert!(log.size_bytes() < 3_000 + 1024, "{}", log.size_bytes());
    assert_eq!(read_all(&log).last().unwrap().1, 199);
}

#[test]
fn retention_leaves_compact_only_logs_alone() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        &dir,
        LogConfig {
            retention_ms: 0,
            retention_bytes: 0,
            cleanup_policy: CleanupPolicy::Compact,
            ..small_config()
        },
    );
    append_n(&log, 20, 2, 0);
    assert_eq!(log.apply_retention(i64::MAX).unwrap().deleted_segments, 0);
}

#[test]
fn delete_records_moves_the_log_start_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir, small_config());
    append_n(&log, 40, 2, 0);
    let segments = log.segment_count();
    assert_eq!(log.delete_records_before(31).unwrap(), 31);
    assert!(log.segment_count() < segments);
    assert_eq!(log.delete_records_before(5).unwrap(), 31);
    assert!(log.delete_records_before(81).is_err());
    // The batch holding the new start is returned whole.
    let r = log.read(31, 1, i64::MAX).unwrap();
    assert_eq!(BatchHeader::parse(&r.records).unwrap().base_offset(), 30);
    assert!(log.read(30, 1, i64::MAX).is_err());
    log.abandon();
    let log = open(&dir, small_config());
    assert_eq!(log.log_start_offset(), 31);
    assert_eq!(log.log_end_offset(), 80);
    assert!(log.read(30, 1, i64::MAX).is_err());
}

#[test]
fn a_clean_close_is_reopened_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir, small_config());
    append_n(&log, 25, 3, 0);
    let before = read_all(&log);
    log.close().unwrap();
    assert!(dir.path().join(CLEAN_SHUTDOWN_MARKER).exists());
    let log = open(&dir, small_config());
    assert!(!dir.path().join(CLEAN_SHUTDOWN_MARKER).exists());
    assert_eq!(read_all(&log), before);
    assert_eq!(
        log.append(&mut values_batch(1, 10, 0), 0)
            .unwrap()
            .base_offset,
        75
    );
}

#[test]
fn lost_index_files_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir, small_config());
    append_n(&log, 40, 2, 0);
    let before = read_all(&log);
    drop(log);
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let p = e.unwrap().path();
        if p.extension()
            .is_some_and(|x| x == "index" || x == "timeindex")
        {
            std::fs::remove_file(p).unwrap();
        }
    }
    let log = open(&dir, small_config());
    assert_eq!(read_all(&log), before);
    // Batch 19 holds offsets 38 and 39 with timestamps 19 and 20.
    assert_eq!(log.offset_for_timestamp(20).unwrap(), Some((39, 20)));
}

#[test]
fn offset_for_timestamp_finds_the_first_record_at_or_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir, small_config());
    // Batches of 3 records with timestamps t, t+1, t+2 for t = 0, 10, 20, ...
    for i in 0..30 {
        log.append(&mut values_batch(3, 10, i * 10), 0).unwrap();
    }
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 0)));
    assert_eq!(log.offset_for_timestamp(11).unwrap(), Some((4, 11)));
    assert_eq!(log.offset_for_timestamp(13).unwrap(), Some((6, 20)));
    assert_eq!(log.offset_for_timestamp(292).unwrap(), Some((89, 292)));
    assert_eq!(log.offset_for_timestamp(293).unwrap(), None);
    log.delete_records_before(50).unwrap();
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((50, 162)));
    assert_eq!(log.max_timestamp(), Some((292, 89)));
}

#[test]
fn max_timestamp_points_at_the_record_holding_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir, LogConfig::default());
    assert_eq!(log.max_timestamp(), None);
    log.append(&mut values_batch(3, 10, 500), 0).unwrap();
    log.append(&mut values_batch(3, 10, 100), 0).unwrap();
    assert_eq!(log.max_timestamp(), Some((502, 2)));
}

#[test]
fn log_append_time_stamps_each_append() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        &dir,
        LogConfig {
            message_timestamp_type: MessageTimestampType::LogAppendTime,
            ..LogConfig::default()
        },
    );
    let before = now_ms();
    let mut b = values_batch(2, 10, 5);
    let info = log.append(&mut b, 0).unwrap();
    assert!(info.log_append_time >= before);
    let h = BatchHeader::parse(&b).unwrap();
    assert_eq!(h.max_timestamp(), info.log_append_time);
    assert_eq!(h.timestamp_type(), TimestampType::LogAppend);
    h.verify_crc().unwrap();
    assert_eq!(
        log.offset_for_timestamp(before).unwrap(),
        Some((0, info.log_append_time))
    );
}

#[test]
fn append_with_offsets_keeps_offsets_and_refuses_going_back() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir, LogConfig::default());
    let mut b = values_batch(2, 10, 0);
    batch::set_base_offset(&mut b, 10).unwrap();
    batch::set_partition_leader_epoch(&mut b, 3).unwrap();
    let info = log.append_with_offsets(&b).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (10, 11));
    assert_eq!(log.log_end_offset(), 12);
    assert_eq!(log.latest_epoch(), Some(3));
    assert!(matches!(
        log.append_with_offsets(&b),
        Err(StorageError::NonMonotonicOffset {
            base_offset: 10,
            log_end_offset: 12
        })
    ));
    let mut corrupt = values_batch(1, 10, 0);
    batch::set_base_offset(&mut corrupt, 12).unwrap();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    assert!(log.append_with_offsets(&corrupt).unwrap_err().is_corrupt());
}

#[test]
fn readers_run_concurrently_with_appends() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open(&dir, small_config()));
    let writer = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || append_n(&log, 300, 2, 0))
    };
    let mut seen = 0;
    while seen < 600 {
        let r = log.read(seen, 4096, i64::MAX).unwrap();
        for h in BatchIter::new(&r.records) {
            let h = h.unwrap();
            assert_eq!(h.base_offset(), seen);
            seen = h.last_offset() + 1;
        }
        if r.records.is_empty() {
            std::thread::yield_now();
        }
    }
    writer.join().unwrap();
}

#[test]
fn flush_policies_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("topic-0");
    let log = Log::open(
        &path,
        LogConfig {
            flush_messages: 1,
            flush_ms: 0,
            ..LogConfig::default()
        },
    )
    .unwrap();
    append_n(&log, 3, 1, 0);
    log.flush().unwrap();
    log.flush_if_due().unwrap();
    log.update_config(LogConfig::default());
    assert_eq!(log.config(), LogConfig::default());
    log.delete().unwrap();
    assert!(!path.exists());
}

#[test]
fn a_damaged_index_entry_costs_a_scan_not_a_wrong_batch() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir, small_config());
    append_n(&log, 40, 1, 0);
    let before = read_all(&log);
    log.close().unwrap();
    // Make the second entry of the first segment's index claim a smaller offset than its batch:
    // still increasing, so it loads, but it points past the batches it claims to start.
    let path = dir.path().join("00000000000000000000.index");
    let mut data = std::fs::read(&path).unwrap();
    assert!(data.len() >= 16, "index has {} bytes", data.len());
    let first_rel = u32::from_be_bytes(data[0..4].try_into().unwrap());
    data[8..12].copy_from_slice(&(first_rel + 1).to_be_bytes());
    std::fs::write(&path, &data).unwrap();
    let log = open(&dir, small_config());
    for (base, last, _) in &before {
        let r = log.read(*last, 1, i64::MAX).unwrap();
        assert_eq!(BatchHeader::parse(&r.records).unwrap().base_offset(), *base);
    }
    log.truncate_to(before[3].0).unwrap();
    assert_eq!(read_all(&log).len(), 3);
}

#[test]
fn a_fetch_holding_a_segment_survives_its_deletion_by_retention() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        &dir,
        LogConfig {
            retention_ms: 10,
            ..small_config()
        },
    );
    append_n(&log, 20, 2, 0);
    append_n(&log, 5, 2, 1_000_000);
    // A reader that found the first segment just before retention removed it.
    let segment = log.floor_segment(0).unwrap();
    assert!(log.apply_retention(1_000_000).unwrap().deleted_segments > 0);
    assert!(!segment.log_path().exists());
    let bytes = segment.read(0, 1 << 20, i64::MAX, true).unwrap().unwrap();
    let first = BatchHeader::parse(&bytes).unwrap();
    assert_eq!(first.base_offset(), 0);
    first.verify_crc().unwrap();
}

#[test]
fn closed_segments_with_sound_indexes_are_not_scanned_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir, small_config());
    append_n(&log, 40, 2, 0);
    drop(log);
    let opened = Segment::open(dir.path(), 0, true, 128).unwrap();
    assert!(!opened.rebuilt);
    // Only the batches after the last index entry were read.
    let all = opened.segment.size();
    let scanned: u64 = opened.scanned.iter().map(|m| m.size).sum();
    assert!(scanned <= 128 + 200, "scanned {scanned} of {all}");
    assert!(opened.segment.max_timestamp().is_some());
    // Untrusted, the whole segment is scanned.
    let opened = Segment::open(dir.path(), 0, false, 128).unwrap();
    assert!(opened.rebuilt);
    assert_eq!(opened.scanned.iter().map(|m| m.size).sum::<u64>(), all);
}
