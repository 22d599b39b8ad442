//! The scaling decision on named clusters.

use odradek_crds::broker::{ReassignmentStatus, RebalanceSpec};

use super::*;
use crate::admin::{BrokerNode, OngoingReassignment, PartitionDescription, TopicDescription};

fn brokers(n: i32) -> Vec<BrokerNode> {
    (0..n)
        .map(|id| BrokerNode {
            id,
            host: format!("b{id}"),
            port: 9092,
            rack: None,
        })
        .collect()
}

/// A topic whose partition `p` has replicas `[(p + r) % on]` for `r < rf`.
fn topic(name: &str, partitions: i32, rf: i32, on: i32) -> TopicDescription {
    TopicDescription {
        name: name.into(),
        topic_id: format!("id-{name}"),
        is_internal: false,
        partitions: (0..partitions)
            .map(|p| {
                let replicas: Vec<i32> = (0..rf).map(|r| (p + r) % on).collect();
                PartitionDescription {
                    partition: p,
                    leader: replicas.first().copied(),
                    isr: replicas.clone(),
                    replicas,
                }
            })
            .collect(),
    }
}

fn view(registered: i32, topics: Vec<TopicDescription>) -> ClusterView {
    ClusterView {
        brokers: brokers(registered),
        fenced: Vec::new(),
        topics,
        ongoing: Vec::new(),
    }
}

fn rebalance() -> RebalanceSpec {
    RebalanceSpec::default()
}

#[test]
fn a_new_cluster_starts_at_the_desired_size() {
    let step = decide(None, 3, None, &rebalance(), None).unwrap();
    assert_eq!(step.statefulset_replicas, 3);
    assert!(step.submit.is_empty() && !step.waiting);
}

#[test]
fn scale_down_is_refused_when_a_topic_needs_more_replicas() {
    let v = view(
        3,
        vec![topic("page-views", 6, 1, 3), topic("newsfeed", 3, 3, 3)],
    );
    let step = decide(Some(3), 2, Some(&v), &rebalance(), None).unwrap();
    assert_eq!(
        step.statefulset_replicas, 3,
        "the StatefulSet must not shrink"
    );
    let refused = step.refused.unwrap();
    assert!(refused.contains("newsfeed"), "{refused}");
    assert!(step.submit.is_empty());
}

#[test]
fn scale_down_moves_replicas_off_the_leaving_brokers_before_shrinking() {
    let v = view(3, vec![topic("page-views", 6, 1, 3)]);
    let step = decide(Some(3), 2, Some(&v), &rebalance(), None).unwrap();
    assert_eq!(step.statefulset_replicas, 3);
    assert!(step.waiting);
    assert!(!step.submit.is_empty());
    for r in &step.submit {
        let replicas = r.replicas.as_ref().unwrap();
        assert!(
            replicas.iter().all(|b| *b < 2),
            "{r:?} lands on a leaving broker"
        );
    }
    let p = step.progress.unwrap();
    assert_eq!(p.reason, "ScaleDown");
    assert_eq!(p.target_replicas, 2);
    assert_eq!(p.in_progress, i32::try_from(step.submit.len()).unwrap());
}

#[test]
fn scale_down_shrinks_once_the_leaving_brokers_are_empty() {
    // Every replica already on brokers 0 and 1, evenly.
    let v = view(3, vec![topic("page-views", 6, 1, 2)]);
    let step = decide(Some(3), 2, Some(&v), &rebalance(), None).unwrap();
    assert_eq!(step.statefulset_replicas, 2);
    assert!(step.submit.is_empty() && step.refused.is_none());
}

#[test]
fn scale_down_waits_for_reassignments_in_flight() {
    let mut v = view(3, vec![topic("page-views", 6, 1, 3)]);
    v.ongoing.push(OngoingReassignment {
        topic: "page-views".into(),
        partition: 2,
        replicas: vec![2, 0],
        adding: vec![0],
        removing: vec![2],
    });
    let previous = ReassignmentStatus {
        reason: "ScaleDown".into(),
        target_replicas: 2,
        total: 2,
        completed: 0,
        in_progress: 2,
    };
    let step = decide(Some(3), 2, Some(&v), &rebalance(), Some(&previous)).unwrap();
    assert_eq!(step.statefulset_replicas, 3);
    assert!(step.submit.is_empty() && step.waiting);
    let p = step.progress.unwrap();
    assert_eq!((p.total, p.in_progress, p.completed), (2, 1, 1));
}

#[test]
fn scale_down_without_cluster_metadata_is_an_error_not_a_shrink() {
    assert_eq!(
        decide(Some(3), 2, None, &rebalance(), None),
        Err(ScaleError::NeedsClusterView {
            current: 3,
            desired: 2
        })
    );
}

