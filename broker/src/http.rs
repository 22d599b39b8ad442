//! `/metrics`, `/healthz` and `/readyz` over HTTP.
//!
//! `/healthz` answers 200 while the process serves; `/readyz` answers 200 once the Kafka listener is
//! bound and every hosted partition is open, and 503 from the start of a shutdown, so that Kubernetes
//! stops routing clients here before the listener closes.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::PartitionLabel;
use crate::server::Broker;

pub(crate) async fn serve(listener: TcpListener, broker: Arc<Broker>, shutdown: CancellationToken) {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(broker);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "http server failed");
    }
}

async fn readyz(State(broker): State<Arc<Broker>>) -> impl IntoResponse {
    if broker.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

async fn metrics(State(broker): State<Arc<Broker>>) -> impl IntoResponse {
    for p in broker.replicas.all() {
        let label = PartitionLabel {
            topic: p.topic.clone(),
            partition: p.index,
        };
        broker
            .metrics
            .log_end_offset
            .get_or_create(&label)
            .set(p.log_end_offset());
        broker
            .metrics
            .log_size_bytes
            .get_or_create(&label)
            .set(i64::try_from(p.size_bytes()).unwrap_or(i64::MAX));
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        broker.metrics.encode(),
    )
}
