//! OffsetCommit, OffsetFetch, OffsetDelete, replay and expiry.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::OffsetDeleteRequest;
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};

use super::*;
use crate::group::classic_group::GroupState;

#[tokio::test(start_paused = true)]
async fn a_member_commits_and_fetches_offsets() {
    let h = Harness::new();
    let (members, generation) = h.stable_group("g", 2).await;
    let response = h
        .commit(
            "g",
            &members[0],
            generation,
            &[("orders", 0, 42), ("orders", 1, 7)],
        )
        .await;
    assert_eq!(commit_errors(&response), vec![0, 0]);
    assert_eq!(h.committed("g", "orders", 0).await, 42);
    assert_eq!(h.committed("g", "orders", 1).await, 7);
    assert_eq!(h.committed("g", "orders", 2).await, -1);
    assert_eq!(h.committed("other", "orders", 0).await, -1);
}

#[tokio::test(start_paused = true)]
async fn commits_are_checked_against_the_generation_and_member() {
    let h = Harness::new();
    let (members, generation) = h.stable_group("g", 1).await;
    let errors = |r: OffsetCommitResponse| commit_errors(&r);
    assert_eq!(
        errors(
            h.commit("g", &members[0], generation - 1, &[("orders", 0, 1)])
                .await
        ),
        vec![ResponseError::IllegalGeneration.code()]
    );
    assert_eq!(
        errors(
            h.commit("g", "nobody", generation, &[("orders", 0, 1)])
                .await
        ),
        vec![ResponseError::UnknownMemberId.code()]
    );
    // Generation -1 is a commit outside group management: refused while the group has members.
    assert_eq!(
        errors(h.commit("g", "", -1, &[("orders", 0, 1)]).await),
        vec![ResponseError::UnknownMemberId.code()]
    );
    assert_eq!(h.committed("g", "orders", 0).await, -1);
}

#[tokio::test(start_paused = true)]
async fn commits_during_completing_rebalance_are_refused() {
    let h = Harness::new();
    let a = h.member_id("g").await;
    let join = h.spawn_join(join_req("g", &a, None), 9).await.unwrap();
    let response = h
        .commit("g", &a, join.generation_id, &[("orders", 0, 5)])
        .await;
    assert_eq!(
        commit_errors(&response),
        vec![ResponseError::RebalanceInProgress.code()]
    );
}

#[tokio::test(start_paused = true)]
async fn a_simple_consumer_commits_with_generation_minus_one() {
    let h = Harness::new();
    let response = h.commit("simple", "", -1, &[("payments", 1, 100)]).await;
    assert_eq!(commit_errors(&response), vec![0]);
    assert_eq!(h.committed("simple", "payments", 1).await, 100);
    let state = h.coordinator.lock();
    assert_eq!(state.groups["simple"].state, GroupState::Empty);
}

#[tokio::test(start_paused = true)]
async fn commits_to_unknown_partitions_or_with_large_metadata_are_refused_per_partition() {
    let h = Harness::new();
    let mut req = commit_req(
        "g",
        "",
        -1,
        &[("orders", 0, 1), ("orders", 9, 1), ("missing", 0, 1)],
    );
    req.topics[0].partitions[0].committed_metadata = Some(s(&"x".repeat(4097)));
    let response = h.coordinator.offset_commit(req, 9).await;
    assert_eq!(
        commit_errors(&response),
        vec![
            ResponseError::OffsetMetadataTooLarge.code(),
            ResponseError::UnknownTopicOrPartition.code(),
            ResponseError::UnknownTopicOrPartition.code()
        ]
    );
    let empty_group = commit_req("", "", -1, &[("orders", 0, 1)]);
    assert_eq!(
        commit_errors(&h.coordinator.offset_commit(empty_group, 9).await),
        vec![ResponseError::InvalidGroupId.code()]
    );
}

#[tokio::test(start_paused = true)]
async fn a_commit_that_cannot_be_persisted_is_not_acknowledged_or_visible() {
    let h = Harness::new();
    h.log.set_fail_appends(true);
    let response = h.commit("g", "", -1, &[("orders", 0, 1)]).await;
    assert_eq!(
        commit_errors(&response),
        vec![ResponseError::CoordinatorNotAvailable.code()]
    );
    assert_eq!(h.committed("g", "orders", 0).await, -1);
}

