//! One running member of the metadata Raft group.
//!
//! Start-up: restore the snapshot, open the log, bind the RPC listener, start Raft. The voter with
//! the lowest id initializes the group when it has no state (an "already initialized" refusal is
//! the normal case after a restart); brokers outside the voter list ask a voter, until one accepts,
//! to add them as learners. The leader proposes the cluster id once per term while the replicated
//! state has none; the first one applied wins, so every node reports the same id.
//!
//! Commits from any node go to the leader (in-process on the leader, `ForwardCommit` elsewhere) and
//! return once applied locally; a leader change in between is retried with the same batch id, which
//! the state machine applies at most once.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
};
use openraft::{BasicNode, Raft, RaftMetrics, ServerState, SnapshotPolicy};
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod liveness;
mod membership;

use super::super::state::MetadataRecord;
use super::super::store::{MetadataError, Shared};
use super::log_store::LogStore;
use super::network::{Network, Peers};
use super::rpc::{Committed, Refusal, Request, Response};
use super::state_machine::StateMachine;
use super::{MetadataBatch, RaftOptions, TypeConfig};

/// Pause between attempts while no leader is known.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Gauges of the metadata quorum, as this node sees it.
#[derive(Debug, Default, Clone)]
struct RaftGauges {
    term: Gauge,
    leader: Gauge,
    committed: Gauge,
    applied: Gauge,
    controller: Gauge,
}

