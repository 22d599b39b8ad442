//! ListGroups, DescribeGroups, DeleteGroups.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{DeleteGroupsRequest, DescribeGroupsRequest, ListGroupsRequest};

use super::*;

async fn listed(h: &Harness, req: ListGroupsRequest, version: i16) -> Vec<(String, String)> {
    h.coordinator
        .list_groups(req, version)
        .await
        .groups
        .into_iter()
        .map(|g| (g.group_id.to_string(), g.group_state.to_string()))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn list_groups_filters_by_state_and_type() {
    let h = Harness::new();
    h.stable_group("running", 1).await;
    h.commit("idle", "", -1, &[("orders", 0, 1)]).await;
    let all = listed(&h, ListGroupsRequest::default(), 5).await;
    assert_eq!(
        all,
        vec![
            ("idle".into(), "Empty".into()),
            ("running".into(), "Stable".into())
        ]
    );
    let stable = ListGroupsRequest::default().with_states_filter(vec![s("stable")]);
    assert_eq!(
        listed(&h, stable, 4).await,
        vec![("running".into(), "Stable".into())]
    );
    let consumer_type = ListGroupsRequest::default().with_types_filter(vec![s("consumer")]);
    assert!(listed(&h, consumer_type, 5).await.is_empty());
    let classic_type = ListGroupsRequest::default().with_types_filter(vec![s("Classic")]);
    assert_eq!(listed(&h, classic_type, 5).await.len(), 2);
    let response = h
        .coordinator
        .list_groups(ListGroupsRequest::default(), 5)
        .await;
    let running = response
        .groups
        .iter()
        .find(|g| g.group_id.as_str() == "running")
        .unwrap();
    assert_eq!(running.protocol_type.as_str(), "consumer");
    assert_eq!(running.group_type.as_str(), "classic");
}

#[tokio::test(start_paused = true)]
async fn describe_groups_shows_members_with_metadata_and_assignment() {
    let h = Harness::new();
    let (members, _) = h.stable_group("g", 2).await;
    let req = DescribeGroupsRequest::default().with_groups(vec![gid("g"), gid("missing")]);
    let response = h.coordinator.describe_groups(req.clone(), 5).await;
    let group = &response.groups[0];
    assert_eq!(group.error_code, 0);
    assert_eq!(group.group_state.as_str(), "Stable");
    assert_eq!(group.protocol_type.as_str(), "consumer");
    assert_eq!(group.protocol_data.as_str(), "range");
    assert_eq!(group.authorized_operations, i32::MIN);
    assert_eq!(group.members.len(), 2);
    let first = &group.members[0];
    assert_eq!(first.member_id.as_str(), members[0]);
    assert_eq!(first.client_id.as_str(), "client");
    assert_eq!(first.client_host.as_str(), "/127.0.0.1");
    assert_eq!(first.member_metadata, subscription(&["orders"]));
    assert_eq!(first.member_assignment, assignment(&members[0]));
    // An unknown group is Dead before v6 and an error from v6.
    assert_eq!(response.groups[1].group_state.as_str(), "Dead");
    assert_eq!(response.groups[1].error_code, 0);
    let v6 = h
        .coordinator
        .describe_groups(req.with_include_authorized_operations(true), 6)
        .await;
    assert_eq!(
        v6.groups[1].error_code,
        ResponseError::GroupIdNotFound.code()
    );
    assert!(v6.groups[0].authorized_operations > 0);
}

#[tokio::test(start_paused = true)]
async fn delete_groups_deletes_only_empty_groups_with_their_offsets() {
    let mut h = Harness::new();
    h.stable_group("running", 1).await;
    h.commit("idle", "", -1, &[("orders", 0, 1)]).await;
    let req = DeleteGroupsRequest::default().with_groups_names(vec![
        gid("running"),
        gid("idle"),
        gid("missing"),
    ]);
    let response = h.coordinator.delete_groups(req, 2).await;
    let errors: Vec<i16> = response.results.iter().map(|r| r.error_code).collect();
    assert_eq!(
        errors,
        vec![
            ResponseError::NonEmptyGroup.code(),
            0,
            ResponseError::GroupIdNotFound.code()
        ]
    );
    assert_eq!(h.committed("idle", "orders", 0).await, -1);
    h.restart().await;
    assert_eq!(h.committed("idle", "orders", 0).await, -1);
    let state = h.coordinator.lock();
    assert!(!state.groups.contains_key("idle"));
    assert!(state.groups.contains_key("running"));
}

#[tokio::test(start_paused = true)]
async fn describe_groups_hides_metadata_while_rebalancing() {
    let h = Harness::new();
    let (members, _) = h.stable_group("g", 2).await;
    let _rejoin = h.spawn_join(join_req("g", &members[0], None), 9);
    tokio::task::yield_now().await;
    let req = DescribeGroupsRequest::default().with_groups(vec![gid("g")]);
    let response = h.coordinator.describe_groups(req, 5).await;
    let group = &response.groups[0];
    assert_eq!(group.group_state.as_str(), "PreparingRebalance");
    assert_eq!(group.protocol_data.as_str(), "");
    assert_eq!(group.members.len(), 2);
    assert!(
        group
            .members
            .iter()
            .all(|m| m.member_metadata.is_empty() && m.member_assignment.is_empty())
    );
}