#[tokio::test(start_paused = true)]
async fn offset_fetch_with_null_topics_returns_every_committed_partition() {
    let h = Harness::new();
    h.commit(
        "g",
        "",
        -1,
        &[("orders", 2, 3), ("payments", 0, 9), ("orders", 0, 1)],
    )
    .await;
    let response = h
        .coordinator
        .offset_fetch(
            OffsetFetchRequest::default()
                .with_group_id(gid("g"))
                .with_topics(None),
            7,
        )
        .await;
    let got: Vec<(String, i32, i64)> = response
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.partition_index, p.committed_offset))
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("orders".into(), 0, 1),
            ("orders".into(), 2, 3),
            ("payments".into(), 0, 9)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn offset_fetch_v8_answers_several_groups() {
    let h = Harness::new();
    h.commit("a", "", -1, &[("orders", 0, 11)]).await;
    h.commit("b", "", -1, &[("orders", 0, 22)]).await;
    let group = |id: &str| {
        OffsetFetchRequestGroup::default()
            .with_group_id(gid(id))
            .with_topics(Some(vec![
                OffsetFetchRequestTopics::default()
                    .with_name(TopicName(s("orders")))
                    .with_partition_indexes(vec![0]),
            ]))
    };
    let req = OffsetFetchRequest::default()
        .with_groups(vec![
            group("a"),
            group("b"),
            group("c"),
            OffsetFetchRequestGroup::default()
                .with_group_id(gid("a"))
                .with_topics(None),
        ])
        .with_require_stable(true);
    let response = h.coordinator.offset_fetch(req, 8).await;
    let offsets: Vec<i64> = response.groups[..3]
        .iter()
        .map(|g| g.topics[0].partitions[0].committed_offset)
        .collect();
    assert_eq!(offsets, vec![11, 22, -1]);
    assert_eq!(
        response.groups[3].topics.len(),
        1,
        "null topics of group a: all its offsets"
    );
}

#[tokio::test(start_paused = true)]
async fn replay_restores_offsets_and_groups_after_a_restart() {
    let mut h = Harness::new();
    let (members, generation) = h.stable_group("g", 2).await;
    h.commit("g", &members[0], generation, &[("orders", 0, 42)])
        .await;
    h.commit("simple", "", -1, &[("payments", 1, 5)]).await;
    h.commit("simple", "", -1, &[("payments", 1, 6)]).await;
    h.restart().await;
    assert_eq!(h.committed("g", "orders", 0).await, 42);
    assert_eq!(h.committed("simple", "payments", 1).await, 6);
    {
        let state = h.coordinator.lock();
        let group = &state.groups["g"];
        assert_eq!(group.state, GroupState::Stable);
        assert_eq!(group.generation_id, generation);
        assert_eq!(group.members.len(), 2);
        assert_eq!(group.leader_id.as_deref(), Some(members[0].as_str()));
    }
    // Members carry on with their generation after the restart.
    assert_eq!(h.heartbeat("g", &members[1], generation).await, 0);
    let sync = h
        .spawn_sync(sync_req("g", &members[1], generation, Vec::new()), 5)
        .await
        .unwrap();
    assert_eq!(sync.assignment, assignment(&members[1]));
}

