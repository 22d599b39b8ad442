//! The partitions this broker hosts, keyed by topic and index, each in `<data dir>/<topic>-<index>/`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use tokio::sync::{Notify, watch};

use super::Partition;
use crate::replica::FetchPlan;
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
    /// Serialises reconciliations with the metadata (std mutex: reconciling is synchronous).
    reconciling: std::sync::Mutex<()>,
    /// The partitions this broker follows, per leader; the fetchers watch it.
    fetch_plan: watch::Sender<FetchPlan>,
    /// Woken when a follower may join an ISR, so that the expansion is not left to the next tick.
    isr_wakeup: Notify,
}

impl ReplicaManager {
    pub fn new(data_dir: PathBuf, defaults: BTreeMap<String, String>) -> Self {
        ReplicaManager {
            data_dir,
            defaults,
            partitions: RwLock::new(HashMap::new()),
            reconciling: std::sync::Mutex::new(()),
            fetch_plan: watch::channel(FetchPlan::new()).0,
            isr_wakeup: Notify::new(),
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

    /// Held while reconciling hosted partitions with the metadata.
    pub(crate) fn reconcile_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.reconciling
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replaces the fetch plan (wakes the fetchers only when it changed).
    pub fn set_fetch_plan(&self, plan: FetchPlan) {
        self.fetch_plan.send_if_modified(|current| {
            let changed = *current != plan;
            *current = plan;
            changed
        });
    }

    /// The fetch plan, watched.
    pub fn subscribe_fetch_plan(&self) -> watch::Receiver<FetchPlan> {
        self.fetch_plan.subscribe()
    }

    /// Wakes the ISR check (a follower caught up).
    pub fn wake_isr_check(&self) {
        self.isr_wakeup.notify_one();
    }

    /// Resolves when [`ReplicaManager::wake_isr_check`] was called.
    pub async fn isr_check_wanted(&self) {
        self.isr_wakeup.notified().await;
    }

    /// Closes one partition and deletes its files (this broker is no longer its replica).
    pub fn remove(&self, topic: &str, index: i32) -> Result<(), StorageError> {
        let removed = self
            .partitions
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&(topic.to_owned(), index));
        drop(removed);
        let dir = self.dir_of(topic, index);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StorageError::Io { path: dir, source }),
        }
    }

    /// Checkpoints every partition's high watermark.
    pub fn checkpoint_high_watermarks(&self) {
        for p in self.all() {
            if let Err(e) = p.checkpoint_high_watermark() {
                tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "high watermark checkpoint failed");
            }
        }
    }

    /// Flushes every partition (clean shutdown).
    pub fn flush_all(&self) {
        self.checkpoint_high_watermarks();
        for p in self.all() {
            if let Err(e) = p.log().flush() {
                tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "flush on shutdown failed");
            }
        }
    }
}
