//! The programming model: a [`Job`] declares its stores and makes one [`Task`] per input partition;
//! the runtime feeds the task that partition's records in offset order.
//!
//! Contract for task code:
//! - `process` must be deterministic given the store contents and the record: after a crash the
//!   runtime restores the stores to a commit boundary and replays the input from the offset that
//!   boundary absorbed, and exact state depends on the replay doing what the first run did.
//! - Store writes are exact (each input record is reflected exactly once in committed state); output
//!   records are at least once, so give them deterministic keys (e.g. page and window) so that
//!   compacted topics and upserting sinks converge.
//! - `punctuate` is the timer: it runs before every commit (every commit interval) and is where a
//!   windowed job emits its changed windows and expires closed ones. It is not called with records
//!   in flight, and the writes it makes are committed with the records before it.

use crate::error::TaskError;
use crate::store::LocalStore;

/// One input record as a task sees it.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// The input topic.
    pub topic: &'a str,
    /// The input partition (also the task's partition).
    pub partition: i32,
    /// The record's offset.
    pub offset: i64,
    /// The record's timestamp in milliseconds since the epoch, if it has one.
    pub timestamp: Option<i64>,
    /// The record's key.
    pub key: Option<&'a [u8]>,
    /// The record's value (`None`: a tombstone).
    pub value: Option<&'a [u8]>,
}

/// A record a task sends to an output topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputRecord {
    /// The output topic.
    pub topic: String,
    /// The key: deterministic, so that replays overwrite rather than duplicate.
    pub key: Vec<u8>,
    /// The value (`None`: a tombstone).
    pub value: Option<Vec<u8>>,
    /// The timestamp in milliseconds, or `None` for the producer's clock.
    pub timestamp: Option<i64>,
}

/// Collects a task's output records until the runtime sends them at the next commit.
#[derive(Debug, Default)]
pub struct Collector {
    records: Vec<OutputRecord>,
}

impl Collector {
    /// Queues a record for `topic`.
    pub fn send(
        &mut self,
        topic: &str,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
        timestamp: Option<i64>,
    ) {
        self.records.push(OutputRecord {
            topic: topic.to_owned(),
            key,
            value,
            timestamp,
        });
    }

    /// How many records are queued.
    #[must_use]
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no record is queued.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Takes the queued records.
    pub fn drain(&mut self) -> Vec<OutputRecord> {
        std::mem::take(&mut self.records)
    }
}

/// What a task can reach while it handles a record or a timer: its stores and its output.
#[derive(Debug)]
pub struct TaskContext<'a> {
    stores: &'a mut [LocalStore],
    collector: &'a mut Collector,
    partition: i32,
    skipped: &'a mut u64,
}

impl<'a> TaskContext<'a> {
    /// A context over a task's stores (in the job's declared order) and its collector.
    pub fn new(
        stores: &'a mut [LocalStore],
        collector: &'a mut Collector,
        partition: i32,
        skipped: &'a mut u64,
    ) -> Self {
        Self {
            stores,
            collector,
            partition,
            skipped,
        }
    }

    /// The store named `name`.
    ///
    /// # Errors
    /// The job did not declare a store of that name.
    pub fn store(&mut self, name: &str) -> Result<&mut LocalStore, TaskError> {
        self.stores
            .iter_mut()
            .find(|s| s.name() == name)
            .ok_or_else(|| TaskError::UnknownStore(name.to_owned()))
    }

    /// Queues an output record (see [`Collector::send`]).
    pub fn send(
        &mut self,
        topic: &str,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
        timestamp: Option<i64>,
    ) {
        self.collector.send(topic, key, value, timestamp);
    }

    /// The task's input partition.
    #[must_use]
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// Counts a record the task chose to skip (malformed, too late); exported as a metric.
    pub fn skip_record(&mut self) {
        *self.skipped += 1;
    }
}

/// The per-partition unit of processing. See the module docs for the determinism contract.
pub trait Task: Send {
    /// Handles one input record.
    ///
    /// # Errors
    /// A failure that should stop the processor (a store failure, a broken invariant). Records that
    /// are merely malformed should be skipped with [`TaskContext::skip_record`] instead, or one bad
    /// record would stop the partition forever.
    fn process(&mut self, record: &Record<'_>, ctx: &mut TaskContext<'_>) -> Result<(), TaskError>;

    /// The timer, called before every commit. The default does nothing.
    ///
    /// # Errors
    /// As for [`Task::process`].
    fn punctuate(&mut self, ctx: &mut TaskContext<'_>) -> Result<(), TaskError> {
        let _ = ctx;
        Ok(())
    }
}

/// A stream-processing job: its input, its stores and a task factory.
pub trait Job: Send + Sync + 'static {
    /// The input topic.
    fn input(&self) -> &str;
    /// The output topics (created by nobody: they must exist or be auto-created by the cluster).
    fn outputs(&self) -> Vec<String>;
    /// The names of the stores every task gets, in the order the task's context lists them.
    fn stores(&self) -> Vec<String>;
    /// A new task for input partition `partition`.
    fn create_task(&self, partition: i32) -> Box<dyn Task>;
}
