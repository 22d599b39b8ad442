//! The desired StatefulSet of a Processor, as a pure function.
//!
//! Stable pod names are the consumer group's static members (`group.instance.id`), and each pod keeps
//! its stores on its own PersistentVolume (`volumeClaimTemplates`), so a restarted pod restores only
//! the changelog tail past its local checkpoint.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SecurityContext, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use odradek_crds::Processor;

use crate::context::ControllerConfig;
use crate::controllers::broker::resources::volume_claim;
use crate::controllers::{MANAGED_BY, owner_ref};

/// HTTP port of processor pods: `/metrics`, `/healthz`, `/readyz`.
pub const HTTP_PORT: i32 = 9644;
/// Where the local stores live.
pub const STATE_DIR: &str = "/var/lib/odradek";
/// Non-root user of the image.
const RUN_AS: i64 = 65532;

/// Labels selecting a Processor's pods.
#[must_use]
pub fn selector_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_owned(),
            "odradek-processor".to_owned(),
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

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.into()),
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

/// Output roles of the built-in jobs, in the order bare topic names are matched to them.
const BUILT_IN_ROLES: &[(&str, &[&str])] = &[
    ("pageview-count", &["counts"]),
    ("profile-fanout", &["newsfeed", "search"]),
];

/// `ROLE=TOPIC` outputs for `odradek processor`: entries that already name a role pass through; bare
/// topic names of a built-in job take its roles in order; other bare names pass through unchanged
/// (a user job defines its own format).
#[must_use]
pub fn output_roles(job: Option<&str>, outputs: &[String]) -> Vec<String> {
    let roles = job
        .and_then(|j| BUILT_IN_ROLES.iter().find(|(name, _)| *name == j))
        .map_or(&[][..], |(_, roles)| *roles);
    let mut bare = 0;
    outputs
        .iter()
        .map(|o| {
            if o.contains('=') {
                return o.clone();
            }
            let role = roles.get(bare);
            bare += 1;
            role.map_or_else(|| o.clone(), |r| format!("{r}={o}"))
        })
        .collect()
}

