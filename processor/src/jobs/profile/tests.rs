use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::testing::TaskHarness;

fn job() -> ProfileFanoutJob {
    ProfileFanoutJob::new("user-profile-updates", "newsfeed", "search-index")
}

fn update(u: &UserProfileUpdate) -> Vec<u8> {
    serde_json::to_vec(u).unwrap()
}

fn upd(user: &str, company: Option<&str>, title: Option<&str>) -> UserProfileUpdate {
    UserProfileUpdate {
        user_id: user.to_owned(),
        company: company.map(str::to_owned),
        title: title.map(str::to_owned),
        ..UserProfileUpdate::default()
    }
}

#[test]
fn a_company_change_emits_a_newsfeed_event_and_every_change_a_search_upsert() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = TaskHarness::new(&job(), 3, dir.path()).unwrap();
    h.process(
        None,
        &update(&upd("u1", Some("Acme"), Some("Engineer"))),
        Some(1),
    )
    .unwrap();
    h.process(None, &update(&upd("u1", None, Some("Manager"))), Some(2))
        .unwrap();
    h.process(None, &update(&upd("u1", Some("Initech"), None)), Some(3))
        .unwrap();
    let out = h.commit().unwrap();
    let topics: Vec<&str> = out.iter().map(|o| o.topic.as_str()).collect();
    assert_eq!(
        topics,
        ["search-index", "search-index", "newsfeed", "search-index"]
    );
    let feed: NewsfeedEvent = serde_json::from_slice(out[2].value.as_deref().unwrap()).unwrap();
    assert_eq!(feed.kind, "company_change");
    assert_eq!(feed.event_id, "3-2");
    assert_eq!(feed.previous_company.as_deref(), Some("Acme"));
    assert_eq!(feed.company.as_deref(), Some("Initech"));
    assert_eq!(feed.at, Some(3));
    let doc: Profile = serde_json::from_slice(out[3].value.as_deref().unwrap()).unwrap();
    assert_eq!(
        doc.title.as_deref(),
        Some("Manager"),
        "partial updates keep absent fields"
    );
    assert_eq!(doc.company.as_deref(), Some("Initech"));
    assert!(out.iter().all(|o| o.key == b"u1"));
}

#[test]
fn an_update_that_changes_nothing_emits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = TaskHarness::new(&job(), 0, dir.path()).unwrap();
    h.process(None, &update(&upd("u1", Some("Acme"), None)), None)
        .unwrap();
    h.commit().unwrap();
    h.process(None, &update(&upd("u1", Some("Acme"), None)), None)
        .unwrap();
    h.process(None, &update(&upd("u1", None, None)), None)
        .unwrap();
    assert!(h.commit().unwrap().is_empty());
}

#[test]
fn a_new_user_gets_a_search_document_but_no_newsfeed_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = TaskHarness::new(&job(), 0, dir.path()).unwrap();
    h.process(None, &update(&upd("u9", Some("Acme"), None)), None)
        .unwrap();
    let out = h.commit().unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].topic, "search-index");
}

#[test]
fn malformed_updates_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = TaskHarness::new(&job(), 0, dir.path()).unwrap();
    h.process(None, b"{", None).unwrap();
    h.process(None, br#"{"name":"no user"}"#, None).unwrap();
    h.process(None, br#"{"user_id":""}"#, None).unwrap();
    assert_eq!(h.skipped(), 3);
    assert!(h.commit().unwrap().is_empty());
}

proptest! {
    /// The store's profile of every user equals the fold of that user's updates, and the last search
    /// document of every user equals it.
    #[test]
    fn the_latest_profile_is_the_fold_of_the_updates(
        updates in prop::collection::vec(
            (0u8..4, prop::option::of(0u8..3), prop::option::of(0u8..3)), 1..50),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut h = TaskHarness::new(&job(), 0, dir.path()).unwrap();
        let mut truth: BTreeMap<String, Profile> = BTreeMap::new();
        let mut search: BTreeMap<Vec<u8>, Profile> = BTreeMap::new();
        for (user, company, title) in updates {
            let u = upd(&format!("u{user}"), company.map(|c| format!("c{c}")).as_deref(), title.map(|t| format!("t{t}")).as_deref());
            let p = truth.get(&u.user_id).cloned().unwrap_or_default().merged(&u);
            truth.insert(u.user_id.clone(), p);
            h.process(None, &update(&u), None).unwrap();
        }
        for o in h.commit().unwrap() {
            if o.topic == "search-index" {
                search.insert(o.key.clone(), serde_json::from_slice(o.value.as_deref().unwrap()).unwrap());
            }
        }
        for (user, profile) in &truth {
            let stored: Profile = serde_json::from_slice(h.store(STORE).unwrap().get(user.as_bytes()).unwrap().unwrap()).unwrap();
            prop_assert_eq!(&stored, profile);
            prop_assert_eq!(&search[user.as_bytes()], profile);
        }
    }
}
