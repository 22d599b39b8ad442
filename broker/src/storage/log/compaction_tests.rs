//! Tests of key compaction.

use std::collections::BTreeMap;

use kafka_protocol::records::{Compression, TimestampType};

use std::sync::atomic::Ordering;

use super::tests::{open, read_all};
use super::*;
use crate::storage::CleanupPolicy;
use crate::storage::batch::BatchIter;
use crate::storage::testing::{batch_of, decode_all, keyed, values_batch};

fn compact_config() -> LogConfig {
    LogConfig {
        cleanup_policy: CleanupPolicy::Compact,
        segment_bytes: 400,
        index_interval_bytes: 64,
        delete_retention_ms: 1_000,
        ..LogConfig::default()
    }
}

/// `(offset, key, value)` of every record in the log.
fn records(log: &Log) -> Vec<(i64, String, Option<String>)> {
    read_all(log)
        .iter()
        .flat_map(|(_, _, bytes)| decode_all(bytes))
        .map(|r| {
            let text = |b: &bytes::Bytes| String::from_utf8(b.to_vec()).unwrap();
            (
                r.offset,
                r.key.as_ref().map(text).unwrap_or_default(),
                r.value.as_ref().map(text),
            )
        })
        .collect()
}

/// Appends keyed records `k0..k{keys}` `rounds` times (value = round), then enough filler to
/// close every segment holding them.
fn fill(log: &Log, keys: usize, rounds: usize, ts: i64) {
    for round in 0..rounds {
        for k in 0..keys {
            let value = round.to_string();
            log.append(&mut keyed(&format!("k{k}"), Some(&value), ts), 0)
                .unwrap();
        }
    }
    close_segments(log, ts);
}

fn close_segments(log: &Log, ts: i64) {
    let segments = log.segment_count();
    while log.segment_count() == segments {
        log.append(&mut keyed("filler", Some("x"), ts), 0).unwrap();
    }
}

#[test]
fn compaction_keeps_the_latest_record_per_key_at_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir, compact_config());
    fill(&log, 4, 5, 1_000);
    let leo = log.log_end_offset();
    let before = records(&log);
    let outcome = log.compact(2_000).unwrap();
    assert!(outcome.segments_cleaned > 0);
    assert!(outcome.bytes_after < outcome.bytes_before);
    let after = records(&log);
    assert_eq!(
        after.len() as u64 + outcome.records_removed,
        before.len() as u64
    );
    // Latest value per key, at the offset it had.
    let mut latest: BTreeMap<String, (i64, Option<String>)> = BTreeMap::new();
    for (o, k, v) in &before {
        latest.insert(k.clone(), (*o, v.clone()));
    }
    for k in 0..4 {
        let key = format!("k{k}");
        let kept: Vec<_> = after.iter().filter(|(_, kk, _)| *kk == key).collect();
        assert_eq!(kept.len(), 1, "{key}: {kept:?}");
        assert_eq!((kept[0].0, kept[0].2.clone()), latest[&key]);
        assert_eq!(kept[0].2.as_deref(), Some("4"));
    }
    assert!(after.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(log.log_end_offset(), leo);
    // A second run finds nothing more to do; appends continue at the end.
    let again = log.compact(2_000).unwrap();
    assert_eq!(again.records_removed, 0);
    assert_eq!(
        log.append(&mut keyed("k0", Some("5"), 0), 0)
            .unwrap()
            .base_offset,
        leo
    );
    // Compacted segments survive a restart.
    drop(log);
    let log = open(&dir, compact_config());
    let reopened = records(&log);
    assert_eq!(&reopened[..after.len()], &after[..]);
}

