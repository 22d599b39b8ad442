//! Byte-level tests against a live broker: every advertised API at its lowest and highest version,
//! error codes for bad input, idempotent sequences, long-poll fetch, and mutated frames.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::admin::create_topic;
use crate::common::BrokerProcess;
use crate::common::wire::Wire;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

/// One batch of `n` records; `producer` = (id, epoch, base sequence).
pub(crate) fn batch(
    n: usize,
    producer: Option<(i64, i16, i32)>,
    compression: Compression,
    key: bool,
) -> Bytes {
    let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: if seq < 0 {
                i as i32 - 1
            } else {
                seq + i as i32
            },
            timestamp: 1_700_000_000_000 + i as i64,
            key: key.then(|| Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(format!("value-{i}"))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encode");
    buf.freeze()
}

pub(crate) fn produce_request(
    topic: &str,
    partition: i32,
    records: Bytes,
    acks: i16,
) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(name(topic))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(records)),
                ]),
        ])
}

fn produce_error(wire: &mut Wire, topic: &str, partition: i32, records: Bytes) -> (i16, i64) {
    let r = wire.call(&produce_request(topic, partition, records, -1), 9);
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn fetch_request(
    topic: &str,
    partition: i32,
    offset: i64,
    max_wait_ms: i32,
    min_bytes: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![
            fetch_request::FetchTopic::default()
                .with_topic(name(topic))
                .with_partitions(vec![
                    fetch_request::FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ])
}

#[test]
fn api_versions_lists_every_served_api_and_answers_unknown_versions_at_v0() {
    let broker = BrokerProcess::start(&[]);
    let mut wire = Wire::connect(broker.kafka);
    for v in 0..=4 {
        let r = wire.call(&ApiVersionsRequest::default(), v);
        assert_eq!(r.error_code, 0);
        assert!(
            r.api_keys
                .iter()
                .any(|k| k.api_key == ApiKey::Produce as i16 && k.max_version >= 9)
        );
        assert!(
            !r.api_keys
                .iter()
                .any(|k| k.api_key == ApiKey::AddPartitionsToTxn as i16),
            "advertises transactions"
        );
    }
    // A version from the future: the answer comes at v0 with UNSUPPORTED_VERSION and the table.
    let mut raw = BytesMut::new();
    use bytes::BufMut;
    raw.put_i16(ApiKey::ApiVersions as i16);
    raw.put_i16(77);
    raw.put_i32(42);
    raw.put_i16(-1);
    // No tagged-field byte: whatever a future header looks like, the answer needs only the
    // correlation id.
    wire.send_raw(&raw).unwrap();
    let mut frame = wire.read_frame().unwrap();
    use kafka_protocol::protocol::Decodable;
    let header = ResponseHeader::decode(&mut frame, 0).unwrap();
    assert_eq!(header.correlation_id, 42);
    let r = ApiVersionsResponse::decode(&mut frame, 0).unwrap();
    assert_eq!(r.error_code, ResponseError::UnsupportedVersion.code());
    assert!(!r.api_keys.is_empty());
}

#[test]
fn every_advertised_api_answers_at_its_lowest_and_highest_version() {
    let broker = BrokerProcess::start(&[]);
    create_topic(broker.kafka, "versions", 2, &[]);
    let mut wire = Wire::connect(broker.kafka);
    let meta = wire.call(
        &MetadataRequest::default().with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(name("versions"))),
        ])),
        12,
    );
    let topic_id = meta.topics[0].topic_id;
    let served = wire.call(&ApiVersionsRequest::default(), 3).api_keys;
    let range = |key: ApiKey| {
        let k = served
            .iter()
            .find(|k| k.api_key == key as i16)
            .unwrap_or_else(|| panic!("{key:?} not advertised"));
        [k.min_version, k.max_version]
    };
    for v in range(ApiKey::Metadata) {
        let r = wire.call(&MetadataRequest::default().with_topics(None), v);
        assert!(
            r.topics
                .iter()
                .any(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == "versions")),
            "Metadata v{v}"
        );
    }
    for v in range(ApiKey::Produce) {
        let mut req = produce_request("versions", 0, batch(3, None, Compression::None, true), -1);
        if v >= 13 {
            req.topic_data[0].topic_id = topic_id;
        }
        let r = wire.call(&req, v);
        assert_eq!(
            r.responses[0].partition_responses[0].error_code, 0,
            "Produce v{v}"
        );
    }
    for v in range(ApiKey::Fetch) {
        let mut req = fetch_request("versions", 0, 0, 0, 0);
        if v >= 13 {
            req.topics[0].topic_id = topic_id;
        }
        let r = wire.call(&req, v);
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "Fetch v{v}");
        assert!(
            p.records.as_ref().is_some_and(|b| !b.is_empty()),
            "Fetch v{v} returned no records"
        );
    }
    for v in range(ApiKey::ListOffsets) {
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default()
                    .with_name(name("versions"))
                    .with_partitions(vec![
                        list_offsets_request::ListOffsetsPartition::default()
                            .with_partition_index(0)
                            .with_timestamp(-1),
                    ]),
            ]);
        let r = wire.call(&req, v);
        // Two produces of three records above: the lowest and the highest Produce version.
        assert_eq!(r.topics[0].partitions[0].offset, 6, "ListOffsets v{v}");
    }
    for (i, v) in range(ApiKey::CreateTopics).into_iter().enumerate() {
        let t = create_topics_request::CreatableTopic::default()
            .with_name(name(&format!("created-{i}")))
            .with_num_partitions(1)
            .with_replication_factor(1);
        let r = wire.call(
            &CreateTopicsRequest::default()
                .with_topics(vec![t])
                .with_timeout_ms(1000),
            v,
        );
        assert_eq!(r.topics[0].error_code, 0, "CreateTopics v{v}");
    }
    for (i, v) in range(ApiKey::CreatePartitions).into_iter().enumerate() {
        let t = create_partitions_request::CreatePartitionsTopic::default()
            .with_name(name(&format!("created-{i}")))
            .with_count(2);
        let r = wire.call(
            &CreatePartitionsRequest::default()
                .with_topics(vec![t])
                .with_timeout_ms(1000),
            v,
        );
        assert_eq!(r.results[0].error_code, 0, "CreatePartitions v{v}");
    }
    for v in range(ApiKey::DescribeConfigs) {
        let res = describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("versions"))
            .with_configuration_keys(None);
        let r = wire.call(
            &DescribeConfigsRequest::default()
                .with_resources(vec![res])
                .with_include_synonyms(v >= 1),
            v,
        );
        assert_eq!(
            r.results[0].error_code, 0,
            "DescribeConfigs v{v}: {:?}",
            r.results[0].error_message
        );
        assert!(
            r.results[0]
                .configs
                .iter()
                .any(|c| c.name.as_str() == "retention.ms"),
            "DescribeConfigs v{v}"
        );
    }
    for v in range(ApiKey::AlterConfigs) {
        let res = alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("versions"))
            .with_configs(vec![
                alter_configs_request::AlterableConfig::default()
                    .with_name(StrBytes::from_static_str("retention.ms"))
                    .with_value(Some(StrBytes::from_static_str("86400000"))),
            ]);
        let r = wire.call(&AlterConfigsRequest::default().with_resources(vec![res]), v);
        assert_eq!(r.responses[0].error_code, 0, "AlterConfigs v{v}");
    }
    for v in range(ApiKey::IncrementalAlterConfigs) {
        let res = incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("versions"))
            .with_configs(vec![
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(StrBytes::from_static_str("retention.bytes"))
                    .with_config_operation(0)
                    .with_value(Some(StrBytes::from_static_str("1048576"))),
            ]);
        let r = wire.call(
            &IncrementalAlterConfigsRequest::default().with_resources(vec![res]),
            v,
        );
        assert_eq!(r.responses[0].error_code, 0, "IncrementalAlterConfigs v{v}");
    }
    for v in range(ApiKey::DeleteRecords) {
        let req = DeleteRecordsRequest::default()
            .with_timeout_ms(1000)
            .with_topics(vec![
                delete_records_request::DeleteRecordsTopic::default()
                    .with_name(name("versions"))
                    .with_partitions(vec![
                        delete_records_request::DeleteRecordsPartition::default()
                            .with_partition_index(1)
                            .with_offset(0),
                    ]),
            ]);
        let r = wire.call(&req, v);
        assert_eq!(
            r.topics[0].partitions[0].error_code, 0,
            "DeleteRecords v{v}"
        );
    }
    for v in range(ApiKey::DescribeCluster) {
        let r = wire.call(&DescribeClusterRequest::default().with_endpoint_type(1), v);
        assert_eq!(r.error_code, 0, "DescribeCluster v{v}");
        assert_eq!(r.brokers.len(), 1);
    }
    for v in range(ApiKey::AlterPartitionReassignments) {
        let reassign = |replicas: Option<Vec<BrokerId>>| {
            AlterPartitionReassignmentsRequest::default()
                .with_timeout_ms(1000)
                .with_allow_replication_factor_change(true)
                .with_topics(vec![
                    alter_partition_reassignments_request::ReassignableTopic::default()
                        .with_name(name("versions"))
                        .with_partitions(vec![
                            alter_partition_reassignments_request::ReassignablePartition::default()
                                .with_partition_index(0)
                                .with_replicas(replicas),
                        ]),
                ])
        };
        // The only broker: a target equal to the current replicas is accepted and leaves nothing
        // in progress, so a cancellation finds nothing to cancel.
        let r = wire.call(&reassign(Some(vec![BrokerId(0)])), v);
        assert_eq!(r.error_code, 0, "AlterPartitionReassignments v{v}");
        assert_eq!(
            r.responses[0].partitions[0].error_code, 0,
            "AlterPartitionReassignments v{v}"
        );
        let r = wire.call(&reassign(None), v);
        assert_eq!(
            r.responses[0].partitions[0].error_code,
            ResponseError::NoReassignmentInProgress.code(),
            "AlterPartitionReassignments v{v} cancel"
        );
    }
    for v in range(ApiKey::ListPartitionReassignments) {
        let r = wire.call(
            &ListPartitionReassignmentsRequest::default()
                .with_timeout_ms(1000)
                .with_topics(None),
            v,
        );
        assert_eq!(r.error_code, 0, "ListPartitionReassignments v{v}");
        assert!(r.topics.is_empty(), "ListPartitionReassignments v{v}");
    }
    for v in range(ApiKey::ElectLeaders) {
        let r = wire.call(
            &ElectLeadersRequest::default()
                .with_election_type(0)
                .with_timeout_ms(1000)
                .with_topic_partitions(Some(vec![
                    elect_leaders_request::TopicPartitions::default()
                        .with_topic(name("versions"))
                        .with_partitions(vec![0]),
                ])),
            v,
        );
        // Its only replica already leads.
        assert_eq!(
            r.replica_election_results[0].partition_result[0].error_code,
            ResponseError::ElectionNotNeeded.code(),
            "ElectLeaders v{v}"
        );
    }
    for v in range(ApiKey::UnregisterBroker) {
        let unregister = |id| UnregisterBrokerRequest::default().with_broker_id(BrokerId(id));
        let r = wire.call(&unregister(0), v);
        assert_eq!(
            r.error_code,
            ResponseError::InvalidRequest.code(),
            "UnregisterBroker v{v}: a broker hosting replicas stays"
        );
        let r = wire.call(&unregister(99), v);
        assert_eq!(
            r.error_code,
            ResponseError::BrokerIdNotRegistered.code(),
            "UnregisterBroker v{v}"
        );
    }
    for v in range(ApiKey::FindCoordinator) {
        let mut req = FindCoordinatorRequest::default();
        if v >= 4 {
            req.coordinator_keys = vec![StrBytes::from_static_str("g")];
        } else {
            req.key = StrBytes::from_static_str("g");
        }
        let r = wire.call(&req, v);
        if v >= 4 {
            assert_eq!(r.coordinators[0].error_code, 0, "FindCoordinator v{v}");
            assert_eq!(r.coordinators[0].port, i32::from(broker.kafka.port()));
        } else {
            assert_eq!(r.error_code, 0, "FindCoordinator v{v}");
            assert_eq!(r.port, i32::from(broker.kafka.port()));
        }
    }
    for v in range(ApiKey::InitProducerId) {
        let r = wire.call(
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
            v,
        );
        assert_eq!(r.error_code, 0, "InitProducerId v{v}");
        assert!(r.producer_id.0 >= 0);
    }
    for v in range(ApiKey::ListGroups) {
        let r = wire.call(&ListGroupsRequest::default(), v);
        assert_eq!(r.error_code, 0, "ListGroups v{v}");
    }
    for v in range(ApiKey::DescribeGroups) {
        let r = wire.call(
            &DescribeGroupsRequest::default()
                .with_groups(vec![GroupId(StrBytes::from_static_str("nobody"))]),
            v,
        );
        assert_eq!(r.groups.len(), 1, "DescribeGroups v{v}");
    }
    for v in range(ApiKey::OffsetFetch) {
        let mut req = OffsetFetchRequest::default();
        if v >= 8 {
            req.groups = vec![
                offset_fetch_request::OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(StrBytes::from_static_str("nobody")))
                    .with_topics(None),
            ];
        } else {
            req.group_id = GroupId(StrBytes::from_static_str("nobody"));
            req.topics = Some(vec![
                offset_fetch_request::OffsetFetchRequestTopic::default()
                    .with_name(name("versions"))
                    .with_partition_indexes(vec![0]),
            ]);
        }
        wire.call(&req, v);
    }
    for (i, v) in range(ApiKey::DeleteTopics).into_iter().enumerate() {
        let target = format!("created-{i}");
        let mut req = DeleteTopicsRequest::default().with_timeout_ms(1000);
        if v >= 6 {
            req.topics = vec![
                delete_topics_request::DeleteTopicState::default().with_name(Some(name(&target))),
            ];
        } else {
            req.topic_names = vec![name(&target)];
        }
        let r = wire.call(&req, v);
        assert_eq!(r.responses[0].error_code, 0, "DeleteTopics v{v}");
    }
}

