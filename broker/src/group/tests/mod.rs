//! Scenario tests of the coordinator, driven with request structs as the API layer would.
//!
//! Every test runs on tokio's paused clock with the coordinator's timer loop spawned, so session and
//! rebalance timeouts happen as soon as the test is idle, without real waiting.

mod admin;
mod encoding;
mod membership;
mod offsets;
mod placement;
mod props;
mod static_members;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerProtocolSubscription, GroupId, HeartbeatRequest, JoinGroupRequest, JoinGroupResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{ClientInfo, GroupConfig, GroupCoordinator, MemoryCoordinatorLog, PartitionLookup};

pub(super) const SESSION_MS: i32 = 10_000;
pub(super) const REBALANCE_MS: i32 = 20_000;

/// Topics `orders` (3 partitions) and `payments` (2 partitions).
pub(super) struct Topics(HashMap<&'static str, i32>);

impl PartitionLookup for Topics {
    fn partition_exists(&self, topic: &str, partition: i32) -> bool {
        self.0
            .get(topic)
            .is_some_and(|&n| (0..n).contains(&partition))
    }
}

pub(super) fn topics() -> Arc<Topics> {
    Arc::new(Topics(HashMap::from([("orders", 3), ("payments", 2)])))
}

/// The test config: Kafka's defaults, but no initial rebalance delay.
pub(super) fn config() -> GroupConfig {
    GroupConfig {
        group_initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    }
}

/// A coordinator over a memory log with its timer loop running.
pub(super) struct Harness {
    pub(super) coordinator: Arc<GroupCoordinator>,
    pub(super) log: Arc<MemoryCoordinatorLog>,
    config: GroupConfig,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Harness {
    pub(super) fn new() -> Self {
        Self::with_config(config())
    }

    pub(super) fn with_config(config: GroupConfig) -> Self {
        Self::on_log(Arc::new(MemoryCoordinatorLog::new()), config)
    }

    fn on_log(log: Arc<MemoryCoordinatorLog>, config: GroupConfig) -> Self {
        let coordinator = Arc::new(
            GroupCoordinator::new(log.clone(), topics(), config.clone()).expect("replay succeeds"),
        );
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let coordinator = coordinator.clone();
            let shutdown = shutdown.clone();
            async move { coordinator.run(shutdown).await }
        });
        Self {
            coordinator,
            log,
            config,
            shutdown,
            task,
        }
    }

    /// Stops this coordinator and starts a new one on the same log, as a broker restart would.
    pub(super) async fn restart(&mut self) {
        self.shutdown.cancel();
        let task = std::mem::replace(&mut self.task, tokio::spawn(async {}));
        task.await.expect("timer loop ends cleanly");
        *self = Self::on_log(self.log.clone(), self.config.clone());
    }

    pub(super) fn spawn_join(
        &self,
        req: JoinGroupRequest,
        version: i16,
    ) -> JoinHandle<JoinGroupResponse> {
        let coordinator = self.coordinator.clone();
        tokio::spawn(async move {
            let client = ClientInfo {
                client_id: "client".into(),
                client_host: "/127.0.0.1".into(),
            };
            coordinator
                .join_group_with_client(req, version, client)
                .await
        })
    }

    pub(super) fn spawn_sync(
        &self,
        req: SyncGroupRequest,
        version: i16,
    ) -> JoinHandle<SyncGroupResponse> {
        let coordinator = self.coordinator.clone();
        tokio::spawn(async move { coordinator.sync_group(req, version).await })
    }

    /// Gets a member id the KIP-394 way (v4+): the first JoinGroup is refused with one.
    pub(super) async fn member_id(&self, group: &str) -> String {
        let response = self
            .spawn_join(join_req(group, "", None), 9)
            .await
            .expect("join task");
        assert_eq!(response.error_code, ResponseError::MemberIdRequired.code());
        assert!(response.member_id.starts_with("client-"));
        response.member_id.to_string()
    }

    pub(super) async fn heartbeat(&self, group: &str, member_id: &str, generation_id: i32) -> i16 {
        let req = HeartbeatRequest::default()
            .with_group_id(gid(group))
            .with_member_id(s(member_id))
            .with_generation_id(generation_id);
        self.coordinator.heartbeat(req, 4).await.error_code
    }

    /// Builds a Stable group of `n` dynamic members through JoinGroup and SyncGroup; the leader
    /// assigns `assignment(member_id)` to each. Returns the member ids (leader first) and generation.
    pub(super) async fn stable_group(&self, group: &str, n: usize) -> (Vec<String>, i32) {
        let mut ids = Vec::new();
        for _ in 0..n {
            ids.push(self.member_id(group).await);
        }
        let joins: Vec<_> = ids
            .iter()
            .map(|id| self.spawn_join(join_req(group, id, None), 9))
            .collect();
        let mut responses = Vec::new();
        for join in joins {
            responses.push(join.await.expect("join task"));
        }
        self.sync_all(group, &responses).await
    }

    /// Sends every member's SyncGroup after a completed join phase (followers first), the leader
    /// assigning `assignment(member_id)`. Returns member ids (leader first) and the generation.
    pub(super) async fn sync_all(
        &self,
        group: &str,
        joins: &[JoinGroupResponse],
    ) -> (Vec<String>, i32) {
        let generation_id = joins.first().map_or(-1, |r| r.generation_id);
        for r in joins {
            assert_eq!(r.error_code, 0, "join failed: {r:?}");
            assert_eq!(r.generation_id, generation_id);
        }
        let leader = joins
            .first()
            .map(|r| r.leader.to_string())
            .unwrap_or_default();
        let mut followers = Vec::new();
        for r in joins.iter().filter(|r| r.member_id.as_str() != leader) {
            followers.push((
                r.member_id.to_string(),
                self.spawn_sync(sync_req(group, &r.member_id, generation_id, Vec::new()), 5),
            ));
        }
        let leader_join = joins
            .iter()
            .find(|r| r.member_id.as_str() == leader)
            .expect("the leader is among the joined members");
        let assignments = leader_join
            .members
            .iter()
            .map(|m| (m.member_id.to_string(), assignment(&m.member_id)))
            .collect();
        let leader_sync = self
            .spawn_sync(sync_req(group, &leader, generation_id, assignments), 5)
            .await
            .expect("sync task");
        assert_eq!(leader_sync.error_code, 0);
        assert_eq!(leader_sync.assignment, assignment(&leader));
        let mut ids = vec![leader];
        for (id, sync) in followers {
            let sync = sync.await.expect("sync task");
            assert_eq!(sync.error_code, 0);
            assert_eq!(sync.assignment, assignment(&id));
            ids.push(id);
        }
        (ids, generation_id)
    }

    pub(super) async fn commit(
        &self,
        group: &str,
        member_id: &str,
        generation_id: i32,
        offsets: &[(&str, i32, i64)],
    ) -> OffsetCommitResponse {
        self.coordinator
            .offset_commit(commit_req(group, member_id, generation_id, offsets), 9)
            .await
    }

    /// Committed offset of one partition through OffsetFetch v7.
    pub(super) async fn committed(&self, group: &str, topic: &str, partition: i32) -> i64 {
        let response: OffsetFetchResponse = self
            .coordinator
            .offset_fetch(
                OffsetFetchRequest::default()
                    .with_group_id(gid(group))
                    .with_topics(Some(vec![
                        OffsetFetchRequestTopic::default()
                            .with_name(TopicName(s(topic)))
                            .with_partition_indexes(vec![partition]),
                    ])),
                7,
            )
            .await;
        response.topics[0].partitions[0].committed_offset
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub(super) fn s(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}

pub(super) fn gid(value: &str) -> GroupId {
    GroupId(s(value))
}

/// Consumer subscription metadata as a Kafka consumer sends it (version prefix, then v1 struct).
pub(super) fn subscription(topics: &[&str]) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(1);
    ConsumerProtocolSubscription::default()
        .with_topics(topics.iter().map(|t| s(t)).collect())
        .encode(&mut buf, 1)
        .expect("subscription encodes");
    buf.freeze()
}

/// What the test leader assigns to `member_id`.
pub(super) fn assignment(member_id: &str) -> Bytes {
    Bytes::from(format!("assignment-of-{member_id}"))
}

/// A consumer JoinGroup for the `range` protocol subscribed to `orders`.
pub(super) fn join_req(
    group: &str,
    member_id: &str,
    instance_id: Option<&str>,
) -> JoinGroupRequest {
    join_req_with(
        group,
        member_id,
        instance_id,
        &[("range", subscription(&["orders"]))],
    )
}

pub(super) fn join_req_with(
    group: &str,
    member_id: &str,
    instance_id: Option<&str>,
    protocols: &[(&str, Bytes)],
) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(gid(group))
        .with_member_id(s(member_id))
        .with_group_instance_id(instance_id.map(s))
        .with_session_timeout_ms(SESSION_MS)
        .with_rebalance_timeout_ms(REBALANCE_MS)
        .with_protocol_type(s("consumer"))
        .with_protocols(
            protocols
                .iter()
                .map(|(name, metadata)| {
                    JoinGroupRequestProtocol::default()
                        .with_name(s(name))
                        .with_metadata(metadata.clone())
                })
                .collect(),
        )
}

