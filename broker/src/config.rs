//! Broker configuration: command-line flags (each also an `ODRADEK_*` environment variable), parsed
//! into a plain [`BrokerConfig`] that [`BrokerConfig::validate`] checks before anything starts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Flags of `odradek broker`.
#[derive(Debug, Clone, clap::Args)]
pub struct BrokerArgs {
    /// Broker id in the cluster (Kafka's `node.id`).
    #[arg(long, env = "ODRADEK_NODE_ID", default_value_t = 0)]
    pub node_id: i32,

    /// Take the node id from the trailing ordinal of the host name (`odradek-2` is node 2), as in a
    /// StatefulSet pod. Overrides `--node-id`.
    #[arg(long, env = "ODRADEK_NODE_ID_FROM_HOSTNAME", default_value_t = false)]
    pub node_id_from_hostname: bool,

    /// Address the Kafka listener binds.
    #[arg(long, env = "ODRADEK_LISTEN", default_value = "127.0.0.1:9092")]
    pub listen: SocketAddr,

    /// `host:port` clients are told to connect to (Metadata, FindCoordinator). Defaults to `--listen`.
    #[arg(long, env = "ODRADEK_ADVERTISED_LISTENER")]
    pub advertised_listener: Option<String>,

    /// Directory holding partition logs and cluster metadata. Created if absent.
    #[arg(long, env = "ODRADEK_DATA_DIR", default_value = "./odradek-data")]
    pub data_dir: PathBuf,

    /// Address of the HTTP server for `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, env = "ODRADEK_HTTP", default_value = "127.0.0.1:9644")]
    pub http: SocketAddr,

    /// Rack of this broker (Kafka's `broker.rack`), reported in Metadata.
    #[arg(long, env = "ODRADEK_RACK")]
    pub rack: Option<String>,

    /// Partitions of a topic created without an explicit count (Kafka's `num.partitions`).
    #[arg(long, env = "ODRADEK_DEFAULT_PARTITIONS", default_value_t = 1)]
    pub default_partitions: i32,

    /// Create a topic when a client asks Metadata for one that does not exist
    /// (Kafka's `auto.create.topics.enable`).
    #[arg(long, env = "ODRADEK_AUTO_CREATE_TOPICS", default_value_t = false, action = clap::ArgAction::Set)]
    pub auto_create_topics: bool,

    /// Largest request frame accepted, in bytes (Kafka's `socket.request.max.bytes`); a larger frame
    /// closes the connection.
    #[arg(long, env = "ODRADEK_MAX_REQUEST_BYTES", default_value_t = 104_857_600)]
    pub max_request_bytes: u32,

    /// Default topic configs, `key=value` by their Kafka names (repeatable), e.g.
    /// `--topic-config retention.ms=3600000`. A topic's own configs override them.
    #[arg(long = "topic-config", env = "ODRADEK_TOPIC_CONFIG", value_delimiter = ',', value_parser = parse_key_value)]
    pub topic_config: Vec<(String, String)>,

    /// How often retention and compaction run over every partition, in milliseconds
    /// (Kafka's `log.retention.check.interval.ms`).
    #[arg(long, env = "ODRADEK_RETENTION_CHECK_MS", default_value_t = 300_000)]
    pub retention_check_ms: u64,

