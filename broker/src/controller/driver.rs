//! The async shell around the decision functions: the controller loop, the heartbeat sender and
//! controlled shutdown. Everything that decides lives in the pure modules; this file only reads the
//! state, calls them, commits what they return, and keeps the controller metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::election::{fence, is_live, partitions, preferred_leaders, unfence};
use super::reassignment::{is_election, progress, reassignments};
use super::sessions::Sessions;
use crate::cluster::{ClusterState, MetadataRecord};
use crate::server::Broker;

/// The controller of one broker. It acts only while
/// [`MetadataStore::is_controller`](crate::cluster::MetadataStore::is_controller) is true, and
/// starts its broker sessions afresh each time this node becomes the controller.
#[derive(Debug)]
pub struct Controller {
    broker: Arc<Broker>,
    /// `Some` while this node is the controller.
    sessions: Option<Sessions>,
    /// When the next preferred-leader election runs.
    next_rebalance: Instant,
}

impl Controller {
    /// A controller for `broker`; nothing happens until [`tick`](Self::tick) or [`run`](Self::run).
    pub fn new(broker: Arc<Broker>) -> Self {
        let next_rebalance = Instant::now() + broker.config.leader_imbalance_check_interval;
        Controller {
            broker,
            sessions: None,
            next_rebalance,
        }
    }

    /// Ticks every `controller_tick` until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut interval = tokio::time::interval(self.broker.config.controller_tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = interval.tick() => self.tick().await,
            }
        }
        self.broker.metrics.active_controller.set(0);
    }

    /// One round: fence brokers whose session expired, unfence brokers that heartbeat again,
    /// complete reassignments whose new replicas are in sync, and (every
    /// `leader_imbalance_check_interval`, and after an unfence) move leaders back to preferred
    /// replicas. All of it is committed as one batch of conditional records.
    pub async fn tick(&mut self) {
        let metadata = &self.broker.metadata;
        let metrics = &self.broker.metrics;
        if !metadata.is_controller() {
            self.sessions = None;
            metrics.active_controller.set(0);
            return;
        }
        metrics.active_controller.set(1);
        let now = Instant::now();
        let config = &self.broker.config;
        let sessions = self
            .sessions
            .get_or_insert_with(|| Sessions::new(config.broker_session_timeout, now));
        let heartbeats = metadata.heartbeats();
        let mut state = metadata.read().clone();
        let liveness = sessions.decide(&state, &heartbeats, now);
        let mut records = Vec::new();
        for &id in &liveness.fence {
            tracing::warn!(
                broker = id,
                timeout = ?config.broker_session_timeout,
                "fencing a broker whose session expired"
            );
            decided(&mut state, &mut records, |s| fence(s, id));
        }
        for &id in &liveness.unfence {
            tracing::info!(broker = id, "unfencing a broker that heartbeats again");
            decided(&mut state, &mut records, |s| unfence(s, id));
        }
        decided(&mut state, &mut records, progress);
        let rebalance = config.auto_leader_rebalance_enable
            && (now >= self.next_rebalance || !liveness.unfence.is_empty());
        if rebalance {
            self.next_rebalance = now + config.leader_imbalance_check_interval;
            decided(&mut state, &mut records, preferred_leaders);
        }
        if !records.is_empty() {
            let elections = records.iter().filter(|r| is_election(r)).count() as u64;
            match metadata.commit(records).await {
                Ok(()) => {
                    metrics.leader_elections.inc_by(elections);
                }
                // Decided again on the next tick from whatever state the store then has.
                Err(err) => tracing::warn!(%err, "committing controller decisions failed"),
            }
        }
        let state = metadata.read();
        metrics.fenced_brokers.set(state.fenced.len() as i64);
        metrics
            .reassignments_in_progress
            .set(reassignments(&state).count() as i64);
    }
}

/// Makes a decision on the working copy of the state and applies it there, so that the next
/// decision of the same tick sees it (the records are conditional on partition epochs), and queues
/// its records for commit.
fn decided(
    state: &mut ClusterState,
    records: &mut Vec<MetadataRecord>,
    decide: impl FnOnce(&ClusterState) -> Vec<MetadataRecord>,
) {
    let new = decide(state);
    for r in &new {
        state.apply(r);
    }
    records.extend(new);
}

