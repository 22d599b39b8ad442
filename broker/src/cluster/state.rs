//! The metadata state machine.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A broker known to the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

/// One partition's placement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionInfo {
    pub index: i32,
    /// Replica broker ids; the first is the preferred leader.
    pub replicas: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
}

/// A topic: its id, partitions and the configs set on it (defaults are not stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicInfo {
    pub name: String,
    pub id: Uuid,
    pub partitions: Vec<PartitionInfo>,
    pub configs: BTreeMap<String, String>,
}

impl TopicInfo {
    pub fn replication_factor(&self) -> usize {
        self.partitions.first().map_or(0, |p| p.replicas.len())
    }
}

/// A change to cluster metadata. Records are applied in order; applying is deterministic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MetadataRecord {
    RegisterBroker(BrokerInfo),
    CreateTopic(TopicInfo),
    DeleteTopic {
        name: String,
    },
    CreatePartitions {
        name: String,
        partitions: Vec<PartitionInfo>,
    },
    /// Sets (`Some`) or removes (`None`, back to the default) topic configs.
    AlterTopicConfigs {
        name: String,
        configs: BTreeMap<String, Option<String>>,
    },
    /// Producer ids below `next` are handed out.
    AllocateProducerIds {
        next: i64,
    },
}

/// Everything the cluster knows, rebuilt by applying records.
#[derive(Debug, Clone, Default)]
pub struct ClusterState {
    pub brokers: BTreeMap<i32, BrokerInfo>,
    pub topics: BTreeMap<String, TopicInfo>,
    topic_names: HashMap<Uuid, String>,
    pub next_producer_id: i64,
}

impl ClusterState {
    /// Applies one record. Records that no longer fit the state (a delete of a topic that is gone)
    /// are ignored: the journal may hold them after a crash between two writes.
    pub fn apply(&mut self, record: &MetadataRecord) {
        match record {
            MetadataRecord::RegisterBroker(b) => {
                self.brokers.insert(b.id, b.clone());
            }
            MetadataRecord::CreateTopic(t) => {
                self.topic_names.insert(t.id, t.name.clone());
                self.topics.insert(t.name.clone(), t.clone());
            }
            MetadataRecord::DeleteTopic { name } => {
                if let Some(t) = self.topics.remove(name) {
                    self.topic_names.remove(&t.id);
                }
            }
            MetadataRecord::CreatePartitions { name, partitions } => {
                if let Some(t) = self.topics.get_mut(name) {
                    for p in partitions {
                        if usize::try_from(p.index).ok() == Some(t.partitions.len()) {
                            t.partitions.push(p.clone());
                        }
                    }
                }
            }
            MetadataRecord::AlterTopicConfigs { name, configs } => {
                if let Some(t) = self.topics.get_mut(name) {
                    for (k, v) in configs {
                        match v {
                            Some(v) => t.configs.insert(k.clone(), v.clone()),
                            None => t.configs.remove(k),
                        };
                    }
                }
            }
            MetadataRecord::AllocateProducerIds { next } => {
                self.next_producer_id = self.next_producer_id.max(*next);
            }
        }
    }

    pub fn topic(&self, name: &str) -> Option<&TopicInfo> {
        self.topics.get(name)
    }

    pub fn topic_name(&self, id: &Uuid) -> Option<&str> {
        self.topic_names.get(id).map(String::as_str)
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionInfo> {
        let t = self.topics.get(topic)?;
        t.partitions.get(usize::try_from(partition).ok()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, n: i32) -> TopicInfo {
        TopicInfo {
            name: name.into(),
            id: Uuid::new_v4(),
            partitions: (0..n)
                .map(|i| PartitionInfo {
                    index: i,
                    replicas: vec![0],
                    leader: 0,
                    leader_epoch: 0,
                })
                .collect(),
            configs: BTreeMap::new(),
        }
    }

    #[test]
    fn records_build_the_state() {
        let mut s = ClusterState::default();
        let t = topic("a", 2);
        s.apply(&MetadataRecord::CreateTopic(t.clone()));
        assert_eq!(s.topic_name(&t.id), Some("a"));
        s.apply(&MetadataRecord::CreatePartitions {
            name: "a".into(),
            partitions: vec![PartitionInfo {
                index: 2,
                replicas: vec![0],
                leader: 0,
                leader_epoch: 0,
            }],
        });
        assert_eq!(s.topic("a").unwrap().partitions.len(), 3);
        s.apply(&MetadataRecord::AlterTopicConfigs {
            name: "a".into(),
            configs: [("retention.ms".to_string(), Some("10".to_string()))].into(),
        });
        assert_eq!(s.topic("a").unwrap().configs["retention.ms"], "10");
        s.apply(&MetadataRecord::AlterTopicConfigs {
            name: "a".into(),
            configs: [("retention.ms".to_string(), None)].into(),
        });
        assert!(s.topic("a").unwrap().configs.is_empty());
        s.apply(&MetadataRecord::DeleteTopic { name: "a".into() });
        assert!(s.topic("a").is_none());
        assert_eq!(s.topic_name(&t.id), None);
    }

    #[test]
    fn a_partition_record_out_of_sequence_is_ignored() {
        let mut s = ClusterState::default();
        s.apply(&MetadataRecord::CreateTopic(topic("a", 1)));
        s.apply(&MetadataRecord::CreatePartitions {
            name: "a".into(),
            partitions: vec![PartitionInfo {
                index: 5,
                replicas: vec![0],
                leader: 0,
                leader_epoch: 0,
            }],
        });
        assert_eq!(s.topic("a").unwrap().partitions.len(), 1);
    }

    #[test]
    fn producer_ids_never_go_backwards() {
        let mut s = ClusterState::default();
        s.apply(&MetadataRecord::AllocateProducerIds { next: 1000 });
        s.apply(&MetadataRecord::AllocateProducerIds { next: 10 });
        assert_eq!(s.next_producer_id, 1000);
    }
}
