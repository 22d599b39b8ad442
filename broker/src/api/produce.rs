//! Produce: validate each partition's record batch (one batch of magic v2 per partition, CRC, size,
//! keys on compacted topics), check idempotent-producer sequences, append, answer per partition.
//! The batch bytes are stored as the producer sent them (any codec passes through); only the
//! base offset and partition leader epoch, which lie outside the CRC, are stamped by the log.

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::records::RecordBatchDecoder;

use super::message;
use crate::partition::{AppendError, producer_batch};
use crate::server::Broker;
use crate::storage::batch::validate_produce;
use crate::storage::{CleanupPolicy, StorageError};

/// `None` for acks=0: the client expects no response.
pub(super) async fn handle(
    broker: &Broker,
    request: ProduceRequest,
    version: i16,
) -> Option<ProduceResponse> {
    let acks = request.acks;
    let mut responses = Vec::with_capacity(request.topic_data.len());
    for topic in request.topic_data {
        let name = if version >= 13 {
            broker
                .metadata
                .read()
                .topic_name(&topic.topic_id)
                .map(str::to_owned)
        } else {
            Some(topic.name.0.to_string())
        };
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for data in topic.partition_data {
            let result = if !matches!(acks, -1..=1) {
                Err((
                    ResponseError::InvalidRequiredAcks,
                    format!("acks must be -1, 0 or 1, got {acks}"),
                ))
            } else if request.transactional_id.is_some() {
                Err((
                    ResponseError::TransactionalIdAuthorizationFailed,
                    "transactions are not supported".into(),
                ))
            } else {
                match &name {
                    Some(name) => produce_partition(broker, name, data.index, data.records, acks),
                    None if version >= 13 => {
                        Err((ResponseError::UnknownTopicId, "unknown topic id".into()))
                    }
                    None => Err((
                        ResponseError::UnknownTopicOrPartition,
                        "unknown topic".into(),
                    )),
                }
            };
            let mut r = PartitionProduceResponse::default().with_index(data.index);
            match result {
                Ok((base_offset, log_start_offset)) => {
                    r.base_offset = base_offset;
                    if version >= 5 {
                        r.log_start_offset = log_start_offset;
                    }
                }
                Err((code, text)) => {
                    tracing::debug!(topic = ?name, partition = data.index, error = ?code, %text, "produce refused");
                    r.error_code = code.code();
                    r.base_offset = -1;
                    if version >= 8 {
                        r.error_message = message(text);
                    }
                }
            }
            partitions.push(r);
        }
        let mut t = TopicProduceResponse::default().with_partition_responses(partitions);
        if version >= 13 {
            t.topic_id = topic.topic_id;
        } else {
            t.name = topic.name;
        }
        responses.push(t);
    }
    if acks == 0 {
        return None;
    }
    Some(ProduceResponse::default().with_responses(responses))
}

type PartitionResult = Result<(i64, i64), (ResponseError, String)>;

fn produce_partition(
    broker: &Broker,
    topic: &str,
    index: i32,
    records: Option<Bytes>,
    acks: i16,
) -> PartitionResult {
    let Some(partition) = broker.replicas.get(topic, index) else {
        return Err((
            ResponseError::UnknownTopicOrPartition,
            format!("{topic}-{index} does not exist"),
        ));
    };
    let Some(records) = records.filter(|r| !r.is_empty()) else {
        return Err((ResponseError::InvalidRecord, "no record batch".into()));
    };
    let config = partition.log().config();
    let header =
        validate_produce(&records, config.max_message_bytes).map_err(|e| batch_error(&e))?;
    if header.is_transactional() {
        return Err((
            ResponseError::InvalidRecord,
            "transactional batches are not supported".into(),
        ));
    }
    if acks == -1 && config.min_insync_replicas > 1 {
        // One broker: the in-sync replica set is this broker alone.
        return Err((
            ResponseError::NotEnoughReplicas,
            format!(
                "min.insync.replicas is {} but 1 replica is in sync",
                config.min_insync_replicas
            ),
        ));
    }
    if config.cleanup_policy != CleanupPolicy::Delete {
        require_keys(&records)?;
    }
    let producer = producer_batch(&header);
    let records_in_batch = header.record_count().max(0) as u64;
    let size = records.len() as u64;
    match partition.append(&records, &producer) {
        Ok(a) => {
            if !a.duplicate {
                broker.metrics.produced_records.inc_by(records_in_batch);
                broker.metrics.produced_bytes.inc_by(size);
            }
            Ok((a.base_offset, a.log_start_offset))
        }
        Err(AppendError::OutOfOrderSequence { producer_id }) => Err((
            ResponseError::OutOfOrderSequenceNumber,
            format!(
                "out of order sequence {} for producer {producer_id}",
                producer.base_sequence
            ),
        )),
        Err(AppendError::InvalidProducerEpoch { producer_id, epoch }) => Err((
            ResponseError::InvalidProducerEpoch,
            format!("producer {producer_id} epoch {epoch} is fenced"),
        )),
        Err(AppendError::Storage(e)) => {
            tracing::error!(topic, partition = index, error = %e, "append failed");
            Err((ResponseError::KafkaStorageError, e.to_string()))
        }
    }
}

fn batch_error(e: &StorageError) -> (ResponseError, String) {
    let code = match e {
        StorageError::CorruptBatch { .. } | StorageError::BatchTruncated { .. } => {
            ResponseError::CorruptMessage
        }
        StorageError::BatchTooLarge { .. } => ResponseError::MessageTooLarge,
        StorageError::UnsupportedMagic { .. } => ResponseError::UnsupportedVersion,
        _ => ResponseError::InvalidRecord,
    };
    (code, e.to_string())
}

/// A compacted topic needs a key on every record (Kafka: "Compacted topic cannot accept message without key").
fn require_keys(records: &Bytes) -> Result<(), (ResponseError, String)> {
    let mut buf = records.clone();
    let sets = RecordBatchDecoder::decode_all(&mut buf)
        .map_err(|e| (ResponseError::CorruptMessage, format!("{e:#}")))?;
    if sets
        .iter()
        .flat_map(|s| &s.records)
        .any(|r| r.key.is_none())
    {
        return Err((
            ResponseError::InvalidRecord,
            "compacted topic cannot accept a record without key".into(),
        ));
    }
    Ok(())
}