#[test]
fn bad_input_gets_kafka_error_codes_and_the_broker_keeps_serving() {
    let broker = BrokerProcess::start(&[]);
    create_topic(broker.kafka, "errors", 1, &[("max.message.bytes", "2000")]);
    create_topic(
        broker.kafka,
        "compacted",
        1,
        &[("cleanup.policy", "compact")],
    );
    let mut wire = Wire::connect(broker.kafka);

    let good = batch(5, None, Compression::None, true);
    let mut corrupt = good.to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    assert_eq!(
        produce_error(&mut wire, "errors", 0, Bytes::from(corrupt)).0,
        ResponseError::CorruptMessage.code()
    );
    let big = batch(200, None, Compression::None, true);
    assert_eq!(
        produce_error(&mut wire, "errors", 0, big).0,
        ResponseError::MessageTooLarge.code()
    );
    assert_eq!(
        produce_error(&mut wire, "nope", 0, good.clone()).0,
        ResponseError::UnknownTopicOrPartition.code()
    );
    assert_eq!(
        produce_error(&mut wire, "errors", 7, good.clone()).0,
        ResponseError::UnknownTopicOrPartition.code()
    );
    let keyless = batch(2, None, Compression::None, false);
    assert_eq!(
        produce_error(&mut wire, "compacted", 0, keyless).0,
        ResponseError::InvalidRecord.code()
    );
    let mut two = good.to_vec();
    two.extend_from_slice(&good);
    assert_eq!(
        produce_error(&mut wire, "errors", 0, Bytes::from(two)).0,
        ResponseError::InvalidRecord.code()
    );
    let r = wire.call(&produce_request("errors", 0, good.clone(), 5), 9);
    assert_eq!(
        r.responses[0].partition_responses[0].error_code,
        ResponseError::InvalidRequiredAcks.code()
    );
    assert_eq!(produce_error(&mut wire, "errors", 0, good.clone()), (0, 0));

    // Fetch past the end / before the start.
    let r = wire.call(&fetch_request("errors", 0, 99, 0, 0), 12);
    assert_eq!(
        r.responses[0].partitions[0].error_code,
        ResponseError::OffsetOutOfRange.code()
    );
    assert_eq!(r.responses[0].partitions[0].high_watermark, 5);

    // Topic administration errors.
    let create = |name_: &str, partitions: i32, rf: i16, configs: Vec<(&str, &str)>| {
        create_topics_request::CreatableTopic::default()
            .with_name(name(name_))
            .with_num_partitions(partitions)
            .with_replication_factor(rf)
            .with_configs(
                configs
                    .into_iter()
                    .map(|(k, v)| {
                        create_topics_request::CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k.into()))
                            .with_value(Some(StrBytes::from_string(v.into())))
                    })
                    .collect(),
            )
    };
    let r = wire.call(
        &CreateTopicsRequest::default()
            .with_timeout_ms(1000)
            .with_topics(vec![
                create("bad/name", 1, 1, vec![]),
                create("zero", 0, 1, vec![]),
                create("rf", 1, 3, vec![]),
                create("cfg", 1, 1, vec![("retention.ms", "soon")]),
                create("unknown-cfg", 1, 1, vec![("no.such.config", "1")]),
                create("errors", 1, 1, vec![]),
            ]),
        7,
    );
    let codes: Vec<i16> = r.topics.iter().map(|t| t.error_code).collect();
    assert_eq!(
        codes,
        vec![
            ResponseError::InvalidTopicException.code(),
            ResponseError::InvalidPartitions.code(),
            ResponseError::InvalidReplicationFactor.code(),
            ResponseError::InvalidConfig.code(),
            ResponseError::InvalidConfig.code(),
            ResponseError::TopicAlreadyExists.code(),
        ]
    );
    let r = wire.call(
        &CreatePartitionsRequest::default()
            .with_timeout_ms(1000)
            .with_topics(vec![
                create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(name("errors"))
                    .with_count(1),
            ]),
        3,
    );
    assert_eq!(
        r.results[0].error_code,
        ResponseError::InvalidPartitions.code()
    );

    // validate_only creates nothing.
    let r = wire.call(
        &CreateTopicsRequest::default()
            .with_timeout_ms(1000)
            .with_validate_only(true)
            .with_topics(vec![create("dry-run", 3, 1, vec![])]),
        7,
    );
    assert_eq!(r.topics[0].error_code, 0);
    assert_eq!(r.topics[0].num_partitions, 3);
    let m = wire.call(
        &MetadataRequest::default().with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(name("dry-run"))),
        ])),
        12,
    );
    assert_eq!(
        m.topics[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );

    // Frames the broker cannot read close that connection, and only that one.
    for garbage in [
        vec![0u8, 0, 0, 2, 0, 0],     // shorter than a header
        vec![0x7f, 0xff, 0xff, 0xff], // over the request size limit
        vec![0xff, 0xff, 0xff, 0xf0], // negative size
        vec![0, 0, 0, 10, 0x7f, 0x00, 0, 1, 0, 0, 0, 1, 0, 0], // unknown api key
        vec![0, 0, 0, 10, 0, 3, 0, 99, 0, 0, 0, 1, 0xff, 0xff], // Metadata v99
        vec![0, 0, 0, 12, 0, 3, 0, 9, 0, 0, 0, 1, 0, 0, 0xff, 0xff], // Metadata v9 with a truncated body
    ] {
        let mut bad = Wire::connect(broker.kafka);
        bad.send_bytes(&garbage).unwrap();
        assert!(bad.is_closed(), "connection stayed open after {garbage:?}");
        assert_eq!(wire.call(&ApiVersionsRequest::default(), 3).error_code, 0);
    }
}

