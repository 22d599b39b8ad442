//! The metadata state machine.

use std::collections::{BTreeMap, BTreeSet, HashMap};

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

/// One partition's placement and leadership (Kafka's `PartitionRecord`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionInfo {
    pub index: i32,
    /// Replica broker ids; the first is the preferred leader. During a reassignment this is the union
    /// of the old and the target replicas.
    pub replicas: Vec<i32>,
    /// In-sync replicas, the leader included. Empty in records written before replication existed,
    /// which [`ClusterState::apply`] reads as "all replicas".
    #[serde(default)]
    pub isr: Vec<i32>,
    /// The leader's broker id, or -1 when no in-sync replica is alive.
    pub leader: i32,
    /// Bumped whenever the leader changes.
    pub leader_epoch: i32,
    /// Bumped on every change of this partition; [`MetadataRecord::PartitionChange`] can be made
    /// conditional on it so that concurrent writers cannot undo each other.
    #[serde(default)]
    pub partition_epoch: i32,
    /// Replicas a reassignment is adding (not yet in the ISR).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding_replicas: Vec<i32>,
    /// Replicas a reassignment will remove once every adding replica is in sync.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing_replicas: Vec<i32>,
}

impl PartitionInfo {
    /// A new partition on `replicas`, led by the first, all in sync.
    pub fn new(index: i32, replicas: Vec<i32>) -> Self {
        PartitionInfo {
            index,
            leader: replicas.first().copied().unwrap_or(-1),
            isr: replicas.clone(),
            replicas,
            ..PartitionInfo::default()
        }
    }
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
    /// Changes one partition's leader, ISR, replicas or reassignment state (Kafka's
    /// `PartitionChangeRecord`). Fields left `None` are unchanged. With `expected_partition_epoch`
    /// set, the record is ignored unless the partition is still at that epoch. A change of leader
    /// bumps the leader epoch; every applied change bumps the partition epoch.
    PartitionChange {
        topic: String,
        index: i32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected_partition_epoch: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        leader: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        isr: Option<Vec<i32>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replicas: Option<Vec<i32>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        adding_replicas: Option<Vec<i32>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        removing_replicas: Option<Vec<i32>>,
    },
    /// The broker stopped heartbeating (or is shutting down): it leads nothing until unfenced.
    FenceBroker {
        id: i32,
    },
    /// The broker is heartbeating and caught up with metadata.
    UnfenceBroker {
        id: i32,
    },
    /// The broker left the cluster for good (a scale-down).
    UnregisterBroker {
        id: i32,
    },
}

