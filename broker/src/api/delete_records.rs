//! DeleteRecords: move a partition's log start offset forward (`-1` means the high watermark).
//! Only the leader answers; followers follow its log start offset through their fetches.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use crate::server::Broker;

pub(super) fn handle(
    broker: &Broker,
    request: DeleteRecordsRequest,
    _version: i16,
) -> DeleteRecordsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let mut r = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index);
                    match delete(broker, &name, p.partition_index, p.offset) {
                        Ok(low) => r.low_watermark = low,
                        Err(code) => {
                            r.error_code = code.code();
                            r.low_watermark = -1;
                        }
                    }
                    r
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}

fn delete(broker: &Broker, topic: &str, index: i32, offset: i64) -> Result<i64, ResponseError> {
    let partition = broker
        .replicas
        .get(topic, index)
        .ok_or_else(|| super::not_hosted(broker, topic, index))?;
    if !partition.is_leader() {
        return Err(ResponseError::NotLeaderOrFollower);
    }
    let hw = partition.high_watermark();
    let target = if offset == -1 { hw } else { offset };
    if target < 0 || target > hw {
        return Err(ResponseError::OffsetOutOfRange);
    }
    if target <= partition.log_start_offset() {
        return Ok(partition.log_start_offset());
    }
    partition.delete_records_before(target).map_err(|e| {
        tracing::error!(topic, partition = index, error = %e, "delete records failed");
        ResponseError::KafkaStorageError
    })
}
