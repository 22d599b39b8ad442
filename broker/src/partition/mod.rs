//! The partition log as the API layer sees it: append with offsets assigned and producer sequences
//! checked, read from an offset, high watermark, log start offset, truncation, and the partition's
//! replication role (Kafka's ISR model, see [`crate::replica`]).
//!
//! A leader's high watermark is the smallest log end offset over its ISR ([`LeaderState`]), so a
//! partition whose ISR is the leader alone has its high watermark at its log end offset. A
//! follower's is the leader's, capped by its own log end offset. Waiting fetches subscribe to
//! [`Partition::subscribe`] (high watermark) or [`Partition::subscribe_leo`] (log end offset,
//! for follower fetches) and wake as soon as it moves.
//!
//! The high watermark is persisted in `replication-offset-checkpoint` in the partition directory
//! (periodically and on close, as Kafka does per log directory); on open it is the checkpointed
//! value capped by the log end offset, or the log start offset when there is no checkpoint, so a
//! restart never exposes records above the old high watermark.

mod leader_state;
mod manager;
mod producer_state;
mod role;

use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};

use bytes::Bytes;
use tokio::sync::watch;

pub use leader_state::{FollowerState, LeaderState};
pub use manager::{PartitionKey, ReplicaManager};
pub use producer_state::{ProducerBatch, ProducerStates, SequenceCheck};
pub use role::{EpochError, IsrChange, Role};

use crate::storage::{self, Log, LogConfig, StorageError};

/// File of the partition's high watermark checkpoint.
const HW_CHECKPOINT: &str = "replication-offset-checkpoint";

/// Why an append was refused, as a Kafka error code family.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("out of order sequence number from producer {producer_id}")]
    OutOfOrderSequence { producer_id: i64 },
    #[error("producer {producer_id} has a newer epoch than {epoch}")]
    InvalidProducerEpoch { producer_id: i64, epoch: i16 },
    #[error("{topic}-{index} is followed here, not led")]
    NotLeader { topic: String, index: i32 },
    #[error("{topic}-{index} changed role since the data was fetched")]
    RoleChanged { topic: String, index: i32 },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: i64,
    /// Offset after the last record appended (what the high watermark must pass for acks=all).
    pub end_offset: i64,
    pub log_start_offset: i64,
    /// True when the batch was a retry of one already in the log.
    pub duplicate: bool,
}

/// One hosted partition.
#[derive(Debug)]
pub struct Partition {
    pub topic: String,
    pub index: i32,
    log: Log,
    /// Serialises sequence checks with the append they guard. Held for one append, never across `.await`.
    producers: Mutex<ProducerStates>,
    /// The leader epoch appends are stamped with; changes only with `role`, under its lock.
    leader_epoch: AtomicI32,
    /// Leader, follower or unassigned (std mutex: held briefly, never across `.await`).
    role: Mutex<Role>,
    hw: watch::Sender<i64>,
    leo: watch::Sender<i64>,
    /// Bumped on every role or ISR change, so that acks=all waiters notice a lost leadership or
    /// a shrunk ISR.
    role_version: watch::Sender<u64>,
}

impl Partition {
    /// Opens the partition's log and rebuilds producer state from it. The partition starts
    /// unassigned (see [`Role::Unassigned`]) until [`Partition::become_leader`] or
    /// [`Partition::become_follower`].
    pub fn open(
        topic: &str,
        index: i32,
        dir: &std::path::Path,
        config: LogConfig,
        leader_epoch: i32,
    ) -> Result<Self, StorageError> {
        let log = Log::open(dir, config)?;
        let producers = rebuild_producer_state(&log)?;
        let hw = read_hw_checkpoint(dir)?
            .unwrap_or_else(|| log.log_start_offset())
            .clamp(log.log_start_offset(), log.log_end_offset());
        let (hw, _) = watch::channel(hw);
        let (leo, _) = watch::channel(log.log_end_offset());
        let (role_version, _) = watch::channel(0);
        Ok(Partition {
            topic: topic.to_owned(),
            index,
            log,
            producers: Mutex::new(producers),
            leader_epoch: AtomicI32::new(leader_epoch),
            role: Mutex::new(Role::Unassigned),
            hw,
            leo,
            role_version,
        })
    }

