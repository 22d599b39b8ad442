//! The worker of one input partition: restore, process, commit.
//!
//! A worker is a tokio task that owns the partition's [`Task`] and stores. It first restores every
//! store (on the blocking pool, so other partitions keep processing), tells the poll thread it is
//! ready, then processes the records the poll thread hands it. Every commit interval it commits in
//! the order that makes state exact and outputs at least once:
//! 1. run the task's timer, send its output records and the stores' changed keys to the changelog,
//!    and wait until all are acknowledged;
//! 2. send each store's commit marker (the absorbed input offset) and wait for it, so that no write
//!    of this commit can land after its marker even if the producer retries;
//! 3. checkpoint each store (one fsynced transaction: the changes, the absorbed offset, the marker's
//!    changelog offset);
//! 4. ask the poll thread to commit the input offset.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use tokio::sync::mpsc;

use crate::changelog::{MARKER_KEY, changelog_topic, marker_value};
use crate::error::RuntimeError;
use crate::metrics::{Labels, partition_labels, store_labels};
use crate::restore::restore;
use crate::runtime::changelog_source::KafkaChangelogSource;
use crate::runtime::{Control, Shared};
use crate::store::{Checkpoint, LocalStore};
use crate::task::{Collector, Record, Task, TaskContext};

/// Commit early when this many output records or changed keys are waiting, to bound memory.
const EARLY_COMMIT_BACKLOG: usize = 100_000;
/// Pause before retrying a record the producer's full queue refused.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(5);

/// Messages from the poll thread to a worker.
pub(crate) enum WorkerMsg {
    /// Records of the worker's partition, in offset order.
    Records(Vec<OwnedMessage>),
    /// Commit and stop; the reply is the committed input offset (`None`: nothing to commit).
    Stop(std::sync::mpsc::SyncSender<Option<i64>>),
}

pub(crate) struct Worker {
    pub(crate) partition: i32,
    pub(crate) epoch: u64,
    pub(crate) shared: Arc<Shared>,
    pub(crate) cancel: Arc<AtomicBool>,
}

struct Running {
    partition: i32,
    topic: String,
    labels: Labels,
    task: Box<dyn Task>,
    stores: Vec<LocalStore>,
    changelogs: Vec<String>,
    collector: Collector,
    absorbed: i64,
    committed: Option<i64>,
    skipped: u64,
    shared: Arc<Shared>,
}

impl Worker {
    /// Runs the worker until it is stopped or its channel closes. Errors are fatal to the process.
    pub(crate) async fn run(self, mut rx: mpsc::Receiver<WorkerMsg>) -> Result<(), RuntimeError> {
        let shared = self.shared.clone();
        let partition = self.partition;
        shared.metrics.restoring_partitions.inc();
        let restored = tokio::task::spawn_blocking({
            let shared = shared.clone();
            let cancel = self.cancel.clone();
            move || restore_all(&shared, partition, &cancel)
        })
        .await;
        shared.metrics.restoring_partitions.dec();
        let (stores, absorbed) = match restored {
            Ok(Ok(Some(r))) => r,
            // Cancelled during restore: the partition was revoked; nothing to commit.
            Ok(Ok(None)) => return drain_until_stop(rx, None).await,
            Ok(Err(e)) => return Err(e),
            Err(join) => {
                return Err(RuntimeError::Changelog {
                    topic: shared.job.input().to_owned(),
                    partition,
                    offset: -1,
                    reason: format!("restore task failed: {join}"),
                });
            }
        };
        let topic = shared.job.input().to_owned();
        let mut running = Running {
            partition,
            labels: partition_labels(&topic, partition),
            topic,
            task: shared.job.create_task(partition),
            changelogs: stores
                .iter()
                .map(|s| changelog_topic(&shared.config.name, s.name()))
                .collect(),
            stores,
            collector: Collector::default(),
            absorbed,
            committed: None,
            skipped: 0,
            shared: shared.clone(),
        };
        shared.send_control(Control::Ready {
            partition,
            epoch: self.epoch,
            absorbed,
        });
        let mut tick = tokio::time::interval(shared.config.commit_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(WorkerMsg::Records(batch)) => {
                        running.process(&batch)?;
                        if running.backlog() >= EARLY_COMMIT_BACKLOG {
                            running.commit(self.epoch).await?;
                        }
                    }
                    Some(WorkerMsg::Stop(reply)) => {
                        let result = running.commit(self.epoch).await;
                        let _ = reply.send(result.as_ref().ok().map(|()| running.absorbed));
                        return result;
                    }
                    None => return Ok(()),
                },
                _ = tick.tick() => running.commit(self.epoch).await?,
            }
        }
    }
}

