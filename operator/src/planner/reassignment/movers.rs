//! Constant-time answers to "can any replica on broker `a` move to broker `b`?".
//!
//! The balancing search asks this for every pair of brokers before each chain of moves; scanning
//! the partitions of `a` each time made large clusters (thousands of partitions) take seconds.
//! These counters are updated whenever a partition's replica set changes, at a cost of
//! O(replicas x racks) per change.

/// Counters over the current assignment, indexed by target broker (and rack).
#[derive(Clone)]
pub(super) struct Movers {
    /// `[a][r]`: rack-aware partitions on `a` with no replica in rack `r` except the one on `a`;
    /// any of them may move from `a` to any broker of rack `r`.
    rack_free: Vec<Vec<usize>>,
    /// `[a]`: partitions on `a` that ignore racks.
    plain: Vec<usize>,
    /// `[a][b]`: partitions that ignore racks and have replicas on both `a` and `b`.
    plain_shared: Vec<Vec<usize>>,
}

impl Movers {
    /// Empty counters for `brokers` brokers in `racks` racks.
    pub(super) fn new(brokers: usize, racks: usize) -> Self {
        Self {
            rack_free: vec![vec![0; racks]; brokers],
            plain: vec![0; brokers],
            plain_shared: vec![vec![0; brokers]; brokers],
        }
    }

    /// Adds (or, with `add == false`, removes) one partition placed on `hosts`.
    pub(super) fn account(
        &mut self,
        hosts: &[usize],
        rack_aware: bool,
        rack: &[Option<usize>],
        add: bool,
    ) {
        let bump = |counter: &mut usize| {
            *counter = if add {
                *counter + 1
            } else {
                counter.saturating_sub(1)
            };
        };
        for &a in hosts {
            if rack_aware {
                for (r, counter) in self.rack_free[a].iter_mut().enumerate() {
                    if hosts.iter().all(|&h| h == a || rack[h] != Some(r)) {
                        bump(counter);
                    }
                }
            } else {
                bump(&mut self.plain[a]);
                for &b in hosts.iter().filter(|&&b| b != a) {
                    bump(&mut self.plain_shared[a][b]);
                }
            }
        }
    }

    /// Whether some replica on `a` may move to `b`, which is in rack `rack_b`.
    pub(super) fn any(&self, a: usize, b: usize, rack_b: Option<usize>) -> bool {
        if a == b {
            return false;
        }
        let rack_aware = rack_b
            .and_then(|r| self.rack_free[a].get(r))
            .is_some_and(|&count| count > 0);
        rack_aware || self.plain[a] > self.plain_shared[a][b]
    }
}