/// A running member of the metadata Raft group.
pub(crate) struct RaftNode {
    id: u64,
    raft: Raft<TypeConfig>,
    peers: Arc<Peers>,
    voters: BTreeMap<u64, String>,
    advertised: String,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    /// The commit index last saved by the log store.
    committed: Arc<AtomicU64>,
    /// The leader's commit index from the last AppendEntries this node accepted, and when.
    leader_contact: Mutex<Option<(Option<u64>, Instant)>>,
    /// On the leader: when each broker last heartbeated, since this node became leader.
    heartbeats: Mutex<HashMap<i32, Instant>>,
    commit_timeout: Duration,
    /// A follower that has not heard from the leader for this long is not caught up.
    contact_timeout: Duration,
    gauges: RaftGauges,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl std::fmt::Debug for RaftNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftNode")
            .field("id", &self.id)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

fn raft_err(e: impl std::fmt::Display) -> MetadataError {
    MetadataError::Raft(e.to_string())
}

impl RaftNode {
    /// Opens the storage, binds the RPC listener (unless `listener` is given) and starts Raft and
    /// the background tasks.
    pub(crate) async fn start(
        options: RaftOptions,
        shared: Arc<Shared>,
        listener: Option<TcpListener>,
    ) -> Result<Arc<Self>, MetadataError> {
        let log_store = LogStore::open(&options.dir).map_err(raft_err)?;
        let committed = log_store.committed_index();
        let sm = StateMachine::open(&options.dir, shared.clone()).map_err(raft_err)?;
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let config = openraft::Config {
            cluster_name: "odradek-metadata".into(),
            heartbeat_interval: millis(options.heartbeat_interval),
            election_timeout_min: millis(options.election_timeout_min),
            election_timeout_max: millis(options.election_timeout_max),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(options.snapshot_every),
            max_in_snapshot_log_to_keep: options.logs_to_keep,
            snapshot_max_chunk_size: 1 << 20,
            ..openraft::Config::default()
        }
        .validate()
        .map_err(raft_err)?;
        let listener = match listener {
            Some(l) => l,
            None => TcpListener::bind(options.listen).await.map_err(|e| {
                raft_err(format!(
                    "binding the cluster listener on {}: {e}",
                    options.listen
                ))
            })?,
        };
        let local_addr = listener.local_addr().map_err(raft_err)?;
        let advertised = options
            .advertised
            .clone()
            .unwrap_or_else(|| local_addr.to_string());
        let peers = Arc::new(Peers::new(options.max_frame_bytes, options.rpc_timeout));
        let network = Network {
            peers: peers.clone(),
        };
        let raft = Raft::new(options.node_id, Arc::new(config), network, log_store, sm)
            .await
            .map_err(raft_err)?;
        let node = Arc::new(RaftNode {
            id: options.node_id,
            raft,
            peers,
            voters: options.voters.clone(),
            advertised,
            local_addr,
            shared,
            committed,
            leader_contact: Mutex::new(None),
            heartbeats: Mutex::new(HashMap::new()),
            commit_timeout: options.commit_timeout,
            contact_timeout: options.election_timeout_max * 3,
            gauges: RaftGauges::default(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        node.tasks.spawn(super::server::serve(
            listener,
            node.clone(),
            super::server::Limits {
                max_frame_bytes: options.max_frame_bytes,
                idle_timeout: options.idle_timeout,
            },
            node.shutdown.clone(),
        ));
        node.tasks.spawn(node.clone().bootstrap());
        node.tasks.spawn(node.clone().watch_metrics());
        tracing::info!(
            node_id = node.id, cluster_listen = %local_addr, advertised = %node.advertised,
            voters = ?node.voters, "metadata raft started"
        );
        Ok(node)
    }

    pub(crate) fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    fn metrics(&self) -> RaftMetrics<u64, BasicNode> {
        self.raft.metrics().borrow().clone()
    }

    fn current_leader(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    /// The leader's broker id, if known.
    pub(crate) fn leader(&self) -> Option<i32> {
        self.current_leader().and_then(|l| i32::try_from(l).ok())
    }

    /// Whether this node is the leader now.
    pub(crate) fn is_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.id)
    }

    fn addr_of(&self, id: u64) -> Option<String> {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.addr.clone())
            .or_else(|| self.voters.get(&id).cloned())
    }

    /// Whether this node has applied all the leader had committed when it last heard from it.
    pub(crate) fn caught_up(&self) -> bool {
        let m = self.metrics();
        let applied = m.last_applied.map(|l| l.index);
        let Some(leader) = m.current_leader else {
            return false;
        };
        if self.shared.cluster_id().is_none() {
            return false;
        }
        if leader == self.id {
            // A leader cut off from its quorum is not current: it may have been replaced.
            let quorum_recent = m
                .millis_since_quorum_ack
                .is_some_and(|ms| u128::from(ms) < self.contact_timeout.as_millis());
            return m.state == ServerState::Leader
                && quorum_recent
                && applied >= Some(self.committed.load(Ordering::Relaxed));
        }
        let contact = *self
            .leader_contact
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match contact {
            Some((commit, at)) => at.elapsed() < self.contact_timeout && applied >= commit,
            None => false,
        }
    }

    /// Polls until [`RaftNode::caught_up`], logging what is missing every few seconds.
    pub(crate) async fn wait_ready(&self, timeout: Duration) -> Result<(), MetadataError> {
        let start = Instant::now();
        let mut last_log = start;
        loop {
            if self.caught_up() {
                let m = self.metrics();
                tracing::info!(
                    leader = ?m.current_leader, applied = ?m.last_applied.map(|l| l.index),
                    cluster_id = self.shared.cluster_id().unwrap_or_default(),
                    "metadata caught up"
                );
                return Ok(());
            }
            let m = self.metrics();
            let status = format!(
                "leader {:?}, term {}, applied {:?}, cluster id known: {}",
                m.current_leader,
                m.current_term,
                m.last_applied.map(|l| l.index),
                self.shared.cluster_id().is_some()
            );
            if start.elapsed() >= timeout {
                return Err(MetadataError::Unavailable(format!(
                    "metadata quorum not ready after {timeout:?}: {status}"
                )));
            }
            if last_log.elapsed() >= Duration::from_secs(5) {
                tracing::info!(%status, "waiting for the metadata quorum");
                last_log = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Commits `records` through the leader and waits until they are applied here.
    pub(crate) async fn commit(&self, records: Vec<MetadataRecord>) -> Result<(), MetadataError> {
        self.commit_batch(MetadataBatch::new(records))
            .await
            .map(drop)
    }

    /// Commits `batch` through the leader, waits until it is applied here, and returns whether its
    /// precondition held.
    pub(crate) async fn commit_batch(&self, batch: MetadataBatch) -> Result<bool, MetadataError> {
        let deadline = Instant::now() + self.commit_timeout;
        let outcome = self.until_leader_accepts(&batch, deadline).await?;
        self.wait_applied(outcome.index, deadline).await?;
        Ok(outcome.applied)
    }

    async fn until_leader_accepts(
        &self,
        batch: &MetadataBatch,
        deadline: Instant,
    ) -> Result<Committed, MetadataError> {
        loop {
            if self.shutdown.is_cancelled() {
                return Err(MetadataError::Unavailable(
                    "metadata raft is shut down".into(),
                ));
            }
            let attempt = match self.current_leader() {
                None => Err("no leader known".to_owned()),
                Some(l) if l == self.id => {
                    // A leader that lost its quorum never finishes the write: bound the wait. If
                    // the entry commits later, the retry is dropped as a duplicate.
                    let left = deadline.saturating_duration_since(Instant::now());
                    match tokio::time::timeout(left, self.propose(batch.clone())).await {
                        Ok(r) => r.map_err(|e| e.to_string()),
                        Err(_) => Err("the leader did not commit in time".to_owned()),
                    }
                }
                Some(l) => self.forward(l, batch, deadline).await,
            };
            match attempt {
                Ok(outcome) => return Ok(outcome),
                Err(e) if Instant::now() >= deadline => {
                    return Err(MetadataError::Unavailable(format!(
                        "no leader committed the change within {:?}: {e}",
                        self.commit_timeout
                    )));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "metadata commit not accepted yet; retrying");
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        }
    }

    async fn forward(
        &self,
        leader: u64,
        batch: &MetadataBatch,
        deadline: Instant,
    ) -> Result<Committed, String> {
        let addr = self
            .addr_of(leader)
            .ok_or_else(|| format!("no address for leader {leader}"))?;
        let timeout = deadline
            .saturating_duration_since(Instant::now())
            .min(self.peers.timeout())
            .max(Duration::from_millis(100));
        match self
            .peers
            .call(&addr, &Request::ForwardCommit(batch.clone()), timeout)
            .await
        {
            Ok(Response::Committed(r)) => r.map_err(|e| e.to_string()),
            Ok(other) => Err(format!("unexpected reply {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn wait_applied(&self, index: u64, deadline: Instant) -> Result<(), MetadataError> {
        let mut metrics = self.raft.metrics();
        loop {
            if metrics.borrow_and_update().last_applied.map(|l| l.index) >= Some(index) {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, metrics.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => {
                    return Err(MetadataError::Unavailable("metadata raft stopped".into()));
                }
                Err(_) => {
                    return Err(MetadataError::Unavailable(format!(
                        "change committed at index {index} but not applied here within {:?}",
                        self.commit_timeout
                    )));
                }
            }
        }
    }

    /// On the leader: proposes `batch`; returns the index it was applied at and whether its
    /// precondition held. Bounded by the commit timeout: a leader that lost its quorum would
    /// otherwise wait forever.
    pub(crate) async fn propose(&self, batch: MetadataBatch) -> Result<Committed, Refusal> {
        let write = tokio::time::timeout(self.commit_timeout, self.raft.client_write(batch));
        let Ok(result) = write.await else {
            return Err(Refusal::Failed(format!(
                "not committed within {:?}",
                self.commit_timeout
            )));
        };
        match result {
            Ok(resp) => Ok(Committed {
                index: resp.log_id.index,
                applied: resp.data,
            }),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(Refusal::NotLeader {
                    leader: f.leader_id,
                })
            }
            Err(e) => Err(Refusal::Failed(e.to_string())),
        }
    }

    /// AppendEntries from the leader; an accepted one records the leader's commit index.
    pub(crate) async fn append_entries(
        &self,
        req: AppendEntriesRequest<TypeConfig>,
    ) -> Result<AppendEntriesResponse<u64>, RaftError<u64>> {
        let commit = req.leader_commit.map(|l| l.index);
        let resp = self.raft.append_entries(req).await;
        if matches!(
            resp,
            Ok(AppendEntriesResponse::Success | AppendEntriesResponse::PartialSuccess(_))
        ) {
            self.note_leader_contact(commit);
        }
        resp
    }

    /// A snapshot chunk from the leader.
    pub(crate) async fn install_snapshot(
        &self,
        req: InstallSnapshotRequest<TypeConfig>,
    ) -> Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>> {
        self.raft.install_snapshot(req).await
    }

    fn note_leader_contact(&self, commit: Option<u64>) {
        *self
            .leader_contact
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((commit, Instant::now()));
    }

    /// Stops the RPC listener, Raft and the background tasks.
    pub(crate) async fn shutdown(&self) {
        self.shutdown.cancel();
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "stopping metadata raft");
        }
        self.tasks.close();
        self.tasks.wait().await;
        tracing::info!("metadata raft stopped");
    }
}
