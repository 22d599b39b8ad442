//! Idempotent-producer bookkeeping of one partition (Kafka's `ProducerStateManager`, without
//! transactions): per producer id, its epoch and the last five batches' sequence ranges, so that a
//! retried batch is answered with its original offset instead of being appended twice, and a gap in
//! sequence numbers is refused with `OUT_OF_ORDER_SEQUENCE_NUMBER`.

use std::collections::{HashMap, VecDeque};

/// Batches remembered per producer: librdkafka and the Java client keep at most five in flight.
const CACHED_BATCHES: usize = 5;

/// What a batch's producer fields say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    /// Records in the batch minus one (`lastOffsetDelta`).
    pub last_offset_delta: i32,
}

impl ProducerBatch {
    fn last_sequence(&self) -> i32 {
        // Sequences wrap around at i32::MAX, as in Kafka.
        let last = i64::from(self.base_sequence) + i64::from(self.last_offset_delta);
        if last > i64::from(i32::MAX) {
            (last - i64::from(i32::MAX) - 1) as i32
        } else {
            last as i32
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CachedBatch {
    first_seq: i32,
    last_seq: i32,
    base_offset: i64,
}

#[derive(Debug, Default)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<CachedBatch>,
}

/// The verdict on a batch before it is appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    Append,
    /// Already in the log at this base offset: answer success without appending.
    Duplicate { base_offset: i64 },
    /// A sequence gap (or a new epoch not starting at 0).
    OutOfOrder,
    /// The epoch is older than the producer's current one: a zombie.
    InvalidEpoch,
}

/// All producers seen by one partition.
#[derive(Debug, Default)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerStates {
    /// Decides what to do with `batch` (only batches with a producer id >= 0 are checked).
    pub fn check(&self, batch: &ProducerBatch) -> SequenceCheck {
        if batch.producer_id < 0 {
            return SequenceCheck::Append;
        }
        let Some(entry) = self.producers.get(&batch.producer_id) else {
            // An unknown producer (new, or its state is older than what we kept): accept any sequence.
            return SequenceCheck::Append;
        };
        if batch.producer_epoch < entry.epoch {
            return SequenceCheck::InvalidEpoch;
        }
        if batch.producer_epoch > entry.epoch {
            return if batch.base_sequence == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::OutOfOrder
            };
        }
        let last_seq = batch.last_sequence();
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == batch.base_sequence && b.last_seq == last_seq)
        {
            return SequenceCheck::Duplicate {
                base_offset: dup.base_offset,
            };
        }
        match entry.batches.back() {
            Some(last) if !in_sequence(last.last_seq, batch.base_sequence) => {
                SequenceCheck::OutOfOrder
            }
            _ => SequenceCheck::Append,
        }
    }

    /// Records an appended batch (also used to rebuild the state from the log on start).
    pub fn record(&mut self, batch: &ProducerBatch, base_offset: i64) {
        if batch.producer_id < 0 {
            return;
        }
        let entry = self.producers.entry(batch.producer_id).or_default();
        if batch.producer_epoch != entry.epoch {
            entry.epoch = batch.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == CACHED_BATCHES {
            entry.batches.pop_front();
        }
        entry.batches.push_back(CachedBatch {
            first_seq: batch.base_sequence,
            last_seq: batch.last_sequence(),
            base_offset,
        });
    }

    /// Forgets everything at or past `offset` (log truncation).
    pub fn truncate(&mut self, offset: i64) {
        for entry in self.producers.values_mut() {
            entry.batches.retain(|b| b.base_offset < offset);
        }
        self.producers.retain(|_, e| !e.batches.is_empty());
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
}

fn in_sequence(last_seq: i32, next_first: i32) -> bool {
    if last_seq == i32::MAX {
        next_first == 0
    } else {
        next_first == last_seq + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(pid: i64, epoch: i16, seq: i32, n: i32) -> ProducerBatch {
        ProducerBatch {
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            last_offset_delta: n - 1,
        }
    }

    #[test]
    fn a_retried_batch_is_a_duplicate_with_its_first_offset() {
        let mut s = ProducerStates::default();
        let b = batch(7, 0, 0, 10);
        assert_eq!(s.check(&b), SequenceCheck::Append);
        s.record(&b, 100);
        assert_eq!(s.check(&b), SequenceCheck::Duplicate { base_offset: 100 });
        let next = batch(7, 0, 10, 5);
        assert_eq!(s.check(&next), SequenceCheck::Append);
    }

    #[test]
    fn a_gap_is_out_of_order() {
        let mut s = ProducerStates::default();
        s.record(&batch(7, 0, 0, 10), 0);
        assert_eq!(s.check(&batch(7, 0, 11, 1)), SequenceCheck::OutOfOrder);
        assert_eq!(s.check(&batch(7, 0, 9, 1)), SequenceCheck::OutOfOrder);
    }

    #[test]
    fn epochs_fence_zombies_and_restart_sequences() {
        let mut s = ProducerStates::default();
        s.record(&batch(7, 1, 0, 1), 0);
        assert_eq!(s.check(&batch(7, 0, 1, 1)), SequenceCheck::InvalidEpoch);
        assert_eq!(s.check(&batch(7, 2, 5, 1)), SequenceCheck::OutOfOrder);
        assert_eq!(s.check(&batch(7, 2, 0, 1)), SequenceCheck::Append);
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut s = ProducerStates::default();
        for i in 0..6 {
            s.record(&batch(1, 0, i, 1), i64::from(i));
        }
        assert_eq!(s.check(&batch(1, 0, 0, 1)), SequenceCheck::OutOfOrder);
        assert_eq!(
            s.check(&batch(1, 0, 1, 1)),
            SequenceCheck::Duplicate { base_offset: 1 }
        );
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        let mut s = ProducerStates::default();
        assert_eq!(batch(1, 0, i32::MAX - 1, 2).last_sequence(), i32::MAX);
        assert_eq!(batch(1, 0, i32::MAX, 2).last_sequence(), 0);
        s.record(&batch(1, 0, i32::MAX - 1, 1), 0);
        assert_eq!(s.check(&batch(1, 0, i32::MAX, 1)), SequenceCheck::Append);
        s.record(&batch(1, 0, i32::MAX, 1), 1);
        assert_eq!(s.check(&batch(1, 0, 0, 1)), SequenceCheck::Append);
    }

    #[test]
    fn non_idempotent_batches_are_never_checked() {
        let s = ProducerStates::default();
        assert_eq!(s.check(&batch(-1, -1, -1, 3)), SequenceCheck::Append);
    }

    #[test]
    fn truncation_forgets_batches_past_the_offset() {
        let mut s = ProducerStates::default();
        s.record(&batch(1, 0, 0, 1), 10);
        s.record(&batch(1, 0, 1, 1), 11);
        s.truncate(11);
        assert_eq!(s.check(&batch(1, 0, 1, 1)), SequenceCheck::Append);
        s.truncate(0);
        assert!(s.is_empty());
    }
}
