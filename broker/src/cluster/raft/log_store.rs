//! The Raft log, vote and commit index, durable in one redb file (`raft.redb`).
//!
//! Every change is one redb write transaction committed with immediate durability (fsync) before
//! the call returns, so a vote is never forgotten and an acknowledged entry never lost: redb's
//! copy-on-write commit leaves either the old or the new state after a crash at any point. Entries
//! are JSON; the file is small because the log is purged behind each snapshot.

#![allow(
    clippy::result_large_err,
    reason = "openraft's storage traits fix `StorageError` as the error type"
)]

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{Entry, LogId, LogState, RaftLogReader, StorageError, StorageIOError, Vote};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::TypeConfig;

/// Log index -> JSON of the entry.
const LOGS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("logs");
/// `vote`, `committed`, `last_purged` -> JSON.
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

type StoreResult<T> = Result<T, StorageError<u64>>;

fn read_err(e: impl std::error::Error + 'static) -> StorageError<u64> {
    StorageIOError::read_logs(&e).into()
}

fn write_err(e: impl std::error::Error + 'static) -> StorageError<u64> {
    StorageIOError::write_logs(&e).into()
}

/// The log storage. Clones share the database (the log reader openraft asks for is a clone).
#[derive(Clone)]
pub(crate) struct LogStore {
    db: Arc<Database>,
    /// The last committed index saved, for metrics and catch-up checks (0 before any).
    committed: Arc<AtomicU64>,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").finish_non_exhaustive()
    }
}

impl LogStore {
    /// Opens (or creates) `raft.redb` in `dir`.
    pub(crate) fn open(dir: &Path) -> Result<Self, redb::Error> {
        let db = Database::create(dir.join("raft.redb"))?;
        let tx = db.begin_write()?;
        tx.open_table(LOGS)?;
        tx.open_table(META)?;
        tx.commit()?;
        let store = LogStore {
            db: Arc::new(db),
            committed: Arc::new(AtomicU64::new(0)),
        };
        if let Ok(Some(c)) = store.get_meta::<LogId<u64>>(COMMITTED) {
            store.committed.store(c.index, Ordering::Relaxed);
        }
        Ok(store)
    }

    /// The commit index last saved.
    pub(crate) fn committed_index(&self) -> Arc<AtomicU64> {
        self.committed.clone()
    }

    fn get_meta<T: DeserializeOwned>(&self, key: &str) -> StoreResult<Option<T>> {
        let tx = self.db.begin_read().map_err(read_err)?;
        let table = tx.open_table(META).map_err(read_err)?;
        let Some(v) = table.get(key).map_err(read_err)? else {
            return Ok(None);
        };
        serde_json::from_slice(v.value())
            .map(Some)
            .map_err(read_err)
    }

    fn put_meta<T: Serialize>(&self, key: &str, value: &T) -> StoreResult<()> {
        let bytes = serde_json::to_vec(value).map_err(write_err)?;
        let tx = self.db.begin_write().map_err(write_err)?;
        {
            let mut table = tx.open_table(META).map_err(write_err)?;
            table.insert(key, bytes.as_slice()).map_err(write_err)?;
        }
        tx.commit().map_err(write_err)
    }

    fn last_entry_id(&self) -> StoreResult<Option<LogId<u64>>> {
        let tx = self.db.begin_read().map_err(read_err)?;
        let table = tx.open_table(LOGS).map_err(read_err)?;
        let Some((_, v)) = table.last().map_err(read_err)? else {
            return Ok(None);
        };
        let entry: Entry<TypeConfig> = serde_json::from_slice(v.value()).map_err(read_err)?;
        Ok(Some(entry.log_id))
    }

