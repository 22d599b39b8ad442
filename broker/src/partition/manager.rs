//! The partitions this broker hosts, keyed by topic and index, each in `<data dir>/<topic>-<index>/`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use super::Partition;
use crate::storage::{LogConfig, StorageError};

/// `(topic, partition index)`.
pub type PartitionKey = (String, i32);

/// Opens, finds and removes hosted partitions.
#[derive(Debug)]
pub struct ReplicaManager {
    data_dir: PathBuf,
    /// Broker-wide topic config defaults (`--topic-config`), under each topic's own configs.
    defaults: BTreeMap<String, String>,
    partitions: RwLock<HashMap<PartitionKey, Arc<Partition>>>,
}

impl ReplicaManager {
    pub fn new(data_dir: PathBuf, defaults: BTreeMap<String, String>) -> Self {
        ReplicaManager {
            data_dir,
            defaults,
            partitions: RwLock::new(HashMap::new()),
        }
    }

    /// The effective configs of a topic: broker defaults overlaid with the topic's own.
    pub fn effective_configs(
        &self,
        topic_configs: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let mut all = self.defaults.clone();
        all.extend(topic_configs.iter().map(|(k, v)| (k.clone(), v.clone())));
        all
    }

    pub fn log_config(
        &self,
        topic_configs: &BTreeMap<String, String>,
    ) -> Result<LogConfig, crate::storage::ConfigError> {
        LogConfig::from_kafka_configs(&self.effective_configs(topic_configs))
    }

    pub fn defaults(&self) -> &BTreeMap<String, String> {
        &self.defaults
    }

    fn dir_of(&self, topic: &str, index: i32) -> PathBuf {
        self.data_dir.join(format!("{topic}-{index}"))
    }

    /// Opens (creating if absent) a partition, or returns the open one.
    pub fn open(
        &self,
        topic: &str,
        index: i32,
        config: LogConfig,
        leader_epoch: i32,
    ) -> Result<Arc<Partition>, StorageError> {
        if let Some(p) = self.get(topic, index) {
            return Ok(p);
        }
        let p = Arc::new(Partition::open(
            topic,
            index,
            &self.dir_of(topic, index),
            config,
            leader_epoch,
        )?);
        let mut map = self
            .partitions
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(map.entry((topic.to_owned(), index)).or_insert(p).clone())
    }

    pub fn get(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        let map = self
            .partitions
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(&(topic.to_owned(), index)).cloned()
    }

    /// Every hosted partition.
    pub fn all(&self) -> Vec<Arc<Partition>> {
        let map = self
            .partitions
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.values().cloned().collect()
    }

    /// Closes and deletes every partition of `topic`, files included.
    pub fn remove_topic(&self, topic: &str) -> Result<(), StorageError> {
        let removed: Vec<Arc<Partition>> = {
            let mut map = self
                .partitions
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let keys: Vec<PartitionKey> = map.keys().filter(|(t, _)| t == topic).cloned().collect();
            keys.iter().filter_map(|k| map.remove(k)).collect()
        };
        let mut indexes: Vec<i32> = removed.iter().map(|p| p.index).collect();
        drop(removed);
        // Requests in flight may still hold a partition; on Unix its open files outlive the unlink.
        indexes.sort_unstable();
        for index in indexes {
            let dir = self.dir_of(topic, index);
            std::fs::remove_dir_all(&dir).map_err(|source| StorageError::Io {
                path: dir.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Applies a topic's new configs to its open partitions.
    pub fn update_topic_config(&self, topic: &str, config: &LogConfig) {
        let map = self
            .partitions
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for ((t, _), p) in map.iter() {
            if t == topic {
                p.log().update_config(config.clone());
            }
        }
    }

    /// Flushes every partition (clean shutdown).
    pub fn flush_all(&self) {
        for p in self.all() {
            if let Err(e) = p.log().flush() {
                tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "flush on shutdown failed");
            }
        }
    }
}
