use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::testing::TaskHarness;

fn job() -> PageViewCountJob {
    PageViewCountJob::new("page-views", "pageview-counts", 1_000, 200)
}

fn view(page: &str, ts: i64) -> Vec<u8> {
    format!(r#"{{"page":"{page}","user_id":"u1","timestamp":{ts}}}"#).into_bytes()
}

/// Latest output value per key, as a compacted topic would keep it.
fn latest(outputs: &[crate::task::OutputRecord]) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for o in outputs {
        let v: PageViewCount = serde_json::from_slice(o.value.as_deref().unwrap()).unwrap();
        assert_eq!(
            String::from_utf8(o.key.clone()).unwrap(),
            output_key(&v.page, v.window_start)
        );
        m.insert(output_key(&v.page, v.window_start), v.count);
    }
    m
}

#[test]
fn counts_per_page_and_window_are_emitted_as_upserts_at_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = TaskHarness::new(&job(), 0, dir.path()).unwrap();
    h.process(None, &view("/a", 10), None).unwrap();
    h.process(None, &view("/a", 20), None).unwrap();
    h.process(None, &view("/b", 30), None).unwrap();
    h.process(None, &view("/a", 1_010), None).unwrap();
    let out = h.commit().unwrap();
    assert_eq!(out.len(), 3);
    assert!(out.iter().all(|o| o.topic == "pageview-counts"));
    let m = latest(&out);
    assert_eq!(m["/a@0"], 2);
    assert_eq!(m["/b@0"], 1);
    assert_eq!(m["/a@1000"], 1);
    // Nothing changed: nothing emitted.
    assert!(h.commit().unwrap().is_empty());
}

#[test]
fn late_events_within_grace_count_and_later_ones_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = TaskHarness::new(&job(), 0, dir.path()).unwrap();
    h.process(None, &view("/a", 500), None).unwrap();
    h.process(None, &view("/a", 1_150), None).unwrap(); // stream time 1150 < 1000 + 200
    h.process(None, &view("/a", 900), None).unwrap(); // late but within grace
    h.process(None, &view("/a", 1_200), None).unwrap(); // window [0,1000) now closed
    h.process(None, &view("/a", 999), None).unwrap(); // too late
    assert_eq!(h.skipped(), 1);
    let m = latest(&h.commit().unwrap());
    assert_eq!(m["/a@0"], 2);
    assert_eq!(m["/a@1000"], 2);
}

#[test]
fn closed_windows_are_expired_from_the_store_after_their_final_upsert() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = TaskHarness::new(&job(), 0, dir.path()).unwrap();
    h.process(None, &view("/a", 10), None).unwrap();
    h.commit().unwrap();
    h.process(None, &view("/a", 5_000), None).unwrap();
    let out = h.commit().unwrap();
    assert_eq!(latest(&out).len(), 1, "only the changed window is emitted");
    let store = h.store(STORE).unwrap();
    assert_eq!(store.get(&window_key(0, "/a")).unwrap(), None);
    assert!(store.get(&window_key(5_000, "/a")).unwrap().is_some());
}

#[test]
fn malformed_events_are_skipped_and_the_record_timestamp_is_the_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = TaskHarness::new(&job(), 0, dir.path()).unwrap();
    h.process(None, b"not json", Some(1)).unwrap();
    h.process(None, br#"{"user_id":"u"}"#, Some(1)).unwrap();
    h.process(None, br#"{"page":"/x"}"#, None).unwrap();
    h.process(None, br#"{"page":"/x","extra":true}"#, Some(2_500))
        .unwrap();
    assert_eq!(h.skipped(), 3);
    assert_eq!(latest(&h.commit().unwrap())["/x@2000"], 1);
}

#[test]
fn stream_time_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut h = TaskHarness::new(&job(), 0, dir.path()).unwrap();
        h.process(None, &view("/a", 5_000), None).unwrap();
        h.commit().unwrap();
    }
    let mut h = TaskHarness::new(&job(), 0, dir.path()).unwrap();
    h.process(None, &view("/a", 10), None).unwrap();
    assert_eq!(
        h.skipped(),
        1,
        "the reopened task still knows window 0 is closed"
    );
}

proptest! {
    /// In-order events with no lateness: the final upserts equal a direct count.
    #[test]
    fn final_upserts_equal_a_direct_count(
        events in prop::collection::vec((0u8..4, 0i64..200), 1..60),
        commit_every in 1usize..10,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let job = PageViewCountJob::new("in", "out", 50, 1_000_000);
        let mut h = TaskHarness::new(&job, 0, dir.path()).unwrap();
        let mut truth: BTreeMap<String, u64> = BTreeMap::new();
        let mut outputs = Vec::new();
        for (i, (page, ts)) in events.iter().enumerate() {
            let page = format!("/p{page}");
            h.process(None, &view(&page, *ts), None).unwrap();
            *truth.entry(output_key(&page, ts - ts % 50)).or_default() += 1;
            if i % commit_every == 0 {
                outputs.extend(h.commit().unwrap());
            }
        }
        outputs.extend(h.commit().unwrap());
        prop_assert_eq!(latest(&outputs), truth);
    }
}
