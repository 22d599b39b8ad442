//! Test fixtures: a mocked Kubernetes API server that asserts the exact requests a reconcile makes
//! (in order, method and URI), hands their bodies to the test, and answers with canned objects.
//!
//! A scenario runs the reconcile and the verifier concurrently under a deadline: a missing request
//! fails the verifier (the reconcile finished without making it), an extra request fails the
//! reconcile (nobody answers it, the deadline expires).

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use k8s_openapi::jiff::Timestamp;
use kube::client::Body;
use kube::runtime::reflector;
use kube::runtime::watcher;
use kube::{Client, Resource};
use odradek_crds::Topic;
use serde_json::Value;

use crate::admin::fake::FakeConnector;
use crate::context::{Context, ControllerConfig};
use crate::metrics::Metrics;

type ApiHandle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// The fixed "now" of tests: 2026-01-01T00:00:00Z.
pub(crate) const NOW_SECONDS: i64 = 1_767_225_600;

/// Plays the API server.
pub(crate) struct ApiServerVerifier(ApiHandle);

/// A reconcile context over the mocked API server, a fake Kafka connector, and `topics` in the
/// Topic cache.
pub(crate) fn context(
    connector: FakeConnector,
    topics: Vec<Topic>,
) -> (Arc<Context>, ApiServerVerifier) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let (store, mut writer) = reflector::store::<Topic>();
    for t in topics {
        writer.apply_watcher_event(&watcher::Event::Apply(t));
    }
    let mut ctx = Context::new(
        client,
        Arc::new(connector),
        ControllerConfig::default(),
        Arc::new(Metrics::default()),
        store,
        Some("test".into()),
    );
    ctx.clock = Arc::new(|| Timestamp::from_second(NOW_SECONDS).unwrap_or(Timestamp::UNIX_EPOCH));
    (Arc::new(ctx), ApiServerVerifier(handle))
}

/// Sets the clock of a context that is not shared yet.
pub(crate) fn at(ctx: &mut Arc<Context>, seconds: i64) {
    if let Some(ctx) = Arc::get_mut(ctx) {
        ctx.clock =
            Arc::new(move || Timestamp::from_second(seconds).unwrap_or(Timestamp::UNIX_EPOCH));
    }
}

impl ApiServerVerifier {
    /// Expects the next request to be `method uri` (path and query, exactly), answers `code` with
    /// `response`, and returns the request's JSON body (`Null` when empty).
    pub(crate) async fn expect_code(
        &mut self,
        method: &str,
        uri: &str,
        code: u16,
        response: &Value,
    ) -> Value {
        let (request, send) = self
            .0
            .next_request()
            .await
            .unwrap_or_else(|| panic!("expected {method} {uri}, but no request came"));
        assert_eq!(
            (
                request.method().as_str(),
                request.uri().to_string().as_str()
            ),
            (method, uri),
            "unexpected request"
        );
        let body = request
            .into_body()
            .collect_bytes()
            .await
            .unwrap_or_default();
        let body = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).unwrap_or(Value::Null)
        };
        let response = Response::builder()
            .status(StatusCode::from_u16(code).unwrap_or(StatusCode::OK))
            .body(Body::from(serde_json::to_vec(response).unwrap_or_default()))
            .unwrap_or_else(|_| Response::new(Body::empty()));
        send.send_response(response);
        body
    }

    /// [`Self::expect_code`] with 200.
    pub(crate) async fn expect(&mut self, method: &str, uri: &str, response: &Value) -> Value {
        self.expect_code(method, uri, 200, response).await
    }

    /// Expects a request answered with 404 Not Found.
    pub(crate) async fn expect_not_found(&mut self, method: &str, uri: &str) -> Value {
        let status = serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "not found", "reason": "NotFound", "code": 404
        });
        self.expect_code(method, uri, 404, &status).await
    }

    /// Expects a server-side apply PATCH and answers with the applied object (as the API server
    /// would, plus `status` when given); returns the applied body.
    pub(crate) async fn expect_apply(&mut self, uri: &str, status: Option<Value>) -> Value {
        self.expect_apply_onto(uri, status, None).await
    }

    /// [`Self::expect_apply`], answering with `base` overlaid by the applied body.
    async fn expect_apply_onto(
        &mut self,
        uri: &str,
        status: Option<Value>,
        base: Option<&Value>,
    ) -> Value {
        let (request, send) = self
            .0
            .next_request()
            .await
            .unwrap_or_else(|| panic!("expected PATCH {uri}, but no request came"));
        assert_eq!(
            (
                request.method().as_str(),
                request.uri().to_string().as_str()
            ),
            ("PATCH", uri),
            "unexpected request"
        );
        let body = request
            .into_body()
            .collect_bytes()
            .await
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let mut reply = base.cloned().unwrap_or_else(|| body.clone());
        if let (Some(reply), Some(applied)) = (reply.as_object_mut(), body.as_object()) {
            for (k, v) in applied {
                if k != "metadata" {
                    reply.insert(k.clone(), v.clone());
                }
            }
        }
        if let Some(obj) = reply.as_object_mut() {
            if let Some(status) = status {
                obj.insert("status".into(), status);
            }
            // A status apply carries no metadata; the server's answer always does.
            let path = uri.split('?').next().unwrap_or_default();
            let name = path
                .trim_end_matches("/status")
                .rsplit('/')
                .next()
                .unwrap_or_default();
            obj.entry("metadata")
                .or_insert_with(|| serde_json::json!({"name": name}));
        }
        send.send_response(
            Response::builder()
                .body(Body::from(serde_json::to_vec(&reply).unwrap_or_default()))
                .unwrap_or_else(|_| Response::new(Body::empty())),
        );
        body
    }

    /// Expects a server-side apply of a status subresource; answers with `base` (the full object)
    /// carrying the applied status, and returns the applied body.
    pub(crate) async fn expect_status(&mut self, uri: &str, base: &Value) -> Value {
        self.expect_apply_onto(uri, None, Some(base)).await
    }

    /// Expects an Event to be created and returns it.
    pub(crate) async fn expect_event(&mut self, ns: &str) -> Value {
        let uri = format!("/apis/events.k8s.io/v1/namespaces/{ns}/events?");
        let (request, send) = self
            .0
            .next_request()
            .await
            .unwrap_or_else(|| panic!("expected an event, but no request came"));
        assert_eq!(
            (request.method().as_str(), request.uri().to_string()),
            ("POST", uri),
            "unexpected request"
        );
        let body = request
            .into_body()
            .collect_bytes()
            .await
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        send.send_response(
            Response::builder()
                .body(Body::from(serde_json::to_vec(&body).unwrap_or_default()))
                .unwrap_or_else(|_| Response::new(Body::empty())),
        );
        body
    }
}

/// Runs `reconcile` against the `verifier` scenario under a deadline and returns the reconcile's
/// result.
pub(crate) async fn run<R, V>(reconcile: R, verifier: V) -> R::Output
where
    R: std::future::Future,
    V: std::future::Future<Output = ()>,
{
    let both = async { tokio::join!(reconcile, verifier).0 };
    tokio::time::timeout(Duration::from_secs(10), both)
        .await
        .unwrap_or_else(|_| panic!("scenario timed out: the reconcile made a request the scenario did not expect, or hung"))
}

/// JSON of a resource as the API server would return it.
pub(crate) fn json<K: Resource + serde::Serialize>(obj: &K) -> Value {
    serde_json::to_value(obj).unwrap_or(Value::Null)
}
