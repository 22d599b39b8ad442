//! Durable cluster metadata: a journal of [`MetadataRecord`]s, one JSON object per line, fsynced before
//! a change is applied and answered. On open the journal is replayed; a torn last line (a crash mid-write)
//! is cut off. When the journal has grown well past the state it describes it is rewritten as a snapshot
//! (the records that recreate the current state) through a temporary file and an atomic rename.
//!
//! In a cluster ([`MetadataStore::open_cluster`]) the same state is changed by the metadata Raft
//! group instead (see [`super::raft`]): readers cannot tell the two apart.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::raft::{MetadataBatch, RaftNode, RaftOptions};
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
    /// No leader took the change within the commit timeout, or the quorum is not reachable.
    #[error("cluster metadata unavailable: {0}")]
    Unavailable(String),
    /// The Raft log or state machine failed; the node cannot continue.
    #[error("cluster metadata raft failure: {0}")]
    Raft(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MetadataError + '_ {
    move |source| MetadataError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The applied metadata every reader sees, whichever backend changes it.
#[derive(Debug)]
pub(crate) struct Shared {
    state: RwLock<ClusterState>,
    /// Counts applied changes; watchers wake on every change.
    pub(crate) changes: watch::Sender<u64>,
    /// Set once: from `cluster.id` in local mode, from the replicated state in a cluster.
    cluster_id: OnceLock<String>,
}

impl Shared {
    pub(crate) fn new() -> Self {
        Shared {
            state: RwLock::new(ClusterState::default()),
            changes: watch::channel(0).0,
            cluster_id: OnceLock::new(),
        }
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, ClusterState> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies `records` in order and wakes the watchers.
    pub(crate) fn apply(&self, records: &[MetadataRecord]) {
        let mut state = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for r in records {
            state.apply(r);
        }
        drop(state);
        self.changes.send_modify(|n| *n += 1);
    }

    /// Replaces the whole state (a snapshot) and wakes the watchers.
    pub(crate) fn replace(&self, new: ClusterState) {
        *self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = new;
        self.changes.send_modify(|n| *n += 1);
    }

    pub(crate) fn cluster_id(&self) -> Option<&str> {
        self.cluster_id.get().map(String::as_str)
    }

    /// Sets the cluster id unless one is set already (the first wins).
    pub(crate) fn set_cluster_id(&self, id: &str) {
        let _ = self.cluster_id.set(id.to_owned());
    }
}

/// How changes are made durable.
#[derive(Debug)]
enum Backend {
    /// This node's own journal (single broker, `odradek dev`). Held only while writing one change;
    /// never across `.await`.
    Local(Mutex<File>),
    /// The metadata Raft group.
    Raft(Arc<RaftNode>),
}

/// The cluster's metadata: a local journal in `dir`, or a Raft group whose files live in `dir`.
#[derive(Debug)]
pub struct MetadataStore {
    dir: PathBuf,
    shared: Arc<Shared>,
    backend: Backend,
    /// Local mode: when each broker last heartbeated.
    local_heartbeats: Mutex<HashMap<i32, Instant>>,
}

impl MetadataStore {
    /// Opens (or creates) the local store and replays the journal.
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
        let shared = Shared::new();
        shared.replace(state);
        shared.set_cluster_id(&cluster_id);
        Ok(MetadataStore {
            dir: dir.to_owned(),
            shared: Arc::new(shared),
            backend: Backend::Local(Mutex::new(journal)),
            local_heartbeats: Mutex::new(HashMap::new()),
        })
    }

    /// Opens this node's member of the metadata Raft group: restores the last snapshot, starts the
    /// RPC listener and Raft, bootstraps the group (lowest voter) or asks to join it (learners).
    /// Returns at once; [`MetadataStore::wait_ready`] waits for a leader and catch-up.
    pub async fn open_cluster(options: RaftOptions) -> Result<Self, MetadataError> {
        Self::open_cluster_on(options, None).await
    }

    /// [`MetadataStore::open_cluster`], then waits up to `ready_timeout` for a leader and catch-up
    /// (see [`MetadataStore::wait_ready`]); on failure Raft is stopped again.
    pub async fn open_cluster_ready(
        options: RaftOptions,
        ready_timeout: Duration,
    ) -> Result<Self, MetadataError> {
        let store = Self::open_cluster(options).await?;
        tracing::info!(timeout = ?ready_timeout, "waiting for a metadata leader and catch-up");
        if let Err(e) = store.wait_ready(ready_timeout).await {
            store.shutdown().await;
            return Err(e);
        }
        Ok(store)
    }

    /// [`MetadataStore::open_cluster`] on an RPC listener the caller bound (tests bind port 0).
    pub async fn open_cluster_on(
        options: RaftOptions,
        listener: Option<tokio::net::TcpListener>,
    ) -> Result<Self, MetadataError> {
        let dir = options.dir.clone();
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let shared = Arc::new(Shared::new());
        let node = RaftNode::start(options, shared.clone(), listener).await?;
        Ok(MetadataStore {
            dir,
            shared,
            backend: Backend::Raft(node),
            local_heartbeats: Mutex::new(HashMap::new()),
        })
    }

    /// The cluster id; empty in a cluster until the replicated id is applied here
    /// ([`MetadataStore::wait_ready`] waits for it).
    pub fn cluster_id(&self) -> &str {
        self.shared.cluster_id().unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current state. Readers never wait for disk.
    pub fn read(&self) -> RwLockReadGuard<'_, ClusterState> {
        self.shared.read()
    }

    /// Wakes on every applied change; the value counts changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.changes.subscribe()
    }

    /// Makes `records` durable, then applies them. Either all are applied or none.
    ///
    /// In a cluster the batch goes to the Raft leader (forwarded from a follower); the call returns
    /// once it is committed and applied on this node, so `read()` right after sees it. While no
    /// leader is known it retries until the commit timeout, then fails with
    /// [`MetadataError::Unavailable`]. A retried batch is applied at most once.
    pub async fn commit(&self, records: Vec<MetadataRecord>) -> Result<(), MetadataError> {
        match &self.backend {
            Backend::Local(journal) => self.commit_local(journal, &records, None).map(drop),
            Backend::Raft(node) => node.commit(records).await,
        }
    }

    /// [`MetadataStore::commit`] as a compare-and-set: applied only if `next_producer_id` is still
    /// `expected` when the records apply; returns whether they were.
    async fn commit_if_next_producer_id(
        &self,
        records: Vec<MetadataRecord>,
        expected: i64,
    ) -> Result<bool, MetadataError> {
        match &self.backend {
            Backend::Local(journal) => self.commit_local(journal, &records, Some(expected)),
            Backend::Raft(node) => {
                let batch = MetadataBatch {
                    if_next_producer_id: Some(expected),
                    ..MetadataBatch::new(records)
                };
                node.commit_batch(batch).await
            }
        }
    }

    fn commit_local(
        &self,
        journal: &Mutex<File>,
        records: &[MetadataRecord],
        if_next_producer_id: Option<i64>,
    ) -> Result<bool, MetadataError> {
        let mut buf = Vec::new();
        for r in records {
            serde_json::to_writer(&mut buf, r)?;
            buf.push(b'\n');
        }
        let path = self.dir.join(JOURNAL);
        // The journal lock serialises writers, so the check and the write are one step.
        let mut journal = journal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if if_next_producer_id.is_some_and(|n| self.shared.read().next_producer_id != n) {
            return Ok(false);
        }
        journal.write_all(&buf).map_err(io(&path))?;
        journal.sync_data().map_err(io(&path))?;
        self.shared.apply(records);
        Ok(true)
    }

    /// Whether this node is the controller: the Raft leader (always true in local mode).
    pub fn is_controller(&self) -> bool {
        match &self.backend {
            Backend::Local(_) => true,
            Backend::Raft(node) => node.is_leader(),
        }
    }

    /// The controller's broker id for Metadata and DescribeCluster: the Raft leader, -1 while none
    /// is known; `this_broker` in local mode.
    pub fn controller_id(&self, this_broker: i32) -> i32 {
        match &self.backend {
            Backend::Local(_) => this_broker,
            Backend::Raft(node) => node.leader().unwrap_or(-1),
        }
    }

    /// A broker's liveness signal, delivered to the Raft leader (local mode: recorded here).
    pub async fn heartbeat(&self, broker_id: i32) -> Result<(), MetadataError> {
        match &self.backend {
            Backend::Local(_) => {
                self.local_heartbeats
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(broker_id, Instant::now());
                Ok(())
            }
            Backend::Raft(node) => node.heartbeat(broker_id).await,
        }
    }

    /// On the controller: when each broker last heartbeated (since this node became leader).
    /// Empty on other nodes.
    pub fn heartbeats(&self) -> HashMap<i32, Instant> {
        match &self.backend {
            Backend::Local(_) => self
                .local_heartbeats
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
            Backend::Raft(node) => node.heartbeats(),
        }
    }

    /// Whether this node has applied everything the leader had committed when it last heard from
    /// it (local mode: always).
    pub fn caught_up(&self) -> bool {
        match &self.backend {
            Backend::Local(_) => true,
            Backend::Raft(node) => node.caught_up(),
        }
    }

    /// Waits until a leader is known, this node has caught up and the cluster id is known; fails
    /// after `timeout`, saying what was missing. Immediate in local mode.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), MetadataError> {
        match &self.backend {
            Backend::Local(_) => Ok(()),
            Backend::Raft(node) => node.wait_ready(timeout).await,
        }
    }

    /// The Raft handle and status, for metrics; `None` in local mode.
    pub(crate) fn raft(&self) -> Option<&Arc<RaftNode>> {
        match &self.backend {
            Backend::Local(_) => None,
            Backend::Raft(node) => Some(node),
        }
    }

    /// Registers the metadata gauges (term, leader, commit and applied index, controller) in
    /// `registry`. Local mode registers nothing.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        if let Some(node) = self.raft() {
            node.register_metrics(registry);
        }
    }

    /// Stops Raft and the RPC listener (cluster mode); a no-op locally.
    pub async fn shutdown(&self) {
        if let Backend::Raft(node) = &self.backend {
            node.shutdown().await;
        }
    }

    /// Hands out one producer id, reserving them in blocks so that the journal sees one record per block.
    /// A block is claimed by compare-and-set on `next_producer_id`, so brokers allocating at once
    /// never share a block; the loser retries with the next one.
    pub async fn allocate_producer_id(
        &self,
        cache: &tokio::sync::Mutex<(i64, i64)>,
    ) -> Result<i64, MetadataError> {
        const BLOCK: i64 = 1000;
        const ATTEMPTS: usize = 100;
        let mut c = cache.lock().await;
        if c.0 >= c.1 {
            let mut claimed = None;
            for _ in 0..ATTEMPTS {
                let start = self.read().next_producer_id;
                let record = MetadataRecord::AllocateProducerIds {
                    next: start + BLOCK,
                };
                if self.commit_if_next_producer_id(vec![record], start).await? {
                    claimed = Some(start);
                    break;
                }
            }
            let start = claimed.ok_or_else(|| {
                MetadataError::Unavailable(format!(
                    "no producer id block claimed in {ATTEMPTS} attempts"
                ))
            })?;
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
pub(crate) fn snapshot_records(state: &ClusterState) -> Vec<MetadataRecord> {
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
pub(crate) fn new_cluster_id() -> String {
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
    fn a_local_store_is_its_own_controller_and_records_heartbeats() {
        let dir = tempfile::tempdir().unwrap();
        let s = MetadataStore::open(dir.path()).unwrap();
        assert!(s.is_controller() && s.caught_up());
        assert_eq!(s.controller_id(4), 4);
        assert!(s.heartbeats().is_empty());
        block_on(s.heartbeat(3)).unwrap();
        block_on(s.wait_ready(std::time::Duration::ZERO)).unwrap();
        assert!(s.heartbeats().contains_key(&3));
    }

    #[test]
    fn a_stale_producer_id_claim_is_refused_locally() {
        let dir = tempfile::tempdir().unwrap();
        let s = MetadataStore::open(dir.path()).unwrap();
        let claim = |next| vec![MetadataRecord::AllocateProducerIds { next }];
        assert!(block_on(s.commit_if_next_producer_id(claim(1000), 0)).unwrap());
        assert!(!block_on(s.commit_if_next_producer_id(claim(1000), 0)).unwrap());
        assert_eq!(s.read().next_producer_id, 1000);
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
