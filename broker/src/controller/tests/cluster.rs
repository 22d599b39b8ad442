//! In-process clusters: several [`Broker`]s sharing one [`MetadataStore`], each serving on its own
//! port-0 listener, with short session timeouts. They exercise the controller loop, heartbeats,
//! fencing, controlled shutdown and the reassignment APIs over the wire.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cluster::{MetadataRecord, MetadataStore, PartitionInfo};
use crate::config::BrokerConfig;
use crate::server::{Broker, TopicSpec};

/// How long a condition may take before a test fails.
const PATIENCE: Duration = Duration::from_secs(20);

/// One broker of the test cluster: the broker, where it listens, and its serving task.
struct Node {
    broker: Arc<Broker>,
    addr: SocketAddr,
    shutdown: CancellationToken,
    serving: Option<JoinHandle<anyhow::Result<()>>>,
}

struct TestCluster {
    metadata: Arc<MetadataStore>,
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

fn test_config(dir: &std::path::Path, id: i32, addr: SocketAddr, http: SocketAddr) -> BrokerConfig {
    let mut config = BrokerConfig::local(dir.join(format!("broker-{id}")), addr, http);
    config.node_id = id;
    config.broker_session_timeout = Duration::from_millis(1000);
    config.broker_heartbeat_interval = Duration::from_millis(100);
    config.controller_tick = Duration::from_millis(50);
    config.leader_imbalance_check_interval = Duration::from_millis(200);
    config.shutdown_grace = Duration::from_secs(5);
    config
}

async fn listeners() -> (TcpListener, TcpListener) {
    let kafka = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let http = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    (kafka, http)
}

impl TestCluster {
    async fn start(n: i32) -> TestCluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let metadata = Arc::new(MetadataStore::open(&dir.path().join("metadata")).expect("store"));
        let mut nodes = Vec::new();
        for id in 0..n {
            let (kafka, http) = listeners().await;
            let addr = kafka.local_addr().expect("addr");
            let config = test_config(dir.path(), id, addr, http.local_addr().expect("addr"));
            let broker = Broker::open_with_metadata(config, metadata.clone())
                .await
                .expect("open");
            let mut node = Node {
                broker,
                addr,
                shutdown: CancellationToken::new(),
                serving: None,
            };
            node.serve(kafka, http);
            nodes.push(node);
        }
        TestCluster {
            metadata,
            nodes,
            _dir: dir,
        }
    }

    fn node(&self, id: i32) -> &Node {
        &self.nodes[usize::try_from(id).expect("id")]
    }

    fn partition(&self, topic: &str, index: i32) -> PartitionInfo {
        self.metadata
            .read()
            .partition(topic, index)
            .cloned()
            .expect("partition")
    }

    /// Polls `check` on the metadata until it holds, or fails the test after [`PATIENCE`].
    async fn until(&self, what: &str, check: impl Fn(&crate::cluster::ClusterState) -> bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut changes = self.metadata.subscribe();
        loop {
            if check(&self.metadata.read()) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting until {what}: {:#?}",
                self.metadata.read().topics
            );
            let _ = tokio::time::timeout(Duration::from_millis(100), changes.changed()).await;
        }
    }

    async fn create(&self, name: &str, assignments: Vec<Vec<i32>>) {
        self.node(0)
            .broker
            .create_topic(
                TopicSpec {
                    name: name.into(),
                    partitions: -1,
                    replication_factor: -1,
                    configs: Default::default(),
                    assignments: Some(assignments),
                },
                false,
            )
            .await
            .expect("create topic");
    }

    /// Sets a partition's ISR, as its leader does when followers catch up.
    async fn set_isr(&self, topic: &str, index: i32, isr: Vec<i32>) {
        self.metadata
            .commit(vec![MetadataRecord::PartitionChange {
                topic: topic.into(),
                index,
                expected_partition_epoch: None,
                leader: None,
                isr: Some(isr),
                replicas: None,
                adding_replicas: None,
                removing_replicas: None,
            }])
            .await
            .expect("commit");
    }
}

impl Node {
    fn serve(&mut self, kafka: TcpListener, http: TcpListener) {
        self.shutdown = CancellationToken::new();
        self.serving = Some(tokio::spawn(self.broker.clone().serve_on(
            kafka,
            http,
            self.shutdown.clone(),
        )));
    }

