//! Topic administration shared by CreateTopics, DeleteTopics, CreatePartitions, the config APIs and
//! auto-creation: validate, commit a metadata record, then open or remove the partitions.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, Weak};

use kafka_protocol::ResponseError;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Broker;
use super::placement::{place, random_start};
use crate::cluster::{MetadataRecord, PartitionInfo, TopicInfo, validate_topic_name};
use crate::group::PartitionLookup;

/// A topic to create.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub name: String,
    /// -1: the broker default.
    pub partitions: i32,
    /// -1: the broker default (1 while the cluster has one broker).
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
    /// Replica broker ids per partition, when the client chose them (CreateTopics assignments).
    pub assignments: Option<Vec<Vec<i32>>>,
}

/// Why a topic operation was refused; each maps to one Kafka error code.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("topic '{0}' already exists")]
    AlreadyExists(String),
    #[error("{0}")]
    InvalidName(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("topic '{0}' does not exist")]
    Unknown(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    Internal(String),
    /// The metadata quorum did not answer in time (no leader, no majority): retriable.
    #[error("{0}")]
    Unavailable(String),
}

impl TopicError {
    pub fn code(&self) -> i16 {
        match self {
            TopicError::AlreadyExists(_) => ResponseError::TopicAlreadyExists,
            TopicError::InvalidName(_) => ResponseError::InvalidTopicException,
            TopicError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
            TopicError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
            TopicError::InvalidConfig(_) => ResponseError::InvalidConfig,
            TopicError::Unknown(_) => ResponseError::UnknownTopicOrPartition,
            TopicError::InvalidRequest(_) => ResponseError::InvalidRequest,
            TopicError::Internal(_) => ResponseError::UnknownServerError,
            TopicError::Unavailable(_) => ResponseError::RequestTimedOut,
        }
        .code()
    }
}

fn internal(e: impl std::fmt::Display) -> TopicError {
    TopicError::Internal(e.to_string())
}

/// A metadata commit's failure: a quorum that did not answer is retriable (Kafka answers
/// REQUEST_TIMED_OUT when its controller does not), anything else is a server error.
fn metadata_error(e: crate::cluster::MetadataError) -> TopicError {
    match e {
        crate::cluster::MetadataError::Unavailable(m) => {
            TopicError::Unavailable(format!("cluster metadata unavailable: {m}"))
        }
        other => internal(other),
    }
}

impl Broker {
    /// Validates and (unless `validate_only`) creates a topic.
    pub async fn create_topic(
        &self,
        spec: TopicSpec,
        validate_only: bool,
    ) -> Result<TopicInfo, TopicError> {
        self.create_topic_with(spec, validate_only, false).await
    }

    /// Creates a topic a client asked Metadata for (`auto.create.topics.enable`): the default
    /// replication factor is capped at the live brokers, so a small cluster still gets the topic.
    pub async fn auto_create_topic(&self, spec: TopicSpec) -> Result<TopicInfo, TopicError> {
        self.create_topic_with(spec, false, true).await
    }

