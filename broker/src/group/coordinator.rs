//! The group coordinator: shared state, start-up replay, persistence and the timer loop.
//!
//! All groups live behind one `std` mutex. Handlers lock it, change state, append to the coordinator
//! log while still holding it (so the log order is the order changes were applied), and unlock before
//! awaiting anything. A JoinGroup or SyncGroup that has to wait parks a oneshot sender in its member
//! and awaits the receiver outside the lock, so a slow group never blocks another.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::classic_group::{Group, TopicPartition, duration_ms};
use super::clock::{Clock, Now};
use super::records::{GroupValue, OffsetValue, RecordKey};
use super::{CoordinatorLog, CoordinatorRecord, GroupConfig, GroupError, PartitionLookup};

/// Who sent a request, from its request header and connection: Kafka builds member ids from the
/// client id and shows both in DescribeGroups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// The `client.id` of the request header.
    pub client_id: String,
    /// The peer address, as Kafka shows it (`/127.0.0.1`).
    pub client_host: String,
}

/// The state behind the coordinator's lock.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) groups: HashMap<String, Group>,
    /// Group timers, earliest first. Invariant: a group with a next deadline `d` has an entry at or
    /// before `d`. Entries are never removed early; one that fires for a group with nothing due is
    /// skipped. That keeps every update O(log n) instead of rescanning all groups.
    timers: BinaryHeap<Reverse<(Instant, String)>>,
    /// When offset expiry runs next.
    pub(crate) next_offset_expiry: Instant,
    /// Offsets in the log but not yet known to be durable under its replication, in log order.
    /// OffsetFetch does not see them until a durability wait covering them succeeds
    /// ([`State::publish_offsets`]): a fetch must never see an offset a failover could lose.
    pub(crate) pending_offsets: Vec<PendingOffset>,
    /// Sequence number of the next offset commit written to the log.
    pub(crate) next_commit: u64,
}

/// A committed offset waiting for its log record to be durable.
#[derive(Debug)]
pub(crate) struct PendingOffset {
    /// The commit that wrote it; commits are numbered in log order.
    pub(crate) commit: u64,
    pub(crate) group_id: String,
    pub(crate) partition: TopicPartition,
    pub(crate) value: OffsetValue,
}

impl State {
    /// Registers the next deadline of `group_id`. Called after every change that can bring a
    /// deadline forward; changes that only push deadlines later (heartbeats) need not call it.
    pub(crate) fn schedule(&mut self, group_id: &str) {
        if let Some(deadline) = self.groups.get(group_id).and_then(Group::next_deadline) {
            self.timers.push(Reverse((deadline, group_id.to_owned())));
        }
    }

    /// Makes the offsets of every commit up to `commit` visible, in log order: a durability wait
    /// for `commit` succeeded, so every record appended before it is durable too.
    pub(crate) fn publish_offsets(&mut self, commit: u64, wall_ms: i64) {
        let n = self.pending_offsets.partition_point(|p| p.commit <= commit);
        let published: Vec<PendingOffset> = self.pending_offsets.drain(..n).collect();
        for p in published {
            self.groups
                .entry(p.group_id.clone())
                .or_insert_with(|| Group::new(p.group_id, wall_ms))
                .offsets
                .insert(p.partition, p.value);
        }
    }

    /// Forgets pending offsets that a tombstone written after them supersedes.
    pub(crate) fn drop_pending(&mut self, superseded: impl Fn(&str, &TopicPartition) -> bool) {
        self.pending_offsets
            .retain(|p| !superseded(&p.group_id, &p.partition));
    }

    /// The earliest time anything is due.
    fn next_wakeup(&self) -> Instant {
        self.timers
            .peek()
            .map_or(self.next_offset_expiry, |Reverse((deadline, _))| {
                (*deadline).min(self.next_offset_expiry)
            })
    }

    /// Removes and returns the groups whose timers are due at `now`, each once.
    fn take_due(&mut self, now: Instant) -> Vec<String> {
        let mut due = Vec::new();
        while self
            .timers
            .peek()
            .is_some_and(|Reverse((deadline, _))| *deadline <= now)
        {
            if let Some(Reverse((_, group_id))) = self.timers.pop() {
                due.push(group_id);
            }
        }
        due.sort_unstable();
        due.dedup();
        due
    }
}

