//! Group coordinator placement on in-process clusters: FindCoordinator names the leader of the
//! offsets partition and follows it across a failover; other brokers answer NOT_COORDINATOR.

use std::net::SocketAddr;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::harness::{TestCluster, call, eventually, listeners, reassign, topic_name};

async fn find_coordinator(addr: SocketAddr, version: i16) -> (i16, i32, i32) {
    let mut request = FindCoordinatorRequest::default().with_key_type(0);
    if version >= 4 {
        request.coordinator_keys = vec![StrBytes::from_static_str("g")];
    } else {
        request.key = StrBytes::from_static_str("g");
    }
    let r = call(addr, &request, version).await;
    if version >= 4 {
        let c = &r.coordinators[0];
        (c.error_code, c.node_id.0, c.port)
    } else {
        (r.error_code, r.node_id.0, r.port)
    }
}

async fn commit_offset(addr: SocketAddr, offset: i64) -> i16 {
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_member_id(StrBytes::from_static_str(""))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(topic_name("work"))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset),
                ]),
        ]);
    call(addr, &request, 9).await.topics[0].partitions[0].error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_coordinator_is_the_offsets_leader_and_moves_with_it() {
    let mut cluster = TestCluster::start(3).await;
    cluster.create("work", vec![vec![1, 2]]).await;
    let ports: Vec<i32> = cluster
        .nodes
        .iter()
        .map(|n| i32::from(n.addr.port()))
        .collect();
    let port = |id: i32| ports[usize::try_from(id).expect("id")];
    let (addr1, addr2) = (cluster.node(1).addr, cluster.node(2).addr);
    for v in [0, 3, 4, 6] {
        assert_eq!(find_coordinator(addr2, v).await, (0, 0, port(0)), "v{v}");
    }
    assert_eq!(
        commit_offset(addr2, 1).await,
        ResponseError::NotCoordinator.code()
    );
    assert_eq!(commit_offset(cluster.node(0).addr, 1).await, 0);

    // Give the offsets partition a second replica on broker 1: it copies the log, joins the ISR,
    // and the reassignment completes.
    let r = call(
        addr1,
        &reassign(crate::server::OFFSETS_TOPIC, 0, Some(vec![0, 1])),
        0,
    )
    .await;
    assert_eq!(r.responses[0].partitions[0].error_code, 0, "{r:?}");
    cluster
        .until(
            "the offsets partition is on brokers 0 and 1, both in sync",
            |s| {
                s.partition(crate::server::OFFSETS_TOPIC, 0)
                    .is_some_and(|p| {
                        p.replicas == vec![0, 1] && p.adding_replicas.is_empty() && p.isr.len() == 2
                    })
            },
        )
        .await;

    // Broker 0 dies: broker 1 leads the offsets partition and coordinates.
    cluster.nodes[0].kill().await;
    cluster
        .until("broker 1 leads the offsets partition", |s| {
            s.partition(crate::server::OFFSETS_TOPIC, 0)
                .is_some_and(|p| p.leader == 1)
        })
        .await;
    for v in [0, 4] {
        assert_eq!(find_coordinator(addr2, v).await, (0, 1, port(1)), "v{v}");
    }
    let b1 = cluster.node(1).broker.clone();
    eventually("broker 1's coordinator is active", || b1.groups.is_active()).await;
    let code = commit_offset(addr1, 2).await;
    assert_eq!(code, 0, "{:?}", ResponseError::try_from_code(code));
    assert_eq!(
        commit_offset(addr2, 2).await,
        ResponseError::NotCoordinator.code()
    );

    // Broker 0 returns and catches up: the preferred leader takes the coordinator back.
    let (kafka, http) = listeners().await;
    cluster.nodes[0].serve(kafka, http);
    // It starts fenced; its leader adds it back to the ISR once it fetches again.
    cluster
        .until("broker 0 is unfenced", |s| !s.fenced.contains(&0))
        .await;
    cluster
        .until("broker 0 leads the offsets partition again", |s| {
            s.partition(crate::server::OFFSETS_TOPIC, 0)
                .is_some_and(|p| p.leader == 0)
        })
        .await;
    assert_eq!(find_coordinator(addr2, 4).await.1, 0);
    eventually("broker 1 stops coordinating", || !b1.groups.is_active()).await;
    assert_eq!(
        commit_offset(addr1, 3).await,
        ResponseError::NotCoordinator.code()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_coordinator_answers_coordinator_not_available_without_an_offsets_leader() {
    let mut cluster = TestCluster::start(2).await;
    cluster.nodes[0].kill().await;
    cluster
        .until("the offsets partition has no leader", |s| {
            s.partition(crate::server::OFFSETS_TOPIC, 0)
                .is_some_and(|p| p.leader == -1)
        })
        .await;
    let addr = cluster.node(1).addr;
    for v in [0, 3, 4, 6] {
        let (code, node, _) = find_coordinator(addr, v).await;
        assert_eq!(
            (code, node),
            (ResponseError::CoordinatorNotAvailable.code(), -1),
            "v{v}"
        );
    }
}
