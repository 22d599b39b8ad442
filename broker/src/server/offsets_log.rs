//! The group coordinator's log: the compacted internal topic `__consumer_offsets`, one partition on a
//! single broker, holding committed offsets and group metadata as key/value records.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use uuid::Uuid;

use crate::cluster::{MetadataRecord, MetadataStore, PartitionInfo, TopicInfo};
use crate::group::{CoordinatorLog, GroupError};
use crate::partition::{Partition, ProducerBatch, ReplicaManager};

/// Kafka's name for the internal topic of committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Creates the internal topic if absent and returns its log for the coordinator.
pub(super) async fn open(
    metadata: &MetadataStore,
    replicas: &ReplicaManager,
    node_id: i32,
) -> anyhow::Result<Arc<dyn CoordinatorLog>> {
    let configs: std::collections::BTreeMap<String, String> = [
        ("cleanup.policy".to_owned(), "compact".to_owned()),
        ("segment.bytes".to_owned(), "104857600".to_owned()),
    ]
    .into();
    let existing = metadata.read().topic(OFFSETS_TOPIC).cloned();
    let topic = match existing {
        Some(t) => t,
        None => {
            // Kafka's offsets.topic.replication.factor is 3; a smaller cluster gets every live
            // broker rather than a failure. This broker leads, as it hosts the coordinator.
            let mut replicas = vec![node_id];
            replicas.extend(
                metadata
                    .read()
                    .live_brokers()
                    .map(|b| b.id)
                    .filter(|&id| id != node_id)
                    .take(2),
            );
            let t = TopicInfo {
                name: OFFSETS_TOPIC.to_owned(),
                id: Uuid::new_v4(),
                partitions: vec![PartitionInfo::new(0, replicas)],
                configs,
            };
            metadata
                .commit(vec![MetadataRecord::CreateTopic(t.clone())])
                .await?;
            t
        }
    };
    let log_config = replicas.log_config(&topic.configs)?;
    let partition = replicas.open(OFFSETS_TOPIC, 0, log_config, 0)?;
    Ok(Arc::new(OffsetsLog { partition }))
}

struct OffsetsLog {
    partition: Arc<Partition>,
}

impl CoordinatorLog for OffsetsLog {
    fn append(&self, records: Vec<(Bytes, Option<Bytes>)>) -> Result<(), GroupError> {
        if records.is_empty() {
            return Ok(());
        }
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
        self.partition
            .append(&buf, &producer)
            .map_err(GroupError::log)?;
        Ok(())
    }

    fn replay(&self) -> Result<Vec<(Bytes, Option<Bytes>)>, GroupError> {
        let mut out = Vec::new();
        let end = self.partition.high_watermark();
        let mut offset = self.partition.log_start_offset();
        while offset < end {
            let mut bytes = self
                .partition
                .read(offset, 4 << 20)
                .map_err(GroupError::log)?;
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
