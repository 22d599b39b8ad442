//! Prometheus metrics of a processor process and the HTTP server that serves them with the health
//! endpoints.
//!
//! - `/metrics`: lag per input partition (from librdkafka's statistics), records processed per second,
//!   restore progress and rate, assignment, commits.
//! - `/healthz`: the poll loop has turned recently (a wedged consumer is restarted by the kubelet).
//! - `/readyz`: healthy, joined the group, and no assigned partition is restoring.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

/// Label set: name/value pairs.
pub type Labels = Vec<(String, String)>;

/// How long the poll loop may stay silent before `/healthz` fails.
const HEALTH_STALE_AFTER: Duration = Duration::from_secs(30);

/// All metrics of one processor process (cheap to share in an `Arc`).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Records handed to tasks, per input partition.
    pub records_processed: Family<Labels, Counter>,
    /// Records the task skipped (malformed, too late), per input partition.
    pub records_skipped: Family<Labels, Counter>,
    /// Records processed per second over the last measuring interval, all partitions.
    pub records_per_second: Gauge<f64, AtomicU64>,
    /// Consumer lag per input partition (records between the committed position and the end).
    pub lag: Family<Labels, Gauge>,
    /// Sum of `lag` over the assigned partitions.
    pub lag_total: Gauge,
    /// Changelog offsets still to restore, per store and partition (0 when done).
    pub restore_remaining: Family<Labels, Gauge>,
    /// Changelog records restored, per store.
    pub restore_records: Family<Labels, Counter>,
    /// Changelog bytes restored, per store.
    pub restore_bytes: Family<Labels, Counter>,
    /// Restore rate of the last finished restore, bytes per second, per store.
    pub restore_bytes_per_second: Family<Labels, Gauge<f64, AtomicU64>>,
    /// Partitions currently restoring.
    pub restoring_partitions: Gauge,
    /// Partitions currently assigned to this process.
    pub assigned_partitions: Gauge,
    /// Commits completed (flush, checkpoint, offset commit).
    pub commits: Counter,
    processed_sum: AtomicU64,
    last_poll_ms: AtomicI64,
    joined: AtomicBool,
    started: Instant,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set of metrics registered under the `odradek_processor` prefix.
    #[must_use]
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("odradek_processor");
        let m = Self {
            records_processed: Family::default(),
            records_skipped: Family::default(),
            records_per_second: Gauge::default(),
            lag: Family::default(),
            lag_total: Gauge::default(),
            restore_remaining: Family::default(),
            restore_records: Family::default(),
            restore_bytes: Family::default(),
            restore_bytes_per_second: Family::default(),
            restoring_partitions: Gauge::default(),
            assigned_partitions: Gauge::default(),
            commits: Counter::default(),
            processed_sum: AtomicU64::new(0),
            last_poll_ms: AtomicI64::new(0),
            joined: AtomicBool::new(false),
            started: Instant::now(),
            registry: Registry::default(),
        };
        registry.register(
            "records_processed",
            "Records handed to tasks",
            m.records_processed.clone(),
        );
        registry.register(
            "records_skipped",
            "Records skipped by tasks",
            m.records_skipped.clone(),
        );
        registry.register(
            "records_per_second",
            "Records processed per second, all partitions",
            m.records_per_second.clone(),
        );
        registry.register("lag", "Consumer lag per input partition", m.lag.clone());
        registry.register(
            "lag_total",
            "Consumer lag over all assigned partitions",
            m.lag_total.clone(),
        );
        registry.register(
            "restore_remaining_offsets",
            "Changelog offsets still to restore per store and partition",
            m.restore_remaining.clone(),
        );
        registry.register(
            "restore_records",
            "Changelog records restored",
            m.restore_records.clone(),
        );
        registry.register(
            "restore_bytes",
            "Changelog bytes restored",
            m.restore_bytes.clone(),
        );
        registry.register(
            "restore_bytes_per_second",
            "Rate of the last finished restore",
            m.restore_bytes_per_second.clone(),
        );
        registry.register(
            "restoring_partitions",
            "Assigned partitions still restoring",
            m.restoring_partitions.clone(),
        );
        registry.register(
            "assigned_partitions",
            "Input partitions assigned to this process",
            m.assigned_partitions.clone(),
        );
        registry.register("commits", "Completed commits", m.commits.clone());
        Self { registry, ..m }
    }

    /// Counts `n` processed records of `partition`.
    pub fn processed(&self, partition: &Labels, n: u64) {
        self.records_processed.get_or_create(partition).inc_by(n);
        self.processed_sum.fetch_add(n, Ordering::Relaxed);
    }

    /// Records that the poll loop turned now.
    pub fn poll_alive(&self) {
        let ms = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.last_poll_ms.store(ms, Ordering::Relaxed);
    }

    /// Records whether the consumer has joined the group (has had an assignment).
    pub fn set_joined(&self, joined: bool) {
        self.joined.store(joined, Ordering::Relaxed);
    }

    /// Whether the poll loop turned within the last 30 seconds.
    #[must_use]
    pub fn healthy(&self) -> bool {
        let last = self.last_poll_ms.load(Ordering::Relaxed);
        let now = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let stale = i64::try_from(HEALTH_STALE_AFTER.as_millis()).unwrap_or(i64::MAX);
        last > 0 && now - last < stale
    }

    /// Healthy, joined, and no partition restoring.
    #[must_use]
    pub fn ready(&self) -> bool {
        self.healthy()
            && self.joined.load(Ordering::Relaxed)
            && self.restoring_partitions.get() == 0
    }

    /// The metrics in the Prometheus text format.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Updates `records_per_second` every `every` until cancelled.
    pub async fn measure_rate(self: Arc<Self>, every: Duration, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(every);
        // tokio's clock, so that paused-time tests see the interval.
        let mut last = (
            tokio::time::Instant::now(),
            self.processed_sum.load(Ordering::Relaxed),
        );
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = (
                tokio::time::Instant::now(),
                self.processed_sum.load(Ordering::Relaxed),
            );
            let secs = now.0.duration_since(last.0).as_secs_f64();
            if secs > 0.0 {
                #[allow(clippy::cast_precision_loss)]
                let rate = now.1.saturating_sub(last.1) as f64 / secs;
                self.records_per_second.set(rate);
            }
            last = now;
        }
    }
}