/// After a cancelled restore: wait for the stop request and answer it.
async fn drain_until_stop(
    mut rx: mpsc::Receiver<WorkerMsg>,
    reply_with: Option<i64>,
) -> Result<(), RuntimeError> {
    while let Some(msg) = rx.recv().await {
        if let WorkerMsg::Stop(reply) = msg {
            let _ = reply.send(reply_with);
            return Ok(());
        }
    }
    Ok(())
}

/// Opens and restores every store of the partition. `None` when cancelled. Returns the stores and
/// the input offset to resume from (the smallest absorbed offset over the stores).
fn restore_all(
    shared: &Shared,
    partition: i32,
    cancel: &Arc<AtomicBool>,
) -> Result<Option<(Vec<LocalStore>, i64)>, RuntimeError> {
    let mut stores = Vec::new();
    let mut absorbed: Option<i64> = None;
    for name in shared.job.stores() {
        let path: PathBuf = shared
            .config
            .state_dir
            .join(&shared.config.name)
            .join(&name)
            .join(format!("{partition}.redb"));
        let mut store = LocalStore::open(&name, &path)?;
        let topic = changelog_topic(&shared.config.name, &name);
        let mut source =
            KafkaChangelogSource::new(&shared.config, &topic, partition, cancel.clone())?;
        let labels = store_labels(&name, Some(partition));
        let store_only = store_labels(&name, None);
        let metrics = &shared.metrics;
        let started = Instant::now();
        let (mut last_records, mut last_bytes) = (0, 0);
        let result = restore(&mut store, &mut source, &topic, partition, &mut |p| {
            metrics
                .restore_remaining
                .get_or_create(&labels)
                .set(p.total - p.done);
            metrics
                .restore_records
                .get_or_create(&store_only)
                .inc_by(p.records - last_records);
            metrics
                .restore_bytes
                .get_or_create(&store_only)
                .inc_by(p.bytes - last_bytes);
            (last_records, last_bytes) = (p.records, p.bytes);
        });
        let outcome = match result {
            Ok(o) => o,
            Err(_) if source.cancelled() => return Ok(None),
            Err(e) => return Err(e),
        };
        let secs = started.elapsed().as_secs_f64();
        if outcome.bytes > 0 && secs > 0.0 {
            #[allow(clippy::cast_precision_loss)]
            metrics
                .restore_bytes_per_second
                .get_or_create(&store_only)
                .set(outcome.bytes as f64 / secs);
        }
        tracing::info!(
            store = name,
            partition,
            records = outcome.records,
            bytes = outcome.bytes,
            seconds = secs,
            absorbed = outcome.checkpoint.absorbed,
            "store restored"
        );
        let a = outcome.checkpoint.absorbed.unwrap_or(0);
        absorbed = Some(absorbed.map_or(a, |b: i64| b.min(a)));
        stores.push(store);
    }
    Ok(Some((stores, absorbed.unwrap_or(0))))
}

impl Running {
    fn backlog(&self) -> usize {
        self.collector.len() + self.stores.iter().map(LocalStore::dirty_len).sum::<usize>()
    }

    fn process(&mut self, batch: &[OwnedMessage]) -> Result<(), RuntimeError> {
        let mut n = 0u64;
        let skipped_before = self.skipped;
        for msg in batch {
            // Records before the restored position are already in the state.
            if msg.offset() < self.absorbed {
                continue;
            }
            let record = Record {
                topic: &self.topic,
                partition: self.partition,
                offset: msg.offset(),
                timestamp: msg.timestamp().to_millis(),
                key: msg.key(),
                value: msg.payload(),
            };
            let mut ctx = TaskContext::new(
                &mut self.stores,
                &mut self.collector,
                self.partition,
                &mut self.skipped,
            );
            self.task
                .process(&record, &mut ctx)
                .map_err(|source| RuntimeError::Task {
                    partition: self.partition,
                    offset: record.offset,
                    source,
                })?;
            self.absorbed = msg.offset() + 1;
            n += 1;
        }
        let metrics = &self.shared.metrics;
        metrics.processed(&self.labels, n);
        if self.skipped > skipped_before {
            metrics
                .records_skipped
                .get_or_create(&self.labels)
                .inc_by(self.skipped - skipped_before);
        }
        Ok(())
    }

