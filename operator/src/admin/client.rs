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
    MetadataRequest, MetadataResponse, OffsetFetchRequest, TopicName,
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

use super::connection::Connection;
use super::{
    AdminConnector, AdminError, BrokerNode, ClusterDescription, ConfigOp, ConfigValue, KafkaAdmin,
    NewTopic, OngoingReassignment, PartitionDescription, PartitionReassignmentRequest,
    TopicDescription, TopicPartition, UNKNOWN_TOPIC_OR_PARTITION,
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

#[async_trait::async_trait]
impl KafkaAdmin for KafkaAdminClient {
    async fn describe_cluster(&self) -> Result<ClusterDescription, AdminError> {
        let response = self
            .send(None, |_| DescribeClusterRequest::default())
            .await?;
        if let Some(e) = AdminError::from_code(
            "DescribeCluster",
            "cluster",
            response.error_code,
            opt_text(response.error_message.as_ref()),
        ) {
            return Err(e);
        }
        let mut brokers: Vec<BrokerNode> = response
            .brokers
            .iter()
            .filter(|b| !b.is_fenced)
            .map(|b| BrokerNode {
                id: b.broker_id.0,
                host: text(&b.host),
                port: b.port,
                rack: opt_text(b.rack.as_ref()),
            })
            .collect();
        brokers.sort_by_key(|b| b.id);
        Ok(ClusterDescription {
            cluster_id: text(&response.cluster_id),
            controller_id: response.controller_id.0,
            brokers,
        })
    }

    async fn describe_topics(
        &self,
        names: Option<&[String]>,
    ) -> Result<Vec<TopicDescription>, AdminError> {
        let metadata = self.metadata(names).await?;
        let mut topics = Vec::new();
        for t in &metadata.topics {
            let name = t.name.as_ref().map(|n| text(&n.0)).unwrap_or_default();
            if t.error_code == UNKNOWN_TOPIC_OR_PARTITION {
                continue;
            }
            if let Some(e) = AdminError::from_code("Metadata", &name, t.error_code, None) {
                return Err(e);
            }
            let mut partitions: Vec<PartitionDescription> = t
                .partitions
                .iter()
                .map(|p| PartitionDescription {
                    partition: p.partition_index,
                    leader: (p.leader_id.0 >= 0).then_some(p.leader_id.0),
                    replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                    isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            topics.push(TopicDescription {
                name,
                topic_id: topic_id_text(&t.topic_id),
                is_internal: t.is_internal,
                partitions,
            });
        }
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    async fn create_topic(&self, topic: &NewTopic) -> Result<String, AdminError> {
        let creatable = CreatableTopic::default()
            .with_name(topic_name(&topic.name))
            .with_num_partitions(topic.partitions)
            .with_replication_factor(topic.replication_factor)
            .with_configs(
                topic
                    .configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k.clone()))
                            .with_value(Some(StrBytes::from_string(v.clone())))
                    })
                    .collect(),
            );
        let timeout = timeout_ms(self.config.request_timeout);
        let response = self
            .send(None, |_| {
                CreateTopicsRequest::default()
                    .with_topics(vec![creatable.clone()])
                    .with_timeout_ms(timeout)
            })
            .await?;
        let result = response
            .topics
            .iter()
            .find(|t| t.name.0.as_str() == topic.name)
            .ok_or_else(|| AdminError::Protocol {
                addr: self.bootstrap.join(","),
                api: "CreateTopics",
                message: format!("no result for topic {}", topic.name),
            })?;
        if let Some(e) = AdminError::from_code(
            "CreateTopics",
            &topic.name,
            result.error_code,
            opt_text(result.error_message.as_ref()),
        ) {
            return Err(e);
        }
        Ok(topic_id_text(&result.topic_id))
    }

    async fn create_partitions(&self, topic: &str, total: i32) -> Result<(), AdminError> {
        let timeout = timeout_ms(self.config.request_timeout);
        let response = self
            .send(None, |_| {
                CreatePartitionsRequest::default()
                    .with_topics(vec![
                        CreatePartitionsTopic::default()
                            .with_name(topic_name(topic))
                            .with_count(total),
                    ])
                    .with_timeout_ms(timeout)
            })
            .await?;
        for r in &response.results {
            if let Some(e) = AdminError::from_code(
                "CreatePartitions",
                topic,
                r.error_code,
                opt_text(r.error_message.as_ref()),
            ) {
                return Err(e);
            }
        }
        Ok(())
    }

    async fn delete_topic(&self, topic: &str) -> Result<(), AdminError> {
        let timeout = timeout_ms(self.config.request_timeout);
        let response = self
            .send(None, |version| {
                let request = DeleteTopicsRequest::default().with_timeout_ms(timeout);
                // v6 names topics in `topics` (name or id); older versions in `topic_names`.
                if version >= 6 {
                    request.with_topics(vec![
                        DeleteTopicState::default().with_name(Some(topic_name(topic))),
                    ])
                } else {
                    request.with_topic_names(vec![topic_name(topic)])
                }
            })
            .await?;
        for r in &response.responses {
            if let Some(e) = AdminError::from_code(
                "DeleteTopics",
                topic,
                r.error_code,
                opt_text(r.error_message.as_ref()),
            ) {
                return Err(e);
            }
        }
        Ok(())
    }

    async fn describe_topic_configs(
        &self,
        topic: &str,
    ) -> Result<BTreeMap<String, ConfigValue>, AdminError> {
        let response = self
            .send(None, |_| {
                DescribeConfigsRequest::default().with_resources(vec![
                    DescribeConfigsResource::default()
                        .with_resource_type(RESOURCE_TOPIC)
                        .with_resource_name(StrBytes::from_string(topic.to_owned()))
                        .with_configuration_keys(None),
                ])
            })
            .await?;
        let mut configs = BTreeMap::new();
        for r in &response.results {
            if let Some(e) = AdminError::from_code(
                "DescribeConfigs",
                topic,
                r.error_code,
                opt_text(r.error_message.as_ref()),
            ) {
                return Err(e);
            }
            for c in &r.configs {
                configs.insert(
                    text(&c.name),
                    ConfigValue {
                        value: opt_text(c.value.as_ref()),
                        is_topic_override: c.config_source == SOURCE_DYNAMIC_TOPIC_CONFIG,
                    },
                );
            }
        }
        Ok(configs)
    }

    async fn alter_topic_configs(&self, topic: &str, ops: &[ConfigOp]) -> Result<(), AdminError> {
        if ops.is_empty() {
            return Ok(());
        }
        let configs: Vec<AlterableConfig> = ops
            .iter()
            .map(|op| match op {
                ConfigOp::Set { name, value } => AlterableConfig::default()
                    .with_name(StrBytes::from_string(name.clone()))
                    .with_config_operation(OP_SET)
                    .with_value(Some(StrBytes::from_string(value.clone()))),
                ConfigOp::Delete { name } => AlterableConfig::default()
                    .with_name(StrBytes::from_string(name.clone()))
                    .with_config_operation(OP_DELETE)
                    .with_value(None),
            })
            .collect();
        let response = self
            .send(None, |_| {
                IncrementalAlterConfigsRequest::default().with_resources(vec![
                    AlterConfigsResource::default()
                        .with_resource_type(RESOURCE_TOPIC)
                        .with_resource_name(StrBytes::from_string(topic.to_owned()))
                        .with_configs(configs.clone()),
                ])
            })
            .await?;
        for r in &response.responses {
            if let Some(e) = AdminError::from_code(
                "IncrementalAlterConfigs",
                topic,
                r.error_code,
                opt_text(r.error_message.as_ref()),
            ) {
                return Err(e);
            }
        }
        Ok(())
    }

    async fn alter_partition_reassignments(
        &self,
        reassignments: &[PartitionReassignmentRequest],
    ) -> Result<(), AdminError> {
        let mut by_topic: BTreeMap<&str, Vec<ReassignablePartition>> = BTreeMap::new();
        for r in reassignments {
            by_topic.entry(&r.topic).or_default().push(
                ReassignablePartition::default()
                    .with_partition_index(r.partition)
                    .with_replicas(
                        r.replicas
                            .as_ref()
                            .map(|rs| rs.iter().copied().map(BrokerId).collect()),
                    ),
            );
        }
        let topics: Vec<ReassignableTopic> = by_topic
            .into_iter()
            .map(|(name, partitions)| {
                ReassignableTopic::default()
                    .with_name(topic_name(name))
                    .with_partitions(partitions)
            })
            .collect();
        let timeout = timeout_ms(self.config.request_timeout);
        let response = self
            .send(None, |_| {
                AlterPartitionReassignmentsRequest::default()
                    .with_timeout_ms(timeout)
                    .with_topics(topics.clone())
            })
            .await?;
        if let Some(e) = AdminError::from_code(
            "AlterPartitionReassignments",
            "cluster",
            response.error_code,
            opt_text(response.error_message.as_ref()),
        ) {
            return Err(e);
        }
        for t in &response.responses {
            for p in &t.partitions {
                let resource = format!("{}-{}", t.name.0.as_str(), p.partition_index);
                if let Some(e) = AdminError::from_code(
                    "AlterPartitionReassignments",
                    resource,
                    p.error_code,
                    opt_text(p.error_message.as_ref()),
                ) {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    async fn list_partition_reassignments(&self) -> Result<Vec<OngoingReassignment>, AdminError> {
        let timeout = timeout_ms(self.config.request_timeout);
        let response = self
            .send(None, |_| {
                ListPartitionReassignmentsRequest::default()
                    .with_timeout_ms(timeout)
                    .with_topics(None)
            })
            .await?;
        if let Some(e) = AdminError::from_code(
            "ListPartitionReassignments",
            "cluster",
            response.error_code,
            opt_text(response.error_message.as_ref()),
        ) {
            return Err(e);
        }
        let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
        let mut ongoing: Vec<OngoingReassignment> = response
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(move |p| OngoingReassignment {
                    topic: text(&t.name.0),
                    partition: p.partition_index,
                    replicas: ids(&p.replicas),
                    adding: ids(&p.adding_replicas),
                    removing: ids(&p.removing_replicas),
                })
            })
            .collect();
        ongoing.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(ongoing)
    }

    async fn end_offsets(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>, AdminError> {
        if partitions.is_empty() {
            return Ok(BTreeMap::new());
        }
        let mut names: Vec<String> = partitions.iter().map(|p| p.topic.clone()).collect();
        names.sort();
        names.dedup();
        let metadata = self.metadata(Some(&names)).await?;
        let addrs = Self::broker_addrs(&metadata);
        let mut leaders: HashMap<(String, i32), i32> = HashMap::new();
        for t in &metadata.topics {
            let name = t.name.as_ref().map(|n| text(&n.0)).unwrap_or_default();
            for p in &t.partitions {
                leaders.insert((name.clone(), p.partition_index), p.leader_id.0);
            }
        }
        // Group by leader so each broker gets one request.
        let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
        for tp in partitions {
            let leader = leaders
                .get(&(tp.topic.clone(), tp.partition))
                .copied()
                .filter(|l| *l >= 0)
                .ok_or_else(|| {
                    AdminError::from_code(
                        "ListOffsets",
                        format!("{}-{}", tp.topic, tp.partition),
                        UNKNOWN_TOPIC_OR_PARTITION,
                        Some("partition has no leader".to_owned()),
                    )
                    .unwrap_or(AdminError::Protocol {
                        addr: String::new(),
                        api: "ListOffsets",
                        message: "partition has no leader".to_owned(),
                    })
                })?;
            by_leader
                .entry(leader)
                .or_default()
                .entry(tp.topic.clone())
                .or_default()
                .push(tp.partition);
        }
        let mut offsets = BTreeMap::new();
        for (leader, topics) in by_leader {
            let addr = addrs.get(&leader).cloned();
            let request_topics: Vec<ListOffsetsTopic> = topics
                .iter()
                .map(|(name, ps)| {
                    ListOffsetsTopic::default()
                        .with_name(topic_name(name))
                        .with_partitions(
                            ps.iter()
                                .map(|p| {
                                    ListOffsetsPartition::default()
                                        .with_partition_index(*p)
                                        .with_current_leader_epoch(-1)
                                        .with_timestamp(LATEST_TIMESTAMP)
                                })
                                .collect(),
                        )
                })
                .collect();
            let response = self
                .send(addr.as_deref(), |_| {
                    ListOffsetsRequest::default()
                        .with_replica_id(BrokerId(-1))
                        .with_isolation_level(0)
                        .with_topics(request_topics.clone())
                })
                .await?;
            for t in &response.topics {
                for p in &t.partitions {
                    let tp = TopicPartition {
                        topic: text(&t.name.0),
                        partition: p.partition_index,
                    };
                    if let Some(e) = AdminError::from_code(
                        "ListOffsets",
                        format!("{}-{}", tp.topic, tp.partition),
                        p.error_code,
                        None,
                    ) {
                        return Err(e);
                    }
                    offsets.insert(tp, p.offset);
                }
            }
        }
        Ok(offsets)
    }

    async fn committed_offsets(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>, AdminError> {
        let coordinator = self
            .send(None, |version| {
                let request = FindCoordinatorRequest::default().with_key_type(0);
                if version >= 4 {
                    request.with_coordinator_keys(vec![StrBytes::from_string(group.to_owned())])
                } else {
                    request.with_key(StrBytes::from_string(group.to_owned()))
                }
            })
            .await?;
        let (code, message, host, port) = match coordinator.coordinators.first() {
            Some(c) => (c.error_code, c.error_message.as_ref(), &c.host, c.port),
            None => (
                coordinator.error_code,
                coordinator.error_message.as_ref(),
                &coordinator.host,
                coordinator.port,
            ),
        };
        if let Some(e) = AdminError::from_code("FindCoordinator", group, code, opt_text(message)) {
            return Err(e);
        }
        let addr = format!("{}:{port}", host.as_str());

        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for tp in partitions {
            by_topic.entry(&tp.topic).or_default().push(tp.partition);
        }
        let response = self
            .send(Some(&addr), |version| {
                let group_id = GroupId(StrBytes::from_string(group.to_owned()));
                // v8+ batch groups; older versions name one group at the top level.
                if version >= 8 {
                    OffsetFetchRequest::default().with_groups(vec![
                        OffsetFetchRequestGroup::default()
                            .with_group_id(group_id)
                            .with_topics(Some(
                                by_topic
                                    .iter()
                                    .map(|(t, ps)| {
                                        OffsetFetchRequestTopics::default()
                                            .with_name(topic_name(t))
                                            .with_partition_indexes(ps.clone())
                                    })
                                    .collect(),
                            )),
                    ])
                } else {
                    OffsetFetchRequest::default()
                        .with_group_id(group_id)
                        .with_topics(Some(
                            by_topic
                                .iter()
                                .map(|(t, ps)| {
                                    OffsetFetchRequestTopic::default()
                                        .with_name(topic_name(t))
                                        .with_partition_indexes(ps.clone())
                                })
                                .collect(),
                        ))
                }
            })
            .await?;
        let mut offsets = BTreeMap::new();
        let mut record = |topic: &str, partition: i32, offset: i64, code: i16| {
            if let Some(e) =
                AdminError::from_code("OffsetFetch", format!("{topic}-{partition}"), code, None)
            {
                return Err(e);
            }
            // -1: the group has no committed offset for this partition.
            if offset >= 0 {
                offsets.insert(
                    TopicPartition {
                        topic: topic.to_owned(),
                        partition,
                    },
                    offset,
                );
            }
            Ok(())
        };
        if let Some(e) = AdminError::from_code("OffsetFetch", group, response.error_code, None) {
            return Err(e);
        }
        for g in &response.groups {
            if let Some(e) = AdminError::from_code("OffsetFetch", group, g.error_code, None) {
                return Err(e);
            }
            for t in &g.topics {
                for p in &t.partitions {
                    record(
                        t.name.0.as_str(),
                        p.partition_index,
                        p.committed_offset,
                        p.error_code,
                    )?;
                }
            }
        }
        for t in &response.topics {
            for p in &t.partitions {
                record(
                    t.name.0.as_str(),
                    p.partition_index,
                    p.committed_offset,
                    p.error_code,
                )?;
            }
        }
        Ok(offsets)
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
