//! In-process test clusters: several [`Broker`]s sharing one [`MetadataStore`], each serving on
//! its own port-0 listener, with short session timeouts, and a small wire client to talk to them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cluster::{MetadataStore, PartitionInfo};
use crate::config::BrokerConfig;
use crate::server::{Broker, TopicSpec};

/// How long a condition may take before a test fails.
pub(super) const PATIENCE: Duration = Duration::from_secs(20);

/// One broker of the test cluster: the broker, where it listens, and its serving task.
pub(super) struct Node {
    pub(super) broker: Arc<Broker>,
    pub(super) addr: SocketAddr,
    shutdown: CancellationToken,
    serving: Option<JoinHandle<anyhow::Result<()>>>,
}

pub(super) struct TestCluster {
    pub(super) metadata: Arc<MetadataStore>,
    pub(super) nodes: Vec<Node>,
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

pub(super) async fn listeners() -> (TcpListener, TcpListener) {
    let kafka = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let http = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    (kafka, http)
}

impl TestCluster {
    pub(super) async fn start(n: i32) -> TestCluster {
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
        // Every broker starts fenced: wait until each serves and is unfenced, so that the
        // placement a test sets up is not changed by a broker still starting.
        let brokers: Vec<Arc<Broker>> = nodes.iter().map(|n| n.broker.clone()).collect();
        eventually("every broker is ready", || {
            brokers.iter().all(|b| b.is_ready())
        })
        .await;
        TestCluster {
            metadata,
            nodes,
            _dir: dir,
        }
    }

    pub(super) fn node(&self, id: i32) -> &Node {
        &self.nodes[usize::try_from(id).expect("id")]
    }

    pub(super) fn partition(&self, topic: &str, index: i32) -> PartitionInfo {
        self.metadata
            .read()
            .partition(topic, index)
            .cloned()
            .expect("partition")
    }

    /// Polls `check` on the metadata until it holds, or fails the test after [`PATIENCE`].
    pub(super) async fn until(
        &self,
        what: &str,
        check: impl Fn(&crate::cluster::ClusterState) -> bool,
    ) {
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

    pub(super) async fn create(&self, name: &str, assignments: Vec<Vec<i32>>) {
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

    /// Produces `n` records to `topic`-`index` through its leader with acks=all; the error code.
    pub(super) async fn produce(&self, topic: &str, index: i32, n: i32) -> i16 {
        let leader = self.partition(topic, index).leader;
        let batch = crate::replica::tests::batch(&format!("{topic}-{index}"), n);
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![
                produce_request::TopicProduceData::default()
                    .with_name(topic_name(topic))
                    .with_partition_data(vec![
                        produce_request::PartitionProduceData::default()
                            .with_index(index)
                            .with_records(Some(batch)),
                    ]),
            ]);
        let r = call(self.node(leader).addr, &request, 9).await;
        r.responses[0].partition_responses[0].error_code
    }
}

impl Node {
    pub(super) fn serve(&mut self, kafka: TcpListener, http: TcpListener) {
        self.shutdown = CancellationToken::new();
        self.serving = Some(tokio::spawn(self.broker.clone().serve_on(
            kafka,
            http,
            self.shutdown.clone(),
        )));
    }

    /// Stops the broker abruptly: no controlled shutdown, heartbeats just stop.
    pub(super) async fn kill(&mut self) {
        if let Some(task) = self.serving.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// SIGTERM: controlled shutdown, then stop.
    pub(super) async fn terminate(&mut self) {
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
pub(super) async fn eventually(what: &str, check: impl Fn() -> bool) {
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
pub(super) async fn call<R: Request>(addr: SocketAddr, request: &R, version: i16) -> R::Response {
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

pub(super) fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

pub(super) fn reassign(
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