/// Sends this broker's heartbeat every `broker_heartbeat_interval` until `stop`. The first is sent
/// at once. A failed heartbeat is retried at the next interval: the session timeout spans several.
pub async fn send_heartbeats(broker: Arc<Broker>, stop: CancellationToken) {
    let id = broker.config.node_id;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            sent = broker.metadata.heartbeat(id) => {
                if let Err(err) = sent {
                    tracing::warn!(%err, "heartbeat to the controller failed");
                }
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(broker.config.broker_heartbeat_interval) => {}
        }
    }
}

/// Fences this broker as it starts, as a Kafka broker registers fenced: leadership of its
/// partitions moves to the other in-sync replicas and it leaves their ISRs (it may have lost
/// records that were not flushed), until the controller sees its heartbeats and unfences it. A
/// failed commit is logged: the broker then keeps whatever leadership the metadata gives it.
pub async fn start_fenced(broker: &Broker) {
    let me = broker.config.node_id;
    let records = fence(&broker.metadata.read(), me);
    if records.is_empty() {
        return;
    }
    if let Err(err) = broker.metadata.commit(records).await {
        tracing::warn!(%err, "fencing this broker at start failed");
    }
}

/// Whether `broker` still leads a partition that another live in-sync replica could take over, or
/// is still in an ISR it is not the last member of. Either is what its fence changes; the fence's
/// partition records are conditional, so a concurrent change (an ISR update by a leader) can make
/// one a no-op while the `FenceBroker` itself applies.
fn fence_incomplete(state: &ClusterState, broker: i32) -> bool {
    partitions(state).any(|(_, p)| {
        let others_in_sync = p.isr.iter().any(|&r| r != broker);
        (p.leader == broker && p.isr.iter().any(|&r| r != broker && is_live(state, r)))
            || (p.isr.contains(&broker) && others_in_sync)
    })
}

/// Controlled shutdown: commits this broker's own fence, so that leadership moves to the other
/// in-sync replicas while the listener still serves, and waits until it leads no partition that
/// another live in-sync replica could lead and has left every ISR it is not the last member of
/// (as Kafka's controller removes a broker in controlled shutdown from the ISRs), at most
/// `deadline`. Heartbeats must have stopped first
/// (otherwise the controller unfences the broker again). True when the broker got there in time.
pub async fn controlled_shutdown(broker: &Broker, deadline: Duration) -> bool {
    let me = broker.config.node_id;
    let metadata = &broker.metadata;
    let mut changes = metadata.subscribe();
    let done = tokio::time::timeout(deadline, async {
        loop {
            let records = {
                let state = metadata.read();
                if !state.brokers.contains_key(&me)
                    || (state.fenced.contains(&me) && !fence_incomplete(&state, me))
                {
                    return;
                }
                fence(&state, me)
            };
            tracing::info!(
                broker = me,
                "controlled shutdown: fencing this broker to move its leadership"
            );
            if let Err(err) = metadata.commit(records).await {
                tracing::warn!(%err, "controlled shutdown: committing the fence failed");
            }
            // A concurrent change may have made a conditional record a no-op: look again after
            // the next change, or after a tick when nothing changes.
            tokio::select! {
                _ = changes.changed() => {}
                () = tokio::time::sleep(broker.config.controller_tick) => {}
            }
        }
    })
    .await;
    if done.is_err() {
        tracing::warn!(
            ?deadline,
            "controlled shutdown: still leading partitions at the deadline; stopping anyway"
        );
    }
    done.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::tests::{cluster, with_partition};

    #[test]
    fn a_fence_is_complete_only_when_the_broker_has_left_every_isr_it_shares() {
        let mut s = cluster(3);
        with_partition(&mut s, "led", vec![1, 2], vec![1, 2], 1);
        with_partition(&mut s, "followed", vec![0, 1], vec![0, 1], 0);
        with_partition(&mut s, "alone", vec![1], vec![1], 1);
        assert!(fence_incomplete(&s, 1));
        for r in fence(&s, 1) {
            s.apply(&r);
        }
        assert!(!fence_incomplete(&s, 1));
        // Its last partition keeps it in the ISR, leaderless: nothing more to move.
        let alone = s.partition("alone", 0).expect("alone");
        assert_eq!((alone.leader, alone.isr.clone()), (-1, vec![1]));

        // The ISR removal was a no-op (a leader changed the ISR first): not done yet.
        let mut s = cluster(3);
        with_partition(&mut s, "followed", vec![0, 1], vec![0, 1], 0);
        s.apply(&MetadataRecord::FenceBroker { id: 1 });
        assert!(fence_incomplete(&s, 1));
    }
}