#[test]
fn scale_up_grows_at_once_and_rebalances_after_the_new_brokers_register() {
    let topics = vec![topic("page-views", 10, 2, 3)];
    // New brokers 3 and 4 not registered yet: grow, wait.
    let step = decide(
        Some(3),
        5,
        Some(&view(3, topics.clone())),
        &rebalance(),
        None,
    )
    .unwrap();
    assert_eq!(step.statefulset_replicas, 5);
    assert!(step.waiting && step.submit.is_empty());
    // Registered: move replicas onto them.
    let step = decide(Some(5), 5, Some(&view(5, topics)), &rebalance(), None).unwrap();
    assert_eq!(step.statefulset_replicas, 5);
    assert!(!step.submit.is_empty());
    assert!(step.submit.len() <= 10, "max concurrent moves");
    let onto_new = step
        .submit
        .iter()
        .flat_map(|r| r.replicas.clone().unwrap())
        .any(|b| b >= 3);
    assert!(onto_new, "{:?}", step.submit);
    assert_eq!(step.progress.unwrap().reason, "ScaleUp");
}

#[test]
fn scale_up_without_rebalance_only_grows() {
    let topics = vec![topic("page-views", 10, 2, 3)];
    let off = RebalanceSpec {
        on_scale: false,
        max_concurrent_moves: 10,
    };
    let step = decide(Some(5), 5, Some(&view(5, topics)), &off, None).unwrap();
    assert!(step.submit.is_empty() && !step.waiting);
}

#[test]
fn a_balanced_cluster_moves_nothing() {
    let v = view(3, vec![topic("page-views", 6, 3, 3)]);
    let step = decide(Some(3), 3, Some(&v), &rebalance(), None).unwrap();
    assert_eq!(
        step,
        ScaleStep {
            statefulset_replicas: 3,
            ..ScaleStep::default()
        }
    );
}

#[test]
fn batches_respect_max_concurrent_moves() {
    let v = view(3, vec![topic("page-views", 30, 1, 3)]);
    let small = RebalanceSpec {
        on_scale: true,
        max_concurrent_moves: 2,
    };
    let step = decide(Some(3), 2, Some(&v), &small, None).unwrap();
    assert_eq!(step.submit.len(), 2);
    let p = step.progress.unwrap();
    assert!(p.total >= 10, "{p:?}");
}

#[test]
fn brokers_removed_by_a_finished_scale_down_are_unregistered_once_fenced() {
    // Five brokers shrunk to three: 3 and 4 are still running (unfenced) right after the shrink.
    let mut v = view(5, vec![topic("t", 6, 1, 3)]);
    let step = decide(Some(5), 3, Some(&v), &rebalance(), None).unwrap();
    assert_eq!(step.statefulset_replicas, 3);
    assert!(step.unregister.is_empty());
    // Their pods are gone: the cluster fenced them.
    v.brokers.retain(|b| b.id < 3);
    v.fenced = vec![3, 4];
    let step = decide(Some(3), 3, Some(&v), &rebalance(), None).unwrap();
    assert_eq!(step.unregister, vec![3, 4]);
    // Broker 1 restarting is fenced too, but it is a member of the StatefulSet and stays registered.
    v.brokers.retain(|b| b.id != 1);
    v.fenced = vec![1, 3, 4];
    let step = decide(Some(3), 3, Some(&v), &rebalance(), None).unwrap();
    assert_eq!(step.unregister, vec![3, 4]);
    // Mid scale-down (the StatefulSet still has five pods) nothing is unregistered.
    v.fenced = vec![4];
    v.brokers = brokers(4);
    let step = decide(Some(5), 3, Some(&v), &rebalance(), None).unwrap();
    assert!(step.unregister.is_empty());
}

#[test]
fn a_reassignment_in_flight_does_not_count_its_removed_replicas_as_replication_factor() {
    // Partition 0 of an RF-3 topic is moving off broker 3: Metadata lists four replicas meanwhile.
    let mut v = view(4, vec![topic("offsets", 1, 3, 3)]);
    v.topics[0].partitions[0].replicas = vec![1, 0, 2, 3];
    v.ongoing = vec![OngoingReassignment {
        topic: "offsets".into(),
        partition: 0,
        replicas: vec![1, 0, 2, 3],
        adding: vec![1],
        removing: vec![3],
    }];
    let step = decide(Some(4), 3, Some(&v), &rebalance(), None).unwrap();
    assert!(step.refused.is_none(), "{:?}", step.refused);
    assert!(step.waiting, "waits for the move in flight");
    assert_eq!(step.statefulset_replicas, 4);
}
