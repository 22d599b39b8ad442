//! The desired children of a Broker, as pure functions of the Broker (and settings).
//!
//! Node ids: the pod's ordinal, read through the downward API from the label
//! `apps.kubernetes.io/pod-index` (set by the StatefulSet controller since Kubernetes 1.28) into
//! `ODRADEK_NODE_ID`, so no shell is needed in the image. Each broker advertises
//! `$(POD_NAME).<broker>-headless.$(POD_NAMESPACE).svc.<cluster domain>:9092`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use k8s_openapi::api::apps::v1::{
    RollingUpdateStatefulSetStrategy, StatefulSet, StatefulSetSpec, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapEnvSource, Container, ContainerPort, EnvFromSource, EnvVar, EnvVarSource,
    HTTPGetAction, ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SecurityContext, Service, ServicePort,
    ServiceSpec, TopologySpreadConstraint, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use odradek_crds::Broker;

use crate::context::ControllerConfig;
use crate::controllers::{MANAGED_BY, owner_ref};

/// Kafka listener port of every broker.
pub const KAFKA_PORT: i32 = 9092;
/// HTTP port of every broker: `/metrics`, `/healthz`, `/readyz`.
pub const HTTP_PORT: i32 = 9644;
/// Inter-broker port of the metadata quorum (Raft) and broker heartbeats.
pub const CLUSTER_PORT: i32 = 9093;
/// Where a broker keeps its log.
pub const DATA_DIR: &str = "/var/lib/odradek";
/// Annotation on the pod template carrying a hash of the config, so that a config change rolls pods.
pub const CONFIG_HASH_ANNOTATION: &str = "odradek.dev/config-hash";
/// Non-root user of the image.
const RUN_AS: i64 = 65532;

/// Broker configs (Kafka names) that `odradek broker` takes as flags, and the variables that set them.
/// Every other config is a default topic config and goes into `ODRADEK_TOPIC_CONFIG`.
const CONFIG_FLAGS: &[(&str, &str)] = &[
    ("num.partitions", "ODRADEK_DEFAULT_PARTITIONS"),
    ("auto.create.topics.enable", "ODRADEK_AUTO_CREATE_TOPICS"),
];

/// Names of a Broker's children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// StatefulSet, PodDisruptionBudget and pod name prefix.
    pub statefulset: String,
    /// Headless Service (pod DNS).
    pub headless: String,
    /// Bootstrap Service (clients).
    pub bootstrap: String,
    /// ConfigMap.
    pub config: String,
}

impl Names {
    /// Children names of the Broker called `name`.
    #[must_use]
    pub fn of(name: &str) -> Self {
        Self {
            statefulset: name.to_owned(),
            headless: format!("{name}-headless"),
            bootstrap: format!("{name}-bootstrap"),
            config: format!("{name}-config"),
        }
    }
}

/// `host:port` of the bootstrap Service of Broker `name` in `namespace`.
#[must_use]
pub fn bootstrap_address(name: &str, namespace: &str, cluster_domain: &str) -> String {
    format!(
        "{}.{namespace}.svc.{cluster_domain}:{KAFKA_PORT}",
        Names::of(name).bootstrap
    )
}

/// Labels selecting a Broker's pods.
#[must_use]
pub fn selector_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_owned(),
            "odradek-broker".to_owned(),
        ),
        ("app.kubernetes.io/instance".to_owned(), name.to_owned()),
    ])
}