pub(super) fn sync_req(
    group: &str,
    member_id: &str,
    generation_id: i32,
    assignments: Vec<(String, Bytes)>,
) -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(gid(group))
        .with_member_id(s(member_id))
        .with_generation_id(generation_id)
        .with_assignments(
            assignments
                .into_iter()
                .map(|(member_id, assignment)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(StrBytes::from_string(member_id))
                        .with_assignment(assignment)
                })
                .collect(),
        )
}

pub(super) fn commit_req(
    group: &str,
    member_id: &str,
    generation_id: i32,
    offsets: &[(&str, i32, i64)],
) -> OffsetCommitRequest {
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for &(topic, partition, offset) in offsets {
        let entry = OffsetCommitRequestPartition::default()
            .with_partition_index(partition)
            .with_committed_offset(offset)
            .with_committed_metadata(Some(s("")));
        match topics.iter_mut().find(|t| t.name.as_str() == topic) {
            Some(t) => t.partitions.push(entry),
            None => topics.push(
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s(topic)))
                    .with_partitions(vec![entry]),
            ),
        }
    }
    OffsetCommitRequest::default()
        .with_group_id(gid(group))
        .with_member_id(s(member_id))
        .with_generation_id_or_member_epoch(generation_id)
        .with_topics(topics)
}

/// Every partition error code of a commit response, in order.
pub(super) fn commit_errors(response: &OffsetCommitResponse) -> Vec<i16> {
    response
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect()
}

fn assert_send<T: Send>(_: &T) {}

#[tokio::test]
async fn the_coordinator_and_its_futures_can_cross_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<GroupCoordinator>();
    let h = Harness::new();
    let c = &h.coordinator;
    assert_send(&c.join_group(JoinGroupRequest::default(), 9));
    assert_send(&c.sync_group(SyncGroupRequest::default(), 5));
    assert_send(&c.heartbeat(HeartbeatRequest::default(), 4));
    assert_send(&c.leave_group(Default::default(), 5));
    assert_send(&c.offset_commit(OffsetCommitRequest::default(), 9));
    assert_send(&c.offset_fetch(OffsetFetchRequest::default(), 9));
    assert_send(&c.list_groups(Default::default(), 5));
    assert_send(&c.describe_groups(Default::default(), 6));
    assert_send(&c.delete_groups(Default::default(), 2));
    assert_send(&c.offset_delete(Default::default(), 0));
    assert_send(&c.topic_deleted("t"));
    assert_send(&c.run(CancellationToken::new()));
}
