//! Random member traffic against one group: no panics, invariants after every step, and every
//! parked request is eventually answered.

use std::sync::Mutex;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::LeaveGroupRequest;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use proptest::prelude::*;

use super::*;
use crate::group::classic_group::{Group, GroupState};

const CLIENTS: usize = 4;

/// What one simulated client knows: clients 2 and 3 are static members.
#[derive(Debug, Default, Clone)]
struct Client {
    member_id: String,
    generation_id: i32,
    /// The member list from the last JoinGroup in which this client led.
    led: Vec<String>,
}

#[derive(Debug, Clone)]
enum Op {
    Join(usize, i16),
    Sync(usize),
    Heartbeat(usize),
    Leave(usize),
    Commit(usize),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..CLIENTS, prop_oneof![Just(3i16), Just(5), Just(9)]).prop_map(|(c, v)| Op::Join(c, v)),
        2 => (0..CLIENTS).prop_map(Op::Sync),
        2 => (0..CLIENTS).prop_map(Op::Heartbeat),
        1 => (0..CLIENTS).prop_map(Op::Leave),
        1 => (0..CLIENTS).prop_map(Op::Commit),
        2 => (0..15_000u64).prop_map(Op::Advance),
    ]
}

fn instance(client: usize) -> Option<String> {
    (client >= 2).then(|| format!("instance-{client}"))
}

fn check_invariants(group: &Group, last_generation: &mut i32) {
    assert!(
        group.generation_id >= *last_generation,
        "generation went back"
    );
    *last_generation = group.generation_id;
    let ids: Vec<&str> = group.members.iter().map(|m| m.member_id.as_str()).collect();
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "duplicate member ids");
    match &group.leader_id {
        Some(leader) => assert!(
            ids.contains(&leader.as_str()),
            "leader {leader} is not a member"
        ),
        None => assert!(ids.is_empty(), "members without a leader"),
    }
    for (instance, member_id) in &group.static_members {
        let member = group.member(member_id).expect("static member is a member");
        assert_eq!(member.group_instance_id.as_deref(), Some(instance.as_str()));
    }
    match group.state {
        GroupState::Empty => assert!(ids.is_empty(), "empty group with members"),
        GroupState::Stable | GroupState::CompletingRebalance => {
            assert!(!ids.is_empty(), "{:?} without members", group.state);
        }
        GroupState::PreparingRebalance | GroupState::Dead => {}
    }
    if group.state == GroupState::Stable {
        assert!(group.members.iter().all(|m| !m.is_awaiting_join()));
    }
}

