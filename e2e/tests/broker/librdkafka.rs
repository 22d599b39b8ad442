//! librdkafka 2.12 through the `rdkafka` crate: an idempotent producer writes 100,000 records and a
//! consumer reads back exactly those, in order, once each; and the kill -9 crash test.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::admin::create_topic;
use crate::common::BrokerProcess;

/// Per partition, `(offset, payload)` in the order seen.
pub(crate) type Log = BTreeMap<i32, Vec<(i64, Vec<u8>)>>;

/// Records every acknowledged delivery: partition -> (offset, payload).
#[derive(Default, Clone)]
pub(crate) struct Acks(pub(crate) Arc<Mutex<Log>>, pub(crate) Arc<Mutex<u64>>);

impl ClientContext for Acks {}
impl ProducerContext for Acks {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, (): ()) {
        match result {
            Ok(m) => {
                let mut acks = self.0.lock().expect("acks");
                acks.entry(m.partition())
                    .or_default()
                    .push((m.offset(), m.payload().unwrap_or_default().to_vec()));
            }
            Err(_) => *self.1.lock().expect("failures") += 1,
        }
    }
}

pub(crate) fn producer(
    bootstrap: &str,
    acks: &Acks,
    extra: &[(&str, &str)],
) -> ThreadedProducer<Acks> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("compression.codec", "lz4");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config.create_with_context(acks.clone()).expect("producer")
}

/// Reads every record of `topic` from the beginning up to the high watermarks.
pub(crate) fn read_all(bootstrap: &str, topic: &str, partitions: i32) -> Log {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "e2e-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("tpl");
        let (_, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .expect("watermarks");
        ends.insert(p, high);
    }
    consumer.assign(&tpl).expect("assign");
    let mut out: Log = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let done = |out: &Log| {
        ends.iter().all(|(p, &end)| {
            end == 0
                || out
                    .get(p)
                    .and_then(|v| v.last())
                    .is_some_and(|(o, _)| *o + 1 >= end)
        })
    };
    while !done(&out) {
        assert!(
            Instant::now() < deadline,
            "read-back did not reach the high watermarks {ends:?}"
        );
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("consume");
            out.entry(m.partition())
                .or_default()
                .push((m.offset(), m.payload().unwrap_or_default().to_vec()));
        }
    }
    out
}

#[test]
fn an_idempotent_producer_writes_100_000_records_read_back_exactly() {
    let broker = BrokerProcess::start(&[]);
    let bootstrap = broker.bootstrap();
    create_topic(broker.kafka, "rd-exact", 4, &[]);
    let acks = Acks::default();
    let p = producer(&bootstrap, &acks, &[]);
    for i in 0..100_000u32 {
        let payload = format!("{i:08}");
        let key = format!("k{}", i % 97);
        let headers = OwnedHeaders::new().insert(rdkafka::message::Header {
            key: "n",
            value: Some(&payload),
        });
        let mut record = BaseRecord::to("rd-exact")
            .key(&key)
            .payload(&payload)
            .headers(headers);
        loop {
            match p.send(record) {
                Ok(()) => break,
                Err((e, r)) => {
                    assert!(
                        matches!(
                            e.rdkafka_error_code(),
                            Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                        ),
                        "{e}"
                    );
                    record = r;
                    p.poll(Duration::from_millis(10));
                }
            }
        }
    }
    p.flush(Duration::from_secs(60)).expect("flush");
    assert_eq!(*acks.1.lock().unwrap(), 0, "deliveries failed");
    let acked = acks.0.lock().unwrap().clone();
    assert_eq!(acked.values().map(Vec::len).sum::<usize>(), 100_000);

    let read = read_all(&bootstrap, "rd-exact", 4);
    let mut all = HashSet::new();
    for (partition, records) in &read {
        // Offsets are dense and start at 0 on a fresh topic; payloads per key stay in send order.
        for (i, (offset, payload)) in records.iter().enumerate() {
            assert_eq!(*offset, i as i64, "partition {partition}");
            assert!(
                all.insert(payload.clone()),
                "duplicate {:?}",
                String::from_utf8_lossy(payload)
            );
        }
        let mut acked_sorted = acked[partition].clone();
        acked_sorted.sort();
        assert_eq!(
            &acked_sorted, records,
            "partition {partition}: read-back differs from what was acknowledged"
        );
    }
    assert_eq!(all.len(), 100_000);
}

#[test]
fn kill_9_during_acks_all_produce_loses_no_acknowledged_record() {
    let mut broker = BrokerProcess::start(&[]);
    let bootstrap = broker.bootstrap();
    create_topic(broker.kafka, "rd-crash", 2, &[]);
    let acks = Acks::default();
    let p = producer(
        &bootstrap,
        &acks,
        &[("message.timeout.ms", "60000"), ("retry.backoff.ms", "50")],
    );
    let mut sent = 0u32;
    let mut send_some = |p: &ThreadedProducer<Acks>, n: u32| {
        for _ in 0..n {
            let payload = format!("{sent:08}");
            let key = format!("k{}", sent % 13);
            let _ = p.send(BaseRecord::to("rd-crash").key(&key).payload(&payload));
            sent += 1;
        }
    };
    // Sustained produce until a good number is acknowledged, then kill -9 mid-stream.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acks.0.lock().unwrap().values().map(Vec::len).sum::<usize>() < 20_000 {
        assert!(Instant::now() < deadline, "producer made no progress");
        send_some(&p, 500);
        p.poll(Duration::from_millis(1));
    }
    send_some(&p, 2000);
    broker.kill9();
    let acked_before_kill: usize = acks.0.lock().unwrap().values().map(Vec::len).sum();
    broker.restart();
    // The producer retries what was in flight; then new writes are accepted.
    send_some(&p, 5000);
    p.flush(Duration::from_secs(90))
        .expect("flush after restart");
    let acked = acks.0.lock().unwrap().clone();
    let acked_total: usize = acked.values().map(Vec::len).sum();
    assert!(
        acked_total > acked_before_kill,
        "no write was accepted after the restart"
    );

    let read = read_all(&bootstrap, "rd-crash", 2);
    for (partition, records) in &read {
        let offsets: Vec<i64> = records.iter().map(|(o, _)| *o).collect();
        let mut sorted = offsets.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(
            offsets, sorted,
            "partition {partition}: offsets out of order or repeated"
        );
        let payloads: HashSet<&Vec<u8>> = records.iter().map(|(_, p)| p).collect();
        assert_eq!(
            payloads.len(),
            records.len(),
            "partition {partition}: a record was written twice"
        );
        for (offset, payload) in acked.get(partition).into_iter().flatten() {
            let found = records.iter().find(|(o, _)| o == offset);
            assert_eq!(
                found.map(|(_, p)| p),
                Some(payload),
                "partition {partition}: acknowledged offset {offset} lost or changed"
            );
        }
    }
}