#[test]
fn tombstones_are_kept_until_delete_retention_passes() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir, compact_config());
    log.append(&mut keyed("gone", Some("v1"), 10_000), 0)
        .unwrap();
    log.append(&mut keyed("kept", Some("v1"), 10_000), 0)
        .unwrap();
    log.append(&mut keyed("gone", None, 10_000), 0).unwrap();
    close_segments(&log, 10_000);

    log.compact(10_500).unwrap();
    let r = records(&log);
    assert!(r.iter().any(|(_, k, v)| k == "gone" && v.is_none()));
    assert!(!r.iter().any(|(_, k, v)| k == "gone" && v.is_some()));

    log.compact(11_001).unwrap();
    let r = records(&log);
    assert!(!r.iter().any(|(_, k, _)| k == "gone"), "{r:?}");
    assert!(r.iter().any(|(_, k, _)| k == "kept"));
}

#[test]
fn compressed_batches_are_compacted_with_their_codec_and_last_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir, compact_config());
    for codec in [
        Compression::Gzip,
        Compression::Lz4,
        Compression::Zstd,
        Compression::Snappy,
    ] {
        let mut b = batch_of(
            &[
                (Some(b"a"), Some(b"1")),
                (Some(b"b"), Some(b"1")),
                (Some(b"a"), Some(b"2")),
                (Some(b"c"), Some(b"1")),
                (Some(b"c"), Some(b"2")),
            ],
            5_000,
            codec,
        );
        log.append(&mut b, 7).unwrap();
    }
    close_segments(&log, 5_000);
    log.compact(6_000).unwrap();
    let batches = read_all(&log);
    let last = batches
        .iter()
        .filter(|(_, _, b)| {
            BatchHeader::parse(b).unwrap().compression() == Some(Compression::Snappy)
        })
        .last()
        .unwrap();
    let h = BatchHeader::parse(&last.2).unwrap();
    // The last batch (offsets 15..=19) ends where it did and holds the latest a, b and c.
    assert_eq!(h.last_offset(), 19);
    assert_eq!(h.partition_leader_epoch(), 7);
    h.verify_crc().unwrap();
    let kept: Vec<(i64, String)> = decode_all(&last.2)
        .into_iter()
        .map(|r| {
            (
                r.offset,
                String::from_utf8(r.key.unwrap().to_vec()).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kept,
        vec![
            (16, "b".to_owned()),
            (17, "a".to_owned()),
            (19, "c".to_owned())
        ]
    );
    // Earlier batches lost every record and are gone.
    assert!(
        batches.iter().all(
            |(_, _, b)| BatchHeader::parse(b).unwrap().compression() != Some(Compression::Gzip)
        )
    );
}

#[test]
fn recent_segments_wait_for_the_min_compaction_lag() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        &dir,
        LogConfig {
            min_compaction_lag_ms: 10_000,
            ..compact_config()
        },
    );
    fill(&log, 2, 3, 1_000);
    assert_eq!(log.compact(5_000).unwrap().segments_cleaned, 0);
    assert!(log.compact(20_000).unwrap().segments_cleaned > 0);
}

#[test]
fn compaction_is_a_no_op_for_delete_policy_and_keeps_keyless_records() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        &dir,
        LogConfig {
            cleanup_policy: CleanupPolicy::Delete,
            ..compact_config()
        },
    );
    fill(&log, 2, 3, 0);
    assert_eq!(log.compact(1).unwrap(), CompactionOutcome::default());

    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir, compact_config());
    log.append(&mut values_batch(3, 10, 0), 0).unwrap();
    fill(&log, 2, 3, 0);
    log.compact(1).unwrap();
    assert_eq!(
        records(&log)
            .iter()
            .filter(|(_, k, _)| k.is_empty())
            .count(),
        3
    );
}

