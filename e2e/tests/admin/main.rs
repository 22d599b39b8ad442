//! The operator's Kafka admin client against a real `odradek broker` process: every admin API the
//! controllers use, with Kafka's semantics (error codes included) as the expectation, and the lag
//! sample the Processor controller takes, with records produced and offsets committed by librdkafka.

#[path = "../common/mod.rs"]
mod common;
mod scale;

use std::collections::BTreeMap;
use std::time::Duration;

use common::BrokerProcess;
use odradek_operator::admin::{
    AdminConfig, AdminError, ConfigOp, INVALID_PARTITIONS, KafkaAdmin, KafkaAdminClient, NewTopic,
    TOPIC_ALREADY_EXISTS, TopicPartition, UNKNOWN_TOPIC_OR_PARTITION,
};
use odradek_operator::controllers::broker::observe;
use odradek_operator::controllers::processor::lag;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

fn admin(broker: &BrokerProcess) -> KafkaAdminClient {
    KafkaAdminClient::new(&broker.bootstrap(), AdminConfig::default())
}

fn new_topic(name: &str, partitions: i32) -> NewTopic {
    NewTopic {
        name: name.to_owned(),
        partitions,
        replication_factor: 1,
        configs: BTreeMap::from([("retention.ms".to_owned(), "3600000".to_owned())]),
    }
}

#[tokio::test]
async fn describe_cluster_lists_the_broker_with_its_advertised_address() {
    let broker = BrokerProcess::start(&[]);
    let cluster = admin(&broker).describe_cluster().await.unwrap();
    assert_eq!(cluster.brokers.len(), 1, "{cluster:?}");
    let node = &cluster.brokers[0];
    assert_eq!(node.id, 0);
    assert_eq!(format!("{}:{}", node.host, node.port), broker.bootstrap());
}

#[tokio::test]
async fn topics_are_created_raised_and_deleted_with_kafka_error_codes() {
    let broker = BrokerProcess::start(&[]);
    let admin = admin(&broker);

    let id = admin
        .create_topic(&new_topic("page-views", 2))
        .await
        .unwrap();
    assert_eq!(
        id.len(),
        22,
        "Kafka prints topic ids as 22 base64 characters: {id}"
    );
    let err = admin
        .create_topic(&new_topic("page-views", 2))
        .await
        .unwrap_err();
    assert_eq!(err.kafka_code(), Some(TOPIC_ALREADY_EXISTS), "{err}");
    assert!(!err.is_transient());

    let topics = admin
        .describe_topics(Some(&["page-views".to_owned()]))
        .await
        .unwrap();
    assert_eq!(topics.len(), 1);
    assert_eq!(topics[0].topic_id, id);
    assert_eq!(topics[0].partitions.len(), 2);
    assert_eq!(topics[0].replication_factor(), 1);
    assert_eq!(topics[0].partitions[0].leader, Some(0));

    admin.create_partitions("page-views", 4).await.unwrap();
    let topics = admin
        .describe_topics(Some(&["page-views".to_owned()]))
        .await
        .unwrap();
    assert_eq!(topics[0].partitions.len(), 4);
    let err = admin.create_partitions("page-views", 3).await.unwrap_err();
    assert_eq!(err.kafka_code(), Some(INVALID_PARTITIONS), "{err}");

    // A missing topic is left out of Metadata, not an error.
    let missing = admin
        .describe_topics(Some(&["nope".to_owned()]))
        .await
        .unwrap();
    assert!(missing.is_empty(), "{missing:?}");

    admin.delete_topic("page-views").await.unwrap();
    let after = admin.describe_topics(None).await.unwrap();
    assert!(after.iter().all(|t| t.name != "page-views"), "{after:?}");
    let err = admin.delete_topic("page-views").await.unwrap_err();
    assert_eq!(err.kafka_code(), Some(UNKNOWN_TOPIC_OR_PARTITION), "{err}");
}

