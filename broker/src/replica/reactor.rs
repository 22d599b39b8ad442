//! The metadata reactor: makes the partitions this broker hosts, and their roles, match the
//! cluster metadata (Kafka's `ReplicaManager.applyDelta`).
//!
//! [`reconcile`] is idempotent and may run at any time: at start, after every metadata change
//! ([`run`]), and directly after a topic admin commit so that a topic is usable when CreateTopics
//! returns. Role changes are ordered by leader epoch inside [`Partition`](crate::partition::Partition), so a reconciliation
//! that read older metadata than another cannot undo it.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::cluster::MetadataStore;
use crate::partition::{PartitionKey, ReplicaManager};
use crate::server::Broker;
use crate::storage::StorageError;

/// Partitions this broker follows, by leader broker id.
pub type FetchPlan = BTreeMap<i32, BTreeSet<PartitionKey>>;

/// What a reconciliation did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileOutcome {
    /// Partitions this broker leads.
    pub leading: usize,
    /// Partitions this broker follows.
    pub following: usize,
    /// Partitions closed and deleted.
    pub removed: usize,
}

/// Opens every partition this broker (`me`) is a replica of, sets its role, deletes the partitions
/// it no longer hosts, and publishes the fetch plan. A partition that fails to open is logged and
/// skipped (the others still serve); the first such error is returned after the whole pass.
pub fn reconcile(
    metadata: &MetadataStore,
    replicas: &ReplicaManager,
    me: i32,
) -> Result<ReconcileOutcome, StorageError> {
    let _serial = replicas.reconcile_lock();
    // Copy what is needed: the metadata lock must not be held while files are opened.
    let topics: Vec<_> = metadata.read().topics.values().cloned().collect();
    let mut outcome = ReconcileOutcome::default();
    let mut hosted: HashSet<PartitionKey> = HashSet::new();
    let mut plan = FetchPlan::new();
    let mut first_error = None;
    for topic in &topics {
        let log_config = match replicas.log_config(&topic.configs) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(topic = %topic.name, error = %e, "topic configs are invalid; its partitions are not opened");
                continue;
            }
        };
        for p in topic.partitions.iter().filter(|p| p.replicas.contains(&me)) {
            let key = (topic.name.clone(), p.index);
            let partition = match replicas.open(
                &topic.name,
                p.index,
                log_config.clone(),
                p.leader_epoch,
            ) {
                Ok(partition) => partition,
                Err(e) => {
                    tracing::error!(topic = %topic.name, partition = p.index, error = %e, "opening a partition failed");
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            hosted.insert(key.clone());
            if p.leader == me {
                partition.become_leader(
                    me,
                    p.leader_epoch,
                    p.partition_epoch,
                    p.replicas.clone(),
                    p.isr.clone(),
                );
                outcome.leading += 1;
            } else {
                partition.become_follower(p.leader, p.leader_epoch);
                outcome.following += 1;
                if p.leader >= 0 {
                    plan.entry(p.leader).or_default().insert(key);
                }
            }
        }
    }
    for partition in replicas.all() {
        let key = (partition.topic.clone(), partition.index);
        if hosted.contains(&key) {
            continue;
        }
        drop(partition);
        match replicas.remove(&key.0, key.1) {
            Ok(()) => {
                outcome.removed += 1;
                tracing::info!(topic = %key.0, partition = key.1, "removed a partition this broker no longer hosts");
            }
            Err(e) => {
                tracing::error!(topic = %key.0, partition = key.1, error = %e, "removing a partition failed");
                first_error.get_or_insert(e);
            }
        }
    }
    replicas.set_fetch_plan(plan);
    match first_error {
        Some(e) => Err(e),
        None => Ok(outcome),
    }
}

