//! Replication across three `odradek broker` processes with librdkafka: an idempotent `acks=all`
//! producer keeps writing while the leader of a partition is killed with SIGKILL; every
//! acknowledged record is read back once, at its acknowledged offset, from the surviving replicas
//! and after the killed broker has rejoined the ISR. A SIGTERM (controlled shutdown) moves
//! leadership away before the broker stops.

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};

use crate::common::cluster::{CLUSTER_WAIT, Cluster};
use crate::common::wait_until;
use crate::librdkafka::{Acks, producer, read_all};

const TOPIC: &str = "replicated";
const PARTITIONS: i32 = 3;

fn create_replicated_topic(cluster: &mut Cluster) {
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    use kafka_protocol::messages::{CreateTopicsRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;

    let mut wire = crate::common::wire::Wire::connect(cluster.any());
    let topic = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
        .with_num_partitions(PARTITIONS)
        .with_replication_factor(3)
        .with_configs(vec![
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_static_str("min.insync.replicas"))
                .with_value(Some(StrBytes::from_static_str("2"))),
        ]);
    let r = wire.call(
        &CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(10_000),
        7,
    );
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
}

fn send(p: &ThreadedProducer<Acks>, from: u32, count: u32) {
    for i in from..from + count {
        let payload = format!("{i:08}");
        let mut record = BaseRecord::to(TOPIC).key(&payload).payload(&payload);
        loop {
            match p.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
}

fn acked(acks: &Acks) -> usize {
    acks.0.lock().expect("acks").values().map(Vec::len).sum()
}

#[test]
fn killing_a_partition_leader_loses_no_acknowledged_record() {
    let mut cluster = Cluster::start(3, 3, &["--topic-config", "retention.ms=-1"]);
    create_replicated_topic(&mut cluster);
    wait_until("every replica in sync", CLUSTER_WAIT, || {
        (0..PARTITIONS).all(|p| {
            cluster
                .partition(TOPIC, p)
                .is_some_and(|(_, _, isr)| isr.len() == 3)
        })
    });
    let acks = Acks::default();
    let p = producer(
        &cluster.bootstrap(),
        &acks,
        &[
            ("message.timeout.ms", "120000"),
            ("retry.backoff.ms", "100"),
        ],
    );
    let mut sent = 0;
    let deadline = Instant::now() + CLUSTER_WAIT;
    while acked(&acks) < 10_000 {
        assert!(Instant::now() < deadline, "no progress before the kill");
        send(&p, sent, 500);
        sent += 500;
        p.poll(Duration::from_millis(1));
    }
    let (leader, _, _) = cluster.partition(TOPIC, 0).expect("partition 0");
    let victim = usize::try_from(leader).expect("partition 0 has a leader");
    send(&p, sent, 2000);
    sent += 2000;
    cluster.brokers[victim].kill9();

    // The survivors elect new leaders from the ISR and take the writes.
    wait_until("new leaders for every partition", CLUSTER_WAIT, || {
        (0..PARTITIONS).all(|i| {
            cluster
                .partition(TOPIC, i)
                .is_some_and(|(l, _, _)| l >= 0 && l != leader)
        })
    });
    send(&p, sent, 5000);
    sent += 5000;
    p.flush(Duration::from_secs(120))
        .expect("flush after the failover");
    assert_eq!(*acks.1.lock().expect("failures"), 0, "deliveries failed");
    assert_eq!(
        acked(&acks),
        sent as usize,
        "every record acknowledged once"
    );

    // The killed broker restarts, catches up and rejoins every ISR.
    cluster.brokers[victim].restart();
    wait_until(
        "the restarted broker back in every ISR",
        CLUSTER_WAIT,
        || {
            (0..PARTITIONS).all(|i| {
                cluster
                    .partition(TOPIC, i)
                    .is_some_and(|(_, _, isr)| isr.len() == 3)
            })
        },
    );

    let read = read_all(&cluster.bootstrap(), TOPIC, PARTITIONS);
    let acked_log = acks.0.lock().expect("acks").clone();
    let mut seen = HashSet::new();
    for (partition, records) in &read {
        let offsets: Vec<i64> = records.iter().map(|(o, _)| *o).collect();
        let dense: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(
            offsets, dense,
            "partition {partition}: offsets not dense from 0"
        );
        for (_, payload) in records {
            assert!(
                seen.insert(payload.clone()),
                "partition {partition}: a record was written twice"
            );
        }
        for (offset, payload) in acked_log.get(partition).into_iter().flatten() {
            assert_eq!(
                records
                    .get(usize::try_from(*offset).expect("offset"))
                    .map(|(_, p)| p),
                Some(payload),
                "partition {partition}: acknowledged offset {offset} lost or changed"
            );
        }
    }
    assert_eq!(seen.len(), sent as usize);
}

#[test]
fn a_sigterm_moves_leadership_away_before_the_broker_stops() {
    let mut cluster = Cluster::start(3, 3, &[]);
    create_replicated_topic(&mut cluster);
    wait_until("every replica in sync", CLUSTER_WAIT, || {
        (0..PARTITIONS).all(|p| {
            cluster
                .partition(TOPIC, p)
                .is_some_and(|(_, _, isr)| isr.len() == 3)
        })
    });
    let leaders: BTreeSet<i32> = (0..PARTITIONS)
        .filter_map(|p| cluster.partition(TOPIC, p).map(|(l, _, _)| l))
        .collect();
    let stopping = *leaders.iter().next().expect("a leader");
    let index = usize::try_from(stopping).expect("id");
    assert!(
        cluster.brokers[index].terminate(),
        "broker {stopping} did not stop cleanly"
    );
    // Leadership moved during the shutdown, not after a session timeout: at once, every partition
    // has a live leader and the stopped broker is out of every ISR.
    for p in 0..PARTITIONS {
        let (leader, _, isr) = cluster.partition(TOPIC, p).expect("partition");
        assert!(
            leader >= 0 && leader != stopping,
            "partition {p} led by {leader}"
        );
        assert!(!isr.contains(&stopping), "partition {p} ISR {isr:?}");
    }
    assert!(
        cluster.brokers[index].log().contains("controlled shutdown"),
        "{}",
        cluster.brokers[index].log()
    );
}
