//! Join, sync, heartbeat, leave and timeouts of dynamic members.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::LeaveGroupRequest;
use kafka_protocol::messages::leave_group_request::MemberIdentity;

use super::*;
use crate::group::classic_group::GroupState;

fn code(error: ResponseError) -> i16 {
    error.code()
}

#[tokio::test(start_paused = true)]
async fn three_members_join_and_the_leader_assigns() {
    let h = Harness::new();
    let ids = [
        h.member_id("g").await,
        h.member_id("g").await,
        h.member_id("g").await,
    ];
    let joins: Vec<_> = ids
        .iter()
        .map(|id| h.spawn_join(join_req("g", id, None), 9))
        .collect();
    let mut responses = Vec::new();
    for join in joins {
        responses.push(join.await.unwrap());
    }
    let leader = responses[0].leader.clone();
    for r in &responses {
        assert_eq!(r.error_code, 0);
        assert_eq!(r.generation_id, 1);
        assert_eq!(
            r.protocol_name.as_ref().map(StrBytes::as_str),
            Some("range")
        );
        assert_eq!(
            r.protocol_type.as_ref().map(StrBytes::as_str),
            Some("consumer")
        );
        assert_eq!(r.leader, leader);
        let expected_members = if r.member_id == leader { 3 } else { 0 };
        assert_eq!(r.members.len(), expected_members);
    }
    let leader_view = responses.iter().find(|r| r.member_id == leader).unwrap();
    assert!(
        leader_view
            .members
            .iter()
            .all(|m| m.metadata == subscription(&["orders"]))
    );
    let (members, generation) = h.sync_all("g", &responses).await;
    assert_eq!(members.len(), 3);
    assert_eq!(generation, 1);
    for id in &members {
        assert_eq!(h.heartbeat("g", id, 1).await, 0);
    }
    let state = h.coordinator.lock();
    assert_eq!(state.groups["g"].state, GroupState::Stable);
    // The assignment was persisted before anyone got it.
    assert_eq!(h.log.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_fourth_member_triggers_a_rebalance_into_the_next_generation() {
    let h = Harness::new();
    let (members, generation) = h.stable_group("g", 3).await;
    let newcomer = h.member_id("g").await;
    let newcomer_join = h.spawn_join(join_req("g", &newcomer, None), 9);
    tokio::task::yield_now().await;
    for id in &members {
        assert_eq!(
            h.heartbeat("g", id, generation).await,
            code(ResponseError::RebalanceInProgress)
        );
    }
    let rejoins: Vec<_> = members
        .iter()
        .map(|id| h.spawn_join(join_req("g", id, None), 9))
        .collect();
    let mut responses = vec![newcomer_join.await.unwrap()];
    for join in rejoins {
        responses.push(join.await.unwrap());
    }
    assert!(responses.iter().all(|r| r.generation_id == generation + 1));
    // The old leader keeps leading.
    assert!(responses.iter().all(|r| r.leader.as_str() == members[0]));
    let (after, generation) = h.sync_all("g", &responses).await;
    assert_eq!(after.len(), 4);
    assert_eq!(generation, 2);
}

#[tokio::test(start_paused = true)]
async fn a_leaving_member_makes_the_others_rejoin_without_it() {
    let h = Harness::new();
    let (members, generation) = h.stable_group("g", 3).await;
    let leave = LeaveGroupRequest::default()
        .with_group_id(gid("g"))
        .with_members(vec![
            MemberIdentity::default().with_member_id(s(&members[0])),
        ]);
    let response = h.coordinator.leave_group(leave, 5).await;
    assert_eq!(response.error_code, 0);
    assert_eq!(response.members.len(), 1);
    assert_eq!(response.members[0].error_code, 0);
    assert_eq!(
        h.heartbeat("g", &members[1], generation).await,
        code(ResponseError::RebalanceInProgress)
    );
    assert_eq!(
        h.heartbeat("g", &members[0], generation).await,
        code(ResponseError::UnknownMemberId)
    );
    let rejoins: Vec<_> = members[1..]
        .iter()
        .map(|id| h.spawn_join(join_req("g", id, None), 9))
        .collect();
    let mut responses = Vec::new();
    for join in rejoins {
        responses.push(join.await.unwrap());
    }
    // The leader left, so the oldest remaining member leads.
    assert!(responses.iter().all(|r| r.leader.as_str() == members[1]));
    let (after, generation) = h.sync_all("g", &responses).await;
    assert_eq!(after.len(), 2);
    assert_eq!(generation, 2);
}

#[tokio::test(start_paused = true)]
async fn leave_group_v0_names_one_member_and_reports_at_top_level() {
    let h = Harness::new();
    let (members, _) = h.stable_group("g", 1).await;
    let leave = |id: &str| {
        LeaveGroupRequest::default()
            .with_group_id(gid("g"))
            .with_member_id(s(id))
    };
    assert_eq!(
        h.coordinator
            .leave_group(leave(&members[0]), 0)
            .await
            .error_code,
        0
    );
    assert_eq!(
        h.coordinator
            .leave_group(leave(&members[0]), 0)
            .await
            .error_code,
        code(ResponseError::UnknownMemberId)
    );
    let state = h.coordinator.lock();
    let group = &state.groups["g"];
    assert_eq!(group.state, GroupState::Empty);
    assert_eq!(group.generation_id, 2);
}

#[tokio::test(start_paused = true)]
async fn a_member_that_stops_heartbeating_is_removed_after_its_session_timeout() {
    let h = Harness::new();
    let (members, generation) = h.stable_group("g", 2).await;
    let step = std::time::Duration::from_millis(u64::try_from(SESSION_MS / 4).unwrap());
    let mut rebalancing = false;
    for _ in 0..8 {
        tokio::time::sleep(step).await;
        let error = h.heartbeat("g", &members[0], generation).await;
        if error == code(ResponseError::RebalanceInProgress) {
            rebalancing = true;
            break;
        }
        assert_eq!(error, 0);
    }
    assert!(rebalancing, "the silent member was never removed");
    let rejoin = h
        .spawn_join(join_req("g", &members[0], None), 9)
        .await
        .unwrap();
    assert_eq!(rejoin.generation_id, generation + 1);
    assert_eq!(rejoin.members.len(), 1);
    assert_eq!(
        h.heartbeat("g", &members[1], generation).await,
        code(ResponseError::UnknownMemberId)
    );
}

#[tokio::test(start_paused = true)]
async fn a_member_that_does_not_rejoin_is_dropped_at_the_rebalance_timeout() {
    let h = Harness::new();
    let (members, generation) = h.stable_group("g", 2).await;
    let started = tokio::time::Instant::now();
    // Only the first member rejoins; the other keeps heartbeating but never rejoins.
    let rejoin = h.spawn_join(join_req("g", &members[0], None), 9);
    let keep_alive = {
        let coordinator = h.coordinator.clone();
        let member = members[1].clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                let req = HeartbeatRequest::default()
                    .with_group_id(gid("g"))
                    .with_member_id(s(&member))
                    .with_generation_id(generation);
                if coordinator.heartbeat(req, 4).await.error_code
                    == ResponseError::UnknownMemberId.code()
                {
                    return;
                }
            }
        })
    };
    let response = rejoin.await.unwrap();
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(u64::try_from(REBALANCE_MS).unwrap())
    );
    assert_eq!(response.generation_id, generation + 1);
    assert_eq!(response.members.len(), 1);
    keep_alive.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_initial_delay_gathers_members_into_one_generation() {
    let h = Harness::with_config(GroupConfig {
        group_initial_rebalance_delay_ms: 3_000,
        ..config()
    });
    // v3 clients get their member id at once (no MEMBER_ID_REQUIRED).
    let first = h.spawn_join(join_req("g", "", None), 3);
    tokio::time::sleep(std::time::Duration::from_millis(2_000)).await;
    let second = h.spawn_join(join_req("g", "", None), 3);
    let (first, second) = (first.await.unwrap(), second.await.unwrap());
    assert_eq!(first.generation_id, 1);
    assert_eq!(second.generation_id, 1);
    assert_eq!(first.leader, second.leader);
    assert_ne!(first.member_id, second.member_id);
}