/// The processor's StatefulSet with `replicas` pods, consuming from the cluster at `bootstrap`.
///
/// A built-in job runs `odradek processor --job <job>` (the image's entrypoint is `odradek`); a user
/// job runs its `command` and `args`. Both get their settings as `ODRADEK_*` variables; the consumer
/// group is the Processor's name and each pod's static member id its pod name.
#[must_use]
pub fn statefulset(
    processor: &Processor,
    replicas: i32,
    bootstrap: &str,
    config: &ControllerConfig,
) -> StatefulSet {
    let name = processor.name_any();
    let spec = &processor.spec;
    let mut env = vec![
        EnvVar {
            name: "POD_NAME".to_owned(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.name".to_owned(),
                    ..ObjectFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        },
        env("ODRADEK_BOOTSTRAP", bootstrap),
        env("ODRADEK_PROCESSOR_NAME", name.clone()),
        env("ODRADEK_INSTANCE_ID", "$(POD_NAME)"),
        // The built-in jobs read one input (`ODRADEK_INPUT`); user jobs get them all.
        env(
            "ODRADEK_INPUT",
            spec.inputs.first().cloned().unwrap_or_default(),
        ),
        env("ODRADEK_INPUTS", spec.inputs.join(",")),
        env(
            "ODRADEK_OUTPUTS",
            output_roles(spec.job.as_deref(), &spec.outputs).join(","),
        ),
        env("ODRADEK_STORES", spec.stores.join(",")),
        env("ODRADEK_STATE_DIR", STATE_DIR),
        env("ODRADEK_HTTP", format!("0.0.0.0:{HTTP_PORT}")),
    ];
    if let Some(job) = &spec.job {
        env.push(self::env("ODRADEK_JOB", job.clone()));
    }
    env.extend(spec.env.iter().map(|(k, v)| self::env(k, v.clone())));

    let (command, args) = match &spec.job {
        Some(job) => {
            let mut args = vec!["processor".to_owned(), "--job".to_owned(), job.clone()];
            args.extend(spec.args.iter().cloned());
            (
                (!spec.command.is_empty()).then(|| spec.command.clone()),
                Some(args),
            )
        }
        None => (
            Some(spec.command.clone()),
            (!spec.args.is_empty()).then(|| spec.args.clone()),
        ),
    };
    let image = spec
        .image
        .clone()
        .unwrap_or_else(|| config.processor_image.clone());
    let container = Container {
        name: "processor".to_owned(),
        image: Some(image),
        command,
        args,
        env: Some(env),
        ports: Some(vec![ContainerPort {
            name: Some("http".to_owned()),
            container_port: HTTP_PORT,
            ..ContainerPort::default()
        }]),
        readiness_probe: Some(http_probe("/readyz", 5, 3)),
        liveness_probe: Some(http_probe("/healthz", 10, 6)),
        resources: spec.resources.clone(),
        volume_mounts: Some(vec![VolumeMount {
            name: "state".to_owned(),
            mount_path: STATE_DIR.to_owned(),
            ..VolumeMount::default()
        }]),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };
    let mut labels = selector_labels(&name);
    labels.insert(MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned());
    StatefulSet {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: processor.namespace(),
            labels: Some(labels.clone()),
            owner_references: owner_ref(processor).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            service_name: None,
            // Members are independent; starting them together shortens a rebalance.
            pod_management_policy: Some("Parallel".to_owned()),
            selector: LabelSelector {
                match_labels: Some(selector_labels(&name)),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
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
                    // Time to flush outputs and changelogs and commit offsets on SIGTERM.
                    termination_grace_period_seconds: Some(60),
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: Some(vec![volume_claim(
                "state",
                &spec.storage.size,
                spec.storage.storage_class_name.clone(),
            )]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use odradek_crds::ProcessorSpec;

    fn processor(spec: serde_json::Value) -> Processor {
        let mut p = Processor::new(
            "pageview-count",
            serde_json::from_value::<ProcessorSpec>(spec).unwrap(),
        );
        p.metadata.namespace = Some("kafka".into());
        p.metadata.uid = Some("uid-p".into());
        p
    }

    fn container(sts: &StatefulSet) -> &Container {
        &sts.spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
    }

    fn env_of<'a>(c: &'a Container, name: &str) -> Option<&'a str> {
        c.env
            .as_ref()
            .unwrap()
            .iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value.as_deref())
    }

    #[test]
    fn a_built_in_job_runs_odradek_processor_with_a_state_volume_per_pod() {
        let p = processor(serde_json::json!({
            "cluster": "odradek", "job": "pageview-count",
            "inputs": ["page-views"], "outputs": ["page-view-counts"], "stores": ["counts"],
            "storage": {"size": "5Gi"},
        }));
        let sts = statefulset(&p, 2, "b:9092", &ControllerConfig::default());
        let spec = sts.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(2));
        let pvc = &spec.volume_claim_templates.as_ref().unwrap()[0];
        assert_eq!(pvc.metadata.name.as_deref(), Some("state"));
        let c = container(&sts);
        assert_eq!(c.command, None);
        assert_eq!(
            c.args.as_deref(),
            Some(
                &[
                    "processor".to_owned(),
                    "--job".to_owned(),
                    "pageview-count".to_owned()
                ][..]
            )
        );
        assert_eq!(env_of(c, "ODRADEK_BOOTSTRAP"), Some("b:9092"));
        assert_eq!(env_of(c, "ODRADEK_PROCESSOR_NAME"), Some("pageview-count"));
        assert_eq!(env_of(c, "ODRADEK_INSTANCE_ID"), Some("$(POD_NAME)"));
        assert_eq!(env_of(c, "ODRADEK_INPUT"), Some("page-views"));
        assert_eq!(
            env_of(c, "ODRADEK_OUTPUTS"),
            Some("counts=page-view-counts")
        );
        assert_eq!(
            c.image.as_deref(),
            Some(ControllerConfig::default().processor_image.as_str())
        );
        assert_eq!(sts.metadata.owner_references.unwrap()[0].kind, "Processor");
    }

    #[test]
    fn bare_outputs_of_built_in_jobs_get_the_jobs_roles() {
        let outs = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            output_roles(Some("profile-fanout"), &outs(&["newsfeed", "search-index"])),
            outs(&["newsfeed=newsfeed", "search=search-index"])
        );
        assert_eq!(
            output_roles(Some("profile-fanout"), &outs(&["search=idx", "feed"])),
            outs(&["search=idx", "newsfeed=feed"])
        );
        assert_eq!(output_roles(None, &outs(&["a", "b"])), outs(&["a", "b"]));
        assert_eq!(
            output_roles(Some("pageview-count"), &[]),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_user_job_runs_its_own_image_and_command() {
        let p = processor(serde_json::json!({
            "cluster": "odradek", "image": "example/enricher:1", "command": ["/enricher"],
            "args": ["--fast"], "inputs": ["a", "b"], "env": {"MODE": "x"},
        }));
        let sts = statefulset(&p, 1, "b:9092", &ControllerConfig::default());
        let c = container(&sts);
        assert_eq!(c.image.as_deref(), Some("example/enricher:1"));
        assert_eq!(c.command.as_deref(), Some(&["/enricher".to_owned()][..]));
        assert_eq!(c.args.as_deref(), Some(&["--fast".to_owned()][..]));
        assert_eq!(env_of(c, "ODRADEK_INPUTS"), Some("a,b"));
        assert_eq!(env_of(c, "MODE"), Some("x"));
        assert_eq!(env_of(c, "ODRADEK_JOB"), None);
    }
}
