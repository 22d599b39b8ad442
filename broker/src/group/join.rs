//! JoinGroup: new members (with KIP-394's MEMBER_ID_REQUIRED round trip), rejoining members, and
//! static members (KIP-345) taking over their previous member id.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use tokio::sync::oneshot;

use super::classic_group::{Group, GroupState, duration_ms};
use super::clock::Now;
use super::coordinator::{ClientInfo, GroupCoordinator};
use super::member::Member;
use super::outcome::{JoinOutcome, SyncOutcome};

/// A JoinGroup either answered at once or parked until the join phase completes.
enum JoinStep {
    Done(JoinOutcome),
    Wait(oneshot::Receiver<JoinOutcome>),
}

/// The parts of a JoinGroup request the state machine needs, owned.
struct JoinArgs {
    member_id: String,
    instance_id: Option<String>,
    protocol_type: String,
    protocols: Vec<(String, Bytes)>,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    version: i16,
    client: ClientInfo,
}

impl JoinArgs {
    fn new_member(&self, member_id: String, now: Now) -> Member {
        Member {
            member_id,
            group_instance_id: self.instance_id.clone(),
            client_id: self.client.client_id.clone(),
            client_host: self.client.client_host.clone(),
            rebalance_timeout_ms: self.rebalance_timeout_ms,
            session_timeout_ms: self.session_timeout_ms,
            protocols: self.protocols.clone(),
            assignment: Bytes::new(),
            awaiting_join: None,
            awaiting_sync: None,
            pending_sync: false,
            session_deadline: now.instant + duration_ms(i64::from(self.session_timeout_ms)),
        }
    }

    /// Takes the member's new protocols and timeouts and parks its JoinGroup.
    fn update_and_park(&self, member: &mut Member) -> oneshot::Receiver<JoinOutcome> {
        member.protocols.clone_from(&self.protocols);
        member.rebalance_timeout_ms = self.rebalance_timeout_ms;
        member.session_timeout_ms = self.session_timeout_ms;
        let (tx, rx) = oneshot::channel();
        // A member id used by two connections at once: the older JoinGroup is told to rejoin.
        if let Some(old) = member.awaiting_join.replace(tx) {
            let _ = old.send(JoinOutcome::error(
                ResponseError::RebalanceInProgress.code(),
                &member.member_id,
            ));
        }
        rx
    }
}

impl GroupCoordinator {
    /// JoinGroup (v0-9) without client details: member ids are `-<uuid>`. Prefer
    /// [`join_group_with_client`](Self::join_group_with_client).
    pub async fn join_group(&self, req: JoinGroupRequest, version: i16) -> JoinGroupResponse {
        self.join_group_with_client(req, version, ClientInfo::default())
            .await
    }

    /// JoinGroup (v0-9): joins or rejoins a member and waits until the join phase completes.
    pub async fn join_group_with_client(
        &self,
        req: JoinGroupRequest,
        version: i16,
        client: ClientInfo,
    ) -> JoinGroupResponse {
        if !self.is_active() {
            return super::not_coordinator::join_group(&req, version);
        }
        let member_id = req.member_id.to_string();
        let step = self.join_step(req, version, client);
        self.wake();
        let outcome = match step {
            JoinStep::Done(outcome) => outcome,
            JoinStep::Wait(rx) => rx.await.unwrap_or_else(|_| {
                JoinOutcome::error(ResponseError::UnknownMemberId.code(), &member_id)
            }),
        };
        outcome.into_response(version)
    }

