//! The group coordinator's log: the compacted internal topic `__consumer_offsets`, one partition,
//! holding committed offsets and group metadata as key/value records.
//!
//! The broker that leads that partition is the group coordinator of every group (FindCoordinator
//! names it). [`follow_leadership`] activates this broker's coordinator, reloading every group
//! from the partition's log, when it becomes the leader, and deactivates it when it stops being
//! the leader; appends are refused on a broker that does not lead the partition.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use uuid::Uuid;

use tokio_util::sync::CancellationToken;

use super::Broker;
use crate::cluster::{ClusterState, MetadataRecord, MetadataStore, PartitionInfo, TopicInfo};
use crate::group::{CoordinatorLog, DurableFuture, GroupError};
use crate::partition::{Partition, ProducerBatch, ReplicaManager};

/// Kafka's name for the internal topic of committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The broker that coordinates every consumer group: the leader of `__consumer_offsets`
/// partition 0, or -1 while it has none.
pub fn group_coordinator(state: &ClusterState) -> i32 {
    coordinator(state).0
}

/// The broker that coordinates groups: the leader of `__consumer_offsets` partition 0, if it has
/// one (-1 otherwise), and that partition's leader epoch.
pub(crate) fn coordinator(state: &ClusterState) -> (i32, i32) {
    state
        .partition(OFFSETS_TOPIC, 0)
        .map_or((-1, -1), |p| (p.leader, p.leader_epoch))
}

/// Creates the internal topic if absent and returns its log for the coordinator.
///
/// The topic gets `want_replicas` replicas (Kafka's `offsets.topic.replication.factor` is 3; a
/// cluster whose metadata quorum has fewer voters may be smaller, so the broker passes
/// `min(3, voters)`). Creation waits, up to `wait`, until that many brokers have registered, so
/// that brokers starting together do not give the topic a single replica; after the wait it takes
/// the brokers there are.
pub(super) async fn open(
    metadata: &Arc<MetadataStore>,
    replicas: &Arc<ReplicaManager>,
    node_id: i32,
    want_replicas: usize,
    wait: std::time::Duration,
) -> anyhow::Result<Arc<dyn CoordinatorLog>> {
    let configs: std::collections::BTreeMap<String, String> = [
        ("cleanup.policy".to_owned(), "compact".to_owned()),
        ("segment.bytes".to_owned(), "104857600".to_owned()),
    ]
    .into();
    if metadata.read().topic(OFFSETS_TOPIC).is_none() {
        let want = want_replicas.max(1);
        let deadline = tokio::time::Instant::now() + wait;
        let mut changes = metadata.subscribe();
        while metadata.read().brokers.len() < want && metadata.read().topic(OFFSETS_TOPIC).is_none()
        {
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                tracing::warn!(
                    want,
                    registered = metadata.read().brokers.len(),
                    "creating {OFFSETS_TOPIC} with fewer replicas than wanted: not enough brokers registered"
                );
                break;
            }
        }
    }
    if metadata.read().topic(OFFSETS_TOPIC).is_none() {
        // This broker leads, as it is the one creating the coordinator's log.
        // Registered brokers, unfenced ones first: at start-up every broker fences itself until
        // the controller has seen it heartbeat, so fencing says little here.
        let mut others: Vec<i32> = {
            let state = metadata.read();
            state
                .brokers
                .keys()
                .copied()
                .filter(|&id| id != node_id)
                .collect()
        };
        {
            let state = metadata.read();
            others.sort_by_key(|id| (state.fenced.contains(id), *id));
        }
        let mut replicas = vec![node_id];
        replicas.extend(others.into_iter().take(want_replicas.max(1) - 1));
        let t = TopicInfo {
            name: OFFSETS_TOPIC.to_owned(),
            id: Uuid::new_v4(),
            partitions: vec![PartitionInfo::new(0, replicas)],
            configs,
        };
        // Brokers starting together may race here: the first creation wins (a later CreateTopic of
        // the same name is ignored), so the topic is read back rather than assumed.
        metadata
            .commit(vec![MetadataRecord::CreateTopic(t)])
            .await?;
    }
    if metadata.read().topic(OFFSETS_TOPIC).is_none() {
        anyhow::bail!("{OFFSETS_TOPIC} is missing right after its creation");
    }
    // The partition itself is opened (or not, on a broker that is no replica of it) by the
    // replica reactor, like every other partition; the log looks it up on each use.
    Ok(Arc::new(OffsetsLog {
        replicas: replicas.clone(),
        metadata: metadata.clone(),
        node_id,
        appended_end: AtomicI64::new(0),
    }))
}