/// The label selector as text, for the scale subresource.
#[must_use]
pub fn selector_string(name: &str) -> String {
    selector_labels(name)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn labels(name: &str) -> BTreeMap<String, String> {
    let mut l = selector_labels(name);
    l.insert(MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned());
    l
}

fn meta(broker: &Broker, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: broker.namespace(),
        labels: Some(labels(&broker.name_any())),
        owner_references: owner_ref(broker).map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

/// The broker's environment from `spec.config`: known broker configs become their flag variables,
/// the rest `ODRADEK_TOPIC_CONFIG=key=value,...` (default topic configs by their topic-level names).
#[must_use]
pub fn config_env(broker: &Broker) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let mut topic = Vec::new();
    for (key, value) in &broker.spec.config {
        match CONFIG_FLAGS.iter().find(|(k, _)| k == key) {
            Some((_, var)) => {
                env.insert((*var).to_owned(), value.clone());
            }
            None => topic.push(format!("{key}={value}")),
        }
    }
    if !topic.is_empty() {
        env.insert("ODRADEK_TOPIC_CONFIG".to_owned(), topic.join(","));
    }
    env
}

/// The config as text (sorted `KEY=value` lines), whose hash rolls the pods when it changes.
#[must_use]
pub fn properties(broker: &Broker) -> String {
    let mut text = String::new();
    for (k, v) in config_env(broker) {
        let _ = writeln!(text, "{k}={v}");
    }
    text
}

/// FNV-1a of the config text: stable across releases (unlike `DefaultHasher`), enough to detect change.
#[must_use]
pub fn config_hash(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The ConfigMap holding the broker's configuration as environment variables (`envFrom`).
#[must_use]
pub fn config_map(broker: &Broker) -> ConfigMap {
    let names = Names::of(&broker.name_any());
    ConfigMap {
        metadata: meta(broker, names.config),
        data: Some(config_env(broker)),
        ..ConfigMap::default()
    }
}

/// The headless Service giving each pod a stable DNS name. Not-ready pods are published too: brokers
/// must reach each other to become ready.
#[must_use]
pub fn headless_service(broker: &Broker) -> Service {
    let name = broker.name_any();
    let names = Names::of(&name);
    Service {
        metadata: meta(broker, names.headless),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(&name)),
            ports: Some(vec![
                port("kafka", KAFKA_PORT),
                port("cluster", CLUSTER_PORT),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The bootstrap Service clients connect to first; only ready brokers are behind it.
#[must_use]
pub fn bootstrap_service(broker: &Broker) -> Service {
    let name = broker.name_any();
    let names = Names::of(&name);
    Service {
        metadata: meta(broker, names.bootstrap),
        spec: Some(ServiceSpec {
            selector: Some(selector_labels(&name)),
            ports: Some(vec![port("kafka", KAFKA_PORT)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_owned()),
        port,
        target_port: Some(IntOrString::String(name.to_owned())),
        ..ServicePort::default()
    }
}

/// At most one broker down at a time through voluntary disruptions (drains).
#[must_use]
pub fn pod_disruption_budget(broker: &Broker) -> PodDisruptionBudget {
    let name = broker.name_any();
    PodDisruptionBudget {
        metadata: meta(broker, Names::of(&name).statefulset),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(&name)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

fn env_field(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_owned(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("http".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

/// The metadata quorum's voters in the broker's `--controller-voters` form: pods
/// `0..spec.controllers` at their headless DNS names, e.g. `0@odradek-0.odradek-headless.ns.svc.cluster.local:9093`.
#[must_use]
pub fn controller_voters(broker: &Broker, cluster_domain: &str) -> String {
    let name = broker.name_any();
    let names = Names::of(&name);
    (0..broker.spec.controllers.max(1))
        .map(|i| {
            format!(
                "{i}@{}-{i}.{}.$(POD_NAMESPACE).svc.{cluster_domain}:{CLUSTER_PORT}",
                names.statefulset, names.headless
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The StatefulSet of brokers with `replicas` pods (which differs from `spec.replicas` while a
/// scale-down drains brokers).
#[must_use]
pub fn statefulset(broker: &Broker, replicas: i32, config: &ControllerConfig) -> StatefulSet {
    let name = broker.name_any();
    let names = Names::of(&name);
    let advertised = format!(
        "$(POD_NAME).{}.$(POD_NAMESPACE).svc.{}:{KAFKA_PORT}",
        names.headless, config.cluster_domain
    );
    let cluster_advertised = format!(
        "$(POD_NAME).{}.$(POD_NAMESPACE).svc.{}:{CLUSTER_PORT}",
        names.headless, config.cluster_domain
    );
    let mut env = vec![
        env_field("POD_NAME", "metadata.name"),
        env_field("POD_NAMESPACE", "metadata.namespace"),
        env_field(
            "ODRADEK_NODE_ID",
            "metadata.labels['apps.kubernetes.io/pod-index']",
        ),
        env("ODRADEK_LISTEN", format!("0.0.0.0:{KAFKA_PORT}")),
        env("ODRADEK_ADVERTISED_LISTENER", advertised),
        env("ODRADEK_HTTP", format!("0.0.0.0:{HTTP_PORT}")),
        env("ODRADEK_DATA_DIR", DATA_DIR),
        env("ODRADEK_CLUSTER_LISTEN", format!("0.0.0.0:{CLUSTER_PORT}")),
        env("ODRADEK_CLUSTER_ADVERTISED", cluster_advertised),
        env(
            "ODRADEK_CONTROLLER_VOTERS",
            controller_voters(broker, &config.cluster_domain),
        ),
    ];
    if let Some(rack) = &broker.spec.rack {
        // The rack is the pod's copy of its node's topology label (Kubernetes' pod topology labels
        // for `topology.kubernetes.io/zone` and `/region`); a pod without the label has no rack.
        env.push(env_field(
            "ODRADEK_RACK",
            &format!("metadata.labels['{}']", rack.topology_key),
        ));
    }
    let container = Container {
        name: "broker".to_owned(),
        image: Some(
            broker
                .spec
                .image
                .clone()
                .unwrap_or_else(|| config.broker_image.clone()),
        ),
        args: Some(vec!["broker".to_owned()]),
        env: Some(env),
        env_from: Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: names.config.clone(),
                ..ConfigMapEnvSource::default()
            }),
            ..EnvFromSource::default()
        }]),
        ports: Some(vec![
            ContainerPort {
                name: Some("kafka".to_owned()),
                container_port: KAFKA_PORT,
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some("http".to_owned()),
                container_port: HTTP_PORT,
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some("cluster".to_owned()),
                container_port: CLUSTER_PORT,
                ..ContainerPort::default()
            },
        ]),
        // Ready means registered and caught up (the broker's /readyz), so a roll never takes down the
        // second replica of a partition.
        readiness_probe: Some(http_probe("/readyz", 5, 3)),
        liveness_probe: Some(http_probe("/healthz", 10, 6)),
        resources: broker.spec.resources.clone(),
        volume_mounts: Some(vec![VolumeMount {
            name: "data".to_owned(),
            mount_path: DATA_DIR.to_owned(),
            ..VolumeMount::default()
        }]),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };
    let topology_spread_constraints = broker.spec.rack.as_ref().map(|rack| {
        vec![TopologySpreadConstraint {
            max_skew: 1,
            topology_key: rack.topology_key.clone(),
            when_unsatisfiable: "ScheduleAnyway".to_owned(),
            label_selector: Some(LabelSelector {
                match_labels: Some(selector_labels(&name)),
                ..LabelSelector::default()
            }),
            ..TopologySpreadConstraint::default()
        }]
    });
    let mut pod_labels = labels(&name);
    pod_labels.insert("odradek.dev/broker".to_owned(), name.clone());
    StatefulSet {
        metadata: meta(broker, names.statefulset),
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some(names.headless),
            // Node ids are independent: start and stop pods in parallel; updates still roll one
            // pod at a time, waiting for readiness.
            pod_management_policy: Some("Parallel".to_owned()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateStatefulSetStrategy {
                    max_unavailable: Some(IntOrString::Int(1)),
                    ..RollingUpdateStatefulSetStrategy::default()
                }),
            }),
            selector: LabelSelector {
                match_labels: Some(selector_labels(&name)),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(BTreeMap::from([(
                        CONFIG_HASH_ANNOTATION.to_owned(),
                        config_hash(&properties(broker)),
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(RUN_AS),
                        run_as_group: Some(RUN_AS),
                        fs_group: Some(RUN_AS),
                        ..PodSecurityContext::default()
                    }),
                    termination_grace_period_seconds: Some(60),
                    topology_spread_constraints,
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: Some(vec![volume_claim(
                "data",
                &broker.spec.storage.size,
                broker.spec.storage.storage_class_name.clone(),
            )]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

/// A ReadWriteOnce claim template of `size`.
#[must_use]
pub fn volume_claim(
    name: &str,
    size: &str,
    storage_class_name: Option<String>,
) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            storage_class_name,
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(size.to_owned()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

#[cfg(test)]
mod tests;
