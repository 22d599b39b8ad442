//! One classic group: its state, generation, members and committed offsets.
//!
//! This file holds the data and the questions one can ask of it (protocol selection, subscribed
//! topics, what to persist); the state transitions of a rebalance are in `rebalance.rs`.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::Decodable;
use tokio::time::Instant;

use super::member::Member;
use super::records::{GroupValue, MemberValue, OffsetValue};

/// The protocol type of groups of Kafka consumers, whose metadata the coordinator can read.
pub(crate) const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// The states of a classic group, named as Kafka names them on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupState {
    /// No members; the group may still have committed offsets.
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// Deleted; only seen by a request racing the deletion.
    Dead,
}

impl GroupState {
    /// The name ListGroups and DescribeGroups report.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::PreparingRebalance => "PreparingRebalance",
            Self::CompletingRebalance => "CompletingRebalance",
            Self::Stable => "Stable",
            Self::Dead => "Dead",
        }
    }
}

/// The extension state of the first rebalance of an empty group (`group.initial.rebalance.delay.ms`):
/// while new members keep arriving, the join phase is extended by one delay at a time, but never past
/// the rebalance timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InitialDelay {
    /// Extension budget left, in milliseconds.
    pub(crate) remaining_ms: i64,
    /// A member joined during the current delay.
    pub(crate) new_member_added: bool,
}

/// A topic partition as a map key.
pub(crate) type TopicPartition = (String, i32);

/// A classic group.
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) group_id: String,
    pub(crate) state: GroupState,
    /// Wall-clock time of the last state change; offsets of an empty group expire relative to it.
    pub(crate) state_timestamp_ms: i64,
    pub(crate) generation_id: i32,
    pub(crate) protocol_type: Option<String>,
    /// The protocol selected for the current generation.
    pub(crate) protocol_name: Option<String>,
    pub(crate) leader_id: Option<String>,
    /// Members in join order: when the leader leaves, the oldest member takes over, as in Kafka.
    pub(crate) members: Vec<Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with the time they lapse if not used.
    pub(crate) pending_members: HashMap<String, Instant>,
    /// Static members: `group.instance.id` to current member id.
    pub(crate) static_members: HashMap<String, String>,
    /// When the current join phase (PreparingRebalance) or sync phase (CompletingRebalance) times out.
    pub(crate) rebalance_deadline: Option<Instant>,
    /// Set during the first rebalance of an empty group while the initial delay applies.
    pub(crate) initial_delay: Option<InitialDelay>,
    /// Committed offsets by topic partition.
    pub(crate) offsets: BTreeMap<TopicPartition, OffsetValue>,
    /// The group metadata changed in a way Kafka persists (the group became empty); written by the
    /// coordinator after the request or timer that caused it.
    pub(crate) metadata_dirty: bool,
}

impl Group {
    /// A new group without members or offsets.
    pub(crate) fn new(group_id: String, now_ms: i64) -> Self {
        Self {
            group_id,
            state: GroupState::Empty,
            state_timestamp_ms: now_ms,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: Vec::new(),
            pending_members: HashMap::new(),
            static_members: HashMap::new(),
            rebalance_deadline: None,
            initial_delay: None,
            offsets: BTreeMap::new(),
            metadata_dirty: false,
        }
    }

    /// Changes state and records when.
    pub(crate) fn transition(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_timestamp_ms = now_ms;
    }