#[test]
fn an_idempotent_retry_is_not_appended_twice_and_a_gap_is_refused() {
    let broker = BrokerProcess::start(&[]);
    create_topic(broker.kafka, "idem", 1, &[]);
    let mut wire = Wire::connect(broker.kafka);
    let init = wire.call(
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
        4,
    );
    assert_eq!(init.error_code, 0);
    let pid = init.producer_id.0;
    let first = batch(10, Some((pid, 0, 0)), Compression::Zstd, true);
    assert_eq!(produce_error(&mut wire, "idem", 0, first.clone()), (0, 0));
    assert_eq!(
        produce_error(&mut wire, "idem", 0, first),
        (0, 0),
        "a retry gets its first offset back"
    );
    assert_eq!(
        produce_error(
            &mut wire,
            "idem",
            0,
            batch(5, Some((pid, 0, 10)), Compression::Gzip, true)
        ),
        (0, 10)
    );
    let gap = batch(5, Some((pid, 0, 20)), Compression::None, true);
    assert_eq!(
        produce_error(&mut wire, "idem", 0, gap).0,
        ResponseError::OutOfOrderSequenceNumber.code()
    );
    let r = wire.call(&fetch_request("idem", 0, 0, 0, 0), 12);
    assert_eq!(r.responses[0].partitions[0].high_watermark, 15);
}

