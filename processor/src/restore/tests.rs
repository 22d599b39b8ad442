use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::changelog::{MARKER_KEY, marker_value};

/// An in-memory changelog partition: records with offsets (gaps allowed, as after compaction).
struct FakeChangelog {
    records: Vec<ChangelogRecord>,
    log_start: i64,
    end: i64,
    batch: usize,
    cursor: usize,
    started_at: Option<i64>,
}

impl FakeChangelog {
    fn new(records: Vec<ChangelogRecord>, end: i64) -> Self {
        let log_start = records.first().map_or(end, |r| r.offset);
        Self {
            records,
            log_start,
            end,
            batch: 3,
            cursor: 0,
            started_at: None,
        }
    }
}

impl ChangelogSource for FakeChangelog {
    fn watermarks(&mut self) -> Result<(i64, i64), RuntimeError> {
        Ok((self.log_start, self.end))
    }
    fn start(&mut self, from: i64) -> Result<(), RuntimeError> {
        self.started_at = Some(from);
        self.cursor = self.records.partition_point(|r| r.offset < from);
        Ok(())
    }
    fn next_batch(&mut self) -> Result<(Vec<ChangelogRecord>, i64), RuntimeError> {
        let upto = (self.cursor + self.batch).min(self.records.len());
        let batch = self.records[self.cursor..upto].to_vec();
        self.cursor = upto;
        let next = self.records.get(self.cursor).map_or(self.end, |r| r.offset);
        Ok((batch, next))
    }
}

/// Builds changelog records from commits: each commit is its writes followed by a marker.
struct Log {
    records: Vec<ChangelogRecord>,
}

impl Log {
    fn new() -> Self {
        Self {
            records: Vec::new(),
        }
    }
    fn next_offset(&self) -> i64 {
        self.records.last().map_or(0, |r| r.offset + 1)
    }
    fn write(&mut self, key: &str, value: Option<&str>) {
        let offset = self.next_offset();
        self.records.push(ChangelogRecord {
            offset,
            key: Some(key.as_bytes().to_vec()),
            value: value.map(|v| v.as_bytes().to_vec()),
        });
    }
    fn marker(&mut self, absorbed: i64) {
        let offset = self.next_offset();
        self.records.push(ChangelogRecord {
            offset,
            key: Some(MARKER_KEY.to_vec()),
            value: Some(marker_value(absorbed).to_vec()),
        });
    }
    fn source(&self) -> FakeChangelog {
        FakeChangelog::new(self.records.clone(), self.next_offset())
    }
}

fn run(store: &mut LocalStore, source: &mut FakeChangelog) -> RestoreOutcome {
    let mut last = None;
    let outcome = restore(store, source, "p-s-changelog", 0, &mut |p| last = Some(p)).unwrap();
    let last = last.unwrap();
    assert_eq!(last.done, last.total, "progress reaches its total");
    outcome
}

fn contents(store: &LocalStore) -> BTreeMap<Vec<u8>, Vec<u8>> {
    store
        .range(b"\x01", b"\xff\xff\xff\xff")
        .unwrap()
        .into_iter()
        .collect()
}

fn open(dir: &tempfile::TempDir) -> LocalStore {
    LocalStore::open("s", &dir.path().join("s.redb")).unwrap()
}

#[test]
fn a_fresh_store_is_rebuilt_from_the_changelog_alone_and_resumes_at_the_last_marker() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::new();
    log.write("a", Some("1"));
    log.write("b", Some("1"));
    log.marker(10);
    log.write("a", Some("2"));
    log.write("b", None);
    log.marker(25);
    let mut store = open(&dir);
    let outcome = run(&mut store, &mut log.source());
    assert_eq!(outcome.checkpoint.absorbed, Some(25));
    assert_eq!(outcome.checkpoint.changelog_offset, Some(5));
    assert_eq!(outcome.records, 6);
    assert_eq!(store.get(b"a").unwrap(), Some(&b"2"[..]));
    assert_eq!(store.get(b"b").unwrap(), None);
    assert_eq!(store.checkpoint().unwrap(), outcome.checkpoint);
}

#[test]
fn the_writes_of_a_torn_commit_are_not_applied() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::new();
    log.write("a", Some("1"));
    log.marker(10);
    log.write("a", Some("2"));
    log.write("b", Some("2"));
    let mut store = open(&dir);
    let outcome = run(&mut store, &mut log.source());
    assert_eq!(outcome.checkpoint.absorbed, Some(10));
    assert_eq!(outcome.discarded, 2);
    assert_eq!(store.get(b"a").unwrap(), Some(&b"1"[..]));
    assert_eq!(store.get(b"b").unwrap(), None);
}

