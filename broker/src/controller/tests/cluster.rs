//! Scenarios on in-process clusters: fencing after a session timeout, controlled shutdown,
//! reassignment and elections over the wire.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::*;

use super::harness::{TestCluster, call, eventually, listeners, reassign, topic_name};
use crate::cluster::MetadataRecord;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_broker_is_fenced_and_its_leadership_returns_after_it_comes_back() {
    let mut cluster = TestCluster::start(3).await;
    cluster.create("replicated", vec![vec![2, 0, 1]]).await;
    cluster.create("alone", vec![vec![2]]).await;
    assert_eq!(cluster.partition("replicated", 0).leader, 2);

    cluster.nodes[2].kill().await;
    cluster
        .until(
            "broker 2 is fenced and replicated-0 has a new leader",
            |s| {
                s.fenced.contains(&2)
                    && s.partition("replicated", 0)
                        .is_some_and(|p| p.leader == 0 && p.isr == vec![0, 1])
            },
        )
        .await;
    // The only replica is gone: no leader, but it stays in the ISR (no unclean election later).
    let alone = cluster.partition("alone", 0);
    assert_eq!((alone.leader, alone.isr.clone()), (-1, vec![2]));
    // Nor on request: an unclean election is refused, a preferred one has nobody to elect.
    for (election_type, code) in [
        (1, ResponseError::InvalidRequest),
        (0, ResponseError::PreferredLeaderNotAvailable),
    ] {
        let request = ElectLeadersRequest::default()
            .with_election_type(election_type)
            .with_topic_partitions(Some(vec![
                elect_leaders_request::TopicPartitions::default()
                    .with_topic(topic_name("alone"))
                    .with_partitions(vec![0]),
            ]));
        let r = call(cluster.node(1).addr, &request, 1).await;
        assert_eq!(
            r.replica_election_results[0].partition_result[0].error_code,
            code.code(),
            "{r:?}"
        );
    }
    assert_eq!(cluster.partition("alone", 0).leader, -1);
    let b0 = cluster.node(0).broker.clone();
    let controller = &b0.metrics;
    // The gauges follow at the controller's next tick.
    eventually("broker 0's controller counts one fenced broker", || {
        controller.fenced_brokers.get() == 1
    })
    .await;
    assert_eq!(controller.active_controller.get(), 1);

    // It comes back: unfenced, and it leads its single-replica partition again at once.
    let (kafka, http) = listeners().await;
    cluster.nodes[2].serve(kafka, http);
    cluster
        .until("broker 2 is unfenced and leads alone-0", |s| {
            !s.fenced.contains(&2) && s.partition("alone", 0).is_some_and(|p| p.leader == 2)
        })
        .await;
    // Its follower catches up and the leader widens the ISR; the preferred leader takes over.
    cluster
        .until("broker 2 is back in the ISR of replicated-0", |s| {
            s.partition("replicated", 0)
                .is_some_and(|p| p.isr.contains(&2))
        })
        .await;
    cluster
        .until("the preferred replica leads replicated-0 again", |s| {
            s.partition("replicated", 0).is_some_and(|p| p.leader == 2)
        })
        .await;
    assert!(
        cluster.node(1).broker.metrics.leader_elections.get() + controller.leader_elections.get()
            >= 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controlled_shutdown_moves_leadership_before_the_broker_stops() {
    let mut cluster = TestCluster::start(3).await;
    cluster
        .create("led-by-1", vec![vec![1, 2], vec![1, 0]])
        .await;
    cluster.nodes[1].terminate().await;
    // Moved during shutdown, not after a session timeout: already true when serve returns.
    let state = cluster.metadata.read().clone();
    assert!(state.fenced.contains(&1));
    assert_eq!(state.partition("led-by-1", 0).map(|p| p.leader), Some(2));
    assert_eq!(state.partition("led-by-1", 1).map(|p| p.leader), Some(0));
    drop(state);
    // Back again: its heartbeats unfence it, and once in sync it is preferred again.
    let (kafka, http) = listeners().await;
    cluster.nodes[1].serve(kafka, http);
    cluster
        .until("broker 1 is unfenced", |s| !s.fenced.contains(&1))
        .await;
    cluster
        .until("broker 1 has caught up and is back in the ISR", |s| {
            s.partition("led-by-1", 0)
                .is_some_and(|p| p.isr.contains(&1))
        })
        .await;
    cluster
        .until("broker 1 leads led-by-1-0 again", |s| {
            s.partition("led-by-1", 0).is_some_and(|p| p.leader == 1)
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reassignments_are_started_listed_completed_and_cancelled_over_the_wire() {
    let mut cluster = TestCluster::start(3).await;
    cluster.create("moving", vec![vec![0, 1], vec![0, 1]]).await;
    for index in [0, 1] {
        assert_eq!(cluster.produce("moving", index, 5).await, 0);
    }
    // The broker the reassignments add is down: they stay in progress until it is back and has
    // copied the data.
    cluster.nodes[2].terminate().await;
    let addr = cluster.node(1).addr;

    // Move partition 0 from {0, 1} to {1, 2}; partition 1 to {2}, then cancel that one.
    for v in [0, 1] {
        let target = if v == 0 { vec![1, 2] } else { vec![2] };
        let r = call(addr, &reassign("moving", v, Some(target)), 1).await;
        assert_eq!(r.error_code, 0);
        assert_eq!(r.responses[0].partitions[0].error_code, 0, "{r:?}");
    }
    let p = cluster.partition("moving", 0);
    assert_eq!(p.replicas, vec![1, 2, 0]);
    assert_eq!(
        (p.adding_replicas.clone(), p.removing_replicas.clone()),
        (vec![2], vec![0])
    );
    let listed = call(
        addr,
        &ListPartitionReassignmentsRequest::default().with_topics(None),
        0,
    )
    .await;
    assert_eq!(listed.topics.len(), 1);
    type Ongoing = (i32, Vec<BrokerId>, Vec<BrokerId>, Vec<BrokerId>);
    let mut ongoing: Vec<Ongoing> = listed.topics[0]
        .partitions
        .iter()
        .map(|p| {
            (
                p.partition_index,
                p.replicas.clone(),
                p.adding_replicas.clone(),
                p.removing_replicas.clone(),
            )
        })
        .collect();
    ongoing.sort_by_key(|o| o.0);
    assert_eq!(
        ongoing,
        vec![
            (
                0,
                vec![BrokerId(1), BrokerId(2), BrokerId(0)],
                vec![BrokerId(2)],
                vec![BrokerId(0)]
            ),
            (
                1,
                vec![BrokerId(2), BrokerId(0), BrokerId(1)],
                vec![BrokerId(2)],
                vec![BrokerId(0), BrokerId(1)]
            ),
        ]
    );

    let r = call(addr, &reassign("moving", 1, None), 0).await;
    assert_eq!(r.responses[0].partitions[0].error_code, 0, "{r:?}");
    let p1 = cluster.partition("moving", 1);
    assert_eq!((p1.replicas.clone(), p1.leader), (vec![0, 1], 0));
    assert!(p1.adding_replicas.is_empty() && p1.removing_replicas.is_empty());
    let r = call(addr, &reassign("moving", 1, None), 1).await;
    assert_eq!(
        r.responses[0].partitions[0].error_code,
        ResponseError::NoReassignmentInProgress.code()
    );

    // Not complete while the new replica is out of sync: a controller tick after the
    // cancellation counts the one left in progress rather than completing it.
    let b1 = cluster.node(1).broker.clone();
    eventually(
        "a controller tick counts one reassignment in progress",
        || b1.metrics.reassignments_in_progress.get() == 1,
    )
    .await;
    assert_eq!(cluster.partition("moving", 0).adding_replicas, vec![2]);

    // Broker 2 comes back: it copies the partition from its leader, joins the ISR, and the
    // reassignment completes; broker 0 hands over leadership and deletes its copy.
    let (kafka, http) = listeners().await;
    cluster.nodes[2].serve(kafka, http);
    cluster
        .until("the reassignment of moving-0 completes", |s| {
            s.partition("moving", 0).is_some_and(|p| {
                p.replicas == vec![1, 2]
                    && p.isr == vec![1, 2]
                    && p.leader == 1
                    && p.adding_replicas.is_empty()
                    && p.removing_replicas.is_empty()
            })
        })
        .await;
    let copy = |id: i32| {
        let p = cluster
            .node(id)
            .broker
            .replicas
            .get("moving", 0)
            .expect("hosted");
        p.read_for_follower(0, 1 << 20, true).expect("read")
    };
    let moved = copy(2);
    assert_eq!(moved, copy(1));
    assert_eq!(
        crate::storage::batch::BatchIter::new(&moved).count(),
        1,
        "the batch produced before the reassignment"
    );
    assert_eq!(
        cluster
            .node(2)
            .broker
            .replicas
            .get("moving", 0)
            .map(|p| p.log_end_offset()),
        Some(5)
    );
    let b0 = cluster.node(0).broker.clone();
    let removed_dir = b0.config.data_dir.join("moving-0");
    eventually("broker 0 deletes its copy of moving-0", || {
        b0.replicas.get("moving", 0).is_none() && !removed_dir.exists()
    })
    .await;
    // The cancelled reassignment left moving-1 where it was, and broker 2 without it.
    assert!(b0.replicas.get("moving", 1).is_some());
    assert!(cluster.node(2).broker.replicas.get("moving", 1).is_none());
    let listed = call(
        addr,
        &ListPartitionReassignmentsRequest::default().with_topics(Some(vec![
            list_partition_reassignments_request::ListPartitionReassignmentsTopics::default()
                .with_name(topic_name("moving"))
                .with_partition_indexes(vec![0, 1, 5]),
        ])),
        0,
    )
    .await;
    assert!(listed.topics.is_empty(), "{listed:?}");

    // Refusals carry Kafka's codes.
    let r = call(addr, &reassign("moving", 0, Some(vec![1, 9])), 0).await;
    assert_eq!(
        r.responses[0].partitions[0].error_code,
        ResponseError::InvalidReplicaAssignment.code()
    );
    let r = call(addr, &reassign("nope", 0, Some(vec![1])), 0).await;
    assert_eq!(
        r.responses[0].partitions[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    let r = call(
        addr,
        &reassign("moving", 0, Some(vec![0])).with_allow_replication_factor_change(false),
        1,
    )
    .await;
    assert_eq!(
        r.responses[0].partitions[0].error_code,
        ResponseError::InvalidReplicationFactor.code()
    );
    assert!(!r.allow_replication_factor_change);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elect_leaders_and_unregister_broker_answer_with_kafkas_codes() {
    let cluster = TestCluster::start(3).await;
    cluster.create("elect", vec![vec![1, 0]]).await;
    let addr = cluster.node(0).addr;
    // Leadership away from the preferred replica, as after a failover.
    cluster
        .metadata
        .commit(vec![MetadataRecord::PartitionChange {
            topic: "elect".into(),
            index: 0,
            expected_partition_epoch: None,
            leader: Some(0),
            isr: None,
            replicas: None,
            adding_replicas: None,
            removing_replicas: None,
        }])
        .await
        .expect("commit");
    let request = |election_type: i8| {
        ElectLeadersRequest::default()
            .with_election_type(election_type)
            .with_timeout_ms(5000)
            .with_topic_partitions(Some(vec![
                elect_leaders_request::TopicPartitions::default()
                    .with_topic(topic_name("elect"))
                    .with_partitions(vec![0, 3]),
            ]))
    };
    // Unclean on a partition with a leader: nothing to do.
    let r = call(addr, &request(1), 2).await;
    let codes: Vec<i16> = r.replica_election_results[0]
        .partition_result
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(
        codes,
        vec![
            ResponseError::ElectionNotNeeded.code(),
            ResponseError::UnknownTopicOrPartition.code()
        ]
    );
    let r = call(addr, &request(0), 2).await;
    assert_eq!(
        r.replica_election_results[0].partition_result[0].error_code,
        0
    );
    assert_eq!(cluster.partition("elect", 0).leader, 1);
    let r = call(addr, &request(0), 0).await;
    assert_eq!(
        r.replica_election_results[0].partition_result[0].error_code,
        ResponseError::ElectionNotNeeded.code()
    );

    // Broker 1 hosts replicas: refused. Broker 7 is unknown.
    let r = call(
        addr,
        &UnregisterBrokerRequest::default().with_broker_id(BrokerId(1)),
        0,
    )
    .await;
    assert_eq!(r.error_code, ResponseError::InvalidRequest.code());
    assert!(r.error_message.is_some_and(|m| m.contains("still hosts")));
    let r = call(
        addr,
        &UnregisterBrokerRequest::default().with_broker_id(BrokerId(7)),
        0,
    )
    .await;
    assert_eq!(r.error_code, ResponseError::BrokerIdNotRegistered.code());
    // Broker 2 hosts nothing but the offsets topic's placement is on broker 0: it can go.
    let r = call(
        addr,
        &UnregisterBrokerRequest::default().with_broker_id(BrokerId(2)),
        0,
    )
    .await;
    assert_eq!(r.error_code, 0, "{r:?}");
    assert!(!cluster.metadata.read().brokers.contains_key(&2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restarted_within_its_session_starts_fenced_and_leads_only_once_back_in_sync() {
    let mut cluster = TestCluster::start(3).await;
    cluster.create("restarting", vec![vec![0, 1]]).await;
    assert!(cluster.node(0).broker.is_ready());
    // A crash and an immediate restart: the session never expired.
    cluster.nodes[0].kill().await;
    assert!(!cluster.metadata.read().fenced.contains(&0));
    let (kafka, http) = listeners().await;
    cluster.nodes[0].serve(kafka, http);
    cluster
        .until("broker 1 leads and broker 0 is out of the ISR", |s| {
            s.partition("restarting", 0)
                .is_some_and(|p| p.leader == 1 && p.isr == vec![1])
        })
        .await;
    let b0 = cluster.node(0).broker.clone();
    eventually("broker 0 is unfenced and ready", || b0.is_ready()).await;
    // It leads again only once its follower has caught up and its leader took it back into the
    // ISR, never while still out of it.
    cluster
        .until("the preferred replica leads again", |s| {
            let p = s.partition("restarting", 0).expect("partition");
            assert!(
                p.leader != 0 || (p.isr.contains(&0) && !s.fenced.contains(&0)),
                "broker 0 leads while fenced or out of sync: {p:?}"
            );
            p.leader == 0
        })
        .await;
}