#[tokio::test]
async fn topic_configs_are_described_and_altered_incrementally() {
    let broker = BrokerProcess::start(&[]);
    let admin = admin(&broker);
    admin
        .create_topic(&new_topic("user-profile-updates", 1))
        .await
        .unwrap();

    let configs = admin
        .describe_topic_configs("user-profile-updates")
        .await
        .unwrap();
    let retention = &configs["retention.ms"];
    assert_eq!(retention.value.as_deref(), Some("3600000"));
    assert!(retention.is_topic_override);

    admin
        .alter_topic_configs(
            "user-profile-updates",
            &[
                ConfigOp::Set {
                    name: "cleanup.policy".into(),
                    value: "compact".into(),
                },
                ConfigOp::Delete {
                    name: "retention.ms".into(),
                },
            ],
        )
        .await
        .unwrap();
    let configs = admin
        .describe_topic_configs("user-profile-updates")
        .await
        .unwrap();
    assert_eq!(configs["cleanup.policy"].value.as_deref(), Some("compact"));
    assert!(configs["cleanup.policy"].is_topic_override);
    assert!(
        configs
            .get("retention.ms")
            .is_none_or(|c| !c.is_topic_override),
        "{configs:?}"
    );
}

/// Produces `count` records to partition `partition` of `topic` with librdkafka.
fn produce(bootstrap: &str, topic: &str, partition: i32, count: usize) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    for i in 0..count {
        let payload = format!("view-{i}");
        producer
            .send(
                BaseRecord::<(), _>::to(topic)
                    .partition(partition)
                    .payload(&payload),
            )
            .unwrap_or_else(|(e, _)| panic!("cannot enqueue: {e}"));
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// Commits `offset` for `topic`/`partition` on behalf of `group`, as a consumer without a
/// subscription does (Kafka accepts commits of a group with no members).
fn commit(bootstrap: &str, group: &str, topic: &str, partition: i32, offset: i64) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(topic, partition, Offset::Offset(offset))
        .unwrap();
    consumer.commit(&offsets, CommitMode::Sync).unwrap();
}

#[tokio::test]
async fn the_lag_sample_is_latest_minus_committed_per_partition() {
    let broker = BrokerProcess::start(&[]);
    let admin = admin(&broker);
    admin.create_topic(&new_topic("newsfeed", 2)).await.unwrap();
    let partitions: Vec<TopicPartition> = (0..2)
        .map(|partition| TopicPartition {
            topic: "newsfeed".into(),
            partition,
        })
        .collect();
    let end = admin.end_offsets(&partitions).await.unwrap();
    assert_eq!(end.values().copied().collect::<Vec<_>>(), vec![0, 0]);
    assert!(
        admin
            .committed_offsets("feed", &partitions)
            .await
            .unwrap()
            .is_empty()
    );

    let bootstrap = broker.bootstrap();
    tokio::task::spawn_blocking(move || {
        produce(&bootstrap, "newsfeed", 0, 30);
        produce(&bootstrap, "newsfeed", 1, 12);
        commit(&bootstrap, "feed", "newsfeed", 0, 20);
    })
    .await
    .unwrap();

    let end = admin.end_offsets(&partitions).await.unwrap();
    assert_eq!(end.values().copied().collect::<Vec<_>>(), vec![30, 12]);
    let committed = admin.committed_offsets("feed", &partitions).await.unwrap();
    assert_eq!(committed, BTreeMap::from([(partitions[0].clone(), 20)]));

    // 10 behind on partition 0; partition 1 was never committed and counts whole.
    let sample = lag::sample(&admin, &["newsfeed".to_owned()], "feed", 0)
        .await
        .unwrap();
    assert_eq!(sample.total_lag, 10 + 12);
    assert_eq!(sample.partitions, 2);
}

#[tokio::test]
async fn a_broker_without_reassignment_apis_is_reported_as_unsupported_not_as_a_hang() {
    let broker = BrokerProcess::start(&[]);
    let admin = admin(&broker);
    match admin.list_partition_reassignments().await {
        // A broker that serves the API: a single broker has nothing in flight.
        Ok(ongoing) => assert!(ongoing.is_empty(), "{ongoing:?}"),
        Err(e) => assert!(matches!(e, AdminError::Unsupported { .. }), "{e}"),
    }
    // The Broker controller's view of the cluster works either way.
    admin
        .create_topic(&new_topic("search-index", 3))
        .await
        .unwrap();
    let view = observe(&admin).await.unwrap();
    assert_eq!(view.brokers.len(), 1);
    assert!(
        view.topics
            .iter()
            .any(|t| t.name == "search-index" && t.partitions.len() == 3)
    );
    assert!(view.ongoing.is_empty());
}
