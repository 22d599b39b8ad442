//! Coordinator placement: a coordinator that is not active answers `NOT_COORDINATOR`, activation
//! reloads from the log, and offset commits wait for the log's durability.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, LeaveGroupRequest, ListGroupsRequest,
    OffsetDeleteRequest,
};

use super::*;
use crate::group::{CoordinatorLog, CoordinatorRecord, DurableFuture, GroupError};

const NOT_COORDINATOR: i16 = 16;

#[tokio::test(start_paused = true)]
async fn an_inactive_coordinator_answers_not_coordinator_to_every_group_api() {
    assert_eq!(ResponseError::NotCoordinator.code(), NOT_COORDINATOR);
    let h = Harness::new();
    let (members, generation) = h.stable_group("g", 1).await;
    h.coordinator.deactivate();
    assert!(!h.coordinator.is_active());
    let c = &h.coordinator;
    for v in [0, 9] {
        let r = c.join_group(join_req("g", &members[0], None), v).await;
        assert_eq!(r.error_code, NOT_COORDINATOR, "JoinGroup v{v}");
    }
    for v in [0, 5] {
        let r = c
            .sync_group(sync_req("g", &members[0], generation, Vec::new()), v)
            .await;
        assert_eq!(r.error_code, NOT_COORDINATOR, "SyncGroup v{v}");
    }
    let r = c
        .heartbeat(HeartbeatRequest::default().with_group_id(gid("g")), 4)
        .await;
    assert_eq!(r.error_code, NOT_COORDINATOR);
    let r = c
        .leave_group(LeaveGroupRequest::default().with_group_id(gid("g")), 5)
        .await;
    assert_eq!(r.error_code, NOT_COORDINATOR);
    let r = h
        .commit(
            "g",
            &members[0],
            generation,
            &[("orders", 0, 5), ("payments", 1, 6)],
        )
        .await;
    assert_eq!(commit_errors(&r), vec![NOT_COORDINATOR, NOT_COORDINATOR]);
    let fetch = |v: i16| {
        let mut req = OffsetFetchRequest::default()
            .with_group_id(gid("g"))
            .with_topics(Some(vec![
                OffsetFetchRequestTopic::default()
                    .with_name(TopicName(s("orders")))
                    .with_partition_indexes(vec![0]),
            ]));
        if v >= 8 {
            req.groups = vec![OffsetFetchRequestGroup::default().with_group_id(gid("g"))];
        }
        c.offset_fetch(req, v)
    };
    assert_eq!(
        fetch(1).await.topics[0].partitions[0].error_code,
        NOT_COORDINATOR
    );
    assert_eq!(fetch(7).await.error_code, NOT_COORDINATOR);
    assert_eq!(fetch(9).await.groups[0].error_code, NOT_COORDINATOR);
    let r = c
        .describe_groups(
            DescribeGroupsRequest::default().with_groups(vec![gid("g")]),
            6,
        )
        .await;
    assert_eq!(r.groups[0].error_code, NOT_COORDINATOR);
    let r = c
        .delete_groups(
            DeleteGroupsRequest::default().with_groups_names(vec![gid("g")]),
            2,
        )
        .await;
    assert_eq!(r.results[0].error_code, NOT_COORDINATOR);
    let r = c
        .offset_delete(OffsetDeleteRequest::default().with_group_id(gid("g")), 0)
        .await;
    assert_eq!(r.error_code, NOT_COORDINATOR);
    // ListGroups goes to every broker: one that coordinates nothing lists nothing.
    let r = c.list_groups(ListGroupsRequest::default(), 5).await;
    assert_eq!((r.error_code, r.groups.len()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn losing_coordination_answers_parked_joins_with_not_coordinator() {
    let h = Harness::with_config(GroupConfig {
        group_initial_rebalance_delay_ms: 3000,
        ..config()
    });
    let member = h.member_id("g").await;
    let parked = h.spawn_join(join_req("g", &member, None), 9);
    // Let the join park behind the initial rebalance delay.
    tokio::task::yield_now().await;
    assert!(!parked.is_finished());
    h.coordinator.deactivate();
    let r = parked.await.expect("join task");
    assert_eq!(r.error_code, NOT_COORDINATOR);
}

#[tokio::test(start_paused = true)]
async fn activation_reloads_what_another_coordinator_wrote_to_the_log() {
    let h = Harness::new();
    let r = h.commit("g", "", -1, &[("orders", 0, 5)]).await;
    assert_eq!(commit_errors(&r), vec![0]);
    h.coordinator.deactivate();
    // Another broker coordinates meanwhile and writes to the (replicated) log.
    let other = GroupCoordinator::new(h.log.clone(), topics(), config()).expect("replay");
    let r = other
        .offset_commit(commit_req("g", "", -1, &[("orders", 0, 99)]), 9)
        .await;
    assert_eq!(commit_errors(&r), vec![0]);
    other.deactivate();
    h.coordinator.activate().expect("load");
    assert!(h.coordinator.is_active());
    assert_eq!(h.committed("g", "orders", 0).await, 99);
}

/// A log whose durability wait can be made to hang (0), fail (1) or succeed (2).
#[derive(Default)]
struct SlowLog {
    inner: MemoryCoordinatorLog,
    mode: AtomicU8,
}

impl CoordinatorLog for SlowLog {
    fn append(&self, records: Vec<CoordinatorRecord>) -> Result<(), GroupError> {
        self.inner.append(records)
    }

    fn replay(&self) -> Result<Vec<CoordinatorRecord>, GroupError> {
        self.inner.replay()
    }

    fn wait_durable(&self) -> DurableFuture<'_> {
        match self.mode.load(Ordering::SeqCst) {
            0 => Box::pin(std::future::pending()),
            1 => Box::pin(std::future::ready(Err(GroupError::log("replica gone")))),
            _ => Box::pin(std::future::ready(Ok(()))),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn an_offset_commit_is_acknowledged_only_once_the_log_is_durable() {
    let log = Arc::new(SlowLog::default());
    let config = GroupConfig {
        offsets_commit_timeout_ms: 100,
        ..config()
    };
    let c = GroupCoordinator::new(log.clone(), topics(), config).expect("new");
    let unavailable = ResponseError::CoordinatorNotAvailable.code();
    let started = tokio::time::Instant::now();
    let r = c
        .offset_commit(commit_req("g", "", -1, &[("orders", 0, 5)]), 9)
        .await;
    assert_eq!(commit_errors(&r), vec![unavailable]);
    assert!(started.elapsed() >= Duration::from_millis(100));
    log.mode.store(1, Ordering::SeqCst);
    let r = c
        .offset_commit(commit_req("g", "", -1, &[("orders", 0, 6)]), 9)
        .await;
    assert_eq!(commit_errors(&r), vec![unavailable]);
    log.mode.store(2, Ordering::SeqCst);
    let r = c
        .offset_commit(commit_req("g", "", -1, &[("orders", 0, 7)]), 9)
        .await;
    assert_eq!(commit_errors(&r), vec![0]);
    // Refused commits never wait: an unknown partition answers at once.
    log.mode.store(0, Ordering::SeqCst);
    let r = c
        .offset_commit(commit_req("g", "", -1, &[("nope", 0, 1)]), 9)
        .await;
    assert_eq!(
        commit_errors(&r),
        vec![ResponseError::UnknownTopicOrPartition.code()]
    );
}

/// Committed offset of `orders`-`partition` for `group` through OffsetFetch v7.
async fn fetched(c: &GroupCoordinator, group: &str, partition: i32) -> i64 {
    let r = c
        .offset_fetch(
            OffsetFetchRequest::default()
                .with_group_id(gid(group))
                .with_topics(Some(vec![
                    OffsetFetchRequestTopic::default()
                        .with_name(TopicName(s("orders")))
                        .with_partition_indexes(vec![partition]),
                ])),
            7,
        )
        .await;
    r.topics[0].partitions[0].committed_offset
}

#[tokio::test(start_paused = true)]
async fn an_offset_is_visible_only_once_durable_and_a_later_durable_commit_publishes_it() {
    let log = Arc::new(SlowLog::default());
    let config = GroupConfig {
        offsets_commit_timeout_ms: 100,
        ..config()
    };
    let c = GroupCoordinator::new(log.clone(), topics(), config).expect("new");
    let r = c
        .offset_commit(commit_req("g", "", -1, &[("orders", 0, 5)]), 9)
        .await;
    assert_eq!(
        commit_errors(&r),
        vec![ResponseError::CoordinatorNotAvailable.code()]
    );
    // In the log, not yet durable: a failover could lose it, so nobody sees it.
    assert_eq!(fetched(&c, "g", 0).await, -1);
    log.mode.store(2, Ordering::SeqCst);
    let r = c
        .offset_commit(commit_req("g", "", -1, &[("orders", 1, 7)]), 9)
        .await;
    assert_eq!(commit_errors(&r), vec![0]);
    // Durable up to the later commit, so the earlier one is durable too.
    assert_eq!(fetched(&c, "g", 0).await, 5);
    assert_eq!(fetched(&c, "g", 1).await, 7);
}

#[tokio::test(start_paused = true)]
async fn a_deleted_group_is_not_resurrected_by_its_pending_offsets() {
    let log = Arc::new(SlowLog::default());
    let config = GroupConfig {
        offsets_commit_timeout_ms: 100,
        ..config()
    };
    let c = GroupCoordinator::new(log.clone(), topics(), config).expect("new");
    let r = c
        .offset_commit(commit_req("g", "", -1, &[("orders", 0, 5)]), 9)
        .await;
    assert_eq!(
        commit_errors(&r),
        vec![ResponseError::CoordinatorNotAvailable.code()]
    );
    let r = c
        .delete_groups(
            DeleteGroupsRequest::default().with_groups_names(vec![gid("g")]),
            2,
        )
        .await;
    assert_eq!(r.results[0].error_code, 0);
    log.mode.store(2, Ordering::SeqCst);
    let r = c
        .offset_commit(commit_req("other", "", -1, &[("orders", 0, 9)]), 9)
        .await;
    assert_eq!(commit_errors(&r), vec![0]);
    assert_eq!(fetched(&c, "g", 0).await, -1);
    assert_eq!(fetched(&c, "other", 0).await, 9);
    // A restart replays the log to the same answer: the tombstone came after the offset.
    let again =
        GroupCoordinator::new(log.clone(), topics(), GroupConfig::default()).expect("replay");
    assert_eq!(fetched(&again, "g", 0).await, -1);
    assert_eq!(fetched(&again, "other", 0).await, 9);
}

#[tokio::test(start_paused = true)]
async fn deleting_a_topic_removes_its_pending_offsets_in_memory_and_in_the_log() {
    let log = Arc::new(SlowLog::default());
    let config = GroupConfig {
        offsets_commit_timeout_ms: 100,
        ..config()
    };
    let c = GroupCoordinator::new(log.clone(), topics(), config).expect("new");
    let r = c
        .offset_commit(commit_req("g", "", -1, &[("orders", 0, 5)]), 9)
        .await;
    assert_eq!(
        commit_errors(&r),
        vec![ResponseError::CoordinatorNotAvailable.code()]
    );
    c.topic_deleted("orders").await;
    log.mode.store(2, Ordering::SeqCst);
    let r = c
        .offset_commit(commit_req("g", "", -1, &[("payments", 0, 3)]), 9)
        .await;
    assert_eq!(commit_errors(&r), vec![0]);
    assert_eq!(fetched(&c, "g", 0).await, -1);
    let again =
        GroupCoordinator::new(log.clone(), topics(), GroupConfig::default()).expect("replay");
    assert_eq!(fetched(&again, "g", 0).await, -1);
}
