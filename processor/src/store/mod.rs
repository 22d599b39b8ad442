//! The local store of one task: a redb file per (store, input partition) with an in-memory write
//! overlay.
//!
//! Why the overlay: a task touches the same few keys many times between commits (a page's count in
//! the current window), so writes land in `dirty` and reach the file and the changelog once per commit,
//! as one redb transaction that also records the [`Checkpoint`]. The file therefore always holds the
//! state as of a commit boundary together with the input offset that state has absorbed and the
//! changelog offset it corresponds to; a crash between commits loses only the overlay, which the
//! changelog tail and the input replay rebuild.
//!
//! redb was chosen over fjall with `examples/store_bench.rs` (figures in the crate docs): fjall's
//! journal makes a fsynced commit of a batch 2-4x cheaper, but with the overlay that cost is paid once
//! per commit interval (27 ms for 2,000 changed keys: under 3% of a one-second interval),
//! while reads that miss the overlay are 4x faster in redb, bulk restore runs at the same rate, and a
//! redb store is one file with no background threads: a pod holds one store per partition, and an LSM
//! per partition means flush and compaction workers per partition.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use redb::{Database, Durability, ReadableDatabase, TableDefinition};

use crate::error::StoreError;

#[cfg(test)]
mod tests;

const DATA: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("data");
const META: TableDefinition<'_, &str, i64> = TableDefinition::new("meta");
const META_ABSORBED: &str = "absorbed";
const META_CHANGELOG: &str = "changelog_offset";

/// Key-value pairs as returned by range reads.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Clean entries kept in memory after a commit before the read cache is dropped and refilled.
const DEFAULT_CACHE_ENTRIES: usize = 200_000;

/// Where a store stands: the next input offset its state has absorbed, and the offset of the last
/// changelog record (the commit marker) that state corresponds to. `None` means "nothing yet".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// The next input offset to process: every input record before it is reflected in the state.
    pub absorbed: Option<i64>,
    /// The changelog offset of the commit marker written with this state.
    pub changelog_offset: Option<i64>,
}

/// A key-value store owned by one task. Keys and values are bytes; keys whose first byte is 0 are
/// reserved for the runtime's own records in the changelog.
///
/// Reads see the task's own uncommitted writes. Nothing is durable until [`LocalStore::commit`].
#[derive(Debug)]
pub struct LocalStore {
    name: String,
    path: PathBuf,
    db: Database,
    /// Writes since the last commit; `None` is a delete. Ordered so that range reads can merge it.
    dirty: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Clean values read from or committed to the file (`None`: known absent).
    cache: HashMap<Vec<u8>, Option<Vec<u8>>>,
    cache_limit: usize,
}

