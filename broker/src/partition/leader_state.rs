//! The leader's view of its followers: each follower's log end offset and when it last caught up,
//! the high watermark they allow, and the ISR changes they call for (Kafka's `Partition` /
//! `Replica` state). Pure: time comes in as an argument, so every rule is unit-tested without I/O.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What the leader knows of one follower, from its fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerState {
    /// The follower's log end offset (its last fetch offset); -1 until it fetches in this epoch.
    pub leo: i64,
    /// When the follower last had everything the leader had (Kafka's `lastCaughtUpTimeMs`).
    pub last_caught_up: Instant,
    /// The leader's log end offset when the previous fetch was answered.
    last_fetch_leader_leo: i64,
    /// When the previous fetch was answered.
    last_fetch: Instant,
}

/// A leader's replication state for one partition, at one leader epoch.
#[derive(Debug, Clone)]
pub struct LeaderState {
    /// This broker.
    pub me: i32,
    pub leader_epoch: i32,
    /// The partition epoch of the metadata this state was built from: ISR changes are committed
    /// conditionally on it.
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    /// The committed ISR, the leader included.
    pub isr: Vec<i32>,
    followers: BTreeMap<i32, FollowerState>,
}

impl LeaderState {
    /// A new leadership. Followers start with an unknown log end offset; those in the ISR count as
    /// caught up now, so that they are not dropped before they had a chance to fetch (as Kafka does
    /// on becoming leader).
    pub fn new(
        me: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        now: Instant,
    ) -> Self {
        let mut s = LeaderState {
            me,
            leader_epoch,
            partition_epoch,
            replicas: Vec::new(),
            isr: Vec::new(),
            followers: BTreeMap::new(),
        };
        s.update(partition_epoch, replicas, isr, now);
        s
    }

    /// Applies new metadata of the same leader epoch (an ISR or replica set change). Known
    /// followers keep their state.
    pub fn update(
        &mut self,
        partition_epoch: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        now: Instant,
    ) {
        self.followers.retain(|id, _| replicas.contains(id));
        for &r in &replicas {
            if r != self.me {
                self.followers.entry(r).or_insert(FollowerState {
                    leo: -1,
                    last_caught_up: now,
                    last_fetch_leader_leo: -1,
                    last_fetch: now,
                });
            }
        }
        self.partition_epoch = partition_epoch;
        self.replicas = replicas;
        self.isr = isr;
    }

    /// A follower fetched from `fetch_offset` while the leader's log ended at `leader_leo`
    /// (Kafka's `Replica.updateFetchState`). Unknown replicas are ignored; returns whether the
    /// replica is one of this partition's followers.
    pub fn record_fetch(
        &mut self,
        replica: i32,
        fetch_offset: i64,
        leader_leo: i64,
        now: Instant,
    ) -> bool {
        let Some(f) = self.followers.get_mut(&replica) else {
            return false;
        };
        if fetch_offset >= leader_leo {
            f.last_caught_up = now;
        } else if fetch_offset >= f.last_fetch_leader_leo {
            // It has everything the leader had at its previous fetch: caught up as of then.
            f.last_caught_up = f.last_caught_up.max(f.last_fetch);
        }
        f.leo = fetch_offset;
        f.last_fetch_leader_leo = leader_leo;
        f.last_fetch = now;
        true
    }

    /// A follower's state, if it is one.
    #[must_use]
    pub fn follower(&self, replica: i32) -> Option<&FollowerState> {
        self.followers.get(&replica)
    }

    /// The smallest log end offset over the ISR, the leader's own being `leader_leo`; a follower
    /// that has not fetched in this epoch counts as -1 (the high watermark then does not move).
    #[must_use]
    pub fn isr_min_leo(&self, leader_leo: i64) -> i64 {
        self.isr
            .iter()
            .map(|&r| {
                if r == self.me {
                    leader_leo
                } else {
                    self.followers.get(&r).map_or(-1, |f| f.leo)
                }
            })
            .min()
            .unwrap_or(leader_leo)
    }

    /// The high watermark after this state changed: it never moves back on a leader.
    #[must_use]
    pub fn high_watermark(&self, current_hw: i64, leader_leo: i64) -> i64 {
        current_hw.max(self.isr_min_leo(leader_leo).min(leader_leo))
    }

    /// The ISR the leader should commit, if it differs from the current one: followers in the ISR
    /// that have not caught up within `max_lag` are dropped; followers outside it whose log end
    /// offset reached the high watermark (and this epoch's start, so that they hold this leader's
    /// records) are added. Ordered as `replicas`; the leader always stays.
    #[must_use]
    pub fn isr_change(
        &self,
        now: Instant,
        max_lag: Duration,
        hw: i64,
        epoch_start_offset: i64,
    ) -> Option<Vec<i32>> {
        let keep = |r: i32| -> bool {
            if r == self.me {
                return true;
            }
            let Some(f) = self.followers.get(&r) else {
                return false;
            };
            if self.isr.contains(&r) {
                now.saturating_duration_since(f.last_caught_up) <= max_lag
            } else {
                f.leo >= 0 && f.leo >= hw && f.leo >= epoch_start_offset
            }
        };
        let next: Vec<i32> = self.replicas.iter().copied().filter(|&r| keep(r)).collect();
        let mut a = next.clone();
        let mut b = self.isr.clone();
        a.sort_unstable();
        b.sort_unstable();
        (a != b).then_some(next)
    }

    /// Replicas not in the ISR: the partition is under-replicated when this is not empty.
    #[must_use]
    pub fn out_of_sync(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.isr.contains(r))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(now: Instant) -> LeaderState {
        LeaderState::new(1, 3, 7, vec![1, 2, 3], vec![1, 2, 3], now)
    }