    /// `group.initial.rebalance.delay.ms`: how long a new group waits for more members before its first
    /// rebalance completes.
    #[arg(
        long,
        env = "ODRADEK_GROUP_INITIAL_REBALANCE_DELAY_MS",
        default_value_t = 3000
    )]
    pub group_initial_rebalance_delay_ms: i32,

    /// Grace period on SIGTERM, in milliseconds: first for moving leadership to other in-sync
    /// replicas (controlled shutdown), then for in-flight requests before connections are closed.
    #[arg(long, env = "ODRADEK_SHUTDOWN_GRACE_MS", default_value_t = 5000)]
    pub shutdown_grace_ms: u64,

    /// The metadata quorum's voters in Kafka's `controller.quorum.voters` format,
    /// `0@host:9093,1@host:9093,2@host:9093` (id@host:port of each voter's cluster RPC listener).
    /// Empty: a single broker with a local metadata journal. Brokers not listed join as learners.
    #[arg(long, env = "ODRADEK_CONTROLLER_VOTERS", default_value = "")]
    pub controller_voters: String,

    /// Address the inter-broker RPC listener binds (with `--controller-voters`). Defaults to
    /// `0.0.0.0:<port of this node's voter entry>`, or `0.0.0.0:9093` for a learner.
    #[arg(long, env = "ODRADEK_CLUSTER_LISTEN")]
    pub cluster_listen: Option<SocketAddr>,

    /// `host:port` other brokers use to reach this broker's RPC listener. Defaults to this node's
    /// voter entry, or to the advertised host with the cluster listen port.
    #[arg(long, env = "ODRADEK_CLUSTER_ADVERTISED")]
    pub cluster_advertised: Option<String>,

    /// How long start-up waits for a metadata leader and catch-up before giving up, in milliseconds.
    #[arg(
        long,
        env = "ODRADEK_CLUSTER_READY_TIMEOUT_MS",
        default_value_t = 120_000
    )]
    pub cluster_ready_timeout_ms: u64,

    /// Replicas of a topic created without an explicit replication factor (Kafka's
    /// `default.replication.factor`); capped at the live brokers for auto-created topics.
    #[arg(long, env = "ODRADEK_DEFAULT_REPLICATION_FACTOR", default_value_t = 1)]
    pub default_replication_factor: i16,

    /// A follower that has not caught up with its leader for this long leaves the ISR, in
    /// milliseconds (Kafka's `replica.lag.time.max.ms`).
    #[arg(
        long,
        env = "ODRADEK_REPLICA_LAG_TIME_MAX_MS",
        default_value_t = 30_000
    )]
    pub replica_lag_time_max_ms: u64,

    /// How often high watermarks are checkpointed, in milliseconds (Kafka's
    /// `replica.high.watermark.checkpoint.interval.ms`).
    #[arg(long, env = "ODRADEK_REPLICA_HW_CHECKPOINT_MS", default_value_t = 5000)]
    pub replica_high_watermark_checkpoint_interval_ms: u64,

    /// How long the controller waits for a broker's heartbeat before fencing it and moving its
    /// leadership away (Kafka's `broker.session.timeout.ms`).
    #[arg(
        long,
        env = "ODRADEK_BROKER_SESSION_TIMEOUT_MS",
        default_value_t = 9000
    )]
    pub broker_session_timeout_ms: u64,

    /// How often this broker heartbeats to the controller (Kafka's `broker.heartbeat.interval.ms`).
    #[arg(
        long,
        env = "ODRADEK_BROKER_HEARTBEAT_INTERVAL_MS",
        default_value_t = 2000
    )]
    pub broker_heartbeat_interval_ms: u64,

    /// Move leadership back to each partition's preferred replica when it is in sync
    /// (Kafka's `auto.leader.rebalance.enable`).
    #[arg(long, env = "ODRADEK_AUTO_LEADER_REBALANCE_ENABLE", default_value_t = true, action = clap::ArgAction::Set)]
    pub auto_leader_rebalance_enable: bool,

    /// How often the controller looks for partitions not led by their preferred replica, in seconds
    /// (Kafka's `leader.imbalance.check.interval.seconds`).
    #[arg(
        long,
        env = "ODRADEK_LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS",
        default_value_t = 30
    )]
    pub leader_imbalance_check_interval_seconds: u64,
}

/// Default port of the inter-broker RPC listener (Kafka's controller listener port).
pub const DEFAULT_CLUSTER_PORT: u16 = 9093;