    async fn create_topic_with(
        &self,
        spec: TopicSpec,
        validate_only: bool,
        cap_default_replication_factor: bool,
    ) -> Result<TopicInfo, TopicError> {
        validate_topic_name(&spec.name).map_err(TopicError::InvalidName)?;
        if let Some(assignments) = &spec.assignments {
            return self
                .create_topic_assigned(&spec, assignments.clone(), validate_only)
                .await;
        }
        let partitions = if spec.partitions == -1 {
            self.config.default_partitions
        } else {
            spec.partitions
        };
        if partitions < 1 {
            return Err(TopicError::InvalidPartitions(format!(
                "number of partitions must be at least 1, got {partitions}"
            )));
        }
        if partitions > 100_000 {
            return Err(TopicError::InvalidPartitions(format!(
                "{partitions} partitions is more than the limit of 100000"
            )));
        }
        let brokers = self.live_brokers();
        let rf = if spec.replication_factor == -1 {
            // Kafka's default.replication.factor; for auto-created topics capped at the live
            // brokers, so that producing to a new topic works on a small cluster.
            let default = self.config.replication.default_replication_factor;
            if cap_default_replication_factor {
                default.min(i16::try_from(brokers.len()).unwrap_or(i16::MAX).max(1))
            } else {
                default
            }
        } else {
            spec.replication_factor
        };
        if rf < 1 || rf as usize > brokers.len() {
            return Err(TopicError::InvalidReplicationFactor(format!(
                "replication factor {rf} is not between 1 and the {} available brokers",
                brokers.len()
            )));
        }
        self.replicas
            .log_config(&spec.configs)
            .map_err(|e| TopicError::InvalidConfig(e.to_string()))?;
        if self.metadata.read().topic(&spec.name).is_some() {
            return Err(TopicError::AlreadyExists(spec.name));
        }
        let topic = TopicInfo {
            name: spec.name.clone(),
            id: Uuid::new_v4(),
            partitions: place(&brokers, 0..partitions, rf as usize, random_start()),
            configs: spec.configs,
        };
        self.commit_topic(topic, validate_only).await
    }

    async fn create_topic_assigned(
        &self,
        spec: &TopicSpec,
        assignments: Vec<Vec<i32>>,
        validate_only: bool,
    ) -> Result<TopicInfo, TopicError> {
        if spec.partitions != -1 || spec.replication_factor != -1 {
            return Err(TopicError::InvalidRequest(
                "both numPartitions or replicationFactor and replicasAssignments were set; both cannot be used at the same time".into(),
            ));
        }
        let rf = assignments.first().map_or(0, Vec::len);
        let brokers = self.metadata.read().brokers.clone();
        for (i, replicas) in assignments.iter().enumerate() {
            if replicas.is_empty() || replicas.len() != rf {
                return Err(TopicError::InvalidReplicationFactor(format!(
                    "partition {i} has {} replicas; every partition needs the same non-zero count",
                    replicas.len()
                )));
            }
            let mut seen = replicas.clone();
            seen.sort_unstable();
            seen.dedup();
            if seen.len() != replicas.len() {
                return Err(TopicError::InvalidRequest(format!(
                    "partition {i} lists a broker twice: {replicas:?}"
                )));
            }
            if let Some(b) = replicas.iter().find(|b| !brokers.contains_key(b)) {
                return Err(TopicError::InvalidRequest(format!(
                    "partition {i} names broker {b}, which is not registered"
                )));
            }
        }
        if assignments.is_empty() {
            return Err(TopicError::InvalidPartitions(
                "replica assignment lists no partitions".into(),
            ));
        }
        self.replicas
            .log_config(&spec.configs)
            .map_err(|e| TopicError::InvalidConfig(e.to_string()))?;
        let topic = TopicInfo {
            name: spec.name.clone(),
            id: Uuid::new_v4(),
            partitions: assignments
                .into_iter()
                .enumerate()
                .map(|(i, replicas)| PartitionInfo::new(i as i32, replicas))
                .collect(),
            configs: spec.configs.clone(),
        };
        self.commit_topic(topic, validate_only).await
    }

    async fn commit_topic(
        &self,
        topic: TopicInfo,
        validate_only: bool,
    ) -> Result<TopicInfo, TopicError> {
        let _admin = self.admin.lock().await;
        if self.metadata.read().topic(&topic.name).is_some() {
            return Err(TopicError::AlreadyExists(topic.name));
        }
        if validate_only {
            return Ok(topic);
        }
        self.metadata
            .commit(vec![MetadataRecord::CreateTopic(topic.clone())])
            .await
            .map_err(metadata_error)?;
        // The topic is usable when this returns: open its partitions here rather than waiting
        // for the reactor to notice the change.
        self.reconcile_replicas()?;
        tracing::info!(topic = %topic.name, partitions = topic.partitions.len(), replication_factor = topic.replication_factor(), "created topic");
        Ok(topic)
    }

