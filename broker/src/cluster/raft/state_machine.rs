//! The metadata state machine: applies committed [`MetadataBatch`]es to the shared
//! [`ClusterState`], and builds, persists and installs snapshots.
//!
//! The state itself lives in memory; what makes it durable is the last snapshot (a file written
//! atomically, `snapshot.json`) plus the log after it, which openraft re-applies up to the saved
//! commit index on start. Applying is deterministic, so every node derives the same state.

#![allow(
    clippy::result_large_err,
    reason = "openraft's storage traits fix `StorageError` as the error type"
)]

use std::collections::{HashMap, VecDeque};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::super::state::{ClusterState, MetadataRecord};
use super::super::store::{Shared, snapshot_records, write_atomically};
use super::{MetadataBatch, TypeConfig};

const SNAPSHOT_FILE: &str = "snapshot.json";
/// How many recent batch ids (with their outcome) are remembered to drop a retried duplicate.
const RECENT_BATCHES: usize = 1000;

type StoreResult<T> = Result<T, StorageError<u64>>;

/// What a snapshot holds: the records that recreate the state, plus the replicated extras.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct SnapshotContent {
    pub(crate) cluster_id: Option<String>,
    pub(crate) records: Vec<MetadataRecord>,
    /// Recent batch ids, oldest first, with whether each was applied.
    pub(crate) recent: Vec<(Uuid, bool)>,
}

/// The snapshot file: its Raft metadata and its content.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<u64, BasicNode>,
    content: SnapshotContent,
}

/// The applied state machine. Readers use the [`Shared`] state; openraft drives this.
pub(crate) struct StateMachine {
    shared: Arc<Shared>,
    dir: PathBuf,
    last_applied: Option<LogId<u64>>,
    last_membership: StoredMembership<u64, BasicNode>,
    recent: VecDeque<Uuid>,
    outcomes: HashMap<Uuid, bool>,
    /// The last snapshot built or installed; shared with the snapshot builders.
    current: Arc<Mutex<Option<StoredSnapshot>>>,
    built: u64,
}