#[test]
fn segments_emptied_by_compaction_are_dropped_but_the_first_stays() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir, compact_config());
    fill(&log, 2, 20, 1_000);
    let before = log.segment_count();
    log.compact(2_000).unwrap();
    assert!(
        log.segment_count() < before,
        "{} -> {}",
        before,
        log.segment_count()
    );
    assert_eq!(log.floor_segment(0).unwrap().base_offset(), 0);
    assert_eq!(log.log_start_offset(), 0);
    let kept: Vec<_> = records(&log)
        .into_iter()
        .filter(|(_, k, _)| k != "filler")
        .collect();
    assert_eq!(kept.len(), 2);
    drop(log);
    let log = open(&dir, compact_config());
    assert_eq!(log.log_start_offset(), 0);
    assert_eq!(
        records(&log)
            .iter()
            .filter(|(_, k, _)| k != "filler")
            .count(),
        2
    );
}

#[test]
fn an_emptied_segment_does_not_hold_back_retention() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        &dir,
        LogConfig {
            cleanup_policy: CleanupPolicy::CompactDelete,
            retention_ms: 1_000,
            ..compact_config()
        },
    );
    fill(&log, 2, 20, 1_000);
    log.compact(2_000).unwrap();
    assert_eq!(log.floor_segment(0).unwrap().size(), 0);
    let leo = log.log_end_offset();
    log.apply_retention(1_000_000).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (leo, leo));
    assert_eq!(log.segment_count(), 1);
}

#[test]
fn appends_reads_retention_and_compaction_run_together() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open(
        &dir,
        LogConfig {
            cleanup_policy: CleanupPolicy::CompactDelete,
            retention_bytes: 20_000,
            ..compact_config()
        },
    ));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (log, done) = (Arc::clone(&log), Arc::clone(&done));
        std::thread::spawn(move || {
            for i in 0..3_000 {
                let key = format!("k{}", i % 50);
                log.append(&mut keyed(&key, Some("value"), 1_000), 0)
                    .unwrap();
            }
            done.store(true, Ordering::Release);
        })
    };
    let maintenance = {
        let (log, done) = (Arc::clone(&log), Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(Ordering::Acquire) {
                log.compact(2_000).unwrap();
                log.apply_retention(2_000).unwrap();
            }
        })
    };
    let mut offset = 0;
    let mut batches = 0u64;
    while !done.load(Ordering::Acquire) || offset < log.log_end_offset() {
        match log.read(offset, 2048, i64::MAX) {
            Ok(r) => {
                for h in BatchIter::new(&r.records) {
                    let h = h.unwrap();
                    assert!(h.last_offset() >= offset);
                    offset = h.last_offset() + 1;
                    batches += 1;
                }
            }
            Err(StorageError::OffsetOutOfRange {
                log_start_offset, ..
            }) => {
                assert!(offset < log_start_offset);
                offset = log_start_offset;
            }
            Err(e) => panic!("{e}"),
        }
    }
    writer.join().unwrap();
    maintenance.join().unwrap();
    assert!(batches > 0);
    assert_eq!(offset, 3_000);
    let all = read_all(&log);
    assert!(all.windows(2).all(|w| w[0].1 < w[1].0));
}

#[test]
fn log_append_time_batches_keep_their_append_time_when_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        &dir,
        LogConfig {
            message_timestamp_type: crate::storage::MessageTimestampType::LogAppendTime,
            ..compact_config()
        },
    );
    let mut b = batch_of(
        &[
            (Some(b"a"), Some(b"1")),
            (Some(b"a"), Some(b"2")),
            (Some(b"b"), Some(b"1")),
        ],
        5,
        Compression::None,
    );
    let info = log.append(&mut b, 0).unwrap();
    close_segments(&log, 5);
    log.compact(info.log_append_time + 1).unwrap();
    let first = read_all(&log).remove(0);
    let h = BatchHeader::parse(&first.2).unwrap();
    h.verify_crc().unwrap();
    assert_eq!(h.timestamp_type(), TimestampType::LogAppend);
    assert_eq!(h.max_timestamp(), info.log_append_time);
    assert_eq!((h.base_offset(), h.last_offset()), (1, 2));
    assert_eq!(decode_all(&first.2).len(), 2);
}