/// How this broker takes part in a multi-broker cluster (`--controller-voters` set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Voter broker id -> `host:port` of its RPC listener.
    pub voters: BTreeMap<i32, String>,
    /// Address the RPC listener binds.
    pub listen: SocketAddr,
    /// `host:port` others reach this broker's RPC listener at.
    pub advertised: String,
    /// Start-up's wait for a leader and catch-up.
    pub ready_timeout: Duration,
}

/// Parses `0@host:9093,1@host:9093` into id -> `host:port`, rejecting duplicate ids.
pub fn parse_voters(s: &str) -> Result<BTreeMap<i32, String>, String> {
    let mut voters = BTreeMap::new();
    for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, addr) = entry
            .split_once('@')
            .ok_or_else(|| format!("voter {entry:?} is not id@host:port"))?;
        let id: i32 = id
            .trim()
            .parse()
            .map_err(|_| format!("voter {entry:?} has a bad id {id:?}"))?;
        if id < 0 {
            return Err(format!("voter {entry:?} has a negative id"));
        }
        let (host, port) = split_host_port(addr.trim())
            .ok_or_else(|| format!("voter {entry:?} has no host:port"))?;
        if !(1..=65535).contains(&port) {
            return Err(format!("voter {entry:?} has port {port} out of range"));
        }
        if voters.insert(id, format!("{host}:{port}")).is_some() {
            return Err(format!("voter id {id} appears twice"));
        }
    }
    Ok(voters)
}

impl BrokerArgs {
    fn cluster_config(
        &self,
        node_id: i32,
        advertised_host: &str,
    ) -> Result<Option<ClusterConfig>, ConfigError> {
        let bad = |flag, value: String, reason: String| ConfigError {
            flag,
            value,
            reason,
        };
        let voters = parse_voters(&self.controller_voters)
            .map_err(|r| bad("--controller-voters", self.controller_voters.clone(), r))?;
        if voters.is_empty() {
            return Ok(None);
        }
        let own = voters.get(&node_id);
        let own_port = own
            .and_then(|a| split_host_port(a))
            .and_then(|(_, p)| u16::try_from(p).ok());
        let listen = self.cluster_listen.unwrap_or_else(|| {
            SocketAddr::from(([0, 0, 0, 0], own_port.unwrap_or(DEFAULT_CLUSTER_PORT)))
        });
        let advertised = match (&self.cluster_advertised, own) {
            (Some(a), _) => a.clone(),
            (None, Some(entry)) => entry.clone(),
            (None, None) => format!("{advertised_host}:{}", listen.port()),
        };
        if split_host_port(&advertised).is_none() {
            return Err(bad(
                "--cluster-advertised",
                advertised,
                "expected host:port".into(),
            ));
        }
        if let Some(entry) = own
            && *entry != advertised
        {
            return Err(bad(
                "--cluster-advertised",
                advertised,
                format!(
                    "node {node_id} is voter {entry} in --controller-voters: the two must match"
                ),
            ));
        }
        Ok(Some(ClusterConfig {
            voters,
            listen,
            advertised,
            ready_timeout: Duration::from_millis(self.cluster_ready_timeout_ms),
        }))
    }
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected key=value, got {s:?}"))?;
    Ok((k.trim().to_owned(), v.trim().to_owned()))
}

/// How often the controller loop runs: fencing is at most this late after a session expires.
const CONTROLLER_TICK: Duration = Duration::from_millis(250);

/// Validated broker configuration.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub node_id: i32,
    pub listen: SocketAddr,
    pub advertised_host: String,
    pub advertised_port: i32,
    pub data_dir: PathBuf,
    pub http: SocketAddr,
    pub rack: Option<String>,
    pub default_partitions: i32,
    pub auto_create_topics: bool,
    pub max_request_bytes: u32,
    pub topic_defaults: BTreeMap<String, String>,
    pub retention_check_interval: Duration,
    pub group_initial_rebalance_delay_ms: i32,
    pub shutdown_grace: Duration,
    /// `None`: a single broker with a local metadata journal.
    pub cluster: Option<ClusterConfig>,
    /// Replication settings.
    pub replication: crate::replica::ReplicationConfig,
    pub broker_session_timeout: Duration,
    pub broker_heartbeat_interval: Duration,
    pub auto_leader_rebalance_enable: bool,
    pub leader_imbalance_check_interval: Duration,
    /// How often the controller re-evaluates sessions, reassignments and leaders.
    pub controller_tick: Duration,
}

