//! An in-process cluster of three brokers sharing one metadata store, speaking the Kafka protocol
//! to each other over loopback: acks=all, byte-identical follower logs, leader changes with
//! truncation of divergent records, follower crashes and controlled shutdowns, ISR shrink and
//! expansion, `min.insync.replicas`. Every broker runs its controller as well (start-up fencing,
//! heartbeats), so a broker is waited for until it is unfenced before a test goes on.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::BrokerClient;
use crate::BrokerConfig;
use crate::cluster::{MetadataRecord, MetadataStore};
use crate::partition::Partition;
use crate::server::{Broker, TopicSpec};
use crate::storage::batch::BatchIter;

const TOPIC: &str = "replicated";

struct Node {
    broker: Arc<Broker>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    addr: String,
}

/// A broker opened but not yet serving.
struct Opened {
    broker: Arc<Broker>,
    listener: TcpListener,
    http: TcpListener,
}

struct Cluster {
    dir: tempfile::TempDir,
    store: Arc<MetadataStore>,
    nodes: BTreeMap<i32, Node>,
}

impl Cluster {
    async fn start(n: i32) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MetadataStore::open(&dir.path().join("meta")).unwrap());
        let mut c = Cluster {
            dir,
            store,
            nodes: BTreeMap::new(),
        };
        for id in 0..n {
            c.start_node(id).await;
        }
        // A broker that just started may still be fenced (it fences itself until the controller
        // has seen it heartbeat): topics get replicas only on live brokers, so wait for all.
        let brokers: Vec<Arc<Broker>> = c.nodes.values().map(|n| n.broker.clone()).collect();
        eventually("every broker is registered, unfenced and serving", || {
            brokers.iter().all(|b| b.is_ready())
                && (0..n).all(|id| c.store.read().brokers.contains_key(&id))
        })
        .await;
        c
    }

    fn data_dir(&self, id: i32) -> PathBuf {
        self.dir.path().join(format!("node-{id}"))
    }

    /// Opens broker `id` on its data directory without serving yet: its partitions are open and
    /// have their roles, but it fetches nothing and heartbeats nothing.
    async fn open_node(&self, id: i32) -> Opened {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut config = BrokerConfig::local(
            self.data_dir(id),
            listener.local_addr().unwrap(),
            http.local_addr().unwrap(),
        );
        config.node_id = id;
        config.replication.replica_lag_time_max = Duration::from_millis(1500);
        config.replication.fetch_wait_max = Duration::from_millis(100);
        config.replication.fetch_backoff = Duration::from_millis(50);
        config.shutdown_grace = Duration::from_secs(2);
        // These tests move leadership themselves; the controller must not move it back to the
        // preferred replica behind their back.
        config.auto_leader_rebalance_enable = false;
        let broker = Broker::open_with_metadata(config, self.store.clone())
            .await
            .unwrap();
        Opened {
            broker,
            listener,
            http,
        }
    }

    /// Serves an opened broker and waits until it is ready: registered, serving, and unfenced by
    /// the controller (every broker starts fenced).
    async fn serve_node(&mut self, id: i32, opened: Opened) {
        let Opened {
            broker,
            listener,
            http,
        } = opened;
        let addr = listener.local_addr().unwrap().to_string();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(broker.clone().serve_on(listener, http, shutdown.clone()));
        eventually("the broker is registered, unfenced and serving", || {
            broker.is_ready()
        })
        .await;
        self.nodes.insert(
            id,
            Node {
                broker,
                shutdown,
                task,
                addr,
            },
        );
    }

    async fn start_node(&mut self, id: i32) {
        let opened = self.open_node(id).await;
        self.serve_node(id, opened).await;
    }

    /// Controlled shutdown: the broker fences itself (leaving every ISR and leadership) and stops.
    async fn stop_node(&mut self, id: i32) {
        let node = self.nodes.remove(&id).unwrap();
        node.shutdown.cancel();
        node.task.await.unwrap().unwrap();
        // The broker's files are closed once the last handle goes.
        drop(node.broker);
    }

    /// An abrupt stop, as a crash: no controlled shutdown, its fetches and heartbeats just stop,
    /// and it stays in the metadata as it was until a leader or the controller notices.
    async fn kill_node(&mut self, id: i32) {
        let node = self.nodes.remove(&id).unwrap();
        node.task.abort();
        let _ = node.task.await;
        // Its background tasks end on their own once their tokens are cancelled; the data
        // directory is reused only after they have all let go of the broker.
        eventually("every task of the killed broker has ended", || {
            Arc::strong_count(&node.broker) == 1
        })
        .await;
        drop(node.broker);
    }

    fn broker(&self, id: i32) -> &Arc<Broker> {
        &self.nodes[&id].broker
    }

    fn partition(&self, id: i32) -> Arc<Partition> {
        hosted(self.broker(id))
    }

    fn placement(&self) -> crate::cluster::PartitionInfo {
        self.store.read().partition(TOPIC, 0).unwrap().clone()
    }

    async fn create_topic(&self, configs: &[(&str, &str)]) {
        let spec = TopicSpec {
            name: TOPIC.into(),
            partitions: 1,
            replication_factor: 3,
            configs: configs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            assignments: None,
        };
        self.broker(0).create_topic(spec, false).await.unwrap();
        // Every broker applies the new topic on its own metadata notification.
        let placement = self.placement();
        for &r in &placement.replicas {
            let broker = self.broker(r).clone();
            eventually("every replica hosts the new partition", || {
                broker
                    .replicas
                    .get(TOPIC, 0)
                    .is_some_and(|p| p.is_leader() == (r == placement.leader))
            })
            .await;
        }
    }

    async fn produce(&self, id: i32, acks: i16, batch: Bytes) -> (i16, i64) {
        let mut client = BrokerClient::connect(&self.nodes[&id].addr, "test", 1 << 20)
            .await
            .unwrap();
        let request = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(batch)),
                    ]),
            ]);
        let response = client.send(&request, 9).await.unwrap();
        let p = &response.responses[0].partition_responses[0];
        (p.error_code, p.base_offset)
    }

    fn log_bytes(&self, id: i32) -> Bytes {
        let p = self.partition(id);
        p.read_for_follower(p.log_start_offset(), 64 << 20, true)
            .unwrap()
    }
}