impl LocalStore {
    /// Opens (or creates) the store file at `path`. The parent directory is created if missing.
    ///
    /// # Errors
    /// The directory or file cannot be created or is not a valid redb file.
    pub fn open(name: &str, path: &Path) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::Io {
                path: parent.to_owned(),
                source,
            })?;
        }
        let db = Database::create(path).map_err(|source| StoreError::Open {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        let store = Self {
            name: name.to_owned(),
            path: path.to_owned(),
            db,
            dirty: BTreeMap::new(),
            cache: HashMap::new(),
            cache_limit: DEFAULT_CACHE_ENTRIES,
        };
        // Create both tables so that read transactions never meet a missing table.
        store.write_txn(Durability::Immediate, |_, _| Ok(()))?;
        Ok(store)
    }

    /// The store's name (as declared by the job).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The store file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads a key, seeing uncommitted writes.
    ///
    /// # Errors
    /// The file cannot be read.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<&[u8]>, StoreError> {
        if self.dirty.contains_key(key) {
            return Ok(self.dirty.get(key).and_then(Option::as_deref));
        }
        if !self.cache.contains_key(key) {
            let loaded = self.read_file(key)?;
            if self.cache.len() >= self.cache_limit {
                self.cache.clear();
            }
            self.cache.insert(key.to_vec(), loaded);
        }
        Ok(self.cache.get(key).and_then(Option::as_deref))
    }

    /// Writes a key. The write is visible to reads at once and durable after the next commit.
    ///
    /// # Errors
    /// The key is in the reserved namespace (starts with byte 0).
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        check_key(key)?;
        self.cache.remove(key);
        self.dirty.insert(key.to_vec(), Some(value.to_vec()));
        Ok(())
    }

    /// Deletes a key (a tombstone in the changelog).
    ///
    /// # Errors
    /// The key is in the reserved namespace (starts with byte 0).
    pub fn delete(&mut self, key: &[u8]) -> Result<(), StoreError> {
        check_key(key)?;
        self.cache.remove(key);
        self.dirty.insert(key.to_vec(), None);
        Ok(())
    }

    /// All live entries with `start <= key < end`, in key order, seeing uncommitted writes.
    ///
    /// # Errors
    /// The file cannot be read.
    pub fn range(&self, start: &[u8], end: &[u8]) -> Result<Entries, StoreError> {
        let mut merged: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        if start < end {
            let txn = self
                .db
                .begin_read()
                .map_err(|e| StoreError::txn(&self.name, e))?;
            let table = txn
                .open_table(DATA)
                .map_err(|e| StoreError::txn(&self.name, e))?;
            for item in table
                .range(start..end)
                .map_err(|e| StoreError::txn(&self.name, e))?
            {
                let (k, v) = item.map_err(|e| StoreError::txn(&self.name, e))?;
                merged.insert(k.value().to_vec(), Some(v.value().to_vec()));
            }
            for (k, v) in self.dirty.range(start.to_vec()..end.to_vec()) {
                merged.insert(k.clone(), v.clone());
            }
        }
        Ok(merged
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect())
    }

    /// The writes since the last commit, in key order (`None` is a delete).
    pub fn dirty(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        self.dirty.iter().map(|(k, v)| (k.as_slice(), v.as_deref()))
    }

    /// How many keys were written since the last commit.
    #[must_use]
    pub fn dirty_len(&self) -> usize {
        self.dirty.len()
    }

    /// The checkpoint of the last commit (or restore) that reached the file.
    ///
    /// # Errors
    /// The file cannot be read.
    pub fn checkpoint(&self) -> Result<Checkpoint, StoreError> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| StoreError::txn(&self.name, e))?;
        let table = txn
            .open_table(META)
            .map_err(|e| StoreError::txn(&self.name, e))?;
        let read = |key: &str| -> Result<Option<i64>, StoreError> {
            Ok(table
                .get(key)
                .map_err(|e| StoreError::txn(&self.name, e))?
                .map(|v| v.value()))
        };
        Ok(Checkpoint {
            absorbed: read(META_ABSORBED)?,
            changelog_offset: read(META_CHANGELOG)?,
        })
    }

    /// Makes the overlay durable together with `checkpoint`, in one fsynced transaction. Call only
    /// after the overlay's changelog records and commit marker are acknowledged, so that the file never
    /// holds state the changelog lacks.
    ///
    /// # Errors
    /// The transaction fails; the overlay is kept, so a retry writes the same state.
    pub fn commit(&mut self, checkpoint: Checkpoint) -> Result<(), StoreError> {
        let dirty = std::mem::take(&mut self.dirty);
        let result = self.write_txn(Durability::Immediate, |data, meta| {
            for (k, v) in &dirty {
                match v {
                    Some(v) => data.insert(k.as_slice(), v.as_slice()).map(drop),
                    None => data.remove(k.as_slice()).map(drop),
                }
                .map_err(|e| StoreError::txn(&self.name, e))?;
            }
            write_meta(&self.name, meta, checkpoint)
        });
        match result {
            Ok(()) => {
                if self.cache.len() + dirty.len() > self.cache_limit {
                    self.cache.clear();
                }
                self.cache.extend(dirty);
                Ok(())
            }
            Err(e) => {
                self.dirty = dirty;
                Err(e)
            }
        }
    }

    /// Applies restored changelog writes and their checkpoint in one transaction. `durable` false
    /// skips the fsync for intermediate restore chunks: a crash then falls back to the previous
    /// durable checkpoint, which is still consistent.
    ///
    /// # Errors
    /// The transaction fails.
    pub(crate) fn apply_restored(
        &mut self,
        writes: &[(Vec<u8>, Option<Vec<u8>>)],
        checkpoint: Checkpoint,
        durable: bool,
    ) -> Result<(), StoreError> {
        let durability = if durable {
            Durability::Immediate
        } else {
            Durability::None
        };
        self.cache.clear();
        self.write_txn(durability, |data, meta| {
            for (k, v) in writes {
                match v {
                    Some(v) => data.insert(k.as_slice(), v.as_slice()).map(drop),
                    None => data.remove(k.as_slice()).map(drop),
                }
                .map_err(|e| StoreError::txn(&self.name, e))?;
            }
            write_meta(&self.name, meta, checkpoint)
        })
    }

    /// Drops every entry and the checkpoint (the local files disagree with the changelog).
    ///
    /// # Errors
    /// The transaction fails.
    pub(crate) fn clear(&mut self) -> Result<(), StoreError> {
        self.dirty.clear();
        self.cache.clear();
        self.write_txn(Durability::Immediate, |data, meta| {
            data.retain(|_, _| false)
                .map_err(|e| StoreError::txn(&self.name, e))?;
            meta.retain(|_, _| false)
                .map_err(|e| StoreError::txn(&self.name, e))
        })
    }

    fn read_file(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| StoreError::txn(&self.name, e))?;
        let table = txn
            .open_table(DATA)
            .map_err(|e| StoreError::txn(&self.name, e))?;
        Ok(table
            .get(key)
            .map_err(|e| StoreError::txn(&self.name, e))?
            .map(|v| v.value().to_vec()))
    }

    fn write_txn(
        &self,
        durability: Durability,
        f: impl FnOnce(
            &mut redb::Table<'_, &'static [u8], &'static [u8]>,
            &mut redb::Table<'_, &'static str, i64>,
        ) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut txn = self
            .db
            .begin_write()
            .map_err(|e| StoreError::txn(&self.name, e))?;
        txn.set_durability(durability)
            .map_err(|e| StoreError::txn(&self.name, e))?;
        {
            let mut data = txn
                .open_table(DATA)
                .map_err(|e| StoreError::txn(&self.name, e))?;
            let mut meta = txn
                .open_table(META)
                .map_err(|e| StoreError::txn(&self.name, e))?;
            f(&mut data, &mut meta)?;
        }
        txn.commit().map_err(|e| StoreError::txn(&self.name, e))
    }
}

fn write_meta(
    store: &str,
    meta: &mut redb::Table<'_, &'static str, i64>,
    checkpoint: Checkpoint,
) -> Result<(), StoreError> {
    for (key, value) in [
        (META_ABSORBED, checkpoint.absorbed),
        (META_CHANGELOG, checkpoint.changelog_offset),
    ] {
        match value {
            Some(v) => meta.insert(key, v).map(drop),
            None => meta.remove(key).map(drop),
        }
        .map_err(|e| StoreError::txn(store, e))?;
    }
    Ok(())
}

fn check_key(key: &[u8]) -> Result<(), StoreError> {
    if key.first() == Some(&0) {
        return Err(StoreError::ReservedKey { key: key.to_vec() });
    }
    Ok(())
}