/// Reconciles after every metadata change until `shutdown`.
pub async fn run(broker: Arc<Broker>, shutdown: CancellationToken) {
    let mut changes = broker.metadata.subscribe();
    loop {
        let b = broker.clone();
        let done = tokio::task::spawn_blocking(move || {
            reconcile(&b.metadata, &b.replicas, b.config.node_id)
        })
        .await;
        match done {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "reconciling partitions with the metadata failed");
            }
            Err(e) => tracing::error!(error = %e, "reconciliation panicked"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = changes.changed() => if changed.is_err() { return },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{BrokerInfo, MetadataRecord, PartitionInfo, TopicInfo};
    use crate::partition::Role;

    fn broker(id: i32) -> MetadataRecord {
        MetadataRecord::RegisterBroker(BrokerInfo {
            id,
            host: "127.0.0.1".into(),
            port: 9092 + id,
            rack: None,
        })
    }

    fn topic(name: &str, placements: &[&[i32]]) -> MetadataRecord {
        MetadataRecord::CreateTopic(TopicInfo {
            name: name.into(),
            id: uuid::Uuid::new_v4(),
            partitions: placements
                .iter()
                .enumerate()
                .map(|(i, r)| PartitionInfo::new(i as i32, r.to_vec()))
                .collect(),
            configs: BTreeMap::new(),
        })
    }

    #[tokio::test]
    async fn only_partitions_with_this_broker_as_replica_are_opened_with_their_roles() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(&dir.path().join("meta")).unwrap();
        store
            .commit(vec![broker(1), broker(2), broker(3)])
            .await
            .unwrap();
        store
            .commit(vec![topic("t", &[&[1, 2], &[2, 3], &[3, 1]])])
            .await
            .unwrap();
        let replicas = ReplicaManager::new(dir.path().join("data"), BTreeMap::new());
        let outcome = reconcile(&store, &replicas, 1).unwrap();
        assert_eq!((outcome.leading, outcome.following), (1, 1));
        assert!(replicas.get("t", 1).is_none());
        assert!(matches!(
            replicas.get("t", 0).unwrap().role(),
            Role::Leader { .. }
        ));
        assert!(matches!(
            replicas.get("t", 2).unwrap().role(),
            Role::Follower { leader: 3 }
        ));
        let plan = replicas.subscribe_fetch_plan().borrow().clone();
        assert_eq!(plan.len(), 1);
        assert!(plan[&3].contains(&("t".to_owned(), 2)));

        // Broker 1 leaves partition 2's replicas and leads it nowhere else: its files go.
        store
            .commit(vec![MetadataRecord::PartitionChange {
                topic: "t".into(),
                index: 2,
                expected_partition_epoch: None,
                leader: None,
                isr: Some(vec![3]),
                replicas: Some(vec![3]),
                adding_replicas: None,
                removing_replicas: None,
            }])
            .await
            .unwrap();
        let outcome = reconcile(&store, &replicas, 1).unwrap();
        assert_eq!(outcome.removed, 1);
        assert!(!dir.path().join("data/t-2").exists());
        assert!(replicas.subscribe_fetch_plan().borrow().is_empty());

        // Deleting the topic removes the rest.
        store
            .commit(vec![MetadataRecord::DeleteTopic { name: "t".into() }])
            .await
            .unwrap();
        reconcile(&store, &replicas, 1).unwrap();
        assert!(replicas.all().is_empty());
        assert!(!dir.path().join("data/t-0").exists());
    }

    #[tokio::test]
    async fn a_leader_change_makes_the_old_leader_follow_at_the_new_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(&dir.path().join("meta")).unwrap();
        store.commit(vec![broker(1), broker(2)]).await.unwrap();
        store.commit(vec![topic("t", &[&[1, 2]])]).await.unwrap();
        let replicas = ReplicaManager::new(dir.path().join("data"), BTreeMap::new());
        reconcile(&store, &replicas, 1).unwrap();
        let p = replicas.get("t", 0).unwrap();
        assert!(p.is_leader());
        store
            .commit(vec![MetadataRecord::PartitionChange {
                topic: "t".into(),
                index: 0,
                expected_partition_epoch: Some(0),
                leader: Some(2),
                isr: None,
                replicas: None,
                adding_replicas: None,
                removing_replicas: None,
            }])
            .await
            .unwrap();
        reconcile(&store, &replicas, 1).unwrap();
        assert!(!p.is_leader());
        assert_eq!(p.leader_epoch(), 1);
        // A stale leadership (epoch 0) is ignored.
        assert!(!p.become_leader(1, 0, 0, vec![1, 2], vec![1, 2]));
        assert!(!p.is_leader());
    }
}
