//! Broker reconciles against a mocked API server and an in-memory Kafka cluster.

use std::sync::Arc;

use kube::runtime::controller::Action;
use odradek_crds::{Broker, BrokerSpec};
use serde_json::{Value, json};

use super::*;
use crate::admin::fake::{FakeAdmin, FakeConnector};
use crate::fixtures;

const BOOTSTRAP: &str = "odradek-bootstrap.kafka.svc.cluster.local:9092";
const STS_GET: &str = "/apis/apps/v1/namespaces/kafka/statefulsets/odradek";

fn apply_uri(path: &str) -> String {
    format!("{path}?&force=true&fieldManager=odradek-operator")
}

fn broker(replicas: i32) -> Broker {
    let mut b = Broker::new(
        "odradek",
        serde_json::from_value::<BrokerSpec>(json!({"replicas": replicas})).unwrap(),
    );
    b.metadata.namespace = Some("kafka".into());
    b.metadata.uid = Some("uid-b".into());
    b.metadata.generation = Some(2);
    b
}

fn existing_statefulset(replicas: i32, ready: i32) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "odradek", "namespace": "kafka"},
        "spec": {"replicas": replicas, "serviceName": "odradek-headless",
                 "selector": {"matchLabels": {}}, "template": {}},
        "status": {"replicas": replicas, "readyReplicas": ready},
    })
}

fn cluster(brokers: i32) -> (FakeConnector, FakeAdmin) {
    let connector = FakeConnector::default();
    let admin = FakeAdmin::with_brokers(brokers);
    connector.insert(BOOTSTRAP, admin.clone());
    (connector, admin)
}

/// The four children applied first on every reconcile, in order.
async fn expect_children(api: &mut fixtures::ApiServerVerifier) {
    let cm = api
        .expect_apply(
            &apply_uri("/api/v1/namespaces/kafka/configmaps/odradek-config"),
            None,
        )
        .await;
    assert_eq!(cm["kind"], "ConfigMap");
    let headless = api
        .expect_apply(
            &apply_uri("/api/v1/namespaces/kafka/services/odradek-headless"),
            None,
        )
        .await;
    assert_eq!(headless["spec"]["clusterIP"], "None");
    let bootstrap = api
        .expect_apply(
            &apply_uri("/api/v1/namespaces/kafka/services/odradek-bootstrap"),
            None,
        )
        .await;
    assert_eq!(bootstrap["spec"]["ports"][0]["port"], 9092);
    let pdb = api
        .expect_apply(
            &apply_uri("/apis/policy/v1/namespaces/kafka/poddisruptionbudgets/odradek"),
            None,
        )
        .await;
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
}

fn condition<'a>(status: &'a Value, type_: &str) -> Option<&'a Value> {
    status["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_))
}

#[tokio::test]
async fn a_new_broker_gets_its_children_and_a_statefulset_of_the_desired_size() {
    let (connector, admin) = cluster(0);
    let (ctx, mut api) = fixtures::context(connector, vec![]);
    let resync = ctx.config.resync;

    let base = fixtures::json(&broker(2));
    let action = fixtures::run(reconcile(Arc::new(broker(3)), ctx), async {
        expect_children(&mut api).await;
        api.expect_not_found("GET", STS_GET).await;
        let sts = api
            .expect_apply(
                &apply_uri("/apis/apps/v1/namespaces/kafka/statefulsets/odradek"),
                Some(json!({"replicas": 0, "readyReplicas": 0})),
            )
            .await;
        assert_eq!(sts["spec"]["replicas"], 3);
        assert_eq!(sts["metadata"]["ownerReferences"][0]["kind"], "Broker");
        let status = api
            .expect_status(
                &apply_uri("/apis/odradek.dev/v1alpha1/namespaces/kafka/brokers/odradek/status"),
                &base,
            )
            .await;
        assert_eq!(status["kind"], "Broker");
        assert_eq!(
            status["status"]["bootstrap"],
            "odradek-bootstrap.kafka.svc.cluster.local:9092"
        );
        assert_eq!(
            status["status"]["selector"],
            "app.kubernetes.io/instance=odradek,app.kubernetes.io/name=odradek-broker"
        );
        let ready = condition(&status, READY).unwrap();
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["reason"], "BrokersNotReady");
        assert_eq!(ready["observedGeneration"], 2);
    })
    .await
    .unwrap();
    assert_eq!(action, Action::requeue(resync));
    assert!(admin.calls().is_empty());
}