#[test]
fn a_waiting_fetch_is_answered_as_soon_as_data_arrives() {
    let broker = BrokerProcess::start(&[]);
    create_topic(broker.kafka, "longpoll", 1, &[]);
    let addr = broker.kafka;
    let waiter = std::thread::spawn(move || {
        let mut wire = Wire::connect(addr);
        let start = Instant::now();
        let r = wire.call(&fetch_request("longpoll", 0, 0, 10_000, 1), 12);
        (
            start.elapsed(),
            r.responses[0].partitions[0]
                .records
                .clone()
                .unwrap_or_default()
                .len(),
        )
    });
    // Give the fetch time to park (it cannot be observed from outside), then produce.
    let mut wire = Wire::connect(addr);
    let deadline = Instant::now() + Duration::from_millis(300);
    while Instant::now() < deadline {
        wire.call(&ApiVersionsRequest::default(), 3);
    }
    let produced_at = Instant::now();
    assert_eq!(
        produce_error(
            &mut wire,
            "longpoll",
            0,
            batch(1, None, Compression::None, true)
        )
        .0,
        0
    );
    let (waited, bytes) = waiter.join().unwrap();
    assert!(bytes > 0, "the fetch returned no data");
    assert!(
        waited < Duration::from_secs(5),
        "the fetch waited {waited:?}, as if for its timeout"
    );
    assert!(produced_at.elapsed() < Duration::from_secs(2));
}

