//! Results of JoinGroup and SyncGroup before they become version-specific responses.
//!
//! A parked request is answered by whichever request completes the phase, so the answer travels
//! through a channel as one of these; the waiting handler then builds the response for its own
//! request version (fields a version lacks must stay at their defaults or encoding fails).

use bytes::Bytes;
use kafka_protocol::messages::{
    JoinGroupResponse, SyncGroupResponse, join_group_response::JoinGroupResponseMember,
};
use kafka_protocol::protocol::StrBytes;

/// What a JoinGroup request gets back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JoinOutcome {
    pub(crate) error_code: i16,
    pub(crate) generation_id: i32,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol_name: Option<String>,
    pub(crate) leader: String,
    pub(crate) skip_assignment: bool,
    pub(crate) member_id: String,
    /// Only the leader gets the members: (member id, group instance id, metadata).
    pub(crate) members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinOutcome {
    /// A failed join: generation -1, no protocol, no leader.
    pub(crate) fn error(error_code: i16, member_id: &str) -> Self {
        Self {
            error_code,
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            member_id: member_id.to_owned(),
            members: Vec::new(),
        }
    }

    /// The response for JoinGroup `version`.
    pub(crate) fn into_response(self, version: i16) -> JoinGroupResponse {
        // Before v7 the protocol name is not nullable: Kafka sends "" for none.
        let protocol_name = if version >= 7 {
            self.protocol_name.map(StrBytes::from_string)
        } else {
            Some(StrBytes::from_string(
                self.protocol_name.unwrap_or_default(),
            ))
        };
        let members = self
            .members
            .into_iter()
            .map(|(member_id, instance_id, metadata)| {
                JoinGroupResponseMember::default()
                    .with_member_id(StrBytes::from_string(member_id))
                    .with_group_instance_id(if version >= 5 {
                        instance_id.map(StrBytes::from_string)
                    } else {
                        None
                    })
                    .with_metadata(metadata)
            })
            .collect();
        JoinGroupResponse::default()
            .with_error_code(self.error_code)
            .with_generation_id(self.generation_id)
            .with_protocol_type(if version >= 7 {
                self.protocol_type.map(StrBytes::from_string)
            } else {
                None
            })
            .with_protocol_name(protocol_name)
            .with_leader(StrBytes::from_string(self.leader))
            .with_skip_assignment(version >= 9 && self.skip_assignment)
            .with_member_id(StrBytes::from_string(self.member_id))
            .with_members(members)
    }
}

/// What a SyncGroup request gets back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyncOutcome {
    pub(crate) error_code: i16,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol_name: Option<String>,
    pub(crate) assignment: Bytes,
}

impl SyncOutcome {
    /// A failed sync with an empty assignment.
    pub(crate) fn error(error_code: i16) -> Self {
        Self {
            error_code,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }

    /// The response for SyncGroup `version`.
    pub(crate) fn into_response(self, version: i16) -> SyncGroupResponse {
        let (protocol_type, protocol_name) = if version >= 5 {
            (
                self.protocol_type.map(StrBytes::from_string),
                self.protocol_name.map(StrBytes::from_string),
            )
        } else {
            (None, None)
        };
        SyncGroupResponse::default()
            .with_error_code(self.error_code)
            .with_protocol_type(protocol_type)
            .with_protocol_name(protocol_name)
            .with_assignment(self.assignment)
    }
}
