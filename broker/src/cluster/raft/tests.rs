//! In-process clusters on 127.0.0.1 port-0 listeners: commits, leader failure, restart and
//! catch-up, learners fed by snapshot, heartbeats, and the unavailable case.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;

use super::RaftOptions;
use crate::cluster::{MetadataError, MetadataRecord, MetadataStore, PartitionInfo, TopicInfo};

const DEADLINE: Duration = Duration::from_secs(20);

fn options(id: u64, voters: &BTreeMap<u64, String>, dir: &Path) -> RaftOptions {
    let mut o = RaftOptions::new(
        id,
        voters.clone(),
        "127.0.0.1:0".parse().unwrap(),
        None,
        dir.to_owned(),
    );
    // Short enough for quick failovers, long enough not to churn on a busy two-core machine.
    o.heartbeat_interval = Duration::from_millis(100);
    o.election_timeout_min = Duration::from_millis(500);
    o.election_timeout_max = Duration::from_millis(1000);
    o.rpc_timeout = Duration::from_secs(1);
    o
}

/// A test cluster: node dirs and bound addresses survive a node's stop, so it can restart.
struct Cluster {
    _root: tempfile::TempDir,
    dirs: BTreeMap<u64, PathBuf>,
    addrs: BTreeMap<u64, SocketAddr>,
    voters: BTreeMap<u64, String>,
    nodes: BTreeMap<u64, MetadataStore>,
    tune: fn(&mut RaftOptions),
}

impl Cluster {
    async fn start(voters: u64, tune: fn(&mut RaftOptions)) -> Cluster {
        Self::start_some(voters, voters, tune).await
    }

    /// A group of `voters` of which only the first `running` are started.
    async fn start_some(voters: u64, running: u64, tune: fn(&mut RaftOptions)) -> Cluster {
        let root = tempfile::tempdir().unwrap();
        let mut listeners = BTreeMap::new();
        for id in 0..voters {
            listeners.insert(id, TcpListener::bind("127.0.0.1:0").await.unwrap());
        }
        let addrs: BTreeMap<u64, SocketAddr> = listeners
            .iter()
            .map(|(&id, l)| (id, l.local_addr().unwrap()))
            .collect();
        let mut cluster = Cluster {
            dirs: (0..voters)
                .map(|id| (id, root.path().join(format!("node-{id}"))))
                .collect(),
            voters: addrs.iter().map(|(&id, a)| (id, a.to_string())).collect(),
            addrs,
            _root: root,
            nodes: BTreeMap::new(),
            tune,
        };
        for (id, listener) in listeners {
            if id < running {
                cluster.open(id, Some(listener)).await;
            }
        }
        cluster
    }

    async fn open(&mut self, id: u64, listener: Option<TcpListener>) {
        let dir = self
            .dirs
            .entry(id)
            .or_insert_with(|| self._root.path().join(format!("node-{id}")))
            .clone();
        let listener = match listener {
            Some(l) => l,
            None => {
                let addr = self
                    .addrs
                    .get(&id)
                    .copied()
                    .unwrap_or_else(|| "127.0.0.1:0".parse().unwrap());
                bind_retrying(addr).await
            }
        };
        let addr = listener.local_addr().unwrap();
        self.addrs.insert(id, addr);
        let mut o = options(id, &self.voters, &dir);
        (self.tune)(&mut o);
        // A node stopped in this process may still be releasing its database lock (its last tasks
        // end after `shutdown` returns): retry the open until the deadline.
        let deadline = Instant::now() + DEADLINE;
        let mut listener = Some(listener);
        let store = loop {
            let l = match listener.take() {
                Some(l) => l,
                None => bind_retrying(addr).await,
            };
            match MetadataStore::open_cluster_on(o.clone(), Some(l)).await {
                Ok(store) => break store,
                Err(e) if e.to_string().contains("already open") && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("opening node {id}: {e}"),
            }
        };
        self.nodes.insert(id, store);
    }

    async fn stop(&mut self, id: u64) {
        let node = self.nodes.remove(&id).unwrap();
        node.shutdown().await;
    }

    fn node(&self, id: u64) -> &MetadataStore {
        &self.nodes[&id]
    }