#[tokio::test(start_paused = true)]
async fn offsets_of_an_empty_group_expire_after_the_retention_time() {
    let retention_ms = 60_000;
    let h = Harness::with_config(GroupConfig {
        offsets_retention_ms: retention_ms,
        offsets_retention_check_interval_ms: 1_000,
        ..config()
    });
    h.commit("g", "", -1, &[("orders", 0, 1)]).await;
    tokio::time::sleep(std::time::Duration::from_millis(30_000)).await;
    assert_eq!(h.committed("g", "orders", 0).await, 1);
    tokio::time::sleep(std::time::Duration::from_millis(32_000)).await;
    assert_eq!(h.committed("g", "orders", 0).await, -1);
    // The group has nothing left and is gone too, also after a restart.
    assert!(!h.coordinator.lock().groups.contains_key("g"));
    let records = h.log.records();
    assert_eq!(records.iter().filter(|(_, v)| v.is_none()).count(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_running_consumer_group_keeps_offsets_of_subscribed_topics_only() {
    let h = Harness::with_config(GroupConfig {
        offsets_retention_ms: 1_000,
        offsets_retention_check_interval_ms: 500,
        ..config()
    });
    // The members subscribe to `orders` only.
    let (members, generation) = h.stable_group("g", 1).await;
    h.commit(
        "g",
        &members[0],
        generation,
        &[("orders", 0, 8), ("payments", 0, 9)],
    )
    .await;
    for _ in 0..4 {
        tokio::time::sleep(std::time::Duration::from_millis(2_000)).await;
        assert_eq!(h.heartbeat("g", &members[0], generation).await, 0);
    }
    assert_eq!(h.committed("g", "orders", 0).await, 8);
    assert_eq!(h.committed("g", "payments", 0).await, -1);
}

#[tokio::test(start_paused = true)]
async fn deleting_a_topic_drops_its_offsets() {
    let mut h = Harness::new();
    h.commit("g", "", -1, &[("orders", 0, 1), ("payments", 0, 2)])
        .await;
    h.coordinator.topic_deleted("orders").await;
    assert_eq!(h.committed("g", "orders", 0).await, -1);
    assert_eq!(h.committed("g", "payments", 0).await, 2);
    h.restart().await;
    assert_eq!(h.committed("g", "orders", 0).await, -1);
}

fn offset_delete(group: &str, topic: &str, partitions: &[i32]) -> OffsetDeleteRequest {
    OffsetDeleteRequest::default()
        .with_group_id(gid(group))
        .with_topics(vec![
            OffsetDeleteRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|&p| OffsetDeleteRequestPartition::default().with_partition_index(p))
                        .collect(),
                ),
        ])
}

#[tokio::test(start_paused = true)]
async fn offset_delete_refuses_topics_a_running_consumer_group_subscribes_to() {
    let h = Harness::new();
    let (members, generation) = h.stable_group("g", 1).await;
    h.commit(
        "g",
        &members[0],
        generation,
        &[("orders", 0, 1), ("payments", 0, 2)],
    )
    .await;
    let subscribed = h
        .coordinator
        .offset_delete(offset_delete("g", "orders", &[0]), 0)
        .await;
    assert_eq!(subscribed.error_code, 0);
    assert_eq!(
        subscribed.topics[0].partitions[0].error_code,
        ResponseError::GroupSubscribedToTopic.code()
    );
    let unsubscribed = h
        .coordinator
        .offset_delete(offset_delete("g", "payments", &[0, 5]), 0)
        .await;
    let errors: Vec<i16> = unsubscribed.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(
        errors,
        vec![0, ResponseError::UnknownTopicOrPartition.code()]
    );
    assert_eq!(h.committed("g", "orders", 0).await, 1);
    assert_eq!(h.committed("g", "payments", 0).await, -1);
}

#[tokio::test(start_paused = true)]
async fn offset_delete_of_an_empty_group_deletes_and_of_an_unknown_group_fails() {
    let mut h = Harness::new();
    h.commit("g", "", -1, &[("orders", 0, 1)]).await;
    let response = h
        .coordinator
        .offset_delete(offset_delete("g", "orders", &[0]), 0)
        .await;
    assert_eq!(response.topics[0].partitions[0].error_code, 0);
    h.restart().await;
    assert_eq!(h.committed("g", "orders", 0).await, -1);
    let unknown = h
        .coordinator
        .offset_delete(offset_delete("nope", "orders", &[0]), 0)
        .await;
    assert_eq!(unknown.error_code, ResponseError::GroupIdNotFound.code());
}

#[tokio::test(start_paused = true)]
async fn an_old_commit_with_its_own_retention_expires_at_that_time() {
    let h = Harness::with_config(GroupConfig {
        offsets_retention_check_interval_ms: 1_000,
        ..config()
    });
    let req = commit_req("g", "", -1, &[("orders", 0, 3)]).with_retention_time_ms(5_000);
    assert_eq!(
        commit_errors(&h.coordinator.offset_commit(req, 2).await),
        vec![0]
    );
    tokio::time::sleep(std::time::Duration::from_millis(4_000)).await;
    assert_eq!(h.committed("g", "orders", 0).await, 3);
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    assert_eq!(h.committed("g", "orders", 0).await, -1);
}

#[tokio::test(start_paused = true)]
async fn a_corrupt_coordinator_log_fails_start_up_with_the_record_index() {
    use crate::group::{CoordinatorLog, GroupError};
    let log = Arc::new(MemoryCoordinatorLog::new());
    log.append(vec![
        (Bytes::from_static(&[0, 2, 0, 1, b'g']), None),
        (Bytes::from_static(&[0, 1, 0]), Some(Bytes::new())),
    ])
    .unwrap();
    match GroupCoordinator::new(log, topics(), config()) {
        Err(GroupError::Corrupt { index, .. }) => assert_eq!(index, 1),
        other => panic!("expected a corrupt-record error, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn an_invalid_config_is_refused_at_start_up() {
    let bad = GroupConfig {
        group_min_session_timeout_ms: 0,
        ..config()
    };
    let log = Arc::new(MemoryCoordinatorLog::new());
    assert!(GroupCoordinator::new(log, topics(), bad).is_err());
}
