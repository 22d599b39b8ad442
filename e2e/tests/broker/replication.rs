//! Replication as one broker process shows it: a lone broker leads its partitions with itself as
//! the ISR (so `--default-replication-factor` is capped for implicitly created topics), serves
//! OffsetForLeaderEpoch, fences requests carrying another leader epoch, and after a `kill -9`
//! serves every acknowledged record again (the high watermark of a one-replica ISR is its log end).
//! Multi-broker replication is tested in-process in the broker crate (`replica::tests`) until the
//! brokers of separate processes share metadata.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, ListOffsetsRequest, MetadataRequest, OffsetForLeaderEpochRequest,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

use std::time::Duration;

use crate::common::wire::Wire;
use crate::common::{BrokerProcess, wait_until};
use crate::protocol::{batch, produce_request};

const TOPIC: &str = "replicated";

fn name() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

/// `(error code, leader epoch, end offset)` of OffsetForLeaderEpoch for `epoch`.
fn epoch_end(wire: &mut Wire, current_leader_epoch: i32, epoch: i32) -> (i16, i32, i64) {
    let r = wire.call(
        &OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                OffsetForLeaderTopic::default()
                    .with_topic(name())
                    .with_partitions(vec![
                        OffsetForLeaderPartition::default()
                            .with_partition(0)
                            .with_current_leader_epoch(current_leader_epoch)
                            .with_leader_epoch(epoch),
                    ]),
            ]),
        4,
    );
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.leader_epoch, p.end_offset)
}

fn latest_offset(wire: &mut Wire) -> i64 {
    let r = wire.call(
        &ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(name())
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(0)
                            .with_timestamp(-1),
                    ]),
            ]),
        7,
    );
    let p = &r.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    p.offset
}

#[test]
fn a_lone_broker_leads_with_itself_in_sync_and_fences_other_leader_epochs() {
    let mut broker = BrokerProcess::start(&[
        "--default-replication-factor",
        "3",
        "--auto-create-topics",
        "true",
        // The shared test batches carry 2023 timestamps: keep them past the restart.
        "--topic-config",
        "retention.ms=-1",
    ]);
    let mut wire = Wire::connect(broker.kafka);
    let meta = wire.call(
        &MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(name())),
            ]))
            .with_allow_auto_topic_creation(true),
        12,
    );
    let topic = &meta.topics[0];
    assert_eq!(topic.error_code, 0);
    let p = &topic.partitions[0];
    assert_eq!(p.error_code, 0);
    assert_eq!(p.leader_id, BrokerId(0));
    assert_eq!(p.replica_nodes, vec![BrokerId(0)]);
    assert_eq!(p.isr_nodes, vec![BrokerId(0)]);
    assert!(p.offline_replicas.is_empty());
    assert_eq!(p.leader_epoch, 0);

    for (n, base) in [(3, 0), (2, 3)] {
        let r = wire.call(
            &produce_request(TOPIC, 0, batch(n, None, Compression::None, false), -1),
            9,
        );
        let pr = &r.responses[0].partition_responses[0];
        assert_eq!((pr.error_code, pr.base_offset), (0, base));
    }

    assert_eq!(epoch_end(&mut wire, 0, 0), (0, 0, 5));
    assert_eq!(epoch_end(&mut wire, -1, 0), (0, 0, 5));
    assert_eq!(
        epoch_end(&mut wire, 1, 0).0,
        ResponseError::UnknownLeaderEpoch.code()
    );

    let fetch = |current_leader_epoch: i32| {
        FetchRequest::default()
            .with_max_wait_ms(0)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(name())
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(0)
                            .with_fetch_offset(0)
                            .with_current_leader_epoch(current_leader_epoch)
                            .with_partition_max_bytes(1 << 20),
                    ]),
            ])
    };
    let r = wire.call(&fetch(1), 12);
    assert_eq!(
        r.responses[0].partitions[0].error_code,
        ResponseError::UnknownLeaderEpoch.code()
    );
    let r = wire.call(&fetch(0), 12);
    let data = &r.responses[0].partitions[0];
    assert_eq!((data.error_code, data.high_watermark), (0, 5));
    let served = data.records.clone().unwrap_or_default();
    assert!(!served.is_empty());

    // A crash loses nothing acknowledged, and it is all visible again. The restarted broker was
    // fenced until the controller saw it heartbeat and then led again, each step a new leader
    // epoch (as in Kafka): a fetch at the old epoch is fenced, one without an epoch is served.
    broker.restart();
    let mut wire = Wire::connect(broker.kafka);
    wait_until(
        "the restarted broker leads again",
        Duration::from_secs(20),
        || wire.call(&fetch(-1), 12).responses[0].partitions[0].error_code == 0,
    );
    assert_eq!(latest_offset(&mut wire), 5);
    let r = wire.call(&fetch(0), 12);
    assert_eq!(
        r.responses[0].partitions[0].error_code,
        ResponseError::FencedLeaderEpoch.code()
    );
    let r = wire.call(&fetch(-1), 12);
    let data = &r.responses[0].partitions[0];
    assert_eq!(data.error_code, 0);
    assert_eq!(data.records.clone().unwrap_or_default(), served);
}
