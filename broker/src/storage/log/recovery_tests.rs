//! Property test of crash recovery: whatever happens to the active segment's tail and to index
//! files, the reopened log holds exactly a prefix of what was appended, every batch has a valid
//! CRC, and appends continue from the log end offset.

use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use proptest::prelude::*;

use super::tests::read_all;
use super::*;
use crate::storage::testing::{decode_all, values_batch};

/// Damage to the active segment's log file (positions are fractions of its length).
#[derive(Debug, Clone)]
enum LogDamage {
    /// Cut the file at this fraction of its length.
    Truncate(f64),
    /// Flip a bit at this fraction of the file, in a byte covered by the batch checks.
    Flip(f64, u8),
    /// Append this many random bytes.
    Garbage(Vec<u8>),
}

/// Damage to an index file of some segment (chosen by `seg` modulo the count).
#[derive(Debug, Clone)]
enum IndexDamage {
    Delete {
        seg: usize,
        time: bool,
    },
    Truncate {
        seg: usize,
        time: bool,
        keep: f64,
    },
    Overwrite {
        seg: usize,
        time: bool,
        at: f64,
        byte: u8,
    },
}

fn log_damage() -> impl Strategy<Value = LogDamage> {
    prop_oneof![
        (0.0..1.0f64).prop_map(LogDamage::Truncate),
        (0.0..1.0f64, 0u8..8).prop_map(|(p, b)| LogDamage::Flip(p, b)),
        proptest::collection::vec(any::<u8>(), 1..200).prop_map(LogDamage::Garbage),
    ]
}

fn index_damage() -> impl Strategy<Value = IndexDamage> {
    prop_oneof![
        (any::<usize>(), any::<bool>()).prop_map(|(seg, time)| IndexDamage::Delete { seg, time }),
        (any::<usize>(), any::<bool>(), 0.0..1.0f64)
            .prop_map(|(seg, time, keep)| IndexDamage::Truncate { seg, time, keep }),
        (any::<usize>(), any::<bool>(), 0.0..1.0f64, any::<u8>()).prop_map(
            |(seg, time, at, byte)| IndexDamage::Overwrite {
                seg,
                time,
                at,
                byte
            }
        ),
    ]
}

fn segment_files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    files
}