#[tokio::test]
async fn a_ready_cluster_reports_per_broker_rows() {
    let (connector, admin) = cluster(3);
    admin.add_topic("page-views", 6, 2);
    let (ctx, mut api) = fixtures::context(connector, vec![]);

    let base = fixtures::json(&broker(2));
    fixtures::run(reconcile(Arc::new(broker(3)), ctx), async {
        expect_children(&mut api).await;
        api.expect("GET", STS_GET, &existing_statefulset(3, 3))
            .await;
        api.expect_apply(
            &apply_uri("/apis/apps/v1/namespaces/kafka/statefulsets/odradek"),
            Some(json!({"replicas": 3, "readyReplicas": 3})),
        )
        .await;
        let status = api
            .expect_status(
                &apply_uri("/apis/odradek.dev/v1alpha1/namespaces/kafka/brokers/odradek/status"),
                &base,
            )
            .await;
        assert_eq!(status["status"]["readyReplicas"], 3);
        assert_eq!(
            status["status"]["brokers"],
            json!([
                {"id": 0, "ready": true, "partitions": 4, "leaders": 2},
                {"id": 1, "ready": true, "partitions": 4, "leaders": 2},
                {"id": 2, "ready": true, "partitions": 4, "leaders": 2},
            ])
        );
        assert_eq!(condition(&status, READY).unwrap()["status"], "True");
        assert_eq!(condition(&status, REBALANCING).unwrap()["status"], "False");
    })
    .await
    .unwrap();
    assert!(admin.calls().is_empty());
}

#[tokio::test]
async fn a_refused_scale_down_keeps_the_statefulset_and_names_the_topic() {
    let (connector, admin) = cluster(3);
    admin.add_topic("newsfeed", 3, 3);
    let (ctx, mut api) = fixtures::context(connector, vec![]);

    let base = fixtures::json(&broker(2));
    fixtures::run(reconcile(Arc::new(broker(2)), ctx), async {
        expect_children(&mut api).await;
        api.expect("GET", STS_GET, &existing_statefulset(3, 3))
            .await;
        let sts = api
            .expect_apply(
                &apply_uri("/apis/apps/v1/namespaces/kafka/statefulsets/odradek"),
                Some(json!({"replicas": 3, "readyReplicas": 3})),
            )
            .await;
        assert_eq!(sts["spec"]["replicas"], 3);
        let event = api.expect_event("kafka").await;
        assert_eq!(event["reason"], "ScaleDownRefused");
        assert_eq!(event["type"], "Warning");
        let status = api
            .expect_status(
                &apply_uri("/apis/odradek.dev/v1alpha1/namespaces/kafka/brokers/odradek/status"),
                &base,
            )
            .await;
        let refused = condition(&status, SCALE_DOWN_REFUSED).unwrap();
        assert_eq!(refused["status"], "True");
        assert!(
            refused["message"].as_str().unwrap().contains("newsfeed"),
            "{refused}"
        );
        assert_eq!(condition(&status, READY).unwrap()["status"], "False");
    })
    .await
    .unwrap();
    assert!(admin.calls().is_empty(), "{:?}", admin.calls());
}

#[tokio::test]
async fn a_scale_down_first_moves_replicas_off_the_leaving_broker() {
    let (connector, admin) = cluster(3);
    admin.add_topic("page-views", 6, 1);
    let (ctx, mut api) = fixtures::context(connector, vec![]);
    let poll = ctx.config.poll;

    let base = fixtures::json(&broker(2));
    let action = fixtures::run(reconcile(Arc::new(broker(2)), ctx), async {
        expect_children(&mut api).await;
        api.expect("GET", STS_GET, &existing_statefulset(3, 3))
            .await;
        let sts = api
            .expect_apply(
                &apply_uri("/apis/apps/v1/namespaces/kafka/statefulsets/odradek"),
                Some(json!({"replicas": 3, "readyReplicas": 3})),
            )
            .await;
        assert_eq!(sts["spec"]["replicas"], 3, "no shrink before the moves");
        let event = api.expect_event("kafka").await;
        assert_eq!(event["reason"], "Rebalancing");
        let status = api
            .expect_status(
                &apply_uri("/apis/odradek.dev/v1alpha1/namespaces/kafka/brokers/odradek/status"),
                &base,
            )
            .await;
        assert_eq!(status["status"]["reassignment"]["reason"], "ScaleDown");
        assert_eq!(condition(&status, REBALANCING).unwrap()["status"], "True");
        assert_eq!(condition(&status, READY).unwrap()["reason"], "Scaling");
    })
    .await
    .unwrap();
    assert_eq!(action, Action::requeue(poll));
    let calls = admin.calls();
    assert!(!calls.is_empty());
    assert!(
        calls.iter().all(|c| c.starts_with("reassign page-views-")),
        "{calls:?}"
    );
    for call in &calls {
        // "reassign <topic>-<partition> Some([targets])": no target on broker 2.
        let targets = call.rsplit_once(' ').map(|(_, t)| t).unwrap_or_default();
        assert!(
            !targets.contains('2'),
            "{call} keeps a replica on the leaving broker"
        );
    }
}

