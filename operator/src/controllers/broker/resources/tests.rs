//! Tests of `resources`.

use super::*;
use odradek_crds::BrokerSpec;

pub(crate) fn broker() -> Broker {
    let mut b = Broker::new(
        "odradek",
        serde_json::from_value::<BrokerSpec>(serde_json::json!({
            "replicas": 3,
            "config": {"num.partitions": "6", "log.retention.ms": "3600000"},
        }))
        .unwrap(),
    );
    b.metadata.namespace = Some("kafka".into());
    b.metadata.uid = Some("uid-1".into());
    b
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

fn env_value<'a>(c: &'a Container, name: &str) -> Option<&'a EnvVar> {
    c.env.as_ref().unwrap().iter().find(|e| e.name == name)
}

#[test]
fn statefulset_derives_node_id_from_the_pod_index_and_advertises_the_headless_name() {
    let sts = statefulset(&broker(), 3, &ControllerConfig::default());
    let spec = sts.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(spec.service_name.as_deref(), Some("odradek-headless"));
    let c = container(&sts);
    let node_id = env_value(c, "ODRADEK_NODE_ID").unwrap();
    assert_eq!(
        node_id
            .value_from
            .as_ref()
            .unwrap()
            .field_ref
            .as_ref()
            .unwrap()
            .field_path,
        "metadata.labels['apps.kubernetes.io/pod-index']"
    );
    assert_eq!(
        env_value(c, "ODRADEK_ADVERTISED_LISTENER")
            .unwrap()
            .value
            .as_deref(),
        Some("$(POD_NAME).odradek-headless.$(POD_NAMESPACE).svc.cluster.local:9092")
    );
    // POD_NAME must be defined before the variable that refers to it.
    let names: Vec<&str> = c
        .env
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    let pos = |n| names.iter().position(|x| *x == n).unwrap();
    assert!(pos("POD_NAME") < pos("ODRADEK_ADVERTISED_LISTENER"));
    // Config arrives through the ConfigMap, so a change of it rolls the pods (hash annotation).
    let from = &c.env_from.as_ref().unwrap()[0];
    assert_eq!(from.config_map_ref.as_ref().unwrap().name, "odradek-config");
    assert_eq!(c.args.as_deref(), Some(&["broker".to_owned()][..]));
}

#[test]
fn the_first_controllers_pods_are_the_metadata_quorum_reached_on_the_cluster_port() {
    let mut b = broker();
    b.spec.replicas = 5;
    let sts = statefulset(&b, 5, &ControllerConfig::default());
    let c = container(&sts);
    let voters = env_value(c, "ODRADEK_CONTROLLER_VOTERS")
        .unwrap()
        .value
        .as_deref()
        .unwrap();
    assert_eq!(
        voters,
        "0@odradek-0.odradek-headless.$(POD_NAMESPACE).svc.cluster.local:9093,\
         1@odradek-1.odradek-headless.$(POD_NAMESPACE).svc.cluster.local:9093,\
         2@odradek-2.odradek-headless.$(POD_NAMESPACE).svc.cluster.local:9093"
    );
    assert_eq!(
        env_value(c, "ODRADEK_CLUSTER_ADVERTISED")
            .unwrap()
            .value
            .as_deref(),
        Some("$(POD_NAME).odradek-headless.$(POD_NAMESPACE).svc.cluster.local:9093")
    );
    assert_eq!(
        env_value(c, "ODRADEK_CLUSTER_LISTEN")
            .unwrap()
            .value
            .as_deref(),
        Some("0.0.0.0:9093")
    );
    let ports: Vec<_> = c
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .map(|p| (p.name.clone().unwrap(), p.container_port))
        .collect();
    assert!(ports.contains(&("cluster".to_owned(), 9093)), "{ports:?}");
    // Peers reach each other through the headless Service before any of them is ready.
    let headless = headless_service(&b).spec.unwrap();
    let names: Vec<_> = headless
        .ports
        .unwrap()
        .into_iter()
        .map(|p| p.name.unwrap())
        .collect();
    assert_eq!(names, ["kafka", "cluster"]);
    b.spec.controllers = 1;
    let one = statefulset(&b, 5, &ControllerConfig::default());
    assert_eq!(
        env_value(container(&one), "ODRADEK_CONTROLLER_VOTERS")
            .unwrap()
            .value
            .as_deref(),
        Some("0@odradek-0.odradek-headless.$(POD_NAMESPACE).svc.cluster.local:9093")
    );
}