#[test]
fn list_offsets_finds_offsets_by_timestamp_and_delete_records_survives_restart() {
    let mut broker = BrokerProcess::start(&[]);
    // The records are stamped in 2023: keep them from time-based retention, which runs at start-up.
    create_topic(broker.kafka, "times", 1, &[("retention.ms", "-1")]);
    let mut wire = Wire::connect(broker.kafka);
    for _ in 0..3 {
        assert_eq!(
            produce_error(
                &mut wire,
                "times",
                0,
                batch(10, None, Compression::Snappy, true)
            )
            .0,
            0
        );
    }
    let list = |wire: &mut Wire, ts: i64| {
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default()
                    .with_name(name("times"))
                    .with_partitions(vec![
                        list_offsets_request::ListOffsetsPartition::default()
                            .with_partition_index(0)
                            .with_timestamp(ts),
                    ]),
            ]);
        let r = wire.call(&req, 7);
        let p = &r.topics[0].partitions[0];
        (p.offset, p.timestamp)
    };
    assert_eq!(list(&mut wire, -2).0, 0);
    assert_eq!(list(&mut wire, -1).0, 30);
    // Every batch has records stamped base..base+9; as in Kafka, the answer is the first record
    // (not batch) at or after the time asked for.
    assert_eq!(list(&mut wire, 1_700_000_000_005), (5, 1_700_000_000_005));
    assert_eq!(list(&mut wire, 1_700_000_000_100), (-1, -1));
    assert_eq!(list(&mut wire, -3).1, 1_700_000_000_009);

    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(1000)
        .with_topics(vec![
            delete_records_request::DeleteRecordsTopic::default()
                .with_name(name("times"))
                .with_partitions(vec![
                    delete_records_request::DeleteRecordsPartition::default()
                        .with_partition_index(0)
                        .with_offset(20),
                ]),
        ]);
    let r = wire.call(&req, 2);
    assert_eq!(r.topics[0].partitions[0].low_watermark, 20);
    broker.restart();
    let mut wire = Wire::connect(broker.kafka);
    assert_eq!(list(&mut wire, -2).0, 20);
    let r = wire.call(&fetch_request("times", 0, 5, 0, 0), 12);
    assert_eq!(
        r.responses[0].partitions[0].error_code,
        ResponseError::OffsetOutOfRange.code()
    );
    assert_eq!(r.responses[0].partitions[0].log_start_offset, 20);
}