#[tokio::test]
async fn a_scale_down_shrinks_the_statefulset_once_the_leaving_broker_is_empty() {
    let (connector, admin) = cluster(3);
    {
        // Replicas only on brokers 0 and 1.
        let mut s = admin.lock();
        s.brokers.truncate(2);
    }
    admin.add_topic("page-views", 4, 1);
    admin.lock().brokers = FakeAdmin::with_brokers(3).lock().brokers.clone();
    let (ctx, mut api) = fixtures::context(connector, vec![]);

    let base = fixtures::json(&broker(2));
    fixtures::run(reconcile(Arc::new(broker(2)), ctx), async {
        expect_children(&mut api).await;
        api.expect("GET", STS_GET, &existing_statefulset(3, 3))
            .await;
        let sts = api
            .expect_apply(
                &apply_uri("/apis/apps/v1/namespaces/kafka/statefulsets/odradek"),
                Some(json!({"replicas": 2, "readyReplicas": 2})),
            )
            .await;
        assert_eq!(sts["spec"]["replicas"], 2);
        let status = api
            .expect_status(
                &apply_uri("/apis/odradek.dev/v1alpha1/namespaces/kafka/brokers/odradek/status"),
                &base,
            )
            .await;
        assert_eq!(condition(&status, READY).unwrap()["status"], "True");
    })
    .await
    .unwrap();
    assert!(admin.calls().is_empty(), "{:?}", admin.calls());
}

#[tokio::test]
async fn a_scale_down_with_an_unreachable_cluster_fails_transiently_without_shrinking() {
    let (connector, admin) = cluster(3);
    admin.lock().unreachable = true;
    let (ctx, mut api) = fixtures::context(connector, vec![]);
    let err = fixtures::run(reconcile(Arc::new(broker(2)), ctx), async {
        expect_children(&mut api).await;
        api.expect("GET", STS_GET, &existing_statefulset(3, 3))
            .await;
    })
    .await
    .unwrap_err();
    assert!(err.is_transient(), "{err}");
}

#[tokio::test]
async fn after_a_scale_up_the_new_brokers_receive_replicas() {
    let (connector, admin) = cluster(3);
    admin.add_topic("page-views", 10, 2);
    // Brokers 3 and 4 registered after the StatefulSet grew.
    admin.lock().brokers = FakeAdmin::with_brokers(5).lock().brokers.clone();
    let (ctx, mut api) = fixtures::context(connector, vec![]);
    let poll = ctx.config.poll;
    let base = fixtures::json(&broker(5));
    let action = fixtures::run(reconcile(Arc::new(broker(5)), ctx), async {
        expect_children(&mut api).await;
        api.expect("GET", STS_GET, &existing_statefulset(5, 5))
            .await;
        let sts = api
            .expect_apply(
                &apply_uri("/apis/apps/v1/namespaces/kafka/statefulsets/odradek"),
                Some(json!({"replicas": 5, "readyReplicas": 5})),
            )
            .await;
        assert_eq!(sts["spec"]["replicas"], 5);
        let event = api.expect_event("kafka").await;
        assert_eq!(event["reason"], "Rebalancing");
        let status = api
            .expect_status(
                &apply_uri("/apis/odradek.dev/v1alpha1/namespaces/kafka/brokers/odradek/status"),
                &base,
            )
            .await;
        let rebalancing = condition(&status, REBALANCING).unwrap();
        assert_eq!(rebalancing["status"], "True");
        assert_eq!(rebalancing["reason"], "ScaleUp");
        assert_eq!(status["status"]["reassignment"]["targetReplicas"], 5);
        // Rows for all five brokers; the new ones hold nothing until the moves finish.
        let rows = status["status"]["brokers"].as_array().unwrap();
        assert_eq!(rows.len(), 5);
        assert_eq!(rows[4]["partitions"], 0);
    })
    .await
    .unwrap();
    assert_eq!(action, Action::requeue(poll));
    let calls = admin.calls();
    assert!(!calls.is_empty());
    // "reassign <topic>-<partition> Some([targets])": some target is a new broker.
    let onto_new = calls.iter().any(|c| {
        let targets = c.rsplit_once(' ').map(|(_, t)| t).unwrap_or_default();
        targets.contains('3') || targets.contains('4')
    });
    assert!(onto_new, "no replica moves onto the new brokers: {calls:?}");
}

#[test]
fn a_fenced_broker_has_a_row_that_is_not_ready() {
    use crate::admin::{BrokerNode, PartitionDescription, TopicDescription};
    let node = |id| BrokerNode {
        id,
        host: format!("b{id}"),
        port: 9092,
        rack: None,
    };
    let view = ClusterView {
        brokers: vec![node(0), node(1)],
        fenced: vec![2],
        topics: vec![TopicDescription {
            name: "t".into(),
            topic_id: "id".into(),
            is_internal: false,
            partitions: vec![PartitionDescription {
                partition: 0,
                leader: Some(0),
                replicas: vec![0, 2],
                isr: vec![0],
            }],
        }],
        ongoing: Vec::new(),
    };
    let rows = broker_rows(&view);
    let ready: Vec<(i32, bool, i32, i32)> = rows
        .iter()
        .map(|r| (r.id, r.ready, r.partitions, r.leaders))
        .collect();
    assert_eq!(
        ready,
        vec![(0, true, 1, 1), (1, true, 0, 0), (2, false, 1, 0)]
    );
}