    async fn all_ready(&self) {
        for n in self.nodes.values() {
            n.wait_ready(DEADLINE).await.unwrap();
        }
    }

    /// The leader among the running nodes, once one of them knows it is leader.
    async fn leader(&self) -> u64 {
        poll(|| {
            self.nodes
                .iter()
                .find(|(_, n)| n.is_controller())
                .map(|(&id, _)| id)
        })
        .await
    }

    async fn shutdown(mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
    }
}

async fn bind_retrying(addr: SocketAddr) -> TcpListener {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(e) if Instant::now() > deadline => panic!("binding {addr}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Polls `f` until it returns `Some`, panicking after the deadline.
async fn poll<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "condition not met within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn create(name: &str) -> MetadataRecord {
    MetadataRecord::CreateTopic(TopicInfo {
        name: name.into(),
        id: uuid::Uuid::new_v4(),
        partitions: vec![PartitionInfo::new(0, vec![0])],
        configs: BTreeMap::new(),
    })
}

async fn sees(store: &MetadataStore, topic: &str) {
    poll(|| store.read().topic(topic).map(|_| ())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_from_a_follower_apply_everywhere_and_survive_leader_loss_and_restart() {
    let mut c = Cluster::start(3, |_| {}).await;
    c.all_ready().await;
    let id = c.node(0).cluster_id().to_owned();
    assert_eq!(id.len(), 22, "cluster id {id:?}");
    for n in c.nodes.values() {
        assert_eq!(n.cluster_id(), id);
    }
    let leader = c.leader().await;
    let follower = (0..3).find(|&i| i != leader).unwrap();
    for n in c.nodes.values() {
        assert_eq!(n.controller_id(-5), i32::try_from(leader).unwrap());
    }

    // A follower's commit is visible to its own read() as soon as commit returns.
    c.node(follower).commit(vec![create("a")]).await.unwrap();
    assert!(c.node(follower).read().topic("a").is_some());
    for n in c.nodes.values() {
        sees(n, "a").await;
    }

    // The leader stops: the other two elect a new one and commits go on.
    c.stop(leader).await;
    let new_leader = c.leader().await;
    assert_ne!(new_leader, leader);
    let survivor = (0..3).find(|&i| i != leader && i != new_leader).unwrap();
    c.node(survivor).commit(vec![create("b")]).await.unwrap();
    sees(c.node(new_leader), "b").await;

    // The old leader restarts from its files and catches up.
    c.open(leader, None).await;
    c.node(leader).wait_ready(DEADLINE).await.unwrap();
    sees(c.node(leader), "b").await;
    assert_eq!(c.node(leader).cluster_id(), id);
    assert!(c.node(leader).read().topic("a").is_some());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_joins_and_receives_the_state_by_snapshot() {
    let mut c = Cluster::start(3, |o| {
        o.snapshot_every = 5;
        o.logs_to_keep = 0;
    })
    .await;
    c.all_ready().await;
    for i in 0..20 {
        c.node(i % 3)
            .commit(vec![create(&format!("t{i}"))])
            .await
            .unwrap();
    }
    let leader = c.leader().await;
    let raft = c.node(leader).raft().unwrap().raft().clone();
    poll(|| raft.metrics().borrow().purged.map(|_| ())).await;

    c.open(3, None).await;
    let learner = c.node(3);
    learner.wait_ready(DEADLINE).await.unwrap();
    for i in 0..20 {
        sees(learner, &format!("t{i}")).await;
    }
    let m = learner.raft().unwrap().raft().metrics().borrow().clone();
    assert!(
        m.snapshot.is_some(),
        "the learner installed no snapshot: {m:?}"
    );
    let membership = m.membership_config.membership().clone();
    assert!(membership.learner_ids().any(|id| id == 3));
    assert!(!membership.voter_ids().any(|id| id == 3));
    assert!(!learner.is_controller());
    assert_eq!(learner.cluster_id(), c.node(0).cluster_id());

    // A learner's commit is forwarded to the leader like a follower's.
    learner.commit(vec![create("from-learner")]).await.unwrap();
    assert!(learner.read().topic("from-learner").is_some());
    sees(c.node(leader), "from-learner").await;

    // The learner comes back at another address: the leader follows it there.
    c.stop(3).await;
    c.node(leader)
        .commit(vec![create("while-away")])
        .await
        .unwrap();
    let old_addr = c.addrs.remove(&3).unwrap();
    c.open(3, None).await;
    assert_ne!(c.addrs[&3], old_addr);
    c.node(3).wait_ready(DEADLINE).await.unwrap();
    sees(c.node(3), "while-away").await;
    let raft = c.node(leader).raft().unwrap().raft().clone();
    let addr = raft
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .get_node(&3)
        .map(|n| n.addr.clone());
    assert_eq!(addr, Some(c.addrs[&3].to_string()));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_reach_the_leader_only() {
    let c = Cluster::start(3, |_| {}).await;
    c.all_ready().await;
    let leader = c.leader().await;
    let follower = (0..3).find(|&i| i != leader).unwrap();
    c.node(follower).heartbeat(7).await.unwrap();
    c.node(leader).heartbeat(8).await.unwrap();
    let beats = c.node(leader).heartbeats();
    assert!(
        beats.contains_key(&7) && beats.contains_key(&8),
        "{beats:?}"
    );
    assert!(c.node(follower).heartbeats().is_empty());
    assert!(c.node(follower).caught_up() && c.node(leader).caught_up());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_quorum_commit_fails_as_unavailable_after_its_deadline() {
    // Only node 0 runs: it initializes the group but can never win an election.
    let c = Cluster::start_some(3, 1, |o| o.commit_timeout = Duration::from_millis(1500)).await;
    let started = Instant::now();
    let err = c.node(0).commit(vec![create("x")]).await.unwrap_err();
    assert!(matches!(err, MetadataError::Unavailable(_)), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert!(!c.node(0).caught_up());
    assert!(c.node(0).heartbeat(0).await.is_err());
    assert!(
        c.node(0)
            .wait_ready(Duration::from_millis(300))
            .await
            .is_err()
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_voter_commits_alone_and_keeps_its_state_and_id_across_restart() {
    let mut c = Cluster::start(1, |_| {}).await;
    c.all_ready().await;
    assert!(c.node(0).is_controller());
    c.node(0).commit(vec![create("solo")]).await.unwrap();
    let id = c.node(0).cluster_id().to_owned();
    c.stop(0).await;
    c.open(0, None).await;
    c.node(0).wait_ready(DEADLINE).await.unwrap();
    assert!(c.node(0).read().topic("solo").is_some());
    assert_eq!(c.node(0).cluster_id(), id);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_rpc_listener_closes_that_connection_only() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::network::Peers;
    use super::rpc::{Request, Response};

    let c = Cluster::start(1, |o| o.max_frame_bytes = 4096).await;
    c.all_ready().await;
    let addr = c.addrs[&0];
    let closed = |mut s: tokio::net::TcpStream| async move {
        let mut buf = [0u8; 64];
        // The server answers nothing and closes: EOF or a reset.
        matches!(
            tokio::time::timeout(DEADLINE, s.read(&mut buf)).await,
            Ok(Ok(0) | Err(_))
        )
    };
    // Not JSON.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(&7u32.to_be_bytes()).await.unwrap();
    s.write_all(b"garbage").await.unwrap();
    assert!(closed(s).await);
    // JSON of no known request.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let unknown = b"{\"Nope\":1}";
    s.write_all(&u32::try_from(unknown.len()).unwrap().to_be_bytes())
        .await
        .unwrap();
    s.write_all(unknown).await.unwrap();
    assert!(closed(s).await);
    // A frame over the limit.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(&1_000_000u32.to_be_bytes()).await.unwrap();
    assert!(closed(s).await);

    // The node still serves well-formed requests.
    let peers = Peers::new(4096, Duration::from_secs(2));
    let reply = peers
        .call(
            &addr.to_string(),
            &Request::Heartbeat { broker_id: 4 },
            Duration::from_secs(2),
        )
        .await
        .unwrap();
    assert!(matches!(reply, Response::Done(Ok(()))), "{reply:?}");
    assert!(c.node(0).heartbeats().contains_key(&4));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_rebuild_from_snapshot_plus_log_and_a_lagging_node_gets_the_leaders_snapshot() {
    let mut c = Cluster::start(3, |o| {
        o.snapshot_every = 5;
        o.logs_to_keep = 0;
    })
    .await;
    c.all_ready().await;
    for i in 0..12 {
        c.node(i % 3)
            .commit(vec![create(&format!("a{i}"))])
            .await
            .unwrap();
    }
    let leader = c.leader().await;
    let lagging = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    for n in c.nodes.values() {
        sees(n, "a11").await;
    }
    // Every node has a snapshot of its own and a log purged behind it.
    for n in c.nodes.values() {
        let raft = n.raft().unwrap().raft().clone();
        poll(|| raft.metrics().borrow().purged.map(|_| ())).await;
    }
    c.stop(lagging).await;
    for i in 0..12 {
        c.node(other)
            .commit(vec![create(&format!("b{i}"))])
            .await
            .unwrap();
    }
    c.node(leader)
        .commit(vec![MetadataRecord::DeleteTopic { name: "a0".into() }])
        .await
        .unwrap();
    let raft = c.node(leader).raft().unwrap().raft().clone();
    let snapshot_before = raft.metrics().borrow().snapshot;
    assert!(snapshot_before.is_some());

    // The lagging node's log ends before the leader's purged prefix: it needs the snapshot.
    c.open(lagging, None).await;
    c.node(lagging).wait_ready(DEADLINE).await.unwrap();
    sees(c.node(lagging), "b11").await;
    assert!(c.node(lagging).read().topic("a0").is_none());
    assert!(c.node(lagging).read().topic("a5").is_some());

    // A restarted node comes back with exactly the state the others have.
    c.stop(other).await;
    c.open(other, None).await;
    c.node(other).wait_ready(DEADLINE).await.unwrap();
    let names = |n: &MetadataStore| n.read().topics.keys().cloned().collect::<Vec<_>>();
    let expected = names(c.node(leader));
    assert_eq!(expected.len(), 23);
    poll(|| (names(c.node(other)) == expected).then_some(())).await;
    poll(|| (names(c.node(lagging)) == expected).then_some(())).await;
    assert_eq!(
        c.node(other).read().next_producer_id,
        c.node(leader).read().next_producer_id
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_allocating_producer_ids_at_once_never_share_one() {
    let c = Cluster::start(3, |_| {}).await;
    c.all_ready().await;
    // Two brokers per node, each with its own block cache, each taking two blocks' worth.
    let caches: Vec<tokio::sync::Mutex<(i64, i64)>> =
        (0..6).map(|_| tokio::sync::Mutex::new((0, 0))).collect();
    let mut tasks = Vec::new();
    for (i, cache) in caches.iter().enumerate() {
        let store = c.node(u64::try_from(i % 3).unwrap());
        tasks.push(async move {
            let mut ids = Vec::new();
            for _ in 0..3 {
                ids.push(store.allocate_producer_id(cache).await.unwrap());
                // Exhaust the block so that the next call claims a new one.
                let mut block = cache.lock().await;
                block.0 = block.1;
            }
            ids
        });
    }
    let ids: Vec<i64> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .flatten()
        .collect();
    let unique: std::collections::BTreeSet<i64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "duplicate producer ids: {ids:?}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_cluster_restarts_from_its_files() {
    let mut c = Cluster::start(3, |_| {}).await;
    c.all_ready().await;
    c.node(1).commit(vec![create("kept")]).await.unwrap();
    let id = c.node(0).cluster_id().to_owned();
    for n in 0..3 {
        sees(c.node(n), "kept").await;
    }
    for n in 0..3 {
        c.stop(n).await;
    }
    for n in 0..3 {
        c.open(n, None).await;
    }
    c.all_ready().await;
    for n in 0..3 {
        assert!(c.node(n).read().topic("kept").is_some());
        assert_eq!(c.node(n).cluster_id(), id);
    }
    c.node(2).commit(vec![create("after")]).await.unwrap();
    for n in 0..3 {
        sees(c.node(n), "after").await;
    }
    c.shutdown().await;
}