async fn run(ops: Vec<Op>) {
    let h = Harness::new();
    let clients = Arc::new(Mutex::new(vec![Client::default(); CLIENTS]));
    let mut tasks: Vec<JoinHandle<()>> = Vec::new();
    let mut last_generation = 0;
    for op in ops {
        let client = match op {
            Op::Join(c, _) | Op::Sync(c) | Op::Heartbeat(c) | Op::Leave(c) | Op::Commit(c) => {
                clients.lock().unwrap()[c].clone()
            }
            Op::Advance(_) => Client::default(),
        };
        match op {
            Op::Join(c, version) => {
                let req = join_req("g", &client.member_id, instance(c).as_deref());
                let join = h.spawn_join(req, version);
                let clients = clients.clone();
                tasks.push(tokio::spawn(async move {
                    let r = join.await.expect("join task");
                    let mut clients = clients.lock().unwrap();
                    let known = &mut clients[c];
                    if r.error_code == 0 {
                        known.member_id = r.member_id.to_string();
                        known.generation_id = r.generation_id;
                        known.led = r.members.iter().map(|m| m.member_id.to_string()).collect();
                    } else if r.error_code == ResponseError::MemberIdRequired.code() {
                        known.member_id = r.member_id.to_string();
                    } else if r.error_code == ResponseError::UnknownMemberId.code()
                        || r.error_code == ResponseError::FencedInstanceId.code()
                    {
                        known.member_id.clear();
                    }
                }));
            }
            Op::Sync(c) => {
                let assignments = client
                    .led
                    .iter()
                    .map(|m| (m.clone(), assignment(m)))
                    .collect();
                let req = sync_req("g", &client.member_id, client.generation_id, assignments)
                    .with_group_instance_id(instance(c).map(StrBytes::from_string));
                let sync = h.spawn_sync(req, 5);
                tasks.push(tokio::spawn(async move {
                    sync.await.expect("sync task");
                }));
            }
            Op::Heartbeat(c) => {
                let req = HeartbeatRequest::default()
                    .with_group_id(gid("g"))
                    .with_member_id(s(&client.member_id))
                    .with_group_instance_id(instance(c).map(StrBytes::from_string))
                    .with_generation_id(client.generation_id);
                h.coordinator.heartbeat(req, 4).await;
            }
            Op::Leave(c) => {
                let req = LeaveGroupRequest::default()
                    .with_group_id(gid("g"))
                    .with_members(vec![
                        MemberIdentity::default()
                            .with_member_id(s(&client.member_id))
                            .with_group_instance_id(instance(c).map(StrBytes::from_string)),
                    ]);
                h.coordinator.leave_group(req, 5).await;
            }
            Op::Commit(_) => {
                h.commit(
                    "g",
                    &client.member_id,
                    client.generation_id,
                    &[("orders", 0, 1)],
                )
                .await;
            }
            Op::Advance(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
        }
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
        if let Some(group) = h.coordinator.lock().groups.get("g") {
            check_invariants(group, &mut last_generation);
        }
    }
    // Liveness: every parked JoinGroup and SyncGroup is answered once timeouts have run.
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(600), task)
            .await
            .expect("a parked request was never answered")
            .expect("request task");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_member_traffic_keeps_group_invariants(ops in proptest::collection::vec(op(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        runtime.block_on(run(ops));
    }
}

/// Operations on committed offsets of simple (generation -1) groups.
#[derive(Debug, Clone)]
enum OffsetOp {
    Commit(usize, i32, i64),
    DeleteGroup(usize),
    DeleteOffset(usize, i32),
    FailAppends(bool),
    Restart,
}

fn offset_op() -> impl Strategy<Value = OffsetOp> {
    prop_oneof![
        6 => (0..2usize, 0..3i32, 0..1_000i64).prop_map(|(g, p, o)| OffsetOp::Commit(g, p, o)),
        1 => (0..2usize).prop_map(OffsetOp::DeleteGroup),
        1 => (0..2usize, 0..3i32).prop_map(|(g, p)| OffsetOp::DeleteOffset(g, p)),
        1 => any::<bool>().prop_map(OffsetOp::FailAppends),
        1 => Just(OffsetOp::Restart),
    ]
}

/// Whatever the coordinator acknowledged is what it serves, before and after restarts; what it
/// refused leaves no trace.
async fn run_offsets(ops: Vec<OffsetOp>) {
    use kafka_protocol::messages::offset_delete_request::{
        OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
    };
    use kafka_protocol::messages::{DeleteGroupsRequest, OffsetDeleteRequest};
    let groups = ["a", "b"];
    let mut h = Harness::new();
    let mut model: HashMap<(usize, i32), i64> = HashMap::new();
    for op in ops {
        match op {
            OffsetOp::Commit(g, p, offset) => {
                let response = h.commit(groups[g], "", -1, &[("orders", p, offset)]).await;
                if commit_errors(&response) == [0] {
                    model.insert((g, p), offset);
                }
            }
            OffsetOp::DeleteGroup(g) => {
                let req = DeleteGroupsRequest::default().with_groups_names(vec![gid(groups[g])]);
                let response = h.coordinator.delete_groups(req, 2).await;
                if response.results[0].error_code == 0 {
                    model.retain(|&(group, _), _| group != g);
                }
            }
            OffsetOp::DeleteOffset(g, p) => {
                let req = OffsetDeleteRequest::default()
                    .with_group_id(gid(groups[g]))
                    .with_topics(vec![
                        OffsetDeleteRequestTopic::default()
                            .with_name(TopicName(s("orders")))
                            .with_partitions(vec![
                                OffsetDeleteRequestPartition::default().with_partition_index(p),
                            ]),
                    ]);
                let response = h.coordinator.offset_delete(req, 0).await;
                let deleted = response.error_code == 0
                    && response
                        .topics
                        .first()
                        .is_some_and(|t| t.partitions[0].error_code == 0);
                if deleted {
                    model.remove(&(g, p));
                }
            }
            OffsetOp::FailAppends(fail) => h.log.set_fail_appends(fail),
            OffsetOp::Restart => {
                h.log.set_fail_appends(false);
                h.restart().await;
            }
        }
        for (g, group) in groups.iter().enumerate() {
            for p in 0..3 {
                let expected = model.get(&(g, p)).copied().unwrap_or(-1);
                assert_eq!(
                    h.committed(group, "orders", p).await,
                    expected,
                    "group {group} partition {p}"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn acknowledged_offsets_survive_restarts_and_refused_ones_leave_no_trace(
        ops in proptest::collection::vec(offset_op(), 1..40)
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        runtime.block_on(run_offsets(ops));
    }
}
