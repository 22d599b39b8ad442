//! An in-memory Kafka cluster behind [`KafkaAdmin`], for reconciler tests: it keeps topics, configs,
//! reassignments and offsets, records every mutating call, and can be told to fail.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::{
    AdminConnector, AdminError, BrokerNode, ClusterDescription, ConfigOp, ConfigValue, KafkaAdmin,
    NewTopic, OngoingReassignment, PartitionDescription, PartitionReassignmentRequest,
    TOPIC_ALREADY_EXISTS, TopicDescription, TopicPartition, UNKNOWN_TOPIC_OR_PARTITION,
};

/// State of the fake cluster. Public fields so tests can arrange and inspect it.
#[derive(Debug, Default)]
pub(crate) struct FakeState {
    pub(crate) brokers: Vec<BrokerNode>,
    /// Registered but fenced broker ids.
    pub(crate) fenced: Vec<i32>,
    pub(crate) topics: BTreeMap<String, TopicDescription>,
    pub(crate) configs: BTreeMap<String, BTreeMap<String, String>>,
    pub(crate) ongoing: Vec<OngoingReassignment>,
    pub(crate) end_offsets: BTreeMap<TopicPartition, i64>,
    pub(crate) committed: BTreeMap<(String, TopicPartition), i64>,
    /// Every mutating call, as text, in order.
    pub(crate) calls: Vec<String>,
    /// When set, every call fails with a connection error (the cluster is unreachable).
    pub(crate) unreachable: bool,
}

/// The fake admin; clones share one state.
#[derive(Debug, Clone, Default)]
pub(crate) struct FakeAdmin {
    pub(crate) state: Arc<Mutex<FakeState>>,
}

impl FakeAdmin {
    /// A cluster of brokers `0..n` without racks.
    pub(crate) fn with_brokers(n: i32) -> Self {
        let fake = Self::default();
        fake.lock().brokers = (0..n)
            .map(|id| BrokerNode {
                id,
                host: format!("b{id}"),
                port: 9092,
                rack: None,
            })
            .collect();
        fake
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a topic with round-robin replicas over the brokers.
    pub(crate) fn add_topic(&self, name: &str, partitions: i32, rf: usize) {
        let mut s = self.lock();
        let ids: Vec<i32> = s.brokers.iter().map(|b| b.id).collect();
        let partitions = (0..partitions)
            .map(|p| {
                let replicas: Vec<i32> = (0..rf)
                    .map(|r| ids[(p as usize + r) % ids.len().max(1)])
                    .collect();
                PartitionDescription {
                    partition: p,
                    leader: replicas.first().copied(),
                    isr: replicas.clone(),
                    replicas,
                }
            })
            .collect();
        s.topics.insert(
            name.to_owned(),
            TopicDescription {
                name: name.to_owned(),
                topic_id: format!("id-{name}"),
                is_internal: false,
                partitions,
            },
        );
    }

    pub(crate) fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    fn check(&self) -> Result<std::sync::MutexGuard<'_, FakeState>, AdminError> {
        let s = self.lock();
        if s.unreachable {
            return Err(AdminError::Connect {
                addr: "fake:9092".into(),
                source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
            });
        }
        Ok(s)
    }
}

fn kafka(api: &'static str, resource: &str, code: i16) -> AdminError {
    AdminError::from_code(api, resource, code, None).unwrap_or(AdminError::Protocol {
        addr: "fake".into(),
        api,
        message: "code 0".into(),
    })
}

#[async_trait::async_trait]
impl KafkaAdmin for FakeAdmin {
    async fn describe_cluster(&self) -> Result<ClusterDescription, AdminError> {
        let s = self.check()?;
        Ok(ClusterDescription {
            cluster_id: "fake".into(),
            controller_id: 0,
            brokers: s.brokers.clone(),
            fenced: s.fenced.clone(),
        })
    }

    async fn describe_topics(
        &self,
        names: Option<&[String]>,
    ) -> Result<Vec<TopicDescription>, AdminError> {
        let s = self.check()?;
        Ok(s.topics
            .values()
            .filter(|t| names.is_none_or(|n| n.contains(&t.name)))
            .cloned()
            .collect())
    }

    async fn create_topic(&self, topic: &NewTopic) -> Result<String, AdminError> {
        {
            let mut s = self.check()?;
            s.calls.push(format!(
                "create {} partitions={} rf={} configs={:?}",
                topic.name, topic.partitions, topic.replication_factor, topic.configs
            ));
            if s.topics.contains_key(&topic.name) {
                return Err(kafka("CreateTopics", &topic.name, TOPIC_ALREADY_EXISTS));
            }
            s.configs.insert(topic.name.clone(), topic.configs.clone());
        }
        self.add_topic(
            &topic.name,
            topic.partitions,
            usize::try_from(topic.replication_factor).unwrap_or(1),
        );
        Ok(format!("id-{}", topic.name))
    }

