//! Durable cluster metadata: a journal of [`MetadataRecord`]s, one JSON object per line, fsynced before
//! a change is applied and answered. On open the journal is replayed; a torn last line (a crash mid-write)
//! is cut off. When the journal has grown well past the state it describes it is rewritten as a snapshot
//! (the records that recreate the current state) through a temporary file and an atomic rename.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock, RwLockReadGuard};
use std::time::Instant;

use tokio::sync::watch;

use super::state::{ClusterState, MetadataRecord};

const JOURNAL: &str = "metadata.log";
const CLUSTER_ID: &str = "cluster.id";

/// Errors of the metadata store.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata i/o on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("metadata record could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MetadataError + '_ {
    move |source| MetadataError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The cluster's metadata, persisted in `dir`.
#[derive(Debug)]
pub struct MetadataStore {
    dir: PathBuf,
    cluster_id: String,
    /// Held only while writing one change; never across `.await`.
    journal: Mutex<File>,
    state: RwLock<ClusterState>,
    /// Counts applied changes; watchers wake on every change.
    changes: watch::Sender<u64>,
    /// When each broker last heartbeated (local mode: this node is always the controller).
    /// Never held across `.await`.
    heartbeats: Mutex<HashMap<i32, Instant>>,
}

impl MetadataStore {
    /// Opens (or creates) the store and replays the journal.
    pub fn open(dir: &Path) -> Result<Self, MetadataError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let id_path = dir.join(CLUSTER_ID);
        let cluster_id = match fs::read_to_string(&id_path) {
            Ok(s) if !s.trim().is_empty() => s.trim().to_owned(),
            _ => {
                let id = new_cluster_id();
                write_atomically(&id_path, id.as_bytes())?;
                id
            }
        };
        let path = dir.join(JOURNAL);
        let (state, records, valid_len) = replay(&path)?;
        let state_records = snapshot_records(&state);
        if records > 2 * state_records.len() + 1000 {
            // Rewrite as a snapshot so that start-up does not replay history forever.
            let mut buf = Vec::new();
            for r in &state_records {
                serde_json::to_writer(&mut buf, r)?;
                buf.push(b'\n');
            }
            write_atomically(&path, &buf)?;
        } else if let Some(len) = valid_len {
            let f = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io(&path))?;
            f.set_len(len).map_err(io(&path))?;
            tracing::warn!(path = %path.display(), len, "cut a torn record off the metadata journal");
        }
        let journal = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        Ok(MetadataStore {
            dir: dir.to_owned(),
            cluster_id,
            journal: Mutex::new(journal),
            state: RwLock::new(state),
            changes: watch::channel(0).0,
            heartbeats: Mutex::new(HashMap::new()),
        })
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current state. Readers never wait for disk.
    pub fn read(&self) -> RwLockReadGuard<'_, ClusterState> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Wakes on every applied change; the value counts changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Makes `records` durable, then applies them. Either all are written or the call fails
    /// and nothing is applied.
    pub async fn commit(&self, records: Vec<MetadataRecord>) -> Result<(), MetadataError> {
        self.commit_local(&records)
    }

    fn commit_local(&self, records: &[MetadataRecord]) -> Result<(), MetadataError> {
        let mut buf = Vec::new();
        for r in records {
            serde_json::to_writer(&mut buf, r)?;
            buf.push(b'\n');
        }
        let path = self.dir.join(JOURNAL);
        let mut journal = self
            .journal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        journal.write_all(&buf).map_err(io(&path))?;
        journal.sync_data().map_err(io(&path))?;
        let mut state = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for r in records {
            state.apply(r);
        }
        drop(state);
        self.changes.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Whether this node runs the controller. A single-node store is always the controller.
    pub fn is_controller(&self) -> bool {
        true
    }

    /// A broker's liveness signal, delivered to the controller (here: recorded locally).
    pub async fn heartbeat(&self, broker_id: i32) -> Result<(), MetadataError> {
        self.heartbeats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(broker_id, Instant::now());
        Ok(())
    }

    /// When each broker last heartbeated, as the controller saw it.
    pub fn heartbeats(&self) -> HashMap<i32, Instant> {
        self.heartbeats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Whether this node has applied everything the controller committed (always, when local).
    pub fn caught_up(&self) -> bool {
        true
    }

    /// Hands out one producer id, reserving them in blocks so that the journal sees one record per block.
    pub async fn allocate_producer_id(
        &self,
        cache: &tokio::sync::Mutex<(i64, i64)>,
    ) -> Result<i64, MetadataError> {
        const BLOCK: i64 = 1000;
        let mut c = cache.lock().await;
        if c.0 >= c.1 {
            let start = self.read().next_producer_id;
            self.commit(vec![MetadataRecord::AllocateProducerIds {
                next: start + BLOCK,
            }])
            .await?;
            *c = (start, start + BLOCK);
        }
        let id = c.0;
        c.0 += 1;
        Ok(id)
    }
}

/// Replays the journal: the state, how many records it held, and the length to cut it to if its
/// tail is torn.
fn replay(path: &Path) -> Result<(ClusterState, usize, Option<u64>), MetadataError> {
    let mut state = ClusterState::default();
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((state, 0, None)),
        Err(e) => return Err(io(path)(e)),
    };
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let mut good: u64 = 0;
    let mut count = 0;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(io(path))?;
        if n == 0 {
            return Ok((state, count, None));
        }
        let complete = line.last() == Some(&b'\n');
        match serde_json::from_slice::<MetadataRecord>(&line) {
            Ok(r) if complete => {
                state.apply(&r);
                count += 1;
                good += n as u64;
            }
            _ => return Ok((state, count, Some(good))),
        }
    }
}