/// Labels of one input partition.
#[must_use]
pub fn partition_labels(topic: &str, partition: i32) -> Labels {
    vec![
        ("topic".to_owned(), topic.to_owned()),
        ("partition".to_owned(), partition.to_string()),
    ]
}

/// Labels of one store of one partition.
#[must_use]
pub fn store_labels(store: &str, partition: Option<i32>) -> Labels {
    let mut l = vec![("store".to_owned(), store.to_owned())];
    if let Some(p) = partition {
        l.push(("partition".to_owned(), p.to_string()));
    }
    l
}

/// The HTTP routes: `/metrics`, `/healthz`, `/readyz`.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(m): State<Arc<Metrics>>| async move {
                (
                    [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
                    m.encode(),
                )
            }),
        )
        .route(
            "/healthz",
            get(|State(m): State<Arc<Metrics>>| async move {
                if m.healthy() {
                    (StatusCode::OK, "ok")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "poll loop stalled")
                }
            }),
        )
        .route(
            "/readyz",
            get(|State(m): State<Arc<Metrics>>| async move {
                if m.ready() {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                }
            }),
        )
        .with_state(metrics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_needs_a_live_poll_loop_a_group_and_no_restore() {
        let m = Metrics::new();
        assert!(!m.healthy());
        std::thread::yield_now();
        m.poll_alive();
        // The clock may not have advanced a millisecond since start; force a nonzero mark.
        m.last_poll_ms.store(1, Ordering::Relaxed);
        assert!(m.healthy());
        assert!(!m.ready());
        m.set_joined(true);
        assert!(m.ready());
        m.restoring_partitions.inc();
        assert!(!m.ready());
    }

    #[test]
    fn the_text_format_names_the_metrics() {
        let m = Metrics::new();
        m.processed(&partition_labels("page-views", 3), 5);
        m.lag
            .get_or_create(&partition_labels("page-views", 3))
            .set(7);
        let text = m.encode();
        assert!(
            text.contains(
                r#"odradek_processor_records_processed_total{topic="page-views",partition="3"} 5"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"odradek_processor_lag{topic="page-views",partition="3"} 7"#),
            "{text}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_is_measured_over_the_interval() {
        let m = Arc::new(Metrics::new());
        let stop = CancellationToken::new();
        let task = tokio::spawn(m.clone().measure_rate(Duration::from_secs(5), stop.clone()));
        tokio::time::sleep(Duration::from_millis(10)).await;
        m.processed(&partition_labels("t", 0), 500);
        tokio::time::sleep(Duration::from_secs(5)).await;
        let rate = m.records_per_second.get();
        stop.cancel();
        task.await.unwrap();
        assert!((rate - 100.0).abs() < 1.0, "{rate}");
    }
}