    async fn create_partitions(&self, topic: &str, total: i32) -> Result<(), AdminError> {
        let mut s = self.check()?;
        s.calls
            .push(format!("create_partitions {topic} total={total}"));
        let t = s
            .topics
            .get_mut(topic)
            .ok_or_else(|| kafka("CreatePartitions", topic, UNKNOWN_TOPIC_OR_PARTITION))?;
        let template = t.partitions.first().cloned();
        let current = i32::try_from(t.partitions.len()).unwrap_or(i32::MAX);
        for p in current..total {
            if let Some(tpl) = &template {
                t.partitions.push(PartitionDescription {
                    partition: p,
                    ..tpl.clone()
                });
            }
        }
        Ok(())
    }

    async fn delete_topic(&self, topic: &str) -> Result<(), AdminError> {
        let mut s = self.check()?;
        s.calls.push(format!("delete {topic}"));
        s.configs.remove(topic);
        s.topics
            .remove(topic)
            .map(|_| ())
            .ok_or_else(|| kafka("DeleteTopics", topic, UNKNOWN_TOPIC_OR_PARTITION))
    }

    async fn describe_topic_configs(
        &self,
        topic: &str,
    ) -> Result<BTreeMap<String, ConfigValue>, AdminError> {
        let s = self.check()?;
        if !s.topics.contains_key(topic) {
            return Err(kafka("DescribeConfigs", topic, UNKNOWN_TOPIC_OR_PARTITION));
        }
        // A broker default that is not overridden, as real brokers report.
        let mut out = BTreeMap::from([(
            "cleanup.policy".to_owned(),
            ConfigValue {
                value: Some("delete".into()),
                is_topic_override: false,
            },
        )]);
        for (k, v) in s.configs.get(topic).into_iter().flatten() {
            out.insert(
                k.clone(),
                ConfigValue {
                    value: Some(v.clone()),
                    is_topic_override: true,
                },
            );
        }
        Ok(out)
    }

    async fn alter_topic_configs(&self, topic: &str, ops: &[ConfigOp]) -> Result<(), AdminError> {
        let mut s = self.check()?;
        s.calls.push(format!("alter_configs {topic} {ops:?}"));
        let configs = s.configs.entry(topic.to_owned()).or_default();
        for op in ops {
            match op {
                ConfigOp::Set { name, value } => {
                    configs.insert(name.clone(), value.clone());
                }
                ConfigOp::Delete { name } => {
                    configs.remove(name);
                }
            }
        }
        Ok(())
    }

    async fn alter_partition_reassignments(
        &self,
        reassignments: &[PartitionReassignmentRequest],
    ) -> Result<(), AdminError> {
        let mut s = self.check()?;
        for r in reassignments {
            s.calls.push(format!(
                "reassign {}-{} {:?}",
                r.topic, r.partition, r.replicas
            ));
            if let Some(replicas) = &r.replicas {
                s.ongoing.push(OngoingReassignment {
                    topic: r.topic.clone(),
                    partition: r.partition,
                    replicas: replicas.clone(),
                    adding: Vec::new(),
                    removing: Vec::new(),
                });
            }
        }
        Ok(())
    }

    async fn unregister_broker(&self, id: i32) -> Result<(), AdminError> {
        let mut s = self.check()?;
        s.calls.push(format!("unregister_broker {id}"));
        let known = s.fenced.contains(&id) || s.brokers.iter().any(|b| b.id == id);
        s.fenced.retain(|f| *f != id);
        s.brokers.retain(|b| b.id != id);
        if known {
            Ok(())
        } else {
            Err(kafka("UnregisterBroker", &format!("broker {id}"), 102))
        }
    }

    async fn list_partition_reassignments(&self) -> Result<Vec<OngoingReassignment>, AdminError> {
        Ok(self.check()?.ongoing.clone())
    }

    async fn end_offsets(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>, AdminError> {
        let s = self.check()?;
        Ok(partitions
            .iter()
            .map(|tp| (tp.clone(), s.end_offsets.get(tp).copied().unwrap_or(0)))
            .collect())
    }

    async fn committed_offsets(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>, AdminError> {
        let s = self.check()?;
        Ok(partitions
            .iter()
            .filter_map(|tp| {
                s.committed
                    .get(&(group.to_owned(), tp.clone()))
                    .map(|o| (tp.clone(), *o))
            })
            .collect())
    }
}

/// A connector that hands out one fake per bootstrap address and remembers which were asked for.
#[derive(Debug, Clone, Default)]
pub(crate) struct FakeConnector {
    pub(crate) clusters: Arc<Mutex<BTreeMap<String, FakeAdmin>>>,
}

impl FakeConnector {
    /// Registers `admin` as the cluster at `bootstrap`.
    pub(crate) fn insert(&self, bootstrap: &str, admin: FakeAdmin) {
        self.clusters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(bootstrap.to_owned(), admin);
    }
}

impl AdminConnector for FakeConnector {
    fn admin(&self, bootstrap: &str) -> Arc<dyn KafkaAdmin> {
        let mut clusters = self
            .clusters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let fake = clusters.entry(bootstrap.to_owned()).or_insert_with(|| {
            let f = FakeAdmin::default();
            f.lock().unreachable = true;
            f
        });
        Arc::new(fake.clone())
    }
}