    async fn commit(&mut self, epoch: u64) -> Result<(), RuntimeError> {
        let mut ctx = TaskContext::new(
            &mut self.stores,
            &mut self.collector,
            self.partition,
            &mut self.skipped,
        );
        self.task
            .punctuate(&mut ctx)
            .map_err(|source| RuntimeError::Task {
                partition: self.partition,
                offset: self.absorbed,
                source,
            })?;
        let nothing_new = self.committed == Some(self.absorbed)
            && self.collector.is_empty()
            && self.stores.iter().all(|s| s.dirty_len() == 0);
        if nothing_new {
            return Ok(());
        }
        let producer = &self.shared.producer;
        let mut pending = VecDeque::new();
        for out in self.collector.drain() {
            let mut record = FutureRecord::to(&out.topic).key(out.key.as_slice());
            if let Some(v) = &out.value {
                record = record.payload(v.as_slice());
            }
            if let Some(ts) = out.timestamp {
                record = record.timestamp(ts);
            }
            enqueue(producer, &mut pending, record).await?;
        }
        for (store, topic) in self.stores.iter().zip(&self.changelogs) {
            for (key, value) in store.dirty() {
                let mut record = FutureRecord::to(topic).key(key).partition(self.partition);
                if let Some(v) = value {
                    record = record.payload(v);
                }
                enqueue(producer, &mut pending, record).await?;
            }
        }
        while let Some(f) = pending.pop_front() {
            delivered(f).await?;
        }
        let marker = marker_value(self.absorbed);
        let mut markers = Vec::with_capacity(self.changelogs.len());
        for topic in &self.changelogs {
            let record = FutureRecord::to(topic)
                .key(MARKER_KEY)
                .payload(&marker[..])
                .partition(self.partition);
            enqueue(producer, &mut pending, record).await?;
        }
        while let Some(f) = pending.pop_front() {
            markers.push(delivered(f).await?);
        }
        for (store, marker_offset) in self.stores.iter_mut().zip(markers) {
            store.commit(Checkpoint {
                absorbed: Some(self.absorbed),
                changelog_offset: Some(marker_offset),
            })?;
        }
        self.committed = Some(self.absorbed);
        self.shared.metrics.commits.inc();
        self.shared.send_control(Control::Commit {
            partition: self.partition,
            epoch,
            offset: self.absorbed,
        });
        Ok(())
    }
}

/// Queues a record on the producer; when its queue is full, waits for the oldest delivery first.
async fn enqueue(
    producer: &FutureProducer,
    pending: &mut VecDeque<DeliveryFuture>,
    mut record: FutureRecord<'_, [u8], [u8]>,
) -> Result<(), RuntimeError> {
    loop {
        match producer.send_result(record) {
            Ok(f) => {
                pending.push_back(f);
                return Ok(());
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                match pending.pop_front() {
                    Some(f) => {
                        delivered(f).await?;
                    }
                    // Full with nothing of ours in flight: other partitions' records fill it; back
                    // off briefly while the producer drains them.
                    None => tokio::time::sleep(QUEUE_FULL_BACKOFF).await,
                }
            }
            Err((e, _)) => return Err(RuntimeError::kafka("produce")(e)),
        }
    }
}

/// Waits for one delivery and returns its offset.
async fn delivered(f: DeliveryFuture) -> Result<i64, RuntimeError> {
    match f.await {
        Ok(Ok(d)) => Ok(d.offset),
        Ok(Err((e, _))) => Err(RuntimeError::kafka("produce")(e)),
        Err(_) => Err(RuntimeError::kafka("produce")(KafkaError::Canceled)),
    }
}