    #[test]
    fn the_high_watermark_is_the_smallest_leo_in_the_isr() {
        let t = Instant::now();
        let mut s = state(t);
        // Followers that have not fetched hold it back.
        assert_eq!(s.high_watermark(0, 10), 0);
        s.record_fetch(2, 10, 10, t);
        assert_eq!(s.high_watermark(0, 10), 0);
        s.record_fetch(3, 6, 10, t);
        assert_eq!(s.high_watermark(0, 10), 6);
        s.record_fetch(3, 10, 10, t);
        assert_eq!(s.high_watermark(6, 10), 10);
    }

    #[test]
    fn the_high_watermark_of_a_lone_leader_is_its_leo() {
        let s = LeaderState::new(1, 0, 0, vec![1], vec![1], Instant::now());
        assert_eq!(s.high_watermark(0, 42), 42);
    }

    #[test]
    fn the_leader_high_watermark_never_moves_back() {
        let t = Instant::now();
        let mut s = state(t);
        s.record_fetch(2, 5, 10, t);
        s.record_fetch(3, 5, 10, t);
        assert_eq!(s.high_watermark(8, 10), 8);
    }

    #[test]
    fn out_of_sync_followers_do_not_hold_back_the_high_watermark() {
        let t = Instant::now();
        let mut s = LeaderState::new(1, 0, 0, vec![1, 2, 3], vec![1, 2], t);
        s.record_fetch(2, 9, 9, t);
        assert_eq!(s.high_watermark(0, 9), 9);
    }

    #[test]
    fn a_follower_that_stops_fetching_is_dropped_after_the_max_lag() {
        let t = Instant::now();
        let lag = Duration::from_secs(30);
        let mut s = state(t);
        s.record_fetch(2, 10, 10, t + Duration::from_secs(25));
        s.record_fetch(3, 10, 10, t + Duration::from_secs(25));
        assert_eq!(s.isr_change(t + Duration::from_secs(40), lag, 10, 0), None);
        s.record_fetch(2, 10, 10, t + Duration::from_secs(50));
        assert_eq!(
            s.isr_change(t + Duration::from_secs(56), lag, 10, 0),
            Some(vec![1, 2])
        );
    }

    #[test]
    fn a_follower_fetching_but_always_behind_is_dropped() {
        let t = Instant::now();
        let lag = Duration::from_secs(10);
        let mut s = state(t);
        s.record_fetch(3, 100, 100, t);
        // Replica 2 fetches often but the leader keeps growing faster than it catches up.
        for i in 1..=20u64 {
            let now = t + Duration::from_secs(i);
            s.record_fetch(2, i as i64, 1000 + i as i64 * 100, now);
            s.record_fetch(3, 1000 + i as i64 * 100, 1000 + i as i64 * 100, now);
        }
        assert_eq!(
            s.isr_change(t + Duration::from_secs(20), lag, 0, 0),
            Some(vec![1, 3])
        );
    }

    #[test]
    fn a_follower_that_had_the_previous_leo_counts_as_caught_up_then() {
        let t = Instant::now();
        let mut s = state(t);
        s.record_fetch(2, 5, 10, t + Duration::from_secs(5));
        // Now fetches 10 = the leader's LEO at the previous fetch, though the leader moved to 12.
        s.record_fetch(2, 10, 12, t + Duration::from_secs(9));
        assert_eq!(
            s.follower(2).map(|f| f.last_caught_up),
            Some(t + Duration::from_secs(5))
        );
    }

    #[test]
    fn a_follower_that_reaches_the_high_watermark_rejoins_the_isr() {
        let t = Instant::now();
        let lag = Duration::from_secs(30);
        let mut s = LeaderState::new(1, 2, 5, vec![1, 2, 3], vec![1, 3], t);
        s.record_fetch(3, 20, 20, t);
        s.record_fetch(2, 15, 20, t);
        assert_eq!(s.isr_change(t, lag, 20, 0), None);
        s.record_fetch(2, 20, 20, t);
        assert_eq!(s.isr_change(t, lag, 20, 0), Some(vec![1, 2, 3]));
        // Not before it holds this epoch's first record.
        assert_eq!(s.isr_change(t, lag, 20, 25), None);
    }

    #[test]
    fn metadata_updates_keep_follower_progress() {
        let t = Instant::now();
        let mut s = state(t);
        s.record_fetch(2, 4, 4, t);
        s.update(8, vec![1, 2, 3], vec![1, 2], t);
        assert_eq!(s.follower(2).map(|f| f.leo), Some(4));
        assert_eq!(s.out_of_sync(), vec![3]);
        assert!(!s.record_fetch(9, 4, 4, t));
    }

    proptest::proptest! {
        /// Whatever the followers report, the high watermark never moves back and never passes
        /// an in-sync replica's log end offset.
        #[test]
        fn the_high_watermark_is_monotonic_and_never_passes_an_isr_member(
            steps in proptest::collection::vec((0usize..3, 0i64..50), 1..60),
        ) {
            let t = Instant::now();
            let mut s = LeaderState::new(1, 0, 0, vec![1, 2, 3], vec![1, 2, 3], t);
            let mut leo = [0i64; 3];
            let mut hw = 0i64;
            for (who, amount) in steps {
                if who == 0 {
                    leo[0] += amount;
                } else {
                    // A follower reports a fetch offset up to the leader's log end.
                    let offset = leo[who].max(amount.min(leo[0]));
                    leo[who] = offset;
                    s.record_fetch(who as i32 + 1, offset, leo[0], t);
                }
                let next = s.high_watermark(hw, leo[0]);
                proptest::prop_assert!(next >= hw);
                proptest::prop_assert!(leo.iter().all(|&l| next <= l));
                hw = next;
            }
        }
    }
}
