//! The Broker controller's scaling flow against a real cluster of `odradek broker` processes: the
//! same decisions ([`scale::decide`]) and admin calls the operator makes, with a StatefulSet's size
//! played by starting and stopping processes. Records produced with `acks=all` before and during
//! the moves are all read back afterwards.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use odradek_crds::broker::RebalanceSpec;
use odradek_operator::admin::{AdminConfig, KafkaAdmin, KafkaAdminClient, NewTopic};
use odradek_operator::controllers::broker::observe;
use odradek_operator::controllers::broker::scale::{self, ScaleStep};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use crate::common::cluster::{CLUSTER_WAIT, Cluster};

const TOPIC: &str = "orders";
const PARTITIONS: i32 = 6;

fn produce(bootstrap: &str, from: u32, count: u32) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    for i in from..from + count {
        let payload = format!("{i:08}");
        let mut record = BaseRecord::to(TOPIC).key(&payload).payload(&payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .expect("every record acknowledged");
}

/// Every payload of the topic, read from the beginning up to the high watermarks.
fn read_all(bootstrap: &str) -> BTreeSet<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "scale-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(TOPIC, p, Offset::Beginning)
            .expect("tpl");
        let (_, high) = consumer
            .fetch_watermarks(TOPIC, p, Duration::from_secs(10))
            .expect("watermarks");
        ends.insert(p, high);
    }
    consumer.assign(&tpl).expect("assign");
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    let mut out = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while ends
        .iter()
        .any(|(p, end)| next.get(p).copied().unwrap_or(0) < *end)
    {
        assert!(
            Instant::now() < deadline,
            "read-back stalled: {next:?} of {ends:?}"
        );
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("consume");
            next.insert(m.partition(), m.offset() + 1);
            out.insert(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
    }
    out
}

/// Runs the controller's decision loop for a StatefulSet of `current` pods and `desired` brokers
/// until it settles (nothing submitted, nothing in flight); returns the last step.
async fn settle(admin: &KafkaAdminClient, current: i32, desired: i32) -> ScaleStep {
    let rebalance = RebalanceSpec {
        on_scale: true,
        max_concurrent_moves: 4,
    };
    let deadline = Instant::now() + CLUSTER_WAIT * 2;
    let mut previous = None;
    let mut last = String::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "the scale {current} -> {desired} never settled; last: {last}"
        );
        let view = observe(admin).await.expect("cluster view");
        let step = scale::decide(
            Some(current),
            desired,
            Some(&view),
            &rebalance,
            previous.as_ref(),
        )
        .expect("scale decision");
        assert!(step.refused.is_none(), "{:?}", step.refused);
        last = format!("{step:?} from {view:?}");
        if !step.submit.is_empty() {
            admin
                .alter_partition_reassignments(&step.submit)
                .await
                .expect("reassignment accepted");
        }
        if step.progress.is_some() {
            previous.clone_from(&step.progress);
        }
        if step.submit.is_empty() && !step.waiting {
            return step;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Replicas per broker over the topic.
async fn replicas_per_broker(admin: &KafkaAdminClient) -> BTreeMap<i32, usize> {
    let topics = admin
        .describe_topics(Some(&[TOPIC.to_owned()]))
        .await
        .expect("describe");
    let mut count = BTreeMap::new();
    for p in &topics[0].partitions {
        assert_eq!(p.replicas.len(), 2, "{p:?}");
        for r in &p.replicas {
            *count.entry(*r).or_insert(0) += 1;
        }
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_up_and_down_moves_replicas_with_their_data_and_unregisters_the_removed_broker() {
    let mut cluster = Cluster::start(3, 3, &["--topic-config", "retention.ms=-1"]);
    let admin = KafkaAdminClient::new(&cluster.bootstrap(), AdminConfig::default());
    admin
        .create_topic(&NewTopic {
            name: TOPIC.to_owned(),
            partitions: PARTITIONS,
            replication_factor: 2,
            configs: BTreeMap::from([("min.insync.replicas".to_owned(), "2".to_owned())]),
        })
        .await
        .expect("create topic");
    produce(&cluster.bootstrap(), 0, 3000);

    // Scale up: the StatefulSet grows to four pods; once broker 3 has registered, the planner
    // moves replicas onto it until the cluster is balanced.
    let new = cluster.add_broker();
    assert_eq!(new, 3);
    let step = settle(&admin, 4, 4).await;
    assert_eq!(step.statefulset_replicas, 4);
    let counts = replicas_per_broker(&admin).await;
    assert_eq!(counts.values().sum::<usize>(), 12);
    // The planner's balance: every broker within one replica of the mean (three).
    assert!(
        counts.len() == 4 && counts.values().all(|&c| (2..=4).contains(&c)),
        "twelve replicas over four brokers: {counts:?}"
    );
    produce(&cluster.bootstrap(), 3000, 2000);

    // Scale down: replicas move off broker 3 before the StatefulSet shrinks.
    let step = settle(&admin, 4, 3).await;
    assert_eq!(
        step.statefulset_replicas, 3,
        "the StatefulSet may shrink now"
    );
    let counts = replicas_per_broker(&admin).await;
    assert!(
        !counts.contains_key(&3),
        "broker 3 still holds replicas: {counts:?}"
    );
    assert!(counts.values().all(|&c| (3..=5).contains(&c)), "{counts:?}");
    for p in &admin
        .describe_topics(Some(&[TOPIC.to_owned()]))
        .await
        .unwrap()[0]
        .partitions
    {
        let isr: BTreeSet<i32> = p.isr.iter().copied().collect();
        let replicas: BTreeSet<i32> = p.replicas.iter().copied().collect();
        assert_eq!(isr, replicas, "partition {} not fully in sync", p.partition);
    }

    // The pod goes (SIGTERM: controlled shutdown); once fenced it is unregistered.
    assert!(
        cluster.brokers[3].terminate(),
        "broker 3 did not stop cleanly"
    );
    let admin = KafkaAdminClient::new(&cluster.bootstrap_of(&[0, 1, 2]), AdminConfig::default());
    let deadline = Instant::now() + CLUSTER_WAIT;
    let step = loop {
        let step = settle(&admin, 3, 3).await;
        if !step.unregister.is_empty() {
            break step;
        }
        assert!(
            Instant::now() < deadline,
            "broker 3 was never reported fenced"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(step.unregister, vec![3]);
    admin.unregister_broker(3).await.expect("unregister");
    let described = admin.describe_cluster().await.expect("describe cluster");
    assert!(!described.fenced.contains(&3) && described.brokers.iter().all(|b| b.id != 3));
    // A second unregistration is not an error (BROKER_ID_NOT_REGISTERED means done).
    admin
        .unregister_broker(3)
        .await
        .expect("idempotent unregister");

    let read = read_all(&cluster.bootstrap_of(&[0, 1, 2]));
    let missing: Vec<u32> = (0..5000)
        .filter(|i| !read.contains(&format!("{i:08}")))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged records lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(read.len(), 5000);
}