#[test]
fn with_a_rack_topology_key_each_broker_reports_its_pods_topology_label_as_its_rack() {
    let mut b = broker();
    assert!(
        env_value(
            container(&statefulset(&b, 3, &ControllerConfig::default())),
            "ODRADEK_RACK"
        )
        .is_none()
    );
    b.spec.rack = Some(odradek_crds::broker::RackSpec {
        topology_key: "topology.kubernetes.io/zone".into(),
    });
    let sts = statefulset(&b, 3, &ControllerConfig::default());
    let rack = env_value(container(&sts), "ODRADEK_RACK").unwrap();
    assert_eq!(
        rack.value_from
            .as_ref()
            .unwrap()
            .field_ref
            .as_ref()
            .unwrap()
            .field_path,
        "metadata.labels['topology.kubernetes.io/zone']"
    );
}

#[test]
fn readiness_probe_hits_readyz_on_the_http_port() {
    let sts = statefulset(&broker(), 3, &ControllerConfig::default());
    let c = container(&sts);
    let probe = c
        .readiness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(probe.path.as_deref(), Some("/readyz"));
    assert_eq!(probe.port, IntOrString::String("http".into()));
    let http = c
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .find(|p| p.name.as_deref() == Some("http"))
        .unwrap();
    assert_eq!(http.container_port, 9644);
}

#[test]
fn updates_roll_one_pod_at_a_time() {
    let sts = statefulset(&broker(), 3, &ControllerConfig::default());
    let strategy = sts.spec.unwrap().update_strategy.unwrap();
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
    assert_eq!(
        strategy.rolling_update.unwrap().max_unavailable,
        Some(IntOrString::Int(1))
    );
    let pdb = pod_disruption_budget(&broker());
    assert_eq!(pdb.spec.unwrap().max_unavailable, Some(IntOrString::Int(1)));
}

#[test]
fn a_config_change_changes_the_pod_template() {
    let b = broker();
    let before = statefulset(&b, 3, &ControllerConfig::default());
    let mut changed = b.clone();
    changed
        .spec
        .config
        .insert("log.retention.ms".into(), "1".into());
    let after = statefulset(&changed, 3, &ControllerConfig::default());
    let hash = |s: &StatefulSet| {
        s.spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .as_ref()
            .unwrap()[CONFIG_HASH_ANNOTATION]
            .clone()
    };
    assert_ne!(hash(&before), hash(&after));
    assert_eq!(
        properties(&b),
        "ODRADEK_DEFAULT_PARTITIONS=6\nODRADEK_TOPIC_CONFIG=log.retention.ms=3600000\n"
    );
}

#[test]
fn broker_configs_become_flag_variables_and_the_rest_default_topic_configs() {
    let mut b = broker();
    b.spec
        .config
        .insert("auto.create.topics.enable".into(), "true".into());
    b.spec
        .config
        .insert("cleanup.policy".into(), "delete".into());
    let data = config_map(&b).data.unwrap();
    assert_eq!(
        data,
        BTreeMap::from([
            ("ODRADEK_AUTO_CREATE_TOPICS".to_owned(), "true".to_owned()),
            ("ODRADEK_DEFAULT_PARTITIONS".to_owned(), "6".to_owned()),
            (
                "ODRADEK_TOPIC_CONFIG".to_owned(),
                "cleanup.policy=delete,log.retention.ms=3600000".to_owned()
            ),
        ])
    );
}

#[test]
fn children_are_owned_by_the_broker() {
    let b = broker();
    for meta in [
        config_map(&b).metadata,
        headless_service(&b).metadata,
        bootstrap_service(&b).metadata,
        pod_disruption_budget(&b).metadata,
        statefulset(&b, 1, &ControllerConfig::default()).metadata,
    ] {
        let owner = &meta.owner_references.unwrap()[0];
        assert_eq!(owner.kind, "Broker");
        assert_eq!(owner.controller, Some(true));
        assert_eq!(meta.namespace.as_deref(), Some("kafka"));
    }
    let headless = headless_service(&b).spec.unwrap();
    assert_eq!(headless.cluster_ip.as_deref(), Some("None"));
    assert_eq!(headless.publish_not_ready_addresses, Some(true));
}

#[test]
fn storage_becomes_the_volume_claim_template() {
    let mut b = broker();
    b.spec.storage.size = "50Gi".into();
    b.spec.storage.storage_class_name = Some("fast".into());
    let sts = statefulset(&b, 3, &ControllerConfig::default());
    let pvc = &sts.spec.unwrap().volume_claim_templates.unwrap()[0];
    let spec = pvc.spec.as_ref().unwrap();
    assert_eq!(spec.storage_class_name.as_deref(), Some("fast"));
    assert_eq!(
        spec.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"],
        Quantity("50Gi".into())
    );
}

#[test]
fn bootstrap_address_names_the_service() {
    assert_eq!(
        bootstrap_address("odradek", "kafka", "cluster.local"),
        "odradek-bootstrap.kafka.svc.cluster.local:9092"
    );
    assert_eq!(
        selector_string("odradek"),
        "app.kubernetes.io/instance=odradek,app.kubernetes.io/name=odradek-broker"
    );
}
