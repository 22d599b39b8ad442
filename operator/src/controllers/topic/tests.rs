//! Topic reconciles against a mocked API server and an in-memory Kafka cluster.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use odradek_crds::{Broker, BrokerSpec, DeletionPolicy, Topic, TopicSpec, TopicStatus};
use serde_json::{Value, json};

use super::*;
use crate::admin::fake::{FakeAdmin, FakeConnector};
use crate::fixtures::{self, json as to_json};

const BOOTSTRAP: &str = "odradek-bootstrap.kafka.svc.cluster.local:9092";
const TOPICS: &str = "/apis/odradek.dev/v1alpha1/namespaces/kafka/topics";
const BROKER_GET: &str = "/apis/odradek.dev/v1alpha1/namespaces/kafka/brokers/odradek";
const STATUS_APPLY: &str = "/apis/odradek.dev/v1alpha1/namespaces/kafka/topics/page-views/status?&force=true&fieldManager=odradek-operator";

fn topic(name: &str, created: i64) -> Topic {
    let mut t = Topic::new(
        name,
        TopicSpec {
            cluster: "odradek".into(),
            topic_name: None,
            partitions: 6,
            replication_factor: 1,
            config: BTreeMap::from([("retention.ms".to_owned(), "3600000".to_owned())]),
            deletion_policy: DeletionPolicy::Delete,
        },
    );
    t.metadata.namespace = Some("kafka".into());
    t.metadata.uid = Some(format!("uid-{name}"));
    t.metadata.generation = Some(1);
    t.metadata.resource_version = Some("1".into());
    t.metadata.creation_timestamp = Some(Time(Timestamp::from_second(created).unwrap()));
    t
}

fn finalized(mut t: Topic) -> Topic {
    t.metadata.finalizers = Some(vec![FINALIZER.to_owned()]);
    t
}

fn deleting(mut t: Topic) -> Topic {
    t.metadata.deletion_timestamp = Some(Time(Timestamp::from_second(2_000).unwrap()));
    finalized(t)
}

fn broker() -> Value {
    let mut b = Broker::new(
        "odradek",
        serde_json::from_value::<BrokerSpec>(json!({"replicas": 1})).unwrap(),
    );
    b.metadata.namespace = Some("kafka".into());
    to_json(&b)
}

fn cluster() -> (FakeConnector, FakeAdmin) {
    let connector = FakeConnector::default();
    let admin = FakeAdmin::with_brokers(1);
    connector.insert(BOOTSTRAP, admin.clone());
    (connector, admin)
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}

#[tokio::test]
async fn a_topic_without_finalizer_gets_one_and_nothing_else_happens() {
    let (connector, admin) = cluster();
    let t = topic("page-views", 1_000);
    let (ctx, mut api) = fixtures::context(connector, vec![t.clone()]);
    let reply = to_json(&finalized(t.clone()));
    let action = fixtures::run(reconcile(Arc::new(t), ctx), async {
        let patch = api
            .expect("PATCH", &format!("{TOPICS}/page-views?"), &reply)
            .await;
        assert_eq!(
            patch,
            json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
            ])
        );
    })
    .await
    .unwrap();
    assert_eq!(action, Action::await_change());
    assert!(admin.calls().is_empty());
}

#[tokio::test]
async fn a_new_topic_is_created_with_its_partitions_and_configs() {
    let (connector, admin) = cluster();
    let t = finalized(topic("page-views", 1_000));
    let (ctx, mut api) = fixtures::context(connector, vec![t.clone()]);
    let resync = ctx.config.resync;

    let base = to_json(&t);
    let action = fixtures::run(reconcile(Arc::new(t), ctx), async {
        api.expect("GET", BROKER_GET, &broker()).await;
        let event = api.expect_event("kafka").await;
        assert_eq!(event["reason"], "Created");
        assert_eq!(event["regarding"]["name"], "page-views");
        let status = api.expect_status(STATUS_APPLY, &base).await;
        assert_eq!(status["status"]["topicId"], "id-page-views");
        assert_eq!(status["status"]["partitions"], 6);
        assert_eq!(status["status"]["observedGeneration"], 1);
        assert_eq!(condition(&status, READY)["status"], "True");
    })
    .await
    .unwrap();
    assert_eq!(action, Action::requeue(resync));
    assert_eq!(
        admin.calls(),
        vec![
            r#"create page-views partitions=6 rf=1 configs={"retention.ms": "3600000"}"#.to_owned()
        ]
    );
}