#[test]
fn health_and_metrics_endpoints_answer() {
    let broker = BrokerProcess::start(&[]);
    let (code, _) = crate::common::http_get(broker.http, "/healthz").expect("healthz");
    assert_eq!(code, 200);
    let (code, _) = crate::common::http_get(broker.http, "/readyz").expect("readyz");
    assert_eq!(code, 200);
    create_topic(broker.kafka, "metered", 1, &[]);
    let (code, body) = crate::common::http_get(broker.http, "/metrics").expect("metrics");
    assert_eq!(code, 200);
    assert!(body.contains("odradek_broker_requests_total"), "{body}");
    assert!(body.contains("topic=\"metered\""), "{body}");
}

#[test]
fn sigterm_shuts_down_cleanly_and_data_survives() {
    let mut broker = BrokerProcess::start(&[]);
    create_topic(broker.kafka, "graceful", 1, &[]);
    let mut wire = Wire::connect(broker.kafka);
    assert_eq!(
        produce_error(
            &mut wire,
            "graceful",
            0,
            batch(7, None, Compression::Lz4, true)
        )
        .0,
        0
    );
    drop(wire);
    assert!(
        broker.terminate(),
        "broker did not exit 0 on SIGTERM:\n{}",
        broker.log()
    );
    assert!(broker.log().contains("broker stopped"));
    broker.restart();
    let mut wire = Wire::connect(broker.kafka);
    let r = wire.call(&fetch_request("graceful", 0, 0, 0, 0), 12);
    assert_eq!(r.responses[0].partitions[0].high_watermark, 7);
}
