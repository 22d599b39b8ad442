//! Cluster metadata replicated by Raft (Kafka KRaft's role), on `openraft`.
//!
//! # Layout
//! - [`MetadataBatch`]: the log entry payload, a batch of [`MetadataRecord`]s applied atomically.
//! - `log_store`: the Raft log, vote and commit index in a redb file, fsynced on every change.
//! - `state_machine`: applies batches to the shared [`ClusterState`](super::ClusterState); builds,
//!   persists and installs snapshots (the records that recreate the state).
//! - `rpc` / `network` / `server`: the inter-broker RPC: length-prefixed JSON frames with a size
//!   limit, pooled client connections with timeouts, and the listener that dispatches to the node.
//! - `node`: one running Raft member: commit forwarding to the leader, catch-up tracking and
//!   shutdown; `node/membership` bootstraps the group and joins learners; `node/liveness` relays
//!   broker heartbeats and follows Raft's metrics (gauges, cluster id).
//!
//! Voters are fixed by configuration (`--controller-voters`); every other broker joins as a learner,
//! so it receives the metadata but never votes.

mod log_store;
mod network;
mod node;
mod rpc;
mod server;
mod state_machine;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::io::Cursor;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::state::MetadataRecord;

pub(crate) use node::RaftNode;

openraft::declare_raft_types!(
    /// Types of the metadata Raft group: entries carry [`MetadataBatch`]es, node ids are broker ids,
    /// nodes are RPC addresses.
    pub TypeConfig:
        D = MetadataBatch,
        R = bool,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// One Raft log entry's payload: records applied together, in order. Applying one yields whether
/// its precondition held (always true without one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataBatch {
    /// Unique per commit call: a batch retried after a lost reply (leader change, timeout) is
    /// applied once, because the state machine remembers the ids of recent batches.
    pub id: Uuid,
    /// Sets the cluster id when the replicated state has none yet (the first one applied wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// A compare-and-set: the batch is applied only if the state's `next_producer_id` is this
    /// value, so that brokers allocating producer-id blocks at once cannot get the same block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_next_producer_id: Option<i64>,
    pub records: Vec<MetadataRecord>,
}

impl MetadataBatch {
    /// A batch of `records` with a fresh id.
    pub fn new(records: Vec<MetadataRecord>) -> Self {
        MetadataBatch {
            id: Uuid::new_v4(),
            cluster_id: None,
            if_next_producer_id: None,
            records,
        }
    }
}

/// How a node takes part in the metadata quorum. Defaults suit a LAN; tests shorten them.
#[derive(Debug, Clone)]
pub struct RaftOptions {
    /// This broker's id (Raft node id).
    pub node_id: u64,
    /// Voter id -> RPC address (`host:port`), from `--controller-voters`.
    pub voters: BTreeMap<u64, String>,
    /// Address the RPC listener binds (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Address other nodes reach this node's RPC listener at. `None`: the bound address.
    pub advertised: Option<String>,
    /// Where log, vote and snapshots live (`<data>/__cluster_metadata/`).
    pub dir: PathBuf,
    pub heartbeat_interval: Duration,
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
    /// A snapshot is built after this many entries since the last one.
    pub snapshot_every: u64,
    /// Log entries kept behind the snapshot, so that a briefly lagging follower needs no snapshot.
    pub logs_to_keep: u64,
    /// How long `commit` retries while no leader is known or the leader changes.
    pub commit_timeout: Duration,
    /// Timeout of one RPC (connect plus request plus reply).
    pub rpc_timeout: Duration,
    /// Largest RPC frame accepted or sent, in bytes.
    pub max_frame_bytes: usize,
    /// An inbound RPC connection without a request for this long is closed.
    pub idle_timeout: Duration,
}

impl RaftOptions {
    /// Options for broker `node_id` from its validated cluster flags, with files in `dir`.
    pub fn from_config(
        node_id: i32,
        cluster: &crate::config::ClusterConfig,
        dir: PathBuf,
    ) -> Result<Self, super::MetadataError> {
        let id = |i: i32| {
            u64::try_from(i).map_err(|_| {
                super::MetadataError::Unavailable(format!("broker id {i} is negative"))
            })
        };
        let voters = cluster
            .voters
            .iter()
            .map(|(&i, addr)| Ok((id(i)?, addr.clone())))
            .collect::<Result<_, super::MetadataError>>()?;
        Ok(RaftOptions::new(
            id(node_id)?,
            voters,
            cluster.listen,
            Some(cluster.advertised.clone()),
            dir,
        ))
    }

    /// Options with the default timings.
    pub fn new(
        node_id: u64,
        voters: BTreeMap<u64, String>,
        listen: SocketAddr,
        advertised: Option<String>,
        dir: PathBuf,
    ) -> Self {
        RaftOptions {
            node_id,
            voters,
            listen,
            advertised,
            dir,
            heartbeat_interval: Duration::from_millis(250),
            election_timeout_min: Duration::from_millis(1000),
            election_timeout_max: Duration::from_millis(2000),
            snapshot_every: 1000,
            logs_to_keep: 500,
            commit_timeout: Duration::from_secs(10),
            rpc_timeout: Duration::from_secs(5),
            max_frame_bytes: 64 << 20,
            idle_timeout: Duration::from_secs(300),
        }
    }
}