#[tokio::test]
async fn partitions_are_raised_and_config_drift_is_corrected_with_a_warning_event() {
    let (connector, admin) = cluster();
    admin.add_topic("page-views", 3, 1);
    admin.lock().configs.insert(
        "page-views".into(),
        BTreeMap::from([
            ("retention.ms".to_owned(), "1".to_owned()),
            ("segment.bytes".to_owned(), "1024".to_owned()),
        ]),
    );
    let mut t = finalized(topic("page-views", 1_000));
    // The spec was applied before (same generation): any difference now is drift.
    t.status = Some(TopicStatus {
        observed_generation: Some(1),
        ..TopicStatus::default()
    });
    let (ctx, mut api) = fixtures::context(connector, vec![t.clone()]);

    let base = to_json(&t);
    fixtures::run(reconcile(Arc::new(t), ctx), async {
        api.expect("GET", BROKER_GET, &broker()).await;
        let partitions = api.expect_event("kafka").await;
        assert_eq!(partitions["reason"], "DriftCorrected");
        assert_eq!(partitions["type"], "Warning");
        assert_eq!(partitions["note"], "raised partitions from 3 to 6");
        let configs = api.expect_event("kafka").await;
        assert_eq!(configs["reason"], "DriftCorrected");
        assert_eq!(
            configs["note"],
            "configs set retention.ms=3600000; reset segment.bytes"
        );
        let status = api.expect_status(STATUS_APPLY, &base).await;
        assert_eq!(status["status"]["partitions"], 6);
    })
    .await
    .unwrap();
    assert_eq!(
        admin.calls(),
        vec![
            "create_partitions page-views total=6".to_owned(),
            r#"alter_configs page-views [Set { name: "retention.ms", value: "3600000" }, Delete { name: "segment.bytes" }]"#.to_owned(),
        ]
    );
}

#[tokio::test]
async fn a_topic_in_sync_changes_nothing_in_kafka_and_sends_no_event() {
    let (connector, admin) = cluster();
    admin.add_topic("page-views", 6, 1);
    admin.lock().configs.insert(
        "page-views".into(),
        BTreeMap::from([("retention.ms".to_owned(), "3600000".to_owned())]),
    );
    let t = finalized(topic("page-views", 1_000));
    let (ctx, mut api) = fixtures::context(connector, vec![t.clone()]);

    let base = to_json(&t);
    fixtures::run(reconcile(Arc::new(t), ctx), async {
        api.expect("GET", BROKER_GET, &broker()).await;
        let status = api.expect_status(STATUS_APPLY, &base).await;
        assert_eq!(condition(&status, READY)["reason"], "TopicReady");
    })
    .await
    .unwrap();
    assert!(admin.calls().is_empty(), "{:?}", admin.calls());
}

#[tokio::test]
async fn a_missing_cluster_is_reported_without_touching_kafka() {
    let (connector, admin) = cluster();
    let t = finalized(topic("page-views", 1_000));
    let (ctx, mut api) = fixtures::context(connector, vec![t.clone()]);
    let poll = ctx.config.poll;

    let base = to_json(&t);
    let action = fixtures::run(reconcile(Arc::new(t), ctx), async {
        api.expect_not_found("GET", BROKER_GET).await;
        let status = api.expect_status(STATUS_APPLY, &base).await;
        let ready = condition(&status, READY);
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["reason"], "ClusterNotFound");
    })
    .await
    .unwrap();
    assert_eq!(action, Action::requeue(poll));
    assert!(admin.calls().is_empty());
}

