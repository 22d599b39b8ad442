//! A harness that drives a [`Task`] without Kafka, for unit tests of jobs (ours and users').
//!
//! It owns real local stores in a directory the caller provides, feeds records with increasing
//! offsets, runs the timer, and commits the stores the way the runtime does, so a test can also drop
//! the harness and reopen the same directory to check what survives a restart.

use std::path::Path;

use crate::error::{StoreError, TaskError};
use crate::store::{Checkpoint, LocalStore};
use crate::task::{Collector, Job, OutputRecord, Record, Task, TaskContext};

/// Drives one task of a job over stores in a directory.
pub struct TaskHarness {
    task: Box<dyn Task>,
    stores: Vec<LocalStore>,
    collector: Collector,
    partition: i32,
    next_offset: i64,
    skipped: u64,
    topic: String,
}

impl TaskHarness {
    /// A task of `job` for `partition`, its stores under `dir` (reopened if they exist there).
    ///
    /// # Errors
    /// A store cannot be opened.
    pub fn new(job: &dyn Job, partition: i32, dir: &Path) -> Result<Self, StoreError> {
        let stores = job
            .stores()
            .iter()
            .map(|name| LocalStore::open(name, &dir.join(format!("{name}-{partition}.redb"))))
            .collect::<Result<Vec<_>, _>>()?;
        let next_offset = stores
            .first()
            .map(LocalStore::checkpoint)
            .transpose()?
            .and_then(|c| c.absorbed)
            .unwrap_or(0);
        Ok(Self {
            task: job.create_task(partition),
            stores,
            collector: Collector::default(),
            partition,
            next_offset,
            skipped: 0,
            topic: job.input().to_owned(),
        })
    }

    /// Feeds one record (next offset) with `value` and `timestamp`.
    ///
    /// # Errors
    /// The task fails.
    pub fn process(
        &mut self,
        key: Option<&[u8]>,
        value: &[u8],
        timestamp: Option<i64>,
    ) -> Result<(), TaskError> {
        let record = Record {
            topic: &self.topic,
            partition: self.partition,
            offset: self.next_offset,
            timestamp,
            key,
            value: Some(value),
        };
        let mut ctx = TaskContext::new(
            &mut self.stores,
            &mut self.collector,
            self.partition,
            &mut self.skipped,
        );
        self.task.process(&record, &mut ctx)?;
        self.next_offset += 1;
        Ok(())
    }

    /// Runs the timer and commits every store (as the runtime does at a commit), returning the
    /// output records produced since the previous commit.
    ///
    /// # Errors
    /// The task or a store fails.
    pub fn commit(&mut self) -> Result<Vec<OutputRecord>, TaskError> {
        let mut ctx = TaskContext::new(
            &mut self.stores,
            &mut self.collector,
            self.partition,
            &mut self.skipped,
        );
        self.task.punctuate(&mut ctx)?;
        for store in &mut self.stores {
            store.commit(Checkpoint {
                absorbed: Some(self.next_offset),
                changelog_offset: None,
            })?;
        }
        Ok(self.collector.drain())
    }

    /// The store named `name`.
    ///
    /// # Errors
    /// No such store.
    pub fn store(&mut self, name: &str) -> Result<&mut LocalStore, TaskError> {
        self.stores
            .iter_mut()
            .find(|s| s.name() == name)
            .ok_or_else(|| TaskError::UnknownStore(name.to_owned()))
    }

    /// Records the task skipped so far.
    #[must_use]
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The offset the next record will get.
    #[must_use]
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
}
