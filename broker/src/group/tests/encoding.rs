//! Every response the coordinator builds must encode at the version it was asked for: the
//! kafka-protocol encoder refuses fields a version does not have.

use bytes::BytesMut;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, LeaveGroupRequest, ListGroupsRequest,
    OffsetDeleteRequest,
};

use super::*;

fn encodes<T: Encodable + std::fmt::Debug>(response: &T, version: i16) {
    let mut buf = BytesMut::new();
    if let Err(err) = response.encode(&mut buf, version) {
        panic!("v{version} does not encode: {err}: {response:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn every_response_encodes_at_every_supported_version() {
    let h = Harness::new();
    let (members, generation) = h.stable_group("g", 2).await;
    h.commit("g", &members[0], generation, &[("orders", 0, 1)])
        .await;
    for version in 0..=9 {
        // Unknown member and a rejoin of a known follower (answered at once).
        encodes(
            &h.spawn_join(join_req("g", "x", None), version)
                .await
                .unwrap(),
            version,
        );
        encodes(
            &h.spawn_join(join_req("", "", None), version).await.unwrap(),
            version,
        );
        // Alone in its group: a static member (v5+) or v0-3 member is admitted and leads at once.
        let instance = (version >= 5).then_some("i");
        let static_join = join_req(&format!("s{version}"), "", instance);
        let joined = h.spawn_join(static_join, version).await.unwrap();
        encodes(&joined, version);
    }
    for version in 0..=5 {
        let sync = h
            .spawn_sync(sync_req("g", &members[1], generation, Vec::new()), version)
            .await
            .unwrap();
        encodes(&sync, version);
        let list = h
            .coordinator
            .list_groups(ListGroupsRequest::default(), version)
            .await;
        encodes(&list, version);
    }
    for version in 0..=4 {
        let hb = HeartbeatRequest::default()
            .with_group_id(gid("g"))
            .with_member_id(s(&members[1]))
            .with_generation_id(generation);
        encodes(&h.coordinator.heartbeat(hb, version).await, version);
    }
    for version in 0..=6 {
        let req = DescribeGroupsRequest::default()
            .with_groups(vec![gid("g"), gid("missing")])
            .with_include_authorized_operations(version >= 3);
        encodes(&h.coordinator.describe_groups(req, version).await, version);
    }
    for version in 2..=9 {
        encodes(&h.commit("g", "", -1, &[("orders", 0, 1)]).await, version);
        encodes(
            &h.coordinator
                .offset_commit(
                    commit_req("g", &members[0], generation, &[("orders", 1, 2)]),
                    version,
                )
                .await,
            version,
        );
    }
    for version in 1..=9 {
        let req = if version >= 8 {
            OffsetFetchRequest::default().with_groups(vec![
                OffsetFetchRequestGroup::default().with_group_id(gid("g")),
            ])
        } else {
            OffsetFetchRequest::default()
                .with_group_id(gid("g"))
                .with_topics(if version >= 2 { None } else { Some(Vec::new()) })
        };
        encodes(&h.coordinator.offset_fetch(req, version).await, version);
    }
    encodes(
        &h.coordinator
            .offset_delete(OffsetDeleteRequest::default().with_group_id(gid("g")), 0)
            .await,
        0,
    );
    for version in 0..=2 {
        let req = DeleteGroupsRequest::default().with_groups_names(vec![gid("g"), gid("missing")]);
        encodes(&h.coordinator.delete_groups(req, version).await, version);
    }
    // LeaveGroup last: it changes the group.
    for version in 0..=5 {
        let req = if version <= 2 {
            LeaveGroupRequest::default()
                .with_group_id(gid("g"))
                .with_member_id(s("nobody"))
        } else {
            LeaveGroupRequest::default()
                .with_group_id(gid("g"))
                .with_members(vec![MemberIdentity::default().with_member_id(s("nobody"))])
        };
        encodes(&h.coordinator.leave_group(req, version).await, version);
    }
    let missing = LeaveGroupRequest::default()
        .with_group_id(gid("missing"))
        .with_member_id(s("x"));
    encodes(&h.coordinator.leave_group(missing, 1).await, 1);
}

#[test]
fn advertised_versions_are_ones_the_protocol_crate_can_decode() {
    use crate::group::SUPPORTED_API_VERSIONS;
    use kafka_protocol::messages::ApiKey;
    use kafka_protocol::messages::{
        DeleteGroupsRequest, DescribeGroupsRequest, HeartbeatRequest, JoinGroupRequest,
        LeaveGroupRequest, ListGroupsRequest, OffsetCommitRequest, OffsetDeleteRequest,
        OffsetFetchRequest, SyncGroupRequest,
    };
    use kafka_protocol::protocol::{Message, VersionRange};
    for (key, min, max) in SUPPORTED_API_VERSIONS {
        let decodable: VersionRange = match key {
            ApiKey::OffsetCommit => OffsetCommitRequest::VERSIONS,
            ApiKey::OffsetFetch => OffsetFetchRequest::VERSIONS,
            ApiKey::JoinGroup => JoinGroupRequest::VERSIONS,
            ApiKey::Heartbeat => HeartbeatRequest::VERSIONS,
            ApiKey::LeaveGroup => LeaveGroupRequest::VERSIONS,
            ApiKey::SyncGroup => SyncGroupRequest::VERSIONS,
            ApiKey::DescribeGroups => DescribeGroupsRequest::VERSIONS,
            ApiKey::ListGroups => ListGroupsRequest::VERSIONS,
            ApiKey::DeleteGroups => DeleteGroupsRequest::VERSIONS,
            ApiKey::OffsetDelete => OffsetDeleteRequest::VERSIONS,
            other => panic!("unexpected api key {other:?}"),
        };
        assert_eq!((decodable.min, decodable.max), (min, max), "{key:?}");
    }
}
