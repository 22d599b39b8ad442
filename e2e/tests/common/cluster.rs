//! A multi-broker cluster of real `odradek broker` processes on loopback: brokers `0..voters` hold
//! the metadata quorum, the others join as learners.

use std::net::SocketAddr;
use std::time::Duration;

use kafka_protocol::messages::{DescribeClusterRequest, MetadataRequest, MetadataResponse};

use super::wire::Wire;
use super::{BrokerProcess, free_port, wait_until};

/// How long cluster-wide conditions (registration, elections, catch-up) may take.
pub const CLUSTER_WAIT: Duration = Duration::from_secs(60);

/// A running cluster.
pub struct Cluster {
    pub brokers: Vec<BrokerProcess>,
    /// The `--controller-voters` value.
    pub voters: String,
    /// Flags every broker got, for brokers added later.
    extra: Vec<String>,
}

impl Cluster {
    /// Starts `total` brokers, the first `voters` of them voters, each with `extra` flags, and waits
    /// until every one is registered and unfenced (listed by DescribeCluster).
    pub fn start(voters: usize, total: usize, extra: &[&str]) -> Self {
        let ports: Vec<u16> = (0..voters).map(|_| free_port()).collect();
        let voter_list = ports
            .iter()
            .enumerate()
            .map(|(id, port)| format!("{id}@127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Cluster {
            brokers: Vec::new(),
            voters: voter_list,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        };
        for (id, port) in ports.iter().enumerate() {
            cluster.launch(id, *port);
        }
        for id in voters..total {
            cluster.launch(id, free_port());
        }
        for b in &mut cluster.brokers {
            b.wait_serving();
        }
        cluster.wait_live(&(0..total as i32).collect::<Vec<_>>());
        cluster
    }

    fn launch(&mut self, id: usize, cluster_port: u16) {
        let id_text = id.to_string();
        let listen = format!("127.0.0.1:{cluster_port}");
        let mut args: Vec<&str> = vec![
            "--node-id",
            &id_text,
            "--controller-voters",
            &self.voters,
            "--cluster-listen",
            &listen,
            "--broker-session-timeout-ms",
            "3000",
            "--broker-heartbeat-interval-ms",
            "500",
            "--replica-lag-time-max-ms",
            "5000",
        ];
        args.extend(self.extra.iter().map(String::as_str));
        let b = BrokerProcess::launch(&args);
        self.brokers.push(b);
    }

    /// Adds broker `brokers.len()` as a learner and waits until it is live.
    pub fn add_broker(&mut self) -> i32 {
        let id = self.brokers.len();
        self.launch(id, free_port());
        self.brokers[id].wait_serving();
        let id = i32::try_from(id).expect("broker id");
        let mut live = self.live_brokers();
        live.push(id);
        live.sort_unstable();
        live.dedup();
        self.wait_live(&live);
        id
    }

    /// Bootstrap list of every broker.
    pub fn bootstrap(&self) -> String {
        self.brokers
            .iter()
            .map(BrokerProcess::bootstrap)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Bootstrap list of the brokers with these ids.
    pub fn bootstrap_of(&self, ids: &[usize]) -> String {
        ids.iter()
            .map(|&i| self.brokers[i].bootstrap())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A broker that is running, to send requests to.
    pub fn any(&mut self) -> SocketAddr {
        self.brokers
            .iter_mut()
            .find_map(|b| b.is_running().then_some(b.kafka))
            .expect("a running broker")
    }

    /// Unfenced broker ids, as DescribeCluster (v2) reports them from a running broker.
    pub fn live_brokers(&mut self) -> Vec<i32> {
        let addr = self.any();
        let Ok(mut wire) = Wire::try_connect(addr) else {
            return Vec::new();
        };
        let Ok(r) = wire.try_call(
            &DescribeClusterRequest::default()
                .with_endpoint_type(1)
                .with_include_fenced_brokers(true),
            2,
        ) else {
            return Vec::new();
        };
        let mut ids: Vec<i32> = r
            .brokers
            .iter()
            .filter(|b| !b.is_fenced)
            .map(|b| b.broker_id.0)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Waits until exactly `ids` are live.
    pub fn wait_live(&mut self, ids: &[i32]) {
        let want = ids.to_vec();
        wait_until(&format!("brokers {want:?} live"), CLUSTER_WAIT, || {
            self.live_brokers() == want
        });
    }

    /// Metadata of every topic, from a running broker.
    pub fn metadata(&mut self) -> Option<MetadataResponse> {
        let addr = self.any();
        let mut wire = Wire::try_connect(addr).ok()?;
        wire.try_call(&MetadataRequest::default().with_topics(None), 12)
            .ok()
    }

    /// `(leader, replicas, isr)` of a partition, from Metadata.
    pub fn partition(&mut self, topic: &str, index: i32) -> Option<(i32, Vec<i32>, Vec<i32>)> {
        let m = self.metadata()?;
        let t = m
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))?;
        let p = t.partitions.iter().find(|p| p.partition_index == index)?;
        Some((
            p.leader_id.0,
            p.replica_nodes.iter().map(|b| b.0).collect(),
            p.isr_nodes.iter().map(|b| b.0).collect(),
        ))
    }
}
