//! OffsetForLeaderEpoch (API 23): for each partition, the largest leader epoch at most the one asked
//! and the offset where it ends in the leader's log (KIP-101/279). Clients (librdkafka after a
//! leader change, KIP-320) use it to detect a log truncated under them. Only the leader answers;
//! `current_leader_epoch` (v2+) is checked as in Fetch.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use crate::partition::EpochError;
use crate::server::Broker;

pub(super) fn handle(
    broker: &Broker,
    request: OffsetForLeaderEpochRequest,
    version: i16,
) -> OffsetForLeaderEpochResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let name = t.topic.0.to_string();
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let current = if version >= 2 {
                        p.current_leader_epoch
                    } else {
                        -1
                    };
                    let r = EpochEndOffset::default().with_partition(p.partition);
                    match end_offset(broker, &name, p.partition, current, p.leader_epoch) {
                        Ok((epoch, offset)) => r.with_leader_epoch(epoch).with_end_offset(offset),
                        Err(code) => r
                            .with_error_code(code.code())
                            .with_leader_epoch(-1)
                            .with_end_offset(-1),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

fn end_offset(
    broker: &Broker,
    topic: &str,
    index: i32,
    current_leader_epoch: i32,
    leader_epoch: i32,
) -> Result<(i32, i64), ResponseError> {
    let partition = broker
        .replicas
        .get(topic, index)
        .ok_or_else(|| super::not_hosted(broker, topic, index))?;
    if !partition.is_leader() {
        return Err(ResponseError::NotLeaderOrFollower);
    }
    match partition.check_leader_epoch(current_leader_epoch) {
        Ok(()) => Ok(partition.log().end_offset_for_epoch(leader_epoch)),
        Err(EpochError::Fenced { .. }) => Err(ResponseError::FencedLeaderEpoch),
        Err(EpochError::Unknown { .. }) => Err(ResponseError::UnknownLeaderEpoch),
    }
}