fn base_of(path: &Path) -> i64 {
    path.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

fn at(len: usize, fraction: f64) -> usize {
    // Truncation towards zero is intended: a position inside the file.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let pos = (len as f64 * fraction) as usize;
    pos.min(len.saturating_sub(1))
}

/// Applies the damage; returns how many of the active segment's batches (with `sizes`) survive.
fn damage_active(path: &Path, sizes: &[usize], damage: &LogDamage) -> usize {
    let mut data = fs::read(path).unwrap();
    let ends: Vec<usize> = sizes
        .iter()
        .scan(0, |end, s| {
            *end += s;
            Some(*end)
        })
        .collect();
    let survivors = |cut: usize| ends.iter().filter(|&&e| e <= cut).count();
    match damage {
        LogDamage::Truncate(f) => {
            let cut = at(data.len() + 1, *f);
            data.truncate(cut);
            fs::write(path, &data).unwrap();
            survivors(cut)
        }
        LogDamage::Flip(f, bit) if !data.is_empty() => {
            let mut pos = at(data.len(), *f);
            let start = ends.iter().rev().find(|&&e| e <= pos).copied().unwrap_or(0);
            // baseOffset and partitionLeaderEpoch are outside every check (as in Kafka): move
            // such flips into the CRC.
            let rel = pos - start;
            if rel < 8 || (12..16).contains(&rel) {
                pos = start + 17 + rel % 4;
            }
            data[pos] ^= 1 << bit;
            fs::write(path, &data).unwrap();
            survivors(start)
        }
        LogDamage::Flip(..) => 0,
        LogDamage::Garbage(bytes) => {
            data.extend_from_slice(bytes);
            fs::write(path, &data).unwrap();
            sizes.len()
        }
    }
}

fn damage_index(dir: &Path, damage: &IndexDamage) {
    let (seg, time) = match damage {
        IndexDamage::Delete { seg, time }
        | IndexDamage::Truncate { seg, time, .. }
        | IndexDamage::Overwrite { seg, time, .. } => (*seg, *time),
    };
    let files = segment_files(dir, if time { "timeindex" } else { "index" });
    if files.is_empty() {
        return;
    }
    let path = &files[seg % files.len()];
    match damage {
        IndexDamage::Delete { .. } => fs::remove_file(path).unwrap(),
        // Index files are replaced by rename: a crash leaves a time index whole, missing or empty,
        // never cut after its first entries (that would be a sound but stale largest timestamp,
        // which no cheap check can tell from the truth). Offset indexes are cut anywhere: every
        // entry of one is checked against the log when it is used.
        IndexDamage::Truncate { .. } if time => fs::write(path, b"").unwrap(),
        IndexDamage::Truncate { keep, .. } => {
            let data = fs::read(path).unwrap();
            fs::write(path, &data[..at(data.len() + 1, *keep)]).unwrap();
        }
        IndexDamage::Overwrite { at: f, byte, .. } => {
            let mut data = fs::read(path).unwrap();
            if !data.is_empty() {
                let pos = at(data.len(), *f);
                data[pos] = *byte;
                fs::write(path, &data).unwrap();
            }
        }
    }
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 700,
        index_interval_bytes: 100,
        ..LogConfig::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn a_reopened_log_holds_exactly_a_valid_prefix_and_continues(
        shapes in proptest::collection::vec((1usize..4, 1usize..60), 1..50),
        log_damage in proptest::option::of(log_damage()),
        index_damages in proptest::collection::vec(index_damage(), 0..4),
        clean in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), config()).unwrap();
        let mut written: Vec<(i64, Bytes)> = Vec::new();
        for (i, (count, len)) in shapes.iter().enumerate() {
            let mut b = values_batch(*count, *len, i64::try_from(i).unwrap());
            let info = log.append(&mut b, 1).unwrap();
            written.push((info.base_offset, b.freeze()));
        }
        // A clean close trusts the active segment, so only damage indexes then.
        let log_damage = if clean { None } else { log_damage };
        if clean { log.close().unwrap() } else { log.abandon() }

        let logs = segment_files(dir.path(), "log");
        let active_base = base_of(logs.last().unwrap());
        let closed = written.iter().filter(|(base, _)| *base < active_base).count();
        let active_sizes: Vec<usize> = written[closed..].iter().map(|(_, b)| b.len()).collect();
        let expected = closed + match &log_damage {
            Some(d) => damage_active(logs.last().unwrap(), &active_sizes, d),
            None => active_sizes.len(),
        };
        for d in &index_damages {
            damage_index(dir.path(), d);
        }

        let log = Log::open(dir.path(), config()).unwrap();
        let read = read_all(&log);
        prop_assert_eq!(read.len(), expected);
        for ((base, _, bytes), (w_base, w_bytes)) in read.iter().zip(&written) {
            prop_assert_eq!(base, w_base);
            prop_assert_eq!(bytes, w_bytes);
        }
        let leo = read.last().map_or(0, |(_, last, _)| last + 1);
        prop_assert_eq!(log.log_end_offset(), leo);
        // Every offset still reads back from its batch, whatever the indexes went through.
        for (base, last, _) in &read {
            let r = log.read(*last, 1, i64::MAX).unwrap();
            prop_assert_eq!(BatchHeader::parse(&r.records).unwrap().base_offset(), *base);
        }
        // Timestamp lookups agree with the records, whatever the time indexes went through.
        let records: Vec<(i64, i64)> = read
            .iter()
            .flat_map(|(_, _, bytes)| decode_all(bytes))
            .map(|r| (r.offset, r.timestamp))
            .collect();
        let n = i64::try_from(shapes.len()).unwrap();
        for target in [0, n / 3, n / 2, n - 1, n + 5] {
            let first = records.iter().find(|(_, ts)| *ts >= target).copied();
            prop_assert_eq!(log.offset_for_timestamp(target).unwrap(), first);
        }
        let max = records.iter().map(|&(_, ts)| ts).max();
        let expected_max = max.and_then(|m| records.iter().find(|r| r.1 == m).map(|r| (m, r.0)));
        prop_assert_eq!(log.max_timestamp(), expected_max);

        let info = log.append(&mut values_batch(1, 5, 0), 2).unwrap();
        prop_assert_eq!(info.base_offset, leo);
        prop_assert_eq!(read_all(&log).len(), expected + 1);
    }
}

/// A case the property test found: an index entry of a closed segment pointing into the middle
/// of a batch (still increasing, so the index loads) must not hide the batches it claims.
#[test]
fn an_index_entry_pointing_inside_a_batch_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    for (i, (count, len)) in [(1, 1), (1, 1), (2, 39), (2, 15), (2, 18), (2, 59)]
        .into_iter()
        .enumerate()
    {
        let mut b = values_batch(count, len, i64::try_from(i).unwrap());
        log.append(&mut b, 1).unwrap();
    }
    let written = read_all(&log);
    log.abandon();
    let index = dir.path().join("00000000000000000000.index");
    let mut data = fs::read(&index).unwrap();
    // The first entry's position becomes 1: inside the first batch.
    data[4..8].copy_from_slice(&1u32.to_be_bytes());
    fs::write(&index, &data).unwrap();

    let log = Log::open(dir.path(), config()).unwrap();
    for (base, last, _) in &written {
        for offset in *base..=*last {
            let r = log.read(offset, 1, i64::MAX).unwrap();
            assert_eq!(BatchHeader::parse(&r.records).unwrap().base_offset(), *base);
        }
    }
    assert_eq!(read_all(&log), written);
    // The bad entry is gone from the index written at close.
    drop(log);
    let reloaded = fs::read(&index).unwrap();
    assert!(reloaded.chunks(8).all(|e| e[4..8] != 1u32.to_be_bytes()));
}
