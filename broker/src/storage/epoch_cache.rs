//! The leader epoch cache: for each leader epoch, the first offset appended in it.
//!
//! Replication answers OffsetForLeaderEpoch from it and truncates divergent logs with it. It
//! changes only when a batch with a new, higher epoch is appended (rarely), on truncation and when
//! the log start moves, and is persisted in `leader-epoch-checkpoint` as `<epoch> <start offset>`
//! lines. On recovery, epochs seen in the scanned active segment are re-added, so a crash between
//! an append and the checkpoint write loses nothing.

use std::path::{Path, PathBuf};

use super::{StorageError, checkpoint};

/// File name of the checkpoint in the partition directory.
pub(crate) const FILE_NAME: &str = "leader-epoch-checkpoint";

/// `(epoch, start offset)` entries with both strictly increasing.
#[derive(Debug)]
pub(crate) struct EpochCache {
    path: PathBuf,
    entries: Vec<(i32, i64)>,
}

impl EpochCache {
    /// Loads the checkpoint in `dir` (empty when missing).
    pub(crate) fn load(dir: &Path) -> Result<Self, StorageError> {
        let path = dir.join(FILE_NAME);
        let mut entries = Vec::new();
        for line in checkpoint::read(&path)?.unwrap_or_default() {
            let mut parts = line.split_whitespace();
            let parsed = (
                parts.next().and_then(|e| e.parse::<i32>().ok()),
                parts.next().and_then(|o| o.parse::<i64>().ok()),
            );
            let (Some(epoch), Some(offset)) = parsed else {
                return Err(StorageError::InvalidCheckpoint {
                    path,
                    reason: format!("bad entry {line:?}"),
                });
            };
            entries.push((epoch, offset));
        }
        Ok(Self { path, entries })
    }

    fn persist(&self) -> Result<(), StorageError> {
        let lines: Vec<String> = self
            .entries
            .iter()
            .map(|(e, o)| format!("{e} {o}"))
            .collect();
        checkpoint::write(&self.path, &lines)
    }

    /// Records that `epoch` starts at `offset` if it is newer than the latest epoch. Returns
    /// whether the cache changed (in memory; call [`EpochCache::flush`] to persist).
    pub(crate) fn assign(&mut self, epoch: i32, offset: i64) -> bool {
        if epoch < 0 {
            return false;
        }
        match self.entries.last() {
            Some(&(e, o)) if epoch <= e || offset < o => false,
            _ => {
                self.entries.push((epoch, offset));
                true
            }
        }
    }

    /// Persists the cache.
    pub(crate) fn flush(&self) -> Result<(), StorageError> {
        self.persist()
    }

    pub(crate) fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|&(e, _)| e)
    }

    /// Drops epochs starting at or after `offset` (log truncation). Returns whether it changed.
    pub(crate) fn truncate_from_end(&mut self, offset: i64) -> bool {
        let keep = self.entries.partition_point(|&(_, o)| o < offset);
        let changed = keep != self.entries.len();
        self.entries.truncate(keep);
        changed
    }

    /// Forgets epochs that ended before `offset` and moves the start of the epoch holding it to
    /// `offset` (log start moved). Returns whether it changed.
    pub(crate) fn truncate_from_start(&mut self, offset: i64) -> bool {
        let first_kept = self
            .entries
            .partition_point(|&(_, o)| o <= offset)
            .saturating_sub(1);
        let mut changed = first_kept > 0;
        self.entries.drain(..first_kept);
        if let Some(first) = self.entries.first_mut()
            && first.1 < offset
        {
            first.1 = offset;
            changed = true;
        }
        changed
    }

    /// Kafka's OffsetForLeaderEpoch answer: the largest epoch at most `epoch` and the end offset
    /// of that epoch (the start of the next one, or `log_end_offset` for the latest epoch);
    /// `(-1, -1)` when `epoch` is unknown or newer than the latest.
    pub(crate) fn end_offset_for(&self, epoch: i32, log_end_offset: i64) -> (i32, i64) {
        if epoch < 0 {
            return (-1, -1);
        }
        if self.latest_epoch() == Some(epoch) {
            return (epoch, log_end_offset);
        }
        let higher = self.entries.partition_point(|&(e, _)| e <= epoch);
        let Some(&(_, next_start)) = self.entries.get(higher) else {
            return (-1, -1);
        };
        match higher.checked_sub(1).and_then(|i| self.entries.get(i)) {
            Some(&(floor_epoch, _)) => (floor_epoch, next_start),
            None => (epoch, next_start),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> EpochCache {
        EpochCache {
            path: PathBuf::from("/nonexistent"),
            entries: entries.to_vec(),
        }
    }

    #[test]
    fn only_newer_epochs_are_assigned() {
        let mut c = cache(&[]);
        assert!(c.assign(1, 0));
        assert!(!c.assign(1, 5));
        assert!(!c.assign(0, 10));
        assert!(c.assign(3, 10));
        assert_eq!(c.latest_epoch(), Some(3));
    }

    #[test]
    fn end_offsets_follow_kafka() {
        let c = cache(&[(1, 0), (3, 10), (4, 20)]);
        assert_eq!(c.end_offset_for(4, 30), (4, 30));
        assert_eq!(c.end_offset_for(3, 30), (3, 20));
        assert_eq!(c.end_offset_for(2, 30), (1, 10));
        assert_eq!(c.end_offset_for(0, 30), (0, 0));
        assert_eq!(c.end_offset_for(5, 30), (-1, -1));
        assert_eq!(c.end_offset_for(-1, 30), (-1, -1));
    }

    #[test]
    fn truncation_from_both_ends() {
        let mut c = cache(&[(1, 0), (3, 10), (4, 20)]);
        assert!(c.truncate_from_end(20));
        assert_eq!(c.entries, vec![(1, 0), (3, 10)]);
        assert!(c.truncate_from_start(12));
        assert_eq!(c.entries, vec![(3, 12)]);
        assert!(!c.truncate_from_start(5));
    }

    #[test]
    fn persists_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = EpochCache::load(dir.path()).unwrap();
        c.assign(2, 0);
        c.assign(5, 7);
        c.flush().unwrap();
        let c = EpochCache::load(dir.path()).unwrap();
        assert_eq!(c.entries, vec![(2, 0), (5, 7)]);
    }
}