/// Brings this broker's group coordinator in step with the leadership of the offsets partition:
/// active, and loaded from the log at the current leader epoch, exactly while this broker leads
/// it. A new leader epoch reloads even when this broker leads again: another broker may have
/// coordinated in between. Returns false while this broker is the leader in the metadata but its
/// replica has not taken the leadership yet (the replica reactor runs on the same change): the
/// caller tries again shortly.
pub(super) fn sync_coordinator(broker: &Broker) -> Result<bool, GroupError> {
    let me = broker.config.node_id;
    let (leader, epoch) = coordinator(&broker.metadata.read());
    let loaded = broker.coordinator_epoch.load(Ordering::SeqCst);
    if leader == me {
        let leading = broker
            .replicas
            .get(OFFSETS_TOPIC, 0)
            .is_some_and(|p| p.is_leader() && p.leader_epoch() >= epoch);
        if !leading {
            return Ok(false);
        }
        if loaded != epoch || !broker.groups.is_active() {
            broker.groups.activate()?;
            broker.coordinator_epoch.store(epoch, Ordering::SeqCst);
            tracing::info!(
                leader_epoch = epoch,
                "this broker is now the group coordinator"
            );
        }
    } else if loaded != -1 || broker.groups.is_active() {
        broker.groups.deactivate();
        broker.coordinator_epoch.store(-1, Ordering::SeqCst);
        tracing::info!(leader, "this broker no longer coordinates groups");
    }
    Ok(true)
}

