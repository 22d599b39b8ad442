//! Initial placement of new partitions' replicas on the live brokers: rack-aware, leaders spread.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::cluster::PartitionInfo;

/// A random starting broker for [`place`], so that the first partitions of many topics do not all
/// land on (and be led by) the same broker, as Kafka starts at a random index.
pub(super) fn random_start() -> usize {
    let bytes = Uuid::new_v4().into_bytes();
    usize::from(bytes[0]) << 8 | usize::from(bytes[1])
}

/// Placement of partitions `indexes` on `brokers` (`(id, rack)`), `rf` replicas each, the first
/// one leading (Kafka's replica assignment idea, rack-aware form). Brokers are ordered so that
/// consecutive ones are on different racks when racks are set (one broker of each rack in turn);
/// partition `i` takes `rf` consecutive brokers from position `start + i`, so replicas land on
/// distinct racks first and leaders rotate over every broker. Moving replicas later is the
/// operator's planner's job; this is the initial layout.
pub(super) fn place(
    brokers: &[(i32, Option<String>)],
    indexes: std::ops::Range<i32>,
    rf: usize,
    start: usize,
) -> Vec<PartitionInfo> {
    let order = rack_alternating(brokers);
    let n = order.len().max(1);
    indexes
        .map(|i| {
            let first = start.wrapping_add(usize::try_from(i).unwrap_or(0));
            let replicas: Vec<i32> = (0..rf.min(order.len()))
                .filter_map(|r| order.get((first + r) % n).copied())
                .collect();
            PartitionInfo::new(i, replicas)
        })
        .collect()
}

/// Broker ids ordered one per rack in turn (racks and brokers sorted), e.g. racks a:[1,4],
/// b:[2,5], c:[3] give 1,2,3,4,5. Brokers without a rack form their own group, so without racks
/// this is the sorted id list.
fn rack_alternating(brokers: &[(i32, Option<String>)]) -> Vec<i32> {
    let mut by_rack: std::collections::BTreeMap<Option<&str>, Vec<i32>> = BTreeMap::new();
    for (id, rack) in brokers {
        by_rack.entry(rack.as_deref()).or_default().push(*id);
    }
    for ids in by_rack.values_mut() {
        ids.sort_unstable();
    }
    let mut out = Vec::with_capacity(brokers.len());
    let longest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    for round in 0..longest {
        for ids in by_rack.values() {
            if let Some(id) = ids.get(round) {
                out.push(*id);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::{place, rack_alternating};

    fn brokers(spec: &[(i32, Option<&str>)]) -> Vec<(i32, Option<String>)> {
        spec.iter()
            .map(|(id, r)| (*id, r.map(str::to_owned)))
            .collect()
    }

    #[test]
    fn replicas_of_a_partition_are_on_distinct_racks_first() {
        let b = brokers(&[
            (1, Some("a")),
            (2, Some("a")),
            (3, Some("b")),
            (4, Some("b")),
            (5, Some("c")),
            (6, Some("c")),
        ]);
        assert_eq!(rack_alternating(&b), vec![1, 3, 5, 2, 4, 6]);
        let rack = |id: i32| b.iter().find(|x| x.0 == id).and_then(|x| x.1.clone());
        for start in 0..6 {
            for p in place(&b, 0..12, 3, start) {
                let racks: BTreeSet<_> = p.replicas.iter().map(|&r| rack(r)).collect();
                assert_eq!(racks.len(), 3, "partition {} on {:?}", p.index, p.replicas);
            }
        }
    }

    #[test]
    fn leaders_are_spread_over_every_broker() {
        let b = brokers(&[(0, None), (1, None), (2, None)]);
        let placed = place(&b, 0..30, 2, 7);
        let mut leaders: BTreeMap<i32, usize> = BTreeMap::new();
        for p in &placed {
            *leaders.entry(p.leader).or_default() += 1;
            assert_eq!(p.replicas.len(), 2);
            assert_ne!(p.replicas[0], p.replicas[1]);
            assert_eq!(p.isr, p.replicas);
        }
        assert_eq!(
            leaders.values().copied().collect::<Vec<_>>(),
            vec![10, 10, 10]
        );
    }

    #[test]
    fn a_replication_factor_over_the_broker_count_is_capped() {
        let b = brokers(&[(0, None)]);
        let placed = place(&b, 0..2, 3, 0);
        assert!(placed.iter().all(|p| p.replicas == vec![0]));
    }
}
