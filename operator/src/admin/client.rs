//! [`KafkaAdminClient`]: [`KafkaAdmin`] over TCP, routing each request where Kafka expects it.
//!
//! Cluster-wide requests (topics, configs, reassignments, cluster description) go to any bootstrap
//! broker, which in Kafka 4 forwards to the controller; ListOffsets goes to each partition's leader and
//! OffsetFetch to the group's coordinator.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, CreatePartitionsRequest, CreateTopicsRequest,
    DeleteTopicsRequest, DescribeClusterRequest, DescribeConfigsRequest, FindCoordinatorRequest,
    GroupId, IncrementalAlterConfigsRequest, ListOffsetsRequest, ListPartitionReassignmentsRequest,
    MetadataRequest, MetadataResponse, OffsetFetchRequest, TopicName, UnregisterBrokerRequest,
    alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic},
    create_partitions_request::CreatePartitionsTopic,
    create_topics_request::{CreatableTopic, CreatableTopicConfig},
    delete_topics_request::DeleteTopicState,
    describe_configs_request::DescribeConfigsResource,
    incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig},
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
    metadata_request::MetadataRequestTopic,
    offset_fetch_request::{
        OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
    },
};
use kafka_protocol::protocol::{Request, StrBytes};

mod cluster;
mod offsets;
mod topics;

use super::connection::Connection;
use super::{
    AdminConnector, AdminError, BROKER_ID_NOT_REGISTERED, BrokerNode, ClusterDescription, ConfigOp,
    ConfigValue, KafkaAdmin, NewTopic, OngoingReassignment, PartitionDescription,
    PartitionReassignmentRequest, TopicDescription, TopicPartition, UNKNOWN_TOPIC_OR_PARTITION,
};

/// DescribeConfigs / IncrementalAlterConfigs resource type of a topic.
const RESOURCE_TOPIC: i8 = 2;
/// DescribeConfigs config source of a value set on the topic itself.
const SOURCE_DYNAMIC_TOPIC_CONFIG: i8 = 1;
/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
/// ListOffsets timestamp asking for the latest offset.
const LATEST_TIMESTAMP: i64 = -1;

/// Settings of the admin client.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Kafka `client.id` of the operator's requests.
    pub client_id: String,
    /// Deadline of one request, connect included.
    pub request_timeout: Duration,
    /// Largest response accepted; a peer cannot make the operator allocate more.
    pub max_response_bytes: usize,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            client_id: "odradek-operator".to_owned(),
            request_timeout: Duration::from_secs(10),
            max_response_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The admin client of one cluster.
#[derive(Debug)]
pub struct KafkaAdminClient {
    bootstrap: Vec<String>,
    config: AdminConfig,
    /// Open connections by address. A tokio mutex: a connection is held across the awaits of its
    /// request, and requests of one client are serialised, which keeps the operator gentle on brokers.
    connections: tokio::sync::Mutex<HashMap<String, Connection>>,
}

impl KafkaAdminClient {
    /// A client for the cluster at `bootstrap` (`host:port`, comma-separated for several). Connects
    /// lazily on the first request.
    #[must_use]
    pub fn new(bootstrap: &str, config: AdminConfig) -> Self {
        Self {
            bootstrap: bootstrap
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            config,
            connections: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Sends a request built for the negotiated version to `addr`, or to any bootstrap broker when
    /// `addr` is `None`. A connection that failed is dropped so that the next request reconnects.
    async fn send<R, F>(&self, addr: Option<&str>, build: F) -> Result<R::Response, AdminError>
    where
        R: Request,
        F: Fn(i16) -> R,
    {
        let mut connections = self.connections.lock().await;
        let addr = match addr {
            Some(a) => a.to_owned(),
            None => self.any_bootstrap(&mut connections).await?,
        };
        if !connections.contains_key(&addr) {
            let conn = Connection::open(
                &addr,
                &self.config.client_id,
                self.config.request_timeout,
                self.config.max_response_bytes,
            )
            .await?;
            connections.insert(addr.clone(), conn);
        }
        let conn = connections
            .get_mut(&addr)
            .ok_or_else(|| AdminError::Connect {
                addr: addr.clone(),
                source: std::io::Error::other("connection vanished"),
            })?;
        let version = conn.version_for::<R>()?;
        let result = conn.send(&build(version), version).await;
        if matches!(
            result,
            Err(AdminError::Io { .. } | AdminError::Timeout { .. } | AdminError::Protocol { .. })
        ) {
            connections.remove(&addr);
        }
        result
    }

    /// An address of a bootstrap broker with an open connection, else the first that accepts one.
    async fn any_bootstrap(
        &self,
        connections: &mut HashMap<String, Connection>,
    ) -> Result<String, AdminError> {
        if let Some(addr) = self.bootstrap.iter().find(|a| connections.contains_key(*a)) {
            return Ok(addr.clone());
        }
        let mut last = AdminError::Connect {
            addr: String::new(),
            source: std::io::Error::other("no bootstrap address configured"),
        };
        for addr in &self.bootstrap {
            match Connection::open(
                addr,
                &self.config.client_id,
                self.config.request_timeout,
                self.config.max_response_bytes,
            )
            .await
            {
                Ok(conn) => {
                    let addr = conn.addr().to_owned();
                    connections.insert(addr.clone(), conn);
                    return Ok(addr);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    async fn metadata(&self, names: Option<&[String]>) -> Result<MetadataResponse, AdminError> {
        let topics = names.map(|names| {
            names
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n))))
                .collect::<Vec<_>>()
        });
        self.send(None, |_| {
            MetadataRequest::default()
                .with_topics(topics.clone())
                .with_allow_auto_topic_creation(false)
        })
        .await
    }

    /// `host:port` of every broker in a Metadata response.
    fn broker_addrs(metadata: &MetadataResponse) -> HashMap<i32, String> {
        metadata
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
            .collect()
    }
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

fn text(s: &StrBytes) -> String {
    s.as_str().to_owned()
}

fn opt_text(s: Option<&StrBytes>) -> Option<String> {
    s.map(text)
}

/// Kafka prints topic ids as unpadded URL-safe base64 of the 16 UUID bytes.
fn topic_id_text(id: &uuid::Uuid) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let idx = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[idx as usize]));
        }
    }
    out
}

