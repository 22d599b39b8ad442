//! The `Processor` custom resource: a stateful stream-processing job.
//!
//! The Processor controller runs it as a StatefulSet of `odradek processor` pods (stable pod names are
//! the static consumer-group members; each pod has a volume for its local stores) and sizes it with the
//! lag autoscaler when `spec.autoscale` is set, else from `spec.replicas`, which the `scale`
//! subresource exposes to `kubectl scale`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::broker::StorageSpec;

/// Desired state of a stream processor.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "odradek.dev",
    version = "v1alpha1",
    kind = "Processor",
    namespaced,
    status = "ProcessorStatus",
    derive = "PartialEq",
    category = "odradek",
    shortname = "opr",
    doc = "A stateful stream processor: per-partition tasks with local stores backed by changelog topics.",
    cel,
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Job", type_ = "string", json_path = ".spec.job"),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".status.replicas"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(
        name = "Desired",
        type_ = "integer",
        json_path = ".status.desiredReplicas",
        priority = 1
    ),
    printcolumn(
        name = "Lag",
        type_ = "integer",
        json_path = ".status.totalLag",
        description = "records behind the inputs' ends"
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
    validation = Rule::new("has(self.job) || has(self.image)")
        .message("set job (a built-in job) or image (a user job)"),
    validation = Rule::new("has(self.job) || (has(self.command) && size(self.command) > 0)")
        .message("a user job (image) needs a command"),
)]
#[serde(rename_all = "camelCase")]
pub struct ProcessorSpec {
    /// Name of the `Broker` (the Odradek cluster) in the same namespace to consume from and produce to.
    #[x_kube(validation = Rule::new("size(self) > 0").message("cluster must name a Broker"))]
    pub cluster: String,
    /// A built-in job of `odradek processor --job`: `pageview-count` or `profile-fanout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// Image of a user job; with `job`, overrides the operator's default image for a built-in job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Entrypoint of a user job's container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Arguments of the job's container, appended to the command.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Input topics (the built-in jobs read the first). The partition count of the inputs caps the
    /// number of replicas.
    #[x_kube(validation = Rule::new("size(self) >= 1").message("a processor needs at least one input"))]
    pub inputs: Vec<String>,
    /// Output topics the job produces to. Built-in jobs name each output's role as `ROLE=TOPIC`
    /// (`pageview-count`: `counts`; `profile-fanout`: `newsfeed`, `search`); a bare topic name is
    /// given the job's roles in that order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<String>,
    /// Names of the job's local stores; each is backed by the topic `<processor>-<store>-changelog`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stores: Vec<String>,
    /// Number of pods when `autoscale` is absent; `kubectl scale` sets it.
    #[serde(default = "default_replicas")]
    #[x_kube(validation = Rule::new("self >= 0").message("replicas may not be negative"))]
    pub replicas: i32,
    /// Lag-based autoscaling; when set it decides the number of pods within its bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<AutoscaleSpec>,
    /// Volume of each pod for its local stores.
    #[serde(default)]
    pub storage: StorageSpec,
    /// CPU and memory requests and limits of each processor container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Extra environment variables of the job's container (e.g. job settings `ODRADEK_...`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

fn default_replicas() -> i32 {
    1
}

/// Bounds and targets of the lag autoscaler.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    cel,
    validation = Rule::new("self.minReplicas <= self.maxReplicas")
        .message("minReplicas must not exceed maxReplicas")
)]
#[serde(rename_all = "camelCase")]
pub struct AutoscaleSpec {
    /// Fewest pods, also while idle.
    #[serde(default = "default_replicas")]
    #[x_kube(validation = Rule::new("self >= 1").message("minReplicas must be at least 1"))]
    pub min_replicas: i32,
    /// Most pods; the input partition count caps it further.
    #[x_kube(validation = Rule::new("self >= 1").message("maxReplicas must be at least 1"))]
    pub max_replicas: i32,
    /// Target: the lag should be processed within this many seconds at the measured processing rate.
    #[serde(default = "default_target_lag_seconds")]
    #[x_kube(validation = Rule::new("self >= 1").message("targetLagSeconds must be at least 1"))]
    pub target_lag_seconds: i32,
    /// A scale-down takes the highest recommendation of this many past seconds, so load dips do not flap.
    #[serde(default = "default_stabilization_seconds")]
    #[x_kube(validation = Rule::new("self >= 0").message("scaleDownStabilizationSeconds may not be negative"))]
    pub scale_down_stabilization_seconds: i32,
}

