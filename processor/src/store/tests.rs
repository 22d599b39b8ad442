use super::*;

fn open(dir: &tempfile::TempDir) -> LocalStore {
    LocalStore::open("counts", &dir.path().join("counts").join("0.redb")).unwrap()
}

#[test]
fn reads_see_uncommitted_writes_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(&dir);
    s.put(b"a", b"1").unwrap();
    assert_eq!(s.get(b"a").unwrap(), Some(&b"1"[..]));
    s.delete(b"a").unwrap();
    assert_eq!(s.get(b"a").unwrap(), None);
    assert_eq!(s.dirty_len(), 1);
}

#[test]
fn uncommitted_writes_are_lost_on_reopen_and_committed_ones_survive_with_their_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let cp = Checkpoint {
        absorbed: Some(42),
        changelog_offset: Some(7),
    };
    {
        let mut s = open(&dir);
        s.put(b"kept", b"v").unwrap();
        s.commit(cp).unwrap();
        s.put(b"lost", b"v").unwrap();
    }
    let mut s = open(&dir);
    assert_eq!(s.checkpoint().unwrap(), cp);
    assert_eq!(s.get(b"kept").unwrap(), Some(&b"v"[..]));
    assert_eq!(s.get(b"lost").unwrap(), None);
}

#[test]
fn a_fresh_store_has_an_empty_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(open(&dir).checkpoint().unwrap(), Checkpoint::default());
}

#[test]
fn range_merges_the_file_with_the_overlay() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(&dir);
    for k in [b"a", b"b", b"c", b"d"] {
        s.put(k, b"old").unwrap();
    }
    s.commit(Checkpoint::default()).unwrap();
    s.delete(b"b").unwrap();
    s.put(b"c", b"new").unwrap();
    s.put(b"bb", b"added").unwrap();
    let got = s.range(b"a", b"d").unwrap();
    let want: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"a".to_vec(), b"old".to_vec()),
        (b"bb".to_vec(), b"added".to_vec()),
        (b"c".to_vec(), b"new".to_vec()),
    ];
    assert_eq!(got, want);
    assert!(s.range(b"d", b"a").unwrap().is_empty());
}

#[test]
fn reserved_keys_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(&dir);
    assert!(matches!(
        s.put(b"\0x", b"v"),
        Err(StoreError::ReservedKey { .. })
    ));
    assert!(matches!(
        s.delete(b"\0"),
        Err(StoreError::ReservedKey { .. })
    ));
}

#[test]
fn clear_drops_entries_and_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(&dir);
    s.put(b"a", b"1").unwrap();
    s.commit(Checkpoint {
        absorbed: Some(1),
        changelog_offset: Some(1),
    })
    .unwrap();
    s.clear().unwrap();
    assert_eq!(s.get(b"a").unwrap(), None);
    assert_eq!(s.checkpoint().unwrap(), Checkpoint::default());
}

#[test]
fn the_read_cache_is_bounded_and_stays_correct() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = open(&dir);
        for i in 0..20u8 {
            s.put(&[b'k', i], &[i]).unwrap();
        }
        s.commit(Checkpoint::default()).unwrap();
    }
    let mut s = open(&dir);
    s.cache_limit = 4;
    for i in 0..20u8 {
        assert_eq!(s.get(&[b'k', i]).unwrap(), Some(&[i][..]));
        assert!(s.cache.len() <= 4);
    }
}