/// The requests themselves live in `client/{topics,cluster,offsets}.rs`, one group of APIs each.
#[async_trait::async_trait]
impl KafkaAdmin for KafkaAdminClient {
    async fn describe_topics(
        &self,
        names: Option<&[String]>,
    ) -> Result<Vec<TopicDescription>, AdminError> {
        self.describe_topics_impl(names).await
    }

    async fn create_topic(&self, topic: &NewTopic) -> Result<String, AdminError> {
        self.create_topic_impl(topic).await
    }

    async fn create_partitions(&self, topic: &str, total: i32) -> Result<(), AdminError> {
        self.create_partitions_impl(topic, total).await
    }

    async fn delete_topic(&self, topic: &str) -> Result<(), AdminError> {
        self.delete_topic_impl(topic).await
    }

    async fn describe_topic_configs(
        &self,
        topic: &str,
    ) -> Result<BTreeMap<String, ConfigValue>, AdminError> {
        self.describe_topic_configs_impl(topic).await
    }

    async fn alter_topic_configs(&self, topic: &str, ops: &[ConfigOp]) -> Result<(), AdminError> {
        self.alter_topic_configs_impl(topic, ops).await
    }

    async fn describe_cluster(&self) -> Result<ClusterDescription, AdminError> {
        self.describe_cluster_impl().await
    }

    async fn alter_partition_reassignments(
        &self,
        reassignments: &[PartitionReassignmentRequest],
    ) -> Result<(), AdminError> {
        self.alter_partition_reassignments_impl(reassignments).await
    }

    async fn list_partition_reassignments(&self) -> Result<Vec<OngoingReassignment>, AdminError> {
        self.list_partition_reassignments_impl().await
    }

    async fn unregister_broker(&self, id: i32) -> Result<(), AdminError> {
        self.unregister_broker_impl(id).await
    }

    async fn end_offsets(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>, AdminError> {
        self.end_offsets_impl(partitions).await
    }

    async fn committed_offsets(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>, AdminError> {
        self.committed_offsets_impl(group, partitions).await
    }
}

fn timeout_ms(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// Hands out one [`KafkaAdminClient`] per bootstrap address and keeps it, with its connections, for
/// later reconciles.
#[derive(Debug, Default)]
pub struct KafkaConnector {
    config: AdminConfig,
    /// std mutex: only held to look up or insert, never across an await.
    clients: Mutex<HashMap<String, Arc<KafkaAdminClient>>>,
}

impl KafkaConnector {
    /// A connector whose clients use `config`.
    #[must_use]
    pub fn new(config: AdminConfig) -> Self {
        Self {
            config,
            clients: Mutex::new(HashMap::new()),
        }
    }
}

impl AdminConnector for KafkaConnector {
    fn admin(&self, bootstrap: &str) -> Arc<dyn KafkaAdmin> {
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        clients
            .entry(bootstrap.to_owned())
            .or_insert_with(|| Arc::new(KafkaAdminClient::new(bootstrap, self.config.clone())))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_ids_print_like_kafka() {
        // Kafka's Uuid.toString of the all-zero id and of a known id.
        assert_eq!(topic_id_text(&uuid::Uuid::nil()), "AAAAAAAAAAAAAAAAAAAAAA");
        let id = uuid::Uuid::from_bytes([0xff; 16]);
        assert_eq!(topic_id_text(&id), "_____________________w");
    }

    #[test]
    fn bootstrap_lists_are_split_and_trimmed() {
        let c = KafkaAdminClient::new(" a:1, b:2 ,,", AdminConfig::default());
        assert_eq!(c.bootstrap, vec!["a:1".to_owned(), "b:2".to_owned()]);
    }
}
