//! A partition's replication role and what changes with it: leadership with its followers'
//! progress and the high watermark they allow, following with the leader's batches appended
//! unchanged, and the leader epoch checks of the fetch-side APIs.
//!
//! Role changes are ordered by leader epoch: a change for an older epoch than the partition's is
//! ignored, and a repeated change for the same epoch only refreshes the ISR, so the metadata
//! reactor can apply the whole state as often as it likes.

use std::sync::MutexGuard;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{AppendError, LeaderState, Partition, producer_batch};
use crate::storage::batch::BatchIter;

/// What this broker is for a partition.
#[derive(Debug, Clone)]
pub enum Role {
    /// Opened but not yet placed by the metadata (right after open), or a local partition outside
    /// the replication protocol: its high watermark is its log end offset.
    Unassigned,
    /// This broker leads the partition.
    Leader {
        state: LeaderState,
        /// The log end offset when this leadership began (Kafka's leader epoch start offset): a
        /// follower joins the ISR only once it holds the records of this epoch.
        epoch_start_offset: i64,
    },
    /// This broker copies the partition from `leader` (-1: no leader now).
    Follower { leader: i32 },
}

/// A Fetch, ListOffsets or OffsetForLeaderEpoch `current_leader_epoch` that does not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EpochError {
    /// The client's epoch is older than ours: FENCED_LEADER_EPOCH.
    #[error("leader epoch {client} is older than the current {current}")]
    Fenced { client: i32, current: i32 },
    /// The client's epoch is newer than ours: UNKNOWN_LEADER_EPOCH.
    #[error("leader epoch {client} is newer than the current {current}")]
    Unknown { client: i32, current: i32 },
}

/// An ISR change the leader should commit, conditional on `partition_epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChange {
    pub isr: Vec<i32>,
    pub partition_epoch: i32,
}

impl Partition {
    pub(super) fn role_lock(&self) -> MutexGuard<'_, Role> {
        self.role
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A copy of the current role.
    pub fn role(&self) -> Role {
        self.role_lock().clone()
    }

    /// Whether this broker leads the partition (or hosts it outside replication).
    pub fn is_leader(&self) -> bool {
        matches!(*self.role_lock(), Role::Leader { .. } | Role::Unassigned)
    }

    /// The in-sync replicas as the leader sees them; empty on a follower.
    pub fn isr(&self) -> Vec<i32> {
        match &*self.role_lock() {
            Role::Leader { state, .. } => state.isr.clone(),
            _ => Vec::new(),
        }
    }

    /// Whether this leader has replicas outside its ISR.
    pub fn is_under_replicated(&self) -> bool {
        match &*self.role_lock() {
            Role::Leader { state, .. } => !state.out_of_sync().is_empty(),
            _ => false,
        }
    }