#[tokio::test]
async fn of_two_topics_naming_one_kafka_topic_the_younger_gets_a_conflict() {
    let (connector, admin) = cluster();
    let mut older = finalized(topic("views", 500));
    older.spec.topic_name = Some("page-views".into());
    let younger = finalized(topic("page-views", 1_000));
    let (ctx, mut api) = fixtures::context(connector, vec![older, younger.clone()]);

    let base = to_json(&younger);
    fixtures::run(reconcile(Arc::new(younger), ctx), async {
        let status = api.expect_status(STATUS_APPLY, &base).await;
        let conflict = condition(&status, CONFLICT);
        assert_eq!(conflict["status"], "True");
        assert_eq!(
            conflict["message"],
            "Topic views already manages Kafka topic page-views in cluster odradek"
        );
        assert_eq!(condition(&status, READY)["status"], "False");
    })
    .await
    .unwrap();
    assert!(admin.calls().is_empty());
}

#[tokio::test]
async fn an_unreachable_cluster_fails_transiently_with_a_condition() {
    let (connector, admin) = cluster();
    admin.lock().unreachable = true;
    let t = finalized(topic("page-views", 1_000));
    let (ctx, mut api) = fixtures::context(connector, vec![t.clone()]);

    let base = to_json(&t);
    let err = fixtures::run(reconcile(Arc::new(t), ctx), async {
        api.expect("GET", BROKER_GET, &broker()).await;
        let status = api.expect_status(STATUS_APPLY, &base).await;
        assert_eq!(condition(&status, READY)["reason"], "ClusterUnavailable");
    })
    .await
    .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(err.metric_label(), "kafka_admin");
}

fn finalizer_removal() -> Value {
    json!([
        {"op": "test", "path": "/metadata/finalizers/0", "value": FINALIZER},
        {"op": "remove", "path": "/metadata/finalizers/0"},
    ])
}

#[tokio::test]
async fn deleting_a_topic_deletes_it_in_kafka_then_releases_the_finalizer() {
    let (connector, admin) = cluster();
    admin.add_topic("page-views", 6, 1);
    let t = deleting(topic("page-views", 1_000));
    let (ctx, mut api) = fixtures::context(connector, vec![t.clone()]);
    let reply = to_json(&t);
    fixtures::run(reconcile(Arc::new(t), ctx), async {
        api.expect("GET", BROKER_GET, &broker()).await;
        let patch = api
            .expect("PATCH", &format!("{TOPICS}/page-views?"), &reply)
            .await;
        assert_eq!(patch, finalizer_removal());
    })
    .await
    .unwrap();
    assert_eq!(admin.calls(), vec!["delete page-views".to_owned()]);
    assert!(admin.lock().topics.is_empty());
}

#[tokio::test]
async fn a_retained_topic_stays_in_kafka_when_its_resource_is_deleted() {
    let (connector, admin) = cluster();
    admin.add_topic("page-views", 6, 1);
    let mut t = deleting(topic("page-views", 1_000));
    t.spec.deletion_policy = DeletionPolicy::Retain;
    let (ctx, mut api) = fixtures::context(connector, vec![t.clone()]);
    let reply = to_json(&t);
    fixtures::run(reconcile(Arc::new(t), ctx), async {
        let patch = api
            .expect("PATCH", &format!("{TOPICS}/page-views?"), &reply)
            .await;
        assert_eq!(patch, finalizer_removal());
    })
    .await
    .unwrap();
    assert!(admin.calls().is_empty());
    assert_eq!(admin.lock().topics.len(), 1);
}

#[tokio::test]
async fn when_the_cluster_is_gone_deletion_releases_the_finalizer_without_kafka() {
    let (connector, admin) = cluster();
    admin.lock().unreachable = true;
    let t = deleting(topic("page-views", 1_000));
    let (ctx, mut api) = fixtures::context(connector, vec![t.clone()]);
    let reply = to_json(&t);
    fixtures::run(reconcile(Arc::new(t), ctx), async {
        api.expect_not_found("GET", BROKER_GET).await;
        let patch = api
            .expect("PATCH", &format!("{TOPICS}/page-views?"), &reply)
            .await;
        assert_eq!(patch, finalizer_removal());
    })
    .await
    .unwrap();
    assert!(admin.calls().is_empty());
}

