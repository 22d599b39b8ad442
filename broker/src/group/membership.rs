//! SyncGroup, Heartbeat and LeaveGroup: the rest of the classic membership protocol.

use std::collections::HashMap;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, LeaveGroupRequest, LeaveGroupResponse, SyncGroupRequest,
    SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::oneshot;

use super::classic_group::{Group, GroupState, duration_ms};
use super::clock::Now;
use super::coordinator::GroupCoordinator;
use super::outcome::SyncOutcome;

/// A SyncGroup either answered at once or parked until the leader's assignment arrives.
enum SyncStep {
    Done(SyncOutcome),
    Wait(oneshot::Receiver<SyncOutcome>),
}

impl GroupCoordinator {
    /// SyncGroup (v0-5): the leader hands in the assignment; every member waits for its share.
    pub async fn sync_group(&self, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
        if !self.is_active() {
            return super::not_coordinator::sync_group(version);
        }
        let step = self.sync_step(&req);
        self.wake();
        let outcome = match step {
            SyncStep::Done(outcome) => outcome,
            SyncStep::Wait(rx) => rx
                .await
                .unwrap_or_else(|_| SyncOutcome::error(ResponseError::UnknownMemberId.code())),
        };
        outcome.into_response(version)
    }

    fn sync_step(&self, req: &SyncGroupRequest) -> SyncStep {
        let fail = |error: ResponseError| SyncStep::Done(SyncOutcome::error(error.code()));
        let member_id = req.member_id.as_str();
        let now = self.now();
        let mut state = self.lock();
        let Some(group) = state.groups.get_mut(req.group_id.as_str()) else {
            return fail(ResponseError::UnknownMemberId);
        };
        let instance_id = req.group_instance_id.as_deref();
        if let Some(error) = group.validate_member(member_id, instance_id) {
            return SyncStep::Done(SyncOutcome::error(error));
        }
        if req.generation_id != group.generation_id {
            return fail(ResponseError::IllegalGeneration);
        }
        let type_mismatch = req
            .protocol_type
            .as_ref()
            .is_some_and(|t| group.protocol_type.as_deref() != Some(t.as_str()));
        let name_mismatch = req
            .protocol_name
            .as_ref()
            .is_some_and(|n| group.protocol_name.as_deref() != Some(n.as_str()));
        if type_mismatch || name_mismatch {
            return fail(ResponseError::InconsistentGroupProtocol);
        }
        if let Some(member) = group.member_mut(member_id) {
            member.pending_sync = false;
        }
        // Kafka's SyncGroup by state: nobody syncs into an empty group; a rebalance under way means
        // the member must rejoin first; a stable group hands out what it already has; a completing
        // group parks the request until the leader's assignment arrives.
        let step = match group.state {
            GroupState::Empty | GroupState::Dead => fail(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => fail(ResponseError::RebalanceInProgress),
            GroupState::Stable => {
                refresh_session(group, member_id, now);
                if !group.members.iter().any(|m| m.pending_sync) {
                    group.rebalance_deadline = None;
                }
                SyncStep::Done(group.sync_outcome(member_id))
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(member) = group.member_mut(member_id) {
                    member.session_deadline =
                        now.instant + duration_ms(i64::from(member.session_timeout_ms));
                    if let Some(old) = member.awaiting_sync.replace(tx) {
                        let _ = old.send(SyncOutcome::error(
                            ResponseError::RebalanceInProgress.code(),
                        ));
                    }
                }
                if group.is_leader(member_id) {
                    self.complete_sync_with_leader_assignment(group, req, now);
                }
                SyncStep::Wait(rx)
            }
        };
        self.after_change(&mut state, req.group_id.as_str());
        step
    }

    /// Persists the leader's assignment, then answers the whole group. If the write fails, every
    /// member is told so and the group rebalances, as Kafka does.
    fn complete_sync_with_leader_assignment(
        &self,
        group: &mut Group,
        req: &SyncGroupRequest,
        now: Now,
    ) {
        let assignments: HashMap<String, Bytes> = req
            .assignments
            .iter()
            .filter(|a| group.member(&a.member_id).is_some())
            .map(|a| (a.member_id.to_string(), a.assignment.clone()))
            .collect();
        let previous: Vec<Bytes> = group.members.iter().map(|m| m.assignment.clone()).collect();
        for member in &mut group.members {
            member.assignment = assignments
                .get(&member.member_id)
                .cloned()
                .unwrap_or_default();
        }
        // Persist with the new assignment, but keep the old one in memory until the write has
        // succeeded: a group whose assignment is not in the log must not look Stable.
        let persisted = self.persist_group(group);
        for (member, assignment) in group.members.iter_mut().zip(previous) {
            member.assignment = assignment;
        }
        match persisted {
            Ok(()) => group.complete_sync_phase(assignments, now),
            Err(err) => {
                tracing::warn!(group_id = %group.group_id, %err, "persisting group assignment failed");
                group.reset_sync_phase(ResponseError::CoordinatorNotAvailable.code(), now);
                group.prepare_rebalance(now, self.config.group_initial_rebalance_delay_ms);
            }
        }
    }

    /// Heartbeat (v0-4): keeps the session alive; REBALANCE_IN_PROGRESS tells the member to rejoin.
    pub async fn heartbeat(&self, req: HeartbeatRequest, _version: i16) -> HeartbeatResponse {
        if !self.is_active() {
            return super::not_coordinator::heartbeat();
        }
        // A heartbeat only pushes a deadline later, so the timer loop need not be woken.
        let error = self.heartbeat_error(&req);
        HeartbeatResponse::default().with_error_code(error.map_or(0, |e| e.code()))
    }

    fn heartbeat_error(&self, req: &HeartbeatRequest) -> Option<ResponseError> {
        let now = self.now();
        let mut state = self.lock();
        let Some(group) = state.groups.get_mut(req.group_id.as_str()) else {
            return Some(ResponseError::UnknownMemberId);
        };
        let member_id = req.member_id.as_str();
        if let Some(code) = group.validate_member(member_id, req.group_instance_id.as_deref()) {
            return ResponseError::try_from_code(code);
        }
        if req.generation_id != group.generation_id {
            return Some(ResponseError::IllegalGeneration);
        }
        // During a join phase the heartbeat is how a member learns it must rejoin; the session
        // restarts anyway, so a member busy finishing its work before rejoining is not expired.
        match group.state {
            GroupState::Empty | GroupState::Dead => Some(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => {
                refresh_session(group, member_id, now);
                Some(ResponseError::RebalanceInProgress)
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                refresh_session(group, member_id, now);
                None
            }
        }
    }

    /// LeaveGroup (v0-5): v0-2 name one member; v3+ a batch, where static members may leave by
    /// instance id alone.
    pub async fn leave_group(&self, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
        if !self.is_active() {
            return super::not_coordinator::leave_group();
        }
        let identities: Vec<(String, Option<String>)> = if version <= 2 {
            vec![(req.member_id.to_string(), None)]
        } else {
            req.members
                .iter()
                .map(|m| {
                    (
                        m.member_id.to_string(),
                        m.group_instance_id.as_ref().map(ToString::to_string),
                    )
                })
                .collect()
        };
        let now = self.now();
        let results = {
            let mut state = self.lock();
            let Some(group) = state.groups.get_mut(req.group_id.as_str()) else {
                return LeaveGroupResponse::default()
                    .with_error_code(ResponseError::UnknownMemberId.code());
            };
            let results: Vec<(String, Option<String>, i16)> = identities
                .into_iter()
                .map(|(member_id, instance_id)| {
                    let error = self.leave_one(group, &member_id, instance_id.as_deref(), now);
                    (member_id, instance_id, error)
                })
                .collect();
            self.after_change(&mut state, req.group_id.as_str());
            results
        };
        self.wake();
        if version <= 2 {
            let error = results.first().map_or(0, |r| r.2);
            return LeaveGroupResponse::default().with_error_code(error);
        }
        LeaveGroupResponse::default().with_members(
            results
                .into_iter()
                .map(|(member_id, instance_id, error)| {
                    MemberResponse::default()
                        .with_member_id(StrBytes::from_string(member_id))
                        .with_group_instance_id(instance_id.map(StrBytes::from_string))
                        .with_error_code(error)
                })
                .collect(),
        )
    }

    /// Removes one leaving member; returns its error code.
    fn leave_one(
        &self,
        group: &mut Group,
        member_id: &str,
        instance_id: Option<&str>,
        now: Now,
    ) -> i16 {
        let initial_delay_ms = self.config.group_initial_rebalance_delay_ms;
        // v3+ identifies leaving members by member id, by instance id, or both; for a static member
        // the instance id decides and a mismatched member id means the caller was fenced. A member
        // id handed out by MEMBER_ID_REQUIRED but not yet used may leave too.
        let target = match instance_id {
            Some(instance) => match group.static_members.get(instance) {
                None => return ResponseError::UnknownMemberId.code(),
                Some(registered) if !member_id.is_empty() && registered != member_id => {
                    return ResponseError::FencedInstanceId.code();
                }
                Some(registered) => registered.clone(),
            },
            None if group.pending_members.remove(member_id).is_some() => {
                group.try_complete_join(now);
                return 0;
            }
            None if group.member(member_id).is_none() => {
                return ResponseError::UnknownMemberId.code();
            }
            None => member_id.to_owned(),
        };
        tracing::info!(group_id = %group.group_id, member_id = %target, "member left the group");
        group.remove_member(&target, now, initial_delay_ms);
        0
    }
}

/// Restarts the session timer of `member_id`.
pub(crate) fn refresh_session(group: &mut Group, member_id: &str, now: Now) {
    if let Some(member) = group.member_mut(member_id) {
        member.session_deadline = now.instant + duration_ms(i64::from(member.session_timeout_ms));
    }
}