fn default_target_lag_seconds() -> i32 {
    30
}

fn default_stabilization_seconds() -> i32 {
    300
}

/// Observed state of a stream processor.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProcessorStatus {
    /// Number of pods that exist.
    #[serde(default)]
    pub replicas: i32,
    /// Number of pods that are ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Number of pods the controller wants (the autoscaler's decision, else `spec.replicas`).
    #[serde(default)]
    pub desired_replicas: i32,
    /// Records behind: sum over input partitions of (latest offset - the group's committed offset).
    #[serde(default)]
    pub total_lag: i64,
    /// Records per second the processor consumed over the last interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_rate: Option<f64>,
    /// Records per second produced to the inputs over the last interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_rate: Option<f64>,
    /// The last change of desired replicas and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scaling: Option<ScalingDecision>,
    /// Label selector of the pods, for the scale subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions in the metav1 style: `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// A change of the desired number of pods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScalingDecision {
    /// When the decision was taken.
    pub time: Time,
    /// Desired replicas before.
    pub from: i32,
    /// Desired replicas after.
    pub to: i32,
    /// Why, in words.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ProcessorSpec {
        serde_json::from_value(serde_json::json!({
            "cluster": "odradek",
            "job": "pageview-count",
            "inputs": ["page-views"],
            "outputs": ["page-view-counts"],
            "stores": ["counts"],
        }))
        .unwrap()
    }

    #[test]
    fn a_built_in_job_is_accepted_with_defaults() {
        let p = Processor::new("pageview-count", spec());
        assert_eq!(p.spec.replicas, 1);
        assert_eq!(p.spec.storage.size, "10Gi");
        assert!(p.validate_cel().is_ok());
    }

    #[test]
    fn a_processor_needs_a_job_or_an_image_with_a_command() {
        let mut s = spec();
        s.job = None;
        let err = Processor::new("p", s.clone()).validate_cel().unwrap_err();
        assert!(
            format!("{err:?}").contains("set job (a built-in job) or image"),
            "{err:?}"
        );
        s.image = Some("example/job:1".into());
        // Without a command the rule itself must fail (not an evaluation error on a missing key).
        let err = Processor::new("p", s.clone()).validate_cel().unwrap_err();
        assert!(
            format!("{err:?}").contains("a user job (image) needs a command"),
            "{err:?}"
        );
        s.command = vec!["/job".into()];
        assert!(Processor::new("p", s).validate_cel().is_ok());
    }

    #[test]
    fn a_processor_needs_an_input() {
        let mut s = spec();
        s.inputs.clear();
        assert!(Processor::new("p", s).validate_cel().is_err());
    }

    #[test]
    fn autoscale_min_may_not_exceed_max() {
        let ok = serde_json::json!({"minReplicas": 2, "maxReplicas": 4});
        assert!(AutoscaleSpec::validate_cel(&ok, None).is_ok());
        let bad = serde_json::json!({"minReplicas": 5, "maxReplicas": 4});
        let err = AutoscaleSpec::validate_cel(&bad, None).unwrap_err();
        assert!(
            format!("{err:?}").contains("minReplicas must not exceed maxReplicas"),
            "{err:?}"
        );

        let mut s = spec();
        s.autoscale = Some(AutoscaleSpec {
            min_replicas: 3,
            max_replicas: 2,
            target_lag_seconds: 30,
            scale_down_stabilization_seconds: 300,
        });
        assert!(Processor::new("p", s).validate_cel().is_err());
    }
}