/// A flag whose value cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid value {value:?} for {flag}: {reason}")]
pub struct ConfigError {
    pub flag: &'static str,
    pub value: String,
    pub reason: String,
}

impl BrokerArgs {
    /// Checks every flag and produces the configuration the broker runs with.
    pub fn into_config(self) -> Result<BrokerConfig, ConfigError> {
        let node_id = if self.node_id_from_hostname {
            let host = hostname();
            ordinal_of(&host).ok_or_else(|| ConfigError {
                flag: "--node-id-from-hostname",
                value: host.clone(),
                reason: "the host name does not end in -<ordinal>".into(),
            })?
        } else {
            self.node_id
        };
        let advertised = self
            .advertised_listener
            .clone()
            .unwrap_or_else(|| self.listen.to_string());
        let (host, port) = split_host_port(&advertised).ok_or_else(|| ConfigError {
            flag: "--advertised-listener",
            value: advertised.clone(),
            reason: "expected host:port".into(),
        })?;
        let cluster = self.cluster_config(node_id, &host)?;
        let config = BrokerConfig {
            cluster,
            node_id,
            listen: self.listen,
            advertised_host: host,
            advertised_port: port,
            data_dir: self.data_dir,
            http: self.http,
            rack: self.rack.filter(|r| !r.trim().is_empty()),
            default_partitions: self.default_partitions,
            auto_create_topics: self.auto_create_topics,
            max_request_bytes: self.max_request_bytes,
            topic_defaults: self.topic_config.into_iter().collect(),
            retention_check_interval: Duration::from_millis(self.retention_check_ms),
            group_initial_rebalance_delay_ms: self.group_initial_rebalance_delay_ms,
            shutdown_grace: Duration::from_millis(self.shutdown_grace_ms),
            replication: crate::replica::ReplicationConfig {
                default_replication_factor: self.default_replication_factor,
                replica_lag_time_max: Duration::from_millis(self.replica_lag_time_max_ms),
                hw_checkpoint_interval: Duration::from_millis(
                    self.replica_high_watermark_checkpoint_interval_ms,
                ),
                ..crate::replica::ReplicationConfig::default()
            },
            broker_session_timeout: Duration::from_millis(self.broker_session_timeout_ms),
            broker_heartbeat_interval: Duration::from_millis(self.broker_heartbeat_interval_ms),
            auto_leader_rebalance_enable: self.auto_leader_rebalance_enable,
            leader_imbalance_check_interval: Duration::from_secs(
                self.leader_imbalance_check_interval_seconds,
            ),
            controller_tick: CONTROLLER_TICK,
        };
        config.validate()?;
        Ok(config)
    }
}