#[test]
fn a_local_checkpoint_limits_the_restore_to_the_changelog_tail() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::new();
    log.write("a", Some("1"));
    log.marker(10);
    let mut store = open(&dir);
    run(&mut store, &mut log.source());
    log.write("b", Some("1"));
    log.marker(20);
    let mut source = log.source();
    let outcome = run(&mut store, &mut source);
    assert_eq!(source.started_at, Some(2));
    assert_eq!(outcome.records, 2);
    assert_eq!(outcome.checkpoint.absorbed, Some(20));
    assert_eq!(store.get(b"a").unwrap(), Some(&b"1"[..]));
    assert_eq!(store.get(b"b").unwrap(), Some(&b"1"[..]));
}

#[test]
fn an_up_to_date_local_store_reads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::new();
    log.write("a", Some("1"));
    log.marker(10);
    let mut store = open(&dir);
    run(&mut store, &mut log.source());
    let mut source = log.source();
    let outcome = run(&mut store, &mut source);
    assert_eq!(source.started_at, None);
    assert_eq!(outcome.records, 0);
    assert_eq!(outcome.checkpoint.absorbed, Some(10));
}

#[test]
fn a_local_store_ahead_of_a_recreated_changelog_is_cleared() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::new();
    log.write("a", Some("1"));
    log.write("b", Some("1"));
    log.marker(10);
    let mut store = open(&dir);
    run(&mut store, &mut log.source());
    let mut recreated = Log::new();
    recreated.write("c", Some("1"));
    recreated.marker(3);
    let outcome = run(&mut store, &mut recreated.source());
    assert!(outcome.cleared_local);
    assert_eq!(outcome.checkpoint.absorbed, Some(3));
    assert_eq!(store.get(b"a").unwrap(), None);
    assert_eq!(store.get(b"c").unwrap(), Some(&b"1"[..]));
}

#[test]
fn a_malformed_record_is_an_error_naming_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::new();
    log.write("a", Some("1"));
    log.records.push(ChangelogRecord {
        offset: 1,
        key: None,
        value: Some(b"x".to_vec()),
    });
    let mut store = open(&dir);
    let err = restore(&mut store, &mut log.source(), "t", 4, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("partition 4 offset 1"), "{err}");
}

/// Compacts a log like Kafka's cleaner: below `clean_upto` (the start of the active segment, which
/// the cleaner never touches), a record is dropped when a later record below it has the same key.
/// Markers share one key, so only the latest cleaned one survives.
fn compact(records: &[ChangelogRecord], clean_upto: i64) -> Vec<ChangelogRecord> {
    let mut latest: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
    for r in records.iter().filter(|r| r.offset < clean_upto) {
        latest.insert(r.key.clone().unwrap_or_default(), r.offset);
    }
    records
        .iter()
        .filter(|r| {
            r.offset >= clean_upto || latest[&r.key.clone().unwrap_or_default()] == r.offset
        })
        .cloned()
        .collect()
}

proptest! {
    /// Whatever the commits, wherever a crash tears the last one, however much of the log has been
    /// compacted and whether the local file holds an earlier restore: the store equals the state as of
    /// the last complete commit, and resumes at that commit's absorbed offset.
    #[test]
    fn restored_state_equals_the_state_at_the_last_complete_commit(
        commits in prop::collection::vec(
            prop::collection::vec((0u8..6, prop::option::of(0u8..50)), 0..6), 1..8),
        torn in prop::collection::vec((0u8..6, prop::option::of(0u8..50)), 0..4),
        clean_fraction in 0.0f64..1.0,
        local_after in prop::option::of(0usize..8),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(&dir);
        let mut log = Log::new();
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut absorbed = 0i64;
        for (i, commit) in commits.iter().enumerate() {
            for (k, v) in commit {
                let key = format!("k{k}");
                let value = v.map(|v| v.to_string());
                log.write(&key, value.as_deref());
                match value {
                    Some(v) => model.insert(key.into_bytes(), v.into_bytes()),
                    None => model.remove(key.as_bytes()),
                };
            }
            absorbed += commit.len() as i64 + 1;
            log.marker(absorbed);
            if local_after == Some(i) {
                run(&mut store, &mut log.source());
            }
        }
        // The torn commit is at the tail, so always in the active segment.
        let committed_end = log.next_offset();
        for (k, v) in &torn {
            log.write(&format!("k{k}"), v.map(|v| v.to_string()).as_deref());
        }
        let end = log.next_offset();
        #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
        let clean_upto = (committed_end as f64 * clean_fraction) as i64;
        let compacted = compact(&log.records, clean_upto);
        let mut source = FakeChangelog::new(compacted, end);
        source.log_start = 0;
        let outcome = run(&mut store, &mut source);
        prop_assert_eq!(outcome.checkpoint.absorbed, Some(absorbed));
        prop_assert_eq!(contents(&store), model);
    }
}
