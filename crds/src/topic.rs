//! The `Topic` custom resource: one Kafka topic in an Odradek cluster.
//!
//! The Topic controller creates the topic through the Kafka admin protocol, raises its partition count,
//! keeps its configs in line with `spec.config` and deletes it on CR deletion unless the deletion policy
//! retains it. The CEL rules reject what Kafka can never do (fewer partitions) or what would silently
//! orphan a topic (renaming it or moving it to another cluster).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of a Kafka topic.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "odradek.dev",
    version = "v1alpha1",
    kind = "Topic",
    namespaced,
    status = "TopicStatus",
    derive = "PartialEq",
    category = "odradek",
    shortname = "otp",
    doc = "A Kafka topic in an Odradek cluster (a Broker in the same namespace).",
    cel,
    validation = Rule::new("has(self.spec.topicName) || size(self.metadata.name) <= 249")
        .message("metadata.name is longer than the 249 characters Kafka allows: set spec.topicName"),
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.cluster"),
    printcolumn(name = "Partitions", type_ = "integer", json_path = ".spec.partitions"),
    printcolumn(name = "RF", type_ = "integer", json_path = ".spec.replicationFactor", description = "replication factor"),
    printcolumn(name = "Ready", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].status"#),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(
    cel,
    validation = Rule::new("self.partitions >= oldSelf.partitions")
        .message("partitions may not decrease: Kafka cannot remove partitions"),
    validation = Rule::new("self.replicationFactor == oldSelf.replicationFactor")
        .message("replicationFactor is immutable after creation"),
    validation = Rule::new("self.cluster == oldSelf.cluster")
        .message("cluster is immutable: create a new Topic in the other cluster instead"),
    validation = Rule::new("has(self.topicName) == has(oldSelf.topicName) && (!has(self.topicName) || self.topicName == oldSelf.topicName)")
        .message("topicName is immutable: Kafka topics cannot be renamed")
)]
#[serde(rename_all = "camelCase")]
pub struct TopicSpec {
    /// Name of the `Broker` (the Odradek cluster) in the same namespace that holds this topic.
    #[x_kube(validation = Rule::new("size(self) > 0").message("cluster must name a Broker"))]
    pub cluster: String,
    /// Name of the topic in Kafka. Defaults to `metadata.name`; set it when the Kafka name is not a valid
    /// Kubernetes name (upper case, underscores). Kafka allows 1 to 249 characters of `[a-zA-Z0-9._-]`,
    /// excluding `.` and `..`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[a-zA-Z0-9._-]{1,249}$') && self != '.' && self != '..'")
        .message("topicName must be 1 to 249 characters of [a-zA-Z0-9._-] and not '.' or '..'"))]
    pub topic_name: Option<String>,
    /// Number of partitions. May be raised, never lowered.
    #[x_kube(validation = Rule::new("self >= 1").message("partitions must be at least 1"))]
    pub partitions: i32,
    /// Number of replicas of each partition. At least 1, at most the number of brokers.
    #[serde(default = "default_replication_factor")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 32767").message("replicationFactor must be between 1 and 32767"))]
    pub replication_factor: i32,
    /// Kafka topic configs by their Kafka names, e.g. `retention.ms: "604800000"` or
    /// `cleanup.policy: compact`. Configs not listed keep the broker's defaults.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// What happens to the Kafka topic when this resource is deleted: `Delete` (default) deletes the
    /// topic and its data, `Retain` leaves it in the cluster.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

fn default_replication_factor() -> i32 {
    1
}

/// What the operator does with the Kafka topic when its `Topic` resource is deleted.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeletionPolicy {
    /// Delete the Kafka topic and its data.
    #[default]
    Delete,
    /// Keep the Kafka topic; only the Kubernetes resource goes away.
    Retain,
}