/// Kafka's classic group coordinator for every group of this broker.
///
/// `Send + Sync`; share it in an `Arc`. Spawn [`run`](Self::run) once: it drives session timeouts,
/// rebalance timeouts and offset expiry. Without it, joins still complete when every member is in,
/// but nothing ever times out.
pub struct GroupCoordinator {
    pub(crate) log: Arc<dyn CoordinatorLog>,
    pub(crate) partitions: Arc<dyn PartitionLookup>,
    pub(crate) config: GroupConfig,
    pub(crate) clock: Clock,
    /// `std` mutex: never held across an await.
    state: Mutex<State>,
    /// Wakes [`run`](Self::run) when a handler may have set an earlier deadline.
    wake: Notify,
    /// Whether this broker coordinates groups now (it leads the offsets partition). While false,
    /// group requests answer `NOT_COORDINATOR` and no group is held in memory.
    active: AtomicBool,
}

impl std::fmt::Debug for GroupCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCoordinator")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl GroupCoordinator {
    /// Rebuilds groups and committed offsets from the log (replay), then serves.
    pub fn new(
        log: Arc<dyn CoordinatorLog>,
        partitions: Arc<dyn PartitionLookup>,
        config: GroupConfig,
    ) -> Result<Self, GroupError> {
        let coordinator = Self::new_inactive(log, partitions, config)?;
        coordinator.activate()?;
        Ok(coordinator)
    }

    /// A coordinator that holds no group and answers `NOT_COORDINATOR` until [`Self::activate`]
    /// loads it: what a broker starts with, since only the leader of the offsets partition
    /// coordinates (and may not host a replica of it at all).
    pub fn new_inactive(
        log: Arc<dyn CoordinatorLog>,
        partitions: Arc<dyn PartitionLookup>,
        config: GroupConfig,
    ) -> Result<Self, GroupError> {
        config.validate()?;
        let clock = Clock::new();
        let now = clock.now();
        let next_offset_expiry =
            now.instant + duration_ms(config.offsets_retention_check_interval_ms);
        let state = State {
            groups: Default::default(),
            timers: BinaryHeap::new(),
            next_offset_expiry,
            pending_offsets: Vec::new(),
            next_commit: 0,
        };
        Ok(Self {
            log,
            partitions,
            config,
            clock,
            state: Mutex::new(state),
            wake: Notify::new(),
            active: AtomicBool::new(false),
        })
    }

    /// Whether this coordinator serves groups now. A new coordinator is active; the broker
    /// deactivates it while another broker leads the offsets partition.
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::SeqCst)
    }

    /// Becomes the coordinator: rebuilds every group and offset from the log (which may have
    /// grown while another broker coordinated), then serves. Requests during the load answer
    /// `NOT_COORDINATOR`, so nothing is served from a half-loaded state.
    pub fn activate(&self) -> Result<(), GroupError> {
        self.deactivate();
        let now = self.clock.now();
        let groups = replay(self.log.replay()?, now)?;
        tracing::info!(groups = groups.len(), "group coordinator loaded");
        let mut state = self.lock();
        state.groups = groups;
        state.timers.clear();
        state.pending_offsets.clear();
        let group_ids: Vec<String> = state.groups.keys().cloned().collect();
        for group_id in &group_ids {
            state.schedule(group_id);
        }
        self.active.store(true, Ordering::SeqCst);
        drop(state);
        self.wake();
        Ok(())
    }

    /// Stops coordinating: drops every group from memory (the log keeps them for the next
    /// coordinator) and answers parked JoinGroup and SyncGroup requests with `NOT_COORDINATOR`,
    /// so their members look the coordinator up again.
    pub fn deactivate(&self) {
        let mut state = self.lock();
        self.active.store(false, Ordering::SeqCst);
        let code = kafka_protocol::ResponseError::NotCoordinator.code();
        for group in state.groups.values_mut() {
            for member in &mut group.members {
                let member_id = member.member_id.clone();
                member.complete_join(super::outcome::JoinOutcome::error(code, &member_id));
                member.complete_sync(super::outcome::SyncOutcome::error(code));
            }
        }
        state.groups.clear();
        state.timers.clear();
        state.pending_offsets.clear();
    }

    /// Background task: session timeouts, rebalance timeouts, offset expiry. Runs until cancelled.
    pub async fn run(&self, shutdown: CancellationToken) {
        loop {
            let next = self.lock().next_wakeup();
            tokio::select! {
                () = shutdown.cancelled() => return,
                // A handler registered a timer: look again at what is due first.
                () = self.wake.notified() => continue,
                () = tokio::time::sleep_until(next) => {}
            }
            self.tick();
        }
    }

    /// Applies every timer due now.
    pub(crate) fn tick(&self) {
        let now = self.clock.now();
        let mut state = self.lock();
        for group_id in state.take_due(now.instant) {
            if let Some(group) = state.groups.get_mut(&group_id) {
                group.expire(now, self.config.group_initial_rebalance_delay_ms);
            }
            self.after_change(&mut state, &group_id);
        }
        if state.next_offset_expiry <= now.instant {
            state.next_offset_expiry =
                now.instant + duration_ms(self.config.offsets_retention_check_interval_ms);
            self.expire_offsets(&mut state, now);
        }
    }

    /// Follows up a change to `group_id`: persists its metadata if the change is one Kafka
    /// persists, and registers its next deadline.
    pub(crate) fn after_change(&self, state: &mut State, group_id: &str) {
        if let Some(group) = state.groups.get_mut(group_id) {
            self.flush_dirty(group);
        }
        state.schedule(group_id);
    }

    /// Tells [`run`](Self::run) to recompute its next deadline.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Locks the state. A panic while holding the lock cannot leave a group half-updated in a way
    /// later requests cannot cope with, so a poisoned lock is used as is.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current time.
    pub(crate) fn now(&self) -> Now {
        self.clock.now()
    }

    /// Appends records to the coordinator log.
    pub(crate) fn append(&self, records: Vec<CoordinatorRecord>) -> Result<(), GroupError> {
        self.log.append(records)
    }

    /// Persists the metadata record of `group`.
    pub(crate) fn persist_group(&self, group: &Group) -> Result<(), GroupError> {
        self.append(vec![group_record(group)])
    }

    /// Persists the group's metadata if it changed in a way Kafka persists (it became empty). A
    /// failure is logged, as in Kafka: the in-memory state stays authoritative, and an empty
    /// generation lost in a crash only brings back the previous one, whose members time out.
    fn flush_dirty(&self, group: &mut Group) {
        if group.metadata_dirty {
            group.metadata_dirty = false;
            if let Err(err) = self.persist_group(group) {
                tracing::warn!(group_id = %group.group_id, %err, "persisting group metadata failed");
            }
        }
    }
}