#[tokio::test(start_paused = true)]
async fn join_rejects_bad_requests_with_kafkas_errors() {
    let h = Harness::new();
    let h = &h;
    let join = |req, version| async move { h.spawn_join(req, version).await.unwrap().error_code };
    assert_eq!(
        join(join_req("", "", None), 9).await,
        code(ResponseError::InvalidGroupId)
    );
    assert_eq!(
        join(join_req("g", "", None).with_session_timeout_ms(10), 9).await,
        code(ResponseError::InvalidSessionTimeout)
    );
    assert_eq!(
        join(join_req("g", "nobody", None), 9).await,
        code(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        join(join_req("g", "", None).with_protocol_type(s("")), 9).await,
        code(ResponseError::InconsistentGroupProtocol)
    );
    // Refused joins leave no group behind.
    assert!(h.coordinator.lock().groups.is_empty());
    h.stable_group("g", 1).await;
    let other_protocol = join_req_with("g", "", None, &[("roundrobin", subscription(&["orders"]))]);
    assert_eq!(
        join(other_protocol, 9).await,
        code(ResponseError::InconsistentGroupProtocol)
    );
    let other_type = join_req("g", "", None).with_protocol_type(s("connect"));
    assert_eq!(
        join(other_type, 9).await,
        code(ResponseError::InconsistentGroupProtocol)
    );
}

#[tokio::test(start_paused = true)]
async fn a_full_group_refuses_new_members() {
    let h = Harness::with_config(GroupConfig {
        group_max_size: 1,
        ..config()
    });
    h.stable_group("g", 1).await;
    let response = h.spawn_join(join_req("g", "", None), 9).await.unwrap();
    assert_eq!(
        response.error_code,
        code(ResponseError::GroupMaxSizeReached)
    );
}

#[tokio::test(start_paused = true)]
async fn protocol_is_chosen_by_vote_among_common_protocols() {
    let h = Harness::new();
    let a = h.member_id("g").await;
    let b = h.member_id("g").await;
    let c = h.member_id("g").await;
    let meta = subscription(&["orders"]);
    let joins = [
        h.spawn_join(
            join_req_with(
                "g",
                &a,
                None,
                &[("range", meta.clone()), ("sticky", meta.clone())],
            ),
            9,
        ),
        h.spawn_join(
            join_req_with(
                "g",
                &b,
                None,
                &[("sticky", meta.clone()), ("range", meta.clone())],
            ),
            9,
        ),
        h.spawn_join(
            join_req_with(
                "g",
                &c,
                None,
                &[("sticky", meta.clone()), ("range", meta.clone())],
            ),
            9,
        ),
    ];
    for join in joins {
        let response = join.await.unwrap();
        assert_eq!(
            response.protocol_name.as_ref().map(StrBytes::as_str),
            Some("sticky")
        );
    }
}

#[tokio::test(start_paused = true)]
async fn sync_group_checks_generation_member_state_and_protocol() {
    let h = Harness::new();
    let (members, generation) = h.stable_group("g", 2).await;
    let h = &h;
    let sync = |req, version| async move { h.spawn_sync(req, version).await.unwrap() };
    let stale = sync(sync_req("g", &members[1], generation - 1, Vec::new()), 5).await;
    assert_eq!(stale.error_code, code(ResponseError::IllegalGeneration));
    let unknown = sync(sync_req("g", "nobody", generation, Vec::new()), 5).await;
    assert_eq!(unknown.error_code, code(ResponseError::UnknownMemberId));
    let wrong_protocol =
        sync_req("g", &members[1], generation, Vec::new()).with_protocol_name(Some(s("sticky")));
    assert_eq!(
        sync(wrong_protocol, 5).await.error_code,
        code(ResponseError::InconsistentGroupProtocol)
    );
    // A stable group answers a late SyncGroup with the stored assignment.
    let late = sync(sync_req("g", &members[1], generation, Vec::new()), 5).await;
    assert_eq!(late.error_code, 0);
    assert_eq!(late.assignment, assignment(&members[1]));
    assert_eq!(
        late.protocol_name.as_ref().map(StrBytes::as_str),
        Some("range")
    );
    // While a rebalance is prepared, SyncGroup says so.
    let _rejoin = h.spawn_join(join_req("g", &members[0], None), 9);
    tokio::task::yield_now().await;
    let during = sync(sync_req("g", &members[1], generation, Vec::new()), 5).await;
    assert_eq!(during.error_code, code(ResponseError::RebalanceInProgress));
}

#[tokio::test(start_paused = true)]
async fn a_follower_rejoining_unchanged_in_a_stable_group_gets_the_current_generation() {
    let h = Harness::new();
    let (members, generation) = h.stable_group("g", 2).await;
    let response = h
        .spawn_join(join_req("g", &members[1], None), 9)
        .await
        .unwrap();
    assert_eq!(response.error_code, 0);
    assert_eq!(response.generation_id, generation);
    assert!(response.members.is_empty());
    assert_eq!(h.heartbeat("g", &members[0], generation).await, 0);
}

#[tokio::test(start_paused = true)]
async fn a_failed_assignment_write_fails_the_sync_and_rebalances() {
    let h = Harness::new();
    let a = h.member_id("g").await;
    let join = h.spawn_join(join_req("g", &a, None), 9).await.unwrap();
    h.log.set_fail_appends(true);
    let sync = h
        .spawn_sync(
            sync_req(
                "g",
                &a,
                join.generation_id,
                vec![(a.clone(), assignment(&a))],
            ),
            5,
        )
        .await
        .unwrap();
    assert_eq!(
        sync.error_code,
        code(ResponseError::CoordinatorNotAvailable)
    );
    assert_eq!(
        h.heartbeat("g", &a, join.generation_id).await,
        code(ResponseError::RebalanceInProgress)
    );
}

#[tokio::test(start_paused = true)]
async fn a_member_that_never_syncs_is_dropped_after_the_rebalance_timeout() {
    let h = Harness::new();
    let a = h.member_id("g").await;
    let b = h.member_id("g").await;
    let (ja, jb) = (
        h.spawn_join(join_req("g", &a, None), 9),
        h.spawn_join(join_req("g", &b, None), 9),
    );
    let (ja, jb) = (ja.await.unwrap(), jb.await.unwrap());
    let (leader, follower) = if ja.leader == ja.member_id {
        (ja, jb)
    } else {
        (jb, ja)
    };
    // Only the follower syncs; the leader never does.
    let follower_sync = h
        .spawn_sync(
            sync_req("g", &follower.member_id, follower.generation_id, Vec::new()),
            5,
        )
        .await
        .unwrap();
    assert_eq!(
        follower_sync.error_code,
        code(ResponseError::RebalanceInProgress)
    );
    let state = h.coordinator.lock();
    let group = &state.groups["g"];
    assert!(group.member(&leader.member_id).is_none());
    assert_eq!(group.state, GroupState::PreparingRebalance);
}

#[tokio::test(start_paused = true)]
async fn an_unused_member_id_stops_blocking_the_rebalance_when_it_lapses() {
    let h = Harness::new();
    let (members, generation) = h.stable_group("g", 1).await;
    let started = tokio::time::Instant::now();
    // A client is handed a member id but never comes back with it.
    let _abandoned = h.member_id("g").await;
    let rejoin = h
        .spawn_join(join_req("g", &members[0], None), 9)
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(rejoin.generation_id, generation + 1);
    assert_eq!(rejoin.members.len(), 1);
    // It lapses after a session timeout, before the rebalance timeout would have ended the wait.
    assert!(waited >= std::time::Duration::from_millis(u64::try_from(SESSION_MS).unwrap()));
    assert!(waited < std::time::Duration::from_millis(u64::try_from(REBALANCE_MS).unwrap()));
}

#[tokio::test(start_paused = true)]
async fn a_client_holding_an_unused_member_id_may_leave_with_it() {
    let h = Harness::new();
    let (members, generation) = h.stable_group("g", 1).await;
    let pending = h.member_id("g").await;
    let leave = LeaveGroupRequest::default()
        .with_group_id(gid("g"))
        .with_member_id(s(&pending));
    assert_eq!(h.coordinator.leave_group(leave, 1).await.error_code, 0);
    // Without the pending member the rejoin completes at once.
    let rejoin = h
        .spawn_join(join_req("g", &members[0], None), 9)
        .await
        .unwrap();
    assert_eq!(rejoin.generation_id, generation + 1);
    assert!(h.coordinator.lock().groups["g"].pending_members.is_empty());
}

#[tokio::test(start_paused = true)]
async fn requests_for_an_unknown_group_get_unknown_member_id() {
    let h = Harness::new();
    assert_eq!(
        h.heartbeat("nope", "m", 1).await,
        code(ResponseError::UnknownMemberId)
    );
    let sync = h
        .spawn_sync(sync_req("nope", "m", 1, Vec::new()), 5)
        .await
        .unwrap();
    assert_eq!(sync.error_code, code(ResponseError::UnknownMemberId));
    let leave = LeaveGroupRequest::default()
        .with_group_id(gid("nope"))
        .with_members(vec![MemberIdentity::default().with_member_id(s("m"))]);
    assert_eq!(
        h.coordinator.leave_group(leave, 5).await.error_code,
        code(ResponseError::UnknownMemberId)
    );
}

#[tokio::test(start_paused = true)]
async fn join_group_v0_uses_the_session_timeout_as_rebalance_timeout() {
    let h = Harness::new();
    let first = h
        .spawn_join(join_req("g", "", None).with_rebalance_timeout_ms(-1), 0)
        .await
        .unwrap();
    assert_eq!(first.error_code, 0);
    assert_eq!(first.generation_id, 1);
    let state = h.coordinator.lock();
    let member = state.groups["g"].member(&first.member_id).unwrap();
    assert_eq!(member.rebalance_timeout_ms, SESSION_MS);
}

#[tokio::test(start_paused = true)]
async fn a_member_that_never_fetches_its_assignment_is_dropped_even_once_stable() {
    let h = Harness::new();
    let a = h.member_id("g").await;
    let b = h.member_id("g").await;
    let (ja, jb) = (
        h.spawn_join(join_req("g", &a, None), 9),
        h.spawn_join(join_req("g", &b, None), 9),
    );
    let (ja, jb) = (ja.await.unwrap(), jb.await.unwrap());
    let (leader, follower) = if ja.leader == ja.member_id {
        (ja, jb)
    } else {
        (jb, ja)
    };
    let generation = leader.generation_id;
    let assignments = leader
        .members
        .iter()
        .map(|m| (m.member_id.to_string(), assignment(&m.member_id)))
        .collect();
    let sync = h
        .spawn_sync(sync_req("g", &leader.member_id, generation, assignments), 5)
        .await
        .unwrap();
    assert_eq!(sync.error_code, 0);
    // The follower heartbeats but never sends SyncGroup.
    let mut follower_dropped = false;
    for _ in 0..10 {
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        let follower_hb = h.heartbeat("g", &follower.member_id, generation).await;
        let leader_hb = h.heartbeat("g", &leader.member_id, generation).await;
        if follower_hb == code(ResponseError::UnknownMemberId) {
            assert_eq!(leader_hb, code(ResponseError::RebalanceInProgress));
            follower_dropped = true;
            break;
        }
        assert_eq!(leader_hb, 0);
    }
    assert!(
        follower_dropped,
        "the member that never synced is still in the group"
    );
}

#[tokio::test(start_paused = true)]
async fn during_a_rebalance_the_size_limit_counts_members_that_rejoined() {
    let h = Harness::with_config(GroupConfig {
        group_max_size: 2,
        ..config()
    });
    let (members, generation) = h.stable_group("g", 2).await;
    // A stable full group refuses a newcomer.
    let refused = h.spawn_join(join_req("g", "", None), 3).await.unwrap();
    assert_eq!(refused.error_code, code(ResponseError::GroupMaxSizeReached));
    // Once a rebalance is under way, places go to whoever (re)joins first, as in Kafka.
    let leader_rejoin = h.spawn_join(join_req("g", &members[0], None), 9);
    tokio::task::yield_now().await;
    let newcomer = h.spawn_join(join_req("g", "", None), 3);
    tokio::task::yield_now().await;
    let late = h
        .spawn_join(join_req("g", &members[1], None), 9)
        .await
        .unwrap();
    assert_eq!(late.error_code, code(ResponseError::GroupMaxSizeReached));
    let (leader_rejoin, newcomer) = (leader_rejoin.await.unwrap(), newcomer.await.unwrap());
    assert_eq!(leader_rejoin.generation_id, generation + 1);
    assert_eq!(newcomer.generation_id, generation + 1);
    assert_eq!(leader_rejoin.members.len(), 2);
}