/// Runs [`sync_coordinator`] on every metadata change until `shutdown`; a failed or unsettled
/// load is retried every controller tick.
pub(super) async fn follow_leadership(broker: Arc<Broker>, shutdown: CancellationToken) {
    let mut changes = broker.metadata.subscribe();
    loop {
        let retry = match sync_coordinator(&broker) {
            Ok(settled) => !settled,
            Err(err) => {
                tracing::warn!(%err, "loading the group coordinator failed; retrying");
                true
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = changes.changed() => {}
            () = tokio::time::sleep(broker.config.controller_tick), if retry => {}
        }
    }
}

/// Waits until the offsets partition's high watermark reaches `end`: everything before it is on
/// every in-sync replica. This is the one place where offset commits get acks=all semantics; with
/// a single replica the high watermark is the log end and this returns at once. The replication
/// layer advances the high watermark as followers fetch; should it offer a dedicated "committed
/// up to" wait, this function is the call site to point at it. Fails as soon as this broker no
/// longer leads the partition: the high watermark would not move here any more.
async fn wait_offsets_replicated(
    partition: &Partition,
    metadata: &MetadataStore,
    node_id: i32,
    end: i64,
) -> Result<(), GroupError> {
    let mut hw = partition.subscribe();
    let mut changes = metadata.subscribe();
    loop {
        if *hw.borrow_and_update() >= end {
            return Ok(());
        }
        let (leader, _) = coordinator(&metadata.read());
        if leader != node_id {
            return Err(GroupError::log(format!(
                "broker {node_id} lost the leadership of {OFFSETS_TOPIC}-0 (leader {leader}) before the offsets were replicated"
            )));
        }
        tokio::select! {
            changed = hw.changed() => {
                if changed.is_err() {
                    return Err(GroupError::log("the offsets partition was closed"));
                }
            }
            _ = changes.changed() => {}
        }
    }
}

struct OffsetsLog {
    replicas: Arc<ReplicaManager>,
    metadata: Arc<MetadataStore>,
    node_id: i32,
    /// The log end offset after the last append: what [`CoordinatorLog::wait_durable`] waits for.
    appended_end: AtomicI64,
}

impl OffsetsLog {
    /// This broker's replica of the offsets partition.
    fn partition(&self) -> Result<Arc<Partition>, GroupError> {
        self.replicas.get(OFFSETS_TOPIC, 0).ok_or_else(|| {
            GroupError::log(format!(
                "broker {} hosts no replica of {OFFSETS_TOPIC}-0",
                self.node_id
            ))
        })
    }
}

impl CoordinatorLog for OffsetsLog {
    fn append(&self, records: Vec<(Bytes, Option<Bytes>)>) -> Result<(), GroupError> {
        if records.is_empty() {
            return Ok(());
        }
        // Only the leader writes: a broker that lost leadership must not fork the log.
        let (leader, _) = coordinator(&self.metadata.read());
        if leader != self.node_id {
            return Err(GroupError::log(format!(
                "broker {} does not lead {OFFSETS_TOPIC}-0 (leader {leader})",
                self.node_id
            )));
        }
        let count = records.len() as i64;
        let now = super::topics::now_ms();
        let recs: Vec<Record> = records
            .into_iter()
            .enumerate()
            .map(|(i, (key, value))| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder starts a new batch when offset - sequence changes: keep it constant.
                sequence: i as i32 - 1,
                timestamp: now,
                key: Some(key),
                value,
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, recs.iter(), &options).map_err(GroupError::log)?;
        let producer = ProducerBatch {
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            last_offset_delta: 0,
        };
        let appended = self
            .partition()?
            .append(&buf, &producer)
            .map_err(GroupError::log)?;
        self.appended_end
            .fetch_max(appended.base_offset + count, Ordering::SeqCst);
        Ok(())
    }

    fn wait_durable(&self) -> DurableFuture<'_> {
        let end = self.appended_end.load(Ordering::SeqCst);
        Box::pin(async move {
            let partition = self.partition()?;
            wait_offsets_replicated(&partition, &self.metadata, self.node_id, end).await
        })
    }

    fn replay(&self) -> Result<Vec<(Bytes, Option<Bytes>)>, GroupError> {
        let mut out = Vec::new();
        let partition = self.partition()?;
        let end = partition.high_watermark();
        let mut offset = partition.log_start_offset();
        while offset < end {
            let mut bytes = partition.read(offset, 4 << 20).map_err(GroupError::log)?;
            if bytes.is_empty() {
                break;
            }
            let sets = RecordBatchDecoder::decode_all(&mut bytes)
                .map_err(|e| GroupError::log(format!("{e:#}")))?;
            let before = offset;
            for set in sets {
                for r in set.records {
                    offset = offset.max(r.offset + 1);
                    if let Some(key) = r.key {
                        out.push((key, r.value));
                    }
                }
            }
            if offset == before {
                break;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn offsets_log(dir: &std::path::Path) -> (Arc<MetadataStore>, Arc<dyn CoordinatorLog>) {
        let metadata = Arc::new(MetadataStore::open(&dir.join("metadata")).expect("store"));
        let replicas = Arc::new(ReplicaManager::new(dir.join("data"), Default::default()));
        let log = open(&metadata, &replicas, 0, 1, std::time::Duration::ZERO)
            .await
            .expect("open");
        crate::replica::reconcile(&metadata, &replicas, 0).expect("reconcile");
        (metadata, log)
    }

    fn record(key: &'static [u8]) -> (Bytes, Option<Bytes>) {
        (Bytes::from_static(key), Some(Bytes::from_static(b"v")))
    }

    fn leader(leader: i32) -> MetadataRecord {
        MetadataRecord::PartitionChange {
            topic: OFFSETS_TOPIC.into(),
            index: 0,
            expected_partition_epoch: None,
            leader: Some(leader),
            isr: None,
            replicas: None,
            adding_replicas: None,
            removing_replicas: None,
        }
    }

    #[tokio::test]
    async fn only_the_leader_appends_and_its_appends_are_durable_at_once_with_one_replica() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (metadata, log) = offsets_log(dir.path()).await;
        log.append(vec![record(b"a"), record(b"b")])
            .expect("append");
        log.wait_durable().await.expect("durable");
        assert_eq!(log.replay().expect("replay").len(), 2);
        metadata.commit(vec![leader(-1)]).await.expect("commit");
        assert!(log.append(vec![record(b"c")]).is_err());
        assert_eq!(log.replay().expect("replay").len(), 2);
    }

    #[tokio::test]
    async fn waiting_for_replication_ends_when_leadership_is_lost() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (metadata, log) = offsets_log(dir.path()).await;
        // The partition is opened again below, on its own: one owner at a time.
        drop(log);
        let replicas = ReplicaManager::new(dir.path().join("data"), Default::default());
        let config = replicas.log_config(&Default::default()).expect("config");
        let partition = replicas
            .open(OFFSETS_TOPIC, 0, config, 0)
            .expect("partition");
        // An offset beyond the high watermark: followers have not fetched it yet.
        let end = partition.high_watermark() + 1;
        let wait = wait_offsets_replicated(&partition, &metadata, 0, end);
        tokio::pin!(wait);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut wait)
                .await
                .is_err(),
            "still waiting while this broker leads"
        );
        metadata.commit(vec![leader(1)]).await.expect("commit");
        let lost = tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .expect("answered once leadership moved");
        assert!(lost.is_err());
    }
}