    /// Appends one validated record batch (producer fields already parsed into `producer`),
    /// stamped with the current leader epoch. A follower refuses ([`AppendError::NotLeader`]):
    /// the role is held for the whole append, so a leadership lost meanwhile cannot interleave
    /// with it (Kafka appends under the partition's leader-and-ISR read lock).
    pub fn append(&self, batch: &[u8], producer: &ProducerBatch) -> Result<Appended, AppendError> {
        let role = self.role_lock();
        if matches!(*role, Role::Follower { .. }) {
            return Err(AppendError::NotLeader {
                topic: self.topic.clone(),
                index: self.index,
            });
        }
        let mut producers = self
            .producers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match producers.check(producer) {
            SequenceCheck::Append => {}
            SequenceCheck::Duplicate { base_offset } => {
                return Ok(Appended {
                    base_offset,
                    end_offset: base_offset + i64::from(producer.last_offset_delta) + 1,
                    log_start_offset: self.log.log_start_offset(),
                    duplicate: true,
                });
            }
            SequenceCheck::OutOfOrder => {
                return Err(AppendError::OutOfOrderSequence {
                    producer_id: producer.producer_id,
                });
            }
            SequenceCheck::InvalidEpoch => {
                return Err(AppendError::InvalidProducerEpoch {
                    producer_id: producer.producer_id,
                    epoch: producer.producer_epoch,
                });
            }
        }
        // The log stamps offsets and the leader epoch into the header, so it needs its own copy.
        let mut batch = bytes::BytesMut::from(batch);
        let info = self
            .log
            .append(&mut batch, self.leader_epoch.load(Ordering::Acquire))?;
        producers.record(producer, info.base_offset);
        drop(producers);
        self.leo.send_replace(self.log.log_end_offset());
        self.refresh_hw_locked(&role);
        Ok(Appended {
            base_offset: info.base_offset,
            end_offset: info.last_offset + 1,
            log_start_offset: self.log.log_start_offset(),
            duplicate: false,
        })
    }

    /// Whole batches from `offset`, at most `max_bytes` (but at least one batch), below the high watermark.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<Bytes, StorageError> {
        self.read_bounded(offset, max_bytes, true)
    }

    /// As [`Partition::read`]; with `min_one_batch` false a first batch over `max_bytes` is not
    /// returned (Kafka's rule for partitions after the first one of a fetch that returned data).
    pub fn read_bounded(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<Bytes, StorageError> {
        Ok(self
            .log
            .read_bounded(offset, max_bytes, self.high_watermark(), min_one_batch)?
            .records)
    }

    /// As [`Partition::read_bounded`] but up to the log end offset: what followers fetch.
    pub fn read_for_follower(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<Bytes, StorageError> {
        Ok(self
            .log
            .read_bounded(offset, max_bytes, i64::MAX, min_one_batch)?
            .records)
    }

    pub fn high_watermark(&self) -> i64 {
        *self.hw.borrow()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log.log_start_offset()
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log.log_end_offset()
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    pub fn size_bytes(&self) -> u64 {
        self.log.size_bytes()
    }

    /// Wakes when the high watermark moves.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.hw.subscribe()
    }

    /// Wakes when the log end offset moves (follower fetches wait on it).
    pub fn subscribe_leo(&self) -> watch::Receiver<i64> {
        self.leo.subscribe()
    }

    /// Wakes on every role or ISR change.
    pub fn subscribe_role(&self) -> watch::Receiver<u64> {
        self.role_version.subscribe()
    }

    pub fn log(&self) -> &Log {
        &self.log
    }

    /// DeleteRecords: moves the log start offset; returns the new one.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, StorageError> {
        self.log.delete_records_before(offset)
    }

    /// Replication: drops everything from `offset` on. The high watermark does not pass the new
    /// log end offset.
    pub fn truncate_to(&self, offset: i64) -> Result<(), StorageError> {
        let mut producers = self
            .producers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.log.truncate_to(offset)?;
        producers.truncate(offset);
        drop(producers);
        let leo = self.log.log_end_offset();
        self.leo.send_replace(leo);
        self.hw.send_if_modified(|hw| {
            let changed = *hw > leo;
            *hw = (*hw).min(leo);
            changed
        });
        Ok(())
    }

    /// Persists the high watermark (Kafka's replication-offset-checkpoint).
    pub fn checkpoint_high_watermark(&self) -> Result<(), StorageError> {
        storage::checkpoint::write(
            &self.log.dir().join(HW_CHECKPOINT),
            &[self.high_watermark().to_string()],
        )
    }
}