    /// Makes this broker the leader at `leader_epoch`. Returns whether anything changed; a stale
    /// epoch changes nothing.
    pub fn become_leader(
        &self,
        me: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
    ) -> bool {
        let now = Instant::now();
        let mut role = self.role_lock();
        let current = self.leader_epoch.load(Ordering::Acquire);
        if leader_epoch < current {
            return false;
        }
        match &mut *role {
            Role::Leader { state, .. } if state.leader_epoch == leader_epoch => {
                if state.partition_epoch == partition_epoch
                    && state.isr == isr
                    && state.replicas == replicas
                {
                    return false;
                }
                state.update(partition_epoch, replicas, isr, now);
            }
            _ => {
                *role = Role::Leader {
                    state: LeaderState::new(me, leader_epoch, partition_epoch, replicas, isr, now),
                    epoch_start_offset: self.log.log_end_offset(),
                };
                self.leader_epoch.store(leader_epoch, Ordering::Release);
                if let Err(e) = self.log.assign_leader_epoch(leader_epoch) {
                    tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "recording the leader epoch failed");
                }
                tracing::info!(topic = %self.topic, partition = self.index, leader_epoch, "became leader");
            }
        }
        self.refresh_hw_locked(&role);
        drop(role);
        self.role_version.send_modify(|v| *v += 1);
        true
    }

    /// Makes this broker a follower of `leader` at `leader_epoch`. Returns whether anything
    /// changed; a stale epoch changes nothing.
    pub fn become_follower(&self, leader: i32, leader_epoch: i32) -> bool {
        let mut role = self.role_lock();
        let current = self.leader_epoch.load(Ordering::Acquire);
        if leader_epoch < current {
            return false;
        }
        if leader_epoch == current && matches!(*role, Role::Follower { leader: l } if l == leader) {
            return false;
        }
        *role = Role::Follower { leader };
        self.leader_epoch.store(leader_epoch, Ordering::Release);
        drop(role);
        let leo = self.log.log_end_offset();
        self.hw.send_if_modified(|hw| {
            let changed = *hw > leo;
            *hw = (*hw).min(leo);
            changed
        });
        self.role_version.send_modify(|v| *v += 1);
        tracing::info!(topic = %self.topic, partition = self.index, leader, leader_epoch, "became follower");
        true
    }

    /// Compares a request's `current_leader_epoch` with ours (-1: the client does not know it).
    pub fn check_leader_epoch(&self, client: i32) -> Result<(), EpochError> {
        let current = self.leader_epoch();
        if client < 0 || client == current {
            Ok(())
        } else if client < current {
            Err(EpochError::Fenced { client, current })
        } else {
            Err(EpochError::Unknown { client, current })
        }
    }

    /// Leader: a follower fetched from `fetch_offset`; its progress may move the high watermark.
    /// Returns whether the replica is a follower of this leader and whether it now qualifies to
    /// join the ISR.
    pub fn record_follower_fetch(&self, replica: i32, fetch_offset: i64) -> (bool, bool) {
        let mut role = self.role_lock();
        let leo = self.log.log_end_offset();
        let Role::Leader { state, .. } = &mut *role else {
            return (false, false);
        };
        if !state.record_fetch(replica, fetch_offset, leo, Instant::now()) {
            return (false, false);
        }
        let joins = !state.isr.contains(&replica) && fetch_offset >= self.high_watermark();
        self.refresh_hw_locked(&role);
        (true, joins)
    }

    /// Leader: the ISR to commit now, if it should change (followers lagging over `max_lag` out,
    /// caught-up followers in).
    pub fn isr_change(&self, max_lag: Duration) -> Option<IsrChange> {
        let role = self.role_lock();
        let Role::Leader {
            state,
            epoch_start_offset,
        } = &*role
        else {
            return None;
        };
        let isr = state.isr_change(
            Instant::now(),
            max_lag,
            self.high_watermark(),
            *epoch_start_offset,
        )?;
        Some(IsrChange {
            isr,
            partition_epoch: state.partition_epoch,
        })
    }

    /// Holds the role while this broker follows at `leader_epoch`, so that a fetcher's answer is
    /// applied only if no role change happened since its request (a new leader's log must never
    /// be written or truncated with an old leader's data).
    fn follower_guard(&self, leader_epoch: i32) -> Result<MutexGuard<'_, Role>, AppendError> {
        let role = self.role_lock();
        if matches!(*role, Role::Follower { .. }) && self.leader_epoch() == leader_epoch {
            Ok(role)
        } else {
            Err(AppendError::RoleChanged {
                topic: self.topic.clone(),
                index: self.index,
            })
        }
    }

    /// Follower at `leader_epoch`: appends the leader's batches unchanged (offsets and leader
    /// epochs kept), records their producer state, and takes the leader's high watermark (capped
    /// by the new log end offset) and log start offset.
    pub fn append_as_follower(
        &self,
        leader_epoch: i32,
        batches: &[u8],
        leader_hw: i64,
        leader_log_start: i64,
    ) -> Result<(), AppendError> {
        let _role = self.follower_guard(leader_epoch)?;
        if !batches.is_empty() {
            let mut producers = self
                .producers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.log.append_with_offsets(batches)?;
            for header in BatchIter::without_crc(batches) {
                let header = header.map_err(AppendError::Storage)?;
                producers.record(&producer_batch(&header), header.base_offset());
            }
            drop(producers);
            self.leo.send_replace(self.log.log_end_offset());
        }
        let leo = self.log.log_end_offset();
        if leader_log_start > self.log.log_start_offset() && leader_log_start <= leo {
            self.log.delete_records_before(leader_log_start)?;
        }
        let hw = leader_hw.min(leo);
        self.hw.send_if_modified(|cur| {
            let changed = *cur != hw;
            *cur = hw;
            changed
        });
        Ok(())
    }

    /// Follower at `leader_epoch`: drops its records from `offset` on (they diverge from the
    /// leader's log).
    pub fn truncate_as_follower(&self, leader_epoch: i32, offset: i64) -> Result<(), AppendError> {
        let _role = self.follower_guard(leader_epoch)?;
        self.truncate_to(offset)?;
        Ok(())
    }

    /// Follower at `leader_epoch`: its fetch offset fell below the leader's log start; start
    /// over there.
    pub fn truncate_fully_and_start_at(
        &self,
        leader_epoch: i32,
        offset: i64,
    ) -> Result<(), AppendError> {
        let _role = self.follower_guard(leader_epoch)?;
        let mut producers = self
            .producers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.log.truncate_fully_and_start_at(offset)?;
        producers.truncate(0);
        drop(producers);
        self.leo.send_replace(self.log.log_end_offset());
        self.hw.send_replace(self.log.log_end_offset());
        Ok(())
    }

    /// Recomputes the high watermark after the log or the followers moved.
    pub(super) fn refresh_hw_locked(&self, role: &Role) {
        let leo = self.log.log_end_offset();
        let next = match role {
            Role::Unassigned => leo,
            Role::Leader { state, .. } => state.high_watermark(self.high_watermark(), leo),
            Role::Follower { .. } => return,
        };
        self.hw.send_if_modified(|hw| {
            let changed = *hw != next;
            *hw = next;
            changed
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::batch;
    use super::*;
    use crate::storage::LogConfig;
    use crate::storage::batch::BatchHeader;

    fn open(dir: &std::path::Path) -> Partition {
        Partition::open("t", 0, dir, LogConfig::default(), 0).unwrap()
    }

    fn append(p: &Partition, n: i32) -> super::super::Appended {
        let b = batch(n, -1, -1);
        let h = BatchHeader::parse(&b).unwrap();
        p.append(&b, &producer_batch(&h)).unwrap()
    }

    #[test]
    fn a_follower_keeps_the_leaders_offsets_and_epochs_and_caps_its_high_watermark() {
        let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let leader = open(ld.path());
        assert!(leader.become_leader(1, 4, 0, vec![1, 2], vec![1, 2]));
        append(&leader, 3);
        append(&leader, 2);
        // The follower has not fetched: nothing is committed yet.
        assert_eq!(leader.high_watermark(), 0);
        let follower = open(fd.path());
        assert!(follower.become_follower(1, 4));
        let bytes = leader.read_for_follower(0, 1 << 20, true).unwrap();
        follower.append_as_follower(4, &bytes, 0, 0).unwrap();
        assert_eq!(follower.log_end_offset(), 5);
        assert_eq!(follower.log().latest_epoch(), Some(4));
        assert_eq!(follower.read_for_follower(0, 1 << 20, true).unwrap(), bytes);
        // Its next fetch tells the leader it has everything.
        assert_eq!(leader.record_follower_fetch(2, 5), (true, false));
        assert_eq!(leader.high_watermark(), 5);
        follower.append_as_follower(4, &[], 9, 0).unwrap();
        assert_eq!(follower.high_watermark(), 5);
        // Only the leader appends: a write on the follower would fork its log.
        assert!(!follower.is_leader());
        let b = batch(1, -1, -1);
        let h = BatchHeader::parse(&b).unwrap();
        assert!(matches!(
            follower.append(&b, &producer_batch(&h)),
            Err(AppendError::NotLeader { .. })
        ));
        assert_eq!(follower.log_end_offset(), 5);
        // Data fetched before a role change is not applied after it.
        follower.become_follower(3, 5);
        assert!(matches!(
            follower.append_as_follower(4, &bytes, 5, 0),
            Err(AppendError::RoleChanged { .. })
        ));
        assert!(matches!(
            follower.truncate_as_follower(4, 0),
            Err(AppendError::RoleChanged { .. })
        ));
        assert_eq!(follower.log_end_offset(), 5);
    }

    #[test]
    fn a_follower_follows_the_leaders_log_start() {
        let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let leader = open(ld.path());
        leader.become_leader(1, 0, 0, vec![1], vec![1]);
        for _ in 0..3 {
            append(&leader, 2);
        }
        let follower = open(fd.path());
        follower.become_follower(1, 0);
        let bytes = leader.read_for_follower(0, 1 << 20, true).unwrap();
        follower.append_as_follower(0, &bytes, 6, 4).unwrap();
        assert_eq!(follower.log_start_offset(), 4);
        // Below the leader's log start: start over there.
        follower.truncate_fully_and_start_at(0, 10).unwrap();
        assert_eq!(
            (follower.log_start_offset(), follower.log_end_offset()),
            (10, 10)
        );
    }

    #[test]
    fn leader_epochs_older_are_fenced_and_newer_unknown() {
        let d = tempfile::tempdir().unwrap();
        let p = open(d.path());
        p.become_leader(1, 5, 0, vec![1], vec![1]);
        assert_eq!(p.check_leader_epoch(-1), Ok(()));
        assert_eq!(p.check_leader_epoch(5), Ok(()));
        assert!(matches!(
            p.check_leader_epoch(4),
            Err(EpochError::Fenced { .. })
        ));
        assert!(matches!(
            p.check_leader_epoch(6),
            Err(EpochError::Unknown { .. })
        ));
        // Role changes for older epochs are ignored; the same epoch is idempotent.
        assert!(!p.become_follower(2, 4));
        assert!(!p.become_leader(1, 5, 0, vec![1], vec![1]));
        assert!(p.is_leader());
    }

    #[test]
    fn a_restart_does_not_expose_records_above_the_checkpointed_high_watermark() {
        let d = tempfile::tempdir().unwrap();
        let p = open(d.path());
        p.become_leader(1, 0, 0, vec![1, 2], vec![1, 2]);
        append(&p, 4);
        p.record_follower_fetch(2, 4);
        append(&p, 4);
        assert_eq!(p.high_watermark(), 4);
        p.checkpoint_high_watermark().unwrap();
        drop(p);
        let p = open(d.path());
        assert_eq!((p.high_watermark(), p.log_end_offset()), (4, 8));
        // As a follower it keeps that; as the only in-sync replica it may expose everything.
        p.become_follower(2, 1);
        assert_eq!(p.high_watermark(), 4);
        p.become_leader(1, 2, 1, vec![1, 2], vec![1]);
        assert_eq!(p.high_watermark(), 8);
    }

    #[test]
    fn the_isr_shrinks_without_fetches_and_expands_when_the_follower_catches_up() {
        let d = tempfile::tempdir().unwrap();
        let p = open(d.path());
        p.become_leader(1, 0, 3, vec![1, 2], vec![1, 2]);
        append(&p, 2);
        assert_eq!(p.isr_change(Duration::from_secs(60)), None);
        assert_eq!(
            p.isr_change(Duration::ZERO),
            Some(IsrChange {
                isr: vec![1],
                partition_epoch: 3
            })
        );
        p.become_leader(1, 0, 4, vec![1, 2], vec![1]);
        assert_eq!(p.high_watermark(), 2);
        assert!(p.is_under_replicated());
        assert_eq!(p.record_follower_fetch(2, 2), (true, true));
        assert_eq!(
            p.isr_change(Duration::from_secs(60)),
            Some(IsrChange {
                isr: vec![1, 2],
                partition_epoch: 4
            })
        );
    }
}