    /// Deletes a topic, its partitions' files and its committed offsets.
    pub async fn delete_topic(&self, name: &str) -> Result<Uuid, TopicError> {
        let id = {
            let _admin = self.admin.lock().await;
            let Some(topic) = self.metadata.read().topic(name).cloned() else {
                return Err(TopicError::Unknown(name.to_owned()));
            };
            if name == super::OFFSETS_TOPIC {
                return Err(TopicError::InvalidRequest(format!(
                    "the internal topic {name} cannot be deleted"
                )));
            }
            self.metadata
                .commit(vec![MetadataRecord::DeleteTopic {
                    name: name.to_owned(),
                }])
                .await
                .map_err(metadata_error)?;
            self.reconcile_replicas()?;
            topic.id
        };
        self.groups.topic_deleted(name).await;
        tracing::info!(topic = name, "deleted topic");
        Ok(id)
    }

    /// Raises a topic's partition count to `count`.
    pub async fn create_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let _admin = self.admin.lock().await;
        let Some(topic) = self.metadata.read().topic(name).cloned() else {
            return Err(TopicError::Unknown(name.to_owned()));
        };
        let current = topic.partitions.len() as i32;
        if count <= current {
            return Err(TopicError::InvalidPartitions(format!(
                "topic currently has {current} partitions, which is higher than or equal to the requested {count}"
            )));
        }
        if count > 100_000 {
            return Err(TopicError::InvalidPartitions(format!(
                "{count} partitions is more than the limit of 100000"
            )));
        }
        let brokers = self.live_brokers();
        let rf = topic.replication_factor().max(1);
        if rf > brokers.len() {
            return Err(TopicError::InvalidReplicationFactor(format!(
                "replication factor {rf} is larger than the {} live brokers",
                brokers.len()
            )));
        }
        let new = place(&brokers, current..count, rf, random_start());
        if validate_only {
            return Ok(());
        }
        self.replicas
            .log_config(&topic.configs)
            .map_err(|e| TopicError::InvalidConfig(e.to_string()))?;
        self.metadata
            .commit(vec![MetadataRecord::CreatePartitions {
                name: name.to_owned(),
                partitions: new.clone(),
            }])
            .await
            .map_err(metadata_error)?;
        self.reconcile_replicas()?;
        tracing::info!(topic = name, from = current, to = count, "added partitions");
        Ok(())
    }

    /// Sets (`Some`) or resets (`None`) topic configs after validating the resulting set.
    pub async fn alter_topic_configs(
        &self,
        name: &str,
        changes: BTreeMap<String, Option<String>>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let _admin = self.admin.lock().await;
        let Some(topic) = self.metadata.read().topic(name).cloned() else {
            return Err(TopicError::Unknown(name.to_owned()));
        };
        let mut next = topic.configs.clone();
        for (k, v) in &changes {
            match v {
                Some(v) => next.insert(k.clone(), v.clone()),
                None => next.remove(k),
            };
        }
        let log_config = self
            .replicas
            .log_config(&next)
            .map_err(|e| TopicError::InvalidConfig(e.to_string()))?;
        if validate_only {
            return Ok(());
        }
        self.metadata
            .commit(vec![MetadataRecord::AlterTopicConfigs {
                name: name.to_owned(),
                configs: changes,
            }])
            .await
            .map_err(metadata_error)?;
        self.replicas.update_topic_config(name, &log_config);
        Ok(())
    }
}

impl Broker {
    /// Opens, closes and re-roles hosted partitions after a metadata commit of this broker's own.
    fn reconcile_replicas(&self) -> Result<(), TopicError> {
        crate::replica::reconcile(&self.metadata, &self.replicas, self.config.node_id)
            .map(|_| ())
            .map_err(internal)
    }

    /// Registered, unfenced brokers with their racks, by id.
    fn live_brokers(&self) -> Vec<(i32, Option<String>)> {
        self.metadata
            .read()
            .live_brokers()
            .map(|b| (b.id, b.rack.clone()))
            .collect()
    }
}

