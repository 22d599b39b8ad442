//! `NOT_COORDINATOR` answers for every group API, shaped per version: what a broker that does not
//! lead the offsets partition says, so that clients look the coordinator up again
//! (FindCoordinator) and retry there.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteResponse, OffsetFetchRequest,
    OffsetFetchResponse, SyncGroupResponse,
};

use super::outcome::{JoinOutcome, SyncOutcome};

fn code() -> i16 {
    ResponseError::NotCoordinator.code()
}

pub(super) fn join_group(req: &JoinGroupRequest, version: i16) -> JoinGroupResponse {
    JoinOutcome::error(code(), req.member_id.as_str()).into_response(version)
}

pub(super) fn sync_group(version: i16) -> SyncGroupResponse {
    SyncOutcome::error(code()).into_response(version)
}

pub(super) fn heartbeat() -> HeartbeatResponse {
    HeartbeatResponse::default().with_error_code(code())
}

pub(super) fn leave_group() -> LeaveGroupResponse {
    LeaveGroupResponse::default().with_error_code(code())
}

pub(super) fn offset_delete() -> OffsetDeleteResponse {
    OffsetDeleteResponse::default().with_error_code(code())
}

/// Every partition of the commit gets the error (OffsetCommit has no top-level error code).
pub(super) fn offset_commit(req: &OffsetCommitRequest) -> OffsetCommitResponse {
    let topics = req
        .topics
        .iter()
        .map(|t| {
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code())
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// v8+: per group; v2-7: the top-level error code; v1 has none, so per requested partition.
pub(super) fn offset_fetch(req: &OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    if version >= 8 {
        let groups = req
            .groups
            .iter()
            .map(|g| {
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id.clone())
                    .with_error_code(code())
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    if version >= 2 {
        return OffsetFetchResponse::default().with_error_code(code());
    }
    let topics = req
        .topics
        .iter()
        .flatten()
        .map(|t| {
            OffsetFetchResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partition_indexes
                        .iter()
                        .map(|&p| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(-1)
                                .with_error_code(code())
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

pub(super) fn describe_groups(req: &DescribeGroupsRequest) -> DescribeGroupsResponse {
    let groups = req
        .groups
        .iter()
        .map(|id| {
            DescribedGroup::default()
                .with_group_id(id.clone())
                .with_error_code(code())
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub(super) fn delete_groups(req: &DeleteGroupsRequest) -> DeleteGroupsResponse {
    let results = req
        .groups_names
        .iter()
        .map(|id| {
            DeletableGroupResult::default()
                .with_group_id(id.clone())
                .with_error_code(code())
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}
