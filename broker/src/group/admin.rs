//! ListGroups, DescribeGroups and DeleteGroups.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    GroupId, ListGroupsRequest, ListGroupsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::classic_group::{Group, GroupState, TopicPartition};
use super::coordinator::GroupCoordinator;
use super::offsets::offset_tombstones;
use super::records::RecordKey;

/// The type ListGroups v5 reports for every group here: only the classic protocol is served.
const CLASSIC_GROUP_TYPE: &str = "classic";

/// The operations a client may perform on a group, as a bit set of Kafka's `AclOperation` codes
/// (READ = 3, DELETE = 6, DESCRIBE = 8): without authorization, everything that applies to groups.
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

impl GroupCoordinator {
    /// ListGroups (v0-5), with the state filter of v4+ and the type filter of v5 (both
    /// case-insensitive, as in Kafka).
    pub async fn list_groups(&self, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
        let states: Vec<String> = if version >= 4 {
            req.states_filter.iter().map(|s| s.to_lowercase()).collect()
        } else {
            Vec::new()
        };
        let types: Vec<String> = if version >= 5 {
            req.types_filter.iter().map(|s| s.to_lowercase()).collect()
        } else {
            Vec::new()
        };
        if !types.is_empty() && !types.iter().any(|t| t == CLASSIC_GROUP_TYPE) {
            return ListGroupsResponse::default();
        }
        let state = self.lock();
        let mut groups: Vec<&Group> = state
            .groups
            .values()
            .filter(|g| states.is_empty() || states.contains(&g.state.name().to_lowercase()))
            .collect();
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        let groups = groups
            .into_iter()
            .map(|g| {
                ListedGroup::default()
                    .with_group_id(group_id(&g.group_id))
                    .with_protocol_type(StrBytes::from_string(
                        g.protocol_type.clone().unwrap_or_default(),
                    ))
                    .with_group_state(StrBytes::from_static_str(g.state.name()))
                    .with_group_type(StrBytes::from_static_str(CLASSIC_GROUP_TYPE))
            })
            .collect();
        ListGroupsResponse::default().with_groups(groups)
    }

    /// DescribeGroups (v0-6). Member metadata and assignments are shown only for a Stable group,
    /// as Kafka does. An unknown group is `Dead` before v6 and GROUP_ID_NOT_FOUND from v6.
    pub async fn describe_groups(
        &self,
        req: DescribeGroupsRequest,
        version: i16,
    ) -> DescribeGroupsResponse {
        if !self.is_active() {
            return super::not_coordinator::describe_groups(&req);
        }
        let include_operations = version >= 3 && req.include_authorized_operations;
        let state = self.lock();
        let groups = req
            .groups
            .iter()
            .map(|id| {
                let mut described = match state.groups.get(id.as_str()) {
                    Some(group) => describe(group),
                    None if version >= 6 => DescribedGroup::default()
                        .with_error_code(ResponseError::GroupIdNotFound.code())
                        .with_error_message(Some(StrBytes::from_string(format!(
                            "Group {} not found.",
                            id.as_str()
                        ))))
                        .with_group_state(StrBytes::from_static_str(GroupState::Dead.name())),
                    None => DescribedGroup::default()
                        .with_group_state(StrBytes::from_static_str(GroupState::Dead.name())),
                };
                described.group_id = id.clone();
                if include_operations {
                    described.authorized_operations = GROUP_OPERATIONS;
                }
                described
            })
            .collect();
        DescribeGroupsResponse::default().with_groups(groups)
    }

    /// DeleteGroups (v0-2): deletes empty groups with their offsets.
    pub async fn delete_groups(
        &self,
        req: DeleteGroupsRequest,
        _version: i16,
    ) -> DeleteGroupsResponse {
        if !self.is_active() {
            return super::not_coordinator::delete_groups(&req);
        }
        let mut state = self.lock();
        let results = req
            .groups_names
            .iter()
            .map(|id| {
                // Tombstones for every offset and for the group itself go to the log in one append
                // before the group disappears from memory, so a restart cannot resurrect it.
                let error = match state.groups.get(id.as_str()) {
                    _ if id.is_empty() => ResponseError::InvalidGroupId.code(),
                    None => ResponseError::GroupIdNotFound.code(),
                    Some(group) if group.state != GroupState::Empty => {
                        ResponseError::NonEmptyGroup.code()
                    }
                    Some(group) => {
                        let offsets: Vec<TopicPartition> = group.offsets.keys().cloned().collect();
                        let mut records = offset_tombstones(&group.group_id, &offsets);
                        let key = RecordKey::Group {
                            group_id: group.group_id.clone(),
                        };
                        records.push((key.encode(), None));
                        match self.append(records) {
                            Ok(()) => {
                                tracing::info!(group_id = %id.as_str(), "deleted group");
                                state.groups.remove(id.as_str());
                                // The group tombstone supersedes offsets still pending too.
                                state.drop_pending(|g, _| g == id.as_str());
                                0
                            }
                            Err(err) => {
                                tracing::warn!(group_id = %id.as_str(), %err, "deleting group failed");
                                ResponseError::CoordinatorNotAvailable.code()
                            }
                        }
                    }
                };
                DeletableGroupResult::default()
                    .with_group_id(id.clone())
                    .with_error_code(error)
            })
            .collect();
        DeleteGroupsResponse::default().with_results(results)
    }
}

fn group_id(id: &str) -> GroupId {
    GroupId(StrBytes::from_string(id.to_owned()))
}

/// A group as DescribeGroups shows it.
fn describe(group: &Group) -> DescribedGroup {
    // Kafka shows metadata, assignments and the protocol only for a Stable group: in the other
    // states they belong to a generation that is being replaced.
    let stable = group.state == GroupState::Stable;
    let protocol = group.protocol_name.clone().unwrap_or_default();
    let members = group
        .members
        .iter()
        .map(|m| {
            let member = DescribedGroupMember::default()
                .with_member_id(StrBytes::from_string(m.member_id.clone()))
                .with_group_instance_id(m.group_instance_id.clone().map(StrBytes::from_string))
                .with_client_id(StrBytes::from_string(m.client_id.clone()))
                .with_client_host(StrBytes::from_string(m.client_host.clone()));
            if stable {
                member
                    .with_member_metadata(m.metadata(&protocol).cloned().unwrap_or_default())
                    .with_member_assignment(m.assignment.clone())
            } else {
                member
            }
        })
        .collect();
    DescribedGroup::default()
        .with_group_state(StrBytes::from_static_str(group.state.name()))
        .with_protocol_type(StrBytes::from_string(
            group.protocol_type.clone().unwrap_or_default(),
        ))
        .with_protocol_data(StrBytes::from_string(if stable {
            protocol
        } else {
            String::new()
        }))
        .with_members(members)
}