    /// Stops the broker abruptly: no controlled shutdown, heartbeats just stop.
    async fn kill(&mut self) {
        if let Some(task) = self.serving.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// SIGTERM: controlled shutdown, then stop.
    async fn terminate(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.serving.take() {
            task.await.expect("join").expect("serve");
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.shutdown.cancel();
            if let Some(task) = node.serving.take() {
                task.abort();
            }
        }
    }
}

/// Polls `check` until it holds, or fails the test after [`PATIENCE`].
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends one request and decodes its response.
async fn call<R: Request>(addr: SocketAddr, request: &R, version: i16) -> R::Response {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("controller-test")));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, R::header_version(version))
        .expect("header");
    request.encode(&mut body, version).expect("body");
    let len = u32::try_from(body.len()).expect("len");
    stream.write_all(&len.to_be_bytes()).await.expect("write");
    stream.write_all(&body).await.expect("write");
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await.expect("read");
    let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut buf).await.expect("read");
    let mut frame = Bytes::from(buf);
    let header = ResponseHeader::decode(&mut frame, R::Response::header_version(version))
        .expect("response header");
    assert_eq!(header.correlation_id, 7);
    R::Response::decode(&mut frame, version).expect("response")
}

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

fn reassign(
    topic: &str,
    partition: i32,
    target: Option<Vec<i32>>,
) -> AlterPartitionReassignmentsRequest {
    AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(5000)
        .with_allow_replication_factor_change(true)
        .with_topics(vec![
            alter_partition_reassignments_request::ReassignableTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![
                    alter_partition_reassignments_request::ReassignablePartition::default()
                        .with_partition_index(partition)
                        .with_replicas(target.map(|t| t.into_iter().map(BrokerId).collect())),
                ]),
        ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_broker_is_fenced_and_its_leadership_returns_after_it_comes_back() {
    let mut cluster = TestCluster::start(3).await;
    cluster.create("replicated", vec![vec![2, 0, 1]]).await;
    cluster.create("alone", vec![vec![2]]).await;
    assert_eq!(cluster.partition("replicated", 0).leader, 2);

    cluster.nodes[2].kill().await;
    cluster
        .until(
            "broker 2 is fenced and replicated-0 has a new leader",
            |s| {
                s.fenced.contains(&2)
                    && s.partition("replicated", 0)
                        .is_some_and(|p| p.leader == 0 && p.isr == vec![0, 1])
            },
        )
        .await;
    // The only replica is gone: no leader, but it stays in the ISR (no unclean election later).
    let alone = cluster.partition("alone", 0);
    assert_eq!((alone.leader, alone.isr.clone()), (-1, vec![2]));
    let b0 = cluster.node(0).broker.clone();
    let controller = &b0.metrics;
    // The gauges follow at the controller's next tick.
    eventually("broker 0's controller counts one fenced broker", || {
        controller.fenced_brokers.get() == 1
    })
    .await;
    assert_eq!(controller.active_controller.get(), 1);

    // It comes back: unfenced, and it leads its single-replica partition again at once.
    let (kafka, http) = listeners().await;
    cluster.nodes[2].serve(kafka, http);
    cluster
        .until("broker 2 is unfenced and leads alone-0", |s| {
            !s.fenced.contains(&2) && s.partition("alone", 0).is_some_and(|p| p.leader == 2)
        })
        .await;
    // Its follower catches up (the leader widens the ISR); the preferred leader takes over.
    cluster.set_isr("replicated", 0, vec![0, 1, 2]).await;
    cluster
        .until("the preferred replica leads replicated-0 again", |s| {
            s.partition("replicated", 0).is_some_and(|p| p.leader == 2)
        })
        .await;
    assert!(
        cluster.node(1).broker.metrics.leader_elections.get() + controller.leader_elections.get()
            >= 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controlled_shutdown_moves_leadership_before_the_broker_stops() {
    let mut cluster = TestCluster::start(3).await;
    cluster
        .create("led-by-1", vec![vec![1, 2], vec![1, 0]])
        .await;
    cluster.nodes[1].terminate().await;
    // Moved during shutdown, not after a session timeout: already true when serve returns.
    let state = cluster.metadata.read().clone();
    assert!(state.fenced.contains(&1));
    assert_eq!(state.partition("led-by-1", 0).map(|p| p.leader), Some(2));
    assert_eq!(state.partition("led-by-1", 1).map(|p| p.leader), Some(0));
    drop(state);
    // Back again: its heartbeats unfence it, and once in sync it is preferred again.
    let (kafka, http) = listeners().await;
    cluster.nodes[1].serve(kafka, http);
    cluster.set_isr("led-by-1", 0, vec![2, 1]).await;
    cluster
        .until("broker 1 is unfenced and leads led-by-1-0", |s| {
            !s.fenced.contains(&1) && s.partition("led-by-1", 0).is_some_and(|p| p.leader == 1)
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reassignments_are_started_listed_completed_and_cancelled_over_the_wire() {
    let cluster = TestCluster::start(3).await;
    cluster.create("moving", vec![vec![0, 1], vec![0, 1]]).await;
    let addr = cluster.node(1).addr;

    // Move partition 0 from {0, 1} to {1, 2}; partition 1 to {2}, then cancel that one.
    for v in [0, 1] {
        let target = if v == 0 { vec![1, 2] } else { vec![2] };
        let r = call(addr, &reassign("moving", v, Some(target)), 1).await;
        assert_eq!(r.error_code, 0);
        assert_eq!(r.responses[0].partitions[0].error_code, 0, "{r:?}");
    }
    let p = cluster.partition("moving", 0);
    assert_eq!(p.replicas, vec![1, 2, 0]);
    assert_eq!(
        (p.adding_replicas.clone(), p.removing_replicas.clone()),
        (vec![2], vec![0])
    );
    let listed = call(
        addr,
        &ListPartitionReassignmentsRequest::default().with_topics(None),
        0,
    )
    .await;
    assert_eq!(listed.topics.len(), 1);
    type Ongoing = (i32, Vec<BrokerId>, Vec<BrokerId>, Vec<BrokerId>);
    let mut ongoing: Vec<Ongoing> = listed.topics[0]
        .partitions
        .iter()
        .map(|p| {
            (
                p.partition_index,
                p.replicas.clone(),
                p.adding_replicas.clone(),
                p.removing_replicas.clone(),
            )
        })
        .collect();
    ongoing.sort_by_key(|o| o.0);
    assert_eq!(
        ongoing,
        vec![
            (
                0,
                vec![BrokerId(1), BrokerId(2), BrokerId(0)],
                vec![BrokerId(2)],
                vec![BrokerId(0)]
            ),
            (
                1,
                vec![BrokerId(2), BrokerId(0), BrokerId(1)],
                vec![BrokerId(2)],
                vec![BrokerId(0), BrokerId(1)]
            ),
        ]
    );

    let r = call(addr, &reassign("moving", 1, None), 0).await;
    assert_eq!(r.responses[0].partitions[0].error_code, 0, "{r:?}");
    let p1 = cluster.partition("moving", 1);
    assert_eq!((p1.replicas.clone(), p1.leader), (vec![0, 1], 0));
    assert!(p1.adding_replicas.is_empty() && p1.removing_replicas.is_empty());
    let r = call(addr, &reassign("moving", 1, None), 1).await;
    assert_eq!(
        r.responses[0].partitions[0].error_code,
        ResponseError::NoReassignmentInProgress.code()
    );

    // Not complete while the new replica is out of sync; complete once the leader adds it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cluster.partition("moving", 0).adding_replicas, vec![2]);
    cluster.set_isr("moving", 0, vec![0, 1, 2]).await;
    cluster
        .until("the reassignment of moving-0 completes", |s| {
            s.partition("moving", 0).is_some_and(|p| {
                p.replicas == vec![1, 2]
                    && p.isr == vec![1, 2]
                    && p.leader == 1
                    && p.adding_replicas.is_empty()
                    && p.removing_replicas.is_empty()
            })
        })
        .await;
    let listed = call(
        addr,
        &ListPartitionReassignmentsRequest::default().with_topics(Some(vec![
            list_partition_reassignments_request::ListPartitionReassignmentsTopics::default()
                .with_name(topic_name("moving"))
                .with_partition_indexes(vec![0, 1, 5]),
        ])),
        0,
    )
    .await;
    assert!(listed.topics.is_empty(), "{listed:?}");

    // Refusals carry Kafka's codes.
    let r = call(addr, &reassign("moving", 0, Some(vec![1, 9])), 0).await;
    assert_eq!(
        r.responses[0].partitions[0].error_code,
        ResponseError::InvalidReplicaAssignment.code()
    );
    let r = call(addr, &reassign("nope", 0, Some(vec![1])), 0).await;
    assert_eq!(
        r.responses[0].partitions[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    let r = call(
        addr,
        &reassign("moving", 0, Some(vec![0])).with_allow_replication_factor_change(false),
        1,
    )
    .await;
    assert_eq!(
        r.responses[0].partitions[0].error_code,
        ResponseError::InvalidReplicationFactor.code()
    );
    assert!(!r.allow_replication_factor_change);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elect_leaders_and_unregister_broker_answer_with_kafkas_codes() {
    let cluster = TestCluster::start(3).await;
    cluster.create("elect", vec![vec![1, 0]]).await;
    let addr = cluster.node(0).addr;
    // Leadership away from the preferred replica, as after a failover.
    cluster
        .metadata
        .commit(vec![MetadataRecord::PartitionChange {
            topic: "elect".into(),
            index: 0,
            expected_partition_epoch: None,
            leader: Some(0),
            isr: None,
            replicas: None,
            adding_replicas: None,
            removing_replicas: None,
        }])
        .await
        .expect("commit");
    let request = |election_type: i8| {
        ElectLeadersRequest::default()
            .with_election_type(election_type)
            .with_timeout_ms(5000)
            .with_topic_partitions(Some(vec![
                elect_leaders_request::TopicPartitions::default()
                    .with_topic(topic_name("elect"))
                    .with_partitions(vec![0, 3]),
            ]))
    };
    // Unclean on a partition with a leader: nothing to do.
    let r = call(addr, &request(1), 2).await;
    let codes: Vec<i16> = r.replica_election_results[0]
        .partition_result
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(
        codes,
        vec![
            ResponseError::ElectionNotNeeded.code(),
            ResponseError::UnknownTopicOrPartition.code()
        ]
    );
    let r = call(addr, &request(0), 2).await;
    assert_eq!(
        r.replica_election_results[0].partition_result[0].error_code,
        0
    );
    assert_eq!(cluster.partition("elect", 0).leader, 1);
    let r = call(addr, &request(0), 0).await;
    assert_eq!(
        r.replica_election_results[0].partition_result[0].error_code,
        ResponseError::ElectionNotNeeded.code()
    );

    // Broker 1 hosts replicas: refused. Broker 7 is unknown.
    let r = call(
        addr,
        &UnregisterBrokerRequest::default().with_broker_id(BrokerId(1)),
        0,
    )
    .await;
    assert_eq!(r.error_code, ResponseError::InvalidRequest.code());
    assert!(r.error_message.is_some_and(|m| m.contains("still hosts")));
    let r = call(
        addr,
        &UnregisterBrokerRequest::default().with_broker_id(BrokerId(7)),
        0,
    )
    .await;
    assert_eq!(r.error_code, ResponseError::BrokerIdNotRegistered.code());
    // Broker 2 hosts nothing but the offsets topic's placement is on broker 0: it can go.
    let r = call(
        addr,
        &UnregisterBrokerRequest::default().with_broker_id(BrokerId(2)),
        0,
    )
    .await;
    assert_eq!(r.error_code, 0, "{r:?}");
    assert!(!cluster.metadata.read().brokers.contains_key(&2));
}

async fn find_coordinator(addr: SocketAddr, version: i16) -> (i16, i32, i32) {
    let mut request = FindCoordinatorRequest::default().with_key_type(0);
    if version >= 4 {
        request.coordinator_keys = vec![StrBytes::from_static_str("g")];
    } else {
        request.key = StrBytes::from_static_str("g");
    }
    let r = call(addr, &request, version).await;
    if version >= 4 {
        let c = &r.coordinators[0];
        (c.error_code, c.node_id.0, c.port)
    } else {
        (r.error_code, r.node_id.0, r.port)
    }
}

async fn commit_offset(addr: SocketAddr, offset: i64) -> i16 {
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_member_id(StrBytes::from_static_str(""))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(topic_name("work"))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset),
                ]),
        ]);
    call(addr, &request, 9).await.topics[0].partitions[0].error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_coordinator_is_the_offsets_leader_and_moves_with_it() {
    let mut cluster = TestCluster::start(3).await;
    cluster.create("work", vec![vec![1, 2]]).await;
    let ports: Vec<i32> = cluster
        .nodes
        .iter()
        .map(|n| i32::from(n.addr.port()))
        .collect();
    let port = |id: i32| ports[usize::try_from(id).expect("id")];
    let (addr1, addr2) = (cluster.node(1).addr, cluster.node(2).addr);
    for v in [0, 3, 4, 6] {
        assert_eq!(find_coordinator(addr2, v).await, (0, 0, port(0)), "v{v}");
    }
    assert_eq!(
        commit_offset(addr2, 1).await,
        ResponseError::NotCoordinator.code()
    );
    assert_eq!(commit_offset(cluster.node(0).addr, 1).await, 0);

    // Give the offsets partition a second replica on broker 1, in sync.
    let r = call(
        addr1,
        &reassign(crate::server::OFFSETS_TOPIC, 0, Some(vec![0, 1])),
        0,
    )
    .await;
    assert_eq!(r.responses[0].partitions[0].error_code, 0, "{r:?}");
    cluster
        .set_isr(crate::server::OFFSETS_TOPIC, 0, vec![0, 1])
        .await;
    cluster
        .until("the offsets partition is on brokers 0 and 1", |s| {
            s.partition(crate::server::OFFSETS_TOPIC, 0)
                .is_some_and(|p| p.replicas == vec![0, 1] && p.adding_replicas.is_empty())
        })
        .await;

    // Broker 0 dies: broker 1 leads the offsets partition and coordinates.
    cluster.nodes[0].kill().await;
    cluster
        .until("broker 1 leads the offsets partition", |s| {
            s.partition(crate::server::OFFSETS_TOPIC, 0)
                .is_some_and(|p| p.leader == 1)
        })
        .await;
    for v in [0, 4] {
        assert_eq!(find_coordinator(addr2, v).await, (0, 1, port(1)), "v{v}");
    }
    let b1 = cluster.node(1).broker.clone();
    eventually("broker 1's coordinator is active", || b1.groups.is_active()).await;
    assert_eq!(commit_offset(addr1, 2).await, 0);
    assert_eq!(
        commit_offset(addr2, 2).await,
        ResponseError::NotCoordinator.code()
    );

    // Broker 0 returns and catches up: the preferred leader takes the coordinator back.
    let (kafka, http) = listeners().await;
    cluster.nodes[0].serve(kafka, http);
    cluster
        .set_isr(crate::server::OFFSETS_TOPIC, 0, vec![1, 0])
        .await;
    cluster
        .until("broker 0 leads the offsets partition again", |s| {
            s.partition(crate::server::OFFSETS_TOPIC, 0)
                .is_some_and(|p| p.leader == 0)
        })
        .await;
    assert_eq!(find_coordinator(addr2, 4).await.1, 0);
    eventually("broker 1 stops coordinating", || !b1.groups.is_active()).await;
    assert_eq!(
        commit_offset(addr1, 3).await,
        ResponseError::NotCoordinator.code()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_coordinator_answers_coordinator_not_available_without_an_offsets_leader() {
    let mut cluster = TestCluster::start(2).await;
    cluster.nodes[0].kill().await;
    cluster
        .until("the offsets partition has no leader", |s| {
            s.partition(crate::server::OFFSETS_TOPIC, 0)
                .is_some_and(|p| p.leader == -1)
        })
        .await;
    let addr = cluster.node(1).addr;
    for v in [0, 3, 4, 6] {
        let (code, node, _) = find_coordinator(addr, v).await;
        assert_eq!(
            (code, node),
            (ResponseError::CoordinatorNotAvailable.code(), -1),
            "v{v}"
        );
    }
}