    /// Removes the entries with index in `range` in one transaction, with `meta` written alongside.
    fn remove_range(
        &self,
        range: impl RangeBounds<u64>,
        meta: Option<(&str, Vec<u8>)>,
    ) -> StoreResult<()> {
        let tx = self.db.begin_write().map_err(write_err)?;
        {
            let mut logs = tx.open_table(LOGS).map_err(write_err)?;
            let start = match range.start_bound() {
                Bound::Included(&s) => s,
                Bound::Excluded(&s) => s.saturating_add(1),
                Bound::Unbounded => 0,
            };
            let end = match range.end_bound() {
                Bound::Included(&e) => Some(e),
                Bound::Excluded(&e) => e.checked_sub(1),
                Bound::Unbounded => Some(u64::MAX),
            };
            if let Some(end) = end
                && start <= end
            {
                logs.retain_in(start..=end, |_, _| false)
                    .map_err(write_err)?;
            }
            if let Some((key, value)) = meta {
                let mut table = tx.open_table(META).map_err(write_err)?;
                table.insert(key, value.as_slice()).map_err(write_err)?;
            }
        }
        tx.commit().map_err(write_err)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> StoreResult<Vec<Entry<TypeConfig>>> {
        let tx = self.db.begin_read().map_err(read_err)?;
        let table = tx.open_table(LOGS).map_err(read_err)?;
        let mut out = Vec::new();
        for item in table.range(range).map_err(read_err)? {
            let (_, v) = item.map_err(read_err)?;
            out.push(serde_json::from_slice(v.value()).map_err(read_err)?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> StoreResult<LogState<TypeConfig>> {
        let last_purged_log_id = self.get_meta::<LogId<u64>>(LAST_PURGED)?;
        let last_log_id = self.last_entry_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> StoreResult<()> {
        self.put_meta(VOTE, vote)
    }

    async fn read_vote(&mut self) -> StoreResult<Option<Vote<u64>>> {
        self.get_meta(VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> StoreResult<()> {
        self.put_meta(COMMITTED, &committed)?;
        if let Some(c) = committed {
            self.committed.store(c.index, Ordering::Relaxed);
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> StoreResult<Option<LogId<u64>>> {
        Ok(self.get_meta::<Option<LogId<u64>>>(COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StoreResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let tx = self.db.begin_write().map_err(write_err)?;
        {
            let mut table = tx.open_table(LOGS).map_err(write_err)?;
            for entry in entries {
                let bytes = serde_json::to_vec(&entry).map_err(write_err)?;
                table
                    .insert(entry.log_id.index, bytes.as_slice())
                    .map_err(write_err)?;
            }
        }
        // Durable before the callback: openraft counts the entries as flushed from then on.
        tx.commit().map_err(write_err)?;
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> StoreResult<()> {
        self.remove_range(log_id.index.., None)
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> StoreResult<()> {
        let purged = serde_json::to_vec(&log_id).map_err(write_err)?;
        self.remove_range(..=log_id.index, Some((LAST_PURGED, purged)))
    }
}

#[cfg(test)]
mod tests {
    use openraft::storage::RaftLogStorageExt;
    use openraft::testing::{StoreBuilder, Suite};
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::cluster::MetadataRecord;
    use crate::cluster::raft::MetadataBatch;
    use crate::cluster::raft::state_machine::StateMachine;
    use crate::cluster::store::Shared;

    struct Builder;

    impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
        async fn build(
            &self,
        ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<u64>> {
            let dir = tempfile::tempdir().map_err(|e| StorageIOError::write_logs(&e))?;
            let log = LogStore::open(dir.path()).map_err(|e| StorageIOError::write_logs(&e))?;
            let sm = StateMachine::open(dir.path(), Arc::new(Shared::new()))
                .map_err(|e| StorageIOError::write_logs(&e))?;
            Ok((dir, log, sm))
        }
    }

    #[test]
    fn the_store_passes_openraft_storage_conformance() {
        Suite::test_all(Builder).unwrap();
    }

    fn entry(term: u64, index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 0), index),
            payload: EntryPayload::Normal(MetadataBatch::new(vec![
                MetadataRecord::AllocateProducerIds {
                    next: i64::try_from(index).unwrap(),
                },
            ])),
        }
    }

    #[tokio::test]
    async fn log_vote_and_commit_index_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let vote = Vote::new_committed(3, 1);
        {
            let mut s = LogStore::open(dir.path()).unwrap();
            s.blocking_append((1..=10).map(|i| entry(2, i)))
                .await
                .unwrap();
            s.save_vote(&vote).await.unwrap();
            s.save_committed(Some(LogId::new(CommittedLeaderId::new(2, 0), 8)))
                .await
                .unwrap();
            s.purge(LogId::new(CommittedLeaderId::new(2, 0), 3))
                .await
                .unwrap();
            s.truncate(LogId::new(CommittedLeaderId::new(2, 0), 9))
                .await
                .unwrap();
        }
        let mut s = LogStore::open(dir.path()).unwrap();
        assert_eq!(s.read_vote().await.unwrap(), Some(vote));
        assert_eq!(s.read_committed().await.unwrap().map(|l| l.index), Some(8));
        assert_eq!(s.committed_index().load(Ordering::Relaxed), 8);
        let state = s.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(3));
        assert_eq!(state.last_log_id.map(|l| l.index), Some(8));
        let entries = s.try_get_log_entries(0..100).await.unwrap();
        let indexes: Vec<u64> = entries.iter().map(|e| e.log_id.index).collect();
        assert_eq!(indexes, (4..=8).collect::<Vec<_>>());
        assert!(matches!(
            &entries[0].payload,
            EntryPayload::Normal(b) if b.records == [MetadataRecord::AllocateProducerIds { next: 4 }]
        ));
    }

    #[tokio::test]
    async fn a_fully_purged_log_reports_the_purged_id_as_last() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = LogStore::open(dir.path()).unwrap();
        s.blocking_append((1..=4).map(|i| entry(1, i)))
            .await
            .unwrap();
        s.purge(LogId::new(CommittedLeaderId::new(1, 0), 4))
            .await
            .unwrap();
        drop(s);
        let mut s = LogStore::open(dir.path()).unwrap();
        let state = s.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, state.last_purged_log_id);
        assert_eq!(state.last_log_id.map(|l| l.index), Some(4));
        assert!(s.try_get_log_entries(..).await.unwrap().is_empty());
    }

    #[test]
    fn a_file_that_is_not_a_database_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("raft.redb"), b"torn or foreign bytes").unwrap();
        assert!(LogStore::open(dir.path()).is_err());
    }
}