/// Records that recreate `state` from nothing.
fn snapshot_records(state: &ClusterState) -> Vec<MetadataRecord> {
    let mut out: Vec<MetadataRecord> = state
        .brokers
        .values()
        .cloned()
        .map(MetadataRecord::RegisterBroker)
        .collect();
    out.extend(
        state
            .topics
            .values()
            .cloned()
            .map(MetadataRecord::CreateTopic),
    );
    out.extend(
        state
            .fenced
            .iter()
            .map(|&id| MetadataRecord::FenceBroker { id }),
    );
    out.push(MetadataRecord::AllocateProducerIds {
        next: state.next_producer_id,
    });
    out
}

/// Writes a file so that a crash leaves either the old or the new content: temp file, fsync, rename,
/// fsync of the directory.
pub(crate) fn write_atomically(path: &Path, data: &[u8]) -> Result<(), MetadataError> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(data).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))?;
    if let Some(parent) = path.parent()
        && let Ok(d) = File::open(parent)
    {
        // Best effort: not every filesystem allows fsync of a directory.
        let _ = d.sync_all();
    }
    Ok(())
}

/// A Kafka-style cluster id: 16 random bytes, URL-safe base64 without padding (22 characters).
fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let mut bits: u32 = 0;
    let mut nbits = 0;
    let mut out = String::with_capacity(22);
    for b in bytes {
        bits = (bits << 8) | u32::from(b);
        nbits += 8;
        while nbits >= 6 {
            nbits -= 6;
            out.push(char::from(ALPHABET[((bits >> nbits) & 63) as usize]));
        }
    }
    if nbits > 0 {
        out.push(char::from(ALPHABET[((bits << (6 - nbits)) & 63) as usize]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{PartitionInfo, TopicInfo};

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    fn create(name: &str) -> MetadataRecord {
        MetadataRecord::CreateTopic(TopicInfo {
            name: name.into(),
            id: uuid::Uuid::new_v4(),
            partitions: vec![PartitionInfo::new(0, vec![0])],
            configs: Default::default(),
        })
    }

    #[test]
    fn committed_records_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let id = {
            let s = MetadataStore::open(dir.path()).unwrap();
            block_on(s.commit(vec![create("a"), create("b")])).unwrap();
            block_on(s.commit(vec![MetadataRecord::DeleteTopic { name: "a".into() }])).unwrap();
            s.cluster_id().to_owned()
        };
        let s = MetadataStore::open(dir.path()).unwrap();
        assert_eq!(s.cluster_id(), id);
        assert_eq!(id.len(), 22);
        assert!(s.read().topic("a").is_none());
        assert!(s.read().topic("b").is_some());
    }

    #[test]
    fn a_torn_tail_is_cut_and_later_commits_still_replay() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = MetadataStore::open(dir.path()).unwrap();
            block_on(s.commit(vec![create("a")])).unwrap();
        }
        let path = dir.path().join(JOURNAL);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"type\":\"create_top").unwrap();
        drop(f);
        {
            let s = MetadataStore::open(dir.path()).unwrap();
            assert!(s.read().topic("a").is_some());
            block_on(s.commit(vec![create("c")])).unwrap();
        }
        let s = MetadataStore::open(dir.path()).unwrap();
        assert!(s.read().topic("a").is_some());
        assert!(s.read().topic("c").is_some());
    }

    #[test]
    fn a_long_journal_is_rewritten_as_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = MetadataStore::open(dir.path()).unwrap();
            for i in 0..1500 {
                block_on(s.commit(vec![
                    create(&format!("t{i}")),
                    MetadataRecord::DeleteTopic {
                        name: format!("t{i}"),
                    },
                ]))
                .unwrap();
            }
            block_on(s.commit(vec![create("kept")])).unwrap();
        }
        let s = MetadataStore::open(dir.path()).unwrap();
        assert_eq!(s.read().topics.len(), 1);
        let lines = fs::read_to_string(dir.path().join(JOURNAL))
            .unwrap()
            .lines()
            .count();
        assert!(lines <= 3, "journal has {lines} lines");
    }

    #[test]
    fn producer_ids_are_unique_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let first: Vec<i64> = {
            let s = MetadataStore::open(dir.path()).unwrap();
            let cache = tokio::sync::Mutex::new((0, 0));
            (0..3)
                .map(|_| block_on(s.allocate_producer_id(&cache)).unwrap())
                .collect()
        };
        let s = MetadataStore::open(dir.path()).unwrap();
        let cache = tokio::sync::Mutex::new((0, 0));
        let next = block_on(s.allocate_producer_id(&cache)).unwrap();
        assert!(first.iter().all(|&p| p < next), "{first:?} then {next}");
    }
}