/// The metadata record of `group`.
pub(crate) fn group_record(group: &Group) -> CoordinatorRecord {
    let key = RecordKey::Group {
        group_id: group.group_id.clone(),
    };
    (key.encode(), Some(group.to_value().encode()))
}

/// Rebuilds the groups from the coordinator log: the last record of each key wins, tombstones delete.
fn replay(records: Vec<CoordinatorRecord>, now: Now) -> Result<HashMap<String, Group>, GroupError> {
    let mut groups: HashMap<String, Group> = HashMap::new();
    let mut metadata: HashMap<String, Option<GroupValue>> = HashMap::new();
    for (index, (key, value)) in records.into_iter().enumerate() {
        let corrupt = |reason: String| GroupError::Corrupt { index, reason };
        match RecordKey::decode(&key).map_err(corrupt)? {
            None => tracing::warn!(
                index,
                "skipping coordinator record with an unknown key version"
            ),
            Some(RecordKey::Offset {
                group_id,
                topic,
                partition,
            }) => match value {
                Some(value) => {
                    let offset = OffsetValue::decode(&value).map_err(corrupt)?;
                    groups
                        .entry(group_id.clone())
                        .or_insert_with(|| Group::new(group_id, now.wall_ms))
                        .offsets
                        .insert((topic, partition), offset);
                }
                None => {
                    if let Some(group) = groups.get_mut(&group_id) {
                        group.offsets.remove(&(topic, partition));
                    }
                }
            },
            Some(RecordKey::Group { group_id }) => {
                let value = value
                    .map(|v| GroupValue::decode(&v))
                    .transpose()
                    .map_err(corrupt)?;
                if value.is_none() {
                    // A group tombstone deletes the group with its offsets (DeleteGroups writes the
                    // offset tombstones too, but compaction may have removed those already).
                    groups.remove(&group_id);
                }
                metadata.insert(group_id, value);
            }
        }
    }
    for (group_id, value) in metadata {
        if let Some(value) = value {
            groups
                .entry(group_id.clone())
                .or_insert_with(|| Group::new(group_id, now.wall_ms))
                .restore(value, now.instant, now.wall_ms);
        }
    }
    Ok(groups)
}