impl StateMachine {
    /// Restores the state from the snapshot in `dir`, if there is one, into `shared`.
    pub(crate) fn open(dir: &Path, shared: Arc<Shared>) -> Result<Self, std::io::Error> {
        let mut sm = StateMachine {
            shared,
            dir: dir.to_owned(),
            last_applied: None,
            last_membership: StoredMembership::default(),
            recent: VecDeque::new(),
            outcomes: HashMap::new(),
            current: Arc::new(Mutex::new(None)),
            built: 0,
        };
        match std::fs::read(dir.join(SNAPSHOT_FILE)) {
            Ok(bytes) => {
                let stored: StoredSnapshot = serde_json::from_slice(&bytes)?;
                sm.restore(&stored);
                *lock(&sm.current) = Some(stored);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(sm)
    }

    /// Replaces the whole state with a snapshot's.
    fn restore(&mut self, stored: &StoredSnapshot) {
        let mut state = ClusterState::default();
        for r in &stored.content.records {
            state.apply(r);
        }
        self.shared.replace(state);
        if let Some(id) = &stored.content.cluster_id {
            self.shared.set_cluster_id(id);
        }
        self.recent = stored.content.recent.iter().map(|(id, _)| *id).collect();
        self.outcomes = stored.content.recent.iter().copied().collect();
        self.last_applied = stored.meta.last_log_id;
        self.last_membership = stored.meta.last_membership.clone();
    }

    fn remember(&mut self, id: Uuid, applied: bool) {
        self.outcomes.insert(id, applied);
        self.recent.push_back(id);
        while self.recent.len() > RECENT_BATCHES {
            if let Some(old) = self.recent.pop_front() {
                self.outcomes.remove(&old);
            }
        }
    }

    /// Applies a batch unless its precondition fails or it was applied before (then its first
    /// outcome is repeated); returns whether it was applied.
    fn apply_batch(&mut self, batch: &MetadataBatch) -> bool {
        if let Some(&applied) = self.outcomes.get(&batch.id) {
            tracing::debug!(id = %batch.id, "dropped a batch applied before (a retried commit)");
            return applied;
        }
        let applied = batch
            .if_next_producer_id
            .is_none_or(|n| self.shared.read().next_producer_id == n);
        if applied {
            if let Some(id) = &batch.cluster_id {
                self.shared.set_cluster_id(id);
            }
            if !batch.records.is_empty() {
                self.shared.apply(&batch.records);
            }
        }
        self.remember(batch.id, applied);
        applied
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn persist(dir: &Path, stored: &StoredSnapshot) -> StoreResult<()> {
    let bytes = serde_json::to_vec(stored)
        .map_err(|e| StorageIOError::write_snapshot(Some(stored.meta.signature()), &e))?;
    write_atomically(&dir.join(SNAPSHOT_FILE), &bytes)
        .map_err(|e| StorageIOError::write_snapshot(Some(stored.meta.signature()), &e).into())
}

fn to_snapshot(stored: &StoredSnapshot) -> StoreResult<Snapshot<TypeConfig>> {
    let bytes = serde_json::to_vec(&stored.content)
        .map_err(|e| StorageIOError::read_snapshot(Some(stored.meta.signature()), &e))?;
    Ok(Snapshot {
        meta: stored.meta.clone(),
        snapshot: Box::new(Cursor::new(bytes)),
    })
}

/// Builds a snapshot from a copy of the state taken when openraft asked for the builder.
pub(crate) struct SnapshotBuilder {
    dir: PathBuf,
    meta: SnapshotMeta<u64, BasicNode>,
    content: SnapshotContent,
    current: Arc<Mutex<Option<StoredSnapshot>>>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> StoreResult<Snapshot<TypeConfig>> {
        let stored = StoredSnapshot {
            meta: self.meta.clone(),
            content: std::mem::take(&mut self.content),
        };
        // Durable before openraft may purge the log entries it covers.
        persist(&self.dir, &stored)?;
        let snapshot = to_snapshot(&stored)?;
        tracing::info!(snapshot = %stored.meta, "built a metadata snapshot");
        *lock(&self.current) = Some(stored);
        Ok(snapshot)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> StoreResult<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>)> {
        Ok((self.last_applied, self.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StoreResult<Vec<bool>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut out = Vec::new();
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            let applied = match &entry.payload {
                EntryPayload::Blank => true,
                EntryPayload::Normal(batch) => self.apply_batch(batch),
                EntryPayload::Membership(m) => {
                    self.last_membership = StoredMembership::new(Some(entry.log_id), m.clone());
                    true
                }
            };
            out.push(applied);
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.built += 1;
        let last = self.last_applied;
        let snapshot_id = match last {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, self.built),
            None => format!("none-{}", self.built),
        };
        let content = SnapshotContent {
            cluster_id: self.shared.cluster_id().map(str::to_owned),
            records: snapshot_records(&self.shared.read()),
            recent: self
                .recent
                .iter()
                .map(|id| (*id, self.outcomes.get(id).copied().unwrap_or(true)))
                .collect(),
        };
        SnapshotBuilder {
            dir: self.dir.clone(),
            meta: SnapshotMeta {
                last_log_id: last,
                last_membership: self.last_membership.clone(),
                snapshot_id,
            },
            content,
            current: self.current.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> StoreResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StoreResult<()> {
        let content: SnapshotContent = serde_json::from_slice(snapshot.get_ref())
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            content,
        };
        persist(&self.dir, &stored)?;
        self.restore(&stored);
        tracing::info!(snapshot = %meta, "installed a metadata snapshot from the leader");
        *lock(&self.current) = Some(stored);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StoreResult<Option<Snapshot<TypeConfig>>> {
        let current = lock(&self.current).clone();
        current.as_ref().map(to_snapshot).transpose()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use openraft::{CommittedLeaderId, Membership};

    use super::*;
    use crate::cluster::{PartitionInfo, TopicInfo};

    fn create(name: &str) -> MetadataRecord {
        MetadataRecord::CreateTopic(TopicInfo {
            name: name.into(),
            id: Uuid::new_v4(),
            partitions: vec![PartitionInfo::new(0, vec![0, 1])],
            configs: BTreeMap::new(),
        })
    }

    fn normal(index: u64, batch: MetadataBatch) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
            payload: EntryPayload::Normal(batch),
        }
    }

    fn open(dir: &Path) -> (StateMachine, Arc<Shared>) {
        let shared = Arc::new(Shared::new());
        (StateMachine::open(dir, shared.clone()).unwrap(), shared)
    }

    #[tokio::test]
    async fn a_retried_batch_is_applied_once_and_the_first_cluster_id_wins() {
        let dir = tempfile::tempdir().unwrap();
        let (mut sm, shared) = open(dir.path());
        let batch = MetadataBatch::new(vec![MetadataRecord::AllocateProducerIds { next: 10 }]);
        let first_id = MetadataBatch {
            cluster_id: Some("first".into()),
            ..MetadataBatch::new(Vec::new())
        };
        let second_id = MetadataBatch {
            cluster_id: Some("second".into()),
            ..MetadataBatch::new(Vec::new())
        };
        let changes = shared.changes.subscribe();
        sm.apply([
            normal(1, first_id),
            normal(2, batch.clone()),
            normal(3, second_id),
            normal(4, batch),
        ])
        .await
        .unwrap();
        assert_eq!(shared.cluster_id(), Some("first"));
        assert_eq!(shared.read().next_producer_id, 10);
        assert!(changes.has_changed().unwrap());
        let (applied, _) = sm.applied_state().await.unwrap();
        assert_eq!(applied.map(|l| l.index), Some(4));
    }

    #[tokio::test]
    async fn a_batch_with_a_stale_producer_id_precondition_is_skipped_and_so_is_its_retry() {
        let dir = tempfile::tempdir().unwrap();
        let (mut sm, shared) = open(dir.path());
        let claim = |expected: i64| MetadataBatch {
            if_next_producer_id: Some(expected),
            ..MetadataBatch::new(vec![MetadataRecord::AllocateProducerIds {
                next: expected + 1000,
            }])
        };
        let first = claim(0);
        let racing = claim(0);
        let out = sm
            .apply([
                normal(1, first.clone()),
                normal(2, racing.clone()),
                normal(3, racing),
                normal(4, first),
            ])
            .await
            .unwrap();
        // The retry of each batch repeats its first outcome.
        assert_eq!(out, vec![true, false, false, true]);
        assert_eq!(shared.read().next_producer_id, 1000);
        let out = sm.apply([normal(5, claim(1000))]).await.unwrap();
        assert_eq!(out, vec![true]);
        assert_eq!(shared.read().next_producer_id, 2000);
    }

    #[tokio::test]
    async fn a_snapshot_rebuilds_the_same_state_elsewhere_and_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (mut sm, shared) = open(dir.path());
        let membership = Membership::new(vec![[0, 1, 2].into()], None);
        sm.apply([
            Entry {
                log_id: LogId::new(CommittedLeaderId::new(1, 0), 1),
                payload: EntryPayload::Membership(membership.clone()),
            },
            normal(
                2,
                MetadataBatch {
                    cluster_id: Some("c1".into()),
                    ..MetadataBatch::new(vec![create("a"), create("b")])
                },
            ),
            normal(
                3,
                MetadataBatch::new(vec![MetadataRecord::DeleteTopic { name: "a".into() }]),
            ),
        ])
        .await
        .unwrap();
        let snapshot = sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        assert_eq!(snapshot.meta.last_log_id.map(|l| l.index), Some(3));

        // Installed on another node.
        let other = tempfile::tempdir().unwrap();
        let (mut sm2, shared2) = open(other.path());
        sm2.install_snapshot(&snapshot.meta, snapshot.snapshot.clone())
            .await
            .unwrap();
        assert_eq!(shared2.cluster_id(), Some("c1"));
        assert_eq!(shared2.read().topics.keys().collect::<Vec<_>>(), vec!["b"]);
        assert_eq!(shared2.read().topic("b"), shared.read().topic("b"),);
        let (applied, m) = sm2.applied_state().await.unwrap();
        assert_eq!(applied.map(|l| l.index), Some(3));
        assert_eq!(m.membership(), &membership);

        // Restored from the file after a restart, with the batch ids it had seen.
        drop(sm);
        let (mut sm3, shared3) = open(dir.path());
        assert_eq!(shared3.cluster_id(), Some("c1"));
        assert!(shared3.read().topic("b").is_some() && shared3.read().topic("a").is_none());
        let current = sm3.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, snapshot.meta);
        assert_eq!(sm3.recent.len(), 2);
    }

    #[tokio::test]
    async fn a_torn_temporary_snapshot_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let (mut sm, _) = open(dir.path());
        sm.apply([normal(1, MetadataBatch::new(vec![create("a")]))])
            .await
            .unwrap();
        sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        // A crash in the middle of writing the next snapshot leaves only a torn temporary file.
        std::fs::write(dir.path().join("snapshot.tmp"), b"{\"meta\":{\"last_lo").unwrap();
        drop(sm);
        let (mut sm, shared) = open(dir.path());
        assert!(shared.read().topic("a").is_some());
        assert_eq!(
            sm.applied_state().await.unwrap().0.map(|l| l.index),
            Some(1)
        );
    }

    #[tokio::test]
    async fn a_corrupt_snapshot_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SNAPSHOT_FILE), b"{\"meta\":").unwrap();
        assert!(StateMachine::open(dir.path(), Arc::new(Shared::new())).is_err());
        let (mut sm, _) = open(tempfile::tempdir().unwrap().path());
        let meta = SnapshotMeta::default();
        assert!(
            sm.install_snapshot(&meta, Box::new(Cursor::new(b"nope".to_vec())))
                .await
                .is_err()
        );
    }
}