/// The test partition as `broker` hosts it.
fn hosted(broker: &Broker) -> Arc<Partition> {
    broker.replicas.get(TOPIC, 0).unwrap()
}

/// A batch of `n` records whose values are `<tag>-<i>`, timestamped now.
pub(crate) fn batch(tag: &str, n: i32) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(i),
            sequence: i - 1,
            // Now: records from 1970 would be deleted by retention when a broker starts.
            timestamp: crate::storage::Log::now_ms(),
            key: None,
            value: Some(Bytes::from(format!("{tag}-{i}"))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

/// Polls `f` every 20 ms until it holds, failing after 15 s.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `(base offset, partition leader epoch)` of every batch in `bytes`.
fn batches(bytes: &[u8]) -> Vec<(i64, i32)> {
    BatchIter::new(bytes)
        .map(|h| {
            let h = h.unwrap();
            (h.base_offset(), h.partition_leader_epoch())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_returns_after_every_follower_has_the_batch_and_logs_are_identical() {
    let cluster = Cluster::start(3).await;
    cluster.create_topic(&[]).await;
    let placement = cluster.placement();
    assert_eq!(placement.replicas.len(), 3);
    let leader = placement.leader;
    let followers: Vec<i32> = placement
        .replicas
        .iter()
        .copied()
        .filter(|&r| r != leader)
        .collect();
    for i in 0..5 {
        let (code, base) = cluster
            .produce(leader, -1, batch(&format!("b{i}"), 3))
            .await;
        assert_eq!(code, 0);
        assert_eq!(base, i64::from(i) * 3);
        for &f in &followers {
            assert!(
                cluster.partition(f).log_end_offset() >= base + 3,
                "follower {f} lacks an acknowledged batch"
            );
        }
        assert!(cluster.partition(leader).high_watermark() >= base + 3);
    }
    // A follower does not take produce requests.
    let (code, _) = cluster.produce(followers[0], 1, batch("x", 1)).await;
    assert_eq!(code, ResponseError::NotLeaderOrFollower.code());

    let leader_log = cluster.log_bytes(leader);
    assert_eq!(batches(&leader_log).len(), 5);
    for &f in &followers {
        eventually("followers learn the high watermark", || {
            cluster.partition(f).high_watermark() == 15
        })
        .await;
        assert_eq!(cluster.log_bytes(f), leader_log, "follower {f} differs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_serves_acknowledged_records_and_the_old_leader_truncates_the_rest() {
    let mut cluster = Cluster::start(3).await;
    cluster.create_topic(&[]).await;
    let placement = cluster.placement();
    let old = placement.leader;
    let others: Vec<i32> = placement
        .replicas
        .iter()
        .copied()
        .filter(|&r| r != old)
        .collect();
    for i in 0..3 {
        assert_eq!(
            cluster.produce(old, -1, batch(&format!("a{i}"), 2)).await.0,
            0
        );
    }
    let acknowledged = cluster.log_bytes(old);
    // The followers go away (out of the ISR at once: controlled shutdown); the leader takes
    // records only it will ever have.
    for &f in &others {
        cluster.stop_node(f).await;
    }
    assert_eq!(cluster.placement().isr, vec![old]);
    for i in 0..2 {
        assert_eq!(
            cluster
                .produce(old, 1, batch(&format!("lost{i}"), 2))
                .await
                .0,
            0
        );
    }
    assert_eq!(cluster.partition(old).log_end_offset(), 10);
    // The leader goes too. It was the last in-sync replica: no clean election is possible, the
    // partition is left without a leader.
    cluster.stop_node(old).await;
    let leaderless = cluster.placement();
    assert_eq!((leaderless.leader, leaderless.isr), (-1, vec![old]));

    // The former followers come back, and an unclean election (forced, as an operator would)
    // gives leadership to one of them, which lacks the old leader's last records.
    for &f in &others {
        cluster.start_node(f).await;
    }
    let new = others[0];
    cluster
        .store
        .commit(vec![MetadataRecord::PartitionChange {
            topic: TOPIC.into(),
            index: 0,
            expected_partition_epoch: None,
            leader: Some(new),
            isr: Some(others.clone()),
            replicas: None,
            adding_replicas: None,
            removing_replicas: None,
        }])
        .await
        .unwrap();
    let new_epoch = cluster.placement().leader_epoch;
    assert!(new_epoch > 0);
    let n = cluster.partition(new);
    eventually(
        "the new leader's high watermark covers the acknowledged records",
        || n.high_watermark() >= 6,
    )
    .await;
    assert!(n.is_leader());
    let served = n.read(0, 1 << 20).unwrap();
    assert_eq!(served, acknowledged);

    // The old leader comes back with its divergent records, as a follower of the new leader.
    let opened = cluster.open_node(old).await;
    assert_eq!(hosted(&opened.broker).log_end_offset(), 10);
    cluster.serve_node(old, opened).await;
    // The new leader appends in its epoch; the old leader drops its divergent batches and copies.
    assert_eq!(cluster.produce(new, -1, batch("b0", 2)).await, (0, 6));
    let o = cluster.partition(old);
    eventually("the old leader follows the new one", || {
        o.log_end_offset() == 8 && !o.is_leader()
    })
    .await;
    assert_eq!(cluster.log_bytes(old), cluster.log_bytes(new));
    let epochs: Vec<i32> = batches(&cluster.log_bytes(old))
        .iter()
        .map(|b| b.1)
        .collect();
    assert_eq!(epochs, vec![0, 0, 0, new_epoch]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_follower_leaves_the_isr_and_rejoins_after_catching_up() {
    let mut cluster = Cluster::start(3).await;
    cluster.create_topic(&[]).await;
    let placement = cluster.placement();
    let leader = placement.leader;
    let stopped = *placement.replicas.iter().find(|&&r| r != leader).unwrap();
    assert_eq!(cluster.produce(leader, -1, batch("a", 4)).await.0, 0);
    // No controlled shutdown: only the leader's lag check can take it out of the ISR.
    cluster.kill_node(stopped).await;
    assert_eq!(cluster.placement().isr.len(), 3);

    // acks=all waits until the ISR drops the stopped follower, then succeeds.
    assert_eq!(cluster.produce(leader, -1, batch("b", 4)).await, (0, 4));
    let isr = cluster.placement().isr;
    assert_eq!(isr.len(), 2);
    assert!(!isr.contains(&stopped));
    // Counted once the leader's commit returns, which may be after the reactor applied it.
    let metrics = &cluster.broker(leader).metrics;
    eventually("the leader counts its ISR shrink", || {
        metrics.isr_shrinks.get() >= 1
    })
    .await;
    assert!(cluster.partition(leader).is_under_replicated());
    for i in 0..3 {
        assert_eq!(
            cluster
                .produce(leader, 1, batch(&format!("c{i}"), 4))
                .await
                .0,
            0
        );
    }

    cluster.start_node(stopped).await;
    eventually("the restarted follower rejoins the ISR", || {
        cluster.placement().isr.len() == 3
    })
    .await;
    assert_eq!(cluster.partition(stopped).log_end_offset(), 20);
    assert_eq!(cluster.log_bytes(stopped), cluster.log_bytes(leader));
    let metrics = &cluster.broker(leader).metrics;
    eventually("the leader counts its ISR expansion", || {
        metrics.isr_expands.get() >= 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_insync_replicas_refuses_acks_all_when_too_few_replicas_are_in_sync() {
    let mut cluster = Cluster::start(3).await;
    cluster.create_topic(&[("min.insync.replicas", "3")]).await;
    let placement = cluster.placement();
    let leader = placement.leader;
    let stopped = *placement.replicas.iter().find(|&&r| r != leader).unwrap();
    assert_eq!(cluster.produce(leader, -1, batch("a", 1)).await.0, 0);
    // A crash: the ISR still has three until the leader notices.
    cluster.kill_node(stopped).await;

    // Appended while the ISR still had three; the ISR shrinks while it waits.
    let (code, _) = cluster.produce(leader, -1, batch("b", 1)).await;
    assert_eq!(code, ResponseError::NotEnoughReplicasAfterAppend.code());
    // The leader refuses by its own view of the ISR, which follows the metadata.
    let l = cluster.partition(leader);
    eventually("the ISR shrinks", || {
        cluster.placement().isr.len() == 2 && l.isr().len() == 2
    })
    .await;
    // Now refused before appending; acks=1 still works.
    let end = cluster.partition(leader).log_end_offset();
    let (code, _) = cluster.produce(leader, -1, batch("c", 1)).await;
    assert_eq!(code, ResponseError::NotEnoughReplicas.code());
    assert_eq!(cluster.partition(leader).log_end_offset(), end);
    assert_eq!(cluster.produce(leader, 1, batch("d", 1)).await, (0, end));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_in_controlled_shutdown_leaves_the_isr_before_it_stops_and_rejoins_once_unfenced()
 {
    let mut cluster = Cluster::start(3).await;
    cluster.create_topic(&[("min.insync.replicas", "3")]).await;
    let placement = cluster.placement();
    let leader = placement.leader;
    let stopped = *placement.replicas.iter().find(|&&r| r != leader).unwrap();
    assert_eq!(cluster.produce(leader, -1, batch("a", 1)).await.0, 0);
    cluster.stop_node(stopped).await;

    // Out of the ISR when the stop returns (its last fetches did not bring it back): acks=all is
    // refused at once, before appending, rather than waiting out the leader's lag check.
    let isr = cluster.placement().isr;
    assert_eq!(isr.len(), 2, "{isr:?}");
    assert!(!isr.contains(&stopped));
    assert!(cluster.store.read().fenced.contains(&stopped));
    let end = cluster.partition(leader).log_end_offset();
    let (code, _) = cluster.produce(leader, -1, batch("b", 1)).await;
    assert_eq!(code, ResponseError::NotEnoughReplicas.code());
    assert_eq!(cluster.partition(leader).log_end_offset(), end);

    // Back, unfenced and caught up: in the ISR again (in the metadata and in the leader's own
    // view, by which it accepts acks=all), and acks=all works.
    cluster.start_node(stopped).await;
    let l = cluster.partition(leader);
    eventually("the restarted follower rejoins the ISR", || {
        cluster.placement().isr.len() == 3 && l.isr().len() == 3
    })
    .await;
    assert_eq!(cluster.produce(leader, -1, batch("c", 1)).await, (0, end));
    assert_eq!(cluster.log_bytes(stopped), cluster.log_bytes(leader));
}

/// A consumer's Fetch v12 of partition 0 from `offset`, naming `current_leader_epoch`.
fn consumer_fetch(
    offset: i64,
    current_leader_epoch: i32,
) -> kafka_protocol::messages::FetchRequest {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    kafka_protocol::messages::FetchRequest::default()
        .with_max_wait_ms(0)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(offset)
                        .with_current_leader_epoch(current_leader_epoch)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_refuse_consumers_and_requests_of_an_old_leader_epoch_are_fenced() {
    let cluster = Cluster::start(3).await;
    cluster.create_topic(&[]).await;
    let placement = cluster.placement();
    let leader = placement.leader;
    let follower = *placement.replicas.iter().find(|&&r| r != leader).unwrap();
    assert_eq!(cluster.produce(leader, -1, batch("a", 2)).await.0, 0);

    let mut client = BrokerClient::connect(&cluster.nodes[&follower].addr, "test", 1 << 20)
        .await
        .unwrap();
    let r = client.send(&consumer_fetch(0, -1), 12).await.unwrap();
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, ResponseError::NotLeaderOrFollower.code());
    assert_eq!(p.current_leader.leader_id.0, leader);

    // A partition placed on another broker only: not hosted here, but it exists.
    let solo = TopicSpec {
        name: "solo".into(),
        partitions: -1,
        replication_factor: -1,
        configs: BTreeMap::new(),
        assignments: Some(vec![vec![leader]]),
    };
    cluster
        .broker(leader)
        .create_topic(solo, false)
        .await
        .unwrap();
    let produce = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("solo")))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch("s", 1))),
                ]),
        ]);
    let r = client.send(&produce, 10).await.unwrap();
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, ResponseError::NotLeaderOrFollower.code());
    assert_eq!(p.current_leader.leader_id.0, leader);

    // Leadership moves to the follower: epoch 1. A consumer still at epoch 0 is fenced there.
    cluster
        .store
        .commit(vec![MetadataRecord::PartitionChange {
            topic: TOPIC.into(),
            index: 0,
            expected_partition_epoch: None,
            leader: Some(follower),
            isr: None,
            replicas: None,
            adding_replicas: None,
            removing_replicas: None,
        }])
        .await
        .unwrap();
    let p = cluster.partition(follower);
    eventually("the follower leads", || p.is_leader()).await;
    let r = client.send(&consumer_fetch(0, 0), 12).await.unwrap();
    assert_eq!(
        r.responses[0].partitions[0].error_code,
        ResponseError::FencedLeaderEpoch.code()
    );
    let r = client.send(&consumer_fetch(0, 2), 12).await.unwrap();
    assert_eq!(
        r.responses[0].partitions[0].error_code,
        ResponseError::UnknownLeaderEpoch.code()
    );
    eventually("the new leader's high watermark covers the batch", || {
        p.high_watermark() == 2
    })
    .await;
    let r = client.send(&consumer_fetch(0, 1), 12).await.unwrap();
    let data = &r.responses[0].partitions[0];
    assert_eq!((data.error_code, data.high_watermark), (0, 2));
    assert_eq!(
        batches(data.records.as_deref().unwrap_or_default()),
        vec![(0, 0)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_take_the_log_start_that_delete_records_set_on_the_leader() {
    let cluster = Cluster::start(3).await;
    cluster.create_topic(&[]).await;
    let leader = cluster.placement().leader;
    for i in 0..3 {
        assert_eq!(
            cluster
                .produce(leader, -1, batch(&format!("a{i}"), 2))
                .await
                .0,
            0
        );
    }
    assert_eq!(
        cluster.partition(leader).delete_records_before(4).unwrap(),
        4
    );
    // The next fetches carry the new log start to the followers.
    assert_eq!(cluster.produce(leader, -1, batch("b", 2)).await.0, 0);
    for r in cluster.placement().replicas {
        let p = cluster.partition(r);
        eventually("every replica starts at offset 4", || {
            p.log_start_offset() == 4
        })
        .await;
    }
}