fn read_hw_checkpoint(dir: &std::path::Path) -> Result<Option<i64>, StorageError> {
    let path = dir.join(HW_CHECKPOINT);
    let Some(lines) = storage::checkpoint::read(&path)? else {
        return Ok(None);
    };
    match lines.first().map(|l| l.trim().parse::<i64>()) {
        Some(Ok(hw)) => Ok(Some(hw)),
        _ => Err(StorageError::InvalidCheckpoint {
            path,
            reason: format!("bad high watermark {lines:?}"),
        }),
    }
}

/// Replays batch headers from the log start to recover producer sequences after a restart.
fn rebuild_producer_state(log: &Log) -> Result<ProducerStates, StorageError> {
    const CHUNK: usize = 8 << 20;
    let mut states = ProducerStates::default();
    let end = log.log_end_offset();
    let mut offset = log.log_start_offset();
    while offset < end {
        let read = log.read(offset, CHUNK, end)?;
        if read.records.is_empty() {
            break;
        }
        let mut next = offset;
        for batch in storage::batch::BatchIter::new(&read.records) {
            let header = batch?;
            states.record(&producer_batch(&header), header.base_offset());
            next = header.last_offset() + 1;
        }
        if next <= offset {
            break;
        }
        offset = next;
    }
    Ok(states)
}

/// The producer fields of a parsed batch header.
pub fn producer_batch(h: &storage::batch::BatchHeader<'_>) -> ProducerBatch {
    ProducerBatch {
        producer_id: h.producer_id(),
        producer_epoch: h.producer_epoch(),
        base_sequence: h.base_sequence(),
        last_offset_delta: h.last_offset_delta(),
    }
}

#[cfg(test)]
mod tests_support {
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    /// A zstd batch of `n` keyed records from producer `pid` starting at sequence `seq`.
    pub(super) fn batch(n: i32, pid: i64, seq: i32) -> Bytes {
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: pid,
                producer_epoch: 0,
                timestamp_type: TimestampType::Creation,
                offset: i64::from(i),
                sequence: if seq < 0 { i - 1 } else { seq + i },
                timestamp: 1,
                key: Some(Bytes::from_static(b"k")),
                value: None,
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::Zstd,
            },
        )
        .unwrap();
        buf.freeze()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::tests_support::batch;
    use super::*;
    use crate::storage::batch::BatchHeader;

    fn append(p: &Partition, b: &Bytes) -> Result<Appended, AppendError> {
        let header = BatchHeader::parse(b).unwrap();
        p.append(b, &producer_batch(&header))
    }

    #[test]
    fn a_retried_batch_is_answered_with_its_first_offset_even_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let p = Partition::open("t", 0, dir.path(), LogConfig::default(), 0).unwrap();
        let first = batch(10, 7, 0);
        assert_eq!(append(&p, &first).unwrap().base_offset, 0);
        let again = append(&p, &first).unwrap();
        assert!(again.duplicate);
        assert_eq!(again.base_offset, 0);
        assert_eq!(append(&p, &batch(5, 7, 10)).unwrap().base_offset, 10);
        assert!(matches!(
            append(&p, &batch(5, 7, 20)),
            Err(AppendError::OutOfOrderSequence { .. })
        ));
        drop(p);
        // Producer state comes back from the log.
        let p = Partition::open("t", 0, dir.path(), LogConfig::default(), 0).unwrap();
        assert!(p.become_leader(0, 0, 0, vec![0], vec![0]));
        let retry = append(&p, &batch(5, 7, 10)).unwrap();
        assert!(retry.duplicate);
        assert_eq!(retry.base_offset, 10);
        assert_eq!(p.high_watermark(), 15);
    }
}

#[cfg(test)]
mod delete_records_tests {
    use super::tests_support::batch;
    use super::*;

    #[test]
    fn the_log_start_moved_by_delete_records_survives_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let p = Partition::open("t", 0, dir.path(), LogConfig::default(), 0).unwrap();
        for i in 0..3 {
            let b = batch(10, -1, -1);
            let h = crate::storage::batch::BatchHeader::parse(&b).unwrap();
            assert_eq!(
                p.append(&b, &producer_batch(&h)).unwrap().base_offset,
                i * 10
            );
        }
        assert_eq!(p.delete_records_before(20).unwrap(), 20);
        // No clean close: what a kill -9 leaves.
        std::mem::forget(p);
        let p = Partition::open("t", 0, dir.path(), LogConfig::default(), 0).unwrap();
        assert_eq!(p.log_start_offset(), 20);
        assert_eq!(p.log_end_offset(), 30);
    }
}
