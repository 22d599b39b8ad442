//! Prometheus metrics of the broker, in the OpenMetrics text format on `/metrics`.

use std::sync::Mutex;

use kafka_protocol::messages::ApiKey;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabel {
    /// A fixed, bounded set of values: the API names.
    pub api: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabel {
    pub topic: String,
    pub partition: i32,
}

/// The broker's metrics. Counters are lock-free; the registry is only locked to encode.
pub struct Metrics {
    registry: Mutex<Registry>,
    pub requests: Family<ApiLabel, Counter>,
    pub connections: Gauge,
    pub produced_records: Counter,
    pub produced_bytes: Counter,
    pub fetched_bytes: Counter,
    pub log_end_offset: Family<PartitionLabel, Gauge>,
    pub log_size_bytes: Family<PartitionLabel, Gauge>,
    /// Partitions this broker leads with a replica outside the ISR.
    pub under_replicated_partitions: Gauge,
    pub isr_shrinks: Counter,
    pub isr_expands: Counter,
    /// Per followed partition: the leader's high watermark minus this follower's log end offset.
    pub follower_fetch_lag: Family<PartitionLabel, Gauge>,
    /// Registered brokers that are fenced, as the controller last saw them.
    pub fenced_brokers: Gauge,
    /// 1 while this broker runs the active controller.
    pub active_controller: Gauge,
    /// Partitions with a reassignment in progress, as the controller last saw them.
    pub reassignments_in_progress: Gauge,
    /// Leaders elected by this broker's controller (fencing, unfencing, preferred, reassignment).
    pub leader_elections: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("odradek_broker");
        let requests = Family::<ApiLabel, Counter>::default();
        let connections = Gauge::default();
        let produced_records = Counter::default();
        let produced_bytes = Counter::default();
        let fetched_bytes = Counter::default();
        let log_end_offset = Family::<PartitionLabel, Gauge>::default();
        let log_size_bytes = Family::<PartitionLabel, Gauge>::default();
        registry.register(
            "requests",
            "Kafka requests handled, by API",
            requests.clone(),
        );
        registry.register(
            "connections",
            "Open client connections",
            connections.clone(),
        );
        registry.register(
            "produced_records",
            "Records appended by Produce",
            produced_records.clone(),
        );
        registry.register(
            "produced_bytes",
            "Record batch bytes appended by Produce",
            produced_bytes.clone(),
        );
        registry.register(
            "fetched_bytes",
            "Record batch bytes returned by Fetch",
            fetched_bytes.clone(),
        );
        registry.register(
            "log_end_offset",
            "Log end offset per partition",
            log_end_offset.clone(),
        );
        registry.register(
            "log_size_bytes",
            "Bytes on disk per partition",
            log_size_bytes.clone(),
        );
        let under_replicated_partitions = Gauge::default();
        let isr_shrinks = Counter::default();
        let isr_expands = Counter::default();
        let follower_fetch_lag = Family::<PartitionLabel, Gauge>::default();
        registry.register(
            "under_replicated_partitions",
            "Partitions led by this broker with a replica outside the ISR",
            under_replicated_partitions.clone(),
        );
        registry.register(
            "isr_shrinks",
            "ISR shrinks committed by this broker",
            isr_shrinks.clone(),
        );
        registry.register(
            "isr_expands",
            "ISR expansions committed by this broker",
            isr_expands.clone(),
        );
        registry.register(
            "follower_fetch_lag",
            "Offsets this follower is behind its leader, per partition",
            follower_fetch_lag.clone(),
        );
        let fenced_brokers = Gauge::default();
        let active_controller = Gauge::default();
        let reassignments_in_progress = Gauge::default();
        let leader_elections = Counter::default();
        registry.register(
            "fenced_brokers",
            "Registered brokers that are fenced (controller's view)",
            fenced_brokers.clone(),
        );
        registry.register(
            "active_controller",
            "1 while this broker is the active controller",
            active_controller.clone(),
        );
        registry.register(
            "reassignments_in_progress",
            "Partitions being reassigned (controller's view)",
            reassignments_in_progress.clone(),
        );
        registry.register(
            "leader_elections",
            "Partition leaders elected by this broker's controller",
            leader_elections.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            under_replicated_partitions,
            isr_shrinks,
            isr_expands,
            follower_fetch_lag,
            fenced_brokers,
            active_controller,
            reassignments_in_progress,
            leader_elections,
            requests,
            connections,
            produced_records,
            produced_bytes,
            fetched_bytes,
            log_end_offset,
            log_size_bytes,
        }
    }
}

impl Metrics {
    pub fn request(&self, key: ApiKey) {
        self.requests
            .get_or_create(&ApiLabel { api: api_name(key) })
            .inc();
    }

    /// Registers metrics another component owns (the metadata quorum's gauges) in this registry.
    pub fn register_with(&self, f: impl FnOnce(&mut Registry)) {
        f(&mut self
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner));
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
            out.clear();
        }
        out
    }
}

fn api_name(key: ApiKey) -> &'static str {
    match key {
        ApiKey::Produce => "Produce",
        ApiKey::Fetch => "Fetch",
        ApiKey::ListOffsets => "ListOffsets",
        ApiKey::Metadata => "Metadata",
        ApiKey::OffsetCommit => "OffsetCommit",
        ApiKey::OffsetFetch => "OffsetFetch",
        ApiKey::FindCoordinator => "FindCoordinator",
        ApiKey::JoinGroup => "JoinGroup",
        ApiKey::Heartbeat => "Heartbeat",
        ApiKey::LeaveGroup => "LeaveGroup",
        ApiKey::SyncGroup => "SyncGroup",
        ApiKey::DescribeGroups => "DescribeGroups",
        ApiKey::ListGroups => "ListGroups",
        ApiKey::ApiVersions => "ApiVersions",
        ApiKey::CreateTopics => "CreateTopics",
        ApiKey::DeleteTopics => "DeleteTopics",
        ApiKey::DeleteRecords => "DeleteRecords",
        ApiKey::InitProducerId => "InitProducerId",
        ApiKey::DescribeConfigs => "DescribeConfigs",
        ApiKey::AlterConfigs => "AlterConfigs",
        ApiKey::CreatePartitions => "CreatePartitions",
        ApiKey::DeleteGroups => "DeleteGroups",
        ApiKey::IncrementalAlterConfigs => "IncrementalAlterConfigs",
        ApiKey::OffsetDelete => "OffsetDelete",
        ApiKey::DescribeCluster => "DescribeCluster",
        ApiKey::OffsetForLeaderEpoch => "OffsetForLeaderEpoch",
        ApiKey::ElectLeaders => "ElectLeaders",
        ApiKey::AlterPartitionReassignments => "AlterPartitionReassignments",
        ApiKey::ListPartitionReassignments => "ListPartitionReassignments",
        ApiKey::UnregisterBroker => "UnregisterBroker",
        _ => "other",
    }
}
