//! The rebalance state machine of a classic group: members joining and leaving, the join phase
//! (PreparingRebalance) with its deadline and initial delay, the sync phase (CompletingRebalance),
//! session expiry. Everything here is synchronous; parked requests are answered through their channels.

use std::collections::HashMap;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::time::Instant;

use super::classic_group::{Group, GroupState, InitialDelay, duration_ms};
use super::clock::Now;
use super::member::Member;
use super::outcome::{JoinOutcome, SyncOutcome};

impl Group {
    /// Adds a member; the first member of an empty group sets the protocol type and leads.
    pub(crate) fn add_member(&mut self, member: Member, protocol_type: &str) {
        if self.members.is_empty() {
            self.protocol_type = Some(protocol_type.to_owned());
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(member.member_id.clone());
        }
        if let Some(instance) = &member.group_instance_id {
            self.static_members
                .insert(instance.clone(), member.member_id.clone());
        }
        if let Some(delay) = &mut self.initial_delay {
            delay.new_member_added = true;
        }
        self.members.push(member);
    }

    /// Removes a member (it left, or its session or rebalance timed out) and moves the group on:
    /// a stable or completing group starts a rebalance; a preparing one may now be complete.
    pub(crate) fn remove_member(&mut self, member_id: &str, now: Now, initial_delay_ms: i32) {
        let Some(index) = self.members.iter().position(|m| m.member_id == member_id) else {
            return;
        };
        let mut member = self.members.remove(index);
        // Kafka answers with an empty member id so the client rejoins as a new member.
        member.complete_join(JoinOutcome::error(
            ResponseError::UnknownMemberId.code(),
            "",
        ));
        member.complete_sync(SyncOutcome::error(ResponseError::UnknownMemberId.code()));
        if let Some(instance) = &member.group_instance_id
            && self.static_members.get(instance).map(String::as_str) == Some(member_id)
        {
            self.static_members.remove(instance);
        }
        if self.is_leader(member_id) {
            self.leader_id = self.members.first().map(|m| m.member_id.clone());
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, initial_delay_ms);
            }
            GroupState::PreparingRebalance => {
                self.try_complete_join(now);
            }
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// Starts a rebalance unless one is already under way, then completes the join phase if every
    /// member is already in.
    pub(crate) fn rebalance_or_complete_join(&mut self, now: Now, initial_delay_ms: i32) {
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(now, initial_delay_ms);
        }
        self.try_complete_join(now);
    }

    /// Enters PreparingRebalance: parked SyncGroups are told to rejoin and the join deadline is set.
    /// An empty group first waits `initial_delay_ms` for more members.
    pub(crate) fn prepare_rebalance(&mut self, now: Now, initial_delay_ms: i32) {
        if self.state == GroupState::CompletingRebalance {
            self.reset_sync_phase(ResponseError::RebalanceInProgress.code(), now);
        }
        let rebalance_timeout_ms = i64::from(self.max_rebalance_timeout_ms());
        if self.state == GroupState::Empty && initial_delay_ms > 0 {
            let delay_ms = i64::from(initial_delay_ms);
            self.initial_delay = Some(InitialDelay {
                remaining_ms: (rebalance_timeout_ms - delay_ms).max(0),
                new_member_added: false,
            });
            self.rebalance_deadline = Some(now.instant + duration_ms(delay_ms));
        } else {
            self.initial_delay = None;
            self.rebalance_deadline = Some(now.instant + duration_ms(rebalance_timeout_ms));
        }
        tracing::info!(
            group_id = %self.group_id,
            from = self.state.name(),
            generation_id = self.generation_id,
            members = self.members.len(),
            "preparing to rebalance group"
        );
        self.transition(GroupState::PreparingRebalance, now.wall_ms);
        // Everyone may already be in (or everyone left): then the join phase ends right away.
        self.try_complete_join(now);
    }

    /// Completes the join phase if every member has rejoined and no handed-out member id is still
    /// expected. The initial delay is purely time-based, as in Kafka.
    pub(crate) fn try_complete_join(&mut self, now: Now) -> bool {
        let all_joined =
            self.members.iter().all(Member::is_awaiting_join) && self.pending_members.is_empty();
        if self.state == GroupState::PreparingRebalance
            && self.initial_delay.is_none()
            && all_joined
        {
            self.complete_join(now);
            return true;
        }
        false
    }

    /// Ends the join phase: members that did not rejoin are dropped, the generation advances, a
    /// protocol is chosen and every parked JoinGroup is answered (the leader with the member list).
    pub(crate) fn complete_join(&mut self, now: Now) {
        // Dynamic members that did not rejoin are gone. Static members stay, with their last
        // metadata, until their session expires: a static member being restarted keeps its place.
        self.members
            .retain(|m| m.is_awaiting_join() || m.group_instance_id.is_some());
        if !self.members.is_empty() && !self.members.iter().any(Member::is_awaiting_join) {
            // Only absent static members are left: nobody could lead. Wait another rebalance
            // timeout; their sessions expire meanwhile unless they come back.
            self.rebalance_deadline =
                Some(now.instant + duration_ms(i64::from(self.max_rebalance_timeout_ms())));
            return;
        }
        // The leader must be a member that rejoined, so that it gets the member list.
        if !self
            .leader_id
            .as_deref()
            .and_then(|leader| self.member(leader))
            .is_some_and(Member::is_awaiting_join)
        {
            self.leader_id = self
                .members
                .iter()
                .find(|m| m.is_awaiting_join())
                .map(|m| m.member_id.clone());
        }
        self.initial_delay = None;
        // Even a rebalance that ends empty bumps the generation, so commits of the last members are
        // refused as stale (ILLEGAL_GENERATION) rather than applied to an empty group.
        self.generation_id = self.generation_id.wrapping_add(1).max(1);
        if self.members.is_empty() {
            tracing::info!(group_id = %self.group_id, generation_id = self.generation_id, "group is now empty");
            self.protocol_name = None;
            self.rebalance_deadline = None;
            self.transition(GroupState::Empty, now.wall_ms);
            self.metadata_dirty = true;
            return;
        }
        self.protocol_name = self.select_protocol();
        tracing::info!(
            group_id = %self.group_id,
            generation_id = self.generation_id,
            members = self.members.len(),
            protocol = self.protocol_name.as_deref().unwrap_or_default(),
            "stabilized group"
        );
        self.transition(GroupState::CompletingRebalance, now.wall_ms);
        // Members that never send SyncGroup are dropped once this passes.
        self.rebalance_deadline =
            Some(now.instant + duration_ms(i64::from(self.max_rebalance_timeout_ms())));
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let member_list: Vec<(String, Option<String>, Bytes)> = self
            .members
            .iter()
            .map(|m| {
                (
                    m.member_id.clone(),
                    m.group_instance_id.clone(),
                    m.metadata(&protocol).cloned().unwrap_or_default(),
                )
            })
            .collect();
        let leader = self.leader_id.clone().unwrap_or_default();
        for member in &mut self.members {
            member.assignment = Bytes::new();
            member.session_deadline =
                now.instant + duration_ms(i64::from(member.session_timeout_ms));
            member.pending_sync = true;
        }
        let template = self.join_outcome(&leader, false);
        for member in &mut self.members {
            let mut outcome = template.clone();
            outcome.member_id.clone_from(&member.member_id);
            if member.member_id == leader {
                outcome.members.clone_from(&member_list);
            }
            member.complete_join(outcome);
        }
    }

    /// The successful JoinGroup answer for `member_id` in the current generation; `with_members`
    /// adds the member list (for the leader).
    pub(crate) fn join_outcome(&self, member_id: &str, with_members: bool) -> JoinOutcome {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        JoinOutcome {
            error_code: 0,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader_id.clone().unwrap_or_default(),
            skip_assignment: false,
            member_id: member_id.to_owned(),
            members: if with_members {
                self.members
                    .iter()
                    .map(|m| {
                        (
                            m.member_id.clone(),
                            m.group_instance_id.clone(),
                            m.metadata(&protocol).cloned().unwrap_or_default(),
                        )
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    /// The successful SyncGroup answer for `member_id`.
    pub(crate) fn sync_outcome(&self, member_id: &str) -> SyncOutcome {
        SyncOutcome {
            error_code: 0,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment: self
                .member(member_id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
        }
    }

    /// Installs the leader's assignment (members it left out get an empty one), makes the group
    /// Stable and answers every parked SyncGroup.
    pub(crate) fn complete_sync_phase(
        &mut self,
        mut assignments: HashMap<String, Bytes>,
        now: Now,
    ) {
        for member in &mut self.members {
            member.assignment = assignments.remove(&member.member_id).unwrap_or_default();
        }
        // The sync deadline stays while some member has yet to fetch its assignment.
        if !self.members.iter().any(|m| m.pending_sync) {
            self.rebalance_deadline = None;
        }
        self.transition(GroupState::Stable, now.wall_ms);
        let answers: Vec<SyncOutcome> = self
            .members
            .iter()
            .map(|m| self.sync_outcome(&m.member_id))
            .collect();
        for (member, outcome) in self.members.iter_mut().zip(answers) {
            answer_sync(member, outcome, now);
        }
    }

    /// Answers every parked SyncGroup with `error_code` and forgets the assignment.
    pub(crate) fn reset_sync_phase(&mut self, error_code: i16, now: Now) {
        for member in &mut self.members {
            member.assignment = Bytes::new();
            answer_sync(member, SyncOutcome::error(error_code), now);
        }
    }

    /// Applies every timer that has passed at `now`: the join or sync deadline, member sessions and
    /// handed-out member ids.
    pub(crate) fn expire(&mut self, now: Now, initial_delay_ms: i32) {
        if self.rebalance_deadline.is_some_and(|d| d <= now.instant) {
            self.expire_rebalance(now, initial_delay_ms);
        }
        // Members with a parked JoinGroup or SyncGroup cannot heartbeat (their connection waits on
        // us), so only the others' sessions count; parked ones are bounded by the rebalance deadline.
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|m| {
                !m.is_awaiting_join() && !m.is_awaiting_sync() && m.session_deadline <= now.instant
            })
            .map(|m| m.member_id.clone())
            .collect();
        for member_id in expired {
            tracing::info!(group_id = %self.group_id, %member_id, "member session expired");
            self.remove_member(&member_id, now, initial_delay_ms);
        }
        let before = self.pending_members.len();
        self.pending_members
            .retain(|_, deadline| *deadline > now.instant);
        if self.pending_members.len() < before {
            self.try_complete_join(now);
        }
    }

    fn expire_rebalance(&mut self, now: Now, initial_delay_ms: i32) {
        match self.state {
            GroupState::PreparingRebalance => match self.initial_delay {
                Some(delay) if delay.new_member_added && delay.remaining_ms > 0 => {
                    let extension = i64::from(initial_delay_ms).min(delay.remaining_ms);
                    self.initial_delay = Some(InitialDelay {
                        remaining_ms: (delay.remaining_ms - extension).max(0),
                        new_member_added: false,
                    });
                    self.rebalance_deadline = Some(now.instant + duration_ms(extension));
                }
                _ => self.complete_join(now),
            },
            // As in Kafka, a member that got its JoinGroup response but never sent SyncGroup within
            // the rebalance timeout is dropped, even after the leader's sync made the group Stable:
            // otherwise its partitions would stay assigned to nobody who consumes them.
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.rebalance_deadline = None;
                let missing: Vec<String> = self
                    .members
                    .iter()
                    .filter(|m| m.pending_sync)
                    .map(|m| m.member_id.clone())
                    .collect();
                for member_id in missing {
                    tracing::info!(group_id = %self.group_id, %member_id, "member did not sync in time");
                    self.remove_member(&member_id, now, initial_delay_ms);
                }
            }
            _ => self.rebalance_deadline = None,
        }
    }

    /// The earliest time at which [`expire`](Self::expire) has something to do.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let sessions = self
            .members
            .iter()
            .filter(|m| !m.is_awaiting_join() && !m.is_awaiting_sync())
            .map(|m| m.session_deadline);
        sessions
            .chain(self.pending_members.values().copied())
            .chain(self.rebalance_deadline)
            .min()
    }
}

/// Answers a parked SyncGroup and restarts the member's session: its session was not checked while
/// the request was parked, so it may well have lapsed by now.
fn answer_sync(member: &mut Member, outcome: SyncOutcome, now: Now) {
    if member.is_awaiting_sync() {
        member.complete_sync(outcome);
        member.session_deadline = now.instant + duration_ms(i64::from(member.session_timeout_ms));
    }
}
