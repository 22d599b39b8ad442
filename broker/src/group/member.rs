//! One member of a classic group, with the replies it is waiting for.

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::outcome::{JoinOutcome, SyncOutcome};

/// A member of a group, as the coordinator tracks it between requests.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) member_id: String,
    /// Set for static members (`group.instance.id`).
    pub(crate) group_instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) rebalance_timeout_ms: i32,
    pub(crate) session_timeout_ms: i32,
    /// The protocols the member supports, in its order of preference, each with its metadata.
    pub(crate) protocols: Vec<(String, Bytes)>,
    /// What the leader assigned to this member in the current generation.
    pub(crate) assignment: Bytes,
    /// The JoinGroup request parked until the join phase completes.
    pub(crate) awaiting_join: Option<oneshot::Sender<JoinOutcome>>,
    /// The SyncGroup request parked until the leader sends the assignment.
    pub(crate) awaiting_sync: Option<oneshot::Sender<SyncOutcome>>,
    /// The member is removed when this passes without a heartbeat (unless a request of it is parked).
    pub(crate) session_deadline: Instant,
    /// The member got a JoinGroup response of the current generation but has not sent SyncGroup
    /// yet; such members are removed once the sync deadline passes.
    pub(crate) pending_sync: bool,
}

impl Member {
    /// The member's metadata for `protocol`, if it supports that protocol.
    pub(crate) fn metadata(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, metadata)| metadata)
    }

    /// Whether the member supports `protocol`.
    pub(crate) fn supports(&self, protocol: &str) -> bool {
        self.metadata(protocol).is_some()
    }

    /// True when `protocols` are exactly the member's current ones (same names, metadata and order),
    /// so a rejoin with them changes nothing.
    pub(crate) fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    /// The member's preferred protocol among `candidates`.
    pub(crate) fn vote<'a>(&'a self, candidates: &[&str]) -> Option<&'a str> {
        self.protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .find(|name| candidates.contains(name))
    }

    /// Answers the parked JoinGroup, if any. A member whose connection is gone just drops the reply.
    pub(crate) fn complete_join(&mut self, outcome: JoinOutcome) {
        if let Some(tx) = self.awaiting_join.take() {
            let _ = tx.send(outcome);
        }
    }

    /// Answers the parked SyncGroup, if any.
    pub(crate) fn complete_sync(&mut self, outcome: SyncOutcome) {
        if let Some(tx) = self.awaiting_sync.take() {
            let _ = tx.send(outcome);
        }
    }

    /// Whether a JoinGroup of this member is parked.
    pub(crate) fn is_awaiting_join(&self) -> bool {
        self.awaiting_join.is_some()
    }

    /// Whether a SyncGroup of this member is parked.
    pub(crate) fn is_awaiting_sync(&self) -> bool {
        self.awaiting_sync.is_some()
    }
}
