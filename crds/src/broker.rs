//! The `Broker` custom resource: one Odradek cluster of `odradek broker` pods.
//!
//! The Broker controller runs it as a StatefulSet (pod ordinal = Kafka node id) with headless and
//! bootstrap Services, a ConfigMap and a PodDisruptionBudget, and moves partition replicas when the
//! cluster scales. The `scale` subresource lets `kubectl scale broker` drive that flow.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Desired state of an Odradek broker cluster.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "odradek.dev",
    version = "v1alpha1",
    kind = "Broker",
    namespaced,
    status = "BrokerStatus",
    derive = "PartialEq",
    category = "odradek",
    shortname = "obk",
    doc = "An Odradek cluster: a StatefulSet of Kafka-wire-compatible brokers.",
    cel,
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(
        name = "Ready",
        type_ = "integer",
        json_path = ".status.readyReplicas",
        description = "brokers that are registered and caught up"
    ),
    printcolumn(
        name = "Bootstrap",
        type_ = "string",
        json_path = ".status.bootstrap",
        priority = 1
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(
    cel,
    validation = Rule::new("self.replicas >= self.controllers")
        .message("replicas must be at least controllers: the first `controllers` brokers hold the metadata quorum"),
    validation = Rule::new("self.controllers == oldSelf.controllers")
        .message("controllers is immutable: the metadata quorum's voters are fixed when the cluster is created")
)]
#[serde(rename_all = "camelCase")]
pub struct BrokerSpec {
    /// Number of brokers. Node ids are the pod ordinals `0..replicas`. Scaling down first moves every
    /// replica off the brokers that go away, and is refused while a topic needs more brokers than remain.
    #[x_kube(validation = Rule::new("self >= 1").message("replicas must be at least 1"))]
    pub replicas: i32,
    /// Brokers that also vote in the Raft quorum holding the cluster's metadata (Kafka's KRaft
    /// controllers): pods `0..controllers`. 1, 3 or 5; the metadata stays writable while a majority of
    /// them runs. Fixed at creation; `replicas` may never go below it.
    #[serde(default = "default_controllers")]
    #[x_kube(validation = Rule::new("self == 1 || self == 3 || self == 5").message("controllers must be 1, 3 or 5"))]
    pub controllers: i32,
    /// Container image with the `odradek` binary. Defaults to the operator's `--broker-image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Persistent storage of each broker's log directory.
    #[serde(default)]
    pub storage: StorageSpec,
    /// CPU and memory requests and limits of each broker container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Broker configs and default topic configs by their Kafka names: `num.partitions` and
    /// `auto.create.topics.enable` configure the broker; every other entry is a default topic config
    /// by its topic-level name (e.g. `retention.ms`, `cleanup.policy`). Changing them rolls the
    /// brokers one at a time.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// Zone awareness: broker pods are spread over the domains of this node label (topology spread
    /// constraints), and each broker's rack is its pod's copy of the label (Kubernetes copies
    /// `topology.kubernetes.io/zone` and `/region` onto pods where pod topology labels are enabled);
    /// replicas are spread over racks as far as the brokers report racks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<RackSpec>,
    /// How partition replicas are rebalanced when the cluster scales.
    #[serde(default)]
    pub rebalance: RebalanceSpec,
}

/// A PersistentVolumeClaim template for local state. Kubernetes cannot change the volume claims of a
/// running StatefulSet, so changes apply to clusters created afterwards.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Size of the volume, as a Kubernetes quantity (e.g. `10Gi`).
    #[serde(default = "default_storage_size")]
    #[x_kube(validation = Rule::new("self.matches('^[0-9]+(\\\\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$')")
        .message("size must be a Kubernetes quantity such as 10Gi"))]
    pub size: String,
    /// StorageClass of the volume; the cluster default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

impl Default for StorageSpec {
    fn default() -> Self {
        Self {
            size: default_storage_size(),
            storage_class_name: None,
        }
    }
}

fn default_controllers() -> i32 {
    3
}

fn default_storage_size() -> String {
    "10Gi".to_owned()
}

/// Zone awareness of the cluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RackSpec {
    /// Node label whose value is a broker's rack, e.g. `topology.kubernetes.io/zone`.
    #[x_kube(validation = Rule::new("size(self) > 0").message("topologyKey must name a node label"))]
    pub topology_key: String,
}

/// Rebalancing of partition replicas when brokers are added or removed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RebalanceSpec {
    /// Move replicas onto new brokers after a scale-up. Scale-down always moves replicas off the
    /// brokers that go away, whatever this says.
    #[serde(default = "default_true")]
    pub on_scale: bool,
    /// At most this many partition reassignments run at once.
    #[serde(default = "default_max_concurrent_moves")]
    #[x_kube(validation = Rule::new("self >= 1").message("maxConcurrentMoves must be at least 1"))]
    pub max_concurrent_moves: i32,
}