#[tokio::test]
async fn deleting_the_younger_duplicate_never_deletes_the_kafka_topic() {
    let (connector, admin) = cluster();
    admin.add_topic("page-views", 6, 1);
    let older = finalized(topic("views", 500));
    let mut older = older;
    older.spec.topic_name = Some("page-views".into());
    let younger = deleting(topic("page-views", 1_000));
    let (ctx, mut api) = fixtures::context(connector, vec![older, younger.clone()]);
    let reply = to_json(&younger);
    fixtures::run(reconcile(Arc::new(younger), ctx), async {
        let patch = api
            .expect("PATCH", &format!("{TOPICS}/page-views?"), &reply)
            .await;
        assert_eq!(patch, finalizer_removal());
    })
    .await
    .unwrap();
    assert!(admin.calls().is_empty());
}

#[test]
fn the_oldest_topic_wins_and_names_break_ties() {
    let a = Arc::new(topic("a", 100));
    let b = Arc::new(topic("b", 100));
    let mut c = topic("c", 50);
    c.spec.topic_name = Some("other".into());
    let all = vec![a.clone(), b.clone(), Arc::new(c)];
    let mut a2 = (*a).clone();
    a2.spec.topic_name = Some("b".into());
    let all_same = vec![Arc::new(a2.clone()), b.clone()];
    // Different Kafka names: no conflict.
    assert_eq!(older_owner(&a, &all), None);
    // Same Kafka name `b`, same age: `a` sorts first and wins.
    assert_eq!(older_owner(&b, &all_same), Some("a".to_owned()));
    assert_eq!(older_owner(&a2, &all_same), None);
}

#[tokio::test]
async fn deletion_while_the_cluster_is_being_deleted_releases_the_finalizer_without_kafka() {
    let (connector, admin) = cluster();
    admin.add_topic("page-views", 6, 1);
    let t = deleting(topic("page-views", 1_000));
    let (ctx, mut api) = fixtures::context(connector, vec![t.clone()]);
    let mut going = broker();
    going["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    let reply = to_json(&t);
    fixtures::run(reconcile(Arc::new(t), ctx), async {
        api.expect("GET", BROKER_GET, &going).await;
        let patch = api
            .expect("PATCH", &format!("{TOPICS}/page-views?"), &reply)
            .await;
        assert_eq!(patch, finalizer_removal());
    })
    .await
    .unwrap();
    assert!(admin.calls().is_empty());
}

#[tokio::test]
async fn raising_partitions_in_the_spec_is_announced_as_a_normal_event() {
    let (connector, admin) = cluster();
    admin.add_topic("page-views", 3, 1);
    admin.lock().configs.insert(
        "page-views".into(),
        BTreeMap::from([("retention.ms".to_owned(), "3600000".to_owned())]),
    );
    let mut t = finalized(topic("page-views", 1_000));
    // Generation 2 was not applied yet: the difference is the user's change, not drift.
    t.metadata.generation = Some(2);
    t.status = Some(TopicStatus {
        observed_generation: Some(1),
        ..TopicStatus::default()
    });
    let (ctx, mut api) = fixtures::context(connector, vec![t.clone()]);
    let base = to_json(&t);
    fixtures::run(reconcile(Arc::new(t), ctx), async {
        api.expect("GET", BROKER_GET, &broker()).await;
        let event = api.expect_event("kafka").await;
        assert_eq!(event["reason"], "PartitionsRaised");
        assert_eq!(event["type"], "Normal");
        let status = api.expect_status(STATUS_APPLY, &base).await;
        assert_eq!(status["status"]["observedGeneration"], 2);
    })
    .await
    .unwrap();
    assert_eq!(
        admin.calls(),
        vec!["create_partitions page-views total=6".to_owned()]
    );
}