impl BrokerConfig {
    /// Names the first value that cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |flag, value: String, reason: &str| ConfigError {
            flag,
            value,
            reason: reason.into(),
        };
        if self.node_id < 0 {
            return Err(bad("--node-id", self.node_id.to_string(), "must be >= 0"));
        }
        if self.default_partitions < 1 {
            return Err(bad(
                "--default-partitions",
                self.default_partitions.to_string(),
                "must be >= 1",
            ));
        }
        if self.max_request_bytes < 1024 {
            return Err(bad(
                "--max-request-bytes",
                self.max_request_bytes.to_string(),
                "must be >= 1024",
            ));
        }
        if self.advertised_port <= 0 || self.advertised_port > 65535 {
            return Err(bad(
                "--advertised-listener",
                self.advertised_port.to_string(),
                "port out of range",
            ));
        }
        if self.group_initial_rebalance_delay_ms < 0 {
            let v = self.group_initial_rebalance_delay_ms.to_string();
            return Err(bad("--group-initial-rebalance-delay-ms", v, "must be >= 0"));
        }
        if self.replication.default_replication_factor < 1 {
            let v = self.replication.default_replication_factor.to_string();
            return Err(bad("--default-replication-factor", v, "must be >= 1"));
        }
        if self.replication.replica_lag_time_max.is_zero() {
            return Err(bad("--replica-lag-time-max-ms", "0".into(), "must be > 0"));
        }
        if self.broker_heartbeat_interval.is_zero()
            || self.broker_heartbeat_interval >= self.broker_session_timeout
        {
            return Err(bad(
                "--broker-heartbeat-interval-ms",
                self.broker_heartbeat_interval.as_millis().to_string(),
                "must be above 0 and below --broker-session-timeout-ms",
            ));
        }
        if self.leader_imbalance_check_interval.is_zero() {
            return Err(bad(
                "--leader-imbalance-check-interval-seconds",
                "0".into(),
                "must be >= 1",
            ));
        }
        crate::storage::LogConfig::from_kafka_configs(&self.topic_defaults).map_err(|e| {
            ConfigError {
                flag: "--topic-config",
                value: format!("{:?}", self.topic_defaults),
                reason: e.to_string(),
            }
        })?;
        Ok(())
    }

    /// A configuration for tests and `odradek dev`: everything default but the directory and ports.
    pub fn local(data_dir: PathBuf, listen: SocketAddr, http: SocketAddr) -> Self {
        BrokerConfig {
            node_id: 0,
            listen,
            advertised_host: listen.ip().to_string(),
            advertised_port: i32::from(listen.port()),
            data_dir,
            http,
            rack: None,
            default_partitions: 1,
            auto_create_topics: false,
            max_request_bytes: 104_857_600,
            topic_defaults: BTreeMap::new(),
            retention_check_interval: Duration::from_secs(300),
            group_initial_rebalance_delay_ms: 0,
            shutdown_grace: Duration::from_secs(5),
            cluster: None,
            replication: crate::replica::ReplicationConfig::default(),
            broker_session_timeout: Duration::from_millis(9000),
            broker_heartbeat_interval: Duration::from_millis(2000),
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval: Duration::from_secs(30),
            controller_tick: CONTROLLER_TICK,
        }
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// `odradek-3` -> 3: the ordinal a StatefulSet appends to its pod names.
fn ordinal_of(host: &str) -> Option<i32> {
    let short = host.split('.').next()?;
    short.rsplit_once('-')?.1.parse().ok()
}

fn split_host_port(s: &str) -> Option<(String, i32)> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return None;
    }
    Some((host.to_owned(), port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinal_comes_from_the_pod_name() {
        assert_eq!(ordinal_of("odradek-3"), Some(3));
        assert_eq!(
            ordinal_of("my-cluster-12.my-cluster-headless.ns.svc"),
            Some(12)
        );
        assert_eq!(ordinal_of("laptop"), None);
    }

    #[test]
    fn advertised_listener_needs_host_and_port() {
        assert_eq!(
            split_host_port("b-0.svc:9092"),
            Some(("b-0.svc".into(), 9092))
        );
        assert_eq!(split_host_port("[::1]:9092"), Some(("::1".into(), 9092)));
        assert_eq!(split_host_port(":9092"), None);
        assert_eq!(split_host_port("host"), None);
    }

    #[test]
    fn the_heartbeat_interval_must_be_below_the_session_timeout() {
        let mut c = BrokerConfig::local(
            "/tmp/x".into(),
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        );
        assert!(c.validate().is_ok());
        c.broker_heartbeat_interval = c.broker_session_timeout;
        assert_eq!(
            c.validate().unwrap_err().flag,
            "--broker-heartbeat-interval-ms"
        );
    }

    #[test]
    fn validate_names_the_bad_flag() {
        let mut c = BrokerConfig::local(
            "/tmp/x".into(),
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        );
        c.default_partitions = 0;
        let err = c.validate().unwrap_err();
        assert_eq!(err.flag, "--default-partitions");
    }

    fn args(extra: &[&str]) -> BrokerArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            broker: BrokerArgs,
        }
        let mut argv = vec!["odradek"];
        argv.extend_from_slice(extra);
        <Cli as clap::Parser>::try_parse_from(argv).unwrap().broker
    }

    #[test]
    fn voters_parse_in_kafkas_quorum_format() {
        let v = parse_voters("0@b-0.svc:9093, 1@10.0.0.2:9093,2@[::1]:9094").unwrap();
        assert_eq!(v[&0], "b-0.svc:9093");
        assert_eq!(v[&1], "10.0.0.2:9093");
        assert_eq!(v[&2], "::1:9094");
        assert!(parse_voters("").unwrap().is_empty());
        assert!(parse_voters("0@a:1,0@b:2").unwrap_err().contains("twice"));
        assert!(parse_voters("x@a:1").is_err());
        assert!(parse_voters("-1@a:1").is_err());
        assert!(parse_voters("0@a").is_err());
        assert!(parse_voters("0@a:70000").is_err());
        assert!(parse_voters("0a:1").is_err());
    }

    proptest::proptest! {
        #[test]
        fn formatted_voters_parse_back(
            voters in proptest::collection::btree_map(0..1000i32, ("[a-z][a-z0-9.-]{0,20}", 1..=65535i32), 1..6)
        ) {
            let text = voters
                .iter()
                .map(|(id, (host, port))| format!("{id}@{host}:{port}"))
                .collect::<Vec<_>>()
                .join(",");
            let parsed = parse_voters(&text).unwrap();
            let expected: BTreeMap<i32, String> = voters
                .iter()
                .map(|(id, (host, port))| (*id, format!("{host}:{port}")))
                .collect();
            proptest::prop_assert_eq!(parsed, expected);
        }

        #[test]
        fn parsing_arbitrary_voter_text_never_panics(text in ".{0,80}") {
            let _ = parse_voters(&text);
        }
    }

    #[test]
    fn without_voters_the_broker_runs_alone() {
        let c = args(&[]).into_config().unwrap();
        assert_eq!(c.cluster, None);
    }

    #[test]
    fn a_voter_listens_and_advertises_its_own_entry() {
        let c = args(&[
            "--node-id",
            "1",
            "--controller-voters",
            "0@h0:9093,1@h1:9193",
        ])
        .into_config()
        .unwrap();
        let cluster = c.cluster.unwrap();
        assert_eq!(cluster.listen, "0.0.0.0:9193".parse().unwrap());
        assert_eq!(cluster.advertised, "h1:9193");
        assert_eq!(cluster.voters.len(), 2);
    }

    #[test]
    fn a_learner_advertises_its_host_with_the_cluster_port() {
        let c = args(&[
            "--node-id",
            "5",
            "--controller-voters",
            "0@h0:9093",
            "--advertised-listener",
            "b-5.svc:9092",
        ])
        .into_config()
        .unwrap();
        let cluster = c.cluster.unwrap();
        assert_eq!(cluster.listen, "0.0.0.0:9093".parse().unwrap());
        assert_eq!(cluster.advertised, "b-5.svc:9093");
    }

    #[test]
    fn a_voter_advertising_another_address_than_its_entry_is_rejected() {
        let err = args(&[
            "--node-id",
            "0",
            "--controller-voters",
            "0@h0:9093",
            "--cluster-advertised",
            "other:9093",
        ])
        .into_config()
        .unwrap_err();
        assert_eq!(err.flag, "--cluster-advertised");
        let err = args(&["--controller-voters", "0@h0:9093,0@h1:9093"])
            .into_config()
            .unwrap_err();
        assert_eq!(err.flag, "--controller-voters");
    }
}
