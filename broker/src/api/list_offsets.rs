//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3, v7+), earliest local (-4, v8+), and the
//! first offset whose timestamp is at or after a given time. Only the leader answers
//! (NOT_LEADER_OR_FOLLOWER elsewhere), after checking `current_leader_epoch` (v4+).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::server::Broker;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const EARLIEST_PENDING_UPLOAD: i64 = -5;

pub(super) fn handle(
    broker: &Broker,
    request: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let mut r = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    let epoch = if version >= 4 {
                        p.current_leader_epoch
                    } else {
                        -1
                    };
                    match lookup(
                        broker,
                        &name,
                        p.partition_index,
                        p.timestamp,
                        version,
                        epoch,
                    ) {
                        Ok((offset, timestamp, epoch)) => {
                            r.offset = offset;
                            r.timestamp = timestamp;
                            if version >= 4 {
                                r.leader_epoch = epoch;
                            }
                        }
                        Err(code) => r.error_code = code.code(),
                    }
                    r
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// `(offset, timestamp, leader epoch)`; offset -1 when no record has a timestamp that late.
fn lookup(
    broker: &Broker,
    topic: &str,
    index: i32,
    timestamp: i64,
    version: i16,
    current_leader_epoch: i32,
) -> Result<(i64, i64, i32), ResponseError> {
    let partition = broker
        .replicas
        .get(topic, index)
        .ok_or_else(|| super::not_hosted(broker, topic, index))?;
    if !partition.is_leader() {
        return Err(ResponseError::NotLeaderOrFollower);
    }
    match partition.check_leader_epoch(current_leader_epoch) {
        Ok(()) => {}
        Err(crate::partition::EpochError::Fenced { .. }) => {
            return Err(ResponseError::FencedLeaderEpoch);
        }
        Err(crate::partition::EpochError::Unknown { .. }) => {
            return Err(ResponseError::UnknownLeaderEpoch);
        }
    }
    let epoch = partition.leader_epoch();
    match timestamp {
        LATEST => Ok((partition.high_watermark(), -1, epoch)),
        EARLIEST => Ok((partition.log_start_offset(), -1, epoch)),
        EARLIEST_LOCAL if version >= 8 => Ok((partition.log_start_offset(), -1, epoch)),
        EARLIEST_PENDING_UPLOAD if version >= 9 => Ok((partition.log_start_offset(), -1, epoch)),
        MAX_TIMESTAMP if version >= 7 => Ok(match partition.log().max_timestamp() {
            Some((ts, offset)) => (offset, ts, epoch),
            None => (-1, -1, epoch),
        }),
        ts if ts >= 0 => match partition.log().offset_for_timestamp(ts) {
            Ok(Some((offset, found_ts))) if offset < partition.high_watermark() => {
                Ok((offset, found_ts, epoch))
            }
            Ok(_) => Ok((-1, -1, epoch)),
            Err(e) => {
                tracing::error!(topic, partition = index, error = %e, "timestamp lookup failed");
                Err(ResponseError::KafkaStorageError)
            }
        },
        _ => Err(ResponseError::InvalidRequest),
    }
}