    fn join_step(&self, req: JoinGroupRequest, version: i16, client: ClientInfo) -> JoinStep {
        // Checks run in Kafka's order, so a request with several problems gets the error a Kafka
        // broker would give: group id, session timeout, membership, then protocols.
        let group_id = req.group_id.to_string();
        let member_id = req.member_id.to_string();
        tracing::debug!(
            %group_id,
            %member_id,
            version,
            reason = req.reason.as_deref().unwrap_or_default(),
            "join group"
        );
        let fail =
            |error: ResponseError| JoinStep::Done(JoinOutcome::error(error.code(), &member_id));
        if group_id.is_empty() {
            return fail(ResponseError::InvalidGroupId);
        }
        let session_timeout_ms = req.session_timeout_ms;
        if session_timeout_ms < self.config.group_min_session_timeout_ms
            || session_timeout_ms > self.config.group_max_session_timeout_ms
        {
            return fail(ResponseError::InvalidSessionTimeout);
        }
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        let rebalance_timeout_ms = if version == 0 || req.rebalance_timeout_ms <= 0 {
            session_timeout_ms
        } else {
            req.rebalance_timeout_ms
        };
        let args = JoinArgs {
            member_id: member_id.clone(),
            instance_id: req.group_instance_id.map(|s| s.to_string()),
            protocol_type: req.protocol_type.to_string(),
            protocols: req
                .protocols
                .into_iter()
                .map(|p| (p.name.to_string(), p.metadata))
                .collect(),
            session_timeout_ms,
            rebalance_timeout_ms,
            version,
            client,
        };
        let now = self.now();
        let mut state = self.lock();
        if !state.groups.contains_key(&group_id) {
            // Only a member without an id may create a group: a member id names a member of an
            // existing group, so for a missing group it is stale (the group expired or was deleted).
            if !member_id.is_empty() {
                return fail(ResponseError::UnknownMemberId);
            }
            state
                .groups
                .insert(group_id.clone(), Group::new(group_id.clone(), now.wall_ms));
        }
        let Some(group) = state.groups.get_mut(&group_id) else {
            return fail(ResponseError::UnknownMemberId);
        };
        // A restarting static member replaces its old self, whose protocols must not constrain it.
        let joining_id = match &args.instance_id {
            Some(instance) if member_id.is_empty() => group
                .static_members
                .get(instance)
                .cloned()
                .unwrap_or_default(),
            _ => member_id.clone(),
        };
        let step = if !group.accepts_joining_member(&member_id, self.config.group_max_size) {
            // As in Kafka, a refused member id is forgotten, so it cannot hold a place either.
            if group.pending_members.remove(&member_id).is_none() {
                group.remove_member(
                    &member_id,
                    now,
                    self.config.group_initial_rebalance_delay_ms,
                );
            }
            JoinStep::Done(JoinOutcome::error(
                ResponseError::GroupMaxSizeReached.code(),
                "",
            ))
        } else if !group.supports_protocols(&args.protocol_type, &args.protocols, &joining_id) {
            fail(ResponseError::InconsistentGroupProtocol)
        } else if member_id.is_empty() {
            self.join_new_member(group, &args, now)
        } else {
            self.join_existing_member(group, &args, now)
        };
        // A join refused before anything was recorded must not leave an empty shell behind.
        let shell = group.state == GroupState::Empty
            && group.members.is_empty()
            && group.pending_members.is_empty()
            && group.offsets.is_empty()
            && group.generation_id == 0;
        if shell {
            state.groups.remove(&group_id);
        } else {
            self.after_change(&mut state, &group_id);
        }
        step
    }

    /// A JoinGroup without a member id.
    fn join_new_member(&self, group: &mut Group, args: &JoinArgs, now: Now) -> JoinStep {
        let known_static = args
            .instance_id
            .as_ref()
            .and_then(|instance| group.static_members.get(instance).cloned());
        // Kafka's member ids: `<group.instance.id>-<uuid>` for static members, else `<client.id>-<uuid>`.
        let prefix = args
            .instance_id
            .as_deref()
            .unwrap_or(&args.client.client_id);
        let new_member_id = format!("{prefix}-{}", uuid::Uuid::new_v4());
        if let Some(old_member_id) = known_static {
            return self.replace_static_member(group, args, &old_member_id, &new_member_id, now);
        }
        if args.instance_id.is_none() && args.version >= 4 {
            // KIP-394: the client must come back with this id, so a JoinGroup lost in transit does not
            // leave a phantom member in the group.
            let deadline = now.instant + duration_ms(i64::from(args.session_timeout_ms));
            group
                .pending_members
                .insert(new_member_id.clone(), deadline);
            return JoinStep::Done(JoinOutcome::error(
                ResponseError::MemberIdRequired.code(),
                &new_member_id,
            ));
        }
        self.add_member_and_rebalance(group, args, new_member_id, now)
    }

    /// Admits a new member and parks its JoinGroup: every admission starts (or joins) a rebalance,
    /// because the leader has to hand the newcomer partitions.
    fn add_member_and_rebalance(
        &self,
        group: &mut Group,
        args: &JoinArgs,
        member_id: String,
        now: Now,
    ) -> JoinStep {
        let mut member = args.new_member(member_id, now);
        let (tx, rx) = oneshot::channel();
        member.awaiting_join = Some(tx);
        group.add_member(member, &args.protocol_type);
        group.rebalance_or_complete_join(now, self.config.group_initial_rebalance_delay_ms);
        JoinStep::Wait(rx)
    }

