//! Processor reconciles against a mocked API server and an in-memory Kafka cluster.

use std::sync::Arc;

use odradek_crds::{Broker, BrokerSpec, Processor, ProcessorSpec};
use serde_json::{Value, json};

use super::*;
use crate::admin::TopicPartition;
use crate::admin::fake::{FakeAdmin, FakeConnector};
use crate::fixtures::{self, NOW_SECONDS};

const BOOTSTRAP: &str = "odradek-bootstrap.kafka.svc.cluster.local:9092";
const BROKER_GET: &str = "/apis/odradek.dev/v1alpha1/namespaces/kafka/brokers/odradek";
const STS_GET: &str = "/apis/apps/v1/namespaces/kafka/statefulsets/pageview-count";

fn apply_uri(path: &str) -> String {
    format!("{path}?&force=true&fieldManager=odradek-operator")
}

fn processor(spec: Value) -> Processor {
    let mut p = Processor::new(
        "pageview-count",
        serde_json::from_value::<ProcessorSpec>(spec).unwrap(),
    );
    p.metadata.namespace = Some("kafka".into());
    p.metadata.uid = Some("uid-p".into());
    p.metadata.generation = Some(1);
    p
}

fn broker() -> Value {
    let mut b = Broker::new(
        "odradek",
        serde_json::from_value::<BrokerSpec>(json!({"replicas": 1})).unwrap(),
    );
    b.metadata.namespace = Some("kafka".into());
    fixtures::json(&b)
}

fn cluster() -> (FakeConnector, FakeAdmin) {
    let connector = FakeConnector::default();
    let admin = FakeAdmin::with_brokers(1);
    admin.add_topic("page-views", 4, 1);
    connector.insert(BOOTSTRAP, admin.clone());
    (connector, admin)
}

fn set_offsets(admin: &FakeAdmin, end: i64, committed: i64) {
    let mut s = admin.lock();
    for p in 0..4 {
        let tp = TopicPartition {
            topic: "page-views".into(),
            partition: p,
        };
        s.end_offsets.insert(tp.clone(), end);
        s.committed.insert(("pageview-count".into(), tp), committed);
    }
}

