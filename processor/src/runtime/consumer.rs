//! The poll thread: the group consumer, rebalance handling and dispatch to workers.
//!
//! Consumer settings: `group.id` = processor name, `group.instance.id` = pod name (static
//! membership: a restarted pod gets its partitions back without a rebalance, and with them its local
//! stores), `partition.assignment.strategy=cooperative-sticky` (scaling moves only the partitions
//! that must move), no auto commit (offsets are committed only after the state is checkpointed).
//!
//! Rebalances run inside `poll` on this thread. On revocation each revoked worker is stopped, which
//! commits its state, and its offset is committed synchronously before the partition is released.
//! On assignment a worker is started and the partition is paused until the worker has restored.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio_util::sync::CancellationToken;

use crate::error::RuntimeError;
use crate::metrics::partition_labels;
use crate::runtime::worker::{Worker, WorkerMsg};
use crate::runtime::{Control, Shared, client_config};

/// Batches of records buffered per worker before the poll thread pauses its partition.
const WORKER_QUEUE: usize = 16;
/// Records drained from the consumer per loop turn.
const MAX_POLL_RECORDS: usize = 5_000;
/// How long one poll waits for a record.
const POLL_TIMEOUT: Duration = Duration::from_millis(50);

struct WorkerEntry {
    epoch: u64,
    tx: mpsc::Sender<WorkerMsg>,
    cancel: Arc<AtomicBool>,
    /// Records the worker's queue had no room for, in order; the partition is paused meanwhile.
    stash: Vec<rdkafka::message::OwnedMessage>,
    ready: bool,
    paused: bool,
    /// The input offset this partition's state is committed up to (restored or last commit).
    position: Option<i64>,
}

struct PollState {
    workers: HashMap<i32, WorkerEntry>,
    next_epoch: u64,
}

/// The consumer context: rebalance callbacks and statistics (lag).
pub(crate) struct ProcessorContext {
    shared: Arc<Shared>,
    rt: tokio::runtime::Handle,
    /// Worker registry (std mutex: used only on the poll thread, never across an await).
    state: Mutex<PollState>,
}

impl ClientContext for ProcessorContext {
    fn stats(&self, statistics: Statistics) {
        let input = self.shared.job.input();
        let Some(topic) = statistics.topics.get(input) else {
            return;
        };
        // Lag = the partition's high watermark (from the client's statistics) minus the offset the
        // state is committed up to, which the workers report; librdkafka's own `consumer_lag` depends
        // on commits it has seen succeed and goes unknown across rebalances.
        let mut total = 0;
        let positions: Vec<(i32, Option<i64>)> = self
            .state
            .lock()
            .map(|s| s.workers.iter().map(|(p, e)| (*p, e.position)).collect())
            .unwrap_or_default();
        for (p, position) in positions {
            if let (Some(part), Some(position)) = (topic.partitions.get(&p), position)
                && part.hi_offset >= 0
            {
                let lag = (part.hi_offset - position).max(0);
                self.shared
                    .metrics
                    .lag
                    .get_or_create(&partition_labels(input, p))
                    .set(lag);
                total += lag;
            }
        }
        self.shared.metrics.lag_total.set(total);
    }
}

impl ConsumerContext for ProcessorContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let partitions: Vec<i32> = tpl
                .elements()
                .iter()
                .filter(|e| e.topic() == self.shared.job.input())
                .map(rdkafka::topic_partition_list::TopicPartitionListElem::partition)
                .collect();
            tracing::info!(?partitions, "partitions revoked");
            self.stop_workers(consumer, &partitions);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let input = self.shared.job.input();
                let partitions: Vec<i32> = tpl
                    .elements()
                    .iter()
                    .filter(|e| e.topic() == input)
                    .map(rdkafka::topic_partition_list::TopicPartitionListElem::partition)
                    .collect();
                tracing::info!(?partitions, "partitions assigned");
                self.shared.metrics.set_joined(true);
                // Paused until restored: the worker resumes it with a Ready message.
                if let Err(e) = consumer.pause(tpl) {
                    tracing::warn!(error = %e, "cannot pause newly assigned partitions");
                }
                for p in partitions {
                    self.start_worker(p);
                }
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}

