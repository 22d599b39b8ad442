//! Produce: validate each partition's record batch (one batch of magic v2 per partition, CRC, size,
//! keys on compacted topics), check idempotent-producer sequences, append, answer per partition.
//! The batch bytes are stored as the producer sent them (any codec passes through); only the
//! base offset and partition leader epoch, which lie outside the CRC, are stamped by the log.
//!
//! Only the leader appends (others answer NOT_LEADER_OR_FOLLOWER with a leader hint from v10). With
//! acks=-1 the ISR must hold `min.insync.replicas` replicas before the append
//! (NOT_ENOUGH_REPLICAS), and the answer waits until the high watermark passes the batch (Kafka's
//! delayed produce) or `timeout_ms` passes (REQUEST_TIMED_OUT); an ISR that shrank below the
//! minimum meanwhile answers NOT_ENOUGH_REPLICAS_AFTER_APPEND. All partitions of a request are
//! appended first and then waited for together, so one request waits at most `timeout_ms`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_response::{
    LeaderIdAndEpoch, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse};
use kafka_protocol::records::RecordBatchDecoder;

use super::message;
use crate::partition::{AppendError, Partition, producer_batch};
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
    let timeout = Duration::from_millis(u64::try_from(request.timeout_ms).unwrap_or(0));
    let mut responses = Vec::with_capacity(request.topic_data.len());
    // (topic slot, [(partition slot, wait)]) of acks=-1 appends still to be replicated.
    let mut pending: Vec<(usize, Vec<(usize, AckWait)>)> = Vec::new();
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
        let mut waits = Vec::new();
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
                Ok(done) => {
                    r.base_offset = done.base_offset;
                    if version >= 5 {
                        r.log_start_offset = done.log_start_offset;
                    }
                    if let Some(w) = done.wait {
                        waits.push((partitions.len(), w));
                    }
                }
                Err((code, text)) => {
                    if code == ResponseError::NotLeaderOrFollower && version >= 10 {
                        r.current_leader = leader_hint(broker, name.as_deref(), data.index);
                    }
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
        pending.push((responses.len(), waits));
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
    let deadline = tokio::time::Instant::now() + timeout;
    let waits = pending
        .into_iter()
        .flat_map(|(t, ws)| ws.into_iter().map(move |(p, w)| (t, p, w)));
    let outcomes = futures::future::join_all(
        waits.map(|(t, p, w)| async move { (t, p, w.wait(deadline).await) }),
    )
    .await;
    for (t, p, outcome) in outcomes {
        let Err((code, text)) = outcome else {
            continue;
        };
        let Some(r) = responses
            .get_mut(t)
            .and_then(|topic| topic.partition_responses.get_mut(p))
        else {
            continue;
        };
        tracing::debug!(partition = r.index, error = ?code, %text, "acks=all produce failed");
        r.error_code = code.code();
        r.base_offset = -1;
        if version >= 8 {
            r.error_message = message(text);
        }
    }
    Some(ProduceResponse::default().with_responses(responses))
}

/// An appended batch that acks=all must see replicated.
struct AckWait {
    partition: Arc<Partition>,
    /// The high watermark must reach this offset.
    end_offset: i64,
    min_insync: usize,
}

impl AckWait {
    /// Waits until the high watermark passes the batch, the ISR shrinks below the minimum, the
    /// leadership is lost, or `deadline`.
    async fn wait(self, deadline: tokio::time::Instant) -> Result<(), (ResponseError, String)> {
        let p = &self.partition;
        let mut hw = p.subscribe();
        let mut role = p.subscribe_role();
        loop {
            hw.borrow_and_update();
            role.borrow_and_update();
            if !p.is_leader() {
                return Err((
                    ResponseError::NotLeaderOrFollower,
                    format!(
                        "{}-{} lost its leadership before the batch was replicated",
                        p.topic, p.index
                    ),
                ));
            }
            if p.high_watermark() >= self.end_offset {
                let isr = p.isr().len();
                return if isr < self.min_insync {
                    Err((
                        ResponseError::NotEnoughReplicasAfterAppend,
                        format!(
                            "the ISR shrank to {isr}, below min.insync.replicas {}",
                            self.min_insync
                        ),
                    ))
                } else {
                    Ok(())
                };
            }
            // As Kafka's delayed produce: the ISR size is judged once the high watermark passed
            // the batch (a shrink is what lets it pass when a follower stops).
            let changed = async {
                tokio::select! {
                    r = hw.changed() => r.is_ok(),
                    r = role.changed() => r.is_ok(),
                }
            };
            match tokio::time::timeout_at(deadline, changed).await {
                Ok(true) => {}
                Ok(false) => {
                    return Err((
                        ResponseError::NotLeaderOrFollower,
                        "partition closed".into(),
                    ));
                }
                Err(_) => {
                    return Err((
                        ResponseError::RequestTimedOut,
                        format!(
                            "the batch was not replicated to the ISR within the timeout; high watermark {}",
                            p.high_watermark()
                        ),
                    ));
                }
            }
        }
    }
}

/// What a partition's append produced: offsets, and for acks=-1 what to wait for.
struct Produced {
    base_offset: i64,
    log_start_offset: i64,
    wait: Option<AckWait>,
}

type PartitionResult = Result<Produced, (ResponseError, String)>;

/// Where the leader is, for clients told NOT_LEADER_OR_FOLLOWER (Produce v10+).
fn leader_hint(broker: &Broker, topic: Option<&str>, index: i32) -> LeaderIdAndEpoch {
    let (leader, epoch) = super::current_leader(broker, topic, index);
    LeaderIdAndEpoch::default()
        .with_leader_id(BrokerId(leader))
        .with_leader_epoch(epoch)
}

fn produce_partition(
    broker: &Broker,
    topic: &str,
    index: i32,
    records: Option<Bytes>,
    acks: i16,
) -> PartitionResult {
    let Some(partition) = broker.replicas.get(topic, index) else {
        return Err((
            super::not_hosted(broker, topic, index),
            format!("{topic}-{index} is not hosted by this broker"),
        ));
    };
    let Some(records) = records.filter(|r| !r.is_empty()) else {
        return Err((ResponseError::InvalidRecord, "no record batch".into()));
    };
    if !partition.is_leader() {
        return Err((
            ResponseError::NotLeaderOrFollower,
            format!("this broker does not lead {topic}-{index}"),
        ));
    }
    let config = partition.log().config();
    let header =
        validate_produce(&records, config.max_message_bytes).map_err(|e| batch_error(&e))?;
    if header.is_transactional() {
        return Err((
            ResponseError::InvalidRecord,
            "transactional batches are not supported".into(),
        ));
    }
    let min_insync = usize::try_from(config.min_insync_replicas).unwrap_or(usize::MAX);
    let isr = partition.isr().len().max(1);
    if acks == -1 && isr < min_insync {
        return Err((
            ResponseError::NotEnoughReplicas,
            format!(
                "min.insync.replicas is {} but {isr} replicas are in sync",
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
            Ok(Produced {
                base_offset: a.base_offset,
                log_start_offset: a.log_start_offset,
                wait: (acks == -1).then(|| AckWait {
                    partition: partition.clone(),
                    end_offset: a.end_offset,
                    min_insync,
                }),
            })
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
        Err(AppendError::NotLeader { .. } | AppendError::RoleChanged { .. }) => Err((
            ResponseError::NotLeaderOrFollower,
            format!("this broker does not lead {topic}-{index}"),
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
