//! Static membership (`group.instance.id`, KIP-345).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::LeaveGroupRequest;
use kafka_protocol::messages::leave_group_request::MemberIdentity;

use super::*;
use crate::group::classic_group::GroupState;

/// Static members join with no member id and are admitted at once, so an initial delay is what
/// gathers them into one generation.
fn delayed() -> Harness {
    Harness::with_config(GroupConfig {
        group_initial_rebalance_delay_ms: 3_000,
        ..config()
    })
}

/// A Stable group of static members `instance-0..n`. Returns member ids (in instance order), the
/// leader's member id and the generation.
async fn static_group(h: &Harness, n: usize) -> (Vec<String>, String, i32) {
    let joins: Vec<_> = (0..n)
        .map(|i| h.spawn_join(join_req("g", "", Some(&format!("instance-{i}"))), 9))
        .collect();
    let mut responses = Vec::new();
    for join in joins {
        responses.push(join.await.unwrap());
    }
    let ids: Vec<String> = responses.iter().map(|r| r.member_id.to_string()).collect();
    let (_, generation) = h.sync_all("g", &responses).await;
    (ids, responses[0].leader.to_string(), generation)
}

#[tokio::test(start_paused = true)]
async fn a_restarted_static_follower_rejoins_without_a_rebalance() {
    let h = delayed();
    let (ids, leader, generation) = static_group(&h, 2).await;
    let follower = if ids[0] == leader { 1 } else { 0 };
    let instance = format!("instance-{follower}");
    let log_before = h.log.len();
    let rejoin = h
        .spawn_join(join_req("g", "", Some(&instance)), 9)
        .await
        .unwrap();
    assert_eq!(rejoin.error_code, 0);
    assert_eq!(rejoin.generation_id, generation);
    assert_ne!(rejoin.member_id.as_str(), ids[follower]);
    // Static member ids start with the instance id, as in Kafka.
    assert!(rejoin.member_id.starts_with(&format!("{instance}-")));
    assert!(rejoin.members.is_empty());
    assert!(!rejoin.skip_assignment);
    // The replacement is persisted, and the group stays Stable.
    assert_eq!(h.log.len(), log_before + 1);
    assert_eq!(h.coordinator.lock().groups["g"].state, GroupState::Stable);
    // The new member id gets the old assignment; the old one is fenced.
    let sync = h
        .spawn_sync(
            sync_req("g", &rejoin.member_id, generation, Vec::new())
                .with_group_instance_id(Some(s(&instance))),
            5,
        )
        .await
        .unwrap();
    assert_eq!(sync.error_code, 0);
    assert_eq!(sync.assignment, assignment(&ids[follower]));
    let old = HeartbeatRequest::default()
        .with_group_id(gid("g"))
        .with_member_id(s(&ids[follower]))
        .with_group_instance_id(Some(s(&instance)))
        .with_generation_id(generation);
    assert_eq!(
        h.coordinator.heartbeat(old, 4).await.error_code,
        ResponseError::FencedInstanceId.code()
    );
    // The other member noticed nothing.
    assert_eq!(h.heartbeat("g", &leader, generation).await, 0);
}

