//! Three `odradek broker` processes sharing metadata through the Raft quorum: a topic created on one
//! is visible on the others, all agree on brokers, cluster id and controller; after `kill -9` of the
//! controller another takes over and topics can still be created; the killed broker restarts and
//! catches up; a fourth broker outside the voter list joins as a learner. Only metadata is checked
//! here, not where partition data lives.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{
    CreateTopicsRequest, DescribeClusterRequest, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::admin::create_topic;
use crate::common::wire::Wire;
use crate::common::{BrokerProcess, free_port, http_get, wait_until};

const WAIT: Duration = Duration::from_secs(60);

/// Starts brokers 0..n, all voters, and waits until every one serves. Returns them and the voter
/// list.
fn start_cluster(n: usize) -> (Vec<BrokerProcess>, String) {
    let cluster_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let voters = cluster_ports
        .iter()
        .enumerate()
        .map(|(id, port)| format!("{id}@127.0.0.1:{port}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut brokers: Vec<BrokerProcess> = cluster_ports
        .iter()
        .enumerate()
        .map(|(id, port)| {
            BrokerProcess::launch(&[
                "--node-id",
                &id.to_string(),
                "--controller-voters",
                &voters,
                "--cluster-listen",
                &format!("127.0.0.1:{port}"),
            ])
        })
        .collect();
    for b in &mut brokers {
        b.wait_serving();
    }
    (brokers, voters)
}

fn metadata(b: &BrokerProcess) -> Option<MetadataResponse> {
    let mut wire = Wire::try_connect(b.kafka).ok()?;
    wire.try_call(&MetadataRequest::default().with_topics(None), 12)
        .ok()
}

fn topics(m: &MetadataResponse) -> BTreeSet<String> {
    m.topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect()
}

fn broker_ids(m: &MetadataResponse) -> BTreeSet<i32> {
    m.brokers.iter().map(|b| b.node_id.0).collect()
}

fn cluster_id(m: &MetadataResponse) -> String {
    m.cluster_id
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default()
}

fn described_controller(b: &BrokerProcess) -> i32 {
    let mut wire = Wire::connect(b.kafka);
    let r = wire.call(&DescribeClusterRequest::default().with_endpoint_type(1), 0);
    assert_eq!(r.error_code, 0);
    r.controller_id.0
}

/// Waits until `b` lists `topic`, and returns its Metadata then.
fn wait_for_topic(b: &BrokerProcess, topic: &str) -> MetadataResponse {
    let mut last = None;
    wait_until(&format!("{topic} in Metadata of {}", b.kafka), WAIT, || {
        last = metadata(b).filter(|m| topics(m).contains(topic));
        last.is_some()
    });
    last.expect("metadata")
}

#[test]
fn three_brokers_share_metadata_and_survive_the_loss_of_the_controller() {
    let (mut brokers, voters) = start_cluster(3);

    create_topic(brokers[1].kafka, "created-on-one", 2, &[]);
    let seen: Vec<MetadataResponse> = brokers
        .iter()
        .map(|b| wait_for_topic(b, "created-on-one"))
        .collect();
    let id = cluster_id(&seen[0]);
    assert_eq!(id.len(), 22, "cluster id {id:?}");
    for m in &seen {
        assert_eq!(cluster_id(m), id);
    }
    // Registration follows the quorum's start: poll until every broker lists all three.
    for b in &brokers {
        wait_until("all three brokers registered", WAIT, || {
            metadata(b).is_some_and(|m| broker_ids(&m) == BTreeSet::from([0, 1, 2]))
        });
    }
    let controller = seen[0].controller_id.0;
    assert!((0..3).contains(&controller), "controller {controller}");
    for b in &brokers {
        wait_until("one controller everywhere", WAIT, || {
            metadata(b).is_some_and(|m| m.controller_id.0 == controller)
        });
        assert_eq!(described_controller(b), controller);
        assert_eq!(http_get(b.http, "/readyz").map(|r| r.0), Some(200));
    }
    let metrics = |b: &BrokerProcess| {
        http_get(b.http, "/metrics")
            .map(|r| r.1)
            .unwrap_or_default()
    };
    let controller_index = usize::try_from(controller).expect("controller id");
    assert!(
        metrics(&brokers[controller_index]).contains("odradek_broker_metadata_is_controller 1"),
        "{}",
        metrics(&brokers[controller_index])
    );
    let follower = (controller_index + 1) % 3;
    assert!(metrics(&brokers[follower]).contains("odradek_broker_metadata_is_controller 0"));
    assert!(metrics(&brokers[follower]).contains(&format!(
        "odradek_broker_metadata_raft_leader_id {controller}"
    )));

    // kill -9 the controller: the other two elect a new one.
    let dead = usize::try_from(controller).expect("controller id");
    brokers[dead].kill9();
    let survivors: Vec<usize> = (0..3).filter(|&i| i != dead).collect();
    let mut new_controller = -1;
    wait_until("a new controller", WAIT, || {
        let ids: Vec<i32> = survivors
            .iter()
            .filter_map(|&i| metadata(&brokers[i]).map(|m| m.controller_id.0))
            .collect();
        new_controller = ids.first().copied().unwrap_or(-1);
        ids.len() == survivors.len()
            && ids.iter().all(|&c| c == new_controller)
            && new_controller != controller
            && new_controller >= 0
    });
    for &i in &survivors {
        assert_eq!(described_controller(&brokers[i]), new_controller);
    }
    create_topic(brokers[survivors[0]].kafka, "after-failover", 1, &[]);
    for &i in &survivors {
        wait_for_topic(&brokers[i], "after-failover");
    }

    // The killed broker restarts from its files and catches up.
    brokers[dead].restart();
    let m = wait_for_topic(&brokers[dead], "after-failover");
    assert!(topics(&m).contains("created-on-one"));
    assert_eq!(cluster_id(&m), id);
    // Metadata lists live brokers: the restarted one once the controller has seen it heartbeat.
    wait_until("the restarted broker is live again", WAIT, || {
        metadata(&brokers[dead]).is_some_and(|m| broker_ids(&m) == BTreeSet::from([0, 1, 2]))
    });

    // A broker outside the voter list joins as a learner and gets the same metadata.
    let learner_port = free_port().to_string();
    let mut learner = BrokerProcess::start(&[
        "--node-id",
        "3",
        "--controller-voters",
        &voters,
        "--cluster-listen",
        &format!("127.0.0.1:{learner_port}"),
    ]);
    let m = wait_for_topic(&learner, "after-failover");
    assert_eq!(cluster_id(&m), id);
    wait_until("the learner registered everywhere", WAIT, || {
        brokers
            .iter()
            .chain([&learner])
            .all(|b| metadata(b).is_some_and(|m| broker_ids(&m) == BTreeSet::from([0, 1, 2, 3])))
    });
    assert!(
        learner.terminate(),
        "the learner did not stop cleanly:\n{}",
        learner.log()
    );
    for b in &mut brokers {
        assert!(b.terminate(), "a broker did not stop cleanly:\n{}", b.log());
    }
}

/// Kafka's TOPIC_ALREADY_EXISTS: a retried create whose first attempt went through.
const TOPIC_ALREADY_EXISTS: i16 = 36;

/// Creates `name` through any of `addrs`, retrying on errors and dead brokers until one answers
/// that it exists.
fn create_somewhere(addrs: &[SocketAddr], name: &str) {
    let deadline = Instant::now() + WAIT;
    let topic = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(name.to_owned())))
        .with_num_partitions(1)
        .with_replication_factor(1);
    let request = CreateTopicsRequest::default()
        .with_topics(vec![topic])
        .with_timeout_ms(15_000);
    for attempt in 0.. {
        assert!(
            Instant::now() < deadline,
            "{name} not created within {WAIT:?}"
        );
        let Some(addr) = addrs.get(attempt % addrs.len()) else {
            panic!("no brokers");
        };
        let Ok(mut wire) = Wire::try_connect(*addr) else {
            continue;
        };
        if let Ok(r) = wire.try_call(&request, 7)
            && r.topics
                .first()
                .is_some_and(|t| t.error_code == 0 || t.error_code == TOPIC_ALREADY_EXISTS)
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn topics_acknowledged_while_brokers_are_killed_are_kept_by_all() {
    let (mut brokers, _) = start_cluster(3);
    let addrs: Vec<SocketAddr> = brokers.iter().map(|b| b.kafka).collect();
    let killing = std::sync::atomic::AtomicBool::new(true);
    let created = std::sync::atomic::AtomicUsize::new(0);
    let names = std::thread::scope(|scope| {
        // Creates topics one after another, through whichever broker answers, until the kills
        // are over; returns the names acknowledged.
        let creator = scope.spawn(|| {
            let mut acked = Vec::new();
            while killing.load(std::sync::atomic::Ordering::Relaxed) {
                let name = format!("acked-{}", acked.len());
                create_somewhere(&addrs, &name);
                acked.push(name);
                created.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            acked
        });
        // Some more creates are acknowledged: the cluster is taking writes now.
        let progress = |what: &str| {
            let from = created.load(std::sync::atomic::Ordering::Relaxed);
            wait_until(what, WAIT, || {
                created.load(std::sync::atomic::Ordering::Relaxed) >= from + 5
            });
        };
        // kill -9 each broker in turn while topics are being created, and bring it back.
        for round in 0..3 {
            progress("creates before a kill");
            let victim = &mut brokers[round % 3];
            victim.kill9();
            victim.restart();
        }
        progress("creates after the last restart");
        killing.store(false, std::sync::atomic::Ordering::Relaxed);
        creator.join().expect("creator thread")
    });
    assert!(
        names.len() >= 20,
        "{} topics created: the kills did not fall among the creates",
        names.len()
    );
    for b in &brokers {
        let mut last = BTreeSet::new();
        wait_until("every acknowledged topic on every broker", WAIT, || {
            last = metadata(b).map(|m| topics(&m)).unwrap_or_default();
            names.iter().all(|n| last.contains(n))
        });
    }
    let ids: BTreeSet<String> = brokers
        .iter()
        .filter_map(|b| metadata(b).map(|m| cluster_id(&m)))
        .collect();
    assert_eq!(ids.len(), 1, "cluster ids {ids:?}");
}
