//! [`ChangelogSource`] over a Kafka changelog partition, read with a group-less consumer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::Config;
use crate::error::RuntimeError;
use crate::restore::{ChangelogRecord, ChangelogSource};
use crate::runtime::client_config;

/// Records per batch handed to the restore logic.
const BATCH: usize = 10_000;
/// How long one poll waits for records.
const POLL: Duration = Duration::from_millis(100);
/// Metadata and watermark requests.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A restore that reads nothing for this long fails (and the process restarts).
const STALL_LIMIT: Duration = Duration::from_secs(60);

/// Reads one changelog partition from an offset; stops early when `cancel` is set.
pub(crate) struct KafkaChangelogSource {
    consumer: BaseConsumer,
    topic: String,
    partition: i32,
    position: i64,
    cancel: Arc<AtomicBool>,
}

impl KafkaChangelogSource {
    pub(crate) fn new(
        config: &Config,
        topic: &str,
        partition: i32,
        cancel: Arc<AtomicBool>,
    ) -> Result<Self, RuntimeError> {
        // librdkafka wants a group id even for manual assignment; this consumer never joins it
        // (no subscribe) and never commits.
        let consumer: BaseConsumer = client_config(config)
            .set("group.id", format!("{}-restore", config.name))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("fetch.max.bytes", "52428800")
            .set("max.partition.fetch.bytes", "16777216")
            .set("queued.min.messages", "200000")
            .create()
            .map_err(RuntimeError::kafka("create restore consumer"))?;
        Ok(Self {
            consumer,
            topic: topic.to_owned(),
            partition,
            position: 0,
            cancel,
        })
    }

    /// Whether the restore was cancelled (its error is then not a failure).
    pub(crate) fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    fn check_cancel(&self) -> Result<(), RuntimeError> {
        if self.cancelled() {
            return Err(RuntimeError::Changelog {
                topic: self.topic.clone(),
                partition: self.partition,
                offset: self.position,
                reason: "restore cancelled: partition revoked".to_owned(),
            });
        }
        Ok(())
    }
}

impl ChangelogSource for KafkaChangelogSource {
    fn watermarks(&mut self) -> Result<(i64, i64), RuntimeError> {
        self.consumer
            .fetch_watermarks(&self.topic, self.partition, REQUEST_TIMEOUT)
            .map_err(RuntimeError::kafka("fetch changelog watermarks"))
    }

    fn start(&mut self, from: i64) -> Result<(), RuntimeError> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, self.partition, Offset::Offset(from))
            .map_err(RuntimeError::kafka("assign changelog"))?;
        self.consumer
            .assign(&tpl)
            .map_err(RuntimeError::kafka("assign changelog"))?;
        self.position = from;
        Ok(())
    }

    fn next_batch(&mut self) -> Result<(Vec<ChangelogRecord>, i64), RuntimeError> {
        let started = Instant::now();
        let mut batch = Vec::new();
        loop {
            self.check_cancel()?;
            match self.consumer.poll(POLL) {
                Some(Ok(msg)) => {
                    self.position = msg.offset() + 1;
                    batch.push(ChangelogRecord {
                        offset: msg.offset(),
                        key: msg.key().map(<[u8]>::to_vec),
                        value: msg.payload().map(<[u8]>::to_vec),
                    });
                    if batch.len() >= BATCH {
                        break;
                    }
                }
                Some(Err(e)) => return Err(RuntimeError::kafka("read changelog")(e)),
                None if !batch.is_empty() => break,
                None => {
                    // Nothing arrived: the end may lie past compacted-away offsets, so ask where
                    // the fetcher stands.
                    if let Ok(tpl) = self.consumer.position()
                        && let Some(Offset::Offset(p)) = tpl
                            .find_partition(&self.topic, self.partition)
                            .map(|e| e.offset())
                        && p > self.position
                    {
                        self.position = p;
                        break;
                    }
                    if started.elapsed() > STALL_LIMIT {
                        return Err(RuntimeError::Changelog {
                            topic: self.topic.clone(),
                            partition: self.partition,
                            offset: self.position,
                            reason: format!(
                                "no records for {}s while restoring",
                                STALL_LIMIT.as_secs()
                            ),
                        });
                    }
                }
            }
        }
        Ok((batch, self.position))
    }
}