#[tokio::test(start_paused = true)]
async fn a_restarted_static_leader_is_told_to_skip_the_assignment_from_v9() {
    let h = delayed();
    let (ids, leader, generation) = static_group(&h, 2).await;
    let index = ids.iter().position(|id| *id == leader).unwrap();
    let instance = format!("instance-{index}");
    let rejoin = h
        .spawn_join(join_req("g", "", Some(&instance)), 9)
        .await
        .unwrap();
    assert_eq!(rejoin.error_code, 0);
    assert_eq!(rejoin.generation_id, generation);
    assert!(rejoin.skip_assignment);
    assert_eq!(rejoin.leader, rejoin.member_id);
    assert_eq!(rejoin.members.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_restarted_static_leader_before_v9_is_not_told_it_leads() {
    let h = delayed();
    let (ids, leader, generation) = static_group(&h, 2).await;
    let index = ids.iter().position(|id| *id == leader).unwrap();
    let rejoin = h
        .spawn_join(join_req("g", "", Some(&format!("instance-{index}"))), 8)
        .await
        .unwrap();
    assert_eq!(rejoin.error_code, 0);
    assert_eq!(rejoin.generation_id, generation);
    // The old leader id: the client does not see itself as leader and does not reassign.
    assert_eq!(rejoin.leader.as_str(), leader);
    assert!(rejoin.members.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_static_member_with_a_stale_member_id_is_fenced() {
    let h = delayed();
    let (ids, _, _) = static_group(&h, 1).await;
    let rejoin = h
        .spawn_join(join_req("g", "", Some("instance-0")), 9)
        .await
        .unwrap();
    assert_ne!(rejoin.member_id.as_str(), ids[0]);
    let stale = h
        .spawn_join(join_req("g", &ids[0], Some("instance-0")), 9)
        .await
        .unwrap();
    assert_eq!(stale.error_code, ResponseError::FencedInstanceId.code());
    let unknown_instance = h
        .spawn_join(join_req("g", &ids[0], Some("instance-9")), 9)
        .await
        .unwrap();
    assert_eq!(
        unknown_instance.error_code,
        ResponseError::UnknownMemberId.code()
    );
}

#[tokio::test(start_paused = true)]
async fn a_static_member_changing_its_protocols_triggers_a_rebalance() {
    let h = delayed();
    let (_, _, generation) = static_group(&h, 1).await;
    let meta = subscription(&["orders"]);
    let changed = join_req_with(
        "g",
        "",
        Some("instance-0"),
        &[("sticky", meta.clone()), ("range", meta)],
    );
    let rejoin = h.spawn_join(changed, 9).await.unwrap();
    assert_eq!(rejoin.error_code, 0);
    assert_eq!(rejoin.generation_id, generation + 1);
    assert_eq!(
        rejoin.protocol_name.as_ref().map(StrBytes::as_str),
        Some("sticky")
    );
}

#[tokio::test(start_paused = true)]
async fn static_members_leave_by_instance_id_in_a_batch() {
    let h = delayed();
    let (ids, _, _) = static_group(&h, 3).await;
    let leave = LeaveGroupRequest::default()
        .with_group_id(gid("g"))
        .with_members(vec![
            MemberIdentity::default().with_group_instance_id(Some(s("instance-0"))),
            MemberIdentity::default()
                .with_member_id(s("someone-else"))
                .with_group_instance_id(Some(s("instance-1"))),
            MemberIdentity::default().with_group_instance_id(Some(s("instance-7"))),
        ]);
    let response = h.coordinator.leave_group(leave, 5).await;
    let errors: Vec<i16> = response.members.iter().map(|m| m.error_code).collect();
    assert_eq!(
        errors,
        vec![
            0,
            ResponseError::FencedInstanceId.code(),
            ResponseError::UnknownMemberId.code()
        ]
    );
    let state = h.coordinator.lock();
    let group = &state.groups["g"];
    assert!(group.member(&ids[0]).is_none());
    assert!(group.member(&ids[1]).is_some());
    assert!(!group.static_members.contains_key("instance-0"));
}

#[tokio::test(start_paused = true)]
async fn a_static_member_is_removed_when_its_session_times_out() {
    let h = delayed();
    let (ids, _, _) = static_group(&h, 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(
        u64::try_from(SESSION_MS).unwrap() + 1,
    ))
    .await;
    let state = h.coordinator.lock();
    let group = &state.groups["g"];
    assert!(group.member(&ids[0]).is_none());
    assert!(group.static_members.is_empty());
    assert_eq!(group.state, GroupState::Empty);
}

#[tokio::test(start_paused = true)]
async fn a_static_member_missing_a_rebalance_keeps_its_place_in_the_next_generation() {
    let h = delayed();
    let (ids, leader, generation) = static_group(&h, 2).await;
    let absent = if ids[0] == leader { 1 } else { 0 };
    let absent_id = ids[absent].clone();
    // The absent member keeps heartbeating (so its session does not expire) but does not rejoin.
    let keep_alive = {
        let coordinator = h.coordinator.clone();
        let instance = format!("instance-{absent}");
        tokio::spawn(async move {
            for _ in 0..8 {
                tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                let req = HeartbeatRequest::default()
                    .with_group_id(gid("g"))
                    .with_member_id(s(&absent_id))
                    .with_group_instance_id(Some(s(&instance)))
                    .with_generation_id(generation);
                coordinator.heartbeat(req, 4).await;
            }
        })
    };
    let leader_instance = format!("instance-{}", 1 - absent);
    // The leader rejoins (a leader's JoinGroup always rebalances); the other member does not.
    let meta = subscription(&["orders", "payments"]);
    let changed = join_req_with("g", &leader, Some(&leader_instance), &[("range", meta)]);
    let response = h.spawn_join(changed, 9).await.unwrap();
    assert_eq!(response.error_code, 0);
    assert_eq!(response.generation_id, generation + 1);
    assert_eq!(response.leader.as_str(), leader);
    // The absent static member is still listed, with its last metadata.
    let listed: Vec<&str> = response
        .members
        .iter()
        .map(|m| m.member_id.as_str())
        .collect();
    assert!(listed.contains(&ids[absent].as_str()), "{listed:?}");
    assert_eq!(response.members.len(), 2);
    keep_alive.await.unwrap();
}