#[tokio::test]
async fn fixed_replicas_become_the_statefulset_size_and_lag_goes_to_status() {
    let (connector, admin) = cluster();
    set_offsets(&admin, 100, 75);
    let (ctx, mut api) = fixtures::context(connector, vec![]);
    let p = processor(json!({
        "cluster": "odradek", "job": "pageview-count", "inputs": ["page-views"], "replicas": 2,
    }));

    let base = fixtures::json(&p);
    fixtures::run(reconcile(Arc::new(p), ctx), async {
        api.expect("GET", BROKER_GET, &broker()).await;
        api.expect_not_found("GET", STS_GET).await;
        let sts = api
            .expect_apply(
                &apply_uri("/apis/apps/v1/namespaces/kafka/statefulsets/pageview-count"),
                Some(json!({"replicas": 2, "readyReplicas": 2})),
            )
            .await;
        assert_eq!(sts["spec"]["replicas"], 2);
        assert_eq!(
            sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"],
            "state"
        );
        let status = api
            .expect_status(
                &apply_uri(
                    "/apis/odradek.dev/v1alpha1/namespaces/kafka/processors/pageview-count/status",
                ),
                &base,
            )
            .await;
        assert_eq!(status["status"]["totalLag"], 100);
        assert_eq!(status["status"]["desiredReplicas"], 2);
        assert_eq!(status["status"]["readyReplicas"], 2);
        assert_eq!(
            status["status"]["selector"],
            "app.kubernetes.io/instance=pageview-count,app.kubernetes.io/name=odradek-processor"
        );
        assert_eq!(status["status"]["conditions"][0]["status"], "True");
        // Created at the size the spec asks for: no scaling decision to record.
        assert_eq!(status["status"].get("lastScaling"), None);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_processor_without_its_cluster_reports_it_and_creates_nothing() {
    let (connector, _admin) = cluster();
    let (ctx, mut api) = fixtures::context(connector, vec![]);
    let p =
        processor(json!({"cluster": "odradek", "job": "pageview-count", "inputs": ["page-views"]}));

    let base = fixtures::json(&p);
    fixtures::run(reconcile(Arc::new(p), ctx), async {
        api.expect_not_found("GET", BROKER_GET).await;
        let status = api
            .expect_status(
                &apply_uri(
                    "/apis/odradek.dev/v1alpha1/namespaces/kafka/processors/pageview-count/status",
                ),
                &base,
            )
            .await;
        assert_eq!(
            status["status"]["conditions"][0]["reason"],
            "ClusterNotFound"
        );
    })
    .await
    .unwrap();
}

/// One reconcile of an autoscaled processor at `now`; returns the StatefulSet replicas applied.
async fn autoscale_once(
    ctx: Arc<Context>,
    api: &mut fixtures::ApiServerVerifier,
    p: &Processor,
    current: i32,
) -> (i32, Value) {
    let sts_now = json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "pageview-count", "namespace": "kafka"},
        "spec": {"replicas": current, "selector": {"matchLabels": {}}, "template": {}},
        "status": {"replicas": current, "readyReplicas": current},
    });
    let mut applied = 0;
    let mut status = Value::Null;

    let base = fixtures::json(p);
    fixtures::run(reconcile(Arc::new(p.clone()), ctx), async {
        api.expect("GET", BROKER_GET, &broker()).await;
        api.expect("GET", STS_GET, &sts_now).await;
        let sts = api
            .expect_apply(
                &apply_uri("/apis/apps/v1/namespaces/kafka/statefulsets/pageview-count"),
                Some(json!({"replicas": current, "readyReplicas": current})),
            )
            .await;
        applied = i32::try_from(sts["spec"]["replicas"].as_i64().unwrap()).unwrap();
        status = api
            .expect_status(
                &apply_uri(
                    "/apis/odradek.dev/v1alpha1/namespaces/kafka/processors/pageview-count/status",
                ),
                &base,
            )
            .await;
    })
    .await
    .unwrap();
    (applied, status)
}

#[tokio::test]
async fn the_autoscaler_scales_up_on_lag_within_bounds_and_records_why() {
    let (connector, admin) = cluster();
    let p = processor(json!({
        "cluster": "odradek", "job": "pageview-count", "inputs": ["page-views"],
        "autoscale": {"minReplicas": 1, "maxReplicas": 10, "targetLagSeconds": 10},
    }));
    // First sample: no rates yet.
    set_offsets(&admin, 1_000, 1_000);
    let (mut ctx, mut api) = fixtures::context(connector, vec![]);
    fixtures::at(&mut ctx, NOW_SECONDS);
    let (first, _) = autoscale_once(ctx.clone(), &mut api, &p, 1).await;
    assert_eq!(first, 1);

    // 60 s later: 600 records/s in (4 partitions x 9 000), one replica processed 100 records/s.
    set_offsets(&admin, 10_000, 2_500);
    fixtures::at(&mut ctx, NOW_SECONDS + 60);
    assert_eq!(ctx.now().as_second(), NOW_SECONDS + 60, "the clock moved");
    let (second, status) = autoscale_once(ctx.clone(), &mut api, &p, 1).await;
    // Capped by the 4 input partitions, scaled up from 1.
    assert!(second > 1 && second <= 4, "desired {second}");
    assert_eq!(status["status"]["desiredReplicas"], second);
    assert_eq!(status["status"]["totalLag"], 4 * 7_500);
    assert_eq!(status["status"]["inputRate"], 600.0);
    assert_eq!(status["status"]["processingRate"], 100.0);
    let reason = status["status"]["lastScaling"]["reason"].as_str().unwrap();
    assert!(reason.starts_with("ScaleUp"), "{reason}");
    assert_eq!(status["status"]["lastScaling"]["from"], 1);
}