impl ProcessorContext {
    fn start_worker(&self, partition: i32) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.next_epoch += 1;
        let epoch = state.next_epoch;
        let (tx, rx) = mpsc::channel(WORKER_QUEUE);
        let cancel = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            partition,
            epoch,
            shared: self.shared.clone(),
            cancel: cancel.clone(),
        };
        let shared = self.shared.clone();
        self.rt.spawn(async move {
            if let Err(e) = worker.run(rx).await {
                shared.fail(e);
            }
        });
        let old = state.workers.insert(
            partition,
            WorkerEntry {
                epoch,
                tx,
                cancel,
                stash: Vec::new(),
                ready: false,
                paused: true,
                position: None,
            },
        );
        if old.is_some() {
            tracing::warn!(partition, "partition assigned twice: replaced its worker");
        }
        self.shared.metrics.assigned_partitions.inc();
    }

    /// Stops the workers of `partitions` (each commits its state) and commits their offsets.
    fn stop_workers(&self, consumer: &BaseConsumer<Self>, partitions: &[i32]) {
        let input = self.shared.job.input();
        let entries: Vec<(i32, WorkerEntry)> = match self.state.lock() {
            Ok(mut state) => partitions
                .iter()
                .filter_map(|p| state.workers.remove(p).map(|e| (*p, e)))
                .collect(),
            Err(_) => return,
        };
        let grace = self.shared.config.shutdown_grace;
        let mut replies = Vec::new();
        for (p, entry) in entries {
            entry.cancel.store(true, Ordering::Relaxed);
            let (reply_tx, reply_rx) = std::sync::mpsc::sync_channel(1);
            if entry.tx.blocking_send(WorkerMsg::Stop(reply_tx)).is_ok() {
                replies.push((p, reply_rx));
            }
            self.shared.metrics.assigned_partitions.dec();
            self.shared.metrics.lag.remove(&partition_labels(input, p));
        }
        let mut tpl = TopicPartitionList::new();
        for (p, rx) in replies {
            match rx.recv_timeout(grace) {
                Ok(Some(offset)) => {
                    let _ = tpl.add_partition_offset(input, p, Offset::Offset(offset));
                }
                Ok(None) => {}
                Err(RecvTimeoutError::Timeout) => {
                    tracing::warn!(
                        partition = p,
                        "worker did not stop in time: offset not committed"
                    );
                }
                Err(RecvTimeoutError::Disconnected) => {}
            }
        }
        if tpl.count() > 0
            && let Err(e) = consumer.commit(&tpl, CommitMode::Sync)
        {
            tracing::warn!(error = %e, "final offset commit failed");
        }
    }
}

/// Runs the consumer until `shutdown` or a fatal error, then stops every worker (committing).
pub(crate) fn poll_loop(
    shared: &Arc<Shared>,
    rt: &tokio::runtime::Handle,
    control: &Receiver<Control>,
    shutdown: &CancellationToken,
) -> Result<(), RuntimeError> {
    let config = &shared.config;
    let mut cc = client_config(config);
    cc.set("group.id", &config.name)
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("statistics.interval.ms", "5000")
        .set(
            "session.timeout.ms",
            config.session_timeout.as_millis().to_string(),
        );
    if let Some(id) = &config.instance_id {
        cc.set("group.instance.id", id);
    }
    let context = ProcessorContext {
        shared: shared.clone(),
        rt: rt.clone(),
        state: Mutex::new(PollState {
            workers: HashMap::new(),
            next_epoch: 0,
        }),
    };
    let consumer: BaseConsumer<ProcessorContext> = cc
        .create_with_context(context)
        .map_err(RuntimeError::kafka("create consumer"))?;
    consumer
        .subscribe(&[shared.job.input()])
        .map_err(RuntimeError::kafka("subscribe"))?;
    let input = shared.job.input().to_owned();
    while !shutdown.is_cancelled() && !shared.fatal.is_cancelled() {
        shared.metrics.poll_alive();
        handle_control(&consumer, control, &input);
        retry_stashes(&consumer, &input);
        let mut batches: HashMap<i32, Vec<rdkafka::message::OwnedMessage>> = HashMap::new();
        let mut timeout = POLL_TIMEOUT;
        for _ in 0..MAX_POLL_RECORDS {
            match consumer.poll(timeout) {
                Some(Ok(msg)) => {
                    batches
                        .entry(msg.partition())
                        .or_default()
                        .push(msg.detach());
                    timeout = Duration::ZERO;
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "consumer error");
                    break;
                }
                None => break,
            }
        }
        dispatch(&consumer, &input, batches);
    }
    // Graceful stop: every worker commits; offsets are committed synchronously.
    let partitions: Vec<i32> = consumer
        .context()
        .state
        .lock()
        .map(|s| s.workers.keys().copied().collect())
        .unwrap_or_default();
    tracing::info!(?partitions, "stopping: committing every partition");
    consumer.context().stop_workers(&consumer, &partitions);
    handle_control(&consumer, control, &input);
    Ok(())
}

