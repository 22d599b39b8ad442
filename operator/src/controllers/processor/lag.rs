//! Consumer lag of a Processor and the rates derived from two samples, pure except for [`sample`].
//!
//! Lag is Kafka's: per input partition, the latest offset minus the group's committed offset; a
//! partition the group never committed counts whole (the job starts from the beginning).

use std::collections::BTreeMap;

use crate::admin::{AdminError, KafkaAdmin, TopicPartition};

/// Offsets of a Processor's inputs at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LagSample {
    /// When, in seconds (any fixed origin).
    pub at_seconds: i64,
    /// Largest partition count over the inputs: the most tasks, so the most useful replicas.
    pub partitions: u32,
    /// Sum of the latest offsets of every input partition.
    pub end_sum: i64,
    /// Sum of the group's committed offsets (0 for partitions without a commit).
    pub committed_sum: i64,
    /// Sum over partitions of `max(latest - committed, 0)`.
    pub total_lag: i64,
}

/// Rates between two samples, records per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// Records produced to the inputs per second.
    pub input: f64,
    /// Records the processor consumed (committed) per second.
    pub processing: f64,
}

/// Builds a sample from offsets.
#[must_use]
pub fn from_offsets(
    at_seconds: i64,
    partitions: u32,
    end: &BTreeMap<TopicPartition, i64>,
    committed: &BTreeMap<TopicPartition, i64>,
) -> LagSample {
    let mut sample = LagSample {
        at_seconds,
        partitions,
        end_sum: 0,
        committed_sum: 0,
        total_lag: 0,
    };
    for (tp, &latest) in end {
        let done = committed.get(tp).copied().unwrap_or(0).min(latest);
        sample.end_sum = sample.end_sum.saturating_add(latest);
        sample.committed_sum = sample.committed_sum.saturating_add(done);
        sample.total_lag = sample.total_lag.saturating_add((latest - done).max(0));
    }
    sample
}

/// Rates from `previous` to `now`; `None` when no time passed or offsets went backwards (topics
/// recreated, group reset), which would give meaningless rates.
#[must_use]
pub fn rates(previous: &LagSample, now: &LagSample) -> Option<Rates> {
    let dt = now.at_seconds - previous.at_seconds;
    let produced = now.end_sum - previous.end_sum;
    let processed = now.committed_sum - previous.committed_sum;
    if dt <= 0 || produced < 0 || processed < 0 {
        return None;
    }
    #[allow(clippy::cast_precision_loss)] // offsets and seconds far below 2^52
    let rates = Rates {
        input: produced as f64 / dt as f64,
        processing: processed as f64 / dt as f64,
    };
    Some(rates)
}

/// Reads the offsets of `inputs` and the committed offsets of `group`.
///
/// # Errors
/// Admin failures.
pub async fn sample(
    admin: &dyn KafkaAdmin,
    inputs: &[String],
    group: &str,
    at_seconds: i64,
) -> Result<LagSample, AdminError> {
    let topics = admin.describe_topics(Some(inputs)).await?;
    let partitions: Vec<TopicPartition> = topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| TopicPartition {
                topic: t.name.clone(),
                partition: p.partition,
            })
        })
        .collect();
    let max_partitions = topics
        .iter()
        .map(|t| u32::try_from(t.partitions.len()).unwrap_or(u32::MAX))
        .max()
        .unwrap_or(0);
    let end = admin.end_offsets(&partitions).await?;
    let committed = admin.committed_offsets(group, &partitions).await?;
    Ok(from_offsets(at_seconds, max_partitions, &end, &committed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition {
            topic: "t".into(),
            partition: p,
        }
    }

    #[test]
    fn lag_is_latest_minus_committed_and_uncommitted_partitions_count_whole() {
        let end = BTreeMap::from([(tp(0), 100), (tp(1), 50), (tp(2), 10)]);
        let committed = BTreeMap::from([(tp(0), 90), (tp(1), 50)]);
        let s = from_offsets(0, 3, &end, &committed);
        // 10 behind on partition 0, caught up on 1, never committed on 2 (all 10).
        assert_eq!(s.total_lag, 20);
        assert_eq!(s.end_sum, 160);
        assert_eq!(s.committed_sum, 140);
    }

    #[test]
    fn rates_come_from_offset_deltas_and_resets_give_none() {
        let a = LagSample {
            at_seconds: 0,
            partitions: 1,
            end_sum: 0,
            committed_sum: 0,
            total_lag: 0,
        };
        let b = LagSample {
            at_seconds: 10,
            partitions: 1,
            end_sum: 1000,
            committed_sum: 500,
            total_lag: 500,
        };
        assert_eq!(
            rates(&a, &b),
            Some(Rates {
                input: 100.0,
                processing: 50.0
            })
        );
        assert_eq!(rates(&b, &a), None);
        assert_eq!(rates(&a, &a), None);
    }

    proptest! {
        #[test]
        fn lag_is_never_negative_and_bounded_by_the_end_offsets(
            offsets in proptest::collection::vec((0i64..1_000_000, proptest::option::of(0i64..2_000_000)), 0..20)
        ) {
            let end: BTreeMap<_, _> = offsets.iter().enumerate().map(|(i, (e, _))| (tp(i as i32), *e)).collect();
            let committed: BTreeMap<_, _> = offsets
                .iter()
                .enumerate()
                .filter_map(|(i, (_, c))| c.map(|c| (tp(i as i32), c)))
                .collect();
            let s = from_offsets(0, 1, &end, &committed);
            prop_assert!(s.total_lag >= 0);
            prop_assert!(s.total_lag <= s.end_sum);
            prop_assert_eq!(s.total_lag, s.end_sum - s.committed_sum);
        }
    }
}