impl Default for RebalanceSpec {
    fn default() -> Self {
        Self {
            on_scale: true,
            max_concurrent_moves: default_max_concurrent_moves(),
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_max_concurrent_moves() -> i32 {
    10
}

/// Observed state of an Odradek broker cluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BrokerStatus {
    /// Number of broker pods that exist.
    #[serde(default)]
    pub replicas: i32,
    /// Number of broker pods that are ready (registered and caught up).
    #[serde(default)]
    pub ready_replicas: i32,
    /// Label selector of the broker pods, for the scale subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// One row per registered broker.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub brokers: Vec<BrokerRow>,
    /// `host:port` of the bootstrap Service for Kafka clients inside the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<String>,
    /// Progress of partition reassignments started by a scale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reassignment: Option<ReassignmentStatus>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions in the metav1 style: `Ready`, `Rebalancing`, `ScaleDownRefused`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// One broker as the cluster's metadata reports it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BrokerRow {
    /// Kafka node id (= the pod ordinal).
    pub id: i32,
    /// Whether the broker is registered (unfenced) in the cluster's metadata.
    pub ready: bool,
    /// Number of partition replicas on this broker.
    pub partitions: i32,
    /// Number of partitions this broker leads.
    pub leaders: i32,
}

/// Progress of a set of partition reassignments.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReassignmentStatus {
    /// Why the reassignment runs: `ScaleUp` or `ScaleDown`.
    pub reason: String,
    /// The broker count the reassignment prepares for.
    pub target_replicas: i32,
    /// Partitions the plan moves in total.
    pub total: i32,
    /// Partitions whose move has finished.
    pub completed: i32,
    /// Partitions being moved right now.
    pub in_progress: i32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(replicas: i32) -> Broker {
        Broker::new(
            "odradek",
            BrokerSpec {
                replicas,
                controllers: replicas.clamp(1, 3),
                image: None,
                storage: StorageSpec::default(),
                resources: None,
                config: BTreeMap::new(),
                rack: None,
                rebalance: RebalanceSpec::default(),
            },
        )
    }

    #[test]
    fn a_three_broker_cluster_is_accepted() {
        assert!(broker(3).validate_cel().is_ok());
    }

    #[test]
    fn the_metadata_quorum_is_fixed_and_never_larger_than_the_cluster() {
        let mut b = broker(3);
        b.spec.controllers = 5;
        let err = b.validate_cel().unwrap_err();
        assert!(
            format!("{err:?}").contains("replicas must be at least controllers"),
            "{err:?}"
        );
        b.spec.controllers = 2;
        assert!(
            format!("{:?}", b.validate_cel().unwrap_err())
                .contains("controllers must be 1, 3 or 5")
        );
        let old = broker(3);
        let mut grown = old.clone();
        grown.spec.replicas = 6;
        assert!(grown.validate_cel_update(&old).is_ok());
        let mut shrunk = old.clone();
        shrunk.spec.replicas = 2;
        assert!(shrunk.validate_cel_update(&old).is_err());
        let mut changed = grown.clone();
        changed.spec.controllers = 5;
        let err = changed.validate_cel_update(&grown).unwrap_err();
        assert!(
            format!("{err:?}").contains("controllers is immutable"),
            "{err:?}"
        );
    }

    #[test]
    fn controllers_default_to_three() {
        let spec: BrokerSpec = serde_json::from_value(serde_json::json!({"replicas": 3})).unwrap();
        assert_eq!(spec.controllers, 3);
    }

    #[test]
    fn zero_replicas_are_rejected() {
        let err = broker(0).validate_cel().unwrap_err();
        assert!(
            format!("{err:?}").contains("replicas must be at least 1"),
            "{err:?}"
        );
    }

    #[test]
    fn storage_size_must_be_a_quantity() {
        let mut b = broker(1);
        b.spec.storage.size = "1.5Gi".into();
        assert!(b.validate_cel().is_ok());
        b.spec.storage.size = "lots".into();
        assert!(b.validate_cel().is_err());
    }

    #[test]
    fn max_concurrent_moves_must_be_positive() {
        let mut b = broker(1);
        b.spec.rebalance.max_concurrent_moves = 0;
        assert!(b.validate_cel().is_err());
    }

    #[test]
    fn defaults_fill_a_minimal_manifest() {
        let b: BrokerSpec = serde_json::from_value(serde_json::json!({"replicas": 3})).unwrap();
        assert_eq!(b.storage.size, "10Gi");
        assert!(b.rebalance.on_scale);
        assert_eq!(b.rebalance.max_concurrent_moves, 10);
    }
}