/// Observed state of a Kafka topic.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TopicStatus {
    /// The Kafka topic id (a UUID) once the topic exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
    /// Number of partitions the topic has in the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<i32>,
    /// Replication factor the topic has in the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<i32>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions in the metav1 style: `Ready` (the topic exists with the desired partitions and
    /// configs) and `Conflict` (another, older Topic resource manages the same Kafka topic).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl Topic {
    /// The topic's name in Kafka: `spec.topicName`, else `metadata.name`.
    #[must_use]
    pub fn kafka_name(&self) -> &str {
        self.spec
            .topic_name
            .as_deref()
            .or(self.metadata.name.as_deref())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, partitions: i32) -> Topic {
        Topic::new(
            name,
            TopicSpec {
                cluster: "odradek".into(),
                topic_name: None,
                partitions,
                replication_factor: 3,
                config: BTreeMap::new(),
                deletion_policy: DeletionPolicy::Delete,
            },
        )
    }

    #[test]
    fn a_plain_topic_is_accepted() {
        assert!(topic("page-views", 6).validate_cel().is_ok());
    }

    #[test]
    fn zero_partitions_are_rejected() {
        let err = topic("page-views", 0).validate_cel().unwrap_err();
        assert!(
            format!("{err:?}").contains("partitions must be at least 1"),
            "{err:?}"
        );
    }

    #[test]
    fn replication_factor_zero_is_rejected() {
        let mut t = topic("page-views", 1);
        t.spec.replication_factor = 0;
        let err = t.validate_cel().unwrap_err();
        assert!(format!("{err:?}").contains("replicationFactor"), "{err:?}");
    }

    #[test]
    fn partitions_may_grow_but_not_shrink() {
        let old = topic("page-views", 6);
        assert!(topic("page-views", 12).validate_cel_update(&old).is_ok());
        let err = topic("page-views", 3)
            .validate_cel_update(&old)
            .unwrap_err();
        assert!(
            format!("{err:?}").contains("partitions may not decrease"),
            "{err:?}"
        );
    }

    #[test]
    fn replication_factor_and_cluster_are_immutable() {
        let old = topic("page-views", 6);
        let mut rf = old.clone();
        rf.spec.replication_factor = 1;
        assert!(rf.validate_cel_update(&old).is_err());
        let mut cluster = old.clone();
        cluster.spec.cluster = "other".into();
        assert!(cluster.validate_cel_update(&old).is_err());
    }

    #[test]
    fn topic_name_is_immutable_once_set_or_unset() {
        let old = topic("page-views", 6);
        let mut named = old.clone();
        named.spec.topic_name = Some("PageViews".into());
        assert!(named.validate_cel_update(&old).is_err());
        assert!(old.validate_cel_update(&named).is_err());
        assert!(named.validate_cel_update(&named).is_ok());
    }

    #[test]
    fn kafka_topic_names_are_checked() {
        for good in ["Page_Views.v2", "a", "x-y"] {
            let mut t = topic("t", 1);
            t.spec.topic_name = Some(good.into());
            assert!(t.validate_cel().is_ok(), "{good} should be accepted");
        }
        let long = "a".repeat(250);
        for bad in [".", "..", "has space", "slash/name", "", long.as_str()] {
            let mut t = topic("t", 1);
            t.spec.topic_name = Some(bad.into());
            assert!(t.validate_cel().is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn kafka_name_defaults_to_metadata_name() {
        let mut t = topic("page-views", 1);
        assert_eq!(t.kafka_name(), "page-views");
        t.spec.topic_name = Some("PageViews".into());
        assert_eq!(t.kafka_name(), "PageViews");
    }

    #[test]
    fn a_long_metadata_name_needs_an_explicit_topic_name() {
        let name = format!("t{}", "a".repeat(250));
        assert!(topic(&name, 1).validate_cel().is_err());
        let mut t = topic(&name, 1);
        t.spec.topic_name = Some("short".into());
        assert!(t.validate_cel().is_ok());
    }
}