    /// The member with `member_id`.
    pub(crate) fn member(&self, member_id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.member_id == member_id)
    }

    /// The member with `member_id`, mutably.
    pub(crate) fn member_mut(&mut self, member_id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.member_id == member_id)
    }

    /// Whether `member_id` is the leader of the current generation.
    pub(crate) fn is_leader(&self, member_id: &str) -> bool {
        self.leader_id.as_deref() == Some(member_id)
    }

    /// Kafka's `group.max.size` check for a JoinGroup of `member_id`: an empty group takes anyone;
    /// during a join phase a member already in it stays, and others count against the members that
    /// have rejoined so far (so a group above its limit sheds the last rejoiners); otherwise existing
    /// members stay and new ones need room.
    pub(crate) fn accepts_joining_member(&self, member_id: &str, max_size: i32) -> bool {
        let max = usize::try_from(max_size).unwrap_or(usize::MAX);
        let member = self.member(member_id);
        match self.state {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                member.is_some_and(Member::is_awaiting_join)
                    || self.members.iter().filter(|m| m.is_awaiting_join()).count() < max
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                member.is_some() || self.members.len() < max
            }
        }
    }

    /// Checks a member's identity as Kafka does for every request of an existing member: a static
    /// member must present the member id currently registered for its instance id.
    /// Returns the Kafka error code, if any.
    pub(crate) fn validate_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Option<i16> {
        use kafka_protocol::error::ResponseError;
        match instance_id {
            None if self.member(member_id).is_none() => Some(ResponseError::UnknownMemberId.code()),
            None => None,
            Some(instance) => match self.static_members.get(instance) {
                None => Some(ResponseError::UnknownMemberId.code()),
                Some(registered) if registered != member_id => {
                    Some(ResponseError::FencedInstanceId.code())
                }
                Some(_) => None,
            },
        }
    }

    /// Whether a member with `protocol_type` and `protocols` may join: an empty group takes any
    /// non-empty protocol set; otherwise the type must match and at least one protocol must be
    /// supported by every other member.
    pub(crate) fn supports_protocols(
        &self,
        protocol_type: &str,
        protocols: &[(String, Bytes)],
        member_id: &str,
    ) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|(name, _)| {
                self.members
                    .iter()
                    .filter(|m| m.member_id != member_id)
                    .all(|m| m.supports(name))
            })
    }

    /// Picks the protocol for the next generation: among those every member supports, the one most
    /// members prefer; ties go to the protocol the leader (oldest member) prefers.
    pub(crate) fn select_protocol(&self) -> Option<String> {
        let first = self.members.first()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| self.members.iter().all(|m| m.supports(name)))
            .collect();
        let mut votes: Vec<(&str, usize)> = candidates.iter().map(|&c| (c, 0)).collect();
        for member in &self.members {
            if let Some(choice) = member.vote(&candidates)
                && let Some(entry) = votes.iter_mut().find(|(name, _)| *name == choice)
            {
                entry.1 += 1;
            }
        }
        // `max_by_key` keeps the last maximum; iterate in reverse so the leader's earlier preference wins.
        votes
            .into_iter()
            .rev()
            .max_by_key(|&(_, count)| count)
            .map(|(name, _)| name.to_owned())
    }

    /// The longest rebalance timeout of any member: how long a join phase may wait.
    pub(crate) fn max_rebalance_timeout_ms(&self) -> i32 {
        self.members
            .iter()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0)
    }

    /// The topics the members subscribe to, when this is a consumer group whose subscriptions can be
    /// read; `None` when they cannot (then every topic counts as subscribed, to be safe).
    pub(crate) fn subscribed_topics(&self) -> Option<HashSet<String>> {
        if self.members.is_empty() {
            return Some(HashSet::new());
        }
        if self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = HashSet::new();
        for member in &self.members {
            let metadata = member.metadata(protocol)?;
            topics.extend(decode_subscription(metadata)?);
        }
        Some(topics)
    }

    /// What `__consumer_offsets` keeps of this group: for each member, its metadata for the selected
    /// protocol and its assignment.
    pub(crate) fn to_value(&self) -> GroupValue {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation_id: self.generation_id,
            protocol_name: self.protocol_name.clone(),
            leader: self.leader_id.clone(),
            state_timestamp_ms: self.state_timestamp_ms,
            members: self
                .members
                .iter()
                .map(|m| MemberValue {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata(protocol).cloned().unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Restores the group metadata from its record, keeping offsets already replayed. A group with
    /// members comes back Stable; the members keep it by heartbeating within their session timeout,
    /// as after a Kafka coordinator failover.
    pub(crate) fn restore(&mut self, value: GroupValue, now: Instant, now_ms: i64) {
        self.generation_id = value.generation_id;
        self.protocol_type = Some(value.protocol_type).filter(|t| !t.is_empty());
        self.protocol_name = value.protocol_name;
        self.leader_id = value.leader;
        self.state_timestamp_ms = if value.state_timestamp_ms >= 0 {
            value.state_timestamp_ms
        } else {
            now_ms
        };
        self.static_members.clear();
        let protocol = self.protocol_name.clone().unwrap_or_default();
        self.members = value
            .members
            .into_iter()
            .map(|m| {
                if let Some(instance) = &m.group_instance_id {
                    self.static_members
                        .insert(instance.clone(), m.member_id.clone());
                }
                Member {
                    member_id: m.member_id,
                    group_instance_id: m.group_instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    protocols: vec![(protocol.clone(), m.subscription)],
                    assignment: m.assignment,
                    awaiting_join: None,
                    awaiting_sync: None,
                    pending_sync: false,
                    session_deadline: now + duration_ms(i64::from(m.session_timeout_ms)),
                }
            })
            .collect();
        self.state = if self.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        // A record written by another implementation could name a leader that is not a member;
        // the oldest member then leads, as after the leader leaves.
        if self
            .leader_id
            .as_deref()
            .is_none_or(|leader| self.member(leader).is_none())
        {
            self.leader_id = self.members.first().map(|m| m.member_id.clone());
        }
    }
}

/// Decodes the topics of a `ConsumerProtocolSubscription` (an `int16` version, then the struct).
/// Versions newer than the crate knows are read as the newest it knows, as Kafka's own decoder does.
pub(crate) fn decode_subscription(metadata: &Bytes) -> Option<Vec<String>> {
    let mut buf = metadata.clone();
    if buf.len() < 2 {
        return None;
    }
    let version = i16::from_be_bytes([*buf.first()?, *buf.get(1)?]);
    bytes::Buf::advance(&mut buf, 2);
    if version < 0 {
        return None;
    }
    let subscription = ConsumerProtocolSubscription::decode(&mut buf, version.min(3)).ok()?;
    Some(
        subscription
            .topics
            .into_iter()
            .map(|t| t.to_string())
            .collect(),
    )
}

/// A duration of `ms` milliseconds, treating negatives as zero.
pub(crate) fn duration_ms(ms: i64) -> std::time::Duration {
    std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::records::MemberValue;

    fn value(leader: Option<&str>, members: &[&str]) -> GroupValue {
        GroupValue {
            protocol_type: CONSUMER_PROTOCOL_TYPE.into(),
            generation_id: 4,
            protocol_name: Some("range".into()),
            leader: leader.map(Into::into),
            state_timestamp_ms: 1,
            members: members
                .iter()
                .map(|id| MemberValue {
                    member_id: (*id).into(),
                    group_instance_id: Some(format!("instance-{id}")),
                    client_id: "c".into(),
                    client_host: "/h".into(),
                    rebalance_timeout_ms: 1000,
                    session_timeout_ms: 1000,
                    subscription: Bytes::new(),
                    assignment: Bytes::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_restored_group_with_members_is_stable_with_its_static_members_mapped() {
        let mut group = Group::new("g".into(), 0);
        group.restore(value(Some("b"), &["a", "b"]), Instant::now(), 0);
        assert_eq!(group.state, GroupState::Stable);
        assert_eq!(group.generation_id, 4);
        assert_eq!(group.leader_id.as_deref(), Some("b"));
        assert_eq!(
            group.static_members.get("instance-a").map(String::as_str),
            Some("a")
        );
    }

    #[test]
    fn a_restored_leader_that_is_not_a_member_is_replaced_by_the_oldest_member() {
        let mut group = Group::new("g".into(), 0);
        group.restore(value(Some("gone"), &["a", "b"]), Instant::now(), 0);
        assert_eq!(group.leader_id.as_deref(), Some("a"));
        let mut empty = Group::new("e".into(), 0);
        empty.restore(value(Some("gone"), &[]), Instant::now(), 0);
        assert_eq!(empty.state, GroupState::Empty);
        assert_eq!(empty.leader_id, None);
    }

    #[test]
    fn subscriptions_that_cannot_be_read_count_as_subscribed_to_everything() {
        let mut group = Group::new("g".into(), 0);
        group.restore(value(Some("a"), &["a"]), Instant::now(), 0);
        // An empty subscription is not a valid ConsumerProtocolSubscription.
        assert_eq!(group.subscribed_topics(), None);
    }
}
