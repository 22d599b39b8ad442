//! The coordinator's storage contract, and an in-memory implementation of it.
//!
//! The coordinator keeps group metadata and committed offsets as key/value records of the compacted
//! internal topic `__consumer_offsets`. It does not know how the broker stores that topic: it only
//! appends records and, at start-up, replays all of them.

use std::sync::Mutex;

use bytes::Bytes;

use super::GroupError;

/// One record of the coordinator log: a key and a value, where `None` is a tombstone that deletes the key.
pub type CoordinatorRecord = (Bytes, Option<Bytes>);

/// Where the coordinator keeps group metadata and committed offsets: the compacted internal topic
/// `__consumer_offsets`, implemented by the broker over a partition log.
///
/// Contract:
/// - Durability: [`append`](Self::append) returns `Ok` only once the records are in the log, so that a
///   committed offset survives a broker restart. The coordinator answers a client only after that.
/// - Ordering: records appended by one call keep their order, and calls are applied in the order they
///   were made (the coordinator serialises its calls).
/// - Atomicity: a failed `append` may have written a prefix of the records; the coordinator then
///   reports failure to the client, who retries, and a later record for the same key wins on replay.
/// - Compaction may drop any record that a later record with the same key supersedes, and tombstones
///   themselves after a while: replay must give the same final state either way.
/// - [`replay`](Self::replay) returns every retained record from the log start, in log order.
///
/// Both methods are synchronous and called while the coordinator holds its state lock, so they should
/// be quick (a local append plus the configured flush).
pub trait CoordinatorLog: Send + Sync {
    /// Appends the records, in order, and returns once they are durable.
    fn append(&self, records: Vec<CoordinatorRecord>) -> Result<(), GroupError>;
    /// Returns every record from the start of the log, in order.
    fn replay(&self) -> Result<Vec<CoordinatorRecord>, GroupError>;

    /// Waits until every record appended so far is durable under the log's replication (Kafka
    /// writes offsets with acks=all: committed by every in-sync replica). Called without the
    /// coordinator's lock, before an offset commit is acknowledged. The default suits logs whose
    /// `append` is already as durable as it gets.
    fn wait_durable(&self) -> DurableFuture<'_> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// What [`CoordinatorLog::wait_durable`] returns.
pub type DurableFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), GroupError>> + Send + 'a>>;

/// Whether a topic partition exists, so that offset commits for unknown partitions are refused with
/// `UNKNOWN_TOPIC_OR_PARTITION` as Kafka does.
pub trait PartitionLookup: Send + Sync {
    /// True when `topic` exists and has a partition numbered `partition`.
    fn partition_exists(&self, topic: &str, partition: i32) -> bool;
}

/// A [`CoordinatorLog`] in memory: a vector of records behind a mutex. It keeps everything (no
/// compaction), which is what a test wants to look at. Share one in an `Arc` between a coordinator and
/// its successor to simulate a restart.
#[derive(Debug, Default)]
pub struct MemoryCoordinatorLog {
    /// All appended records in order. `std` mutex: never held across an await.
    records: Mutex<Vec<CoordinatorRecord>>,
    /// When set, every append fails: lets tests exercise the error paths.
    fail_appends: std::sync::atomic::AtomicBool,
}

impl MemoryCoordinatorLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of every record appended so far.
    pub fn records(&self) -> Vec<CoordinatorRecord> {
        self.lock().clone()
    }

    /// Number of records appended so far.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing was appended yet.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Makes every following append fail (or succeed again with `false`).
    pub fn set_fail_appends(&self, fail: bool) {
        self.fail_appends
            .store(fail, std::sync::atomic::Ordering::SeqCst);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<CoordinatorRecord>> {
        // A poisoned lock only means another thread panicked mid-push; the vector is still valid.
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl CoordinatorLog for MemoryCoordinatorLog {
    fn append(&self, records: Vec<CoordinatorRecord>) -> Result<(), GroupError> {
        if self.fail_appends.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(GroupError::log(
                "memory coordinator log is set to fail appends",
            ));
        }
        self.lock().extend(records);
        Ok(())
    }

    fn replay(&self) -> Result<Vec<CoordinatorRecord>, GroupError> {
        Ok(self.records())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_log_replays_what_was_appended_in_order() {
        let log = MemoryCoordinatorLog::new();
        log.append(vec![(
            Bytes::from_static(b"a"),
            Some(Bytes::from_static(b"1")),
        )])
        .unwrap();
        log.append(vec![(Bytes::from_static(b"a"), None)]).unwrap();
        let records = log.replay().unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[1], (Bytes::from_static(b"a"), None));
    }

    #[test]
    fn memory_log_can_be_made_to_fail() {
        let log = MemoryCoordinatorLog::new();
        log.set_fail_appends(true);
        assert!(log.append(vec![(Bytes::new(), None)]).is_err());
        assert!(log.is_empty());
    }
}