    /// A known static member came back with a new connection: it takes over the old member id's
    /// place. In a Stable group whose selected protocol stays the same this needs no rebalance.
    fn replace_static_member(
        &self,
        group: &mut Group,
        args: &JoinArgs,
        old_member_id: &str,
        new_member_id: &str,
        now: Now,
    ) -> JoinStep {
        let fenced = ResponseError::FencedInstanceId.code();
        let old_leader = group.leader_id.clone().unwrap_or_default();
        let Some(member) = group.member_mut(old_member_id) else {
            return JoinStep::Done(JoinOutcome::error(
                ResponseError::UnknownMemberId.code(),
                "",
            ));
        };
        // The old connection's parked requests learn that they were replaced.
        member.complete_join(JoinOutcome::error(fenced, old_member_id));
        member.complete_sync(SyncOutcome::error(fenced));
        let saved = (
            member.protocols.clone(),
            member.rebalance_timeout_ms,
            member.session_timeout_ms,
        );
        new_member_id.clone_into(&mut member.member_id);
        member.session_deadline = now.instant + duration_ms(i64::from(args.session_timeout_ms));
        let rx = args.update_and_park(member);
        if let Some(instance) = &args.instance_id {
            group
                .static_members
                .insert(instance.clone(), new_member_id.to_owned());
        }
        if group.is_leader(old_member_id) {
            group.leader_id = Some(new_member_id.to_owned());
        }
        let initial_delay_ms = self.config.group_initial_rebalance_delay_ms;
        // Kafka's rule: in a Stable group the restart is invisible to the others as long as the
        // protocol the group would select does not change (the member may even have changed its
        // metadata; it keeps its old assignment). Otherwise the group rebalances so that assignment
        // and protocol stay consistent.
        match group.state {
            GroupState::Stable
                if group.select_protocol().as_deref() == group.protocol_name.as_deref() =>
            {
                if let Err(err) = self.persist_group(group) {
                    tracing::warn!(group_id = %group.group_id, %err, "persisting static member replacement failed");
                    revert_static_replacement(group, args, old_member_id, new_member_id, saved);
                    return JoinStep::Done(JoinOutcome::error(
                        ResponseError::CoordinatorNotAvailable.code(),
                        "",
                    ));
                }
                let is_leader = group.is_leader(new_member_id);
                // Only v9 can tell the leader to skip the assignment. Older leaders get the old
                // leader id, so they do not see themselves as leader and do not reassign.
                let outcome = if is_leader && args.version >= 9 {
                    JoinOutcome {
                        skip_assignment: true,
                        ..group.join_outcome(new_member_id, true)
                    }
                } else {
                    JoinOutcome {
                        leader: old_leader,
                        ..group.join_outcome(new_member_id, false)
                    }
                };
                if let Some(member) = group.member_mut(new_member_id) {
                    member.complete_join(outcome);
                }
            }
            // While completing, the leader may already be assigning to the old member id, which
            // the new one would never receive: start over.
            GroupState::Stable | GroupState::CompletingRebalance => {
                group.prepare_rebalance(now, initial_delay_ms);
                group.try_complete_join(now);
            }
            GroupState::PreparingRebalance => {
                group.try_complete_join(now);
            }
            GroupState::Empty | GroupState::Dead => {}
        }
        JoinStep::Wait(rx)
    }

    /// A JoinGroup with a member id.
    fn join_existing_member(&self, group: &mut Group, args: &JoinArgs, now: Now) -> JoinStep {
        let member_id = args.member_id.as_str();
        if group.pending_members.remove(member_id).is_some() {
            return self.add_member_and_rebalance(group, args, member_id.to_owned(), now);
        }
        if let Some(error) = group.validate_member(member_id, args.instance_id.as_deref()) {
            return JoinStep::Done(JoinOutcome::error(error, member_id));
        }
        let is_leader = group.is_leader(member_id);
        let initial_delay_ms = self.config.group_initial_rebalance_delay_ms;
        let unchanged = group
            .member(member_id)
            .is_some_and(|m| m.matches(&args.protocols));
        match group.state {
            GroupState::CompletingRebalance if unchanged => {
                // The member missed the JoinGroup response: send it again.
                JoinStep::Done(group.join_outcome(member_id, is_leader))
            }
            GroupState::Stable if unchanged && !is_leader => {
                // A follower rejoining with nothing new: it may go straight to SyncGroup. (A leader's
                // JoinGroup always rebalances: it is how the leader reacts to topic changes.)
                JoinStep::Done(group.join_outcome(member_id, false))
            }
            GroupState::PreparingRebalance
            | GroupState::CompletingRebalance
            | GroupState::Stable => {
                let Some(member) = group.member_mut(member_id) else {
                    return JoinStep::Done(JoinOutcome::error(
                        ResponseError::UnknownMemberId.code(),
                        member_id,
                    ));
                };
                let rx = args.update_and_park(member);
                group.rebalance_or_complete_join(now, initial_delay_ms);
                JoinStep::Wait(rx)
            }
            GroupState::Empty | GroupState::Dead => JoinStep::Done(JoinOutcome::error(
                ResponseError::UnknownMemberId.code(),
                member_id,
            )),
        }
    }
}

/// Undoes a static member replacement whose persistence failed.
fn revert_static_replacement(
    group: &mut Group,
    args: &JoinArgs,
    old_member_id: &str,
    new_member_id: &str,
    saved: (Vec<(String, Bytes)>, i32, i32),
) {
    if let Some(member) = group.member_mut(new_member_id) {
        member.member_id = old_member_id.to_owned();
        member.awaiting_join = None;
        (
            member.protocols,
            member.rebalance_timeout_ms,
            member.session_timeout_ms,
        ) = saved;
    }
    if let Some(instance) = &args.instance_id {
        group
            .static_members
            .insert(instance.clone(), old_member_id.to_owned());
    }
    if group.is_leader(new_member_id) {
        group.leader_id = Some(old_member_id.to_owned());
    }
}
