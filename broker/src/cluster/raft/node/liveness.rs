//! Liveness and observation: broker heartbeats relayed to the leader, and a task that follows
//! Raft's metrics (gauges, the heartbeat table's reset on a new leadership, the cluster id).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use openraft::ServerState;

use super::super::super::store::{MetadataError, new_cluster_id};
use super::super::MetadataBatch;
use super::super::rpc::{Refusal, Request, Response};
use super::RaftNode;

impl RaftNode {
    /// Sends a broker's heartbeat to the leader (recorded directly when this node leads).
    pub(crate) async fn heartbeat(&self, broker_id: i32) -> Result<(), MetadataError> {
        let refused =
            |e: String| MetadataError::Unavailable(format!("heartbeat of broker {broker_id}: {e}"));
        match self.current_leader() {
            None => Err(refused("no leader known".into())),
            Some(l) if l == self.id => self
                .record_heartbeat(broker_id)
                .map_err(|e| refused(e.to_string())),
            Some(l) => {
                let addr = self
                    .addr_of(l)
                    .ok_or_else(|| refused(format!("no address for leader {l}")))?;
                match self
                    .peers
                    .call(
                        &addr,
                        &Request::Heartbeat { broker_id },
                        self.peers.timeout(),
                    )
                    .await
                {
                    Ok(Response::Done(r)) => r.map_err(|e| refused(e.to_string())),
                    Ok(other) => Err(refused(format!("unexpected reply {other:?}"))),
                    Err(e) => Err(refused(e.to_string())),
                }
            }
        }
    }

    /// On the leader: records a heartbeat.
    pub(crate) fn record_heartbeat(&self, broker_id: i32) -> Result<(), Refusal> {
        if !self.is_leader() {
            return Err(Refusal::NotLeader {
                leader: self.current_leader(),
            });
        }
        self.heartbeats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(broker_id, Instant::now());
        Ok(())
    }

    /// When each broker last heartbeated; empty unless this node leads.
    pub(crate) fn heartbeats(&self) -> HashMap<i32, Instant> {
        if !self.is_leader() {
            return HashMap::new();
        }
        self.heartbeats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Follows Raft's metrics: gauges, heartbeat table reset on a new term of leadership, and the
    /// cluster id proposal.
    pub(super) async fn watch_metrics(self: Arc<Self>) {
        let mut rx = self.raft.metrics();
        let mut led_term = None;
        let mut proposed_term = None;
        loop {
            let m = rx.borrow_and_update().clone();
            let leading = m.state == ServerState::Leader && m.current_leader == Some(self.id);
            let gauge = |v: Option<u64>| v.and_then(|v| i64::try_from(v).ok()).unwrap_or(-1);
            self.gauges.term.set(gauge(Some(m.current_term)));
            self.gauges.leader.set(gauge(m.current_leader));
            self.gauges
                .applied
                .set(gauge(m.last_applied.map(|l| l.index)));
            self.gauges
                .committed
                .set(gauge(Some(self.committed.load(Ordering::Relaxed))));
            self.gauges.controller.set(i64::from(leading));
            if leading && led_term != Some(m.current_term) {
                led_term = Some(m.current_term);
                self.heartbeats
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clear();
                tracing::info!(
                    term = m.current_term,
                    "this node is the metadata controller"
                );
            }
            if leading
                && self.shared.cluster_id().is_none()
                && proposed_term != Some(m.current_term)
            {
                proposed_term = Some(m.current_term);
                let node = self.clone();
                self.tasks.spawn(async move {
                    let batch = MetadataBatch {
                        cluster_id: Some(new_cluster_id()),
                        ..MetadataBatch::new(Vec::new())
                    };
                    if let Err(e) = node.propose(batch).await {
                        tracing::warn!(error = %e, "proposing the cluster id");
                    }
                });
            }
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                r = rx.changed() => if r.is_err() { return },
            }
        }
    }

    /// Registers the gauges in `registry`.
    pub(crate) fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        let g = &self.gauges;
        registry.register(
            "metadata_raft_term",
            "Raft term of the metadata quorum",
            g.term.clone(),
        );
        registry.register(
            "metadata_raft_leader_id",
            "Broker id of the metadata leader (-1: unknown)",
            g.leader.clone(),
        );
        registry.register(
            "metadata_raft_commit_index",
            "Metadata log index known committed",
            g.committed.clone(),
        );
        registry.register(
            "metadata_raft_applied_index",
            "Metadata log index applied here",
            g.applied.clone(),
        );
        registry.register(
            "metadata_is_controller",
            "1 when this broker is the metadata leader",
            g.controller.clone(),
        );
    }
}