/// Whether partitions exist, for the group coordinator. Holds the broker weakly: the broker owns
/// the coordinator, which owns this.
#[derive(Debug, Default)]
pub(super) struct PartitionLookupImpl {
    broker: OnceLock<Weak<Broker>>,
}

impl PartitionLookupImpl {
    pub(super) fn set(&self, broker: &Arc<Broker>) {
        let _ = self.broker.set(Arc::downgrade(broker));
    }
}

impl PartitionLookup for PartitionLookupImpl {
    fn partition_exists(&self, topic: &str, partition: i32) -> bool {
        self.broker
            .get()
            .and_then(Weak::upgrade)
            .is_some_and(|b| b.metadata.read().partition(topic, partition).is_some())
    }
}

/// Retention and compaction over every partition, every `retention_check_interval`; and the
/// time-based flush (`flush.ms`) of partitions that set it, checked every [`FLUSH_TICK`].
pub(super) async fn maintenance(broker: Arc<Broker>, shutdown: CancellationToken) {
    let mut retention = tokio::time::interval(broker.config.retention_check_interval);
    retention.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut flush = tokio::time::interval(FLUSH_TICK);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let b = broker.clone();
        // File work runs off the async workers.
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = retention.tick() => {
                let _ = tokio::task::spawn_blocking(move || run_maintenance(&b)).await;
            }
            _ = flush.tick() => {
                let _ = tokio::task::spawn_blocking(move || run_timed_flushes(&b)).await;
            }
        }
    }
}

/// How often partitions with `flush.ms` are checked: the granularity of that setting.
const FLUSH_TICK: std::time::Duration = std::time::Duration::from_millis(50);

fn run_timed_flushes(broker: &Broker) {
    for p in broker.replicas.all() {
        if p.log().config().flush_ms >= i64::MAX as u64 {
            continue;
        }
        if let Err(e) = p.log().flush_if_due() {
            tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "timed flush failed");
        }
    }
}

fn run_maintenance(broker: &Broker) {
    let now = now_ms();
    for p in broker.replicas.all() {
        if let Err(e) = p.log().apply_retention(now) {
            tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "retention failed");
        }
        if let Err(e) = p.log().compact(now) {
            tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "compaction failed");
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod replication_factor_tests {
    use super::{TopicError, TopicSpec};
    use crate::BrokerConfig;
    use crate::server::Broker;

    fn spec(name: &str) -> TopicSpec {
        TopicSpec {
            name: name.into(),
            partitions: -1,
            replication_factor: -1,
            configs: Default::default(),
            assignments: None,
        }
    }

    #[tokio::test]
    async fn the_default_replication_factor_is_capped_only_for_auto_created_topics() {
        let dir = tempfile::tempdir().unwrap();
        let any = "127.0.0.1:0".parse().unwrap();
        let mut config = BrokerConfig::local(dir.path().to_owned(), any, any);
        config.replication.default_replication_factor = 3;
        let broker = Broker::open(config).await.unwrap();
        assert!(matches!(
            broker.create_topic(spec("explicit"), false).await,
            Err(TopicError::InvalidReplicationFactor(_))
        ));
        let t = broker.auto_create_topic(spec("implicit")).await.unwrap();
        assert_eq!(t.replication_factor(), 1);
        // Usable at once: the partition is open and led here.
        assert!(
            broker
                .replicas
                .get("implicit", 0)
                .is_some_and(|p| p.is_leader())
        );
    }
}

#[cfg(test)]
mod error_tests {
    use super::*;

    #[test]
    fn an_unanswering_quorum_is_retriable_and_other_metadata_failures_are_not() {
        let e = metadata_error(crate::cluster::MetadataError::Unavailable(
            "no leader".into(),
        ));
        assert_eq!(e.code(), ResponseError::RequestTimedOut.code());
        assert!(e.to_string().contains("no leader"), "{e}");
        let e = metadata_error(crate::cluster::MetadataError::Raft("log corrupt".into()));
        assert_eq!(e.code(), ResponseError::UnknownServerError.code());
    }
}
