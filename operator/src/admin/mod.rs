//! The operator's Kafka admin client: the only way the operator talks to a cluster.
//!
//! [`KafkaAdmin`] is the contract the reconcilers use; [`KafkaAdminClient`] implements it over tokio TCP
//! with the `kafka-protocol` crate's messages, and tests use an in-memory fake. [`AdminConnector`] hands
//! out an admin per cluster (bootstrap address), so reconcilers never build clients themselves.

mod client;
mod connection;
mod error;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use client::{AdminConfig, KafkaAdminClient, KafkaConnector};
pub use error::{
    AdminError, BROKER_ID_NOT_REGISTERED, INVALID_PARTITIONS, INVALID_REPLICATION_FACTOR,
    TOPIC_ALREADY_EXISTS, UNKNOWN_TOPIC_ID, UNKNOWN_TOPIC_OR_PARTITION,
};

/// A registered broker, as DescribeCluster reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerNode {
    /// Kafka node id.
    pub id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
    /// Rack, when the broker has one.
    pub rack: Option<String>,
}

/// The cluster as DescribeCluster reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterDescription {
    /// The cluster id.
    pub cluster_id: String,
    /// The active controller's node id (-1 when unknown).
    pub controller_id: i32,
    /// Every registered, unfenced broker.
    pub brokers: Vec<BrokerNode>,
    /// Registered brokers that are fenced (not heartbeating: stopped, or removed by a scale-down),
    /// as DescribeCluster v2 reports them; empty from brokers that only speak older versions.
    pub fenced: Vec<i32>,
}

/// One partition as Metadata reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionDescription {
    /// Partition index.
    pub partition: i32,
    /// Current leader, `None` when the partition has none.
    pub leader: Option<i32>,
    /// Replica list; the first is the preferred leader.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
}

/// One topic as Metadata reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    /// Topic name.
    pub name: String,
    /// Topic id (UUID text).
    pub topic_id: String,
    /// Whether Kafka marks it internal (e.g. `__consumer_offsets`).
    pub is_internal: bool,
    /// Partitions, sorted by index.
    pub partitions: Vec<PartitionDescription>,
}

impl TopicDescription {
    /// Replication factor: the size of the first partition's replica list (0 without partitions).
    #[must_use]
    pub fn replication_factor(&self) -> usize {
        self.partitions.first().map_or(0, |p| p.replicas.len())
    }
}

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// Topic name.
    pub name: String,
    /// Partition count.
    pub partitions: i32,
    /// Replication factor.
    pub replication_factor: i16,
    /// Topic configs by Kafka name.
    pub configs: BTreeMap<String, String>,
}

/// A topic config value as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigValue {
    /// The value (`None` for sensitive or unset values).
    pub value: Option<String>,
    /// Whether the value is set on the topic itself (source `DYNAMIC_TOPIC_CONFIG`), rather than
    /// inherited from broker defaults.
    pub is_topic_override: bool,
}

/// One change of IncrementalAlterConfigs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConfigOp {
    /// Set a config on the topic.
    Set {
        /// Config name.
        name: String,
        /// New value.
        value: String,
    },
    /// Remove a topic override, reverting to the broker default.
    Delete {
        /// Config name.
        name: String,
    },
}

/// A topic partition, ordered by topic then partition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
}

/// A requested reassignment of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionReassignmentRequest {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// Target replica list (first = preferred leader); `None` cancels an ongoing reassignment.
    pub replicas: Option<Vec<i32>>,
}

/// A reassignment in flight, as ListPartitionReassignments reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OngoingReassignment {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// Current replica set (old and new while moving).
    pub replicas: Vec<i32>,
    /// Replicas being added.
    pub adding: Vec<i32>,
    /// Replicas being removed.
    pub removing: Vec<i32>,
}

/// The admin operations the controllers need from a Kafka cluster.
///
/// Contract: each call is one logical request; it is idempotent where Kafka's API is (describe, list,
/// alter configs, reassign to the same target), and not where Kafka's is not (create answers
/// `TOPIC_ALREADY_EXISTS`, delete answers `UNKNOWN_TOPIC_OR_PARTITION` the second time: callers treat
/// those codes as success when they mean it). Calls are cancel safe in the sense that dropping a future
/// drops its connection; the next call reconnects.
#[async_trait::async_trait]
pub trait KafkaAdmin: Send + Sync {
    /// The brokers of the cluster (DescribeCluster).
    async fn describe_cluster(&self) -> Result<ClusterDescription, AdminError>;

    /// Topics by name (Metadata); `None` lists every topic. Topics that do not exist are left out.
    async fn describe_topics(
        &self,
        names: Option<&[String]>,
    ) -> Result<Vec<TopicDescription>, AdminError>;

    /// Creates a topic and returns its id (CreateTopics).
    async fn create_topic(&self, topic: &NewTopic) -> Result<String, AdminError>;

    /// Raises a topic's partition count to `total` (CreatePartitions).
    async fn create_partitions(&self, topic: &str, total: i32) -> Result<(), AdminError>;

    /// Deletes a topic (DeleteTopics).
    async fn delete_topic(&self, topic: &str) -> Result<(), AdminError>;

    /// A topic's configs by name (DescribeConfigs).
    async fn describe_topic_configs(
        &self,
        topic: &str,
    ) -> Result<BTreeMap<String, ConfigValue>, AdminError>;

    /// Changes a topic's configs (IncrementalAlterConfigs); configs not named are untouched.
    async fn alter_topic_configs(&self, topic: &str, ops: &[ConfigOp]) -> Result<(), AdminError>;

    /// Starts (or cancels) partition reassignments (AlterPartitionReassignments).
    async fn alter_partition_reassignments(
        &self,
        reassignments: &[PartitionReassignmentRequest],
    ) -> Result<(), AdminError>;

    /// Reassignments in flight (ListPartitionReassignments).
    async fn list_partition_reassignments(&self) -> Result<Vec<OngoingReassignment>, AdminError>;

    /// Removes a broker that left the cluster for good from its metadata (UnregisterBroker). A broker
    /// that is not registered answers `BROKER_ID_NOT_REGISTERED`: callers treat that as done.
    async fn unregister_broker(&self, id: i32) -> Result<(), AdminError>;

    /// Log end offsets of partitions (ListOffsets with timestamp -1, sent to each partition's leader).
    async fn end_offsets(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>, AdminError>;

    /// A consumer group's committed offsets (OffsetFetch at the group coordinator). Partitions
    /// without a committed offset are left out.
    async fn committed_offsets(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>, AdminError>;
}

/// Hands out the admin client of a cluster by its bootstrap address.
pub trait AdminConnector: Send + Sync {
    /// The admin of the cluster reachable at `bootstrap` (`host:port`, comma-separated for several).
    fn admin(&self, bootstrap: &str) -> Arc<dyn KafkaAdmin>;
}

#[cfg(test)]
pub(crate) mod fake;