fn partition_tpl(topic: &str, partition: i32) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    tpl
}

fn handle_control(
    consumer: &BaseConsumer<ProcessorContext>,
    control: &Receiver<Control>,
    input: &str,
) {
    let mut commits = TopicPartitionList::new();
    let Ok(mut state) = consumer.context().state.lock() else {
        return;
    };
    while let Ok(msg) = control.try_recv() {
        match msg {
            Control::Ready {
                partition,
                epoch,
                absorbed,
            } => {
                if let Some(entry) = state.workers.get_mut(&partition)
                    && entry.epoch == epoch
                {
                    tracing::info!(partition, absorbed, "partition restored: consuming");
                    entry.ready = true;
                    entry.position = Some(absorbed);
                    if entry.stash.is_empty() && entry.paused {
                        entry.paused = false;
                        if let Err(e) = consumer.resume(&partition_tpl(input, partition)) {
                            tracing::warn!(partition, error = %e, "cannot resume partition");
                        }
                    }
                }
            }
            Control::Commit {
                partition,
                epoch,
                offset,
            } => {
                if let Some(entry) = state.workers.get_mut(&partition)
                    && entry.epoch == epoch
                {
                    entry.position = Some(offset);
                    let _ = commits.add_partition_offset(input, partition, Offset::Offset(offset));
                }
            }
        }
    }
    drop(state);
    if commits.count() > 0
        && let Err(e) = consumer.commit(&commits, CommitMode::Async)
    {
        tracing::warn!(error = %e, "offset commit failed");
    }
}

fn retry_stashes(consumer: &BaseConsumer<ProcessorContext>, input: &str) {
    let Ok(mut state) = consumer.context().state.lock() else {
        return;
    };
    for (p, entry) in &mut state.workers {
        if !entry.stash.is_empty() {
            let stash = std::mem::take(&mut entry.stash);
            match entry.tx.try_send(WorkerMsg::Records(stash)) {
                Ok(()) => {}
                Err(TrySendError::Full(WorkerMsg::Records(back))) => entry.stash = back,
                Err(_) => {}
            }
        }
        if entry.stash.is_empty() && entry.paused && entry.ready {
            entry.paused = false;
            if let Err(e) = consumer.resume(&partition_tpl(input, *p)) {
                tracing::warn!(partition = p, error = %e, "cannot resume partition");
            }
        }
    }
}

fn dispatch(
    consumer: &BaseConsumer<ProcessorContext>,
    input: &str,
    batches: HashMap<i32, Vec<rdkafka::message::OwnedMessage>>,
) {
    let Ok(mut state) = consumer.context().state.lock() else {
        return;
    };
    for (p, batch) in batches {
        let Some(entry) = state.workers.get_mut(&p) else {
            // Not ours (any more): the new owner reads these again from the committed offset.
            continue;
        };
        if !entry.stash.is_empty() {
            entry.stash.extend(batch);
            continue;
        }
        match entry.tx.try_send(WorkerMsg::Records(batch)) {
            Ok(()) => {}
            Err(TrySendError::Full(WorkerMsg::Records(back))) => {
                entry.stash = back;
                if !entry.paused {
                    entry.paused = true;
                    if let Err(e) = consumer.pause(&partition_tpl(input, p)) {
                        tracing::warn!(partition = p, error = %e, "cannot pause partition");
                    }
                }
            }
            Err(_) => {}
        }
    }
}