/// Everything the cluster knows, rebuilt by applying records.
#[derive(Debug, Clone, Default)]
pub struct ClusterState {
    pub brokers: BTreeMap<i32, BrokerInfo>,
    pub topics: BTreeMap<String, TopicInfo>,
    topic_names: HashMap<Uuid, String>,
    pub next_producer_id: i64,
    /// Registered brokers that may not lead partitions now.
    pub fenced: BTreeSet<i32>,
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
                // The first create of a name wins: brokers that race to create the same topic
                // (e.g. `__consumer_offsets` at cluster start) cannot replace each other's.
                if self.topics.contains_key(&t.name) {
                    return;
                }
                let mut t = t.clone();
                for p in &mut t.partitions {
                    if p.isr.is_empty() {
                        p.isr = p.replicas.clone();
                    }
                }
                self.topic_names.insert(t.id, t.name.clone());
                self.topics.insert(t.name.clone(), t);
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
                            let mut p = p.clone();
                            if p.isr.is_empty() {
                                p.isr = p.replicas.clone();
                            }
                            t.partitions.push(p);
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
            MetadataRecord::PartitionChange {
                topic,
                index,
                expected_partition_epoch,
                leader,
                isr,
                replicas,
                adding_replicas,
                removing_replicas,
            } => {
                let Some(p) = self
                    .topics
                    .get_mut(topic)
                    .and_then(|t| t.partitions.get_mut(usize::try_from(*index).ok()?))
                else {
                    return;
                };
                if expected_partition_epoch.is_some_and(|e| e != p.partition_epoch) {
                    return;
                }
                if let Some(l) = leader
                    && *l != p.leader
                {
                    p.leader = *l;
                    p.leader_epoch += 1;
                }
                if let Some(v) = isr {
                    p.isr = v.clone();
                }
                if let Some(v) = replicas {
                    p.replicas = v.clone();
                }
                if let Some(v) = adding_replicas {
                    p.adding_replicas = v.clone();
                }
                if let Some(v) = removing_replicas {
                    p.removing_replicas = v.clone();
                }
                p.partition_epoch += 1;
            }
            MetadataRecord::FenceBroker { id } => {
                if self.brokers.contains_key(id) {
                    self.fenced.insert(*id);
                }
            }
            MetadataRecord::UnfenceBroker { id } => {
                self.fenced.remove(id);
            }
            MetadataRecord::UnregisterBroker { id } => {
                self.brokers.remove(id);
                self.fenced.remove(id);
            }
        }
    }

    /// Registered brokers that are not fenced.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerInfo> {
        self.brokers
            .values()
            .filter(|b| !self.fenced.contains(&b.id))
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
            partitions: (0..n).map(|i| PartitionInfo::new(i, vec![0])).collect(),
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
            partitions: vec![PartitionInfo::new(2, vec![0])],
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
            partitions: vec![PartitionInfo::new(5, vec![0])],
        });
        assert_eq!(s.topic("a").unwrap().partitions.len(), 1);
    }

    #[test]
    fn a_partition_change_bumps_epochs_and_a_stale_one_is_ignored() {
        let mut s = ClusterState::default();
        let mut t = topic("a", 1);
        t.partitions[0] = PartitionInfo::new(0, vec![1, 2, 3]);
        s.apply(&MetadataRecord::CreateTopic(t));
        let change =
            |expected, leader: Option<i32>, isr: Vec<i32>| MetadataRecord::PartitionChange {
                topic: "a".into(),
                index: 0,
                expected_partition_epoch: expected,
                leader,
                isr: Some(isr),
                replicas: None,
                adding_replicas: None,
                removing_replicas: None,
            };
        s.apply(&change(Some(0), None, vec![1, 2]));
        let p = s.partition("a", 0).unwrap().clone();
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (1, 0, 1));
        assert_eq!(p.isr, vec![1, 2]);
        // Written against epoch 0, applied at epoch 1: ignored.
        s.apply(&change(Some(0), Some(3), vec![3]));
        assert_eq!(s.partition("a", 0).unwrap(), &p);
        s.apply(&change(None, Some(2), vec![2]));
        let p = s.partition("a", 0).unwrap();
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (2, 1, 2));
        // Unknown partitions are ignored.
        s.apply(&MetadataRecord::PartitionChange {
            topic: "a".into(),
            index: 9,
            expected_partition_epoch: None,
            leader: Some(1),
            isr: None,
            replicas: None,
            adding_replicas: None,
            removing_replicas: None,
        });
    }

    #[test]
    fn fenced_brokers_are_not_live_and_unregistering_forgets_them() {
        let mut s = ClusterState::default();
        for id in 0..3 {
            s.apply(&MetadataRecord::RegisterBroker(BrokerInfo {
                id,
                host: "h".into(),
                port: 9092,
                rack: None,
            }));
        }
        s.apply(&MetadataRecord::FenceBroker { id: 1 });
        s.apply(&MetadataRecord::FenceBroker { id: 7 });
        let live: Vec<i32> = s.live_brokers().map(|b| b.id).collect();
        assert_eq!(live, vec![0, 2]);
        assert!(!s.fenced.contains(&7));
        s.apply(&MetadataRecord::UnregisterBroker { id: 1 });
        assert!(!s.brokers.contains_key(&1) && s.fenced.is_empty());
    }

    #[test]
    fn records_without_an_isr_read_as_fully_in_sync() {
        let json = r#"{"type":"create_topic","name":"a","id":"6f1f4a56-9d4e-4a57-8a55-36f1a6a8c7c1","partitions":[{"index":0,"replicas":[0,1],"leader":0,"leader_epoch":0}],"configs":{}}"#;
        let r: MetadataRecord = serde_json::from_str(json).unwrap();
        let mut s = ClusterState::default();
        s.apply(&r);
        assert_eq!(s.partition("a", 0).unwrap().isr, vec![0, 1]);
    }

    #[test]
    fn a_second_create_of_the_same_name_is_ignored() {
        let mut s = ClusterState::default();
        let first = topic("a", 1);
        s.apply(&MetadataRecord::CreateTopic(first.clone()));
        s.apply(&MetadataRecord::CreateTopic(topic("a", 3)));
        assert_eq!(s.topic("a"), Some(&first));
        s.apply(&MetadataRecord::DeleteTopic { name: "a".into() });
        s.apply(&MetadataRecord::CreateTopic(topic("a", 3)));
        assert_eq!(s.topic("a").unwrap().partitions.len(), 3);
    }

    #[test]
    fn producer_ids_never_go_backwards() {
        let mut s = ClusterState::default();
        s.apply(&MetadataRecord::AllocateProducerIds { next: 1000 });
        s.apply(&MetadataRecord::AllocateProducerIds { next: 10 });
        assert_eq!(s.next_producer_id, 1000);
    }
}
